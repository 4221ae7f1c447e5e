# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner: the seed flows with their exact ports, the choices, enforcement, zones, bad input."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap import listeners, plandoc, planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError

SERVERS = "192.0.2.0/24"
CLIENTS_A = "198.51.100.0/25"
CLIENTS_B = "198.51.100.128/25"
MGMT = "203.0.113.0/28"


def site(**overrides):
    """A small estate: one of each core role in the server zone, a router to two client zones."""
    inv = {
        "groups": {
            "nap_site_servers": ["cm01"],
            "nap_shv_points": ["nps01"],
            "nap_domain_controllers": ["dc01"],
            "nap_global_catalogs": ["dc01"],
        },
        "hostvars": {
            "cm01": {"ansible_host": "192.0.2.10"},
            "nps01": {"ansible_host": "192.0.2.20"},
            "dc01": {"ansible_host": "192.0.2.5"},
        },
        "settings": {"nap_management_sources": ["203.0.113.10"]},
    }
    for key, value in overrides.items():
        inv[key].update(value)
    return inv


def with_router(inv, devices=None):
    inv = copy.deepcopy(inv)
    inv["settings"]["nap_zones"] = {"servers": [SERVERS], "clients-a": [CLIENTS_A], "clients-b": [CLIENTS_B],
                                    "management": [MGMT]}
    devices = devices or {"rtr01": ["servers", "clients-a", "clients-b", "management"]}
    inv["groups"]["nap_perimeter"] = list(devices)
    for i, (name, zones) in enumerate(devices.items()):
        inv["hostvars"][name] = {"ansible_host": "203.0.113.%d" % (i + 1), "nap_perimeter_platform": "nftables",
                                 "nap_perimeter_zones": zones}
    return inv


def run(inv):
    return planner.plan(inv["groups"], inv["hostvars"], inv["settings"])


def flows(plan, flow_id):
    return [f for f in plan["flows"] if f["id"] == flow_id]


def inbound(plan, host, prefix):
    return [r for r in plan["hosts"][host]["inbound"] if r["name"].startswith(prefix)]


# --- the seed rows ----------------------------------------------------------------
def test_seed_flows_have_exact_ports_and_endpoints():
    plan = run(site())
    expected = {
        "NAP-AD-WRITE": ("cm01", "dc01", "tcp", [389], False, "seed row 1"),
        "NAP-GC-READ": ("nps01", "dc01", "tcp", [3268], False, "seed row 2"),
        "NAP-SHV-INSTALL": ("cm01", "nps01", "tcp", [445], False, "seed row 3"),
        "NAP-SHV-CONFIG": ("cm01", "nps01", "tcp", [135], True, "seed row 3"),
        "NAP-SHV-STATUS": ("nps01", "cm01", "tcp", [445], False, "seed row 4"),
    }
    for flow_id, (src, dst, proto, ports, rpc, source) in expected.items():
        (flow,) = flows(plan, flow_id)
        assert (flow["src_host"], flow["dst_host"], flow["protocol"], flow["dst_ports"], flow["rpc_dynamic"],
                flow["source"]) == (src, dst, proto, ports, rpc, source)


@pytest.mark.parametrize("setting,value,flow_id,port,other", [
    ("nap_ad_ldap_mode", "ldap", "NAP-AD-WRITE", 389, 636),
    ("nap_ad_ldap_mode", "ldaps", "NAP-AD-WRITE", 636, 389),
    ("nap_gc_mode", "gc", "NAP-GC-READ", 3268, 3269),
    ("nap_gc_mode", "gc_ssl", "NAP-GC-READ", 3269, 3268),
])
def test_each_choice_emits_exactly_one_port(setting, value, flow_id, port, other):
    plan = run(site(settings={setting: value}))
    ports = [p for f in flows(plan, flow_id) for p in f["dst_ports"]]
    assert ports == [port]
    # (UDP 389 is CLDAP, the DC locator; TCP 389 of AD-LDAP is domain membership, which LDAPS does not replace:
    # both are other flows than the "X or Y" of the seed)
    tcp_ports = [p for f in plan["flows"] if f["protocol"] == "tcp" and f["id"] != "AD-LDAP" for p in f["dst_ports"]]
    assert other not in tcp_ports
    rule_ports = [p for r in plan["hosts"]["dc01"]["inbound"] if r["protocol"] == "tcp" and r["flow_id"] != "AD-LDAP"
                  for p in r["dst_ports"]]
    assert port in rule_ports and other not in rule_ports


def test_the_deciding_host_chooses_ldap_mode():
    inv = site()
    inv["groups"]["nap_site_servers"].append("cm02")
    inv["hostvars"]["cm02"] = {"ansible_host": "192.0.2.11", "nap_ad_ldap_mode": "ldaps"}
    plan = run(inv)
    ports = dict((f["src_host"], f["dst_ports"]) for f in flows(plan, "NAP-AD-WRITE"))
    assert ports == {"cm01": [389], "cm02": [636]}
    names = sorted(r["name"] for r in inbound(plan, "dc01", "NAP-AD-WRITE"))
    assert names == ["NAP-AD-WRITE-TCP-IN-389", "NAP-AD-WRITE-TCP-IN-636"]


def test_rpc_is_abstract_on_hosts_and_a_range_on_perimeters():
    inv = with_router(site(settings={"nap_rpc_dynamic_range": "50000-51000"}))
    inv["hostvars"]["cm01"]["ansible_host"] = "198.51.100.10"   # site server in a client zone
    plan = run(inv)
    rules = inbound(plan, "nps01", "NAP-SHV-CONFIG")
    assert [(r["name"], r["dst_ports"], r["src_addresses"]) for r in rules] == [
        ("NAP-SHV-CONFIG-TCP-IN-EPMAP", ["rpc-epmap"], ["198.51.100.10/32"]),
        ("NAP-SHV-CONFIG-TCP-IN-RPC", ["rpc-dynamic"], ["198.51.100.10/32"]),
    ]
    (fwd,) = [r for r in plan["perimeter"]["rtr01"]["forward"] if r["flow_id"] == "NAP-SHV-CONFIG"]
    assert fwd["dst_ports"] == [135, "50000-51000"]
    assert fwd["src_addresses"] == ["198.51.100.10/32"] and fwd["dst_addresses"] == ["192.0.2.20/32"]


def test_outbound_rules_only_where_outbound_is_blocked():
    inv = site()
    inv["hostvars"]["cm01"]["nap_windows_outbound_policy"] = "block"
    plan = run(inv)
    out = dict((r["name"], r) for r in plan["hosts"]["cm01"]["outbound"])
    assert out["NAP-AD-WRITE-TCP-OUT"]["dst_addresses"] == ["192.0.2.5/32"]
    assert out["NAP-AD-WRITE-TCP-OUT"]["dst_ports"] == [389]
    assert out["NAP-SHV-CONFIG-TCP-OUT"]["dst_ports"] == [135, "49152-65535"]
    assert plan["hosts"]["nps01"]["outbound"] == []


def test_ad_dependencies_follow_their_setting():
    plan = run(site())
    ids = set(f["id"] for f in plan["flows"])
    assert {"AD-KERBEROS", "AD-DNS", "AD-CLDAP", "AD-TIME"} <= ids
    kerberos = sorted((f["protocol"], f["dst_ports"][0]) for f in flows(plan, "AD-KERBEROS") if f["src_host"] == "cm01")
    assert kerberos == [("tcp", 88), ("udp", 88)]
    plan = run(site(settings={"nap_include_ad_dependencies": False}))
    assert not [f for f in plan["flows"] if f["id"].startswith("AD-")]


def test_management_channel_reaches_every_managed_host():
    inv = with_router(site())
    plan = run(inv)
    winrm = dict((f["dst_host"], f) for f in flows(plan, "MGMT-WINRM"))
    assert set(winrm) == {"cm01", "nps01", "dc01"}
    assert winrm["cm01"]["dst_ports"] == [5986] and winrm["cm01"]["perimeter"] == ["rtr01"]
    (ssh,) = flows(plan, "MGMT-SSH")
    assert ssh["dst_host"] == "rtr01" and ssh["dst_ports"] == [22] and ssh["perimeter"] == []
    assert [r["name"] for r in plan["hosts"]["rtr01"]["inbound"]] == ["MGMT-SSH-TCP-IN"]
    assert plan["hosts"]["cm01"]["management_port"] == 5986 and plan["perimeter"]["rtr01"]["management_port"] == 22


@pytest.mark.parametrize("hvars, port", [
    ({}, 5986),
    ({"ansible_connection": "winrm", "ansible_winrm_scheme": "http"}, 5985),
    ({"ansible_connection": "ansible.builtin.psrp", "ansible_psrp_protocol": "http"}, 5985),
    ({"ansible_connection": "psrp"}, 5986),
    ({"ansible_port": "15986"}, 15986),
    ({"ansible_connection": "ssh", "ansible_port": 2222}, 2222),
    ({"ansible_connection": "ssh"}, 22),
    ({"ansible_connection": "local"}, 5986),
])
def test_management_port_is_decided_once_per_host(hvars, port):
    inv = with_router(site())
    inv["hostvars"]["cm01"].update(hvars)
    plan = run(inv)
    assert plan["hosts"]["cm01"]["management_port"] == port
    (cm01,) = [f for f in flows(plan, "MGMT-WINRM") if f["dst_host"] == "cm01"]
    assert cm01["dst_ports"] == [port]
    rule = [r for r in plan["perimeter"]["rtr01"]["forward"] if r["flow_id"] == "MGMT-WINRM"
            and "192.0.2.10/32" in r["dst_addresses"]]
    assert rule and rule[0]["dst_ports"] == [port]


def test_router_on_ssh_2222_gets_its_management_rule_on_2222():
    inv = with_router(site())
    inv["hostvars"]["rtr01"]["ansible_port"] = 2222
    plan = run(inv)
    (ssh,) = flows(plan, "MGMT-SSH")
    assert ssh["dst_ports"] == [2222] and plan["perimeter"]["rtr01"]["management_port"] == 2222


def test_bad_management_port_names_host_and_variable():
    inv = with_router(site())
    inv["hostvars"]["cm01"]["ansible_port"] = "59\u00b2"
    with pytest.raises(NapError) as err:
        run(inv)
    assert "cm01" in str(err.value) and "ansible_port" in str(err.value)


# --- enforcement --------------------------------------------------------------------
def ipsec_site():
    inv = site(settings={"nap_enforcement_methods": ["ipsec"], "nap_client_networks": [CLIENTS_A, CLIENTS_B]})
    inv["groups"].update({"nap_hras": ["hra01"], "nap_certification_authorities": ["ca01"],
                          "nap_ipsec_protected": ["cm01"]})
    inv["hostvars"].update({"hra01": {"ansible_host": "192.0.2.30"}, "ca01": {"ansible_host": "192.0.2.35"}})
    return inv


@pytest.mark.parametrize("transport,port,other", [("https", 443, 80), ("http", 80, 443)])
def test_hra_transport_is_one_port(transport, port, other):
    inv = ipsec_site()
    inv["settings"]["nap_hra_transport"] = transport
    plan = run(inv)
    assert sorted(set(p for f in flows(plan, "IPSEC-HRA") for p in f["dst_ports"])) == [port]
    assert [r["dst_ports"] for r in inbound(plan, "hra01", "IPSEC-HRA-TCP")] == [[port]]
    assert other not in [p for r in plan["hosts"]["hra01"]["inbound"] for p in r["dst_ports"]]


def test_ipsec_flows_and_radius_from_hra():
    plan = run(ipsec_site())
    ike = flows(plan, "IPSEC-IKE")
    assert sorted(set((f["protocol"], tuple(f["dst_ports"])) for f in ike)) == [("esp", ()), ("udp", (500, 4500))]
    (radius,) = flows(plan, "IPSEC-HRA-RADIUS")
    assert (radius["src_host"], radius["dst_host"], radius["dst_ports"]) == ("hra01", "nps01", [1812, 1813])
    (ca,) = flows(plan, "IPSEC-HRA-CA")
    assert ca["rpc_dynamic"] and ca["dst_host"] == "ca01"
    (rule,) = inbound(plan, "hra01", "IPSEC-HRA-TCP")
    assert rule["src_addresses"] == ["198.51.100.0/24"]   # the two client networks, joined


def test_radius_legacy_ports_are_added():
    inv = ipsec_site()
    inv["hostvars"]["nps01"]["nap_radius_legacy_ports"] = True
    (radius,) = flows(run(inv), "IPSEC-HRA-RADIUS")
    assert radius["dst_ports"] == [1812, 1813, 1645, 1646]


def dhcp_site():
    inv = with_router(site(settings={"nap_enforcement_methods": ["dhcp"],
                                     "nap_client_networks": [CLIENTS_A, CLIENTS_B]}))
    inv["groups"]["nap_dhcp_servers"] = ["dhcp01"]
    inv["hostvars"]["dhcp01"] = {"ansible_host": "192.0.2.40"}
    return inv


def test_dhcp_server_on_the_client_segment_gets_client_requests():
    inv = dhcp_site()
    inv["hostvars"]["dhcp01"]["ansible_host"] = "198.51.100.40"   # in clients-a
    inv["groups"]["nap_dhcp_relays"] = ["relay-b"]
    inv["hostvars"]["relay-b"] = {"ansible_host": "198.51.100.130"}
    plan = run(inv)
    client = [(f["src_addresses"], f["dst_host"]) for f in flows(plan, "DHCP-CLIENT")]
    assert ([CLIENTS_A], "dhcp01") in client and ([CLIENTS_B], "relay-b") in client
    (rule,) = inbound(plan, "dhcp01", "DHCP-CLIENT")
    assert rule["dst_ports"] == [67] and rule["src_ports"] == [68]
    assert rule["src_addresses"] == ["0.0.0.0/32", CLIENTS_A]
    (relay,) = flows(plan, "DHCP-RELAY")
    assert (relay["src_host"], relay["dst_host"], relay["src_ports"], relay["dst_ports"]) == (
        "relay-b", "dhcp01", [67], [67])
    assert relay["perimeter"] == ["rtr01"]
    assert not [w for w in plan["warnings"] if "relay assumed" in w]
    # relay <-> server both ways: the relay accepts the server's replies, UDP 67 -> 67
    (reply,) = inbound(plan, "relay-b", "DHCP-RELAY")
    assert (reply["src_addresses"], reply["src_ports"], reply["dst_ports"]) == (["198.51.100.40/32"], [67], [67])


def test_dhcp_behind_a_router_assumes_the_router_as_relay_with_a_warning():
    plan = run(dhcp_site())
    relays = flows(plan, "DHCP-RELAY")
    assert [(f["src_host"], f["dst_host"]) for f in relays] == [("rtr01", "dhcp01")]
    assert [w for w in plan["warnings"] if w.startswith("DHCP relay assumed: rtr01")]
    (rule,) = inbound(plan, "dhcp01", "DHCP-RELAY")
    assert rule["src_ports"] == [67] and rule["src_addresses"] == ["203.0.113.1/32"]


def test_shv_point_on_the_dhcp_server_opens_no_radius_flow():
    inv = dhcp_site()
    inv["groups"]["nap_shv_points"] = ["dhcp01"]
    inv["hostvars"].pop("nps01")
    plan = run(inv)
    assert flows(plan, "DHCP-RADIUS") == []
    assert plan["hosts"]["dhcp01"]["roles"] == ["shv_point", "dhcp_server"]


def test_shv_point_elsewhere_gets_radius_from_the_dhcp_server():
    (radius,) = flows(run(dhcp_site()), "DHCP-RADIUS")
    assert (radius["src_host"], radius["dst_host"], radius["protocol"]) == ("dhcp01", "nps01", "udp")


def test_vpn_protocols_are_decided_by_the_vpn_server():
    inv = site(settings={"nap_enforcement_methods": ["vpn"], "nap_client_networks": [CLIENTS_A]})
    inv["groups"]["nap_vpn_servers"] = ["vpn01", "vpn02"]
    inv["hostvars"]["vpn01"] = {"ansible_host": "192.0.2.60", "nap_vpn_protocols": ["pptp", "l2tp"]}
    inv["hostvars"]["vpn02"] = {"ansible_host": "192.0.2.61"}
    plan = run(inv)
    by_host = {}
    for f in plan["flows"]:
        if f["id"].startswith("VPN-") and f["id"] != "VPN-RADIUS":
            by_host.setdefault(f["dst_host"], set()).add((f["id"], f["protocol"], tuple(f["dst_ports"])))
    assert by_host["vpn01"] == {("VPN-PPTP", "tcp", (1723,)), ("VPN-PPTP", "gre", ()),
                                ("VPN-L2TP", "udp", (500, 4500)), ("VPN-L2TP", "esp", ()),
                                ("VPN-L2TP-1701", "udp", (1701,))}
    assert by_host["vpn02"] == {("VPN-SSTP", "tcp", (443,))}
    assert len(flows(plan, "VPN-RADIUS")) == 2


def test_tsg_and_8021x():
    inv = site(settings={"nap_enforcement_methods": ["tsg", "8021x"], "nap_client_networks": [CLIENTS_A]})
    inv["groups"].update({"nap_ts_gateways": ["tsg01"], "nap_rdp_hosts": ["rdp01"], "nap_radius_clients": ["sw01"]})
    inv["hostvars"].update({"tsg01": {"ansible_host": "192.0.2.70"}, "rdp01": {"ansible_host": "192.0.2.71"},
                            "sw01": {"ansible_host": "192.0.2.250"}})
    plan = run(inv)
    assert [(f["dst_host"], f["dst_ports"]) for f in flows(plan, "TSG-RDP")] == [("rdp01", [3389])]
    assert [(f["src_host"], f["dst_ports"]) for f in flows(plan, "TSG-CLIENT")] == [(None, [443])]
    assert [(f["src_host"], f["dst_host"]) for f in flows(plan, "8021X-RADIUS")] == [("sw01", "nps01")]
    # a switch is not managed here: no WinRM, no SSH to it, unless its platform says so
    assert plan["hosts"]["sw01"]["platform"] == "none"
    assert "sw01" not in [f["dst_host"] for f in plan["flows"] if f["id"].startswith("MGMT-")]
    inv["hostvars"]["sw01"]["nap_platform"] = "linux"
    assert [f["dst_host"] for f in flows(run(inv), "MGMT-SSH")] == ["sw01"]


def test_remediation_ports_follow_the_roles_of_each_server():
    inv = ipsec_site()
    inv["settings"]["nap_restricted_networks"] = ["198.51.100.192/26"]
    inv["settings"]["nap_cm_site_mode"] = "native"
    inv["groups"]["nap_remediation_servers"] = ["wsus01"]
    inv["hostvars"]["wsus01"] = {"ansible_host": "192.0.2.50", "nap_sup_ports": "custom",
                                 "nap_remediation_roles": ["software_update_point", "management_point", "dns"]}
    plan = run(inv)
    rem = dict((f["via"] + "/" + f["protocol"], f) for f in flows(plan, "REMEDIATION"))
    assert rem["CM-SUP/tcp"]["dst_ports"] == [8530, 8531]
    assert rem["CM-MP/tcp"]["dst_ports"] == [443]
    assert rem["CM-DNS/udp"]["dst_ports"] == [53]
    assert rem["CM-MP/tcp"]["src_addresses"] == ["198.51.100.192/26"]
    names = [r["name"] for r in plan["hosts"]["wsus01"]["inbound"]]
    assert "REMEDIATION-CM-SUP-TCP-IN" in names and "REMEDIATION-CM-DNS-UDP-IN" in names


def test_configmgr_base_flows_are_optional():
    assert not [f for f in run(site())["flows"] if f["id"].startswith("CM-")]
    inv = site(settings={"nap_include_configmgr_base": True, "nap_client_networks": [CLIENTS_A]})
    ids = set(f["id"] for f in run(inv)["flows"])
    assert {"CM-PUSH", "CM-WOL", "CM-GC", "CM-DNS"} <= ids


# --- perimeter ----------------------------------------------------------------------
def test_two_devices_in_series_both_get_the_forward_rule():
    inv = with_router(ipsec_site(), devices={"core": ["servers", "transit"], "edge": ["transit", "clients-a"]})
    inv["settings"]["nap_zones"]["transit"] = ["198.18.255.0/30"]
    inv["settings"]["nap_client_networks"] = [CLIENTS_A]
    plan = run(inv)
    for dev in ("core", "edge"):
        rules = dict((r["name"], r) for r in plan["perimeter"][dev]["forward"])
        assert rules["IPSEC-HRA-TCP-FWD"]["src_addresses"] == [CLIENTS_A]
        assert rules["IPSEC-HRA-TCP-FWD"]["dst_addresses"] == ["192.0.2.30/32"]
        assert rules["IPSEC-HRA-TCP-FWD"]["dst_ports"] == [443]
    assert plan["perimeter"]["core"]["owned_zones"] == ["clients-a", "servers", "transit"]
    # the plan states the owned zones' networks, zones behind the other device included (regression: the role's
    # zone_networks slice lost them)
    assert plan["perimeter"]["core"]["owned_zone_networks"] == {
        "clients-a": [CLIENTS_A], "servers": [SERVERS], "transit": ["198.18.255.0/30"]}
    assert plandoc.owned_zone_networks(plan, "core") == plan["perimeter"]["core"]["owned_zone_networks"]
    # traffic inside the server zone crosses no device
    assert not [r for r in plan["perimeter"]["core"]["forward"] if r["flow_id"] == "NAP-AD-WRITE"]


def test_forward_merge_adds_no_pair():
    inv = with_router(site())
    inv["groups"]["nap_domain_controllers"] = ["dc01", "dc02"]
    inv["hostvars"]["dc02"] = {"ansible_host": "198.51.100.6"}        # a DC in a client zone
    inv["groups"]["nap_site_servers"] = ["cm01", "cm02"]
    inv["hostvars"]["cm02"] = {"ansible_host": "198.51.100.140"}      # a site server in clients-b
    plan = run(inv)
    allowed = set()
    for rule in plan["perimeter"]["rtr01"]["forward"]:
        if rule["flow_id"] == "NAP-AD-WRITE":
            allowed.update((s, d) for s in rule["src_addresses"] for d in rule["dst_addresses"])
    expected = set()
    for f in flows(plan, "NAP-AD-WRITE"):
        if f["perimeter"]:
            expected.update((s, d) for s in f["src_addresses"] for d in f["dst_addresses"])
    assert allowed == expected == {("192.0.2.10/32", "198.51.100.6/32"), ("198.51.100.140/32", "192.0.2.5/32"),
                                   ("198.51.100.140/32", "198.51.100.6/32")}


def test_ipv6_addresses_are_accepted():
    inv = site()
    inv["hostvars"]["dc01"] = {"nap_address": ["192.0.2.5", "2001:db8::5"]}
    inv["hostvars"]["cm01"] = {"ansible_host": "2001:db8::10"}
    plan = run(inv)
    assert plan["hosts"]["dc01"]["addresses"] == ["192.0.2.5/32", "2001:db8::5/128"]
    (rule,) = inbound(plan, "dc01", "NAP-AD-WRITE")
    assert rule["src_addresses"] == ["2001:db8::10/128"]


# --- warnings -----------------------------------------------------------------------
def test_warning_host_in_no_zone():
    inv = with_router(site())
    inv["hostvars"]["dc01"]["ansible_host"] = "192.0.2.200"
    inv["settings"]["nap_zones"]["servers"] = ["192.0.2.0/25"]
    plan = run(inv)
    assert [w for w in plan["warnings"] if w.startswith("host dc01 (192.0.2.200/32) is in no zone")]


def test_warning_plain_ldap_across_a_perimeter():
    inv = with_router(site())
    inv["hostvars"]["cm01"]["ansible_host"] = "198.51.100.10"
    plan = run(inv)
    assert [w for w in plan["warnings"] if w.startswith("NAP-AD-WRITE: plain LDAP (TCP 389) crosses a perimeter")]
    inv["settings"]["nap_ad_ldap_mode"] = "ldaps"
    assert not [w for w in run(inv)["warnings"] if "plain LDAP" in w]


def test_warning_setting_no_flow_uses():
    plan = run(site(settings={"nap_hra_transport": "http", "nap_vpn_protocols": ["pptp"]}))
    assert "nap_hra_transport is set but no planned flow uses it (IPSEC-HRA: TCP 80 or 443)" in plan["warnings"]
    assert [w for w in plan["warnings"] if w.startswith("nap_vpn_protocols is set but no planned flow")]


def test_no_warning_for_a_clean_estate():
    assert run(site())["warnings"] == []


# --- bad input: one message naming the culprit ----------------------------------------
@pytest.mark.parametrize("mutate,message", [
    (lambda i: i["settings"].update(nap_ad_ldap_mode="ldapz"),
     "nap_ad_ldap_mode is 'ldapz'; expected one of ldap, ldaps"),
    (lambda i: i["hostvars"]["cm01"].update(nap_ad_ldap_mode="tls"),
     "host cm01: nap_ad_ldap_mode is 'tls'; expected one of ldap, ldaps"),
    (lambda i: i["settings"].update(nap_rpc_dynamic_range="49152-70000"),
     "nap_rpc_dynamic_range is '49152-70000': ports must satisfy 1024 <= low <= high <= 65535"),
    (lambda i: i["settings"].update(nap_rpc_dynamic_range="80-"),
     "nap_rpc_dynamic_range is '80-'; expected \"low-high\""),
    (lambda i: i["settings"].update(nap_client_networks=["198.51.100.0/33"]),
     "nap_client_networks has '198.51.100.0/33', which is not an IPv4/IPv6 CIDR"),
    (lambda i: i["settings"].update(nap_enforcement_methods=["nac"]),
     "nap_enforcement_methods has 'nac'; expected a list of dhcp, ipsec, 8021x, vpn, tsg"),
    (lambda i: i["hostvars"]["dc01"].pop("ansible_host"),
     "host dc01 (group nap_domain_controllers) has no usable address: set nap_address"),
    (lambda i: i["hostvars"]["dc01"].update(ansible_host="dc01.example.com"),
     "host dc01 (group nap_domain_controllers) has no usable address"),
    (lambda i: i["hostvars"]["dc01"].update(nap_address="192.0.2.300"),
     "host dc01 (group nap_domain_controllers): nap_address '192.0.2.300' is not an IPv4/IPv6 address"),
    (lambda i: i["groups"].update(nap_global_catalogs=[]),
     "nap_shv_points (nps01) needs a peer: group nap_global_catalogs is empty"),
    (lambda i: i["settings"].update(nap_enforcement_methods=["ipsec"], nap_client_networks=[CLIENTS_A]),
     "nap_enforcement_methods (ipsec) needs a peer: group nap_hras is empty"),
    (lambda i: i["settings"].update(nap_enforcement_methods=["dhcp"]),
     "nap_enforcement_methods (dhcp) needs a peer: group nap_dhcp_servers is empty"),
    (lambda i: i["settings"].update(nap_zones={"a": ["192.0.2.0/24"], "b": ["192.0.2.0/24"]}),
     "nap_zones: 192.0.2.0/24 is in both zone a and zone b"),
    (lambda i: i["settings"].update(nap_zones={"a": ["192.0.2.0/25"], "b": ["192.0.2.128/25"]},
                                    nap_client_networks=["192.0.2.0/24"]),
     "nap_client_networks: 192.0.2.0/24 spans zone a (192.0.2.0/25) and more"),
    (lambda i: i["settings"].update(nap_zones="servers"),
     "nap_zones is 'servers'; expected a mapping of zone name -> list of CIDRs"),
    (lambda i: i["hostvars"]["dc01"].update(nap_remediation_roles=["wsus"]),
     "host dc01: nap_remediation_roles is ['wsus']; expected a list of management_point"),
])
def test_bad_input_names_the_culprit(mutate, message):
    inv = site()
    mutate(inv)
    with pytest.raises(NapError) as err:
        run(inv)
    assert message in str(err.value)


def test_bad_perimeter_input():
    inv = with_router(site())
    inv["hostvars"]["rtr01"]["nap_perimeter_platform"] = "checkpoint"
    with pytest.raises(NapError, match="host rtr01 \\(group nap_perimeter\\): nap_perimeter_platform is 'checkpoint'"):
        run(inv)
    inv = with_router(site())
    inv["hostvars"]["rtr01"]["nap_perimeter_zones"] = ["servers", "dmz"]
    with pytest.raises(NapError, match="nap_perimeter_zones names dmz, not in nap_zones"):
        run(inv)


def test_dhcp_without_a_relay_is_an_error():
    inv = dhcp_site()
    inv["hostvars"]["rtr01"]["nap_perimeter_zones"] = ["servers", "management", "clients-b"]
    inv["settings"]["nap_zones"]["clients-a"] = [CLIENTS_A]
    with pytest.raises(NapError, match="client network 198.51.100.0/25 is in zone clients-a, and no relay joins them"):
        run(inv)


def test_plan_is_deterministic():
    inv = with_router(ipsec_site())
    assert run(inv) == run(copy.deepcopy(inv))


def test_summary_lists_hosts_and_devices():
    lines = planner.summary(run(with_router(site())))
    assert lines[0].startswith("4 hosts, 1 perimeter devices")
    assert any(line.strip().startswith("rtr01") and "forward" in line for line in lines)


@pytest.mark.parametrize("text", ["198.51.100.0/25,198.51.100.128/25", "['198.51.100.0/25', '198.51.100.128/25']",
                                  "198.51.100.0/25 198.51.100.128/25"])
def test_list_settings_given_as_text(text):
    assert planner.validate_setting("nap_client_networks", text, "") == ["198.51.100.0/25", "198.51.100.128/25"]
    assert planner.validate_setting("nap_enforcement_methods", "[dhcp, 'ipsec']", "") == ["dhcp", "ipsec"]


# --- malformed inventories: one clear message naming the culprit (issue: hostile and careless input) ----------
def _dhcp_on_router(inv):
    inv["groups"]["nap_dhcp_servers"] = ["rtr01"]
    return inv


def _perimeter_zone_twice(inv):
    inv["hostvars"]["rtr01"]["nap_perimeter_zones"] = ["servers", "clients-a", "servers"]
    return inv


@pytest.mark.parametrize("change, words", [
    (lambda inv: inv["hostvars"]["nps01"].update(ansible_host="192.0.2.10") or inv,
     ["cm01", "nps01", "same address 192.0.2.10"]),
    (lambda inv: dict(inv, groups=[{"nap_shv_points": ["nps01"]}]), ["not a mapping", "list"]),
    (lambda inv: dict(inv, groups={"ungrouped": ["x"]}), ["no host in any NAP group", "-i"]),
    (lambda inv: inv["hostvars"]["cm01"].update(nap_address="0.0.0.0") or inv, ["cm01", "nap_address", "unspecified"]),
    (lambda inv: inv["hostvars"]["cm01"].update(nap_address="::") or inv, ["cm01", "nap_address", "unspecified"]),
    (lambda inv: inv["hostvars"]["cm01"].update(nap_address="224.0.0.5") or inv, ["cm01", "multicast"]),
    (lambda inv: inv["hostvars"]["cm01"].update(nap_address="192.0.2.0") or inv,
     ["cm01", "network address of zone servers"]),
    (lambda inv: inv["hostvars"]["cm01"].update(nap_address="192.0.2.255") or inv,
     ["cm01", "broadcast address of zone servers"]),
    (lambda inv: inv["hostvars"]["nps01"].update(nap_platform="linux") or inv,
     ["nps01", "nap_platform is linux", "nap_shv_points"]),
    (_dhcp_on_router, ["rtr01", "nap_perimeter", "nap_dhcp_servers"]),
    (_perimeter_zone_twice, ["rtr01", "nap_perimeter_zones", "servers twice"]),
    (lambda inv: inv["settings"].update(nap_management_sources=["fe80::1%eth0"]) or inv,
     ["nap_management_sources", "fe80::1%eth0", "scope id"]),
    (lambda inv: inv["settings"].update(nap_management_sources=[]) or inv, ["nap_management_sources is []"]),
    (lambda inv: inv["hostvars"]["cm01"].update(nap_address="fe80::1%eth0") or inv, ["cm01", "nap_address"]),
    (lambda inv: dict(inv, groups=dict(inv["groups"], nap_site_servers=["cm01\nrm -rf"])),
     ["nap_site_servers", "host name", "U+000A"]),
    (lambda inv: inv["settings"]["nap_zones"].update({'zz";}': ["192.0.9.0/24"]}) or inv,
     ["nap_zones", "not a valid zone name"]),
    (lambda inv: inv["hostvars"]["rtr01"].update(nap_perimeter_zones=["servers", "clients-a\n"]) or inv,
     ["rtr01", "nap_perimeter_zones", "U+000A"]),
    (lambda inv: inv["settings"].update(nap_rpc_dynamic_range="4915\u00b2-65535") or inv, ["nap_rpc_dynamic_range"]),
])
def test_malformed_inventory_gets_one_clear_message(change, words):
    inv = change(with_router(site()))
    with pytest.raises(NapError) as err:
        run(inv)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_unset_management_sources_warns_with_the_guessed_addresses():
    inv = site()
    del inv["settings"]["nap_management_sources"]
    plan = planner.plan(inv["groups"], inv["hostvars"], inv["settings"], ["192.0.2.99"])
    (warning,) = [w for w in plan["warnings"] if "nap_management_sources" in w]
    assert "192.0.2.99/32" in warning and "AWX" in warning
    assert [f["src_addresses"] for f in flows(plan, "MGMT-WINRM")][0] == ["192.0.2.99/32"]


def test_plan_states_listeners_from_each_hosts_own_settings():
    """Regression: listeners were computed from the global settings only."""
    inv = ipsec_site()
    inv["hostvars"]["hra01"]["nap_hra_transport"] = "http"
    inv["hostvars"]["dc01"]["nap_dc_serves_dns"] = False
    plan = run(inv)
    (hra,) = flows(plan, "IPSEC-HRA")
    assert hra["dst_ports"] == [80]

    def ports(host):
        return [(x["protocol"], x["port"]) for x in plan["hosts"][host]["listeners"]]

    assert ("tcp", 80) in ports("hra01") and ("tcp", 443) not in ports("hra01")
    assert ("udp", 53) not in ports("dc01") and ("tcp", 389) in ports("dc01")
    assert plan["hosts"]["hra01"]["settings"]["nap_hra_transport"] == "http"
    assert plan["hosts"]["dc01"]["settings"]["nap_dc_serves_dns"] is False
    # every consumer reads the same fact
    assert listeners.listeners_for(plan, host="hra01") == plan["hosts"]["hra01"]["listeners"]
    assert plandoc.listeners(plandoc.load({"plan": plan}), "dc01") == plan["hosts"]["dc01"]["listeners"]


# --- issue 18: the flows Microsoft documents around the seed, and the per-version facts -----------------------
def ports_of(plan, flow_id, **match):
    """{(protocol, tuple of dst_ports)} of the flows of one id (optionally matching more fields)."""
    return set((f["protocol"], tuple(f["dst_ports"])) for f in flows(plan, flow_id)
               if all(f.get(k) == v for k, v in match.items()))


@pytest.mark.parametrize("mode,port,other", [("gc", 3268, 3269), ("gc_ssl", 3269, 3268)])
def test_hra_reaches_a_global_catalog_by_nap_gc_mode(mode, port, other):
    inv = ipsec_site()
    inv["hostvars"]["hra01"]["nap_gc_mode"] = mode           # the HRA decides its own bind
    plan = run(inv)
    (gc,) = flows(plan, "IPSEC-HRA-GC")
    assert (gc["src_host"], gc["dst_host"], gc["protocol"], gc["dst_ports"], gc["source"]) == (
        "hra01", "dc01", "tcp", [port], "NAP")
    assert other not in [p for f in flows(plan, "IPSEC-HRA-GC") for p in f["dst_ports"]]
    note = planner.catalogue.FLOWS_BY_ID["IPSEC-HRA-GC"].note
    assert "HRA also requires a connection to the Active Directory global catalog" in note and "cc735489" in note
    assert not flows(run(site()), "IPSEC-HRA-GC")            # IPsec enforcement only


def test_every_domain_member_gets_its_domain_flows_once():
    inv = ipsec_site()
    inv["groups"]["nap_site_systems"] = ["cm01"]            # a second member role: still one set of flows
    plan = run(inv)
    members = {"cm01", "nps01", "hra01", "ca01"}
    for flow_id, expected in (("AD-KERBEROS", {("tcp", (88,)), ("udp", (88,))}),
                              ("AD-DNS", {("tcp", (53,)), ("udp", (53,))}),
                              ("AD-CLDAP", {("udp", (389,))}), ("AD-TIME", {("udp", (123,))}),
                              ("AD-LDAP", {("tcp", (389,))}), ("AD-SMB", {("tcp", (445,))}),
                              ("AD-RPC", {("tcp", (135,))}), ("AD-KPASSWD", {("tcp", (464,)), ("udp", (464,))})):
        assert set(f["src_host"] for f in flows(plan, flow_id)) == members, flow_id
        assert ports_of(plan, flow_id) == expected, flow_id
        per_host = [f["src_host"] for f in flows(plan, flow_id)]
        assert per_host.count("cm01") == len(expected), flow_id          # once per host and protocol
    (rpc,) = [f for f in flows(plan, "AD-RPC") if f["src_host"] == "cm01"]
    assert rpc["rpc_dynamic"] and rpc["rpc_dynamic_range"] == "49152-65535"
    assert all(f["src_role"] == "domain_member" for f in flows(plan, "AD-LDAP"))
    assert plan["hosts"]["cm01"]["domain_member"] and not plan["hosts"]["dc01"]["domain_member"]
    # LDAPS does not replace LDAP for domain membership: TCP 389 stays beside NAP-AD-WRITE's 636
    inv["settings"]["nap_ad_ldap_mode"] = "ldaps"
    plan = run(inv)
    assert ports_of(plan, "NAP-AD-WRITE") == {("tcp", (636,))} and ports_of(plan, "AD-LDAP") == {("tcp", (389,))}
    # a host opts out; a host outside the member roles opts in
    inv["hostvars"]["ca01"]["nap_domain_member"] = False
    inv["groups"]["nap_rdp_hosts"] = ["rdp01"]
    inv["hostvars"]["rdp01"] = {"ansible_host": "192.0.2.71", "nap_domain_member": "yes"}
    plan = run(inv)
    assert set(f["src_host"] for f in flows(plan, "AD-SMB")) == {"cm01", "nps01", "hra01", "rdp01"}
    # NPS authenticates against AD: its flows cite it
    assert "If NPS cannot contact domain controllers" in planner.catalogue.FLOWS_BY_ID["AD-LDAP"].note


def test_domain_members_follow_the_ad_setting_and_skip_linux_hosts_and_dcs():
    inv = ipsec_site()
    inv["groups"]["nap_remediation_servers"] = ["lnx01"]
    inv["hostvars"]["lnx01"] = {"ansible_host": "192.0.2.60", "nap_platform": "linux",
                                "nap_remediation_roles": ["management_point"]}
    inv["hostvars"]["dc01"]["nap_domain_member"] = True                  # a DC is the domain, not a member of it
    plan = run(inv)
    assert "lnx01" not in set(f["src_host"] for f in flows(plan, "AD-LDAP"))
    assert "dc01" not in set(f["src_host"] for f in flows(plan, "AD-LDAP"))
    inv["settings"]["nap_include_ad_dependencies"] = False
    assert not [f for f in run(inv)["flows"] if f["category"] == "ad"]


@pytest.mark.parametrize("value", ["maybe", [True]])
def test_bad_domain_member_names_host_and_variable(value):
    inv = site()
    inv["hostvars"]["cm01"]["nap_domain_member"] = value
    with pytest.raises(NapError, match="host cm01: nap_domain_member is"):
        run(inv)


@pytest.mark.parametrize("version,expected", [
    ("2003", "1025-5000"), ("Windows Server 2003 R2 SP2", "1025-5000"), ("XP SP3", "1025-5000"),
    (2008, "49152-65535"), ("2008 R2", "49152-65535"), ("2012r2", "49152-65535"), (None, "49152-65535"),
])
def test_rpc_range_follows_the_destination_windows_version(version, expected):
    inv = site()
    if version is not None:
        inv["hostvars"]["nps01"]["nap_windows_version"] = version
    plan = run(with_router(inv))
    (config,) = flows(plan, "NAP-SHV-CONFIG")
    assert config["rpc_dynamic_range"] == expected and config["rpc_dynamic_ranges"] == [expected]
    assert plan["hosts"]["nps01"]["rpc_dynamic_range"] == expected
    assert plan["hosts"]["nps01"]["settings"]["nap_rpc_dynamic_range"] == expected


def test_rpc_range_setting_still_overrides_the_version():
    inv = site(settings={"nap_rpc_dynamic_range": "50000-51000"})
    inv["hostvars"]["nps01"]["nap_windows_version"] = "2003"
    inv["hostvars"]["dc01"]["nap_rpc_dynamic_range"] = "60000-60100"
    plan = run(inv)
    assert flows(plan, "NAP-SHV-CONFIG")[0]["rpc_dynamic_range"] == "50000-51000"
    assert set(f["rpc_dynamic_range"] for f in flows(plan, "AD-RPC")) == {"60000-60100"}
    assert plan["warnings"] == []


def test_client_networks_take_their_range_from_their_versions_and_mixed_versions_carry_both():
    inv = with_router(site(settings={"nap_include_configmgr_base": True, "nap_client_networks": [CLIENTS_A],
                                     "nap_client_windows_versions": ["xp", "Vista", "7"]}))
    plan = run(inv)
    (push,) = [f for f in flows(plan, "CM-PUSH") if f["rpc_dynamic"]]
    assert push["rpc_dynamic_ranges"] == ["1025-5000", "49152-65535"] and push["rpc_dynamic_range"] == "1025-5000"
    (rule,) = [r for r in plan["perimeter"]["rtr01"]["forward"] if r["flow_id"] == "CM-PUSH" and 135 in r["dst_ports"]]
    assert rule["dst_ports"] == [135, "1025-5000", "49152-65535"]
    inv["settings"]["nap_client_windows_versions"] = ["7", "10"]
    (push,) = [f for f in flows(run(inv), "CM-PUSH") if f["rpc_dynamic"]]
    assert push["rpc_dynamic_ranges"] == ["49152-65535"]
    with pytest.raises(NapError, match="nap_client_windows_versions has 'NT4'; expected a list of xp, 2003"):
        inv["settings"]["nap_client_windows_versions"] = ["NT4"]
        run(inv)


def test_version_warnings_only_where_some_declare_and_a_destination_does_not():
    assert run(with_router(site()))["warnings"] == []                      # none declare: silent
    inv = site()
    inv["hostvars"]["cm01"]["nap_windows_version"] = "2003"
    plan = run(inv)
    (warning,) = [w for w in plan["warnings"] if w.startswith("NAP-SHV-CONFIG")]
    assert "nps01 declares no Windows version (nap_windows_version)" in warning and "49152-65535" in warning
    assert [w for w in plan["warnings"] if w.startswith("AD-RPC: dc01 declares no Windows version")]
    inv["hostvars"]["nps01"]["nap_windows_version"] = "2008"
    inv["hostvars"]["dc01"]["nap_windows_version"] = "2008 R2"
    assert run(inv)["warnings"] == []
    # client networks: they declare through nap_client_windows_versions
    inv["settings"].update(nap_include_configmgr_base=True, nap_client_networks=[CLIENTS_A])
    assert [w for w in run(inv)["warnings"] if "nap_client_windows_versions" in w and w.startswith("CM-PUSH")]


@pytest.mark.parametrize("value", ["NT4", "2008 R3", True, ["2003"]])
def test_bad_windows_version_names_host_and_variable(value):
    inv = site()
    inv["hostvars"]["cm01"]["nap_windows_version"] = value
    with pytest.raises(NapError) as err:
        run(inv)
    assert "host cm01: nap_windows_version is" in str(err.value) and "2008r2" in str(err.value)


def test_a_2003_host_has_no_host_rules_but_its_flows_cross_the_perimeter():
    inv = with_router(ipsec_site())
    inv["hostvars"]["cm01"].update(ansible_host="198.51.100.10", nap_windows_version="2003")   # in clients-a
    plan = run(inv)
    entry = plan["hosts"]["cm01"]
    assert entry["host_rules"] == "not_applicable" and entry["inbound"] == [] and entry["outbound"] == []
    assert "HNetCfg.FwPolicy2" in entry["host_rules_note"] and "netsh advfirewall" in entry["host_rules_note"]
    names = sorted(r["name"] for r in entry["not_applicable_rules"])
    assert "NAP-SHV-STATUS-TCP-IN" in names and "MGMT-WINRM-TCP-IN" in names
    forward = [r["flow_id"] for r in plan["perimeter"]["rtr01"]["forward"]]
    assert {"NAP-SHV-STATUS", "NAP-AD-WRITE", "NAP-SHV-CONFIG", "IPSEC-IKE"} <= set(forward)
    assert plan["hosts"]["nps01"]["host_rules"] == "planned"
    assert "not applicable" in " ".join(planner.summary(plan))
    # a Linux host declaring a Windows version (group variables) is not affected
    inv["hostvars"]["rtr01"]["nap_windows_version"] = "2003"
    assert run(inv)["perimeter"]["rtr01"]["forward"]


def test_remediation_reaches_domain_controllers_wins_and_dns():
    inv = ipsec_site()
    inv["settings"]["nap_restricted_networks"] = ["198.51.100.192/26"]
    inv["groups"]["nap_remediation_servers"] = ["dc01", "wins01", "dp01"]
    inv["hostvars"]["dc01"]["nap_remediation_roles"] = ["domain_controller"]
    inv["hostvars"]["wins01"] = {"ansible_host": "192.0.2.55", "nap_remediation_roles": ["wins"]}
    inv["hostvars"]["dp01"] = {"ansible_host": "192.0.2.56", "nap_remediation_roles": ["distribution_point"]}
    plan = run(inv)
    dc = set((f["protocol"], tuple(f["dst_ports"])) for f in flows(plan, "REMEDIATION") if f["via"] == "INFRA-DC")
    assert dc == {("tcp", (88,)), ("udp", (88,)), ("tcp", (389,)), ("udp", (389,)), ("tcp", (445,)), ("tcp", (135,)),
                  ("udp", (123,))}
    (rpc,) = [f for f in flows(plan, "REMEDIATION") if f["via"] == "INFRA-DC" and f["rpc_dynamic"]]
    assert rpc["src_addresses"] == ["198.51.100.192/26"] and rpc["rpc_dynamic_range"] == "49152-65535"
    wins = [(f["protocol"], f["dst_ports"]) for f in flows(plan, "REMEDIATION") if f["via"] == "INFRA-WINS"]
    assert wins == [("udp", [137])]                             # TCP 42 is replication between WINS servers
    assert ports_of(plan, "REMEDIATION", via="CM-DP") == {("tcp", (80,)), ("tcp", (445,))}
    # the INFRA flows exist only through REMEDIATION
    assert not flows(plan, "INFRA-DC") and not flows(plan, "INFRA-WINS")
    # clients find the HRA and the remediation servers by name: client and restricted networks -> DNS servers
    dns = flows(plan, "CLIENT-DNS")
    assert set(f["dst_host"] for f in dns) == {"dc01"}
    assert ports_of(plan, "CLIENT-DNS") == {("udp", (53,)), ("tcp", (53,))}
    assert set(a for f in dns for a in f["src_addresses"]) == {CLIENTS_A, CLIENTS_B}     # the /26 lies inside B
    inv["groups"]["nap_dns_servers"] = ["dns01"]
    inv["hostvars"]["dns01"] = {"ansible_host": "192.0.2.53"}
    assert set(f["dst_host"] for f in flows(run(inv), "CLIENT-DNS")) == {"dns01"}
    assert not flows(run(site()), "CLIENT-DNS")                  # no enforcement method: no NAP client


def test_ipsec_host_rules_leave_ike_to_windows_and_open_the_protected_services():
    inv = with_router(ipsec_site())
    inv["groups"]["nap_ipsec_protected"] = ["cm01", "lnx01"]
    inv["hostvars"]["cm01"]["nap_ipsec_protected_services"] = ["smb", "rdp", 8080, "udp/514", "tcp/5000-5010"]
    inv["hostvars"]["lnx01"] = {"ansible_host": "192.0.2.61", "nap_platform": "linux",
                                "nap_ipsec_protected_services": ["https"]}
    plan = run(inv)
    cm01 = dict((r["name"], r) for r in plan["hosts"]["cm01"]["inbound"])
    assert not [n for n in cm01 if n.startswith("IPSEC-IKE")]          # Windows permits IKE/AuthIP and ESP itself
    assert [n for n in plan["hosts"]["lnx01"]["inbound"] if n["name"].startswith("IPSEC-IKE")]
    ike_fwd = [r for r in plan["perimeter"]["rtr01"]["forward"] if r["flow_id"] == "IPSEC-IKE"]
    assert set(r["protocol"] for r in ike_fwd) == {"udp", "esp"}        # perimeter devices keep them
    assert cm01["IPSEC-PROTECTED-SMB-TCP-IN"]["dst_ports"] == [445]
    assert cm01["IPSEC-PROTECTED-SMB-TCP-IN"]["src_addresses"] == ["198.51.100.0/24"]
    assert cm01["IPSEC-PROTECTED-RDP-TCP-IN"]["dst_ports"] == [3389]
    assert cm01["IPSEC-PROTECTED-TCP-IN"]["dst_ports"] == ["5000-5010", 8080]
    assert cm01["IPSEC-PROTECTED-UDP-IN"]["dst_ports"] == [514]
    # the protected traffic crosses the perimeter inside ESP: no perimeter rule of its own
    assert not [r for r in plan["perimeter"]["rtr01"]["forward"] if r["flow_id"] == "IPSEC-PROTECTED"]
    assert all(f["perimeter"] == [] for f in flows(plan, "IPSEC-PROTECTED"))
    assert plan["warnings"] == []


def test_ipsec_protected_host_without_services_warns_once_and_bad_items_name_the_host():
    plan = run(ipsec_site())
    (warning,) = [w for w in plan["warnings"] if "nap_ipsec_protected_services" in w]
    assert warning.startswith("1 host(s) in nap_ipsec_protected without nap_ipsec_protected_services (cm01)")
    for bad in (["smtp"], ["tcp/70000"], "tcp/", [True]):
        inv = ipsec_site()
        inv["hostvars"]["cm01"]["nap_ipsec_protected_services"] = bad
        with pytest.raises(NapError, match="host cm01: nap_ipsec_protected_services"):
            run(inv)


def radius_site(**settings):
    inv = site(settings=dict({"nap_enforcement_methods": ["8021x", "vpn", "tsg"], "nap_client_networks": [CLIENTS_A]},
                             **settings))
    inv["groups"].update({"nap_radius_clients": ["sw01"], "nap_vpn_servers": ["vpn01"], "nap_ts_gateways": ["tsg01"],
                          "nap_rdp_hosts": ["rdp01"]})
    inv["hostvars"].update({"sw01": {"ansible_host": "192.0.2.250"}, "vpn01": {"ansible_host": "192.0.2.60"},
                            "tsg01": {"ansible_host": "192.0.2.70"}, "rdp01": {"ansible_host": "192.0.2.71"}})
    return inv


def test_radius_proxy_tier_sits_between_the_radius_clients_and_the_shv_point():
    plan = run(radius_site())
    assert set(f["dst_host"] for f in flows(plan, "8021X-RADIUS")) == {"nps01"} and not flows(plan, "RADIUS-PROXY")
    inv = radius_site()
    inv["groups"]["nap_radius_proxies"] = ["rp01", "rp02"]
    inv["hostvars"].update({"rp01": {"ansible_host": "192.0.2.80"}, "rp02": {"ansible_host": "192.0.2.81"}})
    inv["hostvars"]["nps01"]["nap_radius_legacy_ports"] = True
    plan = run(inv)
    for flow_id, src in (("8021X-RADIUS", "sw01"), ("VPN-RADIUS", "vpn01"), ("TSG-RADIUS", "tsg01")):
        assert sorted((f["src_host"], f["dst_host"]) for f in flows(plan, flow_id)) == [(src, "rp01"), (src, "rp02")]
        assert ports_of(plan, flow_id) == {("udp", (1812, 1813))}              # the proxies' own legacy setting
    proxy = flows(plan, "RADIUS-PROXY")
    assert sorted((f["src_host"], f["dst_host"], tuple(f["dst_ports"])) for f in proxy) == [
        ("rp01", "nps01", (1812, 1813, 1645, 1646)), ("rp02", "nps01", (1812, 1813, 1645, 1646))]
    assert plan["hosts"]["rp01"]["roles"] == ["radius_proxy"]
    assert [(x["protocol"], x["port"]) for x in plan["hosts"]["rp01"]["listeners"]] == [
        ("udp", 1645), ("udp", 1646), ("udp", 1812), ("udp", 1813)]
    inv["groups"]["nap_shv_points"] = []
    with pytest.raises(NapError, match="nap_radius_proxies .rp01, rp02. needs a peer: group nap_shv_points is empty"):
        run(inv)


def test_ikev2_is_a_vpn_protocol_of_2008_r2_and_later():
    inv = radius_site()
    inv["hostvars"]["vpn01"].update(nap_vpn_protocols=["ikev2"], nap_windows_version="2008 R2")
    plan = run(inv)
    assert ports_of(plan, "VPN-IKEV2") == {("udp", (500, 4500)), ("esp", ())}
    assert not flows(plan, "VPN-SSTP") and not flows(plan, "VPN-L2TP")
    assert not [r for r in plan["hosts"]["vpn01"]["inbound"] if r["flow_id"] == "VPN-IKEV2"]   # Windows: exempt
    inv["hostvars"]["vpn01"]["nap_windows_version"] = "2008"
    with pytest.raises(NapError, match="host vpn01: VPN-IKEV2 .* needs Windows Server 2008 R2 or later, but "
                                       "nap_windows_version is 2008"):
        run(inv)


def test_site_server_pings_clients_before_client_push():
    plan = run(site(settings={"nap_include_configmgr_base": True, "nap_client_networks": [CLIENTS_A]}))
    (ping,) = flows(plan, "CM-PUSH-ICMP")
    assert (ping["src_host"], ping["dst_addresses"], ping["protocol"], ping["dst_ports"]) == (
        "cm01", [CLIENTS_A], "icmp", [])
    assert not flows(run(site()), "CM-PUSH-ICMP")


def test_dhcp_enforcement_is_ipv4_only():
    inv = dhcp_site()
    inv["settings"]["nap_zones"]["clients-c"] = ["2001:db8:1::/64"]
    inv["settings"]["nap_client_networks"].append("2001:db8:1::/64")
    inv["hostvars"]["rtr01"]["nap_perimeter_zones"].append("clients-c")
    plan = run(inv)
    assert all(":" not in a for f in flows(plan, "DHCP-CLIENT") + flows(plan, "DHCP-RELAY")
               for a in f["src_addresses"] + f["dst_addresses"])
    (warning,) = [w for w in plan["warnings"] if "2001:db8:1::/64" in w]
    assert warning == ("DHCP-CLIENT: client network 2001:db8:1::/64 is IPv6; NAP DHCP enforcement is DHCPv4 only, "
                       "so no rule is planned for it")
    assert flows(plan, "DHCP-RELAY")                              # the IPv4 networks keep their relay


def test_new_flows_cite_microsoft_and_name_their_windows_group():
    catalogue_module = planner.catalogue
    groups = dict((f.id, f.windows_group) for f in catalogue_module.FLOWS)
    assert groups["AD-LDAP"] == (("Active Directory Domain Services", "@FirewallAPI.dll,-37601", ("ADDS-LDAP-TCP-In",)),)
    assert groups["AD-KPASSWD"][0][:2] == ("Kerberos Key Distribution Center", "@kdcsvc.dll,-1008")
    assert groups["CLIENT-DNS"][0][:2] == ("DNS Service", "@firewallapi.dll,-53012")
    assert groups["CM-PUSH-ICMP"] == (("File and Printer Sharing", "@FirewallAPI.dll,-28502",
                                       ("FPS-ICMP4-ERQ-In", "FPS-ICMP6-ERQ-In")),)
    assert groups["RADIUS-PROXY"][0][:2] == ("Network Policy Server", None)       # resource string not found
    assert groups["VPN-L2TP-1701"] == (("Routing and Remote Access", "@FirewallAPI.dll,-33752", ("RRAS-L2TP-In-UDP",)),)
    for flow_id in ("IPSEC-HRA-GC", "AD-LDAP", "AD-SMB", "AD-RPC", "AD-KPASSWD", "CLIENT-DNS", "RADIUS-PROXY",
                    "CM-PUSH-ICMP", "VPN-L2TP-1701"):
        assert groups[flow_id], flow_id
        assert "https://" in catalogue_module.FLOWS_BY_ID[flow_id].note or flow_id in ("AD-SMB", "AD-KPASSWD", "CM-PUSH-ICMP"), flow_id
    for flow in catalogue_module.FLOWS + catalogue_module.INFRA_FLOWS:       # every flow: a group, a choice of groups, or why there is none
        assert flow.windows_group or flow.group_choice or flow.no_group, flow.id
    for flow_id in ("VPN-IKEV2", "IPSEC-IKE", "CM-SQL", "MGMT-SSH"):
        assert not groups[flow_id] and catalogue_module.FLOWS_BY_ID[flow_id].no_group
    entry = [e for e in catalogue_module.catalogue_entries() if e["id"] == "INFRA-DC"][0]
    assert entry["windows_group"][0]["resource"] == "@kdcsvc.dll,-1008"
    assert "ADDS-RPCEPMAP-TCP-In" in entry["windows_group"][1]["rules"]
    # flows that need special handling say so through traits, never through their id
    assert catalogue_module.has_trait("IPSEC-IKE", "windows_exempt") and catalogue_module.has_trait("VPN-IKEV2", "windows_exempt")
    assert catalogue_module.has_trait("DHCP-CLIENT", "ipv4_only") and catalogue_module.has_trait("DHCP-RELAY", "ipv4_only")
    assert catalogue_module.has_trait("IPSEC-PROTECTED", "inside_ipsec")


def test_every_planned_flow_of_the_example_names_its_windows_group_or_why_not():
    plan = run(done_when_estate())
    for flow in plan["flows"]:
        assert flow["windows_group"] or flow["windows_group_note"], (flow["id"], flow.get("via"))
    (hra,) = flows(plan, "IPSEC-HRA")        # per nap_hra_transport (https by default)
    assert [g["name"] for g in hra["windows_group"]] == ["Secure World Wide Web Services (HTTPS)"]
    assert hra["windows_group"][0]["rules"] == ["IIS-WebServerRole-HTTPS-In-TCP"]
    (smb,) = flows(plan, "IPSEC-PROTECTED")
    assert smb["windows_group"][0]["resource"] == "@FirewallAPI.dll,-28502"
    dc = [f for f in flows(plan, "REMEDIATION") if f.get("via") == "INFRA-DC"][0]
    assert [g["resource"] for g in dc["windows_group"]] == ["@kdcsvc.dll,-1008", "@FirewallAPI.dll,-37601"]
    sql = [f for f in plan["flows"] if f["id"] == "MGMT-SSH"]
    assert all(not f["windows_group"] and "Linux" in f["windows_group_note"] for f in sql)


def test_l2tp_needs_udp_1701_on_the_vpn_server_and_ike_only_at_the_perimeter():
    inv = with_router(site(settings={"nap_enforcement_methods": ["vpn"], "nap_client_networks": [CLIENTS_A]}))
    inv["groups"]["nap_vpn_servers"] = ["vpn01"]
    inv["hostvars"]["vpn01"] = {"ansible_host": "192.0.2.60", "nap_vpn_protocols": ["l2tp"]}
    plan = run(inv)
    rules = [(r["protocol"], r["dst_ports"], r["src_addresses"]) for r in plan["hosts"]["vpn01"]["inbound"]
             if r["flow_id"].startswith("VPN-L2TP")]
    assert rules == [("udp", [1701], [CLIENTS_A])]          # Windows permits IKE and ESP itself
    fwd = set((r["flow_id"], r["protocol"], tuple(r["dst_ports"])) for r in plan["perimeter"]["rtr01"]["forward"]
              if r["flow_id"].startswith("VPN-L2TP"))
    assert fwd == {("VPN-L2TP", "udp", (500, 4500)), ("VPN-L2TP", "esp", ())}     # L2TP crosses inside ESP
    (inner,) = flows(plan, "VPN-L2TP-1701")
    assert inner["perimeter"] == [] and inner["windows_group"][0]["rules"] == ["RRAS-L2TP-In-UDP"]
    note = planner.catalogue.FLOWS_BY_ID["VPN-L2TP-1701"].note
    assert "L2TP UDP 1701" in note and "service-overview-and-network-port-requirements" in note


def test_push_ping_is_echo_request_only_in_every_rule():
    inv = with_router(site(settings={"nap_include_configmgr_base": True, "nap_client_networks": [CLIENTS_A]}))
    plan = run(inv)
    (ping,) = flows(plan, "CM-PUSH-ICMP")
    assert ping["icmp_type"] == "echo-request"
    (fwd,) = [r for r in plan["perimeter"]["rtr01"]["forward"] if r["flow_id"] == "CM-PUSH-ICMP"]
    assert (fwd["protocol"], fwd["icmp_type"], fwd["dst_addresses"]) == ("icmp", "echo-request", [CLIENTS_A])
    assert all("icmp_type" not in r for r in plan["perimeter"]["rtr01"]["forward"] if r["protocol"] != "icmp")


def done_when_estate():
    """Issue 18's estate: LDAPS, GC over SSL, an HRA, NPS on its own host, a 2003 site server, a RADIUS proxy in a DMZ,
    802.1X and IKEv2 VPN, a 2003 DC that restricted clients remediate at, ConfigMgr base flows for client push."""
    zones = {"servers": [SERVERS], "clients": ["198.51.100.0/24"], "dmz": ["203.0.113.64/26"], "management": [MGMT]}
    groups = {
        "nap_site_servers": ["cm01"], "nap_shv_points": ["nps01"], "nap_domain_controllers": ["dc01", "dc02"],
        "nap_global_catalogs": ["dc01"], "nap_hras": ["hra01"], "nap_certification_authorities": ["ca01"],
        "nap_ipsec_protected": ["fs01"], "nap_radius_clients": ["sw01"], "nap_radius_proxies": ["rp01"],
        "nap_vpn_servers": ["vpn01"], "nap_remediation_servers": ["wsus01", "dc02"], "nap_perimeter": ["rtr01"],
    }
    hostvars = {
        "cm01": {"ansible_host": "192.0.2.10", "nap_windows_version": "Windows Server 2003 SP2"},
        "nps01": {"ansible_host": "192.0.2.20", "nap_windows_version": "2008 R2"},
        "dc01": {"ansible_host": "192.0.2.5", "nap_windows_version": "2008 R2"},
        "dc02": {"ansible_host": "192.0.2.6", "nap_windows_version": "2008",
                 "nap_remediation_roles": ["domain_controller"]},
        "hra01": {"ansible_host": "192.0.2.30", "nap_windows_version": "2008"},
        "ca01": {"ansible_host": "192.0.2.35", "nap_windows_version": "2008"},
        "fs01": {"ansible_host": "192.0.2.45", "nap_windows_version": "2008", "nap_ipsec_protected_services": ["smb"]},
        "sw01": {"ansible_host": "198.51.100.250"},
        "rp01": {"ansible_host": "203.0.113.70", "nap_windows_version": "2008"},
        "vpn01": {"ansible_host": "203.0.113.71", "nap_windows_version": "2008 R2", "nap_vpn_protocols": ["ikev2"]},
        "wsus01": {"ansible_host": "192.0.2.50", "nap_windows_version": "2008",
                   "nap_remediation_roles": ["software_update_point", "distribution_point"]},
        "rtr01": {"ansible_host": "203.0.113.1", "nap_perimeter_platform": "nftables",
                  "nap_perimeter_zones": ["servers", "clients", "dmz", "management"],
                  "nap_address": ["192.0.2.1", "198.51.100.1", "203.0.113.65", "203.0.113.1"]},
    }
    settings = {"nap_enforcement_methods": ["ipsec", "8021x", "vpn"], "nap_ad_ldap_mode": "ldaps",
                "nap_gc_mode": "gc_ssl", "nap_client_networks": ["198.51.100.0/25"],
                "nap_management_sources": ["203.0.113.10/32"], "nap_client_windows_versions": ["xp", "7"],
                "nap_include_configmgr_base": True, "nap_zones": zones}
    return {"groups": groups, "hostvars": hostvars, "settings": settings}


def test_the_done_when_estate_has_every_flow_with_its_ports_and_none_unchosen():
    plan = run(done_when_estate())
    assert plan["warnings"] == []
    catalogue_ = planner.catalogue

    def has(flow_id, src, dst, expected, source=None):
        got = set((f["protocol"], tuple(f["dst_ports"])) for f in flows(plan, flow_id)
                  if f["src_host"] == src and (f["dst_host"] == dst or dst is None))
        assert got == expected, (flow_id, src, dst, got)
        assert all(f["source"] == (source or catalogue_.FLOWS_BY_ID[flow_id].source) for f in flows(plan, flow_id))

    # 1. HRA -> global catalog, over SSL
    has("IPSEC-HRA-GC", "hra01", "dc01", {("tcp", (3269,))})
    # 2. every domain member -> its DCs, once per host (NPS on its own host, the HRA, the 2003 site server ...)
    for member in ("cm01", "nps01", "hra01", "ca01", "wsus01", "vpn01"):
        has("AD-LDAP", member, "dc01", {("tcp", (389,))})
        has("AD-SMB", member, "dc02", {("tcp", (445,))})
        has("AD-RPC", member, "dc01", {("tcp", (135,))})
        has("AD-KPASSWD", member, "dc01", {("tcp", (464,)), ("udp", (464,))})
        has("AD-KERBEROS", member, "dc02", {("tcp", (88,)), ("udp", (88,))})
    assert "rp01" not in set(f["src_host"] for f in flows(plan, "AD-LDAP"))     # a proxy authenticates nobody
    # 3. RPC ranges per destination version; the 2003 site server's host rules are not applicable
    assert [f["rpc_dynamic_ranges"] for f in flows(plan, "NAP-SHV-CONFIG")] == [["49152-65535"]]
    (push,) = [f for f in flows(plan, "CM-PUSH") if f["rpc_dynamic"]]
    assert push["src_host"] == "cm01" and push["rpc_dynamic_ranges"] == ["1025-5000", "49152-65535"]
    assert plan["hosts"]["cm01"]["host_rules"] == "not_applicable" and plan["hosts"]["cm01"]["inbound"] == []
    assert plan["hosts"]["cm01"]["rpc_dynamic_range"] == "1025-5000"
    # 4. remediation: the DC role, the distribution point, clients' DNS
    assert ports_of(plan, "REMEDIATION", via="INFRA-DC", dst_host="dc02") >= {("tcp", (88,)), ("tcp", (135,))}
    assert ports_of(plan, "REMEDIATION", via="CM-DP") == {("tcp", (80,)), ("tcp", (445,))}
    assert set(f["dst_host"] for f in flows(plan, "CLIENT-DNS")) == {"dc01", "dc02"}
    # 5. IPsec: no IKE host rule on Windows, the protected service from the client networks
    assert [r["name"] for r in plan["hosts"]["fs01"]["inbound"] if r["flow_id"].startswith("IPSEC")] == [
        "IPSEC-PROTECTED-SMB-TCP-IN"]
    # 6. the proxy tier, IKEv2, the push ping
    has("8021X-RADIUS", "sw01", "rp01", {("udp", (1812, 1813))})
    has("RADIUS-PROXY", "rp01", "nps01", {("udp", (1812, 1813))})
    assert ports_of(plan, "VPN-IKEV2") == {("udp", (500, 4500)), ("esp", ())}
    has("CM-PUSH-ICMP", "cm01", None, {("icmp", ())})
    # 7. NPS listens on all four RADIUS ports although the legacy pair is not chosen
    udp = [x["port"] for x in plan["hosts"]["nps01"]["listeners"] if x["protocol"] == "udp"]
    assert udp == [1645, 1646, 1812, 1813]
    # ... and none that was not chosen
    tcp = [(f["id"], p) for f in plan["flows"] if f["protocol"] == "tcp" for p in f["dst_ports"]]
    assert [i for i, p in tcp if p == 389] and set(i for i, p in tcp if p == 389) <= {"AD-LDAP", "REMEDIATION"}
    assert set(i for i, p in tcp if p == 636) == {"NAP-AD-WRITE"}
    assert set(i for i, p in tcp if p == 3268) == {"CM-GC"}      # ConfigMgr's own client lookup, not an "X or Y"
    assert not [f for f in plan["flows"] if f["protocol"] == "udp" and {1645, 1646} & set(f["dst_ports"])]
    assert not [f for f in plan["flows"] if f["id"] in ("VPN-PPTP", "VPN-L2TP", "VPN-SSTP", "DHCP-CLIENT",
                                                        "TSG-CLIENT", "INFRA-WINS")]
    assert not [r for e in plan["hosts"].values() for r in e["inbound"] if r["flow_id"] in ("IPSEC-IKE", "VPN-IKEV2")]
    # every new flow is planned and cites its Microsoft document (title and address) in the catalogue
    citations = {
        "IPSEC-HRA-GC": "cc735489(v=ws.10)",                 # Remote Request Processing (HRA)
        "AD-LDAP": "cc735378(v=ws.10)",                      # NPS must reach the DCs
        "AD-SMB": "dd772723(v=ws.10)",                       # AD DS port requirements
        "AD-RPC": "support.microsoft.com/kb/929851",         # dynamic range per version
        "AD-KPASSWD": "service-overview-and-network-port-requirements",
        "RADIUS-PROXY": "dd197533(v=ws.10)",                 # NPS as a RADIUS proxy
        "VPN-IKEV2": "ns-mprapi-ikev2_config_params",
        "IPSEC-IKE": "fwp/ike-exemptions",
        "CLIENT-DNS": "jj872747(v=wps.620)",                 # remediation server group
        "CM-PUSH-ICMP": "client push installation",
        "IPSEC-PROTECTED": "connection security rule",
    }
    for flow_id, cited in citations.items():
        assert flows(plan, flow_id), flow_id
        assert cited in catalogue_.FLOWS_BY_ID[flow_id].note, flow_id
    assert "dd197605" in catalogue_.CITE_NPS_PORTS and "inetfwpolicy2" in plan["hosts"]["cm01"]["host_rules_note"]
    # the push ping is ICMP echo request, in the flow and in the router's rule
    (ping,) = flows(plan, "CM-PUSH-ICMP")
    assert ping["icmp_type"] == "echo-request"
    assert [r["icmp_type"] for r in plan["perimeter"]["rtr01"]["forward"] if r["protocol"] == "icmp"] == [
        "echo-request"]
    # each flow names the Windows predefined groups that cover it on its destination (resource string and rules)
    nps = {"name": "Network Policy Server", "resource": None, "rules": list(catalogue_.NPS_RULES)}
    assert flows(plan, "RADIUS-PROXY")[0]["windows_group"] == [nps]
    assert flows(plan, "IPSEC-HRA-GC")[0]["windows_group"] == [{
        "name": "Active Directory Domain Services", "resource": "@FirewallAPI.dll,-37601",
        "rules": ["ADDS-LDAPGC-TCP-In", "ADDS-LDAPGCSEC-TCP-In"]}]
    assert set(g["resource"] for f in flows(plan, "AD-KPASSWD") for g in f["windows_group"]) == {"@kdcsvc.dll,-1008"}
    assert all(f["windows_group"] or f["windows_group_note"] for f in plan["flows"])


@pytest.mark.parametrize("var, value", [
    ("nap_ipsec_protected_services", ["http\n;rm -rf /"]),
    ("nap_ipsec_protected_services", [u"8\u00b2"]),
    ("nap_windows_version", "2008';calc;'"),
    ("nap_domain_member", "maybe\n"),
])
def test_hostile_per_host_values_are_refused_naming_host_and_variable(var, value):
    """The per-host variables of the complete catalogue map to fixed choices, or fail naming host and variable."""
    inv = ipsec_site()
    inv["hostvars"]["cm01"][var] = value
    with pytest.raises(NapError) as err:
        run(inv)
    assert "cm01" in str(err.value) and var in str(err.value)


def test_rules_merged_from_flows_equal_those_merged_from_built_rules():
    """plan_rules.forward_dicts and finish_dicts (one rule per merged group) give what building every flow's rule
    and merging them gives, names (with their digests) included."""
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import plan_rules
    inv = with_router(site())
    plan = run(inv)
    flows_ = plan["flows"]
    forward = [f for f in flows_ if f["perimeter"]]
    assert forward, "the site must plan flows across the router"
    # two flows that differ only in their destination, and two same-named rules with different ports
    extra = copy.deepcopy(forward[0])
    extra["dst_addresses"] = ["203.0.113.9/32"]
    other = copy.deepcopy(forward[0])
    other["dst_ports"] = [8443]
    other["src_addresses"] = ["203.0.113.0/24"]
    twin = copy.deepcopy(other)
    twin["src_addresses"] = ["198.51.100.0/24"]
    twin["dst_addresses"] = ["203.0.113.77/32"]
    sample = forward + [extra, other, twin]
    built = [r.to_dict() for r in plan_rules.finish([plan_rules.forward_rule(f) for f in sample], "both")]
    assert plan_rules.forward_dicts(sample) == built
    merged = [r for r in built if "203.0.113.9/32" in r["dst_addresses"]]
    assert len(merged) == 1 and len(merged[0]["dst_addresses"]) > 1, merged
    for host in plan["hosts"]:
        mine = [f for f in flows_ if f["dst_host"] == host]
        if host == "dc01":
            # the same flow from another network and a second RPC flow: merged into the rules the first one makes
            more = copy.deepcopy(mine[0])
            more["src_addresses"] = ["203.0.113.0/25"]
            rpc = copy.deepcopy(next(f for f in flows_ if f["rpc_dynamic"]))
            rpc["dst_host"], rpc["src_addresses"] = host, ["203.0.113.128/25"]
            mine += [more, rpc]
        rules = [r for f in mine for r in plan_rules.host_inbound(f)] + [plan_rules.relay_reply(f) for f in mine[:1]]
        built = [r.to_dict() for r in plan_rules.finish(rules, "src")]
        assert plan_rules.inbound_dicts(mine + [plan_rules.relay_reply(f) for f in mine[:1]]) == built, host
    for host, entry in plan["hosts"].items():
        assert [r["name"] for r in entry["inbound"]] == sorted(set(r["name"] for r in entry["inbound"])), host


# --- issue 22: every host's worker reads the plan file; the read is paid once per host of a converge ---------
def _plan_file(tmp_path, plan):
    import json  # pylint: disable=import-outside-toplevel
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan, separators=(",", ":")) + "\n")
    return str(path)


def test_a_plan_read_from_its_file_is_the_plan_in_the_same_order(tmp_path):
    """The file read (plain dicts, the collector paused) gives the plan as written, key order included, and every
    accessor the same facts as the plan handed over in memory."""
    import json  # pylint: disable=import-outside-toplevel
    from collections import OrderedDict  # pylint: disable=import-outside-toplevel
    plan = run(ipsec_site())
    path = _plan_file(tmp_path, plan)
    plandoc._LOADED.clear()  # pylint: disable=protected-access
    read = plandoc.load({plandoc.PLAN_FILE_KEY: path})
    with open(path) as handle:
        ordered = json.load(handle, object_pairs_hook=OrderedDict)     # how the file was read before
    assert json.dumps(read) == json.dumps(ordered) == json.dumps(plan, separators=(", ", ": "))
    for host in plandoc.hosts(plan):
        assert plandoc.host_rules(read, host) == plandoc.host_rules(plan, host)
        assert plandoc.listeners(read, host) == plandoc.listeners(plan, host)
        assert plandoc.settings(read, host) == plandoc.settings(plan, host)
    assert plandoc.load(path) is read                                  # read once per process


def test_reading_a_plan_leaves_the_collector_as_it_was(tmp_path):
    import gc  # pylint: disable=import-outside-toplevel
    plan = run(ipsec_site())
    path = _plan_file(tmp_path, plan)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hosts": ')
    frozen = gc.get_freeze_count()
    for source in (path, str(bad)):
        plandoc._LOADED.clear()  # pylint: disable=protected-access
        try:
            plandoc.load(source)
        except NapError as exc:
            assert "is not a readable plan file" in str(exc) and source == str(bad)
        assert gc.isenabled()
    gc.disable()
    try:
        plandoc._LOADED.clear()  # pylint: disable=protected-access
        plandoc.load(path)
        assert not gc.isenabled()                        # off before, off after
    finally:
        gc.enable()
    # pytest stands for ansible-playbook's main process, which lives on: nothing frozen there
    assert gc.get_freeze_count() == frozen


def test_a_forked_worker_freezes_the_plan_it_read(tmp_path):
    """In an Ansible worker (forked by multiprocessing) the plan read is moved out of the collector's way."""
    import gc  # pylint: disable=import-outside-toplevel
    import multiprocessing  # pylint: disable=import-outside-toplevel
    path = _plan_file(tmp_path, run(ipsec_site()))
    context = multiprocessing.get_context("fork")
    read_end, write_end = context.Pipe(duplex=False)

    def child():
        plandoc._LOADED.clear()  # pylint: disable=protected-access
        before = gc.get_freeze_count()
        plan = plandoc.load(path)
        write_end.send((before, gc.get_freeze_count(), gc.isenabled(), sorted(plandoc.hosts(plan))))

    process = context.Process(target=child)
    process.start()
    try:
        before, after, enabled, hosts = read_end.recv()
    finally:
        process.join()
    assert after > before and enabled and "dc01" in hosts
