# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real packets: a small NAP site in network namespaces, its router converged by nft_nap_policy.

Needs root, ip (iproute2) and nft; skipped otherwise. One topology per module (a unique namespace
prefix, addresses from 198.19.0.0/16), built and removed with playbooks/lab.yml; every probe is a TCP
connect made from inside a lab namespace. Nothing here touches the machine's own namespace.

    zones     servers 1   clients 2   other1 3   other2 4   management 9     (198.19.<i>.0/24)
    r1        joins all five; its plan (nap_perimeter_zones) covers servers, clients, management only
    r2 + r3   in series: clients2 (5) -r2- transit (6) -r3- servers2 (7)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from labkit import changed_count, needs_root_and_tools, remove_namespaces, sh, tcp_connects

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "napt%d" % (os.getpid() % 100000)
BASE = "198.19.0.0/16"

pytestmark = needs_root_and_tools

LAB = {
    "base_subnet": BASE,
    "zones": {"servers": 1, "clients": {"index": 2, "clients": True}, "other1": 3, "other2": 4, "management": 9,
              "clients2": {"index": 5, "clients": True}, "transit": 6, "servers2": 7},
    "routers": {
        "r1": {"zones": ["servers", "clients", "other1", "other2", "management"],
               "perimeter_zones": ["servers", "clients", "management"]},
        "r2": {"id": 1, "zones": ["clients2", "transit"]},
        "r3": {"id": 2, "zones": ["transit", "servers2"]},
    },
    "hosts": {
        "dc01": {"zone": "servers", "id": 5, "groups": ["nap_domain_controllers"], "listen": [22, 389]},
        "cm01": {"zone": "servers", "id": 10, "groups": ["nap_site_servers"], "listen": [80, 445, 5985, 5986],
                 "vars": {"nap_remediation_roles": ["management_point"]}},
        "wsus02": {"zone": "servers2", "id": 50, "groups": ["nap_remediation_servers"], "listen": [80, 445],
                   "vars": {"nap_remediation_roles": ["management_point"]}},
        "cli": {"zone": "clients", "id": 10, "groups": ["lab_clients"]},
        "cli2": {"zone": "clients2", "id": 10, "groups": ["lab_clients"]},
        "o1": {"zone": "other1", "id": 10, "groups": ["lab_other"], "listen": [80]},
        "o2": {"zone": "other2", "id": 10, "groups": ["lab_other"], "listen": [80]},
        "mgmt": {"zone": "management", "id": 10, "management": True, "groups": ["lab_management"]},
    },
    "vars": {"nap_include_configmgr_base": True},
}

CONVERGE = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - configmgr.nap.nap_plan:
      register: __plan
- hosts: nap_perimeter
  gather_facts: false
  tasks:
    - configmgr.nap.nft_nap_policy:
        plan: "{{ hostvars.localhost.__plan }}"
      register: __nft
    - ansible.builtin.copy:
        content: "{{ __nft | to_json }}"
        dest: "{{ nap_lab_dir }}/result-{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false
"""


def ns(host):
    return "%s-%s" % (PREFIX, host)


def nft(host, *args, **kw):
    out = sh("ip", "netns", "exec", ns(host), "nft", *args, **kw)
    assert out.returncode == 0, out.stderr
    return out.stdout


def address(host):
    zone = LAB["hosts"].get(host, {}).get("zone")
    index = LAB["zones"][zone] if isinstance(LAB["zones"][zone], int) else LAB["zones"][zone]["index"]
    return "198.19.%d.%d" % (index, LAB["hosts"][host]["id"])


def connects(src, dst, port):
    """TCP connect from inside src's namespace to dst:port; True when the lab listener answered."""
    return tcp_connects(ns(src), address(dst), port, expect_banner="nap-lab %s %d" % (dst, port))


class NftLab:
    def __init__(self, tmp):
        self.dir = str(tmp / "lab")
        self.definition = str(tmp / "lab.yml")
        with open(self.definition, "w") as handle:
            yaml.safe_dump(LAB, handle)
        self.converge_pb = str(tmp / "converge.yml")
        with open(self.converge_pb, "w") as handle:
            handle.write(CONVERGE)
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "pytest"),
                        ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="0",
                        ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        self.playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

    def playbook(self, *args, **kw):
        out = sh(self.playbook_bin, *args, env=self.env, cwd=ROOT)
        if kw.get("check", True):
            assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
        return out

    def lab(self, state):
        return self.playbook(os.path.join(ROOT, "playbooks", "lab.yml"), "-e", "nap_lab_state=%s" % state,
                             "-e", "nap_lab_definition=%s" % self.definition, "-e", "nap_lab_prefix=%s" % PREFIX,
                             "-e", "nap_lab_dir=%s" % self.dir)

    def converge(self, *extra):
        out = self.playbook("-i", os.path.join(self.dir, "inventory.yml"), self.converge_pb, *extra)
        results = {}
        for router in ("r1", "r2", "r3"):
            with open(os.path.join(self.dir, "result-%s.json" % router)) as handle:
                results[router] = json.load(handle)
        return out, results


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = NftLab(tmp_path_factory.mktemp("naplab"))
    try:
        lab.lab("present")
        # a table of someone else in the router's namespace, which the collection must never touch
        nft("r1", "-f", "-", input="table ip other {\n set keep { type ipv4_addr; elements = { 198.19.3.3 } }\n"
                                   " chain c { type filter hook forward priority 10; policy accept; counter; }\n}\n")
        lab.other_before = nft("r1", "list", "table", "ip", "other")
        yield lab
    finally:
        try:
            lab.lab("absent")
        finally:
            # safety net: whatever happened above, no namespace of this module survives
            remove_namespaces(PREFIX)


def strip_counters(text):
    return re.sub(r"counter packets \d+ bytes \d+", "counter", text)


def test_01_lab_is_idempotent(lab):
    assert "changed=0" in lab.lab("present").stdout.split("PLAY RECAP")[-1]


def test_02_before_converge_the_router_forwards_everything(lab):
    assert connects("cli", "cm01", 445)        # unplanned
    assert connects("cli", "dc01", 389)        # unplanned
    assert connects("cli", "cm01", 80)         # planned (CM-MP)
    assert connects("cli2", "wsus02", 445)     # unplanned, across r2 and r3


def test_03_converge_enforces_the_plan(lab):
    out, results = lab.converge()
    assert results["r1"]["changed"] and results["r2"]["changed"] and results["r3"]["changed"]
    assert connects("cli", "cm01", 80)                 # planned CM-MP
    assert not connects("cli", "cm01", 445)            # not planned
    assert not connects("cli", "dc01", 389)            # not planned
    assert connects("mgmt", "cm01", 5986)              # planned MGMT-WINRM (the WinRM default, HTTPS)
    assert not connects("mgmt", "cm01", 5985)          # HTTP WinRM: not this host's management port
    assert connects("mgmt", "dc01", 22)                # anti-lockout (SSH from the management source)
    assert not connects("mgmt", "dc01", 389)           # management zone, not a management port


def test_04_zones_the_table_does_not_own_pass(lab):
    assert connects("o1", "o2", 80)                    # neither zone owned
    assert connects("o1", "cm01", 445)                 # only the destination's zone owned
    assert connects("cli", "o1", 80)                   # only the source's zone owned


def test_05_routers_in_series_both_enforce(lab):
    results = lab.converge("--check", "--diff")[1]        # a no-op returns before/after in diff mode only
    for router in ("r2", "r3"):
        names = [r["name"] for r in results[router]["after"]["rules"]]
        assert "CM-MP-TCP-FWD" in names, (router, names)
    assert connects("cli2", "wsus02", 80)              # planned CM-MP, through r2 and r3
    assert not connects("cli2", "wsus02", 445), nft("r2", "list", "ruleset") + nft("r3", "list", "ruleset")
    # take r3's accept away: r2 alone still lets it through, r3 now blocks it
    handle = rule_handle("r3", "CM-MP-TCP-FWD")
    nft("r3", "delete", "rule", "inet", "configmgr_nap", "forward", "handle", handle)
    assert not connects("cli2", "wsus02", 80)
    lab.converge()
    assert connects("cli2", "wsus02", 80)


def test_06_rerun_is_idempotent(lab):
    out, results = lab.converge()
    assert changed_count(out) == 0
    assert not any(r["changed"] for r in results.values())
    assert results["r1"]["commands"] == []


def rule_handle(router, name):
    text = nft(router, "-a", "list", "chain", "inet", "configmgr_nap", "forward")
    for line in text.splitlines():
        if '"%s|' % name in line:
            return line.rsplit("handle", 1)[1].strip()
    raise AssertionError("rule %s not in %s" % (name, text))


def test_07_hand_deleted_rule_reported_in_check_mode_and_restored(lab):
    nft("r1", "delete", "rule", "inet", "configmgr_nap", "forward", "handle", rule_handle("r1", "CM-MP-TCP-FWD"))
    assert not connects("cli", "cm01", 80)
    out, results = lab.converge("--check", "--diff")
    assert results["r1"]["changed"] is True
    assert results["r1"]["drift"]["missing"] == ["CM-MP-TCP-FWD"]
    # --diff: the missing rule, its chain named (issue 13, item 4)
    assert "+chain forward: CM-MP-TCP-FWD forward allow tcp" in out.stdout
    assert results["r1"]["diff"]["after"].startswith("chain forward: CM-MP-TCP-FWD forward allow tcp")
    assert not connects("cli", "cm01", 80)             # check mode wrote nothing
    out, results = lab.converge()
    assert results["r1"]["changed"] is True
    assert connects("cli", "cm01", 80)
    assert not any(r["changed"] for r in lab.converge()[1].values())


def test_08_hand_added_and_edited_rules_are_repaired(lab):
    nft("r1", "insert", "rule", "inet", "configmgr_nap", "forward", "ip", "daddr", address("cm01"), "tcp", "dport",
        "445", "accept")
    assert connects("cli", "cm01", 445)
    results = lab.converge("--check")[1]
    assert [n for n in results["r1"]["drift"]["extra"] if n.startswith("handle-")]
    lab.converge()
    assert not connects("cli", "cm01", 445)


def test_09_deleted_table_is_restored(lab):
    nft("r1", "delete", "table", "inet", "configmgr_nap")
    assert connects("cli", "cm01", 445)
    results = lab.converge("--check")[1]
    assert results["r1"]["before"]["present"] is False and results["r1"]["changed"]
    lab.converge()
    assert not connects("cli", "cm01", 445)
    assert connects("cli", "cm01", 80)


def test_10_other_tables_are_untouched(lab):
    assert strip_counters(nft("r1", "list", "table", "ip", "other")) == strip_counters(lab.other_before)


def test_11_absent_removes_only_the_owned_table(lab):
    inv = os.path.join(lab.dir, "inventory.yml")
    res = sh(os.path.join(os.path.dirname(sys.executable), "ansible"), "-i", inv, "r1", "-m",
             "configmgr.nap.nft_nap_policy", "-a", "state=absent", env=lab.env, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CHANGED" in res.stdout
    tables = nft("r1", "list", "tables")
    assert "configmgr_nap" not in tables and "table ip other" in tables
    assert connects("cli", "cm01", 445)


def test_12_absent_cleans_a_half_built_lab(lab, tmp_path):
    """A second lab whose create stopped half way (state recorded, a stray process) is removed whole."""
    prefix = PREFIX + "h"
    lab_dir = str(tmp_path / "half")
    os.makedirs(lab_dir)
    names = ["%s-sw-servers" % prefix, "%s-cm01" % prefix]
    with open(os.path.join(lab_dir, "state.json"), "w") as handle:
        json.dump({"prefix": prefix, "namespaces": names}, handle)
    try:
        sh("ip", "netns", "add", names[1])
        stray = subprocess.Popen(["ip", "netns", "exec", names[1], "sleep", "300"])
        time.sleep(0.2)
        out = lab.playbook(os.path.join(ROOT, "playbooks", "lab.yml"), "-e", "nap_lab_state=absent",
                           "-e", "nap_lab_definition=%s" % lab.definition, "-e", "nap_lab_prefix=%s" % prefix,
                           "-e", "nap_lab_dir=%s" % lab_dir)
        assert "changed=1" in out.stdout.split("PLAY RECAP")[-1]
        assert stray.wait(timeout=5) is not None
        listed = sh("ip", "netns", "list").stdout
        assert not [n for n in names if n in listed]
        assert not os.path.exists(os.path.join(lab_dir, "state.json"))
    finally:
        for name in names:
            sh("ip", "netns", "del", name)
