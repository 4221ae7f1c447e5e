# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows backend: translation, hand-edit detection, guards, op lists and the three rendered forms.

Rendered scripts are compared with golden files ``golden/win_<case>.<form>.ref`` (a mismatch writes
``.actual`` beside it; ``NAP_UPDATE_GOLDEN=1`` accepts the new output) and, when the tree-sitter
PowerShell grammar is installed, parsed for syntax errors.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from golden import assert_golden
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_changes
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_lockout
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_render
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, Rule

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
PREFIX = windows.DEFAULT_PREFIX


def estate_plan():
    groups = {"nap_site_servers": ["cm01"], "nap_shv_points": ["nps01"], "nap_domain_controllers": ["dc01"],
              "nap_global_catalogs": ["dc01"], "nap_hras": ["hra01"], "nap_certification_authorities": ["ca01"]}
    hostvars = {"cm01": {"ansible_host": "192.0.2.10"}, "nps01": {"ansible_host": "192.0.2.20"},
                "dc01": {"ansible_host": "192.0.2.5"}, "hra01": {"ansible_host": "192.0.2.30"},
                "ca01": {"ansible_host": "192.0.2.35"}}
    settings = {"nap_management_sources": ["203.0.113.10"], "nap_enforcement_methods": ["ipsec"],
                "nap_client_networks": ["198.51.100.0/24"], "nap_windows_outbound_policy": "block"}
    return planner.plan(groups, hostvars, settings)


PLAN = estate_plan()

ODD_RULES = [
    {"name": "ICMP-ECHO-IN", "direction": "in", "protocol": "icmp", "src_addresses": ["2001:db8::/64", "192.0.2.0/24"],
     "description": "ping from the servers' zone"},
    {"name": "IKE-ESP-IN", "direction": "in", "protocol": "esp", "src_addresses": ["198.51.100.0/24"],
     "description": u"IPsec \u2018ESP\u2019 - 100% of the traffic"},
    {"name": "DNS-OUT", "direction": "out", "protocol": "udp", "dst_addresses": ["192.0.2.5", "192.0.2.6"],
     "dst_ports": [53], "src_ports": ["49152-65535"]},
    {"name": "LOCAL-ONLY", "direction": "in", "protocol": "tcp", "dst_addresses": ["192.0.2.20"], "dst_ports": [8530, 8531]},
]

CASES = {
    "nps01": (PLAN["hosts"]["nps01"]["inbound"] + PLAN["hosts"]["nps01"]["outbound"], ["all"]),
    "cm01": (PLAN["hosts"]["cm01"]["inbound"] + PLAN["hosts"]["cm01"]["outbound"], ["all"]),
    "odd": (ODD_RULES, ["domain", "private"]),
}
FORMS = ("com", "netsecurity", "netsh")


RENDER_MANAGEMENT = {"management_sources": ["198.18.0.10"], "management_port": 5986}


def rendered(case):
    items, profiles = CASES[case]
    rules = windows.rules_from_input(items)
    return windows_render.render_all(rules, mask=windows.profiles_mask(profiles), host=case, **RENDER_MANAGEMENT)


@pytest.mark.parametrize("case,form", [(c, f) for c in CASES for f in FORMS],
                         ids=["%s.%s" % (c, f) for c in CASES for f in FORMS])
def test_rendered_matches_golden(case, form):
    assert_golden(rendered(case)[form], os.path.join(GOLDEN, "win_%s.%s.ref" % (case, form)), form)


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_lines_are_the_scripts_split_on_their_own_line_endings(case):
    """state: rendered returns each form as a list of lines (issue 13, item 4): com and netsecurity joined with
    LF, the netsh .cmd file with CRLF, give back the golden text; no line holds a line ending."""
    items, profiles = CASES[case]
    rules = windows.rules_from_input(items)
    lines = windows_render.render_all_lines(rules, mask=windows.profiles_mask(profiles), host=case, **RENDER_MANAGEMENT)
    texts = rendered(case)
    assert list(lines) == list(FORMS) == list(windows_render.RENDERED_NEWLINES)
    for form in FORMS:
        newline = windows_render.RENDERED_NEWLINES[form]
        assert isinstance(lines[form], list) and lines[form]
        assert newline.join(lines[form]) + newline == texts[form]
        assert not [line for line in lines[form] if "\r" in line or "\n" in line]
    assert lines["netsh"][0] == "@echo off" and lines["com"][0] == "#Requires -Version 2.0"
    assert lines["com"][1].startswith("# configmgr.nap win_nap_firewall")


def _parser():
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError:
        return None
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def _errors(parser, text):
    tree = parser.parse(text.encode("utf-8"))
    out = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            out.append((node.start_point, text.encode("utf-8")[node.start_byte:node.end_byte][:60]))
        stack.extend(node.children)
    return out


@pytest.mark.parametrize("name,text", [("READ_PS1", windows.READ_PS1), ("APPLY_PS1", windows.APPLY_PS1)]
                         + [("%s.%s" % (c, f), None) for c in CASES for f in ("com", "netsecurity")])
def test_powershell_parses(name, text):
    parser = _parser()
    if parser is None:
        pytest.skip("tree-sitter-powershell is not installed (requirements-dev.txt)")
    if text is None:
        case, form = name.split(".")
        text = rendered(case)[form]
    assert _errors(parser, text) == []


def test_ps_quote_doubles_every_single_quote():
    assert windows_render.ps_quote(u"it's \u2018x\u2019") == u"'it''s \u2018\u2018x\u2019\u2019'"
    assert windows_render.ps_quote("$env:x `n") == "'$env:x `n'"


def test_netsh_refuses_what_it_cannot_quote_and_escapes_percent():
    rule = windows.rule_from_input({"name": "R", "protocol": "tcp", "dst_ports": [1], "description": 'say "hi"'})
    with pytest.raises(NapError, match="double quote"):
        windows_render.render_netsh([rule])
    rule = windows.rule_from_input({"name": "R", "protocol": "tcp", "dst_ports": [1], "description": "100%"})
    assert 'description="100%%"' in windows_render.render_netsh([rule])


# ---------------------------------------------------------------------------
# Translation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("text,nets,problems", [
    ("*", (), []),
    ("", (), []),
    (None, (), []),
    ("192.0.2.10/255.255.255.255", ("192.0.2.10/32",), []),
    ("192.0.2.0/255.255.255.0,192.0.2.7", ("192.0.2.0/24",), []),
    ("192.0.2.0-192.0.2.127", ("192.0.2.0/25",), []),
    ("192.0.2.1-192.0.2.2", ("192.0.2.1/32", "192.0.2.2/32"), []),
    ("2001:db8::/64,198.51.100.0/24", ("198.51.100.0/24", "2001:db8::/64"), []),
    ("LocalSubnet,192.0.2.1", ("192.0.2.1/32",), ["LocalSubnet"]),
    ("not-an-ip", (), ["not-an-ip"]),
])
def test_parse_addresses(text, nets, problems):
    assert windows.parse_addresses(text) == (nets, problems)


@pytest.mark.parametrize("text,ports,problems", [
    ("*", (), []),
    ("443,80", (80, 443), []),
    ("49152-65535", ("49152-65535",), []),
    ("RPC-EPMap", ("rpc-epmap",), []),
    ("RPCEPMap", ("rpc-epmap",), []),
    ("RPC", ("rpc-dynamic",), []),
    ("IPHTTPS", (), ["IPHTTPS"]),
])
def test_parse_ports(text, ports, problems):
    assert windows.parse_ports(text) == (ports, problems)


def test_port_keywords_are_spelled_per_backend():
    assert windows.format_ports(("rpc-epmap",), "com") == "RPC-EPMap"
    assert windows.format_ports(("rpc-epmap",), "netsh") == "RPC-EPMap"
    assert windows.format_ports(("rpc-epmap",), "ps") == "RPCEPMap"
    assert windows.format_ports(("rpc-dynamic",), "ps") == "RPC"
    assert windows.format_ports((), "com") == "*"


def test_profiles():
    assert windows.profiles_mask(["all"]) == windows.PROFILES_ALL == 0x7FFFFFFF
    assert windows.profiles_mask(["domain", "private", "public"]) == windows.PROFILES_ALL
    assert windows.profiles_mask(["domain", "public"]) == 5
    assert windows.same_profiles(7, windows.PROFILES_ALL) and not windows.same_profiles(1, 3)
    assert windows.profiles_names(windows.PROFILES_ALL) == ["all"] and windows.profiles_names(6) == ["private", "public"]
    with pytest.raises(NapError):
        windows.profiles_mask(["office"])


def test_inbound_and_outbound_map_to_local_and_remote():
    inbound = windows.rule_from_input({"name": "I", "protocol": "tcp", "src_addresses": ["192.0.2.1"], "src_ports": [1000],
                                       "dst_addresses": ["192.0.2.20"], "dst_ports": [445]})
    fw = windows.rule_to_fw(inbound, "G", PREFIX)
    assert (fw["Direction"], fw["RemoteAddresses"], fw["RemotePorts"], fw["LocalAddresses"], fw["LocalPorts"]) == (
        1, "192.0.2.1/32", "1000", "192.0.2.20/32", "445")
    outbound = windows.rule_from_input({"name": "O", "direction": "out", "protocol": "udp", "dst_addresses": ["192.0.2.5"],
                                        "dst_ports": [53]})
    fw = windows.rule_to_fw(outbound, "G", PREFIX)
    assert (fw["Direction"], fw["RemoteAddresses"], fw["RemotePorts"], fw["LocalPorts"]) == (2, "192.0.2.5/32", "53", "*")
    icmp = windows.rule_to_fw(windows.rule_from_input({"name": "P", "protocol": "icmp"}), "G", PREFIX)
    assert icmp["Protocol"] == 1 and icmp["LocalPorts"] is None and icmp["RemoteAddresses"] == "*"


@pytest.mark.parametrize("edit,needle", [
    ({"Enabled": False}, "Enabled=False"),
    ({"Action": 0}, "Action=Block"),
    ({"Profiles": 1}, "Profiles=domain"),
    ({"RemoteAddresses": "LocalSubnet"}, "RemoteAddresses=LocalSubnet"),
    ({"LocalPorts": "IPHTTPS"}, "LocalPorts=IPHTTPS"),
    ({"ApplicationName": "C:\\x.exe"}, "ApplicationName=C:\\x.exe"),
    ({"EdgeTraversal": True}, "EdgeTraversal=True"),
    ({"InterfaceTypes": "Wireless"}, "InterfaceTypes=Wireless"),
    ({"Protocol": 41}, "Protocol=41"),
    ({"Direction": 3}, "Direction=3"),
])
def test_hand_edits_show_in_the_description(edit, needle):
    rule = windows.rule_from_input({"name": "R", "protocol": "tcp", "src_addresses": ["192.0.2.1"], "dst_ports": [445],
                                    "description": "SMB"})
    fw = dict(windows.rule_to_fw(rule, "G", PREFIX))
    assert windows.fw_to_rule(fw, PREFIX).description == "SMB"
    fw.update(edit)
    back = windows.fw_to_rule(fw, PREFIX)
    assert back.description.startswith(windows.TAMPERED) and needle in back.description
    assert "(description: SMB)" in back.description


def test_description_carries_flow_id_and_source():
    rule = windows.rule_from_input({"name": "X-IN", "flow_id": "X", "source": "seed row 3", "protocol": "udp",
                                    "dst_ports": [67], "description": "DHCP"})
    fw = windows.rule_to_fw(rule, "G", PREFIX)
    assert fw["Description"] == "DHCP [flow X; source seed row 3]"
    back = windows.fw_to_rule(fw, PREFIX)
    assert (back.flow_id, back.source, back.description) == ("X", "seed row 3", "DHCP")
    plain = windows.rule_from_input({"name": "Y", "protocol": "gre"})
    assert windows.rule_to_fw(plain, "G", PREFIX)["Description"] == ""


ADDRESS = st.builds(lambda a, b, n: "192.%d.%d.0/%d" % (a, b, n), st.integers(0, 255), st.integers(0, 255),
                    st.integers(16, 32)) | st.builds(lambda a, n: "2001:db8:%x::/%d" % (a, n), st.integers(0, 0xffff),
                                                     st.integers(48, 128))
PORT = st.integers(1, 65535) | st.builds(lambda a, b: "%d-%d" % (min(a, b), max(a, b)), st.integers(1, 65535),
                                         st.integers(1, 65535))


@st.composite
def model_rules(draw):
    direction = draw(st.sampled_from(["in", "out"]))
    protocol = draw(st.sampled_from(["tcp", "udp", "esp", "ah", "gre", "icmp"]))
    data = {"name": draw(st.text("ABCXYZ0123456789", min_size=1, max_size=1)) + draw(st.text("ABCXYZ-_.0123456789",
                                                                                             max_size=19)),
            "flow_id": draw(st.sampled_from(["F1", "NAP-GC-READ"])), "direction": direction, "protocol": protocol,
            "src_addresses": draw(st.lists(ADDRESS, max_size=3)), "dst_addresses": draw(st.lists(ADDRESS, max_size=3)),
            "description": draw(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp"),
                                                      blacklist_characters="|"), max_size=30)),
            "source": draw(st.sampled_from(["", "NAP", "seed row 1"]))}
    if protocol in ("tcp", "udp"):
        if direction == "in" and protocol == "tcp" and draw(st.booleans()):
            data["dst_ports"] = [draw(st.sampled_from(["rpc-epmap", "rpc-dynamic"]))]
        else:
            data["dst_ports"] = draw(st.lists(PORT, max_size=3))
            data["src_ports"] = draw(st.lists(PORT, max_size=2))
    return windows.rule_from_input(data)


@settings(max_examples=200, deadline=None)
@given(model_rules(), st.sampled_from([windows.PROFILES_ALL, 1, 6]))
def test_round_trip_through_windows_form(rule, mask):
    """model -> INetFwRule -> (the COM address form) -> model is the identity, and diffs to nothing."""
    fw = dict(windows.rule_to_fw(rule, "G", PREFIX, mask))
    for key in ("RemoteAddresses", "LocalAddresses"):
        if fw[key] != "*":
            parts = []
            for item in fw[key].split(","):
                import ipaddress
                net = ipaddress.ip_network(item)
                parts.append("%s/%s" % (net.network_address, net.netmask) if net.version == 4 else item)
            fw[key] = ",".join(parts)
    back = windows.fw_to_rule(fw, PREFIX, mask)
    want = windows.full_rules([rule], PREFIX)[0]
    assert back.to_dict() == want.to_dict()


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------
def test_ranges_in_input_become_cidrs():
    rule = windows.rule_from_input({"name": "R", "protocol": "tcp", "dst_ports": [80],
                                    "src_addresses": ["192.0.2.0-192.0.2.255", "198.51.100.7"]})
    assert rule.src_addresses == ("192.0.2.0/24", "198.51.100.7/32")


def test_rules_from_plan():
    rules = windows.rules_from_plan(PLAN, "nps01")
    assert rules == PLAN["hosts"]["nps01"]["inbound"] + PLAN["hosts"]["nps01"]["outbound"]
    with pytest.raises(NapError, match="host is not"):
        windows.rules_from_plan(PLAN, None)
    with pytest.raises(NapError, match="not in the plan"):
        windows.rules_from_plan(PLAN, "zz")
    with pytest.raises(NapError, match="expected the handle of configmgr.nap.nap_plan"):
        windows.rules_from_plan({"x": 1}, "nps01")


# ---------------------------------------------------------------------------
# Versions, Group Policy, lockout
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("os_version,ps_version,ok", [
    ("6.1.7601.65536", "5.1.14409.1005", True),
    ("6.1.7601", "5.1", True),
    ("10.0.17763.0", "5.1.17763.1", True),
    ("10.0.20348.0", "7.4.1", True),
    ("6.1.7600.16385", "5.1", False),
    ("6.0.6002.18005", "5.1", False),
    ("6.1.7601", "4.0", False),
    ("6.1.7601", "2.0", False),
    ("", "", False),
])
def test_version_ok(os_version, ps_version, ok):
    assert windows.version_ok(os_version, ps_version) is ok


def test_local_policy_problem():
    assert windows.local_policy_problem("h", 0) is None
    assert "GP_OVERRIDE" in windows.local_policy_problem("h", 1) and "local_policy_override" in windows.local_policy_problem("h", 1)
    assert "INBOUND_BLOCKED" in windows.local_policy_problem("h", 2)


def _profiles(**kw):
    out = dict((p, {"enabled": True, "default_inbound_action": 0, "block_all_inbound": False}) for p in windows.PROFILE_BITS)
    for name, values in kw.items():
        out[name].update(values)
    return out


def _fw(**kw):
    base = {"Name": "f", "Grouping": "other", "Direction": 1, "Action": 1, "Protocol": 6, "LocalPorts": "5985",
            "RemoteAddresses": "*", "Profiles": windows.PROFILES_ALL, "Enabled": True, "ApplicationName": "",
            "ServiceName": ""}
    base.update(kw)
    return base


def _lockout(sources, foreign=(), owned=(), profiles=None, current=1, ports=(5985, 5986)):
    read = {"profiles": profiles or _profiles(), "current_profile_types": current,
            "management_rules": list(foreign), "rules": []}
    owned = [windows.full_rules([windows.rule_from_input(r)], PREFIX)[0] for r in owned]
    return windows_lockout.lockout_problems(sources, ports, read, "G", owned, windows.PROFILES_ALL)


def test_lockout_judgement():
    assert _lockout(["203.0.113.10/32"]) != []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw()]) == []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(RemoteAddresses="203.0.113.0/255.255.255.240")]) == []
    assert _lockout(["203.0.113.0/24"], foreign=[_fw(RemoteAddresses="203.0.113.0/255.255.255.128")]) != []
    assert _lockout(["203.0.113.0/24"], foreign=[_fw(RemoteAddresses="203.0.113.0/255.255.255.128"),
                                                 _fw(RemoteAddresses="203.0.113.128-203.0.113.255")]) == []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(LocalPorts="5986")]) == []            # either port will do
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(LocalPorts="5986")], ports=(5985,)) != []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(Enabled=False)]) != []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(Profiles=4)]) != []                  # domain is current
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(ApplicationName="C:\\app.exe")]) != []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(ApplicationName="System")]) == []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(RemoteAddresses="LocalSubnet")]) != []
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(), _fw(Action=0, RemoteAddresses="203.0.113.0/24")]) != []
    assert _lockout(["2001:db8::10/128"], foreign=[_fw(RemoteAddresses="2001:db8::/32")]) == []
    owned = [{"name": "MGMT", "protocol": "tcp", "src_addresses": ["203.0.113.10"], "dst_ports": [5985, 5986]}]
    assert _lockout(["203.0.113.10/32"], owned=owned) == []
    # profile state: firewall off, default allow, block all
    assert _lockout(["203.0.113.10/32"], profiles=_profiles(domain={"enabled": False})) == []
    assert _lockout(["203.0.113.10/32"], profiles=_profiles(domain={"default_inbound_action": 1})) == []
    problems = _lockout(["203.0.113.10/32"], foreign=[_fw()], profiles=_profiles(domain={"block_all_inbound": True}))
    assert problems and "BlockAllInboundTraffic" in problems[0]
    # every current profile must keep the path
    assert _lockout(["203.0.113.10/32"], foreign=[_fw(Profiles=1)], current=5) != []


# ---------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------
def _state(rules, group="G"):
    doc = {"rules": [dict(windows.rule_to_fw(r, group, PREFIX)) for r in rules]}
    return windows_changes.HostState(doc, group, PREFIX)


def test_ops_update_in_place_add_then_remove_last_by_a_unique_name():
    a, b, c = (windows.rule_from_input({"name": n, "protocol": "tcp", "dst_ports": [p]}) for n, p in
               (("A", 1), ("B", 2), ("C", 3)))
    b2 = windows.rule_from_input({"name": "B", "protocol": "tcp", "dst_ports": [22]})
    state = _state([a, b])
    rdiff, ops = windows_changes.plan_changes(windows.full_rules([b2, c], PREFIX), state, token="t0")
    assert [(o["op"], o["name"]) for o in ops] == [("update", PREFIX + "B"), ("add", PREFIX + "C"), ("remove", PREFIX + "A")]
    assert ops[0]["set"] == [["LocalPorts", "22"]]           # only what differs, on the existing rule
    add = dict(ops[1]["set"])
    assert add["LocalPorts"] == "3" and add["Grouping"] == "G"
    assert ops[2]["temp"] == ["configmgr.nap ~t0.1"]          # renamed away, then removed by that name
    assert rdiff.summary() == {"missing": [PREFIX + "C"], "extra": [PREFIX + "A"], "changed": [PREFIX + "B"]}
    _rdiff, ops = windows_changes.plan_changes(windows.full_rules([a, b], PREFIX), state)
    assert ops == []


def test_management_rules_go_first_by_the_catalogue_category_not_the_name():
    mgmt = windows.rule_from_input({"name": "ZZ-ANY-NAME", "flow_id": "MGMT-WINRM", "protocol": "tcp", "dst_ports": [5986]})
    named = windows.rule_from_input({"name": "MGMT-LOOKALIKE", "flow_id": "CM-MP", "protocol": "tcp", "dst_ports": [80]})
    other = windows.rule_from_input({"name": "A", "protocol": "tcp", "dst_ports": [1]})
    _rdiff, ops = windows_changes.plan_changes(windows.full_rules([other, named, mgmt], PREFIX), _state([]))
    assert [o["name"] for o in ops] == [PREFIX + "ZZ-ANY-NAME", PREFIX + "A", PREFIX + "MGMT-LOOKALIKE"]


def test_protocol_change_resets_ports_before_the_protocol():
    old = windows.rule_to_fw(windows.rule_from_input({"name": "A", "protocol": "tcp", "dst_ports": [80]}), "G", PREFIX)
    new = windows.rule_to_fw(windows.rule_from_input({"name": "A", "protocol": "gre"}), "G", PREFIX)
    assert windows_changes.update_set(old, new) == [["LocalPorts", "*"], ["Protocol", 47]]
    back = windows_changes.update_set(dict(new, LocalPorts="*", RemotePorts="*"), old)
    assert [k for k, _v in back] == ["Protocol", "LocalPorts"]


def test_narrowing_an_owned_rule_by_hand_is_drift_and_is_reset_in_place():
    rule = windows.rule_from_input({"name": "A", "protocol": "tcp", "dst_ports": [5986]})
    fw = dict(windows.rule_to_fw(rule, "G", PREFIX))
    for field, value in (("Interfaces", "Ethernet 2"), ("InterfaceTypes", "Wireless"), ("EdgeTraversal", True),
                         ("SecureFlags", 1), ("RemoteMachineAuthorizedList", "O:LSD:(A;;CC;;;S-1-5-21)"),
                         ("RemotePorts", "1024")):
        narrowed = dict(fw, **{field: value})
        state = windows_changes.HostState({"rules": [narrowed]}, "G", PREFIX)
        if field != "RemotePorts":     # RemotePorts is the model's src_ports: a plain difference
            assert windows.TAMPERED in state.owned[0].description, field
        _rdiff, ops = windows_changes.plan_changes(windows.full_rules([rule], PREFIX), state)
        assert [o["op"] for o in ops] == ["update"] and [k for k, _v in ops[0]["set"]] == [field], field


def test_duplicated_names_are_renamed_apart_then_one_copy_updated_the_others_removed():
    a = windows.rule_from_input({"name": "A", "protocol": "tcp", "dst_ports": [1]})
    state = _state([a, a, a])
    _rdiff, ops = windows_changes.plan_changes(windows.full_rules([a], PREFIX), state, token="t")
    assert ops[0]["op"] == "update" and ops[0]["temp"] == ["configmgr.nap ~t.1", "configmgr.nap ~t.2", "configmgr.nap ~t.3"]
    assert ["Name", PREFIX + "A"] in ops[0]["set"]
    assert [(o["op"], o["name"]) for o in ops[1:]] == [("remove", "configmgr.nap ~t.2"), ("remove", "configmgr.nap ~t.3")]


def test_netsh_made_rules_with_an_empty_group_and_a_planned_name_are_adopted():
    a = windows.rule_from_input({"name": "A", "protocol": "tcp", "dst_ports": [1]})
    fw = dict(windows.rule_to_fw(a, "", PREFIX))
    other = dict(fw, Name=PREFIX + "NOT-PLANNED")
    upper = dict(fw, Name=PREFIX.upper() + "A")
    state = windows_changes.HostState({"rules": [fw, other]}, "G", PREFIX, adopt=[PREFIX + "A"])
    assert [f["Name"] for f in state.adopted_fw] == [PREFIX + "A"] and [f["Name"] for f in state.outside_fw] == [
        PREFIX + "NOT-PLANNED"]
    _rdiff, ops = windows_changes.plan_changes(windows.full_rules([a], PREFIX), state)
    assert ops[0]["op"] == "update" and ops[0]["adopt"] is True and ops[0]["set"] == [["Grouping", "G"]]
    # only an exact name, only an empty group
    assert windows_changes.HostState({"rules": [upper]}, "G", PREFIX, adopt=[PREFIX + "A"]).adopted_fw == []
    assert windows_changes.HostState({"rules": [dict(fw, Grouping="Other")]}, "G", PREFIX, adopt=[PREFIX + "A"]).adopted_fw == []


@pytest.mark.parametrize("field,value", [("name", "A|B"), ("description", "x | y"), ("source", "a|b")])
def test_pipe_is_refused_naming_host_rule_and_value(field, value):
    # the input check refuses it first; the Windows check refuses it too, whatever made the rule
    data = {"name": "A", "protocol": "tcp", "dst_ports": [1]}
    data[field] = value
    with pytest.raises(NapError) as err:
        windows.rules_from_input([data])
    assert value in str(err.value)
    rule = Rule(**dict(windows.rules_from_input([{"name": "A", "protocol": "tcp", "dst_ports": [1]}])[0].to_dict(),
                       **{field: value}))
    with pytest.raises(NapError) as err:
        windows.check_windows_values([rule], "nps01", "G", PREFIX)
    assert "nps01" in str(err.value) and repr(rule.name) in str(err.value) and value in str(err.value)
    assert "'|'" in str(err.value)


def test_fw_value_problems_cover_protocol_and_ports():
    base = {"Name": "n", "Description": "", "Direction": 1, "Protocol": 6}
    assert windows.fw_value_problems(dict(base, Protocol=300))[0][0] == "Protocol"
    assert windows.fw_value_problems(dict(base, LocalPorts="80-70"))[0][:2] == ("LocalPorts", "80-70")
    assert windows.fw_value_problems(dict(base, LocalPorts="70000"))
    assert windows.fw_value_problems(dict(base, Protocol=17, LocalPorts="RPC"))
    assert windows.fw_value_problems(dict(base, Direction=2, LocalPorts="RPC"))
    assert windows.fw_value_problems(dict(base, RemotePorts="RPC-EPMap"))
    assert windows.fw_value_problems(dict(base, Protocol=47, LocalPorts="80"))
    assert windows.fw_value_problems(dict(base, LocalPorts="RPC")) == []
    assert windows.fw_value_problems(dict(base, LocalPorts="80,1024-2048")) == []


def test_prefixes_with_host_bits_are_normalised():
    rule = windows.rule_from_input({"name": "A", "protocol": "tcp", "dst_ports": [1], "src_addresses": ["10.0.0.2/8"]})
    assert rule.src_addresses == ("10.0.0.0/8",)


def test_lockout_counts_group_policy_and_ignores_narrowed_rules():
    src = ["203.0.113.10/32"]
    assert _lockout(src, foreign=[_fw()], ports=(5985,)) == []
    for field, value in (("Interfaces", "Ethernet"), ("InterfaceTypes", "Lan"), ("LocalAddresses", "192.0.2.1"),
                         ("RemotePorts", "1024-65535"), ("EdgeTraversal", True), ("SecureFlags", 1),
                         ("RemoteUserAuthorizedList", "O:LSD:(A;;CC;;;S-1-5-32-544)")):
        assert _lockout(src, foreign=[_fw(**{field: value})], ports=(5985,)) != [], field
    # Group Policy: the firewall off by policy admits; local rules do not count without policy merge
    read = {"profiles": _profiles(), "current_profile_types": 1, "management_rules": [_fw()], "rules": [],
            "group_policy": {"profiles": {"domain": {"AllowLocalPolicyMerge": 0}}, "rules": []}}
    assert windows_lockout.lockout_problems(src, (5985,), read, "G", [], windows.PROFILES_ALL) != []
    read["group_policy"]["rules"] = ["v2.10|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=5985|RA4=203.0.113.0/24|"]
    assert windows_lockout.lockout_problems(src, (5985,), read, "G", [], windows.PROFILES_ALL) == []
    read["group_policy"] = {"profiles": {"domain": {"DoNotAllowExceptions": 1}}, "rules": []}
    assert "DoNotAllowExceptions" in windows_lockout.lockout_problems(src, (5985,), read, "G", [], windows.PROFILES_ALL)[0]
    read["group_policy"] = {"profiles": {"domain": {"EnableFirewall": 0}}, "rules": []}
    assert windows_lockout.lockout_problems(src, (5985,), {"profiles": _profiles(), "current_profile_types": 1,
                                                           "group_policy": read["group_policy"]}, "G", [], 3) == []


def test_collisions_are_found_case_insensitively():
    doc = {"rules": [dict(windows.rule_to_fw(windows.rule_from_input({"name": "A", "protocol": "gre"}), "other", PREFIX))]}
    doc["rules"][0]["Name"] = PREFIX.upper() + "a"
    state = windows_changes.HostState(doc, "G", PREFIX)
    assert state.owned == [] and len(state.collisions([PREFIX + "A"])) == 1


def test_group_and_prefix_checks():
    with pytest.raises(NapError):
        windows.check_prefix("")
    with pytest.raises(NapError):
        windows.check_group(" ")
    assert windows.model_name(PREFIX + "X", PREFIX) == "X" and windows.model_name("Other", PREFIX) == "Other"
    assert isinstance(windows.full_rules([Rule("X", "X", "in", "gre")], PREFIX)[0], Rule)


def _check_ps1():
    import importlib.util  # pylint: disable=import-outside-toplevel
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), *([os.pardir] * 6 + ["hack", "check_ps1.py"]))
    spec = importlib.util.spec_from_file_location("check_ps1", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_ps1_rejects_powershell_3_syntax_only_in_scripts_meant_for_2():
    check = _check_ps1()
    text = ("#Requires -Version 2.0\n<# ConvertTo-Json in a block comment #>\n$a = [ordered]@{}\n"
            "if (1 -in @(1)) { $b = [pscustomobject]@{} }\n$c = [Text.StringBuilder]::new()\n"
            "$d = ConvertFrom-Json '1' # -notin in a comment\n$e = 1 -notin @(2)\n$f = -not $true\n")
    found = [(line, what.split()[3]) for line, _col, what in check.ps3_problems(text)]
    assert found == [(3, "[ordered]"), (4, "-in"), (4, "[pscustomobject]"), (5, "::new("), (6, "ConvertFrom-Json"),
                     (7, "-notin")]
    assert check.meant_for_ps2(text) and not check.meant_for_ps2(windows.READ_PS1)
    assert not check.meant_for_ps2(windows.APPLY_PS1)      # the managed path targets 5.1


def test_management_rules_are_those_of_the_management_channel_trait():
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
    assert catalogue.has_trait("MGMT-WINRM", "management_channel") and catalogue.has_trait("MGMT-SSH", "management_channel")
    assert not catalogue.has_trait("NAP-SHV-INSTALL", "management_channel")
    mgmt = Rule(name="X", flow_id="MGMT-WINRM", direction="in", protocol="tcp", dst_ports=(5986,))
    other = Rule(name="MGMT-WINRM-TCP-IN", flow_id="NAP-SHV-INSTALL", direction="in", protocol="tcp", dst_ports=(445,))
    assert windows.is_management(mgmt) and not windows.is_management(other)


@pytest.mark.parametrize("addresses, protocol, codes", [
    (("192.0.2.0/24",), 1, "8:*"),
    (("2001:db8::/64",), 58, "128:*"),
    ((), 1, "8:*"),
])
def test_icmp_echo_request_as_windows_holds_it(addresses, protocol, codes):
    rule = Rule(name="PING", flow_id="PING", direction="in", protocol="icmp", src_addresses=addresses,
                icmp_type="echo-request")
    fw = windows.rule_to_fw(rule, windows.DEFAULT_GROUP, windows.DEFAULT_PREFIX)
    assert (fw["Protocol"], fw["IcmpTypesAndCodes"]) == (protocol, codes)
    back = windows.fw_to_rule(fw, windows.DEFAULT_PREFIX, group=windows.DEFAULT_GROUP)
    assert back.icmp_type == "echo-request" and back.protocol == "icmp" and not back.description.startswith("edited")
    netsh = " ".join(windows_render._netsh_args(fw))
    assert ("protocol=icmpv4:8,any" if protocol == 1 else "protocol=icmpv6:128,any") in netsh
    other = dict(fw, IcmpTypesAndCodes="0:*")
    assert windows.fw_to_rule(other, windows.DEFAULT_PREFIX).description.startswith(windows.TAMPERED)


def test_icmp_rule_of_both_families_is_split_and_netsecurity_gets_the_type():
    rules = windows.rules_from_input([{"name": "PING", "direction": "in", "protocol": "icmp", "icmp_type": "echo-request",
                                       "src_addresses": ["192.0.2.10", "2001:db8::10"]}])
    assert [(r.name, r.src_addresses) for r in rules] == [("PING", ("192.0.2.10/32",)),
                                                          ("PING-ICMPV6", ("2001:db8::10/128",))]
    text = windows_render.render_netsecurity(rules, host="h")
    assert "-Protocol 58 -LocalPorts '*' -RemotePorts '*' -LocalAddresses '*' -RemoteAddresses '2001:db8::10/128' " \
           "-Profiles 2147483647 -IcmpTypesAndCodes '128:*'" in text
    assert "$parameters.IcmpType = $Spec.IcmpTypesAndCodes.Split(':')[0]" in text
