# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Windows probe sender (probe_sender.ps1) held against the Python side: its parameters are what the action
plugin passes, the probe fields it reads are what remote_requests builds, the reply fields and statuses it writes are
what remote_results judges, and the test stand-in (tests/fake_windows) speaks the same format.  The replies are
judged by the same classifiers as nap_port_probe's (no packets here: the bytes are built by hand)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import struct

import pytest

from ansible_collections.configmgr.nap.plugins.action import win_nap_port_probe as action
from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_codecs, probe_engine, probe_remote

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))))
STAND_IN = os.path.join(ROOT, "tests", "fake_windows", "ansible_collections", "ansible", "windows", "plugins",
                        "modules", "win_powershell.py")


def script():
    return action.sender_script()


def param_block(text):
    block = re.search(r"^param \((.*?)^\)", text, re.S | re.M).group(1)
    return re.findall(r"\]\s*\$(\w+)", block)


def targets():
    return [{"name": "tcp", "host": "198.18.1.5", "port": 445},
            {"name": "krb-tcp", "host": "198.18.1.5", "port": 88, "protocol": "tcp", "kind": "kerberos",
             "kerberos_realm": "lab.nap.test"},
            {"name": "krb-udp", "host": "198.18.1.5", "port": 88, "protocol": "udp"},
            {"name": "dns", "host": "198.18.1.5", "port": 53, "kind": "dns", "dns_name": "lab.nap.test"},
            {"name": "radius", "host": "198.18.1.20", "port": 1812, "kind": "radius", "secret": "s3cret"},
            {"name": "dhcp", "host": "198.18.1.40", "port": 67, "kind": "dhcp"},
            {"name": "silent", "host": "198.18.1.5", "port": 9, "protocol": "udp", "timeout": 0.2}]


def test_the_sender_is_the_collections_file_and_carries_its_marker():
    assert action.SENDER_PATH.endswith(os.path.join("plugins", "module_utils", "nap", "powershell", "probe_sender.ps1"))
    text = script()
    assert action.SENDER_MARKER in text
    assert text.startswith("[CmdletBinding(SupportsShouldProcess)]")   # else win_powershell skips it in check mode
    assert "ConvertTo-Json -InputObject $out -Depth 5 -Compress" in text   # ONE JSON string in $Ansible.Result
    with open(STAND_IN) as handle:
        assert 'SENDER_MARKER = "%s"' % action.SENDER_MARKER in handle.read()


def test_parameters_match_the_param_block():
    probes, wire = probe_remote.remote_requests(targets(), timeout=1)
    params = action.sender_parameters(wire, 16, 9.5)
    assert param_block(script()) == list(params) == ["ProbesJson", "Concurrency", "DeadlineMs", "MinPsVersion"]
    assert params["DeadlineMs"] == 9500 and params["Concurrency"] == 16 and params["MinPsVersion"] == "5.1"
    sent = json.loads(params["ProbesJson"])
    assert len(sent) == len(probes) - 1                       # the DHCP probe is not sent
    assert [w for w in wire if w is None] == [None] and wire[5] is None


def test_every_probe_field_the_sender_reads_is_built_and_used():
    _probes, wire = probe_remote.remote_requests(targets(), timeout=1)
    read = set(re.findall(r"\$(?:Spec|State\.Spec|state\.Spec)\.(\w+)", script()))
    built = set(k for w in wire if w for k in w)
    assert read == built == {"Id", "Protocol", "Address", "Port", "Mode", "Send", "Framing", "TimeoutMs"}


def test_reply_fields_and_statuses_are_what_the_controller_judges():
    text = script()
    fields = re.search(r"\$results\.Add\(\[ordered\]@\{(.*?)\}\)", text, re.S).group(1)
    assert re.findall(r"(\w+) = ", fields) == ["Id", "Status", "Replies", "TimeMs", "Error"]
    emitted = set(re.findall(r"-Status '(\w+)'", text)) | set(re.findall(r"return '(\w+)'", text)) \
        | set(re.findall(r"\{ '(\w+)' \} else \{ '(\w+)' \}", text)[0])
    assert emitted == set(probe_remote.REMOTE_STATUSES)
    with open(STAND_IN) as handle:
        stand_in = handle.read()
    assert set(re.findall(r'done\("(\w+)"', stand_in)) | set(re.findall(r'return "(\w+)"', stand_in)) \
        | {"replied", "silent"} == set(probe_remote.REMOTE_STATUSES)


def _krb_error():
    tlv, integer = probe_codecs.ber_tlv, probe_codecs.ber_integer
    body = tlv(0xA0, integer(5)) + tlv(0xA1, integer(30)) + tlv(0xA6, integer(25)) + tlv(0xA9, tlv(0x1B, b"LAB.NAP.TEST"))
    return tlv(0x7E, tlv(0x30, body))


def b64(data):
    return base64.b64encode(data).decode()


def test_replies_are_judged_like_nap_port_probe_does():
    probes, wire = probe_remote.remote_requests(targets(), timeout=1, max_timeout=2)
    by_name = dict((p.target.name, (i, p, w)) for i, (p, w) in enumerate(zip(probes, wire)))
    dns_query = base64.b64decode(by_name["dns"][2]["Send"][0])
    dns_reply = bytearray(dns_query)
    dns_reply[2] |= 0x80                                      # QR: a response, same id
    radius_probe = by_name["radius"][1]
    radius_reply = probe_codecs.build_radius_response(probe_codecs.ACCESS_ACCEPT, radius_probe.packet, b"s3cret")
    error = _krb_error()
    replies = [
        {"Id": by_name["tcp"][0], "Status": "open", "Replies": [], "TimeMs": 1.25, "Error": ""},
        {"Id": by_name["krb-tcp"][0], "Status": "replied", "Replies": [b64(struct.pack("!I", len(error)) + error)],
         "TimeMs": 2},
        {"Id": by_name["krb-udp"][0], "Status": "replied", "Replies": [b64(b"junk"), b64(error)], "TimeMs": 2},
        {"Id": by_name["dns"][0], "Status": "replied", "Replies": [b64(bytes(dns_reply))], "TimeMs": 3},
        {"Id": by_name["radius"][0], "Status": "replied", "Replies": [b64(radius_reply)], "TimeMs": 4},
        {"Id": by_name["silent"][0], "Status": "timeout", "Replies": [], "TimeMs": 200},
    ]
    results = dict((r["name"], r) for r in probe_remote.remote_results(probes, wire, replies))
    assert (results["tcp"]["state"], results["tcp"]["detail"], results["tcp"]["time_ms"]) == (
        "open", "TCP handshake completed", 1.25)
    assert results["krb-tcp"]["state"] == "open" and results["krb-tcp"]["kind"] == "kerberos"
    assert results["krb-tcp"]["detail"] == "Kerberos KRB-ERROR KDC_ERR_PREAUTH_REQUIRED (realm LAB.NAP.TEST)"
    assert results["krb-udp"]["state"] == "open"                 # the junk datagram is no answer, the error is
    assert results["dns"]["detail"].startswith("DNS response NOERROR")
    assert results["radius"]["detail"] == "RADIUS Access-Accept, authenticated with the shared secret"
    assert results["silent"]["state"] == "open|filtered" and "no answer within 200 ms" in results["silent"]["detail"]
    assert results["dhcp"]["state"] == "error" and "UDP 68" in results["dhcp"]["detail"]


@pytest.mark.parametrize("protocol,status,state", [
    ("tcp", "refused", "closed"), ("tcp", "timeout", "filtered"), ("tcp", "unreachable", "filtered"),
    ("udp", "refused", "closed"), ("udp", "timeout", "open|filtered"), ("udp", "unreachable", "filtered"),
    ("tcp", "error", "error"), ("udp", "bogus", "error"),
])
def test_statuses_map_to_the_engines_states(protocol, status, state):
    probes, wire = probe_remote.remote_requests([{"host": "198.18.1.5", "port": 53, "protocol": protocol}], timeout=1)
    (result,) = probe_remote.remote_results(probes, wire, [{"Id": 0, "Status": status, "TimeMs": 5, "Error": "x"}])
    assert result["state"] == state


def test_a_kerberos_tcp_handshake_without_an_answer_is_unexpected_and_a_missing_reply_an_error():
    probes, wire = probe_remote.remote_requests([
        {"host": "198.18.1.5", "port": 88, "protocol": "tcp", "kind": "kerberos"},
        {"host": "198.18.1.5", "port": 445}], timeout=1)
    results = probe_remote.remote_results(probes, wire, [{"Id": 0, "Status": "silent", "TimeMs": 1000}])
    assert results[0]["state"] == "unexpected" and "no kerberos answer within 1000 ms" in results[0]["detail"]
    assert results[1]["state"] == "error" and "returned no result" in results[1]["detail"]


def test_bad_targets_are_refused_before_anything_is_sent():
    with pytest.raises(probe_engine.ProbeError, match="kerberos_realm"):
        probe_remote.remote_requests([{"host": "198.18.1.5", "port": 88, "kind": "kerberos",
                                       "kerberos_realm": "has space"}])
    with pytest.raises(probe_engine.ProbeError, match="port 0 is out of range"):
        probe_remote.remote_requests([{"host": "198.18.1.5", "port": 0}])


def test_the_stand_in_refuses_an_old_powershell_as_the_sender_does(monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location("fake_win_powershell", STAND_IN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("FAKE_WINDOWS_PS_VERSION", "3.0")
    out = module.run_sender({"ProbesJson": "[]", "MinPsVersion": "5.1"})
    assert out == {"sender": 1, "ps_version": "3.0", "supported": False, "results": [],
                   "error": "cannot run the probe (PowerShell 3.0); it needs PowerShell 5.1"}
    assert "cannot run the probe (PowerShell $($PSVersionTable.PSVersion)); it needs PowerShell $MinPsVersion" in script()
