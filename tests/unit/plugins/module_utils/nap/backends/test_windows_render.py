# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""state: rendered made as safe as the managed path (issue 16, items 1, 2 and 4).

* Text: ASCII only, PowerShell escapes for other characters (netsh refuses them naming the rule), the
  requirement checks on the first lines, PowerShell 2.0 syntax for the COM script, every PowerShell form
  parsed by the tree-sitter grammar, no removal written before the last add/update and the guard.
* Effect: tests/unit/plugins/action/render_interpreter.py runs each rendered script's steps (read from the
  rendered text) against the fake Windows host, from several stores, and the end state is compared with the
  managed path (the real action plugin applying to the same fake store); the guard stops before removal.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import sys
from unittest.mock import MagicMock

import pytest

from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task

from ansible_collections.configmgr.nap.plugins.action.win_nap_firewall import ActionModule
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_changes
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_render
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, *[os.pardir] * 6))
ACTION_TESTS = os.path.join(ROOT, "tests", "unit", "plugins", "action")
sys.path.insert(0, ACTION_TESTS)
import fake_windows  # noqa: E402  pylint: disable=wrong-import-position,import-error
import render_interpreter as interp  # noqa: E402  pylint: disable=wrong-import-position,import-error
from test_win_nap_firewall import PLAN  # noqa: E402  pylint: disable=wrong-import-position,import-error

GROUP, PREFIX = windows.DEFAULT_GROUP, windows.DEFAULT_PREFIX
HOST = "nps01"
SOURCES = plandoc.management_sources(PLAN)
PORT = plandoc.management_port(PLAN, HOST)
FIXTURE = os.path.join(ACTION_TESTS, "fixtures", "windows", "synthetic-2008r2-sp1.json")
PLAN_RULES = windows.rules_from_input(windows.rules_from_plan(PLAN, HOST))
MGMT = PREFIX + "MGMT-WINRM-TCP-IN"

ODD_RULES = windows.rules_from_input([
    {"name": "MGMT-WINRM-TCP-IN", "protocol": "tcp", "src_addresses": ["203.0.113.10"], "dst_ports": [5986],
     "description": u"\u0423\u043f\u0440\u0430\u0432\u043b\u0435\u043d\u0438\u0435 WinRM \u2018quoted\u2019 \"$x\" `n"},
    {"name": "ICMP-IN", "protocol": "icmp", "src_addresses": ["2001:db8::/64"],
     "description": u"R\u00e9seau: emoji \U0001F600 and it's 100%", "source": u"\u0416 source"},
    {"name": "GRE-IN", "protocol": "gre"},
    {"name": "DNS-OUT", "direction": "out", "protocol": "udp", "dst_addresses": ["192.0.2.5"], "dst_ports": [53],
     "src_ports": ["49152-65535"]},
    {"name": "RPC-IN", "protocol": "tcp", "src_addresses": ["192.0.2.10"], "dst_ports": ["rpc-epmap"]},
])


def render(form, rules=None, **kw):
    kw.setdefault("management_sources", SOURCES)
    kw.setdefault("management_port", PORT)
    kw.setdefault("host", HOST)
    func = {"com": windows_render.render_com, "netsecurity": windows_render.render_netsecurity,
            "netsh": windows_render.render_netsh}[form]
    return func(PLAN_RULES if rules is None else rules, **kw)


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------
def _ascii_only(text):
    return [c for c in text if ord(c) > 0x7E or (ord(c) < 0x20 and c not in "\r\n")]


@pytest.mark.parametrize("form", ["com", "netsecurity"])
def test_powershell_is_ascii_and_escapes_other_characters(form):
    text = render(form, ODD_RULES)
    assert _ascii_only(text) == []
    assert "$([char]0x0423)" in text and "$([char]0xD83D)$([char]0xDE00)" in text
    data = interp.parse_powershell(text)
    assert data.group == GROUP
    assert [w["Description"] for w in data.wanted[:2]] == [
        windows.encode_description(ODD_RULES[0], ODD_RULES[0].name),
        windows.encode_description(ODD_RULES[1], ODD_RULES[1].name)]
    assert u"\u0416 source" in data.wanted[1]["Description"]


@pytest.mark.parametrize("text", [u"", u"plain", u"it's", u"\u2018x\u2019", u"$env:x `n \"q\"", u"\u0416$(x)",
                                  u"tab\there", u"line\nbreak", u"\U0001F600", u"'", u"`"])
def test_ps_text_round_trips_in_ascii(text):
    literal = windows_render.ps_text(text)
    assert _ascii_only(literal) == []
    assert interp.ps_value(literal) == (text, "")


def test_netsh_refuses_non_ascii_naming_the_rule():
    with pytest.raises(NapError, match=r"netsh: rule 'configmgr\.nap MGMT-WINRM-TCP-IN': the description holds U\+0423"):
        render("netsh", ODD_RULES)
    with pytest.raises(NapError, match=r"rule 'configmgr\.nap ICMP-IN': the description holds U\+00E9"):
        render("netsh", ODD_RULES[1:])
    assert windows_render.ascii_comment(u"a\u0416b") == "a<U+0416>b"
    # state: rendered keeps the PowerShell forms; the .cmd file names the rule and changes nothing
    texts = windows_render.render_all(ODD_RULES, host=HOST, management_sources=SOURCES, management_port=PORT)
    lines = texts["netsh"].split("\r\n")
    assert lines[0] == "@echo off" and lines[-2:] == ["exit /b 1", ""] and _ascii_only(texts["netsh"]) == []
    assert "echo configmgr.nap: netsh file not rendered: rule 'configmgr.nap MGMT-WINRM-TCP-IN': the description " \
        "holds U+0423" in texts["netsh"]
    assert not [line for line in lines if line.startswith("netsh")]
    assert texts["com"] == render("com", ODD_RULES)
    fake = fixture_host()
    before = snapshot(fake)
    run = interp.run_netsh(fake, texts["netsh"])
    assert run.exit_code == 1 and run.steps == [] and snapshot(fake) == before


def test_netsh_deletes_nothing_and_every_name_carries_the_prefix():
    text = render("netsh")
    assert _ascii_only(text) == []
    assert "delete rule" not in text
    names = re.findall(r'(?:add rule|set rule|show rule|new) name="([^"]*)"', text)
    assert names and all(n.startswith(PREFIX) for n in names)
    assert sorted(set(names)) == sorted(PREFIX + r.name for r in PLAN_RULES)


@pytest.mark.parametrize("form,first,check", [
    ("com", "#Requires -Version 2.0", "$PSVersionTable.PSVersion.Major -lt 2"),
    ("netsecurity", "#Requires -Version 3.0", "Get-Module -ListAvailable -Name NetSecurity"),
])
def test_powershell_states_and_checks_its_requirements_first(form, first, check):
    lines = render(form).split("\n")
    assert lines[0] == first
    usage = [line for line in lines[:6] if line.startswith("# Usage: ")]
    assert usage and "powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\\nps01-nap-%s.ps1" % form in usage[0]
    head = "\n".join(lines[:30])
    assert check in head and "exit 2" in head
    assert "IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)" in head and "exit 3" in head
    # the checks come before anything touches the firewall
    assert head.index("exit 3") < "\n".join(lines).index("New-Object -ComObject HNetCfg.FwPolicy2\n")


def test_netsh_checks_administrator_rights_first():
    lines = render("netsh").split("\r\n")
    admin = lines.index("net session >nul 2>&1")
    assert lines[:2] == ["@echo off", "setlocal"] and admin < 10
    assert lines[admin + 1].startswith("if errorlevel 1 (echo configmgr.nap: run this file as an administrator")
    assert "exit /b 3" in lines[admin + 1]
    assert not [line for line in lines[:admin] if line.startswith("netsh")]


def test_com_script_is_powershell_2_syntax():
    text = render("com", ODD_RULES)
    for construct in ("[ordered]", "::new(", " -in ", " -notin ", "[pscustomobject]", "ConvertTo-Json",
                      "ConvertFrom-Json", "#Requires -RunAsAdministrator", "-PipelineVariable"):
        assert construct.lower() not in text.lower(), construct


def _index(lines, needle, last=False):
    hits = [i for i, line in enumerate(lines) if needle in line and not line.lstrip().startswith("#")]
    assert hits, needle
    return hits[-1] if last else hits[0]


@pytest.mark.parametrize("form,writes,removal", [
    ("com", ["$policy.Rules.Add($want)", "Update-NapComRule -Have"], "$policy.Rules.Remove($name)"),
    ("netsecurity", ["New-NetFirewallRule -Name", "Set-NetFirewallRule -Name $id -NewDisplayName",
                     "$have.Grouping = $group"], "Remove-NetFirewallRule -Name $id"),
])
def test_no_removal_is_written_before_the_last_addition_or_update_and_the_guard(form, writes, removal):
    lines = render(form).split("\n")
    first_removal = _index(lines, removal)
    assert len([line for line in lines if removal in line]) == 1
    assert max(_index(lines, w, last=True) for w in writes) < first_removal
    assert _index(lines, "$problem = Test-NapGuard") < first_removal
    guard = "\n".join(lines[_index(lines, "$problem = Test-NapGuard"):first_removal])
    assert "exit 4" in guard


def _parser():
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError:
        return None
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


@pytest.mark.parametrize("form", ["com", "netsecurity"])
@pytest.mark.parametrize("case", ["plan", "odd", "no-guard"])
def test_rendered_powershell_parses(form, case):
    """The parser of hack/check_ps1.py (tree-sitter PowerShell) on the rendered text: no ERROR/MISSING node."""
    sys.path.insert(0, os.path.join(ROOT, "hack"))
    import check_ps1  # pylint: disable=import-error
    parser = _parser()
    if parser is None:
        pytest.skip("tree-sitter-powershell is not installed (requirements-dev.txt)")
    rules = {"plan": PLAN_RULES, "odd": ODD_RULES, "no-guard": ODD_RULES[1:]}[case]
    assert check_ps1.errors(parser, render(form, rules, mask=3)) == []


def test_guard_names_the_management_rule_or_says_why_there_is_none():
    assert windows_render.guard_rules(PLAN_RULES, PREFIX, SOURCES, PORT) == ([MGMT], "")
    names, problem = windows_render.guard_rules(PLAN_RULES, PREFIX, SOURCES, 5985)
    assert names == [] and "no rule of this script admits TCP 5985 from 203.0.113.10/32" in problem
    split = windows.rules_from_input([
        {"name": "A", "protocol": "tcp", "src_addresses": ["10.0.0.0/25"], "dst_ports": [5985]},
        {"name": "B", "protocol": "tcp", "src_addresses": ["10.0.0.128/25"], "dst_ports": ["5980-5990"]},
        {"name": "C", "protocol": "udp", "dst_ports": [5985]}])
    assert windows_render.guard_rules(split, PREFIX, ["10.0.0.0/24"], 5985) == ([PREFIX + "A", PREFIX + "B"], "")
    assert windows_render.guard_rules(split, PREFIX, None, 5985) == ([PREFIX + "A"], "")
    data = interp.parse_powershell(render("com"))
    assert (data.guard_rules, data.port, data.sources) == ([MGMT], PORT, SOURCES)


# ---------------------------------------------------------------------------
# Effect: the rendered steps on the fake host against the managed path
# ---------------------------------------------------------------------------
def fixture_host():
    with open(FIXTURE) as handle:
        return fake_windows.FakeWindowsHost.from_dump(json.load(handle))


def managed(fake):
    """The real action plugin (state: present) applying to the fake; returns the result."""
    return _managed_for(fake, HOST)


def snapshot(fake):
    return sorted(json.dumps(r.record(), sort_keys=True) for r in fake.store)


def foreign(fake):
    return sorted(json.dumps(r.record(), sort_keys=True) for r in fake.store
                  if r.Grouping != GROUP and not r.Name.startswith(PREFIX))


def _spec_store(fake):
    """A store holding the planned rules as the managed path writes them."""
    result = managed(fake)
    assert not result.get("failed"), result.get("msg")
    return fake


def store_empty():
    return fixture_host()


def store_drifted():
    fake = _spec_store(fixture_host())
    fake.edit(PREFIX + "NAP-SHV-INSTALL-TCP-IN", LocalPorts="446", Description="edited")
    fake.edit(PREFIX + "DHCP-RADIUS-UDP-IN", Enabled=False, ApplicationName="C:\\x.exe")
    rule = fake.find(PREFIX + "IPSEC-HRA-RADIUS-UDP-IN")[0]
    rule.LocalPorts = "*"
    rule.Protocol = 6                      # protocol changed by hand (ports first, as Windows wants)
    rule.LocalPorts = "1812"
    fake.edit(PREFIX + "NAP-SHV-CONFIG-TCP-IN-RPC", Profiles=7)           # the same profiles: no change
    fake.edit(PREFIX + "NAP-SHV-CONFIG-TCP-IN-EPMAP", Name=PREFIX + "nap-shv-config-tcp-in-epmap")
    fake.add(**dict(fake.find(PREFIX + "NAP-SHV-INSTALL-TCP-IN")[0].record(), RemoteAddresses="*"))  # duplicate
    fake.add(Name=PREFIX + "STALE-TCP-IN", Grouping=GROUP, Protocol=6, LocalPorts="8080", Enabled=True)
    fake.add(Name="added by hand", Grouping=GROUP, Protocol=17, LocalPorts="69", Enabled=True)
    return fake


def store_foreign_names():
    fake = store_drifted()
    for rule in PLAN_RULES:                # the model names without the prefix, in other groups and in none
        fake.add(Name=rule.name, Grouping="Other vendor", Protocol=6, LocalPorts="1", Enabled=True)
        fake.add(Name=rule.name, Grouping="", Protocol=17, LocalPorts="2", Enabled=True)
    fake.add(Name=PREFIX + "NOT-PLANNED", Grouping="Someone else", Protocol=6, LocalPorts="3", Enabled=True)
    return fake


def store_management_missing():
    fake = store_drifted()
    fake.delete(MGMT)
    return fake


STORES = {"empty": store_empty, "drifted": store_drifted, "foreign-names": store_foreign_names,
          "management-missing": store_management_missing}


def _run(form, fake, text=None, **kw):
    text = text or render(form)
    if form == "netsh":
        return interp.run_netsh(fake, text, **kw)
    return interp.run_powershell(fake, text, **kw)


def _assert_order(steps):
    kinds = [k for k, _n in steps]
    if "remove" in kinds:
        first = kinds.index("remove")
        assert "guard" in kinds[:first], steps
        assert not [k for k in kinds[first:] if k in ("add", "update")], steps


@pytest.mark.parametrize("store", list(STORES))
@pytest.mark.parametrize("form", ["com", "netsecurity"])
def test_powershell_steps_reach_the_managed_end_state_and_run_twice(form, store):
    expected, fake = STORES[store](), STORES[store]()
    result = managed(expected)
    assert not result.get("failed"), result.get("msg")
    before_foreign = foreign(fake)
    run = _run(form, fake)
    assert run.exit_code == 0, run
    _assert_order(run.steps)
    assert snapshot(fake) == snapshot(expected)
    assert foreign(fake) == before_foreign
    again = _run(form, fake)
    assert again.exit_code == 0 and again.steps == [], again
    assert snapshot(fake) == snapshot(expected)


def test_drift_is_repaired_by_update_in_place_and_stale_rules_are_removed_last():
    fake = store_drifted()
    run = _run("com", fake)
    assert ("update", PREFIX + "NAP-SHV-CONFIG-TCP-IN-EPMAP") in run.steps     # the name's case
    assert ("update", PREFIX + "IPSEC-HRA-RADIUS-UDP-IN") in run.steps         # protocol changed back
    assert [s for s in run.steps if s[0] == "remove"] == [
        ("remove", PREFIX + "NAP-SHV-INSTALL-TCP-IN"), ("remove", PREFIX + "STALE-TCP-IN"),
        ("remove", "added by hand")]
    assert not [s for s in run.steps if s[0] == "add"]


@pytest.mark.parametrize("form", ["com", "netsecurity"])
def test_the_management_rule_missing_is_added_before_anything_is_removed(form):
    fake = store_management_missing()
    run = _run(form, fake)
    kinds = [k for k, _n in run.steps]
    assert run.steps[0] == ("add", MGMT) or kinds.index("add") < kinds.index("remove")
    assert kinds.index("guard") < kinds.index("remove") and run.exit_code == 0


@pytest.mark.parametrize("form", ["com", "netsecurity"])
def test_guard_stops_before_removal_naming_the_rule(form):
    # the management rule cannot be added (fails on the host): the script stops before any removal
    fake = store_management_missing()
    fake.fail_add[MGMT] = "Access is denied. (Exception from HRESULT: 0x80070005)"
    before = snapshot(fake)
    run = _run(form, fake)
    assert run.exit_code == 1 and "nothing was removed" in run.output[0] and "Access is denied" in run.output[0]
    assert not [s for s in run.steps if s[0] == "remove"]
    # the plan admits management only on another port: the guard stops and says so
    fake = store_drifted()
    run = _run(form, fake, text=render(form, management_port=5985))
    assert run.exit_code == 4 and not [s for s in run.steps if s[0] == "remove"], run
    assert "no rule of this script admits TCP 5985 from 203.0.113.10/32" in run.output[0]
    assert fake.find(PREFIX + "STALE-TCP-IN") and before != snapshot(fake)     # added/updated, nothing removed
    # the named rule is not on the host (a guard rule that is not among the rules written): named in the output
    fake = store_drifted()
    text = render(form).replace("$guardRules = @('%s')" % MGMT, "$guardRules = @('%sNOT-THERE')" % PREFIX)
    run = _run(form, fake, text=text)
    assert run.exit_code == 4 and "the rule 'configmgr.nap NOT-THERE' that admits TCP 5986 from 203.0.113.10/32 " \
        "is not on the host" in run.output[0]
    assert not [s for s in run.steps if s[0] == "remove"] and fake.find(PREFIX + "STALE-TCP-IN")
    # -SkipLockoutGuard removes anyway (the admin's explicit choice)
    fake = store_drifted()
    run = _run(form, fake, text=render(form, management_port=5985), skip_guard=True)
    assert run.exit_code == 0 and not fake.find(PREFIX + "STALE-TCP-IN")


@pytest.mark.parametrize("form", ["com", "netsecurity"])
def test_a_foreign_rule_with_an_owned_name_stops_the_script_before_any_change(form):
    fake = store_drifted()
    fake.add(Name=MGMT, Grouping="Other vendor", Protocol=6, LocalPorts="5986", Enabled=True)
    before = snapshot(fake)
    assert managed(copy.deepcopy(fake)).get("failed")          # the managed path refuses too
    run = _run(form, fake)
    assert run.exit_code == 5 and "'%s' (group 'Other vendor')" % MGMT in run.output[0]
    assert run.steps == [] and snapshot(fake) == before


def _no_program(record):
    """netsh set rule cannot clear a program condition (there is no value for "none"): the one hand edit the
    netsh file leaves, checked here and then set aside."""
    if record["ApplicationName"]:
        assert record["Name"] == PREFIX + "DHCP-RADIUS-UDP-IN" and record["ApplicationName"] == "C:\\x.exe"
        record["ApplicationName"] = ""
    return record


def test_netsh_updates_in_place_adds_the_rest_and_deletes_nothing():
    for store in STORES:
        fake, expected = STORES[store](), STORES[store]()
        managed(expected)
        before_foreign, before_names = foreign(fake), set(r.Name.lower() for r in fake.store)
        before_count = len(fake.store)
        run = _run("netsh", fake)
        assert run.exit_code == 0, (store, run)
        assert set(r.Name.lower() for r in fake.store) >= before_names    # nothing deleted
        assert len(fake.store) >= before_count
        assert foreign(fake) == before_foreign
        for rule in PLAN_RULES:                                          # every planned rule as the plan says
            name = PREFIX + rule.name
            have = [windows.fw_to_rule(_no_program(r.record()), PREFIX).to_dict() for r in fake.find(name)]
            want = [windows.fw_to_rule(_no_program(r.record()), PREFIX).to_dict() for r in expected.find(name)]
            assert have and all(h == want[0] for h in have), (store, name, have, want)
        again = _run("netsh", fake)
        assert again.exit_code == 0 and all(k == "update" for k, _n in again.steps)


def test_netsh_then_com_script_adopts_the_rules_into_the_group_and_ends_as_the_managed_path():
    fake, expected = store_empty(), store_empty()
    managed(expected)
    assert _run("netsh", fake).exit_code == 0
    assert {r.Grouping for r in fake.store if r.Name.startswith(PREFIX)} == {""}
    run = _run("com", fake)
    assert run.exit_code == 0 and {k for k, _n in run.steps} == {"update"}
    assert snapshot(fake) == snapshot(expected)


def test_netsh_fails_when_not_run_as_administrator():
    fake = store_empty()
    before = snapshot(fake)
    run = interp.run_netsh(fake, render("netsh"), admin=False)
    assert run.exit_code == 3 and snapshot(fake) == before


WINDOWS_HOSTS = sorted(h for h, e in PLAN["hosts"].items() if e.get("platform", "windows") == "windows")


@pytest.mark.parametrize("host", WINDOWS_HOSTS)
def test_every_windows_host_of_the_plan_converges_like_the_managed_path(host):
    """For each Windows host of the example plan: from a store without owned rules, the COM and NetSecurity
    scripts reach the managed end state and the netsh file writes the same rules (without the group)."""
    rules = windows.rules_from_input(windows.rules_from_plan(PLAN, host))
    port = plandoc.management_port(PLAN, host)
    expected = fixture_host()
    task_result = _managed_for(expected, host)
    assert not task_result.get("failed"), task_result.get("msg")
    for form in ("com", "netsecurity", "netsh"):
        fake = fixture_host()
        text = render(form, rules, host=host, management_port=port)
        assert _ascii_only(text) == []
        run = _run(form, fake, text=text)
        assert run.exit_code == 0 and {k for k, _n in run.steps} <= {"add"}, (form, run)
        if form == "netsh":
            for rule in fake.store:
                if rule.Grouping == "" and rule.Name.startswith(PREFIX):
                    rule.Grouping = GROUP
        assert snapshot(fake) == snapshot(expected), form


def _managed_for(fake, host):
    task = Task()
    task.action = "configmgr.nap.win_nap_firewall"
    task.args = {"plan": PLAN, "host": host}
    task.check_mode = False
    task.diff = False
    action = ActionModule(task, MagicMock(), PlayContext(), loader=MagicMock(), templar=MagicMock(),
                          shared_loader_obj=MagicMock())
    action._execute_module = lambda **kw: fake.execute_module(check_mode=False, **kw)
    return action.run(task_vars={"inventory_hostname": host})


ICMP_RULES = windows.rules_from_input([
    {"name": "MGMT-WINRM-TCP-IN", "flow_id": "MGMT-WINRM", "protocol": "tcp", "src_addresses": ["203.0.113.10"],
     "dst_ports": [5986]},
    {"name": "PING-IN", "flow_id": "CM-PUSH-ICMP", "protocol": "icmp", "icmp_type": "echo-request",
     "src_addresses": ["192.0.2.10", "2001:db8::10"]},
])


@pytest.mark.parametrize("form", ["com", "netsecurity", "netsh"])
def test_rendered_icmp_echo_request_converges_to_what_the_module_writes(form):
    """Every rendered form writes ICMP echo request as the COM apply does (ICMPv4 8:* and an ICMPv6 128:* rule)."""
    fake = fake_windows.FakeWindowsHost()
    text = render(form, ICMP_RULES, management_sources=["203.0.113.10/32"], management_port=5986)
    result = interp.run_netsh(fake, text) if form == "netsh" else interp.run_powershell(fake, text)
    assert result.exit_code == 0, result.output
    icmp = dict((r.Name, (r.Protocol, r.IcmpTypesAndCodes)) for r in fake.store if r.Protocol in (1, 58))
    assert icmp == {PREFIX + "PING-IN": (1, "8:*"), PREFIX + "PING-IN-ICMPV6": (58, "128:*")}
    state = windows_changes.HostState({"rules": [r.record() for r in fake.store]}, GROUP, PREFIX,
                                      adopt=[PREFIX + r.name for r in ICMP_RULES])
    rdiff, _ops = windows_changes.plan_changes(windows.full_rules(ICMP_RULES, PREFIX), state)
    if form == "netsh":       # netsh cannot set the group: the rules differ in Grouping only, adopted on the next run
        assert all("Grouping=(none)" in old.description for old, _new in rdiff.update) and not rdiff.add
    else:
        assert not rdiff.changed, rdiff.summary()
