# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables backend: render (golden file), parse nft JSON back, round trip, drift and the shared diff.

``fixtures/nft_policy_list.json`` is the real ``nft -j list table inet configmgr_nap`` output (nft 1.0.6)
after applying ``fixtures/nft_policy.nft`` in a scratch network namespace; the tests here need no nft.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os

import pytest

from golden import assert_golden

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import nftables
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import nftables_compare
from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import diff_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, Rule

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")


def load(name):
    with open(os.path.join(FIX, name)) as handle:
        return handle.read()


@pytest.fixture()
def spec():
    return json.loads(load("nft_policy.json"))


@pytest.fixture()
def policy(spec):
    return nftables.Policy(spec["rules"], spec["zones"], spec["management_sources"], spec["rpc_dynamic_range"])


@pytest.fixture()
def listing():
    return json.loads(load("nft_policy_list.json"))


def items(doc, kind):
    return [i[kind] for i in doc["nftables"] if kind in i]


def rule_item(doc, comment):
    for item in doc["nftables"]:
        if "rule" in item and item["rule"].get("comment") == comment:
            return item
    raise AssertionError(comment)


def test_render_matches_golden_file(policy):
    assert_golden(nftables.desired_state(policy).script(), os.path.join(FIX, "nft_policy.nft"))


def test_script_is_one_transaction_replacing_only_the_owned_table(policy):
    lines = nftables.desired_state(policy).script().splitlines()
    assert lines[2:5] == ["table inet configmgr_nap", "delete table inet configmgr_nap", "table inet configmgr_nap {"]
    assert not [line for line in lines if line.startswith(("flush ruleset", "delete table")) and "configmgr_nap" not in line]


def test_round_trip_parses_back_to_the_same_rules(policy, listing):
    have = nftables.parse_table(listing)
    assert have.norm() == nftables.desired_state(policy).norm()
    parsed = nftables.parse_rules(have, policy.families, policy.rpc_dynamic_range, policy.rules)
    assert sorted((r.to_dict() for r in parsed), key=lambda d: d["name"]) == \
        sorted((r.to_dict() for r in policy.rules), key=lambda d: d["name"])
    change = nftables_compare.compare(policy, have)
    assert not change.changed
    assert change.commands() == []
    assert not change.rule_diff.changed


def test_keywords_parse_back_from_their_spelling(policy, listing):
    rules = dict((r.name, r) for r in nftables.parse_rules(nftables.parse_table(listing), rpc_range="50000-51000"))
    assert rules["NAP-SHV-CONFIG-TCP-IN-RPC"].dst_ports == ("rpc-dynamic",)
    assert rules["NAP-SHV-CONFIG-TCP-IN-EPMAP"].dst_ports == ("rpc-epmap",)
    assert rules["NAP-SHV-CONFIG-TCP-IN-RPC"].flow_id == "NAP-SHV-CONFIG"


def test_rpc_range_change_is_an_update(spec, listing):
    policy = nftables.Policy(spec["rules"], spec["zones"], spec["management_sources"], "49152-65535")
    change = nftables_compare.compare(policy, nftables.parse_table(listing))
    assert change.changed
    assert [(o.name, n.name) for o, n in change.rule_diff.update] == [("NAP-SHV-CONFIG-TCP-IN-RPC",) * 2]
    assert change.rule_diff.commands() == [{"op": "update", "name": "NAP-SHV-CONFIG-TCP-IN-RPC",
                                            "fields": ["dst_ports"]}]


def test_describe_reports_zones_and_management(policy, listing):
    doc = nftables_compare.describe(nftables.parse_table(listing), policy)
    assert doc["present"] is True
    assert doc["zones"]["clients"] == ["198.51.100.0/25", "198.51.100.192/26", "2001:db8:1::/64"]
    assert doc["zones"]["quarantine"] == ["198.51.100.128/26"]
    assert doc["management_sources"] == ["203.0.113.10/32", "2001:db8:9::10/128"]
    assert nftables_compare.describe(None)["present"] is False


def test_other_tables_in_the_listing_are_ignored(policy, listing):
    doc = copy.deepcopy(listing)
    doc["nftables"].append({"table": {"family": "ip", "name": "filter", "handle": 9}})
    doc["nftables"].append({"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter",
                                      "hook": "input", "prio": 0, "policy": "drop"}})
    doc["nftables"].append({"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2,
                                     "expr": [{"accept": None}]}})
    assert not nftables_compare.compare(policy, nftables.parse_table(doc)).changed


def test_absent_table_is_created(policy):
    change = nftables_compare.compare(policy, nftables.parse_table({"nftables": []}))
    assert change.changed
    cmds = change.commands()
    assert cmds[0] == "add table inet configmgr_nap"
    assert any(c.startswith("add set inet configmgr_nap zone_servers_v4") for c in cmds)
    assert sorted(r["name"] for r in change.rule_diff.commands()) == sorted(r.name for r in policy.rules)
    assert "table inet configmgr_nap: absent" in change.ansible_diff()["before"]


def test_hand_deleted_rule_is_missing(policy, listing):
    doc = copy.deepcopy(listing)
    doc["nftables"].remove(rule_item(doc, "IPSEC-IKE-ESP-FWD|IPSEC-IKE"))
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert change.changed
    assert change.rule_diff.summary() == {"missing": ["IPSEC-IKE-ESP-FWD"], "extra": [], "changed": []}
    assert any(c.startswith("add rule inet configmgr_nap forward") and "IPSEC-IKE-ESP-FWD" in c
               for c in change.commands())
    assert "IPSEC-IKE-ESP-FWD forward allow esp" in change.ansible_diff()["after"]


def test_one_family_part_deleted_is_a_change(policy, listing):
    doc = copy.deepcopy(listing)
    parts = [i for i in doc["nftables"] if "rule" in i and i["rule"].get("comment") == "IPSEC-HRA-TCP-FWD|IPSEC-HRA"]
    assert len(parts) == 2
    doc["nftables"].remove(parts[1])
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert [new.name for _old, new in change.rule_diff.update] == ["IPSEC-HRA-TCP-FWD"]


def test_hand_edited_port_is_an_update(policy, listing):
    doc = copy.deepcopy(listing)
    parts = [i for i in doc["nftables"] if "rule" in i and i["rule"].get("comment") == "IPSEC-HRA-TCP-FWD|IPSEC-HRA"]
    for part in parts:
        for expr in part["rule"]["expr"]:
            if "match" in expr and expr["match"]["left"].get("payload", {}).get("field") == "dport":
                expr["match"]["right"] = 8443
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert change.rule_diff.commands() == [{"op": "update", "name": "IPSEC-HRA-TCP-FWD", "fields": ["dst_ports"]}]
    assert "port 8443" in change.ansible_diff()["before"]
    # only one of the two family parts edited: reported too (as edited by hand)
    doc = copy.deepcopy(listing)
    rule_item(doc, "IPSEC-HRA-TCP-FWD|IPSEC-HRA")["rule"]["expr"][2]["match"]["right"] = 8443
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert [new.name for _old, new in change.rule_diff.update] == ["IPSEC-HRA-TCP-FWD"]
    item = parts[0]
    cmds = change.commands()
    assert any(c.startswith("delete rule inet configmgr_nap forward handle %d" % item["rule"]["handle"]) for c in cmds)


def test_verdict_changed_by_hand_is_an_update(policy, listing):
    doc = copy.deepcopy(listing)
    item = rule_item(doc, "IPSEC-IKE-ESP-FWD|IPSEC-IKE")
    item["rule"]["expr"][-1] = {"drop": None}
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert [new.name for _old, new in change.rule_diff.update] == ["IPSEC-IKE-ESP-FWD"]
    old = change.rule_diff.update[0][0]
    assert old.description.startswith(nftables.TAMPERED) and " drop " in old.description


def test_hand_added_rule_is_extra(policy, listing):
    doc = copy.deepcopy(listing)
    doc["nftables"].append({"rule": {"family": "inet", "table": "configmgr_nap", "chain": "input", "handle": 99,
                                     "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                                                                          "field": "dport"}},
                                                         "right": 9999}}, {"accept": None}]}})
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert change.rule_diff.summary()["extra"] == ["handle-99"]
    extra = change.rule_diff.remove[0]
    assert (extra.direction, extra.protocol, extra.dst_ports) == ("in", "tcp", (9999,))
    assert "delete rule inet configmgr_nap input handle 99  # handle-99" in change.commands()


def test_unknown_expression_is_kept_as_unparsed(policy, listing):
    doc = copy.deepcopy(listing)
    item = rule_item(doc, "IPSEC-IKE-ESP-FWD|IPSEC-IKE")
    item["rule"]["expr"].insert(0, {"log": {"prefix": "x"}})
    have = nftables.parse_table(doc)
    assert nftables_compare.compare(policy, have).changed
    rules = dict((r.name, r) for r in nftables.parse_rules(have))
    assert "unparsed" in rules["IPSEC-IKE-ESP-FWD"].description


def test_structural_drift_set_and_drop_rule(policy, listing):
    doc = copy.deepcopy(listing)
    for item in doc["nftables"]:
        if "set" in item and item["set"]["name"] == "zone_servers_v4":
            item["set"]["elem"] = ["192.0.2.1"]
    doc["nftables"].remove(rule_item(doc, "configmgr.nap:drop unplanned from zone quarantine"))
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert change.changed and not change.rule_diff.changed
    whats = [(op, what) for op, what, _detail in change.structure]
    assert ("update", "set zone_servers_v4") in whats
    assert ("add", "rule drop unplanned from zone quarantine") in whats
    cmds = change.commands()
    assert "delete set inet configmgr_nap zone_servers_v4" in cmds
    assert any("drop unplanned from zone quarantine" in c and c.startswith("add rule") for c in cmds)


def test_chain_policy_changed_by_hand(policy, listing):
    doc = copy.deepcopy(listing)
    for item in doc["nftables"]:
        if "chain" in item and item["chain"]["name"] == "forward":
            item["chain"]["policy"] = "drop"
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert ("update", "chain forward") in [(op, what) for op, what, _detail in change.structure]


def test_rule_moved_behind_the_drop_is_a_change(policy, listing):
    doc = copy.deepcopy(listing)
    item = rule_item(doc, "IPSEC-IKE-ESP-FWD|IPSEC-IKE")
    doc["nftables"].remove(item)
    doc["nftables"].append(item)
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert change.changed and not change.rule_diff.changed
    assert change.commands()


def test_foreign_object_in_owned_table_is_removed(policy, listing):
    doc = copy.deepcopy(listing)
    doc["nftables"].append({"counter": {"family": "inet", "table": "configmgr_nap", "name": "c1", "handle": 50}})
    change = nftables_compare.compare(policy, nftables.parse_table(doc))
    assert ("remove", "counter c1") in [(op, what) for op, what, _detail in change.structure]


# --- model -> nft -------------------------------------------------------------
def rule(**kw):
    base = dict(name="R", flow_id="F", direction="forward", protocol="tcp")
    base.update(kw)
    return Rule.from_dict(base)


def test_rule_without_addresses_is_one_rule():
    out = nftables.rule_to_nft(rule(dst_ports=[80]))
    assert [r.body() for r in out] == ['tcp dport 80 counter accept comment "R|F"']


def test_mixed_families_split_and_unmatchable_part_dropped():
    eff, warnings = nftables.effective_rule(rule(src_addresses=["192.0.2.0/24", "2001:db8::/64"],
                                                 dst_addresses=["198.51.100.1"], dst_ports=[443]))
    assert eff.src_addresses == ("192.0.2.0/24",)
    assert warnings and "2001:db8::/64" in warnings[0]
    out = nftables.rule_to_nft(rule(src_addresses=["192.0.2.0/24", "2001:db8::/64"],
                                    dst_addresses=["198.51.100.1", "2001:db8:1::1"], dst_ports=[443]))
    assert [r.matches[0].key for r in out] == ["ip saddr", "ip6 saddr"]


def test_rule_that_can_never_match_fails_closed():
    with pytest.raises(NapError, match="can never match"):
        nftables.effective_rule(rule(src_addresses=["2001:db8::/64"], dst_addresses=["192.0.2.1"]))
    with pytest.raises(NapError, match="can never match"):
        nftables.Policy([rule(src_addresses=["2001:db8::/64"]).to_dict()], family="ip")


def test_ports_merge_like_nft():
    eff = nftables.effective_rule(rule(dst_ports=[135, "100-200", 5985, 5986, 201]))[0]
    assert eff.dst_ports == ("100-201", "5985-5986")


def test_icmp_and_portless_protocols():
    assert nftables.rule_to_nft(rule(protocol="icmp", src_addresses=["192.0.2.0/24"]))[0].body() == \
        'ip saddr 192.0.2.0/24 meta l4proto icmp counter accept comment "R|F"'
    assert nftables.rule_to_nft(rule(protocol="gre"))[0].body() == 'meta l4proto gre counter accept comment "R|F"'
    assert nftables.rule_to_nft(rule(protocol="udp"))[0].body() == 'meta l4proto udp counter accept comment "R|F"'


@pytest.mark.parametrize("name,flow,match", [
    ("A|B", "F", "not a valid rule name"),
    ('A"B', "F", "not a valid rule name"),
    ("configmgr.nap:x", "F", "not a valid rule name"),
    ("A\nB", "F", "control character U\\+000A"),
    ("A", "F|x", "not a valid flow id"),
    ("X" * 100, "F" * 30, "128 bytes"),
])
def test_names_the_comment_cannot_carry(name, flow, match):
    with pytest.raises(NapError, match=match):
        nftables.Policy([dict(name=name, flow_id=flow, direction="in", protocol="tcp", dst_ports=[22])])


@pytest.mark.parametrize("text", ['a"b', "a\\b", "a\nb", "a\u2028b", "a\x00b"])
def test_quote_refuses_what_an_nft_string_cannot_carry(text):
    with pytest.raises(NapError, match="nft"):
        nftables._quote(text)


def test_hostile_zone_name_never_reaches_the_script():
    hostile = 'zz";};chain pwn{type filter hook input priority -10;policy drop;};set s_p{type ipv4_addr;comment "'
    with pytest.raises(NapError, match="not a valid zone name"):
        nftables.Policy([rule().to_dict()], zones={hostile: ["192.0.2.0/24"], "b": ["198.51.100.0/24"]})


def test_duplicate_rule_names_fail():
    with pytest.raises(NapError, match="duplicate"):
        nftables.Policy([rule().to_dict(), rule().to_dict()])


def test_effective_zones_most_specific_wins():
    zones = nftables.effective_zones({"all": ["10.0.0.0/8"], "lab": ["10.1.0.0/16"], "v6": ["2001:db8::/32"]})
    assert "10.1.0.0/16" not in zones["all"][4]
    assert zones["lab"][4] == ("10.1.0.0/16",)
    assert len(zones["all"][4]) == 8
    with pytest.raises(NapError, match="both zone"):
        nftables.effective_zones({"a": ["10.0.0.0/8"], "b": ["10.0.0.0/8"]})


@pytest.mark.parametrize("kw,match", [
    (dict(family="bridge"), "family"),
    (dict(table="bad name"), "table"),
    (dict(rpc_dynamic_range="80-90"), "rpc_dynamic_range"),
])
def test_policy_options_are_validated(kw, match):
    with pytest.raises(NapError, match=match):
        nftables.Policy([], **kw)


def test_no_owned_zones_means_no_drop():
    state = nftables.desired_state(nftables.Policy([rule(dst_ports=[80]).to_dict()]))
    assert not [r for r in state.all_rules() if r.verdict == "drop"]


def test_allow_lockout_leaves_out_the_management_rule():
    with_mgmt = nftables.desired_state(nftables.Policy([], {"a": ["192.0.2.0/24"]}, ["192.0.2.9"]))
    without = nftables.desired_state(nftables.Policy([], {"a": ["192.0.2.0/24"]}, ["192.0.2.9"], allow_lockout=True))
    assert [r.comment for r in with_mgmt.all_rules()].count("configmgr.nap:anti-lockout") == 2
    assert "configmgr.nap:anti-lockout" not in [r.comment for r in without.all_rules()]


def test_ip_family_table_carries_ipv4_only(spec):
    policy = nftables.Policy(spec["rules"], spec["zones"], spec["management_sources"], family="ip")
    text = nftables.desired_state(policy).script()
    assert "ip6 " not in text and "icmpv6" not in text and "table ip configmgr_nap {" in text
    assert any("2001:db8" in w for w in policy.warnings)


def test_nft_error_quotes_the_rule():
    script = nftables.desired_state(nftables.Policy([rule(dst_ports=[80]).to_dict()])).script()
    line = [i for i, text in enumerate(script.splitlines(), 1) if '"R|F"' in text][0]
    err = "/dev/stdin:%d:3-9: Error: Could not process rule: No such file or directory\n..." % line
    msg = nftables_compare.nft_error(err, script)
    assert msg.startswith("nft rejected rule R: Could not process rule: No such file or directory; the rule: ")
    assert 'tcp dport 80 counter accept comment "R|F"' in msg
    assert nftables_compare.nft_error("something else", script) == "something else"


# ---------------------------------------------------------------------------
# state: rendered as a list of lines; --diff in table order, the chain named (issue 13, item 4)
# ---------------------------------------------------------------------------
def test_script_lines_are_the_script_split_on_its_newlines_only(policy):
    state = nftables.desired_state(policy)
    lines = state.script_lines()
    assert "\n".join(lines) + "\n" == state.script() == load("nft_policy.nft")
    assert all("\n" not in line for line in lines) and lines[0] == "#!/usr/sbin/nft -f"
    assert lines[-1] == "}" and lines.count("table inet configmgr_nap {") == 1


def test_diff_is_in_table_order_and_names_the_chain(policy, listing):
    doc = copy.deepcopy(listing)
    for item in doc["nftables"]:
        if "set" in item and item["set"]["name"] == "zone_servers_v4":
            item["set"]["elem"] = ["192.0.2.1"]
        if "chain" in item and item["chain"]["name"] == "forward":
            item["chain"]["policy"] = "drop"
    for part in [i for i in doc["nftables"] if "rule" in i and i["rule"].get("comment") == "IPSEC-HRA-TCP-FWD|IPSEC-HRA"]:
        for expr in part["rule"]["expr"]:
            if "match" in expr and expr["match"]["left"].get("payload", {}).get("field") == "dport":
                expr["match"]["right"] = 8443
    doc["nftables"].remove(rule_item(doc, "IPSEC-IKE-ESP-FWD|IPSEC-IKE"))
    doc["nftables"].remove(rule_item(doc, "configmgr.nap:drop unplanned from zone quarantine"))
    doc["nftables"].append({"rule": {"family": "inet", "table": "configmgr_nap", "chain": "input", "handle": 99,
                                     "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                                                                          "field": "dport"}},
                                                         "right": 9999}}, {"accept": None}]}})
    diff = nftables_compare.compare(policy, nftables.parse_table(doc)).ansible_diff()
    assert diff["before_header"] == diff["after_header"].replace("after", "before") == \
        "rules before (nft table inet configmgr_nap)"
    before, after = diff["before"].splitlines(), diff["after"].splitlines()
    assert before == [
        "set zone_servers_v4: 192.0.2.1/32",
        "chain input: handle-99 in allow tcp from any to any port 9999",
        "chain forward: type filter hook forward priority 0; policy drop;",
        "chain forward: IPSEC-HRA-TCP-FWD forward allow tcp from 198.51.100.0/24,2001:db8:1::/64 to "
        "192.0.2.30/32,2001:db8:2::30/128 port 8443",
    ]
    assert after == [
        "set zone_servers_v4: 192.0.2.0/24",
        "chain forward: type filter hook forward priority 0; policy accept;",
        "chain forward: IPSEC-HRA-TCP-FWD forward allow tcp from 198.51.100.0/24,2001:db8:1::/64 to "
        "192.0.2.30/32,2001:db8:2::30/128 port 443",
        "chain forward: IPSEC-IKE-ESP-FWD forward allow esp from 198.51.100.0/24 to 192.0.2.10/32",
        'chain forward: ip saddr @zone_quarantine_v4 ip daddr @owned_v4 ip daddr != @zone_quarantine_v4 counter '
        'drop comment "configmgr.nap:drop unplanned from zone quarantine"',
    ]


def test_diff_of_an_unchanged_table_is_empty(policy, listing):
    diff = nftables_compare.compare(policy, nftables.parse_table(listing)).ansible_diff()
    assert diff["before"] == diff["after"] == ""


def test_icmp_echo_request_renders_per_family_and_parses_back():
    """An ICMP type narrows the rule in each family as nft lists it (no l4proto dependency), and reads back."""
    rule = Rule.from_dict({"name": "CM-PUSH-ICMP-ICMP-IN", "direction": "in", "protocol": "icmp",
                           "icmp_type": "echo-request", "src_addresses": ["198.18.0.10", "2001:db8::10"]})
    bodies = [r.body() for r in nftables.rule_to_nft(rule)]
    assert [b.split(" counter")[0] for b in bodies] == ["ip saddr 198.18.0.10/32 icmp type echo-request",
                                                        "ip6 saddr 2001:db8::10/128 icmpv6 type echo-request"]
    listing = {"nftables": [{"table": {"family": "inet", "name": "configmgr_nap"}},
                            {"chain": {"family": "inet", "table": "configmgr_nap", "name": "input"}}] + [
        {"rule": {"family": "inet", "table": "configmgr_nap", "chain": "input", "comment": r.comment, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip" if fam == 4 else "ip6", "field": "saddr"}},
                       "right": addr}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "icmp" if fam == 4 else "icmpv6",
                                                        "field": "type"}}, "right": "echo-request"}},
            {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}]}}
        for r, fam, addr in zip(nftables.rule_to_nft(rule), (4, 6), ("198.18.0.10", "2001:db8::10"))]}
    (back,) = nftables.parse_rules(nftables.parse_table(listing), want=[rule])
    assert (back.protocol, back.icmp_type, back.src_addresses) == ("icmp", "echo-request", rule.src_addresses)
    assert not back.description.startswith(nftables.TAMPERED)


def test_a_rule_for_every_icmp_type_where_echo_is_planned_is_an_update():
    """The table still allows every ICMP type (a plan made before icmp_type): the diff reports the rule changed."""
    want = Rule.from_dict({"name": "CM-PUSH-ICMP-ICMP-IN", "direction": "in", "protocol": "icmp",
                           "icmp_type": "echo-request", "src_addresses": ["198.18.0.10"]})
    old = Rule.from_dict(dict(want.to_dict(), icmp_type=None))
    (part,) = nftables.rule_to_nft(old)
    listing = {"nftables": [{"table": {"family": "inet", "name": "configmgr_nap"}},
                            {"chain": {"family": "inet", "table": "configmgr_nap", "name": "input"}},
                            {"rule": {"family": "inet", "table": "configmgr_nap", "chain": "input",
                                      "comment": part.comment, "expr": [
                                          {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                                     "right": "198.18.0.10"}},
                                          {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}},
                                          {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}]}}]}
    (have,) = nftables.parse_rules(nftables.parse_table(listing), want=[want])
    assert have.icmp_type is None and have.description == "ICMP type any, planned echo-request"
    result = diff_rules([want], [have], nftables.COMPARE)
    assert [new.name for _old, new in result.update] == ["CM-PUSH-ICMP-ICMP-IN"]


# ---------------------------------------------------------------------------
# The no-op's shortcuts (issue 22) read a table exactly as the long way does
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("right", [
    "192.0.2.10",
    {"prefix": {"addr": "198.51.100.0", "len": 24}},
    {"set": ["192.0.2.10", {"prefix": {"addr": "198.51.100.0", "len": 25}}, {"prefix": {"addr": "198.51.100.128",
                                                                                        "len": 25}}]},
    {"set": ["192.0.2.7", {"prefix": {"addr": "192.0.2.0", "len": 24}}]},          # covered: collapsed
    {"prefix": {"addr": "198.51.100.5", "len": 24}},                                 # host bits: masked
    {"set": ["2001:DB8::1", "2001:db8:0::2", {"prefix": {"addr": "2001:db8::", "len": 64}}]},
    {"set": ["0.0.0.0", "192.0.2.1"]},
    " 192.0.2.10",
    "192.0.2.300",
    "010.0.0.1",
    "junk",
    {"set": ["junk", {"prefix": {"addr": "192.0.2.0", "len": 24}}]},
    {"set": [{"prefix": {"len": 24}}, "192.0.2.1"]},
    {"prefix": {"addr": "192.0.2.0", "len": "24"}},
    {"range": ["192.0.2.0", "192.0.2.255"]},
    "@owned_v4",
    {"set": ["@owned_v4", "192.0.2.1"]},
    {"set": []},
])
def test_addresses_read_the_short_way_as_item_by_item(right, monkeypatch):
    """Plain addresses and prefixes go to normalize_addresses as CIDR text; the result, or the error that names the
    item nft listed, is what the item by item parse through ipaddress gives."""
    def read():
        try:
            return ("ok", nftables._addr_values(copy.deepcopy(right)))
        except Exception as exc:    # pylint: disable=broad-except
            return (type(exc).__name__, str(exc))
    short = read()
    monkeypatch.setattr(nftables, "_addr_texts", lambda items: None)
    assert short == read()


def test_parse_rules_takes_the_rendering_of_the_planned_rules_with_the_same_result(policy, listing):
    """compare() hands parse_rules the nft rules desired_state rendered: a rule read back as planned is not rendered
    again, and every rule (planned, edited by hand, added by hand) comes back as without them."""
    def edited(doc):
        doc = copy.deepcopy(doc)
        rules = items(doc, "rule")
        rules[6]["expr"][0]["match"]["right"] = "192.0.2.99"
        rules[7]["expr"] = [e for e in rules[7]["expr"] if "counter" not in e]
        rules[8]["comment"] = "hand made"
        return doc

    want_state = nftables.desired_state(policy)
    assert want_state.rendered and all(rule.name in want_state.rendered for rule in policy.rules)
    for doc in (listing, edited(listing)):
        have = nftables.parse_table(doc)
        args = (have, policy.families, policy.rpc_dynamic_range, policy.rules)
        plain = nftables.parse_rules(*args)
        shortcut = nftables.parse_rules(*args, rendered=want_state.rendered)
        assert [r.to_dict() for r in shortcut] == [r.to_dict() for r in plain]
    change = nftables_compare.compare(policy, nftables.parse_table(edited(listing)))
    assert change.changed and change.changed is change.changed
