# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long a probe waits: the timeout arguments, the round-trip estimate of ``timeout: auto`` and the
policy that turns them into one probe's wait (split from probe_engine.py, which re-exports every name).

Pure Python, standard library only, Python 3.8 syntax: runs on the vantage host inside the
``nap_port_probe`` module and on the controller (win_nap_port_probe).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

# Service time allowed on top of the round-trip estimate in ``timeout: auto`` (seconds):
# the estimate comes from kernel-level answers (TCP handshakes, resets, ICMP), a service
# needs more to build its answer, the more so when every vantage of a verify run asks the
# same domain controller at once (a KDC looks the principal up before it answers).  DHCP answers
# come through a relay and a server that picks an address first: 0.5 s was seen too short in
# the lab under load (an OFFER after about 0.55 s), hence 1.5 s.
SERVICE_ALLOWANCE = {
    "tcp": 0.0, "udp": 0.0, "dns": 0.3, "cldap": 0.3, "ike": 0.3, "ntp": 0.1,
    "radius": 0.5, "dhcp": 1.5, "dhcp_relay": 1.5, "kerberos": 0.5,
}
DEFAULT_TIMEOUT = "auto"
DEFAULT_MAX_TIMEOUT = 3.0
DEFAULT_MIN_TIMEOUT = 0.05


class ProbeError(Exception):
    """Bad input, raised before anything is sent."""


def parse_timeout(value, where="timeout", allow_auto=True):
    """A positive number of seconds, or "auto" -> float or "auto"."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        if allow_auto:
            return "auto"
        raise ProbeError("%s: 'auto' is not allowed here; give seconds, e.g. 0.5" % where)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ProbeError("%s: %r is not a number of seconds%s" % (where, value, " or 'auto'" if allow_auto else ""))
    if math.isnan(seconds) or seconds <= 0 or seconds > 3600:
        raise ProbeError("%s: %r must be more than 0 and at most 3600 seconds" % (where, value))
    return seconds


# ===========================================================================
# Round-trip estimation for timeout: auto (RFC 6298 smoothing, as nmap does)
# ===========================================================================
class RttEstimator:
    def __init__(self):
        self.srtt = None
        self.rttvar = None
        self.samples = 0

    def add(self, rtt):
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2.0
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.samples += 1

    def timeout(self, floor, ceiling):
        if self.srtt is None:
            return ceiling
        return min(max(self.srtt + 4.0 * self.rttvar, floor), ceiling)

    def as_dict(self):
        if self.srtt is None:
            return {"samples": 0}
        return {"samples": self.samples, "srtt_ms": round(self.srtt * 1000.0, 3),
                "rttvar_ms": round(self.rttvar * 1000.0, 3)}


class TimeoutPolicy:
    """How long a probe waits for an answer: fixed, or derived from measured round trips."""

    def __init__(self, timeout=DEFAULT_TIMEOUT, max_timeout=DEFAULT_MAX_TIMEOUT, min_timeout=DEFAULT_MIN_TIMEOUT):
        self.mode = parse_timeout(timeout) or DEFAULT_TIMEOUT
        self.max_timeout = parse_timeout(max_timeout, "max_timeout", allow_auto=False) or DEFAULT_MAX_TIMEOUT
        self.min_timeout = parse_timeout(min_timeout, "min_timeout", allow_auto=False) or DEFAULT_MIN_TIMEOUT
        if self.min_timeout > self.max_timeout:
            raise ProbeError("min_timeout (%s) is above max_timeout (%s)" % (self.min_timeout, self.max_timeout))
        self.overall = RttEstimator()
        self.per_address = {}

    def sample(self, address, rtt):
        self.overall.add(rtt)
        self.per_address.setdefault(address, RttEstimator()).add(rtt)

    def wait_for(self, target):
        if target.timeout is not None:
            return target.timeout
        if self.mode != "auto":
            return self.mode
        est = self.per_address.get(target.address)
        if est is None or est.samples == 0:
            est = self.overall
        if est.samples == 0:
            return self.max_timeout
        base = est.timeout(self.min_timeout, self.max_timeout)
        return min(base + SERVICE_ALLOWANCE.get(target.kind, 0.0), self.max_timeout)

    def longest(self, targets):
        fixed = [t.timeout for t in targets if t.timeout is not None]
        base = self.max_timeout if self.mode == "auto" else self.mode
        return max([base] + fixed)
