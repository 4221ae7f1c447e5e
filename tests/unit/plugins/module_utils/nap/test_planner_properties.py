# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property test: any inventory either fails with NapError or gives a plan that keeps the invariants."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os

import jsonschema
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, port_bounds

ROOT = os.path.dirname(os.path.abspath(__file__))
for _level in range(5):
    ROOT = os.path.dirname(ROOT)
with open(os.path.join(ROOT, "docs", "flows.schema.json")) as handle:
    SCHEMA = json.load(handle)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

ZONES = {"servers": ["198.18.0.0/24"], "clients-a": ["198.18.1.0/24"], "clients-b": ["198.18.2.0/24"],
         "transit": ["198.18.3.0/30"], "mgmt": ["198.18.4.0/28"]}
HOST_GROUPS = [group for role, group, _text in catalogue.ROLE_GROUPS if role not in ("perimeter",)]
CHOICES = dict((s.name, s) for s in catalogue.SETTINGS if s.kind in ("choice", "bool"))

addresses = st.sampled_from(["198.18.0.%d" % i for i in range(2, 40)] + ["198.18.1.%d" % i for i in range(2, 12)]
                            + ["198.18.2.%d" % i for i in range(2, 12)] + ["2001:db8::%x" % i for i in range(2, 6)])


@st.composite
def inventories(draw):
    names = ["h%d" % i for i in range(draw(st.integers(1, 12)))]
    groups = {}
    hostvars = {}
    for name in names:
        for group in draw(st.lists(st.sampled_from(HOST_GROUPS), min_size=1, max_size=3, unique=True)):
            groups.setdefault(group, []).append(name)
        hv = {"ansible_host": draw(addresses)}
        if draw(st.booleans()):
            setting = draw(st.sampled_from(sorted(CHOICES)))
            spec = CHOICES[setting]
            hv[setting] = draw(st.sampled_from(list(spec.choices) if spec.kind == "choice" else [True, False]))
        if "nap_remediation_servers" in [g for g, members in groups.items() if name in members]:
            hv["nap_remediation_roles"] = draw(st.lists(st.sampled_from(sorted(catalogue.REMEDIATION_ROLES)), max_size=3,
                                                        unique=True))
        if draw(st.integers(0, 5)) == 0:
            hv["nap_platform"] = "linux"
        if draw(st.integers(0, 3)) == 0:
            hv["nap_windows_version"] = draw(st.sampled_from(["2003", "2008", "2008 R2", "xp", "2016"]))
        if draw(st.integers(0, 5)) == 0:
            hv["nap_domain_member"] = draw(st.booleans())
        if draw(st.integers(0, 2)) == 0:
            hv["nap_ipsec_protected_services"] = draw(st.lists(st.sampled_from(["smb", "rdp", "rpc", 8080, "udp/514"]),
                                                               max_size=3, unique=True))
        hostvars[name] = hv
    methods = draw(st.lists(st.sampled_from(catalogue.ENFORCEMENT_METHODS), unique=True, max_size=5))
    if draw(st.integers(0, 4)):
        # mostly a coherent estate: the core roles exist and every method has its peers
        for group, host in (("nap_site_servers", "core-cm"), ("nap_shv_points", "core-nps"),
                            ("nap_domain_controllers", "core-dc"), ("nap_global_catalogs", "core-dc"),
                            ("nap_certification_authorities", "core-ca")):
            groups.setdefault(group, []).append(host)
            hostvars[host] = {"ansible_host": draw(addresses)}
        peers = {"dhcp": "nap_dhcp_servers", "ipsec": "nap_hras", "vpn": "nap_vpn_servers",
                 "tsg": "nap_ts_gateways", "8021x": "nap_radius_clients"}
        methods = [m for m in methods if groups.get(peers[m])]
    settings_ = {
        "nap_enforcement_methods": methods,
        "nap_client_networks": draw(st.lists(st.sampled_from(["198.18.1.0/24", "198.18.2.0/24", "198.18.1.128/25"]),
                                             unique=True, max_size=2)),
        "nap_management_sources": ["198.18.4.10"],
        "nap_include_configmgr_base": draw(st.booleans()),
        "nap_client_windows_versions": draw(st.sampled_from([None, ["xp"], ["xp", "7"]])),
    }
    if draw(st.booleans()):
        settings_["nap_rpc_dynamic_range"] = draw(st.sampled_from(["49152-65535", "5000-5100"]))
    layout = draw(st.sampled_from(["none", "one", "series"]))
    if layout != "none":
        settings_["nap_zones"] = ZONES
        devices = ({"r1": ["servers", "clients-a", "clients-b", "mgmt"]} if layout == "one" else
                   {"r1": ["servers", "transit", "mgmt"], "r2": ["transit", "clients-a", "clients-b"]})
        groups["nap_perimeter"] = list(devices)
        for i, (dev, zones) in enumerate(devices.items()):
            hostvars[dev] = {"nap_address": ["198.18.3.%d" % (i + 1)], "nap_perimeter_platform": "nftables",
                             "nap_perimeter_zones": zones}
    return groups, hostvars, settings_


def _covers(rule_ports, port):
    for spec in rule_ports:
        if spec in ("rpc-epmap", "rpc-dynamic"):
            continue
        low, high = port_bounds(spec)
        plow, phigh = port_bounds(port)
        if low <= plow and phigh <= high:
            return True
    return False


def _net_in(addr, rule_addresses):
    net = ipaddress.ip_network(addr)
    return any(net.version == ipaddress.ip_network(r).version and net.subnet_of(ipaddress.ip_network(r))
               for r in rule_addresses)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventories())
def test_plan_invariants(inv):
    groups, hostvars, settings_ = inv
    try:
        plan = planner.plan(groups, hostvars, settings_)
    except NapError as exc:
        assert str(exc)          # a clean, non-empty message; anything else is a bug
        return
    VALIDATOR.validate(json.loads(json.dumps(plan)))
    assert plan == planner.plan(groups, hostvars, settings_)          # deterministic
    for flow in plan["flows"]:
        if flow["id"] == "NAP-AD-WRITE":
            assert flow["dst_ports"] in ([389], [636])                # exactly one of X and Y
        if flow["id"] == "NAP-GC-READ":
            assert flow["dst_ports"] in ([3268], [3269])
        if flow["id"] == "IPSEC-HRA":
            assert flow["dst_ports"] in ([80], [443])
        if flow["src_host"] is not None and flow["id"] not in ("CM-S2S",):
            assert flow["src_host"] != flow["dst_host"] or not flow["id"].endswith("RADIUS")
        if flow["rpc_dynamic"]:
            assert flow["rpc_dynamic_range"] == flow["rpc_dynamic_ranges"][0]
        dst_entry = plan["hosts"].get(flow["dst_host"]) or {}
        if dst_entry.get("platform") == "windows" and catalogue.has_trait(flow["id"], "windows_exempt"):
            assert not [r for r in dst_entry["inbound"] if r["flow_id"] == flow["id"]]   # Windows permits IKE itself
        elif flow["dst_host"]:
            # every flow into a host is allowed by one of its inbound rules (listed as not applicable on a host
            # without Windows Firewall with Advanced Security)
            listed = dst_entry["inbound"] if dst_entry["host_rules"] == "planned" else dst_entry["not_applicable_rules"]
            rules = [r for r in listed if r["flow_id"] == flow["id"] and r["protocol"] == flow["protocol"]
                     and r["direction"] == "in"]
            assert rules, (flow["id"], flow["dst_host"])
            for addr in flow["src_addresses"]:
                assert any(_net_in(addr, r["src_addresses"]) for r in rules)
            for port in flow["dst_ports"]:
                if flow["rpc_dynamic"]:
                    assert any(r["dst_ports"] == ["rpc-epmap"] for r in rules)
                    assert any(r["dst_ports"] == ["rpc-dynamic"] for r in rules)
                else:
                    assert any(_covers(r["dst_ports"], port) for r in rules)
        for dev in flow["perimeter"]:
            assert dev not in (flow["src_host"], flow["dst_host"])
        if catalogue.has_trait(flow["id"], "inside_ipsec"):
            assert flow["perimeter"] == []
    for entry in plan["hosts"].values():
        if entry["host_rules"] == "not_applicable":
            assert entry["inbound"] == [] and entry["outbound"] == [] and entry["windows_version"] in ("2003", "xp")
    for owner, rules in [(h, e["inbound"] + e["outbound"]) for h, e in plan["hosts"].items()] + \
            [(d, e["forward"]) for d, e in plan["perimeter"].items()]:
        names = [r["name"] for r in rules]
        assert len(names) == len(set(names)), owner
    # forward rules allow exactly the address pairs of the flows that cross the device
    for dev, entry in plan["perimeter"].items():
        crossing = [f for f in plan["flows"] if dev in f["perimeter"]]
        universe = set()
        for item in crossing + entry["forward"]:
            universe.update(ipaddress.ip_network(a) for a in item["src_addresses"] + item["dst_addresses"])
        assert _pairs(entry["forward"], "flow_id", universe) == _pairs(crossing, "id", universe), dev


def _representatives(net, universe):
    """One address per atom of ``net`` cut by every network of the universe."""
    out = {net.network_address}
    for other in universe:
        if other.version == net.version and other.subnet_of(net):
            out.add(other.network_address)
            after = other.broadcast_address + 1 if other.broadcast_address != net.broadcast_address else None
            if after is not None:
                out.add(after)
    return out


def _pairs(items, id_key, universe):
    out = set()
    for item in items:
        for s in item["src_addresses"]:
            for d in item["dst_addresses"]:
                for a in _representatives(ipaddress.ip_network(s), universe):
                    for b in _representatives(ipaddress.ip_network(d), universe):
                        out.add((item[id_key], item["protocol"], a, b))
    return out
