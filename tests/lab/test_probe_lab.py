# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real packets for nap_port_probe: two network namespaces joined by one veth, nothing else.

Needs root, ip (iproute2) and nft; skipped otherwise. Nothing here touches the machine's own
namespace: the veth is created directly inside the two namespaces (no leg in the host), the
namespaces have no route out, the probes run from inside the vantage namespace and the responders
inside the target namespace (``ip netns exec``), and the namespaces are deleted at the end, even
on failure.

    vantage  <prefix>a  198.18.250.1/24   (probes, the DHCP relay and client sockets)
    target   <prefix>b  198.18.250.2  responders of every kind           -> open
                        198.18.250.3  nothing bound                       -> closed (RST / ICMP port unreachable)
                        198.18.250.4  responders, but nft drops           -> filtered / open|filtered
                        198.18.250.5  nft rejects with admin-prohibited   -> filtered (ICMP)

The responders are small Python servers started from this file (``python test_probe_lab.py
--responders CONFIG``): they answer each protocol correctly (RADIUS replies signed with the shared
secret, DHCP offers and acks, ISAKMP notifies, DNS, CLDAP, NTP). A second set of tests uses a real
dnsmasq (DHCP and DNS) when it is installed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
PREFIX = "npb%d" % (os.getpid() % 1000000)
NS_A = PREFIX + "-a"
NS_B = PREFIX + "-b"
VANTAGE = "198.18.250.1"
OPEN = "198.18.250.2"
CLOSED = "198.18.250.3"
DROP = "198.18.250.4"
REJECT = "198.18.250.5"
SECRET = "lab-secret"
PYTHON = sys.executable


# ===========================================================================
# Responders (run inside the target namespace as a separate process)
# ===========================================================================
def _responder_main(config_path):
    sys.path.insert(0, os.environ["NAP_COLLECTIONS_ROOT"])
    from ansible_collections.configmgr.nap.plugins.module_utils.nap.probe_codecs import (
        ACCESS_ACCEPT, ACCESS_REJECT, ACCOUNTING_RESPONSE, DHCPACK, DHCPDISCOVER, DHCPINFORM, DHCPOFFER, DHCP_MAGIC,
        NATT_MARKER, STATUS_SERVER, ber_integer, ber_octets, ber_tlv, build_radius_response, encode_dhcp_options,
        parse_cldap, parse_dhcp, verify_radius_request)

    with open(config_path) as handle:
        config = json.load(handle)
    sel = selectors.DefaultSelector()
    for service in config["services"]:
        kind, address, port = service["kind"], service["address"], service["port"]
        if kind == "tcp":
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if kind == "dhcp":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind((address, port))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, service)
    print("ready", flush=True)

    def answer(service, data):
        kind, port = service["kind"], service["port"]
        if kind == "echo":
            return data
        if kind == "radius":
            if not verify_radius_request(data, SECRET.encode()):
                return None                       # like NPS: unknown client or wrong secret -> silence
            code = bytearray(data)[0]
            if code == STATUS_SERVER:
                reply = ACCOUNTING_RESPONSE if port in (1813, 1646) else ACCESS_ACCEPT
                return build_radius_response(reply, data, SECRET.encode(), [(18, b"lab radius alive")])
            return build_radius_response(ACCESS_REJECT, data, SECRET.encode(), [(18, b"no such user")])
        if kind == "ike":
            natt = port == 4500
            if natt:
                data = data[4:]
            spi, version = data[:8], bytearray(data)[17] >> 4
            if version == 1:
                notify = struct.pack("!BBHIBBH", 0, 0, 12, 1, 1, 0, 14)
                out = spi + os.urandom(8) + bytes([11, 0x10, 5, 0]) + b"\0" * 4 + struct.pack("!I", 40) + notify
            else:
                notify = struct.pack("!BBHBBH", 0, 0, 8, 0, 0, 14)
                out = spi + b"\0" * 8 + bytes([41, 0x20, 34, 0x20]) + b"\0" * 4 + struct.pack("!I", 36) + notify
            return (NATT_MARKER + out) if natt else out
        if kind == "dns":
            reply = bytearray(data)
            reply[2] = 0x80 | (reply[2] & 0x79)
            reply[3] = 0x05                       # REFUSED: no recursion, no zones
            return bytes(reply)
        if kind == "cldap":
            message_id = parse_cldap(data)[0]["message_id"]
            attr = ber_tlv(0x30, ber_octets("dnsHostName") + ber_tlv(0x31, ber_octets("dc-lab.nap.example")))
            entry = ber_tlv(0x30, ber_integer(message_id) + ber_tlv(0x64, ber_octets("") + ber_tlv(0x30, attr)))
            done = ber_tlv(0x30, ber_integer(message_id)
                           + ber_tlv(0x65, ber_integer(0, 0x0A) + ber_octets("") + ber_octets("")))
            return entry + done
        if kind == "ntp":
            return bytes([0x24, 2]) + b"\0" * 22 + data[40:48] + b"\0" * 16
        return None

    def dhcp(sock, service, data, peer):
        request = parse_dhcp(data)
        if request["op"] != 1:
            return
        mtype = {DHCPDISCOVER: DHCPOFFER, DHCPINFORM: DHCPACK}.get(request["message_type"])
        if mtype is None:
            return
        yiaddr = "198.18.250.100" if mtype == DHCPOFFER else "0.0.0.0"
        reply = bytearray(data[:236])
        reply[0] = 2
        reply[16:20] = socket.inet_aton(yiaddr)
        options = [(53, bytes([mtype])), (54, socket.inet_aton(service["address"])), (1, socket.inet_aton("255.255.255.0"))]
        if mtype == DHCPOFFER:
            options.append((51, struct.pack("!I", 3600)))
        reply = bytes(reply) + DHCP_MAGIC + encode_dhcp_options(options)
        if request["giaddr"] != "0.0.0.0":
            dest = (request["giaddr"], 67)
        elif request["ciaddr"] != "0.0.0.0":
            dest = (request["ciaddr"], 68)
        elif request["flags"] & 0x8000:
            dest = ("255.255.255.255", 68)        # RFC 2131 4.1: broadcast to a client without an address
        else:
            dest = peer
        sock.sendto(reply, dest)

    while True:
        for key, _mask in sel.select():
            sock, service = key.fileobj, key.data
            if service["kind"] == "tcp":
                try:
                    conn, _peer = sock.accept()
                    conn.close()
                except OSError:
                    pass
                continue
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                continue
            try:
                if service["kind"] == "dhcp":
                    dhcp(sock, service, data, peer)
                    continue
                reply = answer(service, data)
                if reply is not None:
                    sock.sendto(reply, peer)
            except Exception as exc:  # keep serving; the test sees the missing answer
                print("responder error %s: %s" % (service, exc), file=sys.stderr, flush=True)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--responders":
    _responder_main(sys.argv[2])
    sys.exit(0)

import pytest  # noqa: E402  (the responder mode above runs without pytest)
from labkit import (ROOT, ansible_env, collections_root, in_netns, lab_namespaces,  # noqa: E402
                    needs_root_and_tools, probe_from, probe_states, remove_namespaces, sh)

pytestmark = needs_root_and_tools

# Every service the responders run on OPEN, and again on DROP (where nft drops it).
SERVICES = [
    ("tcp", 8080), ("echo", 9999), ("udp-silent", 9998), ("radius", 1812), ("radius", 1813),
    ("ike", 500), ("ike", 4500), ("echo", 7), ("dns", 53), ("cldap", 389), ("ntp", 123), ("dhcp", 67),
]
NFT_RULES = """
table inet probe_lab {
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr %s drop
        ip daddr %s reject with icmpx admin-prohibited
    }
}
""" % (DROP, REJECT)


def read_host_icmp_ratelimit():
    with open("/proc/sys/net/ipv4/icmp_ratelimit") as handle:
        return handle.read().strip()


class ProbeLab:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def up(self):
        sh("ip", "netns", "add", NS_A, check=True)
        sh("ip", "netns", "add", NS_B, check=True)
        # the veth is born inside the two namespaces: no leg in the host's namespace
        sh("ip", "link", "add", "name", PREFIX + "va", "netns", NS_A, "type", "veth",
           "peer", "name", PREFIX + "vb", "netns", NS_B, check=True)
        for ns, ifname, addresses in ((NS_A, PREFIX + "va", [VANTAGE]),
                                      (NS_B, PREFIX + "vb", [OPEN, CLOSED, DROP, REJECT])):
            sh("ip", "-n", ns, "link", "set", "lo", "up", check=True)
            for address in addresses:
                sh("ip", "-n", ns, "address", "add", address + "/24", "dev", ifname, check=True)
            sh("ip", "-n", ns, "link", "set", ifname, "up", check=True)
        for ns in (NS_A, NS_B):
            routes = sh("ip", "-n", ns, "route", "show", check=True).stdout
            assert "default" not in routes, "a lab namespace must have no route out"
        in_netns(NS_B, "nft", "-f", "-", input=NFT_RULES, check=True)
        # Linux rate-limits ICMP errors per destination (a burst of 6, then one per second); the
        # target namespace answers every closed port so that "closed" is testable.  The sysctl is
        # per network namespace: the host's own value must not move.
        host_value = read_host_icmp_ratelimit()
        in_netns(NS_B, "sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0", check=True)
        assert in_netns(NS_B, "sysctl", "-n", "net.ipv4.icmp_ratelimit", check=True).stdout.strip() == "0"
        assert read_host_icmp_ratelimit() == host_value, "the host's icmp_ratelimit changed"
        services = [{"kind": kind, "address": address, "port": port}
                    for address in (OPEN, DROP) for kind, port in SERVICES]
        self.start_responders(services)
        # wait until the vantage sees the target (no routes, so this is the veth only)
        deadline = time.time() + 10
        while probe_from_vantage([{"host": OPEN, "port": 8080}], timeout=0.2)["results"][0]["state"] != "open":
            if time.time() > deadline:
                raise RuntimeError("the veth between the lab namespaces does not come up")

    def start_responders(self, services):
        path = os.path.join(self.tmp, "responders-%d.json" % len(self.procs))
        with open(path, "w") as handle:
            json.dump({"services": services}, handle)
        env = dict(os.environ, NAP_COLLECTIONS_ROOT=collections_root())
        proc = subprocess.Popen(["ip", "netns", "exec", NS_B, PYTHON, HERE, "--responders", path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
        self.procs.append(proc)
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("responders did not start: %s %s" % (line, proc.stderr.read()))
        return proc

    def start(self, ns, args):
        proc = subprocess.Popen(["ip", "netns", "exec", ns] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, universal_newlines=True)
        self.procs.append(proc)
        return proc

    def down(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        remove_namespaces(PREFIX)


@pytest.fixture(scope="module")
def lab():
    tmp = tempfile.mkdtemp(prefix="nap-probe-lab-")
    env = ProbeLab(tmp)
    try:
        env.up()
        yield env
    finally:
        env.down()
        shutil.rmtree(tmp, ignore_errors=True)
        assert lab_namespaces(PREFIX) == [], "lab namespaces left behind"


def probe_from_vantage(targets, python=PYTHON, **kwargs):
    """Run the probe engine inside the vantage namespace (labkit.probe_from); return its output."""
    return probe_from(NS_A, targets, python=python, **kwargs)


# ===========================================================================
# TCP and the three outcomes of every UDP protocol
# ===========================================================================
def test_tcp_open_closed_filtered(lab):
    out = probe_from_vantage([
        {"name": "open", "host": OPEN, "port": 8080, "expect": "open"},
        {"name": "closed", "host": CLOSED, "port": 8080, "expect": "closed"},
        {"name": "filtered", "host": DROP, "port": 8080, "expect": "blocked"},
        {"name": "prohibited", "host": REJECT, "port": 8080, "expect": "blocked"},
    ], timeout=0.5)
    assert probe_states(out) == [("open", "open"), ("closed", "closed"), ("filtered", "filtered"),
                                 ("prohibited", "filtered")], out
    assert out["failures"] == []
    assert "ICMP" in out["results"][3]["detail"]
    assert out["results"][0]["time_ms"] < 100 and out["results"][2]["time_ms"] >= 500


UDP_CASES = [
    # kind, port, extra target keys
    ("dhcp", 67, {}),
    ("dhcp", 67, {"dhcp_message": "inform"}),
    ("dhcp_relay", 67, {}),
    ("dhcp_relay", 67, {"dhcp_message": "inform"}),
    ("radius", 1812, {"secret": SECRET}),
    ("radius", 1812, {"secret": SECRET, "radius_request": "access_request"}),
    ("radius", 1813, {"secret": SECRET}),
    ("ike", 500, {}),
    ("ike", 500, {"ike_version": "ikev1"}),
    ("ike", 500, {"ike_version": "ikev2"}),
    ("ike", 4500, {}),
    ("dns", 53, {}),
    ("cldap", 389, {}),
    ("ntp", 123, {}),
    ("udp", 9999, {}),
]


@pytest.mark.parametrize("kind,port,extra", UDP_CASES,
                         ids=["%s-%d-%s" % (k, p, "-".join("%s" % v for v in e.values() if v != SECRET) or "default")
                              for k, p, e in UDP_CASES])
def test_udp_protocol_three_outcomes(lab, kind, port, extra):
    targets = []
    for name, host, expect in (("answers", OPEN, "open"), ("unreachable", CLOSED, "closed"),
                               ("dropped", DROP, "blocked")):
        target = {"name": name, "host": host, "port": port, "kind": kind, "expect": expect}
        target.update(extra)
        targets.append(target)
    out = probe_from_vantage(targets, timeout=0.5)
    assert probe_states(out) == [("answers", "open"), ("unreachable", "closed"), ("dropped", "open|filtered")], out
    assert out["failures"] == [], out["failures"]
    first = out["results"][0]
    assert first["kind"] == kind and first["protocol"] == "udp"
    if kind.startswith("dhcp"):
        assert first["answer"]["server_id"] == OPEN
        assert first["answer"]["message_type_name"] == ("DHCPACK" if extra.get("dhcp_message") == "inform"
                                                        else "DHCPOFFER")
    if kind == "radius":
        assert "authenticated with the shared secret" in first["detail"]
        expected_code = {1812: "Access-Accept", 1813: "Accounting-Response"}[port]
        if extra.get("radius_request") == "access_request":
            expected_code = "Access-Reject"
        assert first["answer"]["code"] == expected_code
    if kind == "ike":
        assert first["detail"].startswith("IKEv") and "NO" in first["detail"]
    if kind == "cldap":
        assert first["answer"]["attributes"]["dnsHostName"] == ["dc-lab.nap.example"]


def test_udp_icmp_prohibited_is_filtered_and_silence_is_open_filtered(lab):
    out = probe_from_vantage([
        {"name": "prohibited", "host": REJECT, "port": 53, "kind": "dns", "expect": "blocked"},
        {"name": "bound but silent", "host": OPEN, "port": 9998, "protocol": "udp"},
    ], timeout=0.3)
    assert probe_states(out) == [("prohibited", "filtered"), ("bound but silent", "open|filtered")], out


def test_wrong_answers_are_unexpected_or_silent(lab):
    out = probe_from_vantage([
        # a UDP echo is not an IKE responder, nor a DNS server
        {"name": "echo as ike", "host": OPEN, "port": 7, "kind": "ike", "expect": "open"},
        {"name": "echo as dns", "host": OPEN, "port": 7, "kind": "dns", "expect": "blocked"},
        # the RADIUS responder ignores a wrong secret, as NPS does
        {"name": "wrong secret", "host": OPEN, "port": 1812, "kind": "radius", "secret": "not-it", "expect": "open"},
    ], timeout=0.3)
    assert probe_states(out) == [("echo as ike", "unexpected"), ("echo as dns", "unexpected"),
                                 ("wrong secret", "open|filtered")], out
    assert len(out["failures"]) == 3
    assert out["failures"][0].startswith("echo as ike (udp 198.18.250.2:7 ike): expected open, got unexpected")


def oldest_python():
    """A Python 3.8 interpreter (the oldest the module supports on a vantage host), if there is one."""
    candidates = [shutil.which("python3.8"), os.path.expanduser("~/.pyenv/versions/3.8.18/bin/python3.8")]
    for path in candidates:
        if path and os.access(path, os.X_OK) and sh(path, "-c", "import sys; assert sys.version_info[:2] == (3, 8)",
                                                    check=False).returncode == 0:
            return path
    return None


def test_engine_on_python38(lab):
    python = oldest_python()
    if python is None:
        pytest.skip("no Python 3.8 interpreter here")
    out = probe_from_vantage([
        {"name": "tcp", "host": OPEN, "port": 8080, "expect": "open"},
        {"name": "radius", "host": OPEN, "port": 1812, "kind": "radius", "secret": SECRET, "expect": "open"},
        {"name": "dhcp", "host": OPEN, "port": 67, "kind": "dhcp", "expect": "open"},
        {"name": "ike", "host": OPEN, "port": 500, "kind": "ike", "expect": "open"},
        {"name": "cldap", "host": OPEN, "port": 389, "kind": "cldap", "expect": "open"},
        {"name": "closed", "host": CLOSED, "port": 53, "kind": "dns", "expect": "closed"},
        {"name": "dropped", "host": DROP, "port": 123, "kind": "ntp", "expect": "blocked"},
    ], python=python, timeout="auto", max_timeout=1.0)
    assert out["failures"] == [], out["failures"]


# ===========================================================================
# Concurrency and timeout: auto
# ===========================================================================
def test_fifty_filtered_targets_run_concurrently(lab):
    targets = [{"host": DROP, "port": 20000 + i, "protocol": "tcp" if i % 2 else "udp", "expect": "blocked"}
               for i in range(50)]
    out = probe_from_vantage(targets, timeout=0.5)
    print("50 filtered targets, timeout 0.5 s: %.3f s" % out["wall"])
    assert out["summary"]["failed"] == 0
    assert set(r["state"] for r in out["results"]) == {"filtered", "open|filtered"}
    assert out["wall"] < 5.0, "50 x 0.5 s took %.2f s: the probes did not run concurrently" % out["wall"]
    assert out["wall"] < 2.0   # in practice about 0.5 s


def test_bounded_concurrency_takes_batches(lab):
    targets = [{"host": DROP, "port": 21000 + i} for i in range(6)]
    out = probe_from_vantage(targets, timeout=0.3, concurrency=2)
    assert 0.85 < out["wall"] < 3.0, out["wall"]          # three batches of 0.3 s


def test_timeout_auto_finishes_in_a_fraction_of_the_maximum(lab):
    answering = [{"host": OPEN, "port": 8080}, {"host": CLOSED, "port": 8080}, {"host": CLOSED, "port": 8081},
                 {"host": OPEN, "port": 9999, "protocol": "udp"}, {"host": CLOSED, "port": 9999, "protocol": "udp"}]
    silent = [{"host": DROP, "port": 22000 + i, "protocol": "tcp" if i % 2 else "udp", "expect": "blocked"}
              for i in range(10)]
    out = probe_from_vantage(answering + silent, timeout="auto", max_timeout=3.0)
    print("timeout auto, 5 answering + 10 silent, max 3 s: %.3f s (rtt %s)" % (out["wall"], out["info"]["rtt"]))
    assert out["summary"]["failed"] == 0, out["failures"]
    assert out["wall"] < 1.0, "timeout auto took %.2f s of a 3 s maximum" % out["wall"]
    assert out["info"]["rtt"]["samples"] >= 5
    waited = [r["time_ms"] for r in out["results"][len(answering):]]
    assert max(waited) < 1000


def test_timeout_auto_without_any_answer_waits_the_maximum(lab):
    out = probe_from_vantage([{"host": DROP, "port": 23000}], timeout="auto", max_timeout=0.4)
    assert out["results"][0]["state"] == "filtered" and 0.35 < out["wall"] < 2.0


def test_hard_deadline(lab):
    targets = [{"host": DROP, "port": 24000 + i} for i in range(4)]
    out = probe_from_vantage(targets, timeout=2.0, concurrency=2, deadline=0.5)
    assert out["wall"] < 1.5
    assert set(r["state"] for r in out["results"]) == {"error"}
    assert any("not started" in r["detail"] for r in out["results"])


# ===========================================================================
# The module through ansible-playbook, on a vantage inside a namespace
# ===========================================================================
PLAYBOOK = """
- hosts: vantage
  gather_facts: false
  tasks:
    - name: Probe as the site server would
      configmgr.nap.nap_port_probe:
        timeout: auto
        max_timeout: 1.0
        targets:
          - {name: TCP-OPEN, host: %(open)s, port: 8080, expect: open}
          - {name: TCP-UNCHOSEN, host: %(closed)s, port: 8080, expect: blocked}
          - {name: RADIUS, host: %(open)s, port: 1812, kind: radius, secret: "%(secret)s", expect: open}
          - {name: DHCP-RELAY, host: %(open)s, port: 67, kind: dhcp_relay, expect: open}
          - {name: IKE, host: %(open)s, port: 500, kind: ike, expect: open}
          - {name: CLDAP, host: %(open)s, port: 389, protocol: udp, expect: open}
          - {name: DROPPED, host: %(drop)s, port: 53, kind: dns, expect: blocked}
      register: good

    - name: The same with broken expectations
      configmgr.nap.nap_port_probe:
        timeout: 0.3
        targets:
          - {name: SHOULD-BE-OPEN, host: %(drop)s, port: 8080, expect: open}
          - {name: SHOULD-BE-BLOCKED, host: %(open)s, port: 8080, expect: blocked}
          - {name: FINE, host: %(closed)s, port: 8080, expect: closed}
      register: bad
      ignore_errors: true

    - name: Probes are read-only, so they run in check mode too
      configmgr.nap.nap_port_probe:
        targets:
          - {host: %(open)s, port: 53, kind: dns, expect: open}
      check_mode: true
      register: checked

    - name: Bad input fails before sending
      configmgr.nap.nap_port_probe:
        targets:
          - {host: %(open)s, port: 1812, kind: radius}
      register: refused
      ignore_errors: true

    - name: Write what we saw
      ansible.builtin.copy:
        content: "{{ {'good': good, 'bad': bad, 'refused': refused, 'checked': checked} | to_json }}"
        dest: "%(out)s"
      delegate_to: localhost
"""


def test_module_through_ansible_playbook(lab):
    venv = os.path.join(ROOT, ".venv", "bin")
    playbook_bin = os.path.join(venv, "ansible-playbook")
    if not os.path.exists(playbook_bin):
        pytest.skip("no %s: run make setup" % playbook_bin)
    tmp = lab.tmp
    wrapper = os.path.join(tmp, "python-in-vantage")
    with open(wrapper, "w") as handle:
        handle.write("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n" % (NS_A, PYTHON))
    os.chmod(wrapper, 0o755)
    inventory = os.path.join(tmp, "inventory.yml")
    with open(inventory, "w") as handle:
        handle.write("all:\n  hosts:\n    vantage:\n      ansible_connection: local\n"
                     "      ansible_python_interpreter: %s\n"
                     "    localhost:\n      ansible_connection: local\n"
                     "      ansible_python_interpreter: %s\n" % (wrapper, PYTHON))
    result_path = os.path.join(tmp, "playbook-result.json")
    playbook = os.path.join(tmp, "probe.yml")
    with open(playbook, "w") as handle:
        handle.write(PLAYBOOK % {"open": OPEN, "closed": CLOSED, "drop": DROP, "secret": SECRET, "out": result_path})
    env = dict(ansible_env(), ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-local"),
               ANSIBLE_REMOTE_TEMP=os.path.join(tmp, "ansible-remote"), ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = sh(playbook_bin, "-i", inventory, playbook, env=env, check=False, cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(result_path) as handle:
        seen = json.load(handle)
    good = seen["good"]
    assert not good.get("failed") and good["changed"] is False, good
    assert [r["state"] for r in good["results"]] == ["open", "closed", "open", "open", "open", "open",
                                                     "open|filtered"]
    assert good["summary"]["ok"] == 7 and good["elapsed"] < 1.5
    assert SECRET not in json.dumps(good["results"])
    bad = seen["bad"]
    assert bad["failed"] and bad["summary"]["failed"] == 2
    assert "2 of 3 probes broke their expectation" in bad["msg"]
    assert "SHOULD-BE-OPEN (tcp 198.18.250.4:8080): expected open, got filtered" in bad["msg"]
    assert "SHOULD-BE-BLOCKED (tcp 198.18.250.2:8080): expected blocked, got open" in bad["msg"]
    assert "FINE" not in bad["msg"]
    checked = seen["checked"]
    assert not checked.get("failed") and checked["results"][0]["state"] == "open", checked
    refused = seen["refused"]
    assert refused["failed"] and "needs the shared secret" in refused["msg"] and "nothing was sent" in refused["msg"]


# ===========================================================================
# A real DHCP and DNS server: dnsmasq inside the target namespace
# ===========================================================================
LOGS = []


@pytest.fixture(scope="module")
def dnsmasq(lab):
    binary = shutil.which("dnsmasq")
    if binary is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    address = "198.18.250.6"
    sh("ip", "-n", NS_B, "address", "add", address + "/24", "dev", PREFIX + "vb", check=True)
    state = os.path.join(lab.tmp, "dnsmasq")
    os.makedirs(state)
    LOGS.append(os.path.join(state, "log"))
    proc = lab.start(NS_B, [
        binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
        "--user=root", "--group=root", "--listen-address=" + address, "--bind-interfaces", "--port=53",
        "--pid-file=" + os.path.join(state, "pid"), "--dhcp-leasefile=" + os.path.join(state, "leases"),
        "--dhcp-range=198.18.250.100,198.18.250.150,255.255.255.0,1h", "--dhcp-authoritative", "--no-ping",
        "--log-facility=" + os.path.join(state, "log"), "--log-dhcp",
    ])
    deadline = time.time() + 10
    while "dnsmasq" not in in_netns(NS_B, "ss", "-ulnp", check=False).stdout:
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("dnsmasq did not start: %s" % (proc.stdout.read() if proc.poll() is not None else ""))
        time.sleep(0.05)
    return address


def dnsmasq_log():
    path = os.path.join(tempfile.gettempdir(), "none")
    for proc in LOGS:
        path = proc
    try:
        with open(path) as handle:
            return handle.read()[-4000:]
    except OSError:
        return ""


def test_real_dnsmasq_dhcp_and_dns(dnsmasq):
    out = probe_from_vantage([
        {"name": "discover", "host": dnsmasq, "port": 67, "kind": "dhcp", "expect": "open"},
        {"name": "inform", "host": dnsmasq, "port": 67, "kind": "dhcp", "dhcp_message": "inform", "expect": "open"},
        {"name": "relay", "host": dnsmasq, "port": 67, "kind": "dhcp_relay", "expect": "open"},
        {"name": "dns", "host": dnsmasq, "port": 53, "kind": "dns", "expect": "open"},
        {"name": "dns auto", "host": dnsmasq, "port": 53, "protocol": "udp", "expect": "open"},
    ], timeout=2.0)
    assert out["failures"] == [], (out["failures"], dnsmasq_log())
    offer = out["results"][0]["answer"]
    assert offer["message_type_name"] == "DHCPOFFER" and offer["server_id"] == dnsmasq
    assert offer["yiaddr"].startswith("198.18.250.")
    assert out["results"][1]["answer"]["message_type_name"] == "DHCPACK"


RELAY_NEIGHBOUR = r"""
import json, socket, sys, threading, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_engine
# the host's own DHCP relay (dnsmasq, dhcrelay): a wildcard socket on UDP 67 with SO_REUSEADDR, bound first
relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
relay.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
relay.bind(("0.0.0.0", 67))
relay.settimeout(1.5)
out = {}
probe = threading.Thread(target=lambda: out.update(results=probe_engine.probe_many(
    [{"name": "relay", "host": sys.argv[2], "port": 67, "kind": "dhcp_relay"}], timeout=1.2)[0]))
probe.start()
time.sleep(0.4)
# the server's OFFER to the relay's other giaddr, while the probe waits for its own answer
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"offer for a relayed client", (sys.argv[3], 67))
try:
    got = relay.recv(100).decode()
except socket.timeout:
    got = None
probe.join()
print(json.dumps({"relay_got": got, "probe": out["results"][0]["state"]}))
"""


def test_a_relay_probe_leaves_the_hosts_own_relay_its_datagrams(lab):
    # rtr01 in the lab is a DHCP relay and probes DHCP-RELAY itself: the probe's listener on UDP 67 must not take
    # the server's unicast answers to the relay's other giaddrs (a wildcard listener did: newer equal sockets win)
    giaddr = "198.18.250.7"
    sh("ip", "-n", NS_A, "address", "add", giaddr + "/32", "dev", "lo", check=True)
    try:
        out = in_netns(NS_A, PYTHON, "-c", RELAY_NEIGHBOUR, collections_root(), DROP, giaddr)
    finally:
        sh("ip", "-n", NS_A, "address", "del", giaddr + "/32", "dev", "lo")
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen == {"relay_got": "offer for a relayed client", "probe": "open|filtered"}, seen


def test_nothing_left_listening_in_the_vantage(lab):
    # the probes' sockets are closed: nothing of ours stays bound in the vantage namespace
    listening = in_netns(NS_A, "ss", "-Htuan", check=False).stdout
    assert ":67 " not in listening and ":68 " not in listening
