# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote senders (the PowerShell sender of win_nap_port_probe): the controller builds the exact bytes
and judges the replies with the probe classes of probe_engine.py; the sender only connects, sends and reads.

Runs on the controller only (the action plugin win_nap_port_probe); split from probe_engine.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import math
import socket

from ansible_collections.configmgr.nap.plugins.module_utils.nap.probe_engine import (
    DEFAULT_MAX_TIMEOUT, DEFAULT_TIMEOUT, TcpExchangeProbe, TimeoutPolicy, UdpProbe, _result, normalize_targets,
    probe_class)

# What a remote sender can do: TCP connects, TCP exchanges (one request, the reply read until its
# framing is complete, the peer closes or the timeout) and UDP exchanges from an ephemeral port.
# DHCP probes bind UDP 67/68, which the DHCP Client and DHCP Server services hold on Windows.
REMOTE_UNSUPPORTED = {"dhcp": "a DHCP probe binds UDP 68, which the DHCP Client service holds on Windows",
                      "dhcp_relay": "a DHCP relay probe binds UDP 67, which the DHCP Server and relay agent hold on "
                                    "Windows"}
# sender statuses (the sender's reply format: see remote_results)
REMOTE_STATUSES = ("open", "refused", "timeout", "unreachable", "replied", "silent", "error")
# framing of a TCP exchange's reply: none (read until the peer closes or the timeout), u32 (a 4-byte length first)
REMOTE_FRAMING = {"kerberos": "u32"}


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def remote_requests(targets, timeout=DEFAULT_TIMEOUT, max_timeout=DEFAULT_MAX_TIMEOUT, source_address=None,
                    resolver=socket.getaddrinfo):
    """Validate ``targets`` and build every probe's bytes for a remote sender.

    -> (probes, wire): the probe objects (kept on the controller for remote_results) and, in the same
    order, the sender's parameters per probe: Id, Protocol, Address, Port, Mode (connect or exchange),
    Send (base64 payloads, sent in order), Framing (none or u32) and TimeoutMs.  A timeout of ``auto``
    is ``max_timeout`` here: the sender does not estimate round trips.  A kind the sender cannot make
    (DHCP) gets no wire entry (None) and an ``error`` result from remote_results.
    """
    parsed = normalize_targets(targets, resolver)
    policy = TimeoutPolicy(timeout, max_timeout)
    local = source_address or ("0.0.0.0")
    probes, wire = [], []
    for target in parsed:
        probe = probe_class(target)(target, None)
        probes.append(probe)
        if target.kind in REMOTE_UNSUPPORTED:
            wire.append(None)
            continue
        wait = target.timeout if target.timeout is not None else (
            policy.mode if policy.mode != "auto" else policy.max_timeout)
        entry = {"Id": target.index, "Protocol": target.protocol, "Address": target.address, "Port": target.port,
                 "Mode": "connect", "Send": [], "Framing": "none", "TimeoutMs": int(math.ceil(wait * 1000))}
        if isinstance(probe, TcpExchangeProbe):
            probe.request = probe.request_bytes(local)
            entry.update(Mode="exchange", Send=[_b64(probe.request)], Framing=REMOTE_FRAMING.get(target.kind, "none"))
        elif isinstance(probe, UdpProbe):
            entry.update(Mode="exchange", Send=[_b64(p) for p in probe.requests(local)])
        wire.append(entry)
    return probes, wire


def _remote_one(probe, reply, wire):
    target = probe.target
    probe.started = 0.0
    if wire is None:
        probe.finish("error", 0.0, "%s: the Windows sender cannot make it (a Linux vantage in the zone can)"
                     % REMOTE_UNSUPPORTED[target.kind])
        return
    if not isinstance(reply, dict) or reply.get("Status") not in REMOTE_STATUSES:
        probe.finish("error", 0.0, "the sender returned no result for this probe (%r)" % (reply,))
        return
    status = reply["Status"]
    elapsed = max(0.0, float(reply.get("TimeMs") or 0) / 1000.0)
    waited = float(wire["TimeoutMs"]) / 1000.0
    error = str(reply.get("Error") or "")
    try:
        datagrams = [base64.b64decode(str(d)) for d in reply.get("Replies") or []]
    except (TypeError, ValueError):
        probe.finish("error", elapsed, "the sender returned replies that are not base64")
        return
    if status == "error":
        probe.finish("error", elapsed, "the sender could not make the probe: %s" % error)
    elif status == "unreachable":
        probe.finish("filtered", elapsed, "ICMP host or network unreachable (%s)" % error if error else
                     "ICMP host or network unreachable")
    elif target.protocol == "tcp":
        if status == "refused":
            probe.finish("closed", elapsed, "connection refused (TCP reset)")
        elif status == "timeout":
            probe.timed_out = True
            probe.expire(elapsed, waited)
        elif status == "open" and not isinstance(probe, TcpExchangeProbe):
            probe.finish("open", elapsed, "TCP handshake completed")
        elif isinstance(probe, TcpExchangeProbe):
            probe.connected = True
            data = b"".join(datagrams)
            verdict = probe.check(data) if data else None
            if verdict is not None:
                probe.finish(verdict[0], elapsed, verdict[1], verdict[2])
            elif data:
                probe.finish("unexpected", elapsed, "TCP handshake completed, %d byte(s) came back, not a %s answer"
                             % (len(data), target.kind))
            else:
                probe.expire(elapsed, waited)
        else:
            probe.finish("error", elapsed, "the sender answered %s to a TCP connect" % status)
    elif status == "refused":
        probe.finish("closed", elapsed, "ICMP port unreachable")
    elif status in ("timeout", "silent"):
        probe.timed_out = True
        probe.expire(elapsed, waited)
    elif status == "replied":
        for data in datagrams:
            verdict = probe.check(data)
            if verdict is not None:
                probe.finish(verdict[0], elapsed, verdict[1], verdict[2])
                return
            probe.ignored += 1
        probe.expire(elapsed, waited)
    else:
        probe.finish("error", elapsed, "the sender answered %s to a UDP exchange" % status)
    if probe.result is not None:
        probe.result = (probe.result[0], elapsed, probe.result[2], probe.result[3])


def remote_results(probes, wire, replies):
    """Judge a remote sender's replies with the same classifiers as run(): -> results as run() gives them.

    ``replies``: the sender's list, one mapping per probe it was given: Id, Status (open, refused, timeout,
    unreachable, replied, silent, error), Replies (base64: the datagrams of a UDP exchange, or the bytes read
    in a TCP exchange), TimeMs, Error."""
    by_id = {}
    for reply in replies or []:
        if isinstance(reply, dict) and reply.get("Id") is not None:
            try:
                by_id[int(reply["Id"])] = reply
            except (TypeError, ValueError):
                continue
    out = []
    for probe, entry in zip(probes, wire):
        _remote_one(probe, by_id.get(probe.target.index), entry)
        out.append(_result(probe))
    return out
