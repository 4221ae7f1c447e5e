# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cisco backend, pure Python: port names, bad input, owned-name scope, the ASA block, IOS binding, filters."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from vendor_fixtures import example_plan, vendor_plan, with_device

from ansible.errors import AnsibleFilterError
from ansible_collections.configmgr.nap.plugins.filter import perimeter_vendors as filters
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import cisco
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError


# -- port names ---------------------------------------------------------------
@pytest.mark.parametrize("name,proto,number", [
    ("radius", "udp", 1645), ("radius-acct", "udp", 1646), ("kerberos", "udp", 750), ("kerberos", "tcp", 750),
    ("cifs", "tcp", 3020), ("https", "tcp", 443), ("www", "tcp", 80), ("ldaps", "tcp", 636), ("bootps", "udp", 67),
    ("isakmp", "udp", 500), ("domain", "udp", 53), ("1812", "udp", 1812), ("88", "tcp", 88), ("445", "tcp", 445),
])
def test_asa_names_are_not_iana(name, proto, number):
    assert cisco.port_number(name, proto, "cisco_asa") == number


@pytest.mark.parametrize("number,proto,spelled", [
    (1812, "udp", "1812"), (1813, "udp", "1813"), (88, "tcp", "88"), (88, "udp", "88"), (445, "tcp", "445"),
    (1645, "udp", "radius"), (443, "tcp", "https"), (80, "tcp", "www"), (135, "tcp", "135"), (4500, "udp", "4500"),
])
def test_asa_spelling_round_trips(number, proto, spelled):
    assert cisco.port_spelling(number, proto, "cisco_asa") == spelled
    assert cisco.port_number(spelled, proto, "cisco_asa") == number


@pytest.mark.parametrize("number,proto,spelled", [
    (135, "tcp", "msrpc"), (80, "tcp", "www"), (443, "tcp", "443"), (4500, "udp", "non500-isakmp"),
    (67, "udp", "bootps"), (1812, "udp", "1812"), (88, "tcp", "88"), (445, "tcp", "445"),
])
def test_ios_spelling_round_trips(number, proto, spelled):
    assert cisco.port_spelling(number, proto, "cisco_ios") == spelled
    assert cisco.port_number(spelled, proto, "cisco_ios") == number


def test_unknown_port_name():
    with pytest.raises(NapError, match="unknown udp port name 'kerberos-adm'"):
        cisco.port_number("kerberos-adm", "udp")
    with pytest.raises(NapError, match="unknown tcp port name 'radius'"):
        cisco.port_number("radius", "tcp")   # ASA's radius is UDP only


# -- bad input fails before any command ----------------------------------------
@pytest.mark.parametrize("func", [cisco.asa_ogs_config, cisco.asa_acls_config])
def test_unknown_platform(func):
    plan = with_device(vendor_plan(), "fw01", platform="fortios")
    with pytest.raises(NapError, match=r"perimeter device fw01: nap_perimeter_platform is 'fortios'; expected one of"):
        func(plan, "fw01")


def test_wrong_platform():
    with pytest.raises(NapError, match="nap_perimeter_platform is cisco_ios, so it cannot take cisco_asa"):
        cisco.asa_acls_config(vendor_plan(), "rtr01")
    with pytest.raises(NapError, match="nap_perimeter_platform is cisco_asa, so it cannot take cisco_ios"):
        cisco.ios_acls_config(vendor_plan(), "fw01")


def test_zones_not_in_nap_zones():
    plan = with_device(vendor_plan(), "rtr01", zones=["clients", "guest"])
    with pytest.raises(NapError, match=r"perimeter device rtr01: zones guest are not in nap_zones \(known zones: "):
        cisco.ios_acls_config(plan, "rtr01")
    plan = with_device(vendor_plan(), "rtr01", zone_networks={"clients": ["198.51.100.0/25"], "dmz": ["203.0.113.0/26"]})
    with pytest.raises(NapError, match="zone clients has networks 198.51.100.0/25 in the device entry but "
                                       "198.51.100.0/24 in nap_zones"):
        cisco.ios_acls_config(plan, "rtr01")


def test_device_must_be_named_and_known():
    with pytest.raises(NapError, match="name the device"):
        cisco.asa_acls_config(vendor_plan())
    with pytest.raises(NapError, match="device fw09 is not a perimeter device of the plan"):
        cisco.asa_acls_config(vendor_plan(), "fw09")


@pytest.mark.parametrize("name", ["NAP ACL", "OUTSIDE_IN\n", "101", "true", "A" * 65])
def test_bad_names(name):
    with pytest.raises(NapError, match="ACL name: "):
        cisco.asa_acls_config(vendor_plan(), "fw01", acl_name=name)


@pytest.mark.parametrize("name", ["Gi0/1\ninterface Gi0/2", "on", "0/1"])
def test_bad_interface_names(name):
    with pytest.raises(NapError, match="nap_perimeter_interfaces: interface name"):
        cisco.ios_acl_interfaces_config(vendor_plan(), "rtr01", interfaces=[name])


def test_filter_reports_the_error():
    with pytest.raises(AnsibleFilterError, match=r"^configmgr.nap.to_ios_acls: perimeter device fw01: "):
        filters.to_ios_acls(vendor_plan(), "fw01")


def test_filter_accepts_registered_result_and_entry():
    plan = vendor_plan()
    assert filters.to_asa_acls({"plan": plan}, "fw01") == cisco.asa_acls_config(plan, "fw01")
    entry = plan["perimeter"]["fw01"]
    # a bare perimeter entry has no host or zone names: address sets get digest labels
    alone = filters.to_asa_acls(entry)["acls"][0]["aces"]
    full = cisco.asa_acls_config(plan, "fw01")["acls"][0]["aces"]
    assert [a["protocol"] for a in alone] == [a["protocol"] for a in full]
    assert alone[0]["source"]["object_group"].startswith("CONFIGMGR-NAP-NET-SET-")


# -- ASA model ---------------------------------------------------------------------
def test_asa_one_ace_per_rule_and_owned_names():
    plan = vendor_plan()
    rules = plan["perimeter"]["fw01"]["forward"]
    acls = cisco.asa_acls_config(plan, "fw01")
    assert [a["name"] for a in acls["acls"]] == ["CONFIGMGR-NAP"]
    assert len(acls["acls"][0]["aces"]) == len(rules)
    ogs = cisco.asa_ogs_config(plan, "fw01", acl_name="NAP-FW")
    names = [g["name"] for block in ogs for g in block["object_groups"]]
    assert names and all(n.startswith("NAP-FW-") and len(n) <= 64 for n in names)
    svc = dict((g["name"], g) for g in ogs[1]["object_groups"])
    relay = svc["NAP-FW-SVC-DHCP-RELAY-UDP-FWD"]
    assert relay["services_object"] == [{"protocol": "udp", "source_port": {"eq": "bootps"},
                                         "destination_port": {"eq": "bootps"}}]
    rpc = svc["NAP-FW-SVC-NAP-SHV-CONFIG-TCP-FWD"]["services_object"]
    assert rpc == [{"protocol": "tcp", "destination_port": {"eq": "135"}},
                   {"protocol": "tcp", "destination_port": {"range": {"start": "49152", "end": "65535"}}}]


def test_asa_esp_gre_are_protocol_entries():
    plan = vendor_plan()
    ogs = cisco.asa_ogs_config(plan, "fw01")
    svc = dict((g["name"], g) for g in ogs[1]["object_groups"])
    assert svc["CONFIGMGR-NAP-SVC-IPSEC-IKE-ESP-FWD"]["services_object"] == [{"protocol": "esp"}]


def test_asa_long_names_are_bounded():
    assert len(cisco.AsaNames().svc("X" * 80)) == 64
    assert cisco.AsaNames().svc("X" * 80) != cisco.AsaNames().svc("X" * 79 + "Y")


def test_asa_stale_groups_only_by_prefix():
    wanted = [{"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-A"}]}]
    gathered = [{"object_type": "network", "object_groups": [
        {"name": "CONFIGMGR-NAP-NET-A"}, {"name": "CONFIGMGR-NAP-NET-OLD"}, {"name": "INSIDE"}]},
        {"object_type": "service", "object_groups": [{"name": "CONFIGMGR-NAP-SVC-GONE"}, {"name": "WEB"}]}]
    assert cisco.asa_stale_ogs(wanted, gathered) == [
        {"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-OLD"}]},
        {"object_type": "service", "object_groups": [{"name": "CONFIGMGR-NAP-SVC-GONE"}]}]
    assert cisco.asa_stale_ogs(gathered, gathered) == []
    assert len(cisco.asa_owned_ogs(gathered)) == 2


# -- ASA block inside a user-named ACL ---------------------------------------------
USER_ACL = """access-list OUTSIDE-IN extended permit tcp any host 192.0.2.80 eq www
access-list OUTSIDE-IN extended deny ip any any
access-list OTHER extended permit ip any any
"""


def test_block_new_goes_on_top_and_touches_nothing_else():
    plan = example_plan("cisco_asa")
    commands = cisco.asa_block_commands(plan, USER_ACL, "OUTSIDE-IN", "rtr01")
    assert commands[0] == "access-list OUTSIDE-IN line 1 remark " + cisco.BLOCK_BEGIN % "CONFIGMGR-NAP"
    assert commands[-1] == "access-list OUTSIDE-IN line %d remark %s" % (len(commands), cisco.BLOCK_END % "CONFIGMGR-NAP")
    assert all(c.startswith("access-list OUTSIDE-IN line ") for c in commands)
    assert len(commands) == len(plan["perimeter"]["rtr01"]["forward"]) + 2


def _apply(running, commands, acl):
    """What the ACL looks like after the commands (the ASA's own semantics, for the test)."""
    head = "access-list %s " % acl
    lines = [l for l in running.splitlines() if l.startswith(head)]
    for cmd in commands:
        if cmd.startswith("no "):
            lines.remove(cmd[3:])
        else:
            rest = cmd.partition(head + "line ")[2]
            number, _sep, text = rest.partition(" ")
            lines.insert(int(number) - 1, head + text)
    return "\n".join(lines) + "\n"


def test_block_idempotent_update_and_absent():
    plan = example_plan("cisco_asa")
    first = cisco.asa_block_commands(plan, USER_ACL, "OUTSIDE-IN", "rtr01")
    after = _apply(USER_ACL, first, "OUTSIDE-IN")
    assert after.endswith("access-list OUTSIDE-IN extended permit tcp any host 192.0.2.80 eq www\n"
                          "access-list OUTSIDE-IN extended deny ip any any\n")
    assert cisco.asa_block_commands(plan, after, "OUTSIDE-IN", "rtr01") == []
    # the user added an entry above our block: we rewrite the block where it is
    moved = "access-list OUTSIDE-IN extended permit icmp any any\n" + after
    assert cisco.asa_block_commands(plan, moved, "OUTSIDE-IN", "rtr01") == []
    smaller = with_device(plan, "rtr01", forward=plan["perimeter"]["rtr01"]["forward"][:2])
    update = cisco.asa_block_commands(smaller, moved, "OUTSIDE-IN", "rtr01")
    assert update[0].startswith("no access-list OUTSIDE-IN remark configmgr.nap END")
    assert "access-list OUTSIDE-IN line 2 remark " + cisco.BLOCK_BEGIN % "CONFIGMGR-NAP" in update
    result = _apply(moved, update, "OUTSIDE-IN")
    assert result.splitlines()[0] == "access-list OUTSIDE-IN extended permit icmp any any"
    assert len(result.splitlines()) == 1 + 4 + 2
    removed = _apply(result, cisco.asa_block_commands(smaller, result, "OUTSIDE-IN", "rtr01", state="absent"), "OUTSIDE-IN")
    assert removed == ("access-list OUTSIDE-IN extended permit icmp any any\n"
                       "access-list OUTSIDE-IN extended permit tcp any host 192.0.2.80 eq www\n"
                       "access-list OUTSIDE-IN extended deny ip any any\n")


def test_block_damaged_markers_fail():
    running = USER_ACL + "access-list OUTSIDE-IN remark " + cisco.BLOCK_BEGIN % "CONFIGMGR-NAP" + "\n"
    with pytest.raises(NapError, match="block markers are damaged"):
        cisco.asa_block_commands(example_plan("cisco_asa"), running, "OUTSIDE-IN", "rtr01")


# -- ASA: every change of the perimeter role (asa_changes / to_asa_changes) ------------
BLOCK_ACL = "OUTSIDE-IN"
GLOBAL_SHOW = "access-group OUTSIDE-IN in interface outside\n"
OWNED_OGS = [{"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-OLD"}, {"name": "INSIDE"}]},
             {"object_type": "service", "object_groups": [{"name": "WEB"}]}]


def _changes(state="present", binding="global", access_group=GLOBAL_SHOW, block_show=USER_ACL, **kwargs):
    return cisco.asa_changes(vendor_plan(), "fw01", state, binding, kwargs.pop("block_acl", BLOCK_ACL),
                             "CONFIGMGR-NAP", access_group, block_show, kwargs.pop("gathered", OWNED_OGS), **kwargs)


def test_changes_present_global_binds_once():
    plan = vendor_plan()
    changes = _changes()
    assert changes["ogs_replaced"] == cisco.asa_ogs_config(plan, "fw01")
    assert changes["pre_lines"] == []
    assert changes["acls"] == {"state": "replaced", "config": cisco.asa_acls_config(plan, "fw01")}
    assert changes["post_lines"] == ["access-group CONFIGMGR-NAP global"]
    assert changes["ogs_deleted"] == [{"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-OLD"}]}]
    bound = _changes(access_group=GLOBAL_SHOW + "  access-group   CONFIGMGR-NAP global \n")
    assert bound["post_lines"] == []
    assert bound["acls"] == changes["acls"]


def test_changes_present_global_refuses_a_foreign_global_access_group():
    with pytest.raises(NapError) as err:
        _changes(access_group="access-group USER-GLOBAL global\naccess-group CONFIGMGR-NAP global\n")
    assert str(err.value) == (
        "fw01 binds another global ACL (access-group USER-GLOBAL global, access-group CONFIGMGR-NAP global); an ASA "
        "has one global access-group. Set nap_perimeter_asa_binding: block with nap_perimeter_asa_block_acl naming "
        "that ACL.")
    with pytest.raises(AnsibleFilterError, match=r"^configmgr.nap.to_asa_changes: fw01 binds another global ACL "
                                                 r"\(access-group USER-GLOBAL global\)"):
        filters.to_asa_changes(vendor_plan(), "fw01", access_group="access-group USER-GLOBAL global",
                               block_config="", gathered=[])
    # another global ACL does not matter when our entries go elsewhere, nor on removal
    assert _changes(binding="none", access_group="access-group USER-GLOBAL global")["post_lines"] == []
    assert _changes("absent", access_group="access-group USER-GLOBAL global")["pre_lines"] == []


def test_changes_present_block_rewrites_the_block_only():
    plan = vendor_plan()
    changes = _changes(binding="block", access_group="access-group CONFIGMGR-NAP global\n")
    block = cisco.asa_block_commands(plan, USER_ACL, BLOCK_ACL, "fw01")
    assert changes["post_lines"] == block
    assert block[0] == "access-list OUTSIDE-IN line 1 remark " + cisco.BLOCK_BEGIN % "CONFIGMGR-NAP"
    assert len(block) == len(plan["perimeter"]["fw01"]["forward"]) + 2
    assert changes["acls"] is None and changes["pre_lines"] == []
    assert changes["ogs_replaced"] == cisco.asa_ogs_config(plan, "fw01")
    done = _apply(USER_ACL, block, BLOCK_ACL)
    assert _changes(binding="block", block_show=done)["post_lines"] == []


def test_changes_present_none_only_replaces_acl_and_groups():
    changes = _changes(binding="none", access_group="")
    assert changes["post_lines"] == [] and changes["pre_lines"] == []
    assert changes["acls"]["state"] == "replaced"
    assert changes["ogs_deleted"] == [{"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-OLD"}]}]


def test_changes_present_without_rules_has_no_acl_step():
    plan = with_device(vendor_plan(), "fw01", forward=[])
    changes = cisco.asa_changes(plan, "fw01", "present", "global", None, "CONFIGMGR-NAP", "", "", OWNED_OGS)
    assert changes == {"ogs_replaced": [], "pre_lines": [], "acls": None,
                       "post_lines": ["access-group CONFIGMGR-NAP global"],
                       "ogs_deleted": [{"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-OLD"}]}]}


def test_changes_absent_global_unbinds_and_deletes_by_name():
    changes = _changes("absent", access_group=GLOBAL_SHOW + "access-group CONFIGMGR-NAP global\n")
    assert changes == {"ogs_replaced": [], "pre_lines": ["no access-group CONFIGMGR-NAP global"],
                       "acls": {"state": "deleted", "config": {"acls": [{"name": "CONFIGMGR-NAP"}]}},
                       "post_lines": [],
                       "ogs_deleted": [{"object_type": "network", "object_groups": [{"name": "CONFIGMGR-NAP-NET-OLD"}]}]}
    # not bound (a longer name is not ours): nothing to unbind; no owned group: nothing to delete
    other = _changes("absent", access_group="access-group CONFIGMGR-NAP-OLD global\n", gathered=[])
    assert other["pre_lines"] == [] and other["ogs_deleted"] == []
    assert other["acls"] == changes["acls"]


def test_changes_absent_block_removes_the_block():
    plan = vendor_plan()
    running = _apply(USER_ACL, cisco.asa_block_commands(plan, USER_ACL, BLOCK_ACL, "fw01"), BLOCK_ACL)
    changes = _changes("absent", "block", access_group="access-group CONFIGMGR-NAP global\n", block_show=running)
    removal = cisco.asa_block_commands(plan, running, BLOCK_ACL, "fw01", state="absent")
    assert changes["pre_lines"] == ["no access-group CONFIGMGR-NAP global"] + removal
    assert all(line.startswith("no access-list OUTSIDE-IN ") for line in removal)
    assert _apply(running, removal, BLOCK_ACL) == "\n".join(USER_ACL.splitlines()[:2]) + "\n"
    assert changes["acls"]["state"] == "deleted" and changes["post_lines"] == []
    assert _changes("absent", "block", access_group="")["pre_lines"] == []


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("block_acl", [None, ""])
def test_changes_block_needs_the_block_acl(state, block_acl):
    with pytest.raises(NapError) as err:
        _changes(state, "block", block_acl=block_acl)
    assert str(err.value) == ("fw01: nap_perimeter_asa_binding is block, so nap_perimeter_asa_block_acl must name "
                              "the interface ACL to hold the block")


def test_changes_damaged_block_and_bad_choice_fail():
    damaged = USER_ACL + "access-list OUTSIDE-IN remark " + cisco.BLOCK_BEGIN % "CONFIGMGR-NAP" + "\n"
    with pytest.raises(NapError, match="ACL OUTSIDE-IN: the configmgr.nap block markers are damaged"):
        _changes(binding="block", block_show=damaged)
    with pytest.raises(NapError, match="fw01: state 'present' / nap_perimeter_asa_binding 'interface'; expected"):
        _changes(binding="interface")


# -- IOS -----------------------------------------------------------------------------
def test_ios_binding_keeps_other_bindings():
    current = [{"name": "Gi0/0", "access_groups": [{"afi": "ipv4", "acls": [{"name": "USER-OUT", "direction": "out"}]}]},
               {"name": "Gi0/9", "access_groups": [{"afi": "ipv4", "acls": [{"name": "X", "direction": "in"}]}]}]
    out = cisco.ios_acl_interfaces_config(vendor_plan(), "rtr01", ["Gi0/0", "Gi0/1"], current=current)
    assert out == [
        {"name": "Gi0/0", "access_groups": [{"afi": "ipv4", "acls": [{"name": "USER-OUT", "direction": "out"},
                                                                     {"name": "CONFIGMGR-NAP", "direction": "in"}]}]},
        {"name": "Gi0/1", "access_groups": [{"afi": "ipv4", "acls": [{"name": "CONFIGMGR-NAP", "direction": "in"}]}]}]
    gone = cisco.ios_acl_interfaces_config(None, None, ["Gi0/0", "Gi0/1"], current=out, state="absent")
    user_out = {"afi": "ipv4", "acls": [{"name": "USER-OUT", "direction": "out"}]}
    assert gone == [{"name": "Gi0/0", "access_groups": [user_out]}, {"name": "Gi0/1"}]
    # without interfaces: every interface that binds ours, and nothing when none does
    assert cisco.ios_acl_interfaces_config(None, None, None, current=out, state="absent") == gone
    assert cisco.ios_acl_interfaces_config(None, None, None, current=gone, state="absent") == []


def test_ios_binding_conflict_and_missing_interfaces():
    current = [{"name": "Gi0/0", "access_groups": [{"afi": "ipv4", "acls": [{"name": "USER-IN", "direction": "in"}]}]}]
    with pytest.raises(NapError, match="interface Gi0/0 already binds ipv4 ACL USER-IN in; an interface takes one ACL"):
        cisco.ios_acl_interfaces_config(vendor_plan(), "rtr01", ["Gi0/0"], current=current)
    with pytest.raises(NapError, match="set nap_perimeter_interfaces"):
        cisco.ios_acl_interfaces_config(vendor_plan(), "rtr01", [])


def test_ios_every_entry_has_its_return():
    config = cisco.ios_acls_config(vendor_plan(), "rtr01")
    aces = config[0]["acls"][0]["aces"]
    assert [a["sequence"] for a in aces] == list(range(10, 10 * len(aces) + 1, 10))
    tcp_returns = [a for a in aces if a.get("protocol_options")]
    assert tcp_returns and all(a["protocol_options"] == {"tcp": {"established": True}} for a in tcp_returns)
    # the router's own management and its DHCP relay replies are covered
    remarks = [a["remarks"][0] for a in aces if a.get("remarks")]
    assert any(r.startswith("IN MGMT-SSH-TCP-IN ") for r in remarks)
    assert "RET DHCP-RELAY-UDP-ORIG" not in remarks    # relay01 relays here, not the router
    example = cisco.ios_acls_config(example_plan("cisco_ios"), "rtr01")[0]["acls"][0]["aces"]
    example_remarks = [a["remarks"][0] for a in example if a.get("remarks")]
    # rtr01 is the relay in the example: the plan lets the server's replies in (UDP 67 -> 67), once
    relay = [r for r in example_remarks if "DHCP-RELAY" in r]
    assert len(relay) == 1 and relay[0].startswith("IN DHCP-RELAY-UDP-IN ")
    assert any(a["destination"].get("host") == "255.255.255.255" for a in example)   # DHCPDISCOVER


# -- ICMP type ------------------------------------------------------------------
def _ping_plan(device):
    plan = vendor_plan()
    first = plan["perimeter"][device]["forward"][0]
    plan["perimeter"][device]["forward"].append({
        "name": "CM-PUSH-ICMP-ICMP-FWD", "flow_id": "CM-PUSH-ICMP", "direction": "forward", "action": "allow",
        "protocol": "icmp", "src_addresses": first["dst_addresses"], "dst_addresses": first["src_addresses"],
        "src_ports": [], "dst_ports": [], "description": "push ping", "source": "CM07", "icmp_type": "echo-request"})
    return plan


def test_asa_icmp_echo_is_an_icmp_type_group_and_reads_back():
    rules, ogs, acls = cisco.asa_model(_ping_plan("fw01"), "fw01")
    (group,) = [g for o in ogs if o["object_type"] == "icmp-type" for g in o["object_groups"]]
    assert group["icmp_type"] == {"icmp_object": ["echo"]} and group["description"].startswith("CM-PUSH-ICMP-ICMP-FWD")
    ace = acls["acls"][0]["aces"][-1]
    assert (ace["protocol"], ace["destination"]["service_object_group"]) == ("icmp", group["name"])
    back = dict((r.name, r) for r in cisco.asa_rules_from_parsed(acls, ogs))
    assert back["CM-PUSH-ICMP-ICMP-FWD"].icmp_type == "echo-request"
    # a hand-written ACE "permit icmp any any echo" reads back as echo request too
    ace = {"grant": "permit", "protocol": "icmp", "source": {"any": True}, "destination": {"any": True},
           "protocol_options": {"icmp": {"echo": True}}}
    hand = {"acls": [{"name": "CONFIGMGR-NAP", "aces": [ace]}]}
    (rule,) = cisco.asa_rules_from_parsed(hand, [])
    assert (rule.name, rule.protocol, rule.icmp_type) == ("CONFIGMGR-NAP-LINE1", "icmp", "echo-request")


def test_ios_icmp_echo_and_its_echo_reply_return():
    rules, inbound, config = cisco.ios_model(_ping_plan("rtr01"), "rtr01")
    aces = [a for block in config for acl in block["acls"] for a in acl["aces"] if a.get("protocol") == "icmp"]
    assert [a["protocol_options"] for a in aces] == [{"icmp": {"echo": True}}, {"icmp": {"echo_reply": True}}]
    back = cisco.ios_rules_from_parsed(config)
    (ping,) = [r for r in back["forward"] if r.name == "CM-PUSH-ICMP-ICMP-FWD"]
    assert ping.icmp_type == "echo-request" and back["return"]["CM-PUSH-ICMP-ICMP-FWD"] == 1
