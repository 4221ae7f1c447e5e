# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan playbook through real ansible-playbook: files written, idempotent, clean failures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4))
PLAYBOOK = os.path.join(ROOT, "playbooks", "plan.yml")
EXAMPLE = os.path.join(ROOT, "examples", "inventory.yml")


def ansible_playbook(*args, **kw):
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        [os.path.join(ROOT, "build", "pytest"), env.get("ANSIBLE_COLLECTIONS_PATH", "")]).rstrip(os.pathsep)
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook")] + list(args)
    return subprocess.run(cmd, env=env, cwd=kw.get("cwd", ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)


def test_plan_writes_reports_and_is_idempotent(tmp_path):
    out = tmp_path / "out"
    first = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "-e", "nap_report_dir=%s" % out)
    assert first.returncode == 0, first.stdout
    assert sorted(os.listdir(str(out))) == ["flows.csv", "flows.json", "flows.md", "topology.mmd"]
    assert "9 hosts, 1 perimeter devices" in first.stdout
    assert "changed=1" in first.stdout
    doc = json.loads((out / "flows.json").read_text())
    seed = {"NAP-AD-WRITE", "NAP-GC-READ", "NAP-SHV-INSTALL", "NAP-SHV-CONFIG", "NAP-SHV-STATUS"}
    assert seed <= {f["id"] for f in doc["flows"]}
    second = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "-e", "nap_report_dir=%s" % out)
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout


def test_check_mode_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "--check", "-e", "nap_report_dir=%s" % out)
    assert result.returncode == 0, result.stdout
    assert not out.exists()


@pytest.mark.parametrize("extra,message", [
    ("nap_ad_ldap_mode=starttls", "nap_ad_ldap_mode is 'starttls'; expected one of ldap, ldaps"),
    ("nap_rpc_dynamic_range=70000-70001", "nap_rpc_dynamic_range is '70000-70001'"),
])
def test_bad_input_fails_with_one_message_and_writes_nothing(tmp_path, extra, message):
    out = tmp_path / "out"
    result = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "-e", "nap_report_dir=%s" % out, "-e", extra)
    assert result.returncode != 0
    assert message in result.stdout and "(nothing was written)" in result.stdout
    assert "Traceback" not in result.stdout and "argument_spec_data" not in result.stdout
    assert not out.exists()


def test_host_without_address_is_named(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  children:\n    nap_site_servers:\n      hosts:\n        cm01.example.com:\n"
                   "    nap_domain_controllers:\n      hosts:\n        dc01:\n          ansible_host: 192.0.2.5\n")
    result = ansible_playbook("-i", str(inv), PLAYBOOK, "-e", "nap_report_dir=%s" % (tmp_path / "out"),
                              "-e", "nap_management_sources=['203.0.113.10']")
    assert result.returncode != 0
    assert "host cm01.example.com (group nap_site_servers) has no usable address" in result.stdout


# ---------------------------------------------------------------------------
# issue 22: the merged variables of the NAP hosts, read without hostvars' per-value templating
# ---------------------------------------------------------------------------
INVENTORY_DIR = {
    "hosts.yml": """
all:
  vars:
    nap_enforcement_methods: [dhcp]
    nap_management_sources: [203.0.113.10/32]
    lab_net: 192.0.2
  children:
    nap_site_servers:
      hosts:
        cm01: {ansible_host: 192.0.2.10}
    nap_shv_points:
      hosts:
        nps01: {ansible_host: 192.0.2.20, nap_platform: windows}
    nap_domain_controllers:
      hosts:
        dc01:
        dc02:
          ansible_host: "{{ lab_net }}.6"
    nap_global_catalogs:
      hosts:
        dc01:
    nap_hras:
      vars:
        ansible_port: 5985
      hosts:
        hra01: {ansible_host: 192.0.2.30}
    windows_tier:
      vars:
        ansible_group_priority: 10
        ansible_port: 5986
      hosts:
        hra01:
    nap_vpn_servers:
      vars:
        ansible_host: "{{ lab_net }}.40"
      hosts:
        vpn01:
    web:
      hosts:
        web01: {ansible_host: 198.51.100.7, nap_platform: linux}
""",
    "group_vars/all.yml": "nap_gc_mode: gc_ssl\n",
    "group_vars/nap_hras.yml": "nap_hra_transport: https\n",
    "group_vars/nap_site_servers.yml": "nap_gc_mode: gc\n",
    "host_vars/dc01.yml": "ansible_host: 192.0.2.5\nnap_rpc_dynamic_range: 50000-50100\n",
}


def _variable_world(tmp_path, extra_vars=None):
    from ansible import context
    from ansible.inventory.manager import InventoryManager
    from ansible.module_utils.common.collections import ImmutableDict
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    for name, text in INVENTORY_DIR.items():
        path = tmp_path / "inv" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    context.CLIARGS = ImmutableDict(extra_vars=[])
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(tmp_path / "inv" / "hosts.yml")])
    manager = VariableManager(loader=loader, inventory=inventory)
    if extra_vars:
        manager._extra_vars = extra_vars
    return inventory, manager, HostVars(inventory, manager, loader)


def _through_hostvars(hostvars, host):
    hvars = hostvars[host]
    return dict((k, hvars[k]) for k in list(hvars.keys()) if nap_plan._wanted(k))


def _nap_plan_action():
    from ansible_collections.configmgr.nap.plugins.action import nap_plan as module
    return module


nap_plan = _nap_plan_action()


def test_inventory_vars_are_those_of_hostvars(tmp_path):
    inventory, manager, hostvars = _variable_world(tmp_path, extra_vars={"nap_ad_ldap_mode": "ldaps"})
    # a set_fact (non-persistent fact) and gathered facts take the exact path
    manager.set_nonpersistent_facts("nps01", {"nap_shv_ports": [1812]})
    manager.set_host_facts("cm01", {"ansible_system": "Win32NT"})
    reader = nap_plan._InventoryVars(hostvars)
    assert reader.fast
    asked = []
    real = type(hostvars).__getitem__

    class Counting(type(hostvars)):
        def __getitem__(self, key):
            asked.append(key)
            return real(self, key)

    hostvars.__class__ = Counting
    names = ["cm01", "nps01", "dc01", "dc02", "hra01", "vpn01", "web01"]
    got = dict((h, reader.get(h)) for h in names)
    hostvars.__class__ = Counting.__mro__[1]
    for host in names:
        assert got[host] == _through_hostvars(hostvars, host), host
    # the vars plugins' files, group priority, extra vars, templates and set_fact are all there
    assert got["dc01"]["ansible_host"] == "192.0.2.5" and got["dc01"]["nap_rpc_dynamic_range"] == "50000-50100"
    assert got["dc02"]["ansible_host"] == "192.0.2.6"
    assert got["hra01"]["ansible_port"] == 5986 and got["hra01"]["nap_hra_transport"] == "https"
    assert got["cm01"]["nap_gc_mode"] == "gc" and got["dc01"]["nap_gc_mode"] == "gc_ssl"
    assert got["web01"]["nap_ad_ldap_mode"] == "ldaps"
    assert got["nps01"]["nap_shv_ports"] == [1812]
    assert got["vpn01"]["ansible_host"] == "192.0.2.40"          # a template in a group's variables
    assert "lab_net" not in got["dc02"]
    # only the hosts with a template (their own or their group's), the one with a set_fact and the one with facts
    # went through hostvars
    assert sorted(asked) == ["cm01", "dc02", "nps01", "vpn01"]


@pytest.mark.parametrize("precedence,fast", [
    (["groups_plugins_play", "groups_plugins_inventory", "groups_inventory", "all_plugins_play",
      "all_plugins_inventory", "all_inventory"], True),
    (["all_inventory", "groups_inventory", "an_entry_of_a_later_ansible"], False),
])
def test_inventory_vars_follow_the_configured_precedence(tmp_path, monkeypatch, precedence, fast):
    from ansible import constants as C
    _inventory, _manager, hostvars = _variable_world(tmp_path)
    monkeypatch.setattr(C, "VARIABLE_PRECEDENCE", precedence)
    reader = nap_plan._InventoryVars(hostvars)
    assert reader.fast is fast
    for host in ("cm01", "dc01", "hra01"):
        assert reader.get(host) == _through_hostvars(hostvars, host), host
    # reversed: the all group's group_vars file wins over the site servers' one; without the vars plugins'
    # entries, neither file is read
    assert reader.get("cm01").get("nap_gc_mode") == ("gc_ssl" if fast else None)


README_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - configmgr.nap.nap_plan:
      register: nap
    - ansible.builtin.debug:
        msg: "{{ nap | configmgr.nap.nap_flows(dst_host='dc01') | map(attribute='id') | list }}"
      register: flows
    - ansible.builtin.debug:
        msg: "{{ nap | configmgr.nap.nap_query(\\"flows[?protocol=='udp'].[id, dst_host]\\") }}"
      register: udp
    - ansible.builtin.assert:
        that:
          - "'NAP-GC-READ' in flows.msg"
          - nap.plan_file is string
          - nap.plan is not defined
          - udp.msg | length > 0
"""


def test_readme_register_and_nap_flows_keep_working(tmp_path):
    playbook = tmp_path / "readme.yml"
    playbook.write_text(README_PLAYBOOK)
    result = ansible_playbook("-i", EXAMPLE, str(playbook), "-v")
    assert result.returncode == 0, result.stdout
    assert "NAP-GC-READ" in result.stdout and "failed=0" in result.stdout


def test_summary_does_not_grow_with_the_estate():
    lines = ["1000 hosts, 2 perimeter devices, 14145 flows (42 catalogue ids)"]
    lines += ["  host%04d   nap_client   1 inbound   0 outbound" % i for i in range(1000)]
    lines += ["  rtr01      perimeter nftables   26 forward", "3 warning(s), listed above and in the report"]
    out = nap_plan.bounded_summary(lines)
    assert out[0] == lines[0] and out[-1] == lines[-1]
    assert out[1:41] == lines[1:41]
    assert out[41].startswith("  ... 961 more host and device lines")
    assert len(out) == 43
    small = lines[:5] + lines[-1:]
    assert nap_plan.bounded_summary(small) == small


# ---------------------------------------------------------------------------
# issue 22: flows.json rendered and written by a forked child on a large plan
# ---------------------------------------------------------------------------
def _example_plan():
    import yaml
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner

    with open(EXAMPLE) as handle:
        doc = yaml.safe_load(handle)
    groups, hostvars = {}, {}
    for group, body in doc["all"]["children"].items():
        groups[group] = list((body or {}).get("hosts") or {})
        for host, hvars in ((body or {}).get("hosts") or {}).items():
            hostvars.setdefault(host, {}).update(hvars or {})
    return planner.plan(groups, hostvars, dict(doc["all"].get("vars") or {}), ["203.0.113.10"])


def _tree(directory):
    return dict((name, (directory / name).read_bytes()) for name in sorted(os.listdir(str(directory))))


def test_the_forked_writer_gives_the_files_and_result_of_the_serial_one(tmp_path, monkeypatch):
    plan = _example_plan()
    formats = ["mermaid", "json", "csv", "md"]
    serial = nap_plan.render_and_write(plan, formats, str(tmp_path / "serial"), False)
    monkeypatch.setattr(nap_plan, "PARALLEL_FLOWS", 1)
    forked = nap_plan.render_and_write(plan, formats, str(tmp_path / "forked"), False)
    assert _tree(tmp_path / "serial") == _tree(tmp_path / "forked")

    def strip(paths):
        return [os.path.basename(p) for p in paths]

    assert strip(forked[0]) == strip(serial[0]) == ["topology.mmd", "flows.json", "flows.csv", "flows.md"]
    assert strip(forked[1]) == strip(serial[1])
    # the same again changes nothing, in both ways; check mode names the file the child would change
    assert nap_plan.render_and_write(plan, formats, str(tmp_path / "forked"), False)[1] == []
    (tmp_path / "forked" / "flows.json").write_text("{}")
    before = _tree(tmp_path / "forked")
    assert strip(nap_plan.render_and_write(plan, formats, str(tmp_path / "forked"), True)[1]) == ["flows.json"]
    assert _tree(tmp_path / "forked") == before


def test_a_failure_in_the_forked_writer_is_the_tasks_failure(tmp_path, monkeypatch):
    plan = _example_plan()
    monkeypatch.setattr(nap_plan, "PARALLEL_FLOWS", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "flows.json").mkdir()            # the child cannot replace a directory by its file
    with pytest.raises(OSError) as err:
        nap_plan.render_and_write(plan, ["json", "csv"], str(out), False)
    assert "flows.json" in str(err.value) or "Is a directory" in str(err.value)

    def broken(plan_doc, layout=None):
        raise ValueError("no JSON today")

    monkeypatch.setitem(nap_plan.report.RENDERERS, "json", broken)
    with pytest.raises(nap_plan.NapError, match="rendering flows.json failed: ValueError: no JSON today"):
        nap_plan.render_and_write(plan, ["json", "csv"], str(tmp_path / "other"), False)


# ---------------------------------------------------------------------------
# issue 22: the plan role in two tasks: the controller's addresses and the custom statistic come from the action
# ---------------------------------------------------------------------------
def _custom_stats(stdout):
    """The nap_plan custom statistic from the recap (ANSIBLE_SHOW_CUSTOM_STATS)."""
    text = stdout.split("CUSTOM STATS:", 1)[1]
    start = text.index("{")
    return json.loads(text[start:text.index("\n\n", start) if "\n\n" in text[start:] else None].strip())


def test_the_plan_is_published_as_custom_stats_and_check_mode_publishes_no_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_SHOW_CUSTOM_STATS", "1")
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "json")
    out = tmp_path / "out"
    result = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "-e", "nap_report_dir=%s" % out)
    assert result.returncode == 0, result.stdout
    stats = _custom_stats(result.stdout)["nap_plan"]
    assert stats["counts"]["hosts"] == 9 and stats["summary"][0].startswith("9 hosts, 1 perimeter devices")
    assert not any(line[:1].isspace() for line in stats["summary"])        # no per-host line
    assert stats["report_dir"] == str(out) and stats["plan_file"] == str(out / "flows.json")
    assert sorted(os.path.basename(f) for f in stats["files"]) == ["flows.csv", "flows.json", "flows.md",
                                                                   "topology.mmd"]
    checked = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "--check", "-e", "nap_report_dir=%s" % (tmp_path / "c"))
    assert checked.returncode == 0, checked.stdout
    stats = _custom_stats(checked.stdout)["nap_plan"]
    assert stats["report_dir"] is None and stats["files"] == [] and stats["plan_file"] is None
    assert stats["counts"]["hosts"] == 9


def test_without_management_sources_the_plan_keeps_the_controllers_own_addresses(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  children:\n    nap_site_servers:\n      hosts:\n        cm01:\n"
                   "          ansible_host: 192.0.2.10\n    nap_domain_controllers:\n      hosts:\n"
                   "        dc01:\n          ansible_host: 192.0.2.5\n")
    facts = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m",
                            "ansible.builtin.setup", "-a", "gather_subset=network", "-o"],
                           stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
    found = json.loads(facts.split("=>", 1)[1])["ansible_facts"]
    addresses = [(found.get(key) or {}).get("address") for key in ("ansible_default_ipv4", "ansible_default_ipv6")]
    addresses = [a for a in addresses if a]
    result = ansible_playbook("-i", str(inv), PLAYBOOK, "-e", "nap_report_dir=%s" % (tmp_path / "out"))
    assert result.returncode == 0, result.stdout
    flat = " ".join(result.stdout.split())
    if addresses:       # what ansible.builtin.setup says of this controller, as the planner's guess
        assert "is kept open from the controller's own addresses as guessed:" in flat, result.stdout
        for address in addresses:
            assert address in flat
    else:
        assert "nap_management_sources is not set and the controller's address is unknown" in flat
    assert "Learn the controller" not in result.stdout          # no task of its own any more


# ---------------------------------------------------------------------------
# issue 22: a forked Ansible worker keeps the last plan instead of freeing it object by object before it exits
# ---------------------------------------------------------------------------
def _retained_in_a_forked_process(*calls):
    import multiprocessing

    context = multiprocessing.get_context("fork")       # how ansible-core starts its workers
    read_end, write_end = context.Pipe(duplex=False)

    def child():
        for objects in calls:
            nap_plan._retain_in_worker(*objects)
        write_end.send((list(nap_plan._RETAINED), gc.get_freeze_count()))

    process = context.Process(target=child)
    process.start()
    try:
        return read_end.recv()
    finally:
        process.join()


def test_a_worker_keeps_only_the_last_plan_and_the_main_process_keeps_none():
    frozen = gc.get_freeze_count()
    nap_plan._retain_in_worker({"flows": ["in the main process"]})
    # pytest, ansible-playbook's main process: freed as usual, and the collector still traverses everything
    assert nap_plan._RETAINED == [] and gc.get_freeze_count() == frozen
    kept, frozen_in_worker = _retained_in_a_forked_process(({"flows": [1]}, "groups"), ({"flows": [2]}, "groups 2"))
    assert kept == [{"flows": [2]}, "groups 2"]
    assert frozen_in_worker > frozen            # the kept plan is out of the collector's way


def _types(value):
    """Every type inside ``value`` (keys of mappings included)."""
    found = {type(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            found |= _types(key) | _types(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= _types(item)
    return found


def test_the_planner_gets_the_group_lists_in_builtin_types(tmp_path):
    """ansible-core 2.19 gives inventory values as tagged subclasses of str, list and dict; the planner gets the
    group lists (the host names every flow repeats) and the settings in builtin types, the values unchanged."""
    inventory, _manager, hostvars = _variable_world(tmp_path)
    groups = inventory.get_groups_dict()
    assert any(host.__class__ is not str for hosts in groups.values() for host in hosts)     # what 2.19 hands over
    got_groups, got_hostvars = nap_plan.inventory_from_task_vars({"groups": groups, "hostvars": hostvars})
    builtin = {str, int, float, bool, type(None), list, dict}
    assert _types(got_groups) <= builtin
    assert got_groups == dict((g, list(h)) for g, h in groups.items() if g in got_groups)
    for host, hvars in got_hostvars.items():
        assert hvars == _through_hostvars(hostvars, host), host
    tagged = nap_plan._InventoryVars(hostvars).get("dc01")
    assert _types(tagged) - builtin, "the inventory's own values are no longer tagged: this test proves nothing"
    assert nap_plan.builtin(tagged) == tagged and _types(nap_plan.builtin(tagged)) <= builtin


@pytest.mark.parametrize("host_vars_file,asked", [
    ("ansible_host: 192.0.2.5\nnap_rpc_dynamic_range: 50000-50100\n", True),    # a selected variable: asked per host
    ("backup_window: sunday\n", False),                                         # none: the per-host calls left out
])
def test_vars_plugins_are_asked_per_host_only_where_they_hold_a_selected_variable(tmp_path, monkeypatch,
                                                                                  host_vars_file, asked):
    monkeypatch.setitem(INVENTORY_DIR, "host_vars/dc01.yml", host_vars_file)
    inventory, _manager, hostvars = _variable_world(tmp_path)
    names = ["cm01", "nps01", "dc01", "dc02", "hra01", "vpn01", "web01"]
    reader = nap_plan._InventoryVars(hostvars)
    reader.prepare(names)
    assert bool(reader.host_layers) is asked
    for host in names:
        assert reader.get(host) == _through_hostvars(hostvars, host), host
    assert (reader.get("dc01").get("nap_rpc_dynamic_range") == "50000-50100") is asked
