# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_nap_firewall through the REAL action plugin, with the transport replaced by a fake Windows host.

The fake (fake_windows.py, synthetic) takes the same win_powershell messages as the host would and
counts remote calls and passes over its rule store, so the tests prove the cost: 1 call / 1 walk
when nothing differs, 2 calls / 2 walks (the read and the read-back) when something does, and no call at all for bad input or
state: rendered.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import sys
from unittest.mock import MagicMock

import pytest
import yaml

from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task

from ansible_collections.configmgr.nap.plugins.action.win_nap_firewall import ActionModule
from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_changes
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_render

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_windows  # noqa: E402  pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, *[os.pardir] * 4))
FIXTURE = os.path.join(HERE, "fixtures", "windows", "synthetic-2008r2-sp1.json")
PREFIX = windows.DEFAULT_PREFIX
GROUP = windows.DEFAULT_GROUP


def example_plan():
    with open(os.path.join(ROOT, "examples", "inventory.yml")) as handle:
        inv = yaml.safe_load(handle)
    groups, hostvars = {}, {}

    def walk(name, node):
        node = node or {}
        groups[name] = list((node.get("hosts") or {}).keys())
        for host, hvars in (node.get("hosts") or {}).items():
            hostvars.setdefault(host, {}).update(hvars or {})
        for child, cnode in (node.get("children") or {}).items():
            walk(child, cnode)

    walk("all", inv["all"])
    return planner.plan(groups, hostvars, inv["all"]["vars"])


PLAN = example_plan()


class Runner:
    """Runs the action like a task would, against one fake host."""

    def __init__(self, fake, hostname="nps01", task_vars=None):
        self.fake = fake
        self.hostname = hostname
        self.task_vars = dict(task_vars or {})
        self.task_vars.setdefault("inventory_hostname", hostname)

    def __call__(self, check=False, **args):
        task = Task()
        task.action = "configmgr.nap.win_nap_firewall"
        task.args = args
        task.check_mode = check
        task.diff = True
        action = ActionModule(task, MagicMock(), PlayContext(), loader=MagicMock(), templar=MagicMock(),
                              shared_loader_obj=MagicMock())

        def execute_module(**kw):
            return self.fake.execute_module(check_mode=task.check_mode, **kw)

        action._execute_module = execute_module
        before_calls, before_walks = len(self.fake.calls), self.fake.walks
        result = action.run(task_vars=copy.deepcopy(self.task_vars))
        result["_calls"] = [k for k, _p in self.fake.calls[before_calls:]]
        result["_walks"] = self.fake.walks - before_walks
        return result


def fixture_host(**kw):
    with open(FIXTURE) as handle:
        doc = json.load(handle)
    doc.update(kw)
    return fake_windows.FakeWindowsHost.from_dump(doc)


def by_name(rules):
    return sorted(rules, key=lambda r: r["name"])


def owned_snapshot(fake):
    return sorted((r["Name"], json.dumps(r, sort_keys=True)) for r in fake.owned())


def foreign_snapshot(fake):
    return sorted(json.dumps(r.record(), sort_keys=True) for r in fake.store if r.Grouping != GROUP)


# ---------------------------------------------------------------------------
# The lifecycle of the issue: converge, rerun, drift, check mode, restore, absent
# ---------------------------------------------------------------------------
def test_lifecycle_converge_rerun_drift_check_restore_absent():
    fake = fixture_host()
    run = Runner(fake)
    foreign = foreign_snapshot(fake)
    wanted = PLAN["hosts"]["nps01"]["inbound"]

    first = run(plan=PLAN)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True
    assert first["_calls"] == ["read", "apply"] and first["_walks"] == 2 and first["remote_calls"] == 2
    assert sorted(r["name"] for r in first["after"]) == sorted(r["name"] for r in wanted)
    assert len(fake.owned()) == len(wanted)
    converged = owned_snapshot(fake)
    # Windows holds the COM spellings and its own address form
    stored = dict((r["Name"], r) for r in fake.owned())
    assert stored[PREFIX + "NAP-SHV-CONFIG-TCP-IN-EPMAP"]["LocalPorts"] == "RPC-EPMap"
    assert stored[PREFIX + "NAP-SHV-CONFIG-TCP-IN-RPC"]["LocalPorts"] == "RPC"
    assert stored[PREFIX + "NAP-SHV-INSTALL-TCP-IN"]["RemoteAddresses"] == "192.0.2.10/255.255.255.255"
    assert stored[PREFIX + "MGMT-WINRM-TCP-IN"]["Profiles"] == windows.PROFILES_ALL

    again = run(plan=PLAN)
    assert again["changed"] is False and not again.get("failed")
    assert again["_calls"] == ["read"] and again["_walks"] == 1 and again["remote_calls"] == 1
    assert again["commands"] == [] and by_name(again["before"]) == by_name(again["after"])

    # drift by hand
    fake.edit(PREFIX + "NAP-SHV-INSTALL-TCP-IN", RemoteAddresses="192.0.2.0/24")
    fake.edit(PREFIX + "IPSEC-HRA-RADIUS-UDP-IN", Enabled=False)
    fake.delete(PREFIX + "DHCP-RADIUS-UDP-IN")
    fake.add(Name=PREFIX + "HAND-MADE", Grouping=GROUP, Protocol=6, LocalPorts="8080", Enabled=True)
    fake.add(Name="Hand-made SQL", Grouping="", Protocol=6, LocalPorts="1433", Enabled=True)
    foreign_after_drift = foreign_snapshot(fake)

    check = run(check=True, plan=PLAN)
    assert not check.get("failed"), check.get("msg")
    assert check["changed"] is True
    assert check["_calls"] == ["read"] and check["_walks"] == 1
    assert check["drift"] == {"missing": ["DHCP-RADIUS-UDP-IN"], "extra": ["HAND-MADE"],
                              "changed": ["IPSEC-HRA-RADIUS-UDP-IN", "NAP-SHV-INSTALL-TCP-IN"]}
    changes = dict((c["name"], c) for c in check["rule_changes"])
    assert changes["NAP-SHV-INSTALL-TCP-IN"]["fields"] == ["src_addresses"]
    assert changes["IPSEC-HRA-RADIUS-UDP-IN"]["fields"] == ["description"]      # Enabled=False, shown there
    before = dict((r["name"], r) for r in check["before"])
    assert before["IPSEC-HRA-RADIUS-UDP-IN"]["description"].startswith(windows.TAMPERED + "Enabled=False")
    assert 'delete rule name="configmgr.nap HAND-MADE"' in check["commands"]
    assert "inbound: configmgr.nap NAP-SHV-INSTALL-TCP-IN in allow tcp from 192.0.2.0/24" in check["diff"]["before"]
    assert "inbound: configmgr.nap NAP-SHV-INSTALL-TCP-IN in allow tcp from 192.0.2.10/32" in check["diff"]["after"]
    assert fake.find(PREFIX + "HAND-MADE"), "check mode changed the host"

    # a foreign rule (outside the group) that takes one of the owned names is refused, even in check mode
    fake.add(Name=PREFIX + "MGMT-WINRM-TCP-IN", Grouping="Someone else", Protocol=6, LocalPorts="5985",
             Enabled=True)
    refused = run(check=True, plan=PLAN)
    assert refused["failed"] and "configmgr.nap MGMT-WINRM-TCP-IN" in refused["msg"]
    assert "outside the group" in refused["msg"] and "Someone else" in refused["msg"]
    assert refused["_calls"] == ["read"]
    refused = run(plan=PLAN)
    assert refused["failed"] and refused["_calls"] == ["read"]
    fake.store.remove([r for r in fake.store if r.Grouping == "Someone else"][0])

    restore = run(plan=PLAN)
    assert not restore.get("failed"), restore.get("msg")
    assert restore["changed"] is True and restore["_calls"] == ["read", "apply"] and restore["_walks"] == 2
    assert owned_snapshot(fake) == converged
    assert foreign_snapshot(fake) == foreign_after_drift     # rules outside the group untouched
    assert run(plan=PLAN)["changed"] is False

    # absent removes MGMT-WINRM too: the host must still be reached on its management port by another rule
    # (the fixture's predefined WinRM rule admits 5985, so this host is reached over HTTP)
    refused = run(state="absent")
    assert refused["failed"] and "TCP 5986" in refused["msg"] and len(fake.owned()) == len(wanted)
    run = Runner(fake, task_vars={"ansible_port": 5985})
    gone = run(state="absent")
    assert not gone.get("failed"), gone.get("msg")
    assert gone["changed"] is True and gone["after"] == [] and gone["_calls"] == ["read", "apply"]
    assert fake.owned() == []
    assert foreign_snapshot(fake) == foreign_after_drift
    again = run(state="absent")
    assert again["changed"] is False and again["_calls"] == ["read"]
    assert foreign_snapshot(fake) != foreign     # the hand-made SQL rule is still there: never ours


def test_check_mode_first_run_sends_no_change():
    fake = fixture_host()
    result = Runner(fake)(check=True, plan=PLAN)
    assert result["changed"] is True and result["_calls"] == ["read"]
    assert fake.owned() == []
    assert len(result["commands"]) == len(PLAN["hosts"]["nps01"]["inbound"])
    assert all(c.startswith("add rule name=\"configmgr.nap ") for c in result["commands"])


def test_gathered_round_trips_as_input():
    fake = fixture_host()
    run = Runner(fake)
    run(plan=PLAN)
    gathered = run(state="gathered")
    assert gathered["changed"] is False and gathered["_calls"] == ["read"]
    assert isinstance(gathered["gathered"], list)
    wanted = sorted(PLAN["hosts"]["nps01"]["inbound"], key=lambda r: r["name"])
    got = sorted(gathered["gathered"], key=lambda r: r["name"])
    assert wanted == got
    assert gathered["gathered_options"] == {"group": GROUP, "name_prefix": PREFIX, "profiles": ["all"]}
    again = run(rules=gathered["gathered"], **gathered["gathered_options"])
    assert again["changed"] is False, again.get("commands")


def test_gathered_options_give_the_profiles_the_owned_rules_have():
    fake = fixture_host()
    run = Runner(fake)
    run(plan=PLAN, profiles=["domain", "private"])
    gathered = run(state="gathered")                      # asked with the default profiles (all)
    assert gathered["gathered_options"]["profiles"] == ["domain", "private"]
    again = run(rules=gathered["gathered"], **gathered["gathered_options"])
    assert again["changed"] is False, again.get("commands")
    empty = Runner(fixture_host())(state="gathered")
    assert empty["gathered"] == [] and empty["gathered_options"]["profiles"] == ["all"]


def test_rendered_is_a_dict_of_line_lists_and_contacts_no_host():
    fake = fixture_host()
    result = Runner(fake)(state="rendered", plan=PLAN)
    assert result["_calls"] == [] and "remote_calls" not in result
    rendered = result["rendered"]
    assert sorted(rendered) == ["com", "netsecurity", "netsh"]
    for form, lines in rendered.items():
        assert isinstance(lines, list) and all(isinstance(line, str) for line in lines), form
        assert not [line for line in lines if "\n" in line or "\r" in line], form
    assert "$policy = New-Object -ComObject HNetCfg.FwPolicy2" in rendered["com"]
    assert any("RPCEPMap" in line for line in rendered["netsecurity"])        # the NetSecurity spelling
    assert any("localport=RPC-EPMap" in line for line in rendered["netsh"])
    plan = plandoc.load(PLAN)
    texts = windows_render.render_all(windows.rules_from_input(windows.rules_from_plan(PLAN, "nps01")), host="nps01",
                                      management_sources=plandoc.management_sources(plan) or None,
                                      management_port=plandoc.management_port(plan, "nps01"))
    assert "$managementPort = 5986" in texts["com"] or "Port = 5986" in texts["com"]
    assert "\n".join(rendered["com"]) + "\n" == texts["com"]
    assert "\r\n".join(rendered["netsh"]) + "\r\n" == texts["netsh"]


def test_diff_is_in_list_order_and_names_the_list():
    fake = fixture_host()
    run = Runner(fake)
    plan = copy.deepcopy(PLAN)
    plan["hosts"]["nps01"]["outbound"] = [{"name": "OUT-DC-LDAP", "flow_id": "TEST", "direction": "out",
                                           "protocol": "tcp", "dst_addresses": ["192.0.2.5"], "dst_ports": [389]}]
    first = run(check=True, plan=plan)
    after = first["diff"]["after"].splitlines()
    inbound = [r["name"] for r in plan["hosts"]["nps01"]["inbound"]]
    assert after == ["inbound: " + windows.full_rules(windows.rules_from_input([r]), PREFIX)[0].summary()
                     for r in plan["hosts"]["nps01"]["inbound"]] + [
        "outbound: configmgr.nap OUT-DC-LDAP out allow tcp from any to 192.0.2.5/32 port 389"]
    assert [line.split(" ")[2] for line in after[:-1]] == inbound       # the wanted rules' order, not sorted
    assert first["diff"]["before"] == "" and first["diff"]["before_header"] == "rules before (nps01)"
    run(plan=PLAN)
    fake.edit(PREFIX + "NAP-SHV-INSTALL-TCP-IN", RemoteAddresses="192.0.2.0/24")
    fake.add(Name=PREFIX + "AAA-HAND-MADE", Grouping=GROUP, Protocol=6, LocalPorts="8080", Enabled=True)
    drift = run(check=True, plan=PLAN)
    before = drift["diff"]["before"].splitlines()
    assert [line.split(" ")[2] for line in before] == ["NAP-SHV-INSTALL-TCP-IN", "AAA-HAND-MADE"]  # the host's order
    assert all(line.startswith("inbound: configmgr.nap ") for line in before)


def test_profiles_option_and_profile_drift():
    fake = fixture_host()
    run = Runner(fake)
    assert run(plan=PLAN, profiles=["domain"])["changed"] is True
    assert set(r["Profiles"] for r in fake.owned()) == {1}
    assert run(plan=PLAN, profiles=["domain"])["changed"] is False
    fake.edit(PREFIX + "NAP-SHV-INSTALL-TCP-IN", Profiles=windows.PROFILES_ALL)
    drift = run(check=True, plan=PLAN, profiles=["domain"])
    assert drift["drift"]["changed"] == ["NAP-SHV-INSTALL-TCP-IN"]
    assert "Profiles=all" in [r for r in drift["before"] if r["name"] == "NAP-SHV-INSTALL-TCP-IN"][0]["description"]


def test_duplicate_owned_names_are_collapsed():
    fake = fixture_host()
    run = Runner(fake)
    run(plan=PLAN)
    dup = dict(fake.owned()[0])
    fake.add(**dup)
    result = run(plan=PLAN)
    assert result["changed"] is True
    names = [r["Name"] for r in fake.owned()]
    assert len(names) == len(set(names)) == len(PLAN["hosts"]["nps01"]["inbound"])
    assert run(plan=PLAN)["changed"] is False


# ---------------------------------------------------------------------------
# Guards
# ---------------------------------------------------------------------------
def bare_host(**kw):
    return fake_windows.FakeWindowsHost(**kw)


NO_MGMT_RULES = [{"name": "NAP-SHV-INSTALL-TCP-IN", "protocol": "tcp", "src_addresses": ["192.0.2.10"],
                  "dst_ports": [445]}]


def test_lockout_is_refused_without_a_winrm_rule():
    fake = bare_host()
    result = Runner(fake)(rules=NO_MGMT_RULES, management_sources=["203.0.113.10/32"])
    assert result["failed"] and "WinRM" in result["msg"] and "203.0.113.10/32" in result["msg"]
    assert "allow_lockout" in result["msg"]
    assert result["_calls"] == ["read"] and fake.owned() == []


def test_lockout_can_be_forced():
    fake = bare_host()
    result = Runner(fake)(rules=NO_MGMT_RULES, management_sources=["203.0.113.10/32"], allow_lockout=True)
    assert not result.get("failed") and len(fake.owned()) == 1


def test_lockout_counts_foreign_rules_and_profile_state():
    fake = bare_host()
    fake.add(Name="WinRM by GPO", Grouping="Corp", Protocol=6, LocalPorts="5985-5986",
             RemoteAddresses="203.0.113.0/24", Enabled=True)
    assert not Runner(fake)(rules=NO_MGMT_RULES, management_sources=["203.0.113.10/32"]).get("failed")
    # a foreign block rule on the port wins over every allow rule
    fake2 = bare_host()
    fake2.add(Name="Block WinRM", Grouping="Corp", Protocol=6, LocalPorts="5985", Action=0, Enabled=True)
    plan_rules = PLAN["hosts"]["nps01"]["inbound"]
    result = Runner(fake2, task_vars={"ansible_port": 5985})(rules=plan_rules)
    assert result["failed"] and "block rule" in result["msg"]
    # a profile with the firewall off admits everything
    fake3 = bare_host()
    fake3.profiles["domain"]["enabled"] = False
    assert not Runner(fake3)(rules=NO_MGMT_RULES, management_sources=["203.0.113.10/32"]).get("failed")


def test_absent_is_refused_when_only_the_owned_rule_admits_winrm():
    fake = bare_host()
    run = Runner(fake)
    assert not run(plan=PLAN).get("failed")
    result = run(state="absent")
    assert result["failed"] and "WinRM" in result["msg"]
    assert len(fake.owned()) == len(PLAN["hosts"]["nps01"]["inbound"])
    assert not run(state="absent", allow_lockout=True).get("failed") and fake.owned() == []


def test_group_policy_override_fails_or_warns():
    fake = fixture_host(local_policy_modify_state=1)
    run = Runner(fake)
    result = run(plan=PLAN)
    assert result["failed"] and "GP_OVERRIDE" in result["msg"] and "nps01" in result["msg"]
    assert result["_calls"] == ["read"] and fake.owned() == []
    warned = run(plan=PLAN, local_policy_override="warn")
    assert not warned.get("failed") and any("GP_OVERRIDE" in w for w in warned["warnings"])
    assert fake.owned()
    gathered = run(state="gathered")
    assert any("GP_OVERRIDE" in w for w in gathered["warnings"])


@pytest.mark.parametrize("os_version,ps_version", [("6.0.6002.18005", "2.0"), ("6.1.7601.65536", "3.0"),
                                                   ("6.1.7600.16385", "5.1.14409.1005")])
def test_unmanaged_windows_versions_fail_naming_host_and_rendered(os_version, ps_version):
    fake = bare_host(os_version=os_version, ps_version=ps_version)
    result = Runner(fake)(plan=PLAN)
    assert result["failed"] and "host nps01" in result["msg"] and "state: rendered" in result["msg"]
    assert result["_calls"] == ["read"] and result["_walks"] == 0


def test_versions_from_facts_fail_before_any_call():
    fake = bare_host()
    facts = {"ansible_facts": {"distribution_version": "6.0.6002.18005", "powershell_version": 2}}
    result = Runner(fake, task_vars=facts)(plan=PLAN)
    assert result["failed"] and "state: rendered" in result["msg"] and result["_calls"] == []


# ---------------------------------------------------------------------------
# Bad input: fails before any remote call, naming the rule and field
# ---------------------------------------------------------------------------
def rule(**kw):
    base = {"name": "R1", "direction": "in", "protocol": "tcp", "dst_ports": [80]}
    base.update(kw)
    return base


@pytest.mark.parametrize("args,words", [
    ({"rules": [rule(protocol="sctp")]}, ["'R1'", "protocol", "sctp"]),
    ({"rules": [rule(dst_ports=["80-"])]}, ["'R1'", "dst_ports", "80-"]),
    ({"rules": [rule(dst_ports=["70000"])]}, ["'R1'", "dst_ports", "70000"]),
    ({"rules": [rule(src_addresses=["192.0.2.300"])]}, ["'R1'", "src_addresses", "192.0.2.300"]),
    ({"rules": [rule(src_addresses=["LocalSubnet"])]}, ["'R1'", "src_addresses", "keyword"]),
    ({"rules": [rule(src_addresses=["192.0.2.20-192.0.2.10"])]}, ["'R1'", "src_addresses"]),
    ({"rules": [rule(), rule()]}, ["duplicate", "R1"]),
    ({"rules": [rule(name="a"), rule(name="A")]}, ["case", "'a'", "'A'"]),
    ({"rules": [rule(protocol="gre")]}, ["'R1'", "gre", "ports"]),
    ({"rules": [rule(direction="forward")]}, ["'R1'", "forward"]),
    ({"rules": [rule(name='say "hi"')]}, ["name", "not a valid rule name"]),
    ({"rules": [rule(dst_ports=["rpc-dynamic", 80])]}, ["'R1'", "rpc-dynamic"]),
    ({"rules": [rule()], "name_prefix": ""}, ["name_prefix"]),
    ({"rules": [rule()], "management_sources": ["nowhere"]}, ["management_sources", "nowhere"]),
    ({"rules": [rule()], "profiles": ["office"]}, ["profiles"]),
    ({"rules": [rule()], "plan": PLAN}, ["mutually exclusive"]),
    ({"plan": PLAN, "host": "rtr01"}, ["rtr01", "nftables", "Windows hosts"]),
    ({"plan": PLAN, "host": "nohost"}, ["nohost", "not in the plan"]),
])
def test_bad_input_fails_before_any_remote_call(args, words):
    fake = fixture_host()
    result = Runner(fake)(**args)
    assert result.get("failed"), result
    for word in words:
        assert word in result["msg"], (word, result["msg"])
    assert result["_calls"] == [] and fake.walks == 0


# ---------------------------------------------------------------------------
# Remote errors and partial apply
# ---------------------------------------------------------------------------
def test_partial_apply_is_reported_and_completed_next_run():
    fake = fixture_host()
    fake.fail_add[PREFIX + "NAP-SHV-INSTALL-TCP-IN"] = "Access is denied. (Exception from HRESULT: 0x80070005)"
    run = Runner(fake)
    result = run(plan=PLAN)
    assert result["failed"] and result["changed"] is True
    assert "NAP-SHV-INSTALL-TCP-IN" in result["msg"] and "Access is denied" in result["msg"]
    assert "1 of %d" % len(PLAN["hosts"]["nps01"]["inbound"]) in result["msg"]
    assert "NAP-SHV-INSTALL-TCP-IN" not in [r["name"] for r in result["after"]]
    fake.fail_add.clear()
    second = run(plan=PLAN)
    assert not second.get("failed") and second["drift"]["missing"] == ["NAP-SHV-INSTALL-TCP-IN"]
    assert run(plan=PLAN)["changed"] is False


def test_remote_failure_names_host_and_hints_rendered():
    class Broken(fake_windows.FakeWindowsHost):
        def execute_module(self, **kw):
            self.calls.append(("read", {}))
            return {"failed": True, "msg": "Unhandled exception while executing module: PowerShell 2.0 ..."}

    result = Runner(Broken())(plan=PLAN)
    assert result["failed"] and "host nps01" in result["msg"] and "state: rendered" in result["msg"]


def test_check_mode_skip_of_a_script_without_shouldprocess_is_an_error():
    class Skipping(fake_windows.FakeWindowsHost):
        def execute_module(self, **kw):
            self.calls.append(("read", {}))
            return {"changed": True, "msg": "skipped, running in check mode", "result": {}}

    result = Runner(Skipping())(check=True, plan=PLAN)
    assert result["failed"] and "returned nothing" in result["msg"]


# ---------------------------------------------------------------------------
# Backup
# ---------------------------------------------------------------------------
def test_backup_saves_the_group_before_a_change(tmp_path):
    fake = fixture_host()
    run = Runner(fake, task_vars={"playbook_dir": str(tmp_path)})
    run(plan=PLAN)
    fake.delete(PREFIX + "DHCP-RADIUS-UDP-IN")
    saved = owned_snapshot(fake)
    unchanged = run(plan=PLAN, backup=True, backup_options={"dir_path": str(tmp_path / "b")}, check=True)
    assert "backup_path" not in unchanged
    result = run(plan=PLAN, backup=True, backup_options={"dir_path": str(tmp_path / "b")})
    path = result["backup_path"]
    assert os.path.dirname(path) == str(tmp_path / "b") and os.path.basename(path).startswith("nps01_win_nap_firewall.")
    with open(path) as handle:
        doc = json.load(handle)
    assert sorted((r["Name"], json.dumps(r, sort_keys=True)) for r in doc["rules"]) == saved
    assert len(doc["model"]) == len(PLAN["hosts"]["nps01"]["inbound"]) - 1
    assert "backup_path" not in run(plan=PLAN, backup=True)     # nothing changed: no backup
    default = Runner(fixture_host(), task_vars={"playbook_dir": str(tmp_path)})(plan=PLAN, backup=True)
    assert default["backup_path"].startswith(str(tmp_path / "backup") + os.sep)


@pytest.fixture
def deprecations(monkeypatch):
    """What the action plugin's self._display.deprecated was called with."""
    from ansible.plugins import action as action_base
    calls = []
    monkeypatch.setattr(action_base.display, "deprecated", lambda msg, **kw: calls.append(dict(kw, msg=msg)))
    return calls


def test_backup_options_filename_is_honoured(tmp_path, deprecations):
    fake = fixture_host()
    run = Runner(fake, task_vars={"playbook_dir": str(tmp_path)})
    result = run(plan=PLAN, backup=True, backup_options={"filename": "nps01-before.json"})
    assert not result.get("failed"), result.get("msg")
    assert result["backup_path"] == str(tmp_path / "backup" / "nps01-before.json")     # default dir_path
    fake.delete(PREFIX + "DHCP-RADIUS-UDP-IN")
    again = run(plan=PLAN, backup=True, backup_options={"dir_path": str(tmp_path / "b"), "filename": "fw.json"})
    assert again["backup_path"] == str(tmp_path / "b" / "fw.json")
    fake.delete(PREFIX + "DHCP-RADIUS-UDP-IN")
    third = run(plan=PLAN, backup=True, backup_options={"dir_path": str(tmp_path / "b"), "filename": "fw.json"})
    assert third["backup_path"] == str(tmp_path / "b" / "fw.1.json")          # never over an existing file
    with open(third["backup_path"]) as handle:
        assert json.load(handle)["host"] == "nps01"
    assert deprecations == []


@pytest.mark.parametrize("name", ["../fw.json", "a/b.json", "..", "a\\b", "x\ny"])
def test_backup_filename_that_is_not_a_plain_name_is_refused_before_any_call(tmp_path, name):
    fake = fixture_host()
    result = Runner(fake)(plan=PLAN, backup=True, backup_options={"dir_path": str(tmp_path), "filename": name})
    assert result["failed"] and "not a plain file name" in result["msg"] and "nothing was sent" in result["msg"]
    assert result["_calls"] == [] and os.listdir(str(tmp_path)) == []


def test_deprecated_backup_dir_still_works_and_warns(tmp_path, deprecations):
    fake = fixture_host()
    run = Runner(fake, task_vars={"playbook_dir": str(tmp_path)})
    result = run(plan=PLAN, backup=True, backup_dir=str(tmp_path / "old"))
    assert not result.get("failed"), result.get("msg")
    assert os.path.dirname(result["backup_path"]) == str(tmp_path / "old")
    assert os.path.basename(result["backup_path"]).startswith("nps01_win_nap_firewall.")
    assert deprecations == [{"msg": "win_nap_firewall: the option backup_dir is deprecated, use backup_options: "
                                    "{dir_path: <directory>} instead",
                             "version": "1.0.0", "collection_name": "configmgr.nap"}]
    both = run(plan=PLAN, backup=True, backup_dir=str(tmp_path), backup_options={"dir_path": str(tmp_path)})
    assert both["failed"] and "mutually exclusive" in both["msg"] and both["_calls"] == []


# ---------------------------------------------------------------------------
# The messages and the scripts agree
# ---------------------------------------------------------------------------
def test_scripts_declare_shouldprocess_set_changed_and_return_one_json_string():
    for script, params in ((windows.READ_PS1, windows.READ_PARAMETERS), (windows.APPLY_PS1, windows.APPLY_PARAMETERS)):
        head = script.split("param", 1)[0]
        assert "[CmdletBinding(SupportsShouldProcess)]" in head
        assert "$Ansible.Changed = $false" in script
        assert "$Ansible.Result = ConvertTo-Json" in script
        assert fake_windows._param_names(script) == list(params)
    # the script sets the properties in the order the backend gives, and the backend puts Protocol first
    assert "foreach ($pair in $op.set)" in windows.APPLY_PS1
    for fields in (windows_changes.add_set(windows.rule_to_fw(windows.rules_from_input(
            [{"name": "A", "protocol": "tcp", "dst_ports": [80], "src_ports": [1024]}])[0], GROUP, PREFIX)),):
        keys = [k for k, _v in fields]
        assert keys.index("Protocol") < keys.index("LocalPorts") and keys.index("Protocol") < keys.index("RemotePorts")
    assert windows_changes.UPDATE_ORDER.index("Protocol") < windows_changes.UPDATE_ORDER.index("LocalPorts")


def test_scripts_live_in_ps1_files_of_the_collection():
    for name, text in (("read", windows.READ_PS1), ("apply", windows.APPLY_PS1)):
        path = os.path.join(windows.SCRIPT_DIR, name + ".ps1")
        assert os.path.isfile(path)
        assert "#include common.ps1" not in text and "function Get-FirewallState" in text


def test_fake_enforces_protocol_before_ports():
    rule_ = fake_windows.FakeRule()
    with pytest.raises(fake_windows.ComError):
        rule_.LocalPorts = "80"
    rule_.Protocol = 6
    rule_.LocalPorts = "80"
    with pytest.raises(fake_windows.ComError):
        rule_.Protocol = 1


def test_fake_removes_the_first_rule_of_a_name():
    fake = bare_host()
    fake.add(Name="x", Grouping="a")
    fake.add(Name="x", Grouping="b")
    fake.remove("x")
    assert [r.Grouping for r in fake.store] == ["b"]
    fake.remove("nothing")      # no effect, no error
    assert len(fake.store) == 1
