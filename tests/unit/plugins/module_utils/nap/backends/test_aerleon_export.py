# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aerleon export: the policy tree, the nap_export action, and Aerleon's own generator on it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest
import yaml

from vendor_collections import ansible_playbook, own_path
from vendor_fixtures import REPO, example_plan, vendor_plan, with_device

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import aerleon
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError


def _aerleon_python():
    """An interpreter that imports aerleon: this one, $NAP_AERLEON_PYTHON, or the repo's .venv."""
    candidates = [sys.executable, os.environ.get("NAP_AERLEON_PYTHON"), os.path.join(REPO, ".venv", "bin", "python")]
    for python in candidates:
        if python and os.path.exists(python):
            if subprocess.call([python, "-c", "import aerleon.aclgen"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) == 0:
                return python
    return None


AERLEON = _aerleon_python()
NEEDS_AERLEON = pytest.mark.skipif(
    AERLEON is None, reason="aerleon is not importable (a development requirement: `make setup` installs it into "
                            ".venv; or set NAP_AERLEON_PYTHON to an interpreter that has it)")


def test_tree_layout_and_tokens():
    files = aerleon.export(vendor_plan())
    assert sorted(files) == ["README.txt", "def/networks.yaml", "def/services.yaml", "policies/pol/fw01.yaml",
                             "policies/pol/rtr01.yaml"]
    nets = yaml.safe_load(files["def/networks.yaml"])["networks"]
    svcs = yaml.safe_load(files["def/services.yaml"])["services"]
    pol = yaml.safe_load(files["policies/pol/fw01.yaml"])
    assert pol["filters"][0]["header"]["targets"] == {"juniper": "CONFIGMGR-NAP inet", "cisco": "CONFIGMGR-NAP extended"}
    terms = dict((t["name"], t) for t in pol["filters"][0]["terms"])
    radius = terms["vpn-radius-udp-fwd"]
    assert nets[radius["source-address"]] == {"values": [{"address": "203.0.113.20/32"}]}
    assert svcs[radius["destination-port"]] == [{"port": p, "protocol": "udp"} for p in ("1645", "1646", "1812", "1813")]
    rpc = terms["nap-shv-config-tcp-fwd"]
    assert svcs[rpc["destination-port"]] == [{"port": "135", "protocol": "tcp"}, {"port": "49152-65535", "protocol": "tcp"}]
    relay = terms["dhcp-relay-udp-fwd"]
    assert svcs[relay["source-port"]] == [{"port": "67", "protocol": "udp"}]
    esp = terms["ipsec-ike-esp-fwd"]
    assert esp["protocol"] == "esp" and "destination-port" not in esp
    assert all(t["action"] == "accept" for t in terms.values())
    # deterministic
    assert aerleon.export(vendor_plan()) == files


def test_targets_and_devices():
    files = aerleon.export(vendor_plan(), devices=["rtr01"], targets=["arista", "juniper"], filter_name="NAP-EDGE")
    assert "policies/pol/fw01.yaml" not in files
    header = yaml.safe_load(files["policies/pol/rtr01.yaml"])["filters"][0]["header"]
    assert header["targets"] == {"arista": "NAP-EDGE extended", "juniper": "NAP-EDGE inet"}


@pytest.mark.parametrize("change,message", [
    ({"platform": "junos"}, "nap_perimeter_platform is 'junos'"),
    ({"zones": ["core", "lab"]}, "zones lab are not in nap_zones"),
    ({"zone_networks": {"core": ["10.0.0.0/8"], "nps": ["192.0.2.64/26"], "dmz": ["203.0.113.0/26"],
                        "management": ["203.0.113.128/28"]}}, "zone core has networks 10.0.0.0/8"),
])
def test_bad_device_fails_before_any_file(change, message):
    with pytest.raises(NapError, match=message):
        aerleon.export(with_device(vendor_plan(), "fw01", **change))


def test_bad_input():
    with pytest.raises(NapError, match="not perimeter devices"):
        aerleon.export(vendor_plan(), devices=["nope"])
    with pytest.raises(NapError, match="expected a plan"):
        aerleon.export({"hosts": {}})


PLAYBOOK = """
- name: Export
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Export the plan as an Aerleon policy
      configmgr.nap.nap_export:
        plan: "{{ plan }}"
        format: aerleon
        dest: "{{ dest }}"
      register: out
    - name: Again (idempotent)
      configmgr.nap.nap_export:
        plan: "{{ plan }}"
        dest: "{{ dest }}"
      register: again
    - name: Check
      ansible.builtin.assert:
        that:
          - out is changed
          - again is not changed
          - out.files | length == 5
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aerleon")
    dest = tmp / "export"
    (tmp / "pb.yml").write_text(PLAYBOOK)
    (tmp / "vars.json").write_text(json.dumps({"plan": {"plan": vendor_plan()}, "dest": str(dest)}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=own_path(), ANSIBLE_HOME=str(tmp / "home"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([ansible_playbook(), "-i", "localhost,", "-e", "@%s" % (tmp / "vars.json"), str(tmp / "pb.yml")],
                          cwd=str(tmp), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return dest


def test_action_writes_the_tree(exported):
    assert (exported / "policies" / "pol" / "fw01.yaml").read_text() == aerleon.export(vendor_plan())[
        "policies/pol/fw01.yaml"]


@NEEDS_AERLEON
def test_aerleon_generates_the_planned_ports(exported):
    proc = subprocess.run([AERLEON, "-m", "aerleon", "--base_directory", "policies", "--definitions_directory", "def",
                           "--output_directory", "out"], cwd=str(exported), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:]
    juniper = (exported / "out" / "fw01.jcl").read_text()
    cisco_acl = (exported / "out" / "fw01.acl").read_text()
    # RADIUS (legacy + IANA), Kerberos, SMB and the dynamic RPC range reach the generated ACLs
    assert "term vpn-radius-udp-fwd" in juniper
    assert "destination-port [ 1645-1646 1812-1813 ];" in juniper
    assert "destination-port 88;" in juniper and "destination-port 445;" in juniper
    assert "destination-port [ 135 49152-65535 ];" in juniper
    assert "permit udp host 203.0.113.20 host 192.0.2.70 eq 1812" in cisco_acl
    assert "permit tcp host 192.0.2.10 host 192.0.2.70 range 49152 65535" in cisco_acl
    ios = (exported / "out" / "rtr01.acl").read_text()
    assert "permit gre 198.51.100.0 0.0.0.255 host 203.0.113.20" in ios
    assert "permit 50 198.51.100.0 0.0.0.255 host 192.0.2.10" in ios   # Aerleon spells ESP by number


@NEEDS_AERLEON
def test_aerleon_on_the_example_plan(tmp_path):
    for path, text in aerleon.export(example_plan("other")).items():
        target = tmp_path.joinpath(*path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    proc = subprocess.run([AERLEON, "-m", "aerleon", "--base_directory", "policies", "--definitions_directory", "def",
                           "--output_directory", "out"], cwd=str(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "destination-port 5986;" in (tmp_path / "out" / "rtr01.jcl").read_text()   # MGMT-WINRM: the WinRM default


def test_icmp_echo_request_is_an_icmp_type_term():
    plan = vendor_plan()
    first = plan["perimeter"]["fw01"]["forward"][0]
    plan["perimeter"]["fw01"]["forward"].append({
        "name": "CM-PUSH-ICMP-ICMP-FWD", "flow_id": "CM-PUSH-ICMP", "direction": "forward", "action": "allow",
        "protocol": "icmp", "src_addresses": first["dst_addresses"], "dst_addresses": first["src_addresses"],
        "src_ports": [], "dst_ports": [], "description": "push ping", "source": "CM07", "icmp_type": "echo-request"})
    policy = yaml.safe_load(aerleon.export(plan, ["fw01"])["policies/pol/fw01.yaml"])
    (term,) = [t for t in policy["filters"][0]["terms"] if t["name"] == "cm-push-icmp-icmp-fwd"]
    assert (term["protocol"], term["icmp-type"]) == ("icmp", "echo-request")
    assert all("icmp-type" not in t for t in policy["filters"][0]["terms"] if t["protocol"] != "icmp")
