# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_nap_firewall's apply can never cut the controller off (issue #15), on the strict fake Windows host.

The fake host (fake_windows.py, synthetic) drops the connection the moment no enabled rule admits the
controller (203.0.113.10, the plan's management source) on the management port (5986, the plan's), so
every test here would see a lockout as an unreachable host.  Fault injection: ``fail_at`` makes the N-th
COM operation (a property set, an Add, a Remove) fail; the tests run the apply once per N.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import sys

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_changes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_windows  # noqa: E402  pylint: disable=wrong-import-position
from test_win_nap_firewall import PLAN, Runner  # noqa: E402  pylint: disable=wrong-import-position

PREFIX, GROUP = windows.DEFAULT_PREFIX, windows.DEFAULT_GROUP
CONTROLLER = ("203.0.113.10", 5986)
WANTED = PLAN["hosts"]["nps01"]["inbound"]


def planned_fw(name):
    rule = [r for r in windows.rules_from_input(WANTED) if r.name == name][0]
    return dict(windows.rule_to_fw(rule, GROUP, PREFIX))


def old_store():
    """An owned group from an older plan: the management rule wider (a /24), a rule on another protocol,
    a rule on another port, a rule no longer planned, one planned rule missing."""
    mgmt = planned_fw("MGMT-WINRM-TCP-IN")
    mgmt["RemoteAddresses"] = "203.0.113.0/255.255.255.0"
    proto = planned_fw("NAP-SHV-INSTALL-TCP-IN")
    proto.update(Protocol=17, LocalPorts="446")
    port = planned_fw("DHCP-RADIUS-UDP-IN")
    port.update(LocalPorts="1645,1646", Description="old")
    gone = planned_fw("IPSEC-HRA-RADIUS-UDP-IN")
    gone.update(Name=PREFIX + "OLD-RULE", Description="no longer planned")
    keep = [planned_fw(n) for n in ("NAP-SHV-CONFIG-TCP-IN-EPMAP", "NAP-SHV-CONFIG-TCP-IN-RPC")]
    return [mgmt, proto, port, gone] + keep


def host(rules=None, **kw):
    kw.setdefault("controller", CONTROLLER)
    return fake_windows.FakeWindowsHost(rules=old_store() if rules is None else rules, **kw)


def model_of_store(fake):
    state = windows_changes.HostState({"rules": [r.record() for r in fake.store if r.Grouping == GROUP]}, GROUP, PREFIX)
    return sorted((windows.to_model(r, PREFIX) for r in state.owned), key=lambda r: r["name"])


def by_name(rules):
    return sorted(rules, key=lambda r: r["name"])


def clean_run_steps():
    fake = host()
    result = Runner(fake)(plan=PLAN)
    assert not result.get("failed"), result.get("msg")
    return fake.steps


STEPS = clean_run_steps()


def test_a_converge_is_two_calls_and_a_noop_one_call_and_one_walk():
    fake = host()
    run = Runner(fake)
    first = run(plan=PLAN)
    assert not first.get("failed"), first.get("msg")
    assert first["_calls"] == ["read", "apply"] and first["remote_calls"] == 2 and first["_walks"] == 2
    assert [op["op"] for op in first["apply_results"]][-1] == "remove"          # removal last
    assert first["apply_results"][0]["name"] == PREFIX + "MGMT-WINRM-TCP-IN"    # management first
    assert by_name(first["after"]) == model_of_store(fake) and first["left"] == {}
    again = run(plan=PLAN)
    assert again["changed"] is False and again["_calls"] == ["read"] and again["_walks"] == 1
    assert all(fake.admitted_log) and not fake.unreachable


def test_updates_are_in_place_on_the_existing_rule_objects():
    fake = host()
    objects = dict((r.Name, r) for r in fake.store)
    assert not Runner(fake)(plan=PLAN).get("failed")
    for name in ("MGMT-WINRM-TCP-IN", "NAP-SHV-INSTALL-TCP-IN", "DHCP-RADIUS-UDP-IN"):
        now = [r for r in fake.store if r.Name == PREFIX + name]
        assert len(now) == 1 and now[0] is objects[PREFIX + name], name
    assert fake.find(PREFIX + "NAP-SHV-INSTALL-TCP-IN")[0].Protocol == 6
    assert fake.find(PREFIX + "OLD-RULE") == []


@pytest.mark.parametrize("fail_at", range(1, STEPS + 1))
def test_a_failure_at_every_step_keeps_the_controller_admitted_and_is_reported_exactly(fail_at):
    fake = host()
    fake.fail_at = fail_at
    run = Runner(fake)
    result = run(plan=PLAN)
    label = dict(fake.step_log)[fail_at]
    assert not fake.unreachable and all(fake.admitted_log) and fake.admits()
    assert result["failed"] and "injected failure at step %d" % fail_at in result["msg"], (label, result.get("msg"))
    assert "nps01" in result["msg"] and "partial apply" in result["msg"]
    # 'after' is what the host really holds (read back in the same call), 'left' what the next run does
    assert by_name(result["after"]) == model_of_store(fake)
    assert result["left"] and any(result["left"].values())
    failed = [r for r in result["apply_results"] if r.get("error")]
    assert len(failed) == 1 and all(r.get("skipped") for r in result["apply_results"][result["apply_results"].index(
        failed[0]) + 1:])
    assert result["_calls"] == ["read", "apply"]
    # nothing was removed after the failure: every old rule that is not planned is still there unless removed before
    removed = [r for r in result["apply_results"] if r["op"] == "remove" and r.get("ok")]
    assert len([r for r in fake.store if r.Description == "no longer planned"]) == (0 if removed else 1)
    fake.fail_at = None
    second = run(plan=PLAN)
    assert not second.get("failed"), second.get("msg")
    assert run(plan=PLAN)["changed"] is False and all(fake.admitted_log)


def test_a_failed_update_of_the_management_rule_keeps_it_in_place():
    # before issue #15 an update was Remove + Add: a failing Add left the host without MGMT-WINRM
    fake = host()
    fake.fail_at = 1            # the first property set of the first op: the management rule's update
    result = Runner(fake)(plan=PLAN)
    assert result["failed"] and "MGMT-WINRM-TCP-IN" in result["msg"]
    assert len(fake.find(PREFIX + "MGMT-WINRM-TCP-IN")) == 1 and fake.admits() and not fake.unreachable


def test_management_update_that_would_cut_on_its_way_is_refused_before_any_change():
    # the management rule moves to another source: every intermediate state is checked
    fake = host([planned_fw("MGMT-WINRM-TCP-IN")])
    moved = copy.deepcopy(WANTED)
    for rule in moved:
        if rule["flow_id"] == "MGMT-WINRM":
            rule["src_addresses"] = ["198.51.100.0/24"]
    result = Runner(fake)(rules=moved, management_sources=["203.0.113.10/32"])
    assert result["failed"] and "203.0.113.10/32" in result["msg"] and result["_calls"] == ["read"]
    assert fake.steps == 0


# ---------------------------------------------------------------------------
# Duplicate names
# ---------------------------------------------------------------------------
def test_removal_by_a_shared_name_never_deletes_the_foreign_rule():
    # Item() returns the first rule of a name, Remove() deletes the last: the two hit different rules.
    owned = planned_fw("NAP-SHV-INSTALL-TCP-IN")
    owned["Name"] = PREFIX + "SHARED"
    foreign = dict(owned, Grouping="Corp", Description="a foreign rule of the same name")
    fake = host([planned_fw("MGMT-WINRM-TCP-IN"), owned], duplicate_names="split")
    # the read did not see the foreign rule (it came between read and apply)
    state = windows_changes.HostState({"rules": [r.record() for r in fake.store]}, GROUP, PREFIX)
    _rdiff, ops = windows_changes.plan_changes(windows.full_rules(windows.rules_from_input(
        [r for r in WANTED if r["flow_id"] == "MGMT-WINRM"]), PREFIX), state)
    fake.add(**foreign)
    reply = fake.execute_module(module_name="ansible.windows.win_powershell", module_args={
        "script": windows.APPLY_PS1, "parameters": windows.apply_parameters(GROUP, ops, PREFIX, (5986,))})
    doc = json.loads(reply["result"])
    assert doc["results"][0]["ok"] and doc["results"][0]["op"] == "remove"
    left = [r.record() for r in fake.store if r.Name == PREFIX + "SHARED"]
    assert left == [dict(fake_windows.RULE_DEFAULTS, **foreign)]


def test_an_owned_name_used_outside_the_group_is_refused_naming_host_and_rule():
    fake = host([planned_fw("MGMT-WINRM-TCP-IN")], duplicate_names="split")
    fake.add(**dict(planned_fw("NAP-SHV-INSTALL-TCP-IN"), Grouping="Corp"))
    before = [r.record() for r in fake.store]
    result = Runner(fake)(plan=PLAN)
    assert result["failed"] and "nps01" in result["msg"] and PREFIX + "NAP-SHV-INSTALL-TCP-IN" in result["msg"]
    assert "Corp" in result["msg"] and [r.record() for r in fake.store] == before


def test_duplicated_owned_management_rule_is_collapsed_without_a_gap():
    # two copies of MGMT-WINRM, the first disabled: before issue #15 every copy was removed, then one added
    good = planned_fw("MGMT-WINRM-TCP-IN")
    bad = dict(good, Enabled=False, Description="disabled copy")
    fake = host([bad, good], duplicate_names="split")
    result = Runner(fake)(plan=PLAN)
    assert not result.get("failed"), result.get("msg")
    assert len(fake.find(PREFIX + "MGMT-WINRM-TCP-IN")) == 1 and all(fake.admitted_log) and not fake.unreachable
    assert Runner(fake)(plan=PLAN)["changed"] is False


# ---------------------------------------------------------------------------
# The lockout check as Windows decides it
# ---------------------------------------------------------------------------
SOURCES = ["203.0.113.10/32"]
NO_MGMT = [r for r in WANTED if r["flow_id"] != "MGMT-WINRM"]


def test_the_one_management_port_counts_not_either_winrm_port():
    fake = host([])
    fake.add(Name="WinRM HTTP", Grouping="Corp", Protocol=6, LocalPorts="5985", Enabled=True)
    result = Runner(fake)(rules=NO_MGMT, management_sources=["203.0.113.10/32"])
    assert result["failed"] and "5986" in result["msg"] and result["_calls"] == ["read"] and fake.steps == 0


def test_group_policy_decides_the_effective_state():
    # the local profile says the firewall is off, Group Policy turns it on: only the owned rule admits
    fake = host([planned_fw("MGMT-WINRM-TCP-IN")])
    fake.profiles["domain"]["enabled"] = False
    fake.group_policy["profiles"]["domain"] = {"EnableFirewall": 1}
    result = Runner(fake)(state="absent", management_sources=SOURCES)
    assert result["failed"] and "WinRM" in result["msg"] and result["_calls"] == ["read"] and fake.admits()
    # a policy rule that admits the controller is enough
    fake.group_policy["rules"] = ["v2.10|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=5986|RA4=203.0.113.0/24|"]
    result = Runner(fake)(state="absent", management_sources=SOURCES)
    assert not result.get("failed"), result.get("msg")
    assert not fake.unreachable and fake.owned() == []


def test_local_rules_do_not_count_when_policy_forbids_the_merge():
    fake = host([])
    fake.add(Name="WinRM local", Grouping="Corp", Protocol=6, LocalPorts="5986", Enabled=True)
    fake.group_policy["profiles"]["domain"] = {"AllowLocalPolicyMerge": 0}
    fake.controller = None          # the host would not be reachable at all; the check must say so
    result = Runner(fake)(rules=NO_MGMT, management_sources=["203.0.113.10/32"], local_policy_override="warn")
    assert result["failed"] and "WinRM" in result["msg"] and result["_calls"] == ["read"]


@pytest.mark.parametrize("field,value", [
    ("Interfaces", "Ethernet 2"), ("InterfaceTypes", "Wireless"), ("LocalAddresses", "192.0.2.1"),
    ("RemotePorts", "1024-65535"), ("EdgeTraversal", True), ("SecureFlags", 1),
    ("RemoteUserAuthorizedList", "O:LSD:(A;;CC;;;S-1-5-32-544)"),
])
def test_a_narrowed_foreign_rule_does_not_count(field, value):
    fake = host([planned_fw("MGMT-WINRM-TCP-IN")])
    fake.add(Name="WinRM narrowed", Grouping="Corp", Protocol=6, LocalPorts="5986", Enabled=True, **{field: value})
    result = Runner(fake)(state="absent", management_sources=SOURCES)
    assert result["failed"] and "WinRM" in result["msg"] and result["_calls"] == ["read"]
    assert len(fake.owned()) == 1 and not fake.unreachable


def test_a_plain_foreign_rule_counts():
    fake = host([planned_fw("MGMT-WINRM-TCP-IN")])
    fake.add(Name="WinRM", Grouping="Corp", Protocol=6, LocalPorts="5986", Enabled=True)
    assert not Runner(fake)(state="absent", management_sources=SOURCES).get("failed") and fake.owned() == [] and not fake.unreachable


# ---------------------------------------------------------------------------
# Values Windows refuses
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["present", "absent", "gathered", "rendered"])
@pytest.mark.parametrize("field", ["name", "description"])
def test_pipe_is_refused_in_every_state_before_any_call(state, field):
    fake = host()
    rule = {"name": "A", "protocol": "tcp", "dst_ports": [1], "src_addresses": ["192.0.2.1"]}
    rule[field] = "A|B"
    result = Runner(fake)(rules=[rule], state=state, management_sources=["203.0.113.10/32"])
    assert result["failed"] and "A|B" in result["msg"] and "nps01" in result["msg"]
    assert result["_calls"] == [] and fake.steps == 0


def test_prefix_with_host_bits_reads_back_without_drift():
    fake = host([planned_fw("MGMT-WINRM-TCP-IN")])
    rules = [r for r in WANTED if r["flow_id"] == "MGMT-WINRM"] + [
        {"name": "NET", "protocol": "tcp", "dst_ports": [80], "src_addresses": ["10.0.0.2/8"]}]
    run = Runner(fake)
    assert not run(rules=rules, management_sources=["203.0.113.10/32"]).get("failed")
    assert fake.find(PREFIX + "NET")[0].RemoteAddresses == "10.0.0.0/255.0.0.0"
    assert run(rules=rules, management_sources=["203.0.113.10/32"])["changed"] is False


def test_the_fake_refuses_what_windows_refuses():
    rule = fake_windows.FakeRule()
    for key, value in (("Name", "a|b"), ("Description", "a|b"), ("Protocol", 257), ("LocalAddresses", "DNS"),
                       ("RemoteAddresses", "any"), ("RemoteAddresses", "*,192.0.2.1")):
        with pytest.raises(fake_windows.ComError):
            setattr(rule, key, value)
    rule.RemoteAddresses = "DNS"
    rule.Protocol = 6
    for value in ("80-70", "70000", "http", "1,,2"):
        with pytest.raises(fake_windows.ComError):
            rule.LocalPorts = value
    with pytest.raises(fake_windows.ComError):
        rule.RemotePorts = "RPC"
    rule.LocalPorts = "RPC"
    with pytest.raises(fake_windows.ComError):
        rule.Direction = 2                     # the RPC keywords are for inbound rules only
    with pytest.raises(fake_windows.ComError):
        rule.Protocol = 17


# ---------------------------------------------------------------------------
# netsh-made rules (issue #16 item 3)
# ---------------------------------------------------------------------------
def test_a_netsh_made_rule_with_a_planned_name_is_adopted():
    netsh = planned_fw("NAP-SHV-INSTALL-TCP-IN")
    netsh["Grouping"] = ""
    stray = dict(netsh, Name=PREFIX + "NOT-PLANNED")
    fake = host([planned_fw("MGMT-WINRM-TCP-IN"), netsh, stray])
    objects = dict((r.Name, r) for r in fake.store)
    result = Runner(fake)(plan=PLAN)
    assert not result.get("failed"), result.get("msg")
    adopted = fake.find(PREFIX + "NAP-SHV-INSTALL-TCP-IN")
    assert len(adopted) == 1 and adopted[0] is objects[PREFIX + "NAP-SHV-INSTALL-TCP-IN"] and adopted[0].Grouping == GROUP
    assert fake.find(PREFIX + "NOT-PLANNED")[0].Grouping == ""          # not planned: left alone, with a warning
    assert any("NOT-PLANNED" in w for w in result.get("warnings", []))
    assert Runner(fake)(plan=PLAN)["changed"] is False
