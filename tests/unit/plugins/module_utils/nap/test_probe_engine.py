# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""probe_engine.py without sockets: target validation, expectations, round-trip timing, answer judging,
and the module's refusal of bad input before anything is sent."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import struct

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_codecs
from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_engine


def no_dns(*_args, **_kwargs):
    raise AssertionError("no name resolution expected")


def target(**kw):
    raw = {"host": "198.18.0.2", "port": 80}
    raw.update(kw)
    return probe_engine.normalize_targets([raw], resolver=no_dns)[0]


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("targets,match", [
    ([], "no targets"),
    (None, "no targets"),
    ([{"host": "198.18.0.2", "port": 0}], "port 0 is out of range"),
    ([{"host": "198.18.0.2", "port": 70000}], "out of range"),
    ([{"host": "198.18.0.2", "port": "x"}], "not a number"),
    ([{"host": "198.18.0.2", "port": 80, "protocol": "sctp"}], "protocol 'sctp' is not one of tcp, udp"),
    ([{"host": "198.18.0.2", "port": 80, "kind": "smtp"}], "kind 'smtp' is not one of"),
    ([{"host": "198.18.0.2", "port": 1812, "kind": "radius"}], "needs the shared secret"),
    ([{"host": "198.18.0.2", "port": 53, "kind": "dns", "protocol": "tcp"}], "probes over UDP"),
    ([{"port": 80}], "'host' .* is required"),
    ([{"host": "198.18.0.2", "port": 80, "expect": "up"}], "expect 'up'"),
    ([{"host": "2001:db8::1", "port": 67, "kind": "dhcp"}], "IPv4 only"),
    ([{"host": "198.18.0.2", "port": 80, "timeout": 0}], "more than 0"),
    ([{"host": "198.18.0.2", "port": 80, "colour": "red"}], "unknown key"),
    ([{"host": "198.18.0.2", "port": 80, "kind": "tcp", "secret": "x"}], "only for RADIUS"),
])
def test_bad_input_is_refused(targets, match):
    with pytest.raises(probe_engine.ProbeError, match=match):
        probe_engine.normalize_targets(targets, resolver=no_dns)


def test_every_problem_is_listed_at_once():
    with pytest.raises(probe_engine.ProbeError) as info:
        probe_engine.normalize_targets([{"host": "198.18.0.2", "port": 0, "name": "a"},
                                        {"host": "198.18.0.2", "port": 1812, "kind": "radius", "name": "b"}],
                                       resolver=no_dns)
    assert "target 1 (a): port 0" in str(info.value) and "target 2 (b): a RADIUS probe" in str(info.value)


def test_run_refuses_before_sending(monkeypatch):
    def no_socket(*_a, **_k):
        raise AssertionError("a socket was opened")
    monkeypatch.setattr(probe_engine.socket, "socket", no_socket)
    with pytest.raises(probe_engine.ProbeError, match="secret"):
        probe_engine.run([{"host": "198.18.0.2", "port": 80}, {"host": "198.18.0.3", "port": 1812, "kind": "radius"}],
                         resolver=no_dns)
    with pytest.raises(probe_engine.ProbeError, match="min_timeout"):
        probe_engine.run([{"host": "198.18.0.2", "port": 80}], min_timeout=2, max_timeout=1, resolver=no_dns)
    with pytest.raises(probe_engine.ProbeError, match="concurrency"):
        probe_engine.run([{"host": "198.18.0.2", "port": 80}], concurrency=0, resolver=no_dns)
    with pytest.raises(probe_engine.ProbeError, match="'soon' is not a number"):
        probe_engine.run([{"host": "198.18.0.2", "port": 80}], timeout="soon", resolver=no_dns)


def test_names_resolve_once_and_failures_are_input_errors():
    calls = []

    def resolver(name, *_a):
        calls.append(name)
        if name == "dc01.nap.example":
            return [(2, 1, 6, "", ("198.18.1.10", 0))]
        raise probe_engine.socket.gaierror(-2, "Name or service not known")
    t = probe_engine.normalize_targets([{"host": "dc01.nap.example", "port": 389}], resolver=resolver)[0]
    assert t.address == "198.18.1.10" and t.host == "dc01.nap.example" and calls == ["dc01.nap.example"]
    with pytest.raises(probe_engine.ProbeError, match="does not resolve"):
        probe_engine.normalize_targets([{"host": "nowhere.nap.example", "port": 389}], resolver=resolver)


@pytest.mark.parametrize("raw,kind,protocol", [
    ({"port": 80}, "tcp", "tcp"),
    ({"port": 53, "protocol": "udp"}, "dns", "udp"),
    ({"port": 67, "protocol": "udp"}, "dhcp", "udp"),
    ({"port": 389, "protocol": "udp"}, "cldap", "udp"),
    ({"port": 4500, "protocol": "udp"}, "ike", "udp"),
    ({"port": 1812, "protocol": "udp", "secret": "s"}, "radius", "udp"),
    ({"port": 1812, "protocol": "udp"}, "udp", "udp"),         # no secret: generic UDP
    ({"port": 9, "protocol": "udp"}, "udp", "udp"),
    ({"port": 1813, "kind": "radius", "secret": "s"}, "radius", "udp"),   # protocol follows the kind
])
def test_auto_kind(raw, kind, protocol):
    t = target(**raw)
    assert (t.kind, t.protocol) == (kind, protocol)


def test_ipv6_and_defaults():
    t = target(host="2001:db8::5", port=500, kind="ike")
    assert t.family == probe_engine.socket.AF_INET6 and t.options["ike_version"] == "both"
    assert t.label() == "udp [2001:db8::5]:500 ike"
    d = target(port=67, kind="dhcp_relay", mac="02:00:00:00:00:09")
    assert d.options == {"dhcp_message": "discover", "mac": bytes.fromhex("020000000009")}


# ---------------------------------------------------------------------------
# expectations and summaries
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("expect,state,ok", [
    ("open", "open", True), ("open", "open|filtered", False), ("open", "unexpected", False),
    ("closed", "closed", True), ("closed", "filtered", False),
    ("blocked", "closed", True), ("blocked", "filtered", True), ("blocked", "open|filtered", True),
    ("blocked", "open", False), ("blocked", "unexpected", False),
    (None, "filtered", True), (None, "error", False), ("blocked", "error", False),
])
def test_judge(expect, state, ok):
    assert probe_engine.judge(expect, state) is ok


def test_summary_and_failure_lines():
    results = [
        {"name": "NAP-AD-WRITE", "protocol": "tcp", "address": "198.18.1.10", "port": 636, "kind": "tcp",
         "state": "filtered", "detail": "no answer to the SYN within 50 ms", "expected": "open", "ok": False},
        {"name": None, "protocol": "udp", "address": "198.18.1.20", "port": 1812, "kind": "radius",
         "state": "open", "detail": "RADIUS Access-Accept", "expected": "open", "ok": True},
    ]
    summary = probe_engine.summarize(results)
    assert summary["total"] == 2 and summary["ok"] == 1 and summary["failed"] == 1
    assert summary["states"]["filtered"] == 1 and summary["states"]["open"] == 1
    assert probe_engine.describe_failure(results[0]) == (
        "NAP-AD-WRITE (tcp 198.18.1.10:636): expected open, got filtered (no answer to the SYN within 50 ms)")
    json.dumps(summary)


# ---------------------------------------------------------------------------
# round trips and timeout: auto
# ---------------------------------------------------------------------------
def test_rtt_estimator_follows_rfc6298():
    est = probe_engine.RttEstimator()
    assert est.timeout(0.05, 3.0) == 3.0                  # nothing measured: the maximum
    est.add(0.010)
    assert est.srtt == pytest.approx(0.010) and est.rttvar == pytest.approx(0.005)
    est.add(0.030)
    assert est.rttvar == pytest.approx(0.75 * 0.005 + 0.25 * 0.020)
    assert est.srtt == pytest.approx(0.875 * 0.010 + 0.125 * 0.030)
    assert est.timeout(0.0, 3.0) == pytest.approx(est.srtt + 4 * est.rttvar)
    assert est.timeout(0.5, 3.0) == 0.5                    # floor
    assert est.timeout(0.0, 0.01) == 0.01                  # ceiling


def test_timeout_policy():
    tcp = target(port=80)
    dhcp = target(port=67, kind="dhcp")
    fixed = target(port=81, timeout=0.7)
    other = target(host="198.18.0.3", port=80)
    policy = probe_engine.TimeoutPolicy("auto", 2.0, 0.05)
    assert policy.wait_for(tcp) == 2.0 and policy.wait_for(fixed) == 0.7
    policy.sample("198.18.0.2", 0.0002)
    assert policy.wait_for(tcp) == 0.05                                # floor on a fast LAN
    assert policy.wait_for(dhcp) == pytest.approx(0.05 + probe_engine.SERVICE_ALLOWANCE["dhcp"])
    assert policy.wait_for(other) == 0.05                              # overall estimate for unmeasured hosts
    policy.sample("198.18.0.3", 1.5)
    assert policy.wait_for(other) == 2.0                               # its own (slow) estimate, capped
    assert probe_engine.TimeoutPolicy(0.25).wait_for(tcp) == 0.25
    assert probe_engine.TimeoutPolicy("auto", 2.0).longest([tcp, fixed]) == 2.0


# ---------------------------------------------------------------------------
# answer judging (what the probes do with a datagram), without sockets
# ---------------------------------------------------------------------------
def test_radius_probe_judges_replies():
    t = target(port=1812, kind="radius", secret="s3cret")
    p = probe_engine.RadiusProbe(t)
    request = p.requests("198.18.0.1")[0]
    assert probe_codecs.verify_radius_request(request, b"s3cret") and request[0] == probe_codecs.STATUS_SERVER
    good = probe_codecs.build_radius_response(probe_codecs.ACCESS_ACCEPT, request, b"s3cret")
    assert p.check(good)[0] == "open"
    bad = probe_codecs.build_radius_response(probe_codecs.ACCESS_ACCEPT, request, b"other")
    state, detail, _answer = p.check(bad)
    assert state == "unexpected" and "wrong shared secret" in detail
    assert p.check(probe_codecs.build_radius_response(probe_codecs.ACCOUNTING_RESPONSE, request, b"s3cret"))[0] == "open"
    assert p.check(probe_codecs.build_radius_response(probe_codecs.ACCESS_CHALLENGE, request, b"s3cret"))[0] == "unexpected"
    other_id = bytearray(request)
    other_id[1] ^= 0xFF
    assert p.check(probe_codecs.build_radius_response(probe_codecs.ACCESS_ACCEPT, bytes(other_id), b"s3cret")) is None
    assert p.check(b"junk") is None


def test_radius_access_request_probe():
    t = target(port=1812, kind="radius", secret="s3cret", radius_request="access_request", user="nemo",
               password="arctangent")
    p = probe_engine.RadiusProbe(t)
    request = p.requests("198.18.0.1")[0]
    attrs = dict(probe_codecs.parse_radius(request)["attributes"])
    assert attrs[1] == b"nemo" and probe_codecs.unhide_password(attrs[2], b"s3cret", request[4:20]) == b"arctangent"
    reject = probe_codecs.build_radius_response(probe_codecs.ACCESS_REJECT, request, b"s3cret", [(18, b"unknown user")])
    state, detail, answer = p.check(reject)
    assert state == "open" and answer == {"code": "Access-Reject", "reply_message": "unknown user"}


def test_dhcp_probe_judges_replies():
    t = target(port=67, kind="dhcp_relay", dhcp_message="inform")
    p = probe_engine.DhcpRelayProbe(t)
    assert p.local_port == 67 and p.exclusive() == ("udp", 67, "198.18.0.2")
    request = probe_codecs.parse_dhcp(p.requests("198.18.2.1")[0])
    assert request["giaddr"] == "198.18.2.1" and request["ciaddr"] == "198.18.2.1" and request["hops"] == 1
    assert request["message_type_name"] == "DHCPINFORM"
    reply = bytearray(p.requests("198.18.2.1")[0])
    reply[0] = 2
    reply[240:243] = b"\x35\x01\x05"
    state, detail, answer = p.check(bytes(reply))
    assert state == "open" and detail.startswith("DHCPACK")
    reply[4:8] = struct.pack("!I", (p.xid + 1) & 0xFFFFFFFF)
    assert p.check(bytes(reply)) is None
    assert p.check(p.requests("198.18.2.1")[0]) is None          # our own request (op 1) is not an answer


def test_ike_probe_detects_echo_and_accepts_replies():
    p = probe_engine.IkeProbe(target(port=500, kind="ike"))
    sent = p.requests("198.18.0.1")
    assert len(sent) == 2
    assert p.check(sent[0])[0] == "unexpected"                   # an echo
    v1 = bytearray(sent[0])
    v1[8:16] = b"\x11" * 8                                       # responder cookie filled in
    assert p.check(bytes(v1))[0] == "open"
    v2 = bytearray(sent[1])
    v2[19] = 0x08
    assert p.check(bytes(v2))[0] == "unexpected"                 # our SPI but not a response
    v2[19] = 0x20
    assert p.check(bytes(v2))[0] == "open"
    v2[0:8] = b"\x00" * 8
    assert p.check(bytes(v2)) is None                            # somebody else's SA
    natt = probe_engine.IkeProbe(target(port=4500, kind="ike", ike_version="ikev2"))
    sent = natt.requests("198.18.0.1")
    assert len(sent) == 1 and sent[0][:4] == probe_codecs.NATT_MARKER


def test_dns_cldap_ntp_probes():
    d = probe_engine.DnsProbe(target(port=53, kind="dns", dns_name="nap.example"))
    query = d.requests("198.18.0.1")[0]
    assert query[2:4] == b"\x00\x00"                              # no recursion desired
    assert d.check(query)[0] == "unexpected"                      # an echo: QR is 0
    answer = bytearray(query)
    answer[2] = 0x84
    answer[3] = 0x05
    assert d.check(bytes(answer))[:2] == ("open", "DNS response REFUSED, 0 answer(s)")
    c = probe_engine.CldapProbe(target(port=389, kind="cldap"))
    search = c.requests("198.18.0.1")[0]
    assert c.check(search)[0] == "unexpected"
    done = probe_codecs.ber_tlv(0x30, probe_codecs.ber_integer(c.message_id) + probe_codecs.ber_tlv(0x65, bytes.fromhex("0a0100040004 00")))
    assert c.check(done)[:2] == ("open", "CLDAP searchResDone success")
    n = probe_engine.NtpProbe(target(port=123, kind="ntp"))
    request = n.requests("198.18.0.1")[0]
    reply = bytes([0x24, 3]) + b"\0" * 22 + request[40:48] + b"\0" * 16
    assert n.check(reply)[0] == "open" and n.check(request) is None


# ---------------------------------------------------------------------------
# the module refuses bad input before sending anything
# ---------------------------------------------------------------------------
def run_module(capsys, monkeypatch, args):
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.configmgr.nap.plugins.modules import nap_port_probe

    def no_socket(*_a, **_k):
        raise AssertionError("a socket was opened")
    monkeypatch.setattr(probe_engine.socket, "socket", no_socket)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            nap_port_probe.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("args,match", [
    ({"targets": []}, "no targets"),
    ({"targets": [{"host": "198.18.0.2", "port": 0}]}, "port 0 is out of range"),
    ({"targets": [{"host": "198.18.0.2", "port": 1812, "kind": "radius"}]}, "needs the shared secret"),
    ({"targets": [{"host": "198.18.0.2", "port": 80, "protocol": "sctp"}]}, "protocol"),
    ({"targets": [{"host": "198.18.0.2", "port": 80}], "timeout": "later"}, "not a number of seconds"),
])
def test_module_bad_input(capsys, monkeypatch, args, match):
    out = run_module(capsys, monkeypatch, args)
    assert out["failed"] and re.search(match, out["msg"]), out["msg"]


def test_module_never_echoes_the_secret(capsys, monkeypatch):
    out = run_module(capsys, monkeypatch, {"targets": [{"host": "198.18.0.2", "port": 0, "kind": "radius",
                                                        "secret": "T0pS3cret"}]})
    assert out["failed"] and "T0pS3cret" not in json.dumps(out)
