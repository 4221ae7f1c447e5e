# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""netstat -ano of Windows Server 2008 / 2008 R2 -> listeners (the input of the verify role's listener check)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os

import pytest

from ansible_collections.configmgr.nap.plugins.filter.nap_verify import nap_netstat_listeners
from ansible_collections.configmgr.nap.plugins.module_utils.nap import verify
from ansible_collections.configmgr.nap.plugins.module_utils.nap.netstat import parse_netstat_ano, split_endpoint

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def sample(name):
    # the files are stored with LF; netstat writes CRLF, which the parser must take as well
    with io.open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read().replace("\n", "\r\n")


def ports(entries):
    return sorted(set(e["port"] for e in entries))


def test_2008r2_sample():
    out = parse_netstat_ano(sample("netstat-ano-2008r2.txt"))
    tcp, udp = out["tcp_listen"], out["udp_listen"]
    # LISTENING rows only: the ESTABLISHED and TIME_WAIT rows (389, 49161, 5985 from a client) are not listeners
    assert ports(tcp) == [53, 88, 135, 139, 389, 445, 464, 593, 636, 3268, 3269, 5985, 9389, 47001, 49152, 49153,
                          49154, 49155]
    assert ports(udp) == [53, 88, 123, 137, 389, 500, 1812, 1813, 4500]
    assert {"protocol": "tcp", "address": "0.0.0.0", "port": 3269, "pid": 496, "name": ""} in tcp
    assert {"protocol": "tcp", "address": "::", "port": 445, "pid": 4, "name": ""} in tcp
    assert {"protocol": "tcp", "address": "fe80::5efe:c000:20a%12", "port": 53, "pid": 1400, "name": ""} in tcp
    assert {"protocol": "udp", "address": "0.0.0.0", "port": 1812, "pid": 1364, "name": ""} in udp
    assert len([e for e in tcp if e["port"] == 389]) == 1


def test_localized_state_column():
    out = parse_netstat_ano(sample("netstat-ano-2008-de.txt"))
    assert [(e["address"], e["port"]) for e in out["tcp_listen"]] == [("0.0.0.0", 135), ("0.0.0.0", 445)]
    assert [e["port"] for e in out["udp_listen"]] == [1812]


def test_listener_check_from_netstat():
    """The verify role's comparison over a parsed 2008 R2 sample: an NPS listener missing, the DC ones there."""
    observed = verify.observed_listeners([
        {"item": {"host": "dc01", "method": "netstat"}, "stdout": sample("netstat-ano-2008r2.txt")},
        {"item": {"host": "nps01", "method": "netstat"}, "stdout": sample("netstat-ano-2008-de.txt")},
        {"item": {"host": "hra01", "method": "netstat"}, "failed": True, "msg": "WinRM timed out"},
    ])
    jobs = [{"host": "dc01", "method": "netstat", "expected": [
        {"protocol": "tcp", "port": 636, "service": "ldaps", "role": "domain_controller"},
        {"protocol": "udp", "port": 53, "service": "dns", "role": "domain_controller"}]},
        {"host": "nps01", "method": "netstat", "expected": [
            {"protocol": "udp", "port": 1813, "service": "radius-accounting", "role": "shv_point"}]},
        {"host": "hra01", "method": "netstat", "expected": [
            {"protocol": "tcp", "port": 443, "service": "https", "role": "hra"}]}]
    checks = verify.listener_checks(jobs, observed)
    assert [(c["target"], c["port"], c["verdict"]) for c in checks] == [
        ("dc01", 636, "ok"), ("dc01", 53, "ok"), ("nps01", 1813, "broken"), ("hra01", 443, "not probed")]
    assert "WinRM timed out" in checks[-1]["detail"]


def test_loopback_only_listener_does_not_count():
    observed = {"h": {"tcp": [{"address": "127.0.0.1", "port": 53}, {"address": "::1", "port": 53}], "udp": []}}
    checks = verify.listener_checks([{"host": "h", "method": "netstat", "expected": [
        {"protocol": "tcp", "port": 53, "service": "dns", "role": "dns_server"}]}], observed)
    assert checks[0]["verdict"] == "broken"


@pytest.mark.parametrize("text,expected", [
    ("0.0.0.0:135", ("0.0.0.0", 135)),
    ("[::]:445", ("::", 445)),
    ("[fe80::1%11]:389", ("fe80::1%11", 389)),
    ("*:*", ("*", None)),
])
def test_split_endpoint(text, expected):
    assert split_endpoint(text) == expected


def test_garbage_is_ignored_and_the_filter_wraps_it():
    assert parse_netstat_ano("") == {"tcp_listen": [], "udp_listen": []}
    assert parse_netstat_ano("TCP nonsense\nUDP 1.2.3.4 *:* x\n") == {"tcp_listen": [], "udp_listen": []}
    assert nap_netstat_listeners("  UDP    0.0.0.0:67    *:*    1200\n")["udp_listen"][0]["port"] == 67
