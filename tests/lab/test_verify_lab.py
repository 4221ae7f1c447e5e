# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end with the lab's real services: the bundled lab (examples/lab/lab.yml) comes up under its own namespace
prefix with Samba AD DC, smbd/samba-dcerpcd, FreeRADIUS, nginx, dnsmasq (server and relay), strongSwan charon and the
stand-in listeners; every daemon answers its protocol; nothing listens in the machine's own namespace; then
perimeter.yml -> verify.yml green -> a rule deleted by hand in the router -> verify.yml names the broken flow ->
drift.yml -e nap_drift_correct=true -> verify.yml green -> lab down, every process gone.  Then the same lab with
-e nap_lab_windows_vantages=true: its Windows-platform hosts probe through win_nap_port_probe (the PowerShell sender's
parameters executed by the stand-in win_powershell of tests/fake_windows inside each host's namespace), >= 95% of the
checks probed, 0 broken, and a perimeter rule deleted by hand is found through the Windows path.

Root, ip, nft and the Debian packages of hack/install-lab-packages.sh are needed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from labkit import (ROOT, ansible_env, changed_count, host_listeners, namespace_pids, needs_root_and_tools, playbook,
                    probe_from, remove_namespaces, sh, states_by_name)

sys.path.insert(0, os.path.join(ROOT, "tests", "fake_windows"))
import overlay  # noqa: E402  pylint: disable=wrong-import-position,import-error

pytestmark = needs_root_and_tools + [
    pytest.mark.skipif(shutil.which("samba") is None or not os.path.isdir("/usr/share/samba/setup/ad-schema"),
                       reason="the lab services need samba and samba-ad-provision (make setup)"),
    pytest.mark.skipif(shutil.which("freeradius") is None or shutil.which("nginx") is None
                       or shutil.which("dnsmasq") is None or not os.path.exists("/usr/lib/ipsec/charon"),
                       reason="the lab services need freeradius, nginx, dnsmasq and strongswan-charon (make setup)"),
]
PREFIX = "napv%d" % (os.getpid() % 100000)
LAB_PLAYBOOK = os.path.join(ROOT, "playbooks", "lab.yml")
VERIFY = os.path.join(ROOT, "playbooks", "verify.yml")
SECRET = "nap-lab-radius-secret"      # vars.nap_radius_secret of examples/lab/lab.yml
DC, CM, NPS, HRA, CA = "198.18.1.5", "198.18.1.10", "198.18.1.20", "198.18.1.30", "198.18.1.35"
DHCP, IPSEC, WSUS = "198.18.1.40", "198.18.1.45", "198.18.1.50"
DAEMONS = ("samba", "smbd", "samba-dcerpcd", "freeradius", "nginx", "dnsmasq", "charon", "listener.py")
TIMES = {}


def ns(host):
    return "%s-%s" % (PREFIX, host)


def in_ns(host, *args, **kw):
    return sh("ip", "netns", "exec", ns(host), *args, **kw)


def run_python(host, code, *args):
    out = in_ns(host, sys.executable, "-c", code, *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def still_running(pids, wait=5.0):
    """The pids that are still running (not zombies waiting for init to reap them) after up to ``wait`` s."""
    deadline = time.time() + wait
    while True:
        left = []
        for pid in pids:
            try:
                with open("/proc/%d/stat" % pid) as handle:
                    if handle.read().rsplit(")", 1)[1].split()[0] != "Z":
                        left.append(pid)
            except (IOError, OSError, IndexError):
                continue
        if not left or time.time() > deadline:
            return left
        time.sleep(0.1)


class VerifyLab:
    def __init__(self, lab_dir, report_dir):
        self.lab_dir = lab_dir
        self.report_dir = report_dir
        self.inventory = os.path.join(lab_dir, "inventory.yml")
        self.args = ["-e", "nap_lab_prefix=%s" % PREFIX, "-e", "nap_lab_dir=%s" % lab_dir]

    def verify(self, check=True):
        started = time.time()
        out = playbook("-i", self.inventory, VERIFY, "-e", "nap_report_dir=%s" % self.report_dir, check=check)
        TIMES.setdefault("verify", []).append(round(time.time() - started, 1))
        with open(os.path.join(self.report_dir, "verify.json")) as handle:
            return out, json.load(handle)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("napverify")
    env = VerifyLab(str(base / "lab"), str(base / "report"))
    before = host_listeners()
    pids = {}
    try:
        started = time.time()
        playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=present", *env.args)
        TIMES["create"] = round(time.time() - started, 1)
        env.listeners_before = before
        env.listeners_after = host_listeners()
        pids = namespace_pids(PREFIX)
        yield env
    finally:
        try:
            playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=absent", *env.args)
        finally:
            remove_namespaces(PREFIX)
        left = still_running(pids)
        assert not left, "lab processes left after absent: %s" % left
        assert not os.path.exists(os.path.join(env.lab_dir, "srv")), "service files left after absent"
        sys.stderr.write("\nlab timings (s): %s\n" % TIMES)


# ---------------------------------------------------------------------------------------------------------------
# The lab itself
# ---------------------------------------------------------------------------------------------------------------
def test_01_create_is_idempotent(lab):
    # (how long the create took is printed with the timings at the end; no timed assertion: the machine is shared)
    again = playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=present", *lab.args)
    assert changed_count(again) == 0, again.stdout[-3000:]


def test_02_nothing_of_the_lab_listens_in_the_host_namespace(lab):
    new = lab.listeners_after - lab.listeners_before
    ours = [line for line in new if any('"%s"' % d in line or d in line for d in DAEMONS)]
    assert not ours, "lab daemons listen in the machine's own namespace: %s" % ours
    host_netns = os.stat("/proc/self/ns/net").st_ino
    pids = namespace_pids(PREFIX)
    assert len(pids) > 20, pids
    for pid, netns in pids.items():
        try:
            assert os.stat("/proc/%d/ns/net" % pid).st_ino != host_netns, (pid, netns)
        except FileNotFoundError:
            continue
    # every daemon the lab started runs in a lab namespace, from its own directory
    for root, _dirs, files in os.walk(os.path.join(lab.lab_dir, "srv")):
        for name in files:
            if not name.endswith(".pid"):
                continue
            with open(os.path.join(root, name)) as handle:
                pid = int(handle.read().split()[0])
            assert pid in pids, "%s (pid %d) is not in a lab namespace" % (os.path.join(root, name), pid)
    for host in ("dc01", "nps01", "hra01", "ipsec01"):
        routes = in_ns(host, "ip", "route", "show").stdout
        assert "default" not in routes


# ---------------------------------------------------------------------------------------------------------------
# Every daemon answers its protocol (before the perimeter is converged: same zone or open router)
# ---------------------------------------------------------------------------------------------------------------
SMB2_NEGOTIATE = r"""
import socket, struct, sys
hdr = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ16s", 64, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b"\0" * 16)
dialects = [0x0202, 0x0210, 0x0300, 0x0302]
body = struct.pack("<HHHHI16sQ", 36, len(dialects), 1, 0, 0, b"configmgr.nap.lb", 0)
body += b"".join(struct.pack("<H", d) for d in dialects)
msg = hdr + body
s = socket.create_connection((sys.argv[1], 445), 3)
s.sendall(struct.pack(">I", len(msg)) + msg)
data = b""
while len(data) < 4 + 70:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
smb = data[4:]
status = struct.unpack("<I", smb[8:12])[0]
dialect = struct.unpack("<H", smb[64 + 4:64 + 6])[0]
print("%s %d %d 0x%04x" % (smb[:4] == b"\xfeSMB", struct.unpack("<H", smb[12:14])[0], status, dialect))
"""

# A Kerberos AS-REQ for krbtgt without pre-authentication (DER by hand); any KRB-ERROR or AS-REP is the KDC.
KERBEROS_AS_REQ = r"""
import socket, struct, sys
def tlv(tag, body):
    n = len(body)
    if n < 128:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body
def ctx(n, body):
    return tlv(0xa0 + n, body)
def integer(v):
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big"))
def gstr(s):
    return tlv(0x1b, s.encode())
def principal(kind, *names):
    return tlv(0x30, ctx(0, integer(kind)) + ctx(1, tlv(0x30, b"".join(gstr(n) for n in names))))
realm = sys.argv[3]
body = tlv(0x30, ctx(0, tlv(0x03, b"\0\x50\x80\0\0")) + ctx(1, principal(1, "configmgr-nap-probe"))
           + ctx(2, gstr(realm)) + ctx(3, principal(2, "krbtgt", realm))
           + ctx(5, tlv(0x18, b"20370913024805Z")) + ctx(7, integer(123456789))
           + ctx(8, tlv(0x30, integer(18) + integer(17) + integer(23))))
req = tlv(0x6a, tlv(0x30, ctx(1, integer(5)) + ctx(2, integer(10)) + ctx(4, body)))
if sys.argv[2] == "tcp":
    s = socket.create_connection((sys.argv[1], 88), 3)
    s.sendall(struct.pack(">I", len(req)) + req)
    data = s.recv(65535)[4:]
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(req, (sys.argv[1], 88))
    data = s.recv(65535)
print({0x7e: "KRB-ERROR", 0x6b: "AS-REP"}.get(data[0], "other 0x%02x" % data[0]))
"""

HTTPS_GET = r"""
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
port = int(sys.argv[2])
raw = socket.create_connection((sys.argv[1], port), 3)
s = ctx.wrap_socket(raw) if sys.argv[3] == "https" else raw
s.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n", 1)[0].decode(), data.rsplit(b"\r\n\r\n", 1)[-1].decode().strip())
"""


def test_10_samba_dc_answers_ldap_gc_kerberos_smb_dns_cldap(lab):
    out = probe_from(ns("cm01"), [
        {"name": "dns", "host": DC, "port": 53, "kind": "dns", "dns_name": "lab.nap.test"},
        {"name": "cldap", "host": DC, "port": 389, "kind": "cldap"},
        {"name": "ntp", "host": DC, "port": 123, "kind": "ntp"},
    ] + [{"name": "tcp%d" % p, "host": DC, "port": p} for p in (53, 88, 135, 389, 445, 464, 636, 3268, 3269)],
        max_timeout=2)
    assert set(states_by_name(out).values()) == {"open"}, out["results"]
    answers = dict((r["name"], r) for r in out["results"])
    assert "dc01.lab.nap.test" in answers["cldap"]["detail"]
    assert "NOERROR" in answers["dns"]["detail"]
    # LDAP, LDAPS, GC and GC over SSL: the rootDSE of the real directory
    for url in ("ldap://%s" % DC, "ldaps://%s" % DC, "ldap://%s:3268" % DC, "ldaps://%s:3269" % DC):
        res = in_ns("cm01", "env", "LDAPTLS_REQCERT=never", "ldapsearch", "-x", "-LLL", "-o", "nettimeout=5", "-H", url,
                    "-s", "base", "-b", "", "defaultNamingContext", "isGlobalCatalogReady")
        assert res.returncode == 0, (url, res.stderr)
        assert "defaultNamingContext: DC=lab,DC=nap,DC=test" in res.stdout, (url, res.stdout)
        assert "isGlobalCatalogReady: TRUE" in res.stdout
    # Kerberos over TCP and UDP: the KDC answers an AS-REQ (pre-authentication required, or unknown principal)
    for transport in ("tcp", "udp"):
        assert run_python("nps01", KERBEROS_AS_REQ, DC, transport, "LAB.NAP.TEST").strip() == "KRB-ERROR"
    # SMB2 on the DC
    magic, command, status, dialect = run_python("cm01", SMB2_NEGOTIATE, DC).split()
    assert magic == "True" and command == "0" and status == "0", (magic, command, status, dialect)


def test_11_smbd_and_rpc_on_the_site_server_shv_point_and_ca(lab):
    for src, address in (("nps01", CM), ("cm01", NPS)):
        magic, command, status, _dialect = run_python(src, SMB2_NEGOTIATE, address).split()
        assert (magic, command, status) == ("True", "0", "0")
    out = probe_from(ns("hra01"), [{"name": name, "host": address, "port": port} for name, address, port in (
        ("cm01-epmap", CM, 135), ("nps01-epmap", NPS, 135), ("ca01-epmap", CA, 135), ("ca01-dynamic", CA, 49152))],
        max_timeout=2)
    assert set(states_by_name(out).values()) == {"open"}, out["results"]


def test_12_freeradius_answers_its_registered_clients_only(lab):
    for src in ("dhcp01", "hra01", "mgmt01"):
        out = probe_from(ns(src), [
            {"name": "status-auth", "host": NPS, "port": 1812, "kind": "radius", "secret": SECRET},
            {"name": "status-acct", "host": NPS, "port": 1813, "kind": "radius", "secret": SECRET},
            {"name": "access", "host": NPS, "port": 1812, "kind": "radius", "secret": SECRET,
             "radius_request": "access_request"},
        ], max_timeout=2)
        assert states_by_name(out) == {"status-auth": "open", "status-acct": "open", "access": "open"}, out
        codes = dict((r["name"], r["answer"]["code"]) for r in out["results"])
        assert codes == {"status-auth": "Access-Accept", "status-acct": "Accounting-Response",
                         "access": "Access-Reject"}
    # an unregistered client and a wrong secret get silence, as from NPS
    unknown = probe_from(ns("cm01"), [{"name": "x", "host": NPS, "port": 1812, "kind": "radius", "secret": SECRET}],
                         timeout=0.5)
    wrong = probe_from(ns("dhcp01"), [{"name": "x", "host": NPS, "port": 1812, "kind": "radius", "secret": "wrong"}],
                       timeout=0.5)
    assert states_by_name(unknown) == {"x": "open|filtered"} and states_by_name(wrong) == {"x": "open|filtered"}


def test_13_nginx_serves_http_and_https(lab):
    assert run_python("cla01", HTTPS_GET, HRA, "443", "https").split()[:2] == ["HTTP/1.1", "200"]
    assert "nap-lab hra01" in run_python("cm01", HTTPS_GET, HRA, "80", "http")
    for port, scheme in ((80, "http"), (443, "https"), (8530, "http")):
        assert "nap-lab wsus01" in run_python("clb01", HTTPS_GET, WSUS, str(port), scheme)


def test_14_dnsmasq_offers_through_the_relay(lab):
    for client, relay, subnet in (("cla01", "198.18.2.1", "198.18.2."), ("clb01", "198.18.3.1", "198.18.3.")):
        out = probe_from(ns(client), [{"name": "dhcp", "host": relay, "port": 67, "kind": "dhcp"}], max_timeout=2)
        result = out["results"][0]
        assert result["state"] == "open", result
        assert result["answer"]["yiaddr"].startswith(subnet) and result["answer"]["server_id"] == DHCP
    # the relay agent itself (DHCP-RELAY), beside the relay daemon that holds UDP 67 in the router
    out = probe_from(ns("rtr01"), [{"name": "relay", "host": DHCP, "port": 67, "kind": "dhcp_relay"}], max_timeout=2)
    assert out["results"][0]["state"] == "open", out["results"]
    assert out["results"][0]["answer"]["yiaddr"].startswith("198.18.1.")


def test_15_charon_answers_ike(lab):
    out = probe_from(ns("cla01"), [{"name": "ike", "host": IPSEC, "port": 500, "kind": "ike"},
                                   {"name": "natt", "host": IPSEC, "port": 4500, "kind": "ike"},
                                   {"name": "ikev1", "host": IPSEC, "port": 500, "kind": "ike",
                                    "ike_version": "ikev1"}], max_timeout=2)
    assert states_by_name(out) == {"ike": "open", "natt": "open", "ikev1": "open"}, out["results"]


# ---------------------------------------------------------------------------------------------------------------
# perimeter -> verify green -> hand-deleted rule -> verify names it -> drift corrects -> verify green
# ---------------------------------------------------------------------------------------------------------------
def test_20_perimeter_then_verify_is_green(lab):
    playbook("-i", lab.inventory, os.path.join(ROOT, "playbooks", "perimeter.yml"))
    out, report = lab.verify()
    summary = report["summary"]
    assert summary["ok"] and summary["verdicts"]["broken"] == 0, out.stdout[-3000:]
    entries = report["entries"]
    for key in ("flow", "vantage", "target", "expected", "observed", "time"):
        assert all(key in e for e in entries), key
    ok_flows = set(e["flow"] for e in entries if e["check"] == "flow" and e["verdict"] == "ok")
    assert {"NAP-AD-WRITE", "NAP-GC-READ", "NAP-SHV-INSTALL", "NAP-SHV-CONFIG", "NAP-SHV-STATUS", "AD-KERBEROS",
            "AD-DNS", "AD-CLDAP", "AD-TIME", "DHCP-CLIENT", "DHCP-RELAY", "DHCP-RADIUS", "IPSEC-HRA",
            "IPSEC-HRA-RADIUS", "IPSEC-HRA-CA", "IPSEC-IKE", "REMEDIATION", "MGMT-WINRM", "MGMT-SSH"} <= ok_flows
    probes = dict(((e["flow"], e["vantage"], e["address"], e["protocol"], e["port"]), e) for e in entries
                  if e["check"] != "listener")
    # protocol-aware probes from the right vantages
    assert probes[("DHCP-RADIUS", "dhcp01", NPS, "udp", 1812)]["probe"] == "radius"
    assert probes[("DHCP-CLIENT", "cla01", "198.18.2.1", "udp", 67)]["probe"] == "dhcp"
    assert probes[("DHCP-RELAY", "rtr01", DHCP, "udp", 67)]["probe"] == "dhcp_relay"
    assert probes[("IPSEC-IKE", "clb01", IPSEC, "udp", 4500)]["probe"] == "ike"
    assert probes[("AD-CLDAP", "cm01", DC, "udp", 389)]["probe"] == "cldap"
    assert probes[("MGMT-WINRM", "mgmt01", CM, "tcp", 5986)]["verdict"] == "ok"
    # negative probes across the router: the unchosen HTTP of the HRA, the unchosen custom WSUS port, unplanned
    # ports; the unchosen LDAP (389) of NAP-AD-WRITE is not probed: site server and DC share a zone
    assert probes[("IPSEC-HRA", "cla01", HRA, "tcp", 80)]["check"] == "unchosen"
    assert probes[("IPSEC-HRA", "cla01", HRA, "tcp", 80)]["observed"] in ("filtered", "closed")
    assert probes[("REMEDIATION", "cla01", WSUS, "tcp", 8530)]["verdict"] == "ok"
    assert probes[("UNPLANNED", "cla01", DC, "tcp", 389)]["verdict"] == "ok"
    assert probes[("UNPLANNED", "mgmt01", HRA, "tcp", 443)]["verdict"] == "ok"
    assert not [k for k in probes if k[0] == "NAP-AD-WRITE" and k[4] == 389]
    # listeners: the real daemons
    listeners = dict(((e["target"], e["protocol"], e["port"]), e["verdict"]) for e in entries if e["check"] == "listener")
    assert listeners[("dc01", "tcp", 3269)] == "ok" and listeners[("nps01", "udp", 1812)] == "ok"
    assert listeners[("dhcp01", "udp", 67)] == "ok" and listeners[("hra01", "tcp", 443)] == "ok"
    assert set(listeners.values()) == {"ok"}
    # the ESP half of IPSEC-IKE cannot be probed and says so (unprobeable: it never fails the run)
    # ESP has no ports; ipsec01's protected https travels inside ESP (nap_ipsec_protected_services in the lab)
    unprobeable = sorted((e["flow"], e["detail"]) for e in entries if e["verdict"] == "unprobeable")
    assert unprobeable == sorted([("IPSEC-IKE", "IP protocol esp has no ports to probe")] * 2 + [
        ("IPSEC-PROTECTED", "carried inside IPsec: a probe in the clear proves nothing about the protected path")] * 2)
    assert not [e for e in entries if e["verdict"] == "not probed"]
    # Kerberos over TCP and UDP: an AS-REQ answered by a KRB-ERROR, not a handshake or an unconfirmed silence
    for transport in ("tcp", "udp"):
        kerberos = probes[("AD-KERBEROS", "cm01", DC, transport, 88)]
        assert (kerberos["probe"], kerberos["verdict"]) == ("kerberos", "ok"), kerberos
        assert kerberos["detail"].startswith("Kerberos KRB-ERROR"), kerberos
    assert_dependency_flows_ok(entries)
    with open(os.path.join(lab.report_dir, "verify.md")) as handle:
        text = handle.read()
    assert "**Everything as planned.**" in text and "| ok | IPSEC-HRA |" in text


# The dependency flows of issue #18 the lab has a service for: Samba AD DC (LDAP, LDAPS, GC, Kerberos, kpasswd, SMB,
# RPC endpoint mapper, DNS, CLDAP, NTP), the DC as the clients' DNS server, and the HRA's global catalog.
DEPENDENCY_FLOWS = ("AD-LDAP", "AD-KERBEROS", "AD-DNS", "AD-CLDAP", "AD-TIME", "AD-SMB", "AD-RPC", "CLIENT-DNS",
                    "IPSEC-HRA-GC")


def assert_dependency_flows_ok(entries):
    flows = [e for e in entries if e["check"] == "flow"]
    planned = set(e["flow"] for e in flows)
    for flow in DEPENDENCY_FLOWS:
        assert flow in planned, "flow %s is not in the lab's plan (planned: %s)" % (flow, sorted(planned))
        mine = [e for e in flows if e["flow"] == flow]
        assert mine and all(e["verdict"] == "ok" for e in mine), [
            (e["vantage"], e["address"], e["protocol"], e["port"], e["verdict"], e["detail"]) for e in mine
            if e["verdict"] != "ok"]


def hand_delete(rule):
    text = in_ns("rtr01", "nft", "-a", "list", "chain", "inet", "configmgr_nap", "forward").stdout
    handles = [line.rsplit("handle", 1)[1].strip() for line in text.splitlines() if '"%s|' % rule in line]
    assert handles, text
    out = in_ns("rtr01", "nft", "delete", "rule", "inet", "configmgr_nap", "forward", "handle", handles[0])
    assert out.returncode == 0, out.stderr


def test_21_a_rule_deleted_by_hand_breaks_verify_naming_the_flow(lab):
    hand_delete("IPSEC-HRA-TCP-FWD")
    out, report = lab.verify(check=False)
    assert out.returncode != 0
    assert "flows: IPSEC-HRA)" in out.stdout
    assert "IPSEC-HRA 198.18.2.0/24 -> hra01 (198.18.1.30) tcp/443 from cla01: expected open, observed filtered" \
        in out.stdout
    assert report["summary"]["broken_flows"] == ["IPSEC-HRA"]
    broken = [(e["flow"], e["vantage"], e["port"]) for e in report["entries"] if e["verdict"] == "broken"]
    assert sorted(broken) == [("IPSEC-HRA", "cla01", 443), ("IPSEC-HRA", "clb01", 443)]
    html_report_shows_the_broken_flow_first(lab, report)


def html_report_shows_the_broken_flow_first(lab, report):
    """The lab's own verify.html, opened in headless Chromium: the counts at the top, then the broken flow."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make setup installs it: hack/install-lab-packages.sh)")
    page = os.path.join(lab.report_dir, "verify.html")
    profile = os.path.join(lab.report_dir, "chromium-profile")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--user-data-dir=%s" % profile, "--dump-dom", "file://" + page],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False,
                          env=dict(os.environ, HOME=lab.report_dir))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    dom = proc.stdout.decode("utf-8")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    counts = report["summary"]["verdicts"]
    assert "%d broken" % counts["broken"] in text and "%d ok" % counts["ok"] in text
    assert "<script" not in dom
    first_ok = text.find(" ok ", text.index("IPSEC-HRA"))
    assert text.index("%d broken" % counts["broken"]) < text.index("IPSEC-HRA") < first_ok


def test_22_drift_corrects_and_verify_is_green_again(lab):
    out = playbook("-i", lab.inventory, os.path.join(ROOT, "playbooks", "drift.yml"), "--limit", "rtr01",
                   "-e", "nap_drift_correct=true")
    assert "rtr01: corrected 1 change(s)" in out.stdout
    out, report = lab.verify()
    assert report["summary"]["ok"], out.stdout[-3000:]


def test_22b_the_demo_playbook_of_make_demo_runs_on_the_lab(lab):
    """playbooks/lab_demo.yml (what `make demo` runs): from an unconverged router every flow connects; after the
    converge from the plan's handle only the planned ones do, and verify is green. nap_lab_demo_keep leaves the
    table in place for the tests after this one."""
    out = playbook("-i", lab.inventory, os.path.join(ROOT, "playbooks", "lab_demo.yml"), "-e", "nap_lab_demo_keep=true",
                   "-e", "nap_report_dir=%s" % lab.report_dir)
    for line in ("before: client to DC LDAP cla01 -> dc01 TCP 389 (not planned): CONNECTED",
                 "after: client to DC LDAP cla01 -> dc01 TCP 389 (not planned): BLOCKED",
                 "after: IPSEC-HRA https cla01 -> hra01 TCP 443 (planned): CONNECTED"):
        assert line in out.stdout, out.stdout[-3000:]
    assert re.search(r"verify: \d+ checks, \d+ ok, 0 broken", out.stdout), out.stdout[-3000:]


def test_23_an_unplanned_port_opened_by_hand_breaks_verify(lab):
    # a rule that lets the clients reach the DC's LDAP: the negative probes catch it
    out = in_ns("rtr01", "nft", "insert", "rule", "inet", "configmgr_nap", "forward", "ip", "daddr", DC, "tcp", "dport",
                "389", "accept")
    assert out.returncode == 0, out.stderr
    out, report = lab.verify(check=False)
    assert out.returncode != 0
    broken = sorted((e["flow"], e["vantage"], e["port"]) for e in report["entries"] if e["verdict"] == "broken")
    assert broken == [("UNPLANNED", "cla01", 389), ("UNPLANNED", "clb01", 389), ("UNPLANNED", "mgmt01", 389)]
    assert "UNPLANNED unplanned zone clients-a -> dc01 (198.18.1.5) tcp/389 from cla01: expected blocked, " \
        "observed open" in out.stdout
    playbook("-i", lab.inventory, os.path.join(ROOT, "playbooks", "perimeter.yml"))


# ---------------------------------------------------------------------------------------------------------------
# The Windows path: the lab's Windows-platform hosts probe through win_nap_port_probe
# ---------------------------------------------------------------------------------------------------------------
def windows_verify(lab, *extra, **kw):
    """verify.yml with the real ansible.windows, except win_powershell: the stand-in (tests/fake_windows/overlay.py)."""
    collections = overlay.build(os.path.join(lab.report_dir, "..", "overlay"))
    env = ansible_env()
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([collections, env["ANSIBLE_COLLECTIONS_PATH"]])
    started = time.time()
    out = sh(os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", lab.inventory, VERIFY,
             "-e", "nap_report_dir=%s" % lab.report_dir, *extra, env=env, cwd=ROOT)
    TIMES.setdefault("verify-windows", []).append(round(time.time() - started, 1))
    if kw.get("check", True):
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    with open(os.path.join(lab.report_dir, "verify.json")) as handle:
        return out, json.load(handle)


def test_24_windows_vantages_probe_through_the_sender_green(lab):
    playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=present", "-e", "nap_lab_windows_vantages=true", *lab.args)
    with open(lab.inventory) as handle:
        text = handle.read()
    assert "nap_lab_windows_vantages: true" in text
    # DHCP-CLIENT is the one flow a Windows vantage cannot probe (UDP 68): warn, so the green run can show the rest
    out, report = windows_verify(lab, "-e", "nap_verify_unprobed=warn")
    summary = report["summary"]
    entries = report["entries"]
    assert summary["verdicts"]["broken"] == 0, [e for e in entries if e["verdict"] == "broken"][:5]
    assert summary["probed_share"] >= 0.95, summary
    checks = [e for e in entries if e["verdict"] != "unprobeable"]
    probed = [e for e in checks if e["verdict"] in ("ok", "broken", "unconfirmed")]
    assert len(probed) >= 0.95 * len(checks), (len(probed), len(checks))
    # the Windows hosts probed through the sender, the router and its relay through nap_port_probe
    runners = dict((e["vantage"], e.get("runner")) for e in entries if e["check"] != "listener" and e.get("vantage"))
    for host in ("cm01", "nps01", "hra01", "dhcp01", "cla01", "clb01", "mgmt01"):
        assert runners[host] == "win_nap_port_probe", (host, runners.get(host))
    assert runners["rtr01"] == "nap_port_probe"
    probes = dict(((e["flow"], e["vantage"], e["address"], e["protocol"], e["port"]), e) for e in entries
                  if e["check"] != "listener" and e.get("vantage"))
    # protocol-aware exchanges through the sender, judged by the same classifiers as on Linux
    assert probes[("AD-CLDAP", "cm01", DC, "udp", 389)]["detail"].startswith("CLDAP rootDSE entry of dc01")
    assert probes[("DHCP-RADIUS", "dhcp01", NPS, "udp", 1812)]["detail"] == \
        "RADIUS Access-Accept, authenticated with the shared secret"
    assert probes[("IPSEC-IKE", "clb01", IPSEC, "udp", 4500)]["verdict"] == "ok"
    for transport in ("tcp", "udp"):
        assert probes[("AD-KERBEROS", "nps01", DC, transport, 88)]["detail"].startswith("Kerberos KRB-ERROR")
    assert probes[("IPSEC-HRA", "cla01", HRA, "tcp", 80)]["verdict"] == "ok"            # unchosen: blocked
    assert probes[("UNPLANNED", "cla01", DC, "tcp", 389)]["verdict"] == "ok"
    assert_dependency_flows_ok(entries)
    # what was not probed is named, with the reason
    unprobed = [(e["flow"], e["detail"]) for e in entries if e["verdict"] == "not probed"]
    assert unprobed and set(f for f, _d in unprobed) == {"DHCP-CLIENT"}, unprobed
    assert all("cannot bind UDP 67/68" in d for _f, d in unprobed)
    assert "not probed (flows: DHCP-CLIENT)" in out.stdout


def test_25_a_rule_deleted_by_hand_is_found_through_the_windows_path(lab):
    hand_delete("IPSEC-HRA-TCP-FWD")
    out, report = windows_verify(lab, check=False)
    assert out.returncode != 0
    assert "flows: IPSEC-HRA)" in out.stdout
    assert "IPSEC-HRA 198.18.2.0/24 -> hra01 (198.18.1.30) tcp/443 from cla01: expected open, observed filtered" \
        in out.stdout
    broken = sorted((e["flow"], e["vantage"], e["runner"], e["port"]) for e in report["entries"]
                    if e["verdict"] == "broken")
    assert broken == [("IPSEC-HRA", "cla01", "win_nap_port_probe", 443), ("IPSEC-HRA", "clb01", "win_nap_port_probe", 443)]
    # nap_verify_unprobed defaults to fail: the DHCP checks no vantage could make are named too
    assert "check(s) not probed (flows: DHCP-CLIENT; nap_verify_unprobed: fail)" in out.stdout
    playbook("-i", lab.inventory, os.path.join(ROOT, "playbooks", "perimeter.yml"))
    playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=present", *lab.args)      # back to the Linux path


def test_30_a_half_built_lab_is_removed_with_every_process(tmp_path):
    """A create that fails half way (nginx cannot bind a port the listener holds) leaves daemons running; absent
    kills them all and removes their files."""
    prefix = PREFIX + "h"
    lab_dir = str(tmp_path / "half")
    definition = str(tmp_path / "half.yml")
    with open(definition, "w") as handle:
        handle.write("zones: {a: {index: 201, clients: true}, b: {index: 202}}\n"
                     "routers: {r1: {zones: [a, b], services: [dhcp_relay], listen: [22]}}\n"
                     "hosts:\n"
                     "  srv: {zone: b, id: 5, services: [dhcp_server, charon, ntp]}\n"
                     "  web: {zone: b, id: 6, listen: [80], services: [nginx]}\n")
    args = ["-e", "nap_lab_prefix=%s" % prefix, "-e", "nap_lab_dir=%s" % lab_dir, "-e",
            "nap_lab_definition=%s" % definition, "-e", "nap_lab_base_subnet=198.19.0.0/16"]
    try:
        out = playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=present", *args, check=False)
        assert out.returncode != 0 and "nginx" in out.stdout
        pids = namespace_pids(prefix)
        names = set()
        for pid in pids:
            try:
                names.add(os.path.basename(os.readlink("/proc/%d/exe" % pid)))
            except OSError:
                pass
        assert {"dnsmasq", "charon"} <= names, names
        playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=absent", *args)
        assert not still_running(pids)
        assert not [line for line in sh("ip", "netns", "list").stdout.splitlines() if line.startswith(prefix + "-")]
        assert not os.path.exists(lab_dir)
    finally:
        remove_namespaces(prefix)
