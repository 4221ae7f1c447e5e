# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real cisco.asa / cisco.ios resource modules, offline (no device).

* ``state: rendered`` for the example plan and the vendor test plan, compared with the checked-in
  golden files ``golden/<case>.<module>.ref`` (a mismatch writes ``.actual`` beside it;
  ``NAP_UPDATE_GOLDEN=1`` rewrites the references);
* round trip: rendered -> running config as the device shows it (port names!) -> ``state: parsed``
  -> normalise -> equal to the plan's rules;
* scope: ``replaced`` / ``deleted`` computed against a running config that also holds foreign
  ACLs and object groups (the module classes run in-process with the facts taken from that
  text) touch only the owned names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import pytest

from golden import assert_golden
from vendor_collections import MISSING, ansible_playbook, own_path, vendor_path
from vendor_fixtures import GOLDEN, example_plan, vendor_plan

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import cisco

VENDOR = vendor_path()
pytestmark = pytest.mark.skipif(VENDOR is None or ansible_playbook() is None,
                                reason=MISSING if VENDOR is None else "ansible-playbook is not installed")

INTERFACES = ["GigabitEthernet0/0", "GigabitEthernet0/1"]
CASES = {
    "example_asa": {"platform": "cisco_asa", "device": "rtr01"},
    "example_ios": {"platform": "cisco_ios", "device": "rtr01"},
    "vendor_fw01": {"platform": "cisco_asa", "device": "fw01"},
    "vendor_rtr01": {"platform": "cisco_ios", "device": "rtr01"},
}
RESOURCES = {"cisco_asa": ("asa_ogs", "asa_acls"), "cisco_ios": ("ios_acls", "ios_acl_interfaces")}

INVENTORY = """
all:
  children:
    asa:
      vars:
        ansible_connection: ansible.netcommon.network_cli
        ansible_network_os: cisco.asa.asa
      hosts:
        example_asa:
        vendor_fw01:
    ios:
      vars:
        ansible_connection: ansible.netcommon.network_cli
        ansible_network_os: cisco.ios.ios
      hosts:
        example_ios:
        vendor_rtr01:
"""

RENDER = """
- name: Render ASA configuration from the plan
  hosts: asa
  gather_facts: false
  vars:
    case: "{{ cases[inventory_hostname] }}"
  tasks:
    - name: Object groups
      cisco.asa.asa_ogs:
        state: rendered
        config: "{{ case.plan | configmgr.nap.to_asa_ogs(case.device) }}"
      register: r_ogs
    - name: Owned ACL
      cisco.asa.asa_acls:
        state: rendered
        config: "{{ case.plan | configmgr.nap.to_asa_acls(case.device) }}"
      register: r_acls
    - name: Keep the result
      ansible.builtin.set_fact:
        out: {asa_ogs: "{{ r_ogs.rendered }}", asa_acls: "{{ r_acls.rendered }}"}

- name: Render IOS configuration from the plan
  hosts: ios
  gather_facts: false
  vars:
    case: "{{ cases[inventory_hostname] }}"
  tasks:
    - name: Owned ACL
      cisco.ios.ios_acls:
        state: rendered
        config: "{{ case.plan | configmgr.nap.to_ios_acls(case.device) }}"
      register: r_acls
    - name: Binding
      cisco.ios.ios_acl_interfaces:
        state: rendered
        config: "{{ case.plan | configmgr.nap.to_ios_acl_interfaces(case.device, case.interfaces) }}"
      register: r_ifs
    - name: Keep the result
      ansible.builtin.set_fact:
        out: {ios_acls: "{{ r_acls.rendered }}", ios_acl_interfaces: "{{ r_ifs.rendered }}"}
"""

PARSE = """
- name: Parse ASA running configuration
  hosts: asa
  gather_facts: false
  vars:
    case: "{{ cases[inventory_hostname] }}"
  tasks:
    - name: Object groups
      cisco.asa.asa_ogs:
        state: parsed
        running_config: "{{ case.running.asa_ogs }}"
      register: r_ogs
    - name: ACLs
      cisco.asa.asa_acls:
        state: parsed
        running_config: "{{ case.running.asa_acls }}"
      register: r_acls
    - name: Keep the result
      ansible.builtin.set_fact:
        out: {asa_ogs: "{{ r_ogs.parsed }}", asa_acls: "{{ r_acls.parsed }}"}

- name: Parse IOS running configuration
  hosts: ios
  gather_facts: false
  vars:
    case: "{{ cases[inventory_hostname] }}"
  tasks:
    - name: ACLs
      cisco.ios.ios_acls:
        state: parsed
        running_config: "{{ case.running.ios_acls }}"
      register: r_acls
    - name: Bindings
      cisco.ios.ios_acl_interfaces:
        state: parsed
        running_config: "{{ case.running.ios_acl_interfaces }}"
      register: r_ifs
    - name: Keep the result
      ansible.builtin.set_fact:
        out: {ios_acls: "{{ r_acls.parsed }}", ios_acl_interfaces: "{{ r_ifs.parsed }}"}
"""

COLLECT = """
- name: Write every host's result
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Results
      ansible.builtin.copy:
        content: "{{ dict(groups['all'] | zip(groups['all'] | map('extract', hostvars, 'out'))) | to_nice_json }}"
        dest: "{{ out_file }}"
        mode: "0644"
"""

# What a device shows instead of the number typed (a few of each; names are the vendor's).
ASA_SHOWS = {"tcp": {80: "www", 443: "https", 22: "ssh", 53: "domain", 389: "ldap", 636: "ldaps", 1723: "pptp"},
             "udp": {53: "domain", 67: "bootps", 68: "bootpc", 123: "ntp", 500: "isakmp", 1645: "radius",
                     1646: "radius-acct"}}
IOS_SHOWS = {"tcp": {80: "www", 135: "msrpc", 53: "domain"},
             "udp": {53: "domain", 67: "bootps", 68: "bootpc", 123: "ntp", 500: "isakmp", 4500: "non500-isakmp"}}


def _named(line, shows):
    proto = "udp" if " udp " in " %s " % line else "tcp" if " tcp " in " %s " % line else None
    if not proto:
        return line
    return re.sub(r"\beq (\d+)\b", lambda m: "eq " + shows[proto].get(int(m.group(1)), m.group(1)), line)


def as_running(resource, commands):
    """Rendered commands -> the running configuration the device would show."""
    out = []
    for line in commands:
        if resource == "asa_ogs":
            out.append(_named(line, ASA_SHOWS) if line.startswith("object-group") else " " + _named(line, ASA_SHOWS))
        elif resource == "asa_acls":
            out.append(line)
        elif resource == "ios_acls":
            out.append(line if line.startswith("ip") else " " + _named(line, IOS_SHOWS))
        else:
            out.append(line if line.startswith("interface") else " " + line)
    return "\n".join(out) + "\n"


FOREIGN_ASA_OGS = """object-group network INSIDE-SERVERS
 network-object 10.1.0.0 255.255.0.0
object-group service WEB-PORTS tcp
 port-object eq www
"""
FOREIGN_ASA_ACLS = """access-list OUTSIDE-IN extended permit tcp any object-group INSIDE-SERVERS object-group WEB-PORTS
access-list OUTSIDE-IN extended deny ip any any
"""
FOREIGN_IOS_ACLS = """ip access-list extended USER-EDGE
 10 permit tcp any any eq www
 20 deny ip any any
"""


def _run(tmp_path, name, playbook, cases):
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / ("%s.yml" % name)).write_text(playbook + COLLECT)
    out = tmp_path / ("%s.json" % name)
    (tmp_path / "vars.json").write_text(json.dumps({"cases": cases, "out_file": str(out)}))
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([own_path(), VENDOR])
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "0"
    proc = subprocess.run([ansible_playbook(), "-i", str(tmp_path / "inventory.yml"), "-e", "@%s" % (tmp_path / "vars.json"),
                           str(tmp_path / ("%s.yml" % name))], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return json.loads(out.read_text())


def _with_ping(plan, device):
    """The vendor plan plus a push ping (ICMP echo request only) through ``device``: the icmp_type round trip."""
    entry = plan["perimeter"][device]
    first = entry["forward"][0]
    entry["forward"].append({"name": "CM-PUSH-ICMP-ICMP-FWD", "flow_id": "CM-PUSH-ICMP", "direction": "forward",
                             "action": "allow", "protocol": "icmp", "src_addresses": first["dst_addresses"],
                             "dst_addresses": first["src_addresses"], "src_ports": [], "dst_ports": [],
                             "description": "site server pings a client before client push", "source": "CM07",
                             "icmp_type": "echo-request"})
    return plan


def _plans():
    return {"example_asa": example_plan("cisco_asa"), "example_ios": example_plan("cisco_ios"),
            "vendor_fw01": _with_ping(vendor_plan(), "fw01"), "vendor_rtr01": _with_ping(vendor_plan(), "rtr01")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cisco-modules")
    plans = _plans()
    cases = {}
    for host, case in CASES.items():
        cases[host] = {"plan": plans[host], "device": case["device"], "interfaces": INTERFACES}
    rendered = _run(tmp, "render", RENDER, cases)
    parse_cases = {}
    for host, case in CASES.items():
        running = dict((res, as_running(res, rendered[host][res])) for res in RESOURCES[case["platform"]])
        if case["platform"] == "cisco_asa":
            running["asa_ogs"] = FOREIGN_ASA_OGS + running["asa_ogs"]
            running["asa_acls"] = FOREIGN_ASA_ACLS + running["asa_acls"]
        else:
            running["ios_acls"] = FOREIGN_IOS_ACLS + running["ios_acls"]
        parse_cases[host] = {"running": running}
    parsed = _run(tmp, "parse", PARSE, parse_cases)
    return {"plans": plans, "rendered": rendered, "parsed": parsed, "running": parse_cases}


GOLDEN_IDS = [(h, r) for h, c in CASES.items() for r in RESOURCES[c["platform"]]]


@pytest.mark.parametrize("host,resource", GOLDEN_IDS, ids=["%s.%s" % i for i in GOLDEN_IDS])
def test_rendered_matches_golden(runs, host, resource):
    text = "\n".join(runs["rendered"][host][resource]) + "\n"
    assert_golden(text, os.path.join(GOLDEN, "%s.%s.ref" % (host, resource)), resource)


def _comparable(rules):
    out = {}
    for rule in rules:
        data = rule.to_dict() if hasattr(rule, "to_dict") else dict(rule)
        data.pop("source", None)
        out[data["name"]] = data
    return out


@pytest.mark.parametrize("host", [h for h, c in CASES.items() if c["platform"] == "cisco_asa"])
def test_asa_round_trip(runs, host):
    parsed = runs["parsed"][host]
    rules = cisco.asa_rules_from_parsed(parsed["asa_acls"], parsed["asa_ogs"])
    want = runs["plans"][host]["perimeter"][CASES[host]["device"]]["forward"]
    assert _comparable(rules) == _comparable(want)
    # the foreign ACL and groups were parsed too, and are not ours
    assert sorted(a["name"] for a in parsed["asa_acls"]["acls"]) == ["CONFIGMGR-NAP", "OUTSIDE-IN"]


@pytest.mark.parametrize("host", [h for h, c in CASES.items() if c["platform"] == "cisco_ios"])
def test_ios_round_trip(runs, host):
    parsed = runs["parsed"][host]
    plan = runs["plans"][host]
    device = CASES[host]["device"]
    back = cisco.ios_rules_from_parsed(parsed["ios_acls"])
    assert _comparable(back["forward"]) == _comparable(plan["perimeter"][device]["forward"])
    # every forward rule has its return entries (established for TCP, mirrored for the rest)
    assert set(back["return"]) >= set(r["name"] for r in plan["perimeter"][device]["forward"])
    # the router's own inbound rules (management SSH, DHCP to the relay) are in, aimed at its addresses
    inbound = dict((r.name, r) for r in back["inbound"])
    assert set(inbound) == set(r["name"] for r in plan["hosts"][device]["inbound"])
    for rule in inbound.values():
        assert set(rule.dst_addresses) - {"255.255.255.255/32"} <= set(plan["perimeter"][device]["addresses"])
    binding = parsed["ios_acl_interfaces"]
    assert [b["name"] for b in binding] == INTERFACES
    assert all(b["access_groups"] == [{"afi": "ipv4", "acls": [{"name": "CONFIGMGR-NAP", "direction": "in"}]}]
               for b in binding)


def test_ios_return_entries(runs):
    text = "\n".join(runs["rendered"]["vendor_rtr01"]["ios_acls"])
    # TCP replies ride on established, UDP replies are mirrored (IKE, DHCP relay); ports as IOS spells them
    assert "permit tcp host 203.0.113.30 eq 443 198.51.100.0 0.0.0.255 established" in text
    assert "permit udp host 203.0.113.20 eq isakmp 198.51.100.0 0.0.0.255" in text
    assert "permit udp host 203.0.113.20 eq non500-isakmp 198.51.100.0 0.0.0.255" in text
    assert "permit udp host 192.0.2.40 eq bootps host 198.51.100.2 eq bootps" in text
    assert "permit gre host 203.0.113.20 198.51.100.0 0.0.0.255" in text
    assert "permit esp host 192.0.2.10 198.51.100.0 0.0.0.255" in text


def test_asa_port_names_round_trip(runs):
    """1812, 88 and 445 have no ASA name and stay numbers; 1645 shows as radius and comes back as 1645."""
    running = runs["running"]["vendor_fw01"]["running"]["asa_ogs"]
    assert "destination eq 1812" in running and "destination eq radius" in running
    assert "destination eq 88" in running and "destination eq 445" in running
    assert "kerberos" not in running and "cifs" not in running
    parsed = runs["parsed"]["vendor_fw01"]
    rules = dict((r.name, r) for r in cisco.asa_rules_from_parsed(parsed["asa_acls"], parsed["asa_ogs"]))
    assert rules["VPN-RADIUS-UDP-FWD"].dst_ports == (1645, 1646, 1812, 1813)
    assert rules["AD-KERBEROS-TCP-FWD"].dst_ports == (88,)
    assert rules["NAP-SHV-INSTALL-TCP-FWD"].dst_ports == (445,)
    assert rules["NAP-SHV-CONFIG-TCP-FWD"].dst_ports == (135, "49152-65535")


# ---------------------------------------------------------------------------
# Scope: replaced / deleted against a running config with foreign objects
# ---------------------------------------------------------------------------
class _FakeModule(object):
    def __init__(self, params):
        self.params = params
        self.check_mode = True

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


@pytest.fixture
def vendor_import(monkeypatch):
    monkeypatch.syspath_prepend(VENDOR)
    from ansible_collections.ansible.netcommon.plugins.module_utils.network.common.facts import facts
    from ansible_collections.ansible.netcommon.plugins.module_utils.network.common.rm_base import (
        resource_module, resource_module_base)
    monkeypatch.setattr(resource_module_base.RmEngineBase, "_get_connection", lambda self: None)
    monkeypatch.setattr(facts, "get_resource_connection", lambda module: None)

    def gather(self):
        return self.get_facts(self._empty_fact_val, data=self._module.params["running_config"])

    monkeypatch.setattr(resource_module.ResourceModule, "gather_current", gather)
    return True


def _commands(cls, argspec, state, config, running):
    from ansible_collections.ansible.netcommon.plugins.module_utils.network.common.utils import validate_config
    params = validate_config(argspec, {"config": config, "state": state, "running_config": running})
    obj = cls(_FakeModule(params))
    if state == "gathered":
        return obj.before
    if hasattr(obj, "gen_config"):
        obj.gen_config()          # cisco.asa
    else:
        obj.generate_commands()   # cisco.ios
    return obj.commands


STALE_ASA_OGS = """object-group network CONFIGMGR-NAP-NET-OLD
 network-object host 192.0.2.99
"""
STALE_ASA_ACLS = """access-list CONFIGMGR-NAP extended permit tcp any host 192.0.2.99 eq 8080
"""


def _asa_classes():
    from ansible_collections.cisco.asa.plugins.module_utils.network.asa.argspec.acls.acls import AclsArgs
    from ansible_collections.cisco.asa.plugins.module_utils.network.asa.argspec.ogs.ogs import OGsArgs
    from ansible_collections.cisco.asa.plugins.module_utils.network.asa.config.acls.acls import Acls
    from ansible_collections.cisco.asa.plugins.module_utils.network.asa.config.ogs.ogs import OGs
    return Acls, AclsArgs.argument_spec, OGs, OGsArgs.argument_spec


def test_asa_replaced_touches_only_owned(runs, vendor_import):
    Acls, acls_spec, OGs, ogs_spec = _asa_classes()
    host = "vendor_fw01"
    plan = runs["plans"][host]
    running = runs["running"][host]["running"]
    acls_running = running["asa_acls"] + STALE_ASA_ACLS
    ogs_running = running["asa_ogs"] + STALE_ASA_OGS
    # in sync: nothing to do (idempotent against the device's own spelling of ports)
    assert _commands(Acls, acls_spec, "replaced", cisco.asa_acls_config(plan, "fw01"), running["asa_acls"]) == []
    commands = _commands(Acls, acls_spec, "replaced", cisco.asa_acls_config(plan, "fw01"), acls_running)
    assert commands == ["no access-list CONFIGMGR-NAP extended permit tcp any host 192.0.2.99 eq 8080"]
    want_ogs = cisco.asa_ogs_config(plan, "fw01")
    first = _commands(OGs, ogs_spec, "replaced", want_ogs, running["asa_ogs"])
    assert first == [], "\n".join(first)
    commands = _commands(OGs, ogs_spec, "replaced", want_ogs, ogs_running)
    assert all("INSIDE-SERVERS" not in c and "WEB-PORTS" not in c for c in commands), commands
    # stale owned groups are deleted by name, foreign ones never
    have = _commands(OGs, ogs_spec, "gathered", None, ogs_running)
    stale = cisco.asa_stale_ogs(want_ogs, have)
    assert stale == [{"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-OLD"}]}]
    commands = _commands(OGs, ogs_spec, "deleted", stale, ogs_running)
    assert commands == ["no object-group network CONFIGMGR-NAP-NET-OLD"]
    # removal (state absent): the owned ACL and every owned group, nothing else
    commands = _commands(Acls, acls_spec, "deleted", {"acls": [{"name": "CONFIGMGR-NAP"}]}, acls_running)
    assert commands and all(c.startswith("no access-list CONFIGMGR-NAP ") for c in commands)
    owned = cisco.asa_owned_ogs(have)
    commands = _commands(OGs, ogs_spec, "deleted", owned, ogs_running)
    assert commands and all(re.match(r"^no object-group (network|service|icmp-type) CONFIGMGR-NAP-", c) for c in commands)


def test_ios_replaced_touches_only_owned(runs, vendor_import):
    from ansible_collections.cisco.ios.plugins.module_utils.network.ios.argspec.acls.acls import AclsArgs
    from ansible_collections.cisco.ios.plugins.module_utils.network.ios.config.acls.acls import Acls
    host = "vendor_rtr01"
    plan = runs["plans"][host]
    running = runs["running"][host]["running"]["ios_acls"]
    want = cisco.ios_acls_config(plan, "rtr01")
    first = _commands(Acls, AclsArgs.argument_spec, "replaced", want, running)
    assert first == [], "\n".join(first)
    stale = running + " 9990 permit tcp any host 192.0.2.99 eq 8080\n"
    commands = _commands(Acls, AclsArgs.argument_spec, "replaced", want, stale)
    assert commands == ["ip access-list extended CONFIGMGR-NAP", "no 9990 permit tcp any host 192.0.2.99 eq 8080"]
    commands = _commands(Acls, AclsArgs.argument_spec, "deleted",
                         [{"afi": "ipv4", "acls": [{"name": "CONFIGMGR-NAP"}]}], stale)
    assert commands == ["no ip access-list extended CONFIGMGR-NAP"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
