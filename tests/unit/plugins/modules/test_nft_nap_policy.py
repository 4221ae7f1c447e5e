# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nft_nap_policy with a fake AnsibleModule and a fake nft (no root, no nft needed)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
from ansible_collections.configmgr.nap.plugins.modules import nft_nap_policy as mod

FIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils", "nap", "fixtures")


class NftModuleFailed(Exception):
    pass


class FakeNft:
    """Answers like nft 1.0.6: the owned table is the fixture listing (or absent)."""

    def __init__(self, listing=None, reject=None, list_error=None, after="fixture"):
        self.listing = listing
        self.after = globals()["listing"]() if after == "fixture" else after
        self.reject = reject
        self.list_error = list_error
        self.calls = []

    def __call__(self, args, data=None, binary_data=False):
        self.calls.append((args[1:], data))
        args = args[1:]
        if args[:2] == ["-j", "list"] and args[2] == "table":
            if self.list_error:
                return 1, "", self.list_error
            if self.listing is None:
                return 1, "", "Error: No such file or directory\nlist table inet configmgr_nap\n"
            return 0, json.dumps(self.listing), ""
        if args[:2] == ["-j", "list"] and args[2] == "chains":
            return 0, json.dumps({"nftables": [{"chain": {"family": "ip", "table": "filter", "name": "FORWARD",
                                                          "hook": "forward", "policy": "drop"}}]}), ""
        if args[:2] == ["list", "table"]:
            return 0, "table inet configmgr_nap {\n}\n", ""
        if args[0] == "-c":
            if self.reject:
                return 1, "", self.reject(data)
            return 0, "", ""
        if args[0] == "-f":
            self.applied = data
            self.listing = self.after
            return 0, "", ""
        raise AssertionError(args)

    def writes(self):
        return [c for c in self.calls if c[0][:1] in (["-c"], ["-f"])]


class FakeModule:
    def __init__(self, params, nft, check_mode=False, diff=False, nft_path="/usr/sbin/nft"):
        spec = mod.argument_spec()
        self.params = dict((k, v.get("default")) for k, v in spec.items())
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff
        self.nft = nft
        self.nft_path = nft_path
        self.deprecations = []

    def get_bin_path(self, name, required=False):
        return self.nft_path

    def run_command(self, args, data=None, binary_data=False):
        return self.nft(args, data, binary_data)

    def fail_json(self, **kw):
        raise NftModuleFailed(kw["msg"])

    def deprecate(self, msg, version=None, date=None, collection_name=None):
        self.deprecations.append(dict(msg=msg, version=version, collection_name=collection_name))


def spec():
    with open(os.path.join(FIX, "nft_policy.json")) as handle:
        return json.load(handle)


def listing():
    with open(os.path.join(FIX, "nft_policy_list.json")) as handle:
        return json.load(handle)


def params(**kw):
    s = spec()
    out = dict(rules=s["rules"], zones=s["zones"], management_sources=s["management_sources"],
               rpc_dynamic_range=s["rpc_dynamic_range"])
    out.update(kw)
    return out


def test_no_change_no_write():
    nft = FakeNft(listing())
    result = mod.run_module(FakeModule(params(), nft))
    assert result["changed"] is False
    assert result["commands"] == [] and result["rule_changes"] == []
    assert nft.writes() == []
    # a no-op carries no copy of the table outside diff mode (issue 22); drift is still reported
    assert "before" not in result and "after" not in result
    assert not any(result["drift"].values())
    assert any("ip filter chain FORWARD" in w for w in result["warnings"])


def test_no_change_in_diff_mode_returns_the_table():
    nft = FakeNft(listing())
    result = mod.run_module(FakeModule(params(), nft, diff=True))
    assert result["changed"] is False and nft.writes() == []
    assert result["before"] == result["after"]
    assert result["before"]["present"] is True
    assert sorted(r["name"] for r in result["before"]["rules"]) == sorted(r["name"] for r in spec()["rules"])


def test_a_change_returns_before_and_after_without_diff_mode():
    nft = FakeNft(None)
    result = mod.run_module(FakeModule(params(), nft))
    assert result["changed"] is True
    assert result["before"]["present"] is False
    assert sorted(r["name"] for r in result["after"]["rules"]) == sorted(r["name"] for r in spec()["rules"])


def test_absent_table_is_created_after_validation():
    nft = FakeNft(None)
    result = mod.run_module(FakeModule(params(), nft, diff=True))
    assert result["changed"] is True
    # validated first, then applied, one transaction each, then read back
    assert [c[0][:2] for c in nft.writes()] == [["-c", "-f"], ["-f", "-"]]
    assert nft.writes()[0][1] == nft.writes()[1][1] == result["script"]
    assert result["commands"][0] == "add table inet configmgr_nap"
    assert "IPSEC-HRA-TCP-FWD forward allow tcp" in result["diff"]["after"]


def test_check_mode_reports_but_does_not_write():
    doc = listing()
    doc["nftables"] = [i for i in doc["nftables"]
                       if not ("rule" in i and i["rule"].get("comment") == "IPSEC-IKE-ESP-FWD|IPSEC-IKE")]
    nft = FakeNft(doc)
    result = mod.run_module(FakeModule(params(), nft, check_mode=True, diff=True))
    assert result["changed"] is True
    assert result["drift"] == {"missing": ["IPSEC-IKE-ESP-FWD"], "extra": [], "changed": []}
    assert nft.writes() == []
    assert "IPSEC-IKE-ESP-FWD" in [r["name"] for r in result["after"]["rules"]]
    assert "IPSEC-IKE-ESP-FWD" not in [r["name"] for r in result["before"]["rules"]]


def test_nft_rejection_quotes_nft_and_the_rule():
    def reject(script):
        line = [i for i, t in enumerate(script.splitlines(), 1) if "IPSEC-IKE-ESP-FWD" in t][0]
        return "/dev/stdin:%d:40-52: Error: Could not process rule: Protocol wrong type\nx\n" % line
    nft = FakeNft(None, reject=reject)
    with pytest.raises(NftModuleFailed) as exc:
        mod.run_module(FakeModule(params(), nft))
    text = str(exc.value)
    assert "nothing was changed" in text and "nft rejected rule IPSEC-IKE-ESP-FWD: Could not process rule" in text
    assert 'meta l4proto esp counter accept comment "IPSEC-IKE-ESP-FWD|IPSEC-IKE"' in text
    assert [c[0][0] for c in nft.writes()] == ["-c"]


def test_nft_missing_names_the_package():
    with pytest.raises(NftModuleFailed, match="install the Debian package nftables"):
        mod.run_module(FakeModule(params(), FakeNft(None), nft_path=None))


def test_kernel_without_nf_tables():
    nft = FakeNft(list_error="Error: cache initialization failed: Protocol not supported\n")
    with pytest.raises(NftModuleFailed, match="no nf_tables support"):
        mod.run_module(FakeModule(params(), nft))


def test_not_root():
    nft = FakeNft(list_error="Error: cache initialization failed: Operation not permitted\n")
    with pytest.raises(NftModuleFailed, match="become: true"):
        mod.run_module(FakeModule(params(), nft))


def test_rendered_is_a_list_of_lines_and_needs_no_nft():
    result = mod.run_module(FakeModule(params(state="rendered"), FakeNft(None), nft_path=None))
    with open(os.path.join(FIX, "nft_policy.nft")) as handle:
        text = handle.read()
    lines = result["rendered"]
    assert isinstance(lines, list) and all(isinstance(line, str) and "\n" not in line for line in lines)
    assert lines[0] == "#!/usr/sbin/nft -f" and "table inet configmgr_nap {" in lines
    assert "\n".join(lines) + "\n" == text


def test_gathered_is_a_list_of_rules_valid_as_input():
    result = mod.run_module(FakeModule(dict(state="gathered"), FakeNft(listing())))
    gathered, options = result["gathered"], result["gathered_options"]
    assert result["changed"] is False
    assert isinstance(gathered, list) and sorted(r["name"] for r in gathered) == sorted(
        r["name"] for r in spec()["rules"])
    # table order: the input chain's rules first, then forward
    directions = [r["direction"] for r in gathered]
    assert directions == sorted(directions, key=["in", "forward", "out"].index)
    assert sorted(options) == ["family", "management_sources", "rpc_dynamic_range", "table", "zones"]
    assert (options["table"], options["family"]) == ("configmgr_nap", "inet")
    assert options["rpc_dynamic_range"] == "50000-51000"
    again = mod.run_module(FakeModule(dict(rules=gathered, zones=spec()["zones"],
                                           management_sources=options["management_sources"],
                                           rpc_dynamic_range=options["rpc_dynamic_range"]), FakeNft(listing())))
    assert again["changed"] is False
    # the effective zones the table holds are valid input too
    again = mod.run_module(FakeModule(dict(rules=gathered, zones=options["zones"],
                                           management_sources=options["management_sources"],
                                           rpc_dynamic_range=options["rpc_dynamic_range"]), FakeNft(listing())))
    assert again["changed"] is False, again["commands"]
    empty = mod.run_module(FakeModule(dict(state="gathered"), FakeNft(None)))
    assert empty["gathered"] == [] and empty["gathered_options"]["zones"] == {}


def test_absent_deletes_only_the_owned_table(tmp_path):
    nft = FakeNft(listing(), after=None)
    module = FakeModule(dict(state="absent", backup=True, backup_options=dict(dir_path=str(tmp_path))), nft)
    result = mod.run_module(module)
    assert result["changed"] is True
    assert result["commands"] == ["delete table inet configmgr_nap"]
    assert nft.applied == "table inet configmgr_nap\ndelete table inet configmgr_nap\n"
    assert os.path.dirname(result["backup_path"]) == str(tmp_path)
    assert os.path.isfile(result["backup_path"]) and result["backup_content"].startswith("table inet")
    assert result["backup_file"] == result["backup_path"]          # the deprecated return key, for one release
    assert module.deprecations == []
    nft = FakeNft(None)
    assert mod.run_module(FakeModule(dict(state="absent"), nft))["changed"] is False


# ---------------------------------------------------------------------------
# backup: true + backup_options {dir_path, filename} -> backup_path, as ansible.netcommon (issue 13, item 4)
# ---------------------------------------------------------------------------
def changed_listing():
    doc = listing()
    doc["nftables"] = [i for i in doc["nftables"]
                       if not ("rule" in i and i["rule"].get("comment") == "IPSEC-IKE-ESP-FWD|IPSEC-IKE")]
    return doc


def test_backup_options_filename_is_honoured(tmp_path):
    nft = FakeNft(changed_listing())
    module = FakeModule(params(backup=True, backup_options=dict(dir_path=str(tmp_path / "bk"),
                                                                filename="rtr01-before.nft")), nft)
    result = mod.run_module(module)
    assert result["changed"] is True
    assert result["backup_path"] == str(tmp_path / "bk" / "rtr01-before.nft") == result["backup_file"]
    with open(result["backup_path"]) as handle:
        assert handle.read() == result["backup_content"]
    # the same name again: never overwritten, a counter is added
    again = mod.run_module(FakeModule(params(backup=True, backup_options=dict(dir_path=str(tmp_path / "bk"),
                                                                              filename="rtr01-before.nft")),
                                      FakeNft(changed_listing())))
    assert again["backup_path"] == str(tmp_path / "bk" / "rtr01-before.1.nft")


def test_backup_without_options_goes_to_the_default_directory(tmp_path, monkeypatch):
    assert mod.DEFAULT_BACKUP_DIR == "/var/backups/configmgr_nap"
    assert "Defaults to C(/var/backups/configmgr_nap)." in mod.DOCUMENTATION
    monkeypatch.setattr(mod, "DEFAULT_BACKUP_DIR", str(tmp_path / "default"))     # not this machine's /var
    result = mod.run_module(FakeModule(params(backup=True), FakeNft(changed_listing())))
    assert os.path.dirname(result["backup_path"]) == str(tmp_path / "default")
    assert os.path.basename(result["backup_path"]).startswith("inet-configmgr_nap-")
    assert result["backup_path"].endswith(".nft") and result["backup_file"] == result["backup_path"]


def test_backup_filename_that_is_not_a_plain_name_is_refused_before_anything(tmp_path):
    for bad in ("../x.nft", "a/b.nft", "..", "x\ny"):
        nft = FakeNft(changed_listing())
        with pytest.raises(NftModuleFailed, match="not a plain file name.*nothing was changed"):
            mod.run_module(FakeModule(params(backup=True, backup_options=dict(dir_path=str(tmp_path),
                                                                              filename=bad)), nft))
        assert nft.calls == []
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("form", ["directory", "file"])
def test_deprecated_backup_path_still_works_and_warns(tmp_path, form):
    target = str(tmp_path / "old") + "/" if form == "directory" else str(tmp_path / "old" / "table.nft")
    module = FakeModule(params(backup=True, backup_path=target), FakeNft(changed_listing()))
    result = mod.run_module(module)
    if form == "directory":
        assert os.path.dirname(result["backup_path"]) == str(tmp_path / "old")
    else:
        assert result["backup_path"] == target
    assert result["backup_file"] == result["backup_path"] and os.path.isfile(result["backup_path"])
    assert module.deprecations == [dict(msg=mod.DEPRECATED_BACKUP_PATH, version="1.0.0",
                                        collection_name="configmgr.nap")]
    assert "backup_options" in module.deprecations[0]["msg"]


def test_argument_spec_keeps_backup_path_apart_from_backup_options():
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    validator = ArgumentSpecValidator(mod.argument_spec(), mutually_exclusive=mod.MUTUALLY_EXCLUSIVE)
    both = validator.validate(dict(backup=True, backup_path="/tmp/x", backup_options=dict(dir_path="/tmp")))
    assert "mutually exclusive" in both.errors.msg
    ok = validator.validate(dict(backup=True, backup_options=dict(filename="x.nft")))
    assert ok.error_messages == [] and ok.validated_parameters["backup_options"] == dict(dir_path=None,
                                                                                         filename="x.nft")
    bad = validator.validate(dict(backup_options=dict(dir=1)))
    assert bad.error_messages


# ---------------------------------------------------------------------------
# --diff: table order, the chain named on every rule line
# ---------------------------------------------------------------------------
def test_diff_lists_changes_in_table_order_naming_the_chain():
    doc = changed_listing()
    doc["nftables"].append({"rule": {"family": "inet", "table": "configmgr_nap", "chain": "input", "handle": 99,
                                     "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                                                                          "field": "dport"}},
                                                         "right": 9999}}, {"accept": None}]}})
    result = mod.run_module(FakeModule(params(), FakeNft(doc), check_mode=True, diff=True))
    before = result["diff"]["before"].splitlines()
    after = result["diff"]["after"].splitlines()
    assert before == ["chain input: handle-99 in allow tcp from any to any port 9999"]
    assert len(after) == 1 and after[0].startswith("chain forward: IPSEC-IKE-ESP-FWD forward allow esp from ")
    # a new table: the sets first, then each chain from its top, every rule line naming its chain
    result = mod.run_module(FakeModule(params(), FakeNft(None), check_mode=True, diff=True))
    before, after = result["diff"]["before"].splitlines(), result["diff"]["after"].splitlines()
    assert before == ["table inet configmgr_nap: absent"]
    kinds = [line.split(" ", 1)[0] for line in after]
    assert kinds == sorted(kinds, key=["set", "chain"].index) and kinds.count("set") >= 2
    chains = [line.split(":", 1)[0] for line in after if line.startswith("chain ")]
    order = ["chain input", "chain forward", "chain output"]
    assert chains[0] == "chain input" and chains == sorted(chains, key=order.index)
    forward = [line for line in after if line.startswith("chain forward: ")]
    assert forward[0] == "chain forward: type filter hook forward priority 0; policy accept;"
    assert "configmgr.nap:established" in forward[1] and "drop unplanned from zone" in forward[-1]
    planned = [line for line in after if "IPSEC-HRA-TCP-FWD" in line]
    assert planned == [planned[0]] and planned[0].startswith("chain forward: IPSEC-HRA-TCP-FWD forward allow tcp")


def router_estate():
    """(groups, hostvars, settings): three servers and rtr01, an nftables router between servers and management."""
    groups = {"nap_site_servers": ["cm01"], "nap_shv_points": ["nps01"], "nap_domain_controllers": ["dc01"],
              "nap_global_catalogs": ["dc01"], "nap_perimeter": ["rtr01"]}
    hostvars = {"cm01": {"ansible_host": "198.18.1.10"}, "nps01": {"ansible_host": "198.18.1.20"},
                "dc01": {"ansible_host": "198.18.1.5"},
                "rtr01": {"nap_address": ["198.18.1.1", "198.18.9.1"], "nap_perimeter_platform": "nftables",
                          "nap_perimeter_zones": ["servers", "management"]}}
    settings = {"nap_management_sources": ["198.18.9.10"],
                "nap_zones": {"servers": ["198.18.1.0/24"], "management": ["198.18.9.0/24"]}}
    return groups, hostvars, settings


def test_plan_and_host_give_the_device_rules_zones_and_management():
    plan = json.loads(json.dumps(planner.plan(*router_estate())))
    policy, warnings = mod.policy_from_params(dict(plan=plan, host="rtr01", allow_lockout=False, family="inet",
                                                   table="configmgr_nap"), environ={})
    names = [r.name for r in policy.rules]
    assert "MGMT-SSH-TCP-IN" in names and "MGMT-WINRM-TCP-FWD" in names
    assert list(policy.zones) == ["management", "servers"]
    assert policy.management_sources == ("198.18.9.10/32",)
    with pytest.raises(Exception, match="not in the plan"):
        mod.policy_from_params(dict(plan=plan, host="nope"), environ={})


def test_management_source_from_ssh_connection():
    policy, warnings = mod.policy_from_params(dict(rules=[], zones={"a": ["192.0.2.0/24"]}),
                                              environ={"SSH_CONNECTION": "192.0.2.99 50000 192.0.2.1 22"})
    assert policy.management_sources == ("192.0.2.99/32",)
    assert "192.0.2.99" in warnings[0]


def test_devices_in_series_own_the_zones_behind_each_other():
    """The zones a device owns come from the plan (the planner decides them once), not from a copy here."""
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
    groups = {"nap_domain_controllers": ["dc01"], "nap_perimeter": ["r1", "r2"]}
    hostvars = {"dc01": {"nap_address": "198.18.1.5"},
                "r1": {"nap_address": "198.18.1.1", "nap_perimeter_platform": "nftables", "nap_perimeter_zones": ["a", "b"]},
                "r2": {"nap_address": "198.18.2.2", "nap_perimeter_platform": "nftables", "nap_perimeter_zones": ["b", "c"]}}
    settings = {"nap_zones": {"a": ["198.18.1.0/24"], "b": ["198.18.2.0/24"], "c": ["198.18.3.0/24"],
                              "x": ["198.18.9.0/24"]}, "nap_management_sources": ["198.18.1.100"]}
    plan = planner.plan(groups, hostvars, settings)
    for device in ("r1", "r2"):
        policy, _warnings = mod.policy_from_params({"plan": plan, "host": device})
        assert sorted(policy.zones) == ["a", "b", "c"]
        assert policy.management_ports == (22, 5986)     # the routers' SSH and the DC's WinRM, as planned
    policy, _warnings = mod.policy_from_params({"plan": plan, "host": "dc01"})
    assert sorted(policy.zones) == ["a", "b", "c", "x"] and policy.management_ports == (5986,)


def test_module_payload_does_not_carry_the_plan_reader():
    """The action plugin resolves the plan on the controller (issue 22): the module's static imports, which
    decide what AnsiballZ ships to the host, reach neither plandoc nor the catalogue it pulls in."""
    import ast
    root = os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__)))
    prefix = "ansible_collections.configmgr.nap.plugins."

    def imports(path):
        with open(path) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix):
                yield node.module, [a.name for a in node.names]

    seen, todo = set(), [os.path.join(root, "modules", "nft_nap_policy.py")]
    while todo:
        path = todo.pop()
        for module, names in imports(path):
            rel = module[len(prefix):].replace(".", os.sep)
            for candidate in [rel + ".py"] + [os.path.join(rel, n + ".py") for n in names]:
                full = os.path.join(root, candidate)
                if os.path.isfile(full) and full not in seen:
                    seen.add(full)
                    todo.append(full)
    reached = sorted(os.path.basename(p) for p in seen)
    assert "nftables.py" in reached and "model.py" in reached, reached
    assert "plandoc.py" not in reached and "catalogue.py" not in reached, reached
    # imported where a backup is written, not at the top: AnsiballZ still ships it (it reads nested imports too)
    assert "files.py" in reached, reached
