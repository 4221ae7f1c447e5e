# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner's integer zone lookup and its fast IPv4 reader against the ipaddress code they stand for."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.configmgr.nap.plugins.module_utils.nap import model, planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, most_specific_zone
from ansible_collections.configmgr.nap.plugins.module_utils.nap.zones import Zones, span


# -- the ipaddress code the integer lookup replaced ------------------------------------------------------------
def reference_zone_of(zones, net, where):
    for znet, zone in zones.nets:
        if znet.version == net.version and znet != net and znet.subnet_of(net):
            raise NapError("%s: %s spans zone %s (%s) and more, so the perimeter decision is ambiguous; split "
                           "it along the zones in nap_zones" % (where, net, zone, znet))
    best = most_specific_zone(net, zones.nets)
    return best[0] if best else None


def reference_check_not_network_address(zones, host, net, zone):
    for znet, zname in zones.nets:
        if zname != zone or znet.version != net.version or not net.subnet_of(znet):
            continue
        edge = znet.prefixlen < znet.max_prefixlen - 1
        if edge and net.network_address in (znet.network_address, getattr(znet, "broadcast_address", None)):
            if net.version == 6 and net.network_address != znet.network_address:
                continue
            what = "network" if net.network_address == znet.network_address else "broadcast"
            raise NapError("host %s: its address %s is the %s address of zone %s (%s), not a host address; set "
                           "nap_address to the host's own address" % (host, net.network_address, what, zone, znet))


def outcome(call, *args):
    try:
        return "ok", call(*args)
    except NapError as exc:
        return "error", str(exc)


class _Holder:
    """What Planner._check_not_network_address reads of the planner: its zones."""

    def __init__(self, zones):
        self.zones = zones


def check_equivalent(zones_var, net):
    zones = Zones(zones_var)
    expected = outcome(reference_zone_of, zones, net, "host h")
    assert outcome(zones.zone_of, net, "host h") == expected
    # the planner's path: a host's normalized address text and its span
    assert outcome(zones.zone_of_span, span(net), "host h", str(net)) == expected
    if expected[0] == "ok" and expected[1]:
        zone = expected[1]
        assert outcome(planner.Planner._check_not_network_address, _Holder(zones), "h", str(net), span(net), zone) \
            == outcome(reference_check_not_network_address, zones, "h", net, zone)


EDGE_ZONES = {
    "all4": ["0.0.0.0/0"],
    "servers": ["10.0.0.0/8", "10.1.0.0/16"],
    "inner": ["10.1.2.0/24", "10.1.2.128/25"],
    "host": ["10.1.2.3/32"],
    "pair": ["10.9.9.0/31"],
    "v6": ["2001:db8::/32", "2001:db8:1::/48"],
    "v6host": ["2001:db8:1::1/128"],
    "all6": ["::/0"],
}


@pytest.mark.parametrize("zones_var", [
    EDGE_ZONES,
    dict(reversed(list(EDGE_ZONES.items()))),           # the order zones are tried in
    {"a": ["192.0.2.0/25"], "b": ["192.0.2.128/25"]},
    {"b": ["192.0.2.128/25"], "a": ["192.0.2.0/25"]},
    {"a": ["192.0.2.0/24", "192.0.2.0/26"], "b": ["192.0.2.64/26"]},
    {"v6a": ["2001:db8::/64"], "v6b": ["2001:db8:0:0:8000::/65"]},
    {},
])
@pytest.mark.parametrize("text", [
    "0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/32", "10.255.255.255/32", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.0/32",
    "10.1.2.3/32", "10.1.2.127/32", "10.1.2.128/32", "10.1.2.255/32", "10.1.2.0/23", "10.9.9.0/32", "10.9.9.1/32",
    "10.9.9.0/31", "192.0.2.0/24", "192.0.2.0/32", "192.0.2.127/32", "192.0.2.128/32", "192.0.2.255/32",
    "192.0.2.64/26", "192.0.2.64/32", "192.0.2.0/26", "203.0.113.7/32", "255.255.255.255/32",
    "::/0", "2001:db8::/32", "2001:db8::/128", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128", "2001:db8:1::/48",
    "2001:db8:1::1/128", "2001:db8:1::/128", "2001:db8::/64", "2001:db8::8000:0:0:0/128", "2001:db8::/63",
    "2001:db9::1/128", "::ffff:10.1.2.3/128",
])
def test_zone_lookup_edges(zones_var, text):
    check_equivalent(zones_var, ipaddress.ip_network(text))


def _network(version, number, prefix):
    return ipaddress.IPv4Network((number, prefix), strict=False) if version == 4 else \
        ipaddress.IPv6Network((number, prefix), strict=False)


# addresses close together (so that networks overlap), in both families, at every prefix length
V4 = st.tuples(st.just(4), st.integers(0x0A000000, 0x0A0003FF) | st.integers(0, 2 ** 32 - 1), st.integers(0, 32))
V6 = st.tuples(st.just(6), st.integers(0x20010DB8 << 96, (0x20010DB8 << 96) + 0x3FF) | st.integers(0, 2 ** 128 - 1),
               st.integers(0, 128) | st.integers(118, 128))
NETS = (V4 | V6).map(lambda t: _network(*t))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.lists(NETS, min_size=1, max_size=4), max_size=4),
       NETS)
def test_zone_lookup_matches_ipaddress(zones, net):
    zones_var = dict((name, [str(n) for n in nets]) for name, nets in zones.items())
    try:
        Zones(zones_var)
    except NapError:
        return                  # a CIDR in two zones: refused before any lookup
    check_equivalent(zones_var, net)


def reference_ip_address(value):
    text = str(value).strip()
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@pytest.mark.parametrize("text", [
    "192.0.2.10", "0.0.0.0", "255.255.255.255", " 192.0.2.10 ", "192.0.2.010", "01.2.3.4", "000.1.1.1", "1.2.3",
    "1.2.3.4.5", "256.1.1.1", "1..2.3", "1.2.3.", "+1.2.3.4", "1.2.3.-4", "1_0.2.3.4", "\u0661.2.3.4", "\u00b2.1.1.1",
    "1.2.3.4/32", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "", "a.b.c.d", 3232235521, None,
])
def test_ip_address_matches_ipaddress(text):
    assert planner._ip_address(text) == reference_ip_address(text)
    number = model.ipv4_number(str(text).strip())
    assert number is None or number == int(ipaddress.IPv4Address(str(text).strip()))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2 ** 32 - 1) | st.text(alphabet="0123456789.-+ /:x\u0661", max_size=18))
def test_ipv4_reader_matches_ipaddress(value):
    text = str(ipaddress.IPv4Address(value)) if isinstance(value, int) else value
    expected = reference_ip_address(text)
    assert planner._ip_address(text) == expected
    if isinstance(value, int):
        assert model.ipv4_number(text) == value     # the canonical form takes the fast path


# -- a plan: what the planner's stand-in keys and copies give ----------------------------------------------------
def estate():
    """Clients of two zones behind a router, the servers in a third; ports and groups some hosts decide."""
    groups = {"nap_site_servers": ["cm01"], "nap_shv_points": ["nps01"], "nap_domain_controllers": ["dc01"],
              "nap_global_catalogs": ["dc01"], "nap_remediation_servers": ["dp01", "dp02", "mp01"],
              "nap_clients": ["c%02d" % i for i in range(12)],
              "nap_perimeter": ["rtr01"]}
    hostvars = {"cm01": {"ansible_host": "198.18.0.10"}, "nps01": {"ansible_host": "198.18.0.20"},
                "dc01": {"ansible_host": "198.18.0.5"},
                "dp01": {"ansible_host": "198.18.0.30", "nap_remediation_roles": ["distribution_point"]},
                "dp02": {"ansible_host": "198.18.0.31", "nap_cm_site_mode": "native",
                         "nap_remediation_roles": ["distribution_point", "management_point", "distribution_point"]},
                "mp01": {"ansible_host": "198.18.0.40", "nap_windows_version": "2003",
                         "nap_remediation_roles": ["management_point", "software_update_point"]},
                "rtr01": {"ansible_host": "198.18.255.1", "nap_perimeter_platform": "nftables",
                          "nap_perimeter_zones": ["servers", "clients-a", "clients-b"]}}
    for i in range(12):
        hostvars["c%02d" % i] = {"ansible_host": "198.19.%d.%d" % (i % 2, 10 + i)}
    hostvars["c03"]["ansible_port"] = 5999
    settings_ = {"nap_management_sources": ["198.18.0.250/32"], "nap_include_configmgr_base": True,
                 "nap_zones": {"servers": ["198.18.0.0/24"], "clients-a": ["198.19.0.0/24"],
                               "clients-b": ["198.19.1.0/24"]}}
    return groups, hostvars, settings_


def test_forward_rules_equal_those_of_the_full_keys():
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import plan_rules
    plan = planner.plan(*estate())
    assert plan["perimeter"]["rtr01"]["forward"], "the estate must plan flows across the router"
    for dev, entry in plan["perimeter"].items():
        assert entry["forward"] == plan_rules.forward_dicts([f for f in plan["flows"] if dev in f["perimeter"]])


def test_no_flow_or_rule_shares_a_list_or_dict():
    plan = planner.plan(*estate())
    seen = {}

    def walk(value, where):
        if isinstance(value, (list, dict)):
            assert id(value) not in seen, "%s shares an object with %s" % (where, seen[id(value)])
            seen[id(value)] = where
            for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
                walk(item, "%s/%s" % (where, key))

    for i, flow in enumerate(plan["flows"]):
        walk(flow, "flow %d" % i)
    for host, entry in plan["hosts"].items():
        for part in ("inbound", "outbound", "listeners"):     # settings share the global values
            walk(entry[part], "host %s %s" % (host, part))


# -- a host's variables repeat the global settings (as Ansible merges them): the same plan, the host's own values
# still validated and planned -----------------------------------------------------------------------------------
class _Tagged(str):
    """A str subclass, as ansible-core 2.19 hands inventory text over."""


def _repeating(groups, hostvars, settings_, **own):
    """Every host's variables with the global settings in them, in other objects (and tagged text); ``own``:
    {host: {setting: value}} on top."""
    def retag(value):
        if isinstance(value, str):
            return _Tagged(value)
        if isinstance(value, list):
            return [retag(v) for v in value]
        if isinstance(value, dict):
            return dict((retag(k), retag(v)) for k, v in value.items())
        return value
    out = {}
    for host in set(h for members in groups.values() for h in members):
        out[host] = dict(retag(settings_), **hostvars.get(host, {}))
        out[host].update(own.get(host, {}))
    return out


def test_global_settings_repeated_in_every_hosts_variables_make_the_same_plan():
    groups, hostvars, settings_ = estate()
    settings_ = dict(settings_, nap_windows_outbound_policy="block", nap_include_ad_dependencies=True,
                     nap_client_networks=["198.19.0.0/24"])
    assert planner.plan(groups, _repeating(groups, hostvars, settings_), settings_) == \
        planner.plan(groups, hostvars, settings_)


@pytest.mark.parametrize("own,effect", [
    ({"nap_windows_outbound_policy": "allow"}, "allow"),          # another value: the host's
    ({"nap_include_ad_dependencies": 1}, None),                  # 1 is not True: validated, and 1 means true
])
def test_a_hosts_own_setting_beside_the_repeated_global_ones_is_still_its_own(own, effect):
    groups, hostvars, settings_ = estate()
    settings_ = dict(settings_, nap_windows_outbound_policy="block", nap_include_ad_dependencies=True)
    plan = planner.plan(groups, _repeating(groups, hostvars, settings_, cm01=own), settings_)
    expected = dict(hostvars, cm01=dict(hostvars["cm01"], **own))
    assert plan == planner.plan(groups, expected, settings_)
    if effect:
        assert plan["hosts"]["cm01"]["outbound_policy"] == effect
        assert plan["hosts"]["nps01"]["outbound_policy"] == "block"


def test_an_invalid_value_of_a_host_beside_the_repeated_global_ones_names_the_host():
    groups, hostvars, settings_ = estate()
    settings_ = dict(settings_, nap_include_ad_dependencies=True)
    for bad in ("maybe", ["true"]):
        with pytest.raises(NapError, match="host dp01: nap_include_ad_dependencies"):
            planner.plan(groups, _repeating(groups, hostvars, settings_, dp01={"nap_include_ad_dependencies": bad}),
                         settings_)


@pytest.mark.parametrize("value,other,same", [
    ("a", "a", True), (_Tagged("a"), "a", True), ("a", "b", False),
    (True, True, True), (1, True, False), (True, 1, False), (1, 1, True), (1.0, 1, False), (None, None, True),
    (["a", _Tagged("b")], ["a", "b"], True), (["a"], ("a",), False), (["a"], ["a", "b"], False), ([1], [True], False),
    ({"z": ["a"]}, {_Tagged("z"): [_Tagged("a")]}, True), ({"z": ["a"]}, {"z": ["a"], "y": []}, False),
    ({"z": [1]}, {"z": [True]}, False), ({"z": 1}, {"y": 1}, False),
])
def test_same_value_is_equal_and_of_the_same_kinds(value, other, same):
    assert planner._same_value(value, other) is same


# -- normalize_addresses: IPv4 lists collapsed with integers, as ipaddress.collapse_addresses does ------------
def reference_collapsed(values):
    """What normalize_addresses gave before its IPv4 path: ipaddress's networks (strict=False), collapsed."""
    nets = [ipaddress.ip_network(str(v).strip(), strict=False) for v in values]
    return tuple(str(n) for n in ipaddress.collapse_addresses([n for n in nets if n.version == 4])) + \
        tuple(str(n) for n in ipaddress.collapse_addresses([n for n in nets if n.version == 6]))


def _ipv4_text():
    """An IPv4 address or CIDR near the others (so that they overlap, join and nest), host bits set or not."""
    return st.builds(lambda net, host, plen, slash: "%s%s" % (
        ipaddress.IPv4Address((net << 8 | host) & 0xFFFFFFFF), "/%d" % plen if slash else ""),
        st.sampled_from([0xC00002, 0xC00003, 0xC00004, 0xC00005, 0xFFFFFF, 0]),
        st.integers(0, 255), st.integers(0, 32), st.booleans())


@settings(max_examples=500, deadline=None)
@given(st.lists(_ipv4_text(), max_size=12))
def test_ipv4_collapse_matches_ipaddress(values):
    model._NORMALIZED.clear()
    assert model.normalize_addresses(values) == reference_collapsed(values)
    assert model._normalize(values, "x", True) == reference_collapsed(values)


@pytest.mark.parametrize("values", [
    ["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["255.255.255.255"], ["192.0.2.0/25", "192.0.2.128/25"],
    ["192.0.2.1", "192.0.2.2"], ["192.0.2.3", "192.0.2.4"], ["192.0.2.7/24", "192.0.2.9"], [" 192.0.2.5/31 "],
    ["192.0.2.0/24", "2001:db8::1"],                           # IPv6 among them: ipaddress's path
    ["192.0.2.0/255.255.255.0"], ["192.0.2.0/024"], [],
])
def test_ipv4_collapse_edges_match_ipaddress(values):
    model._NORMALIZED.clear()
    assert model.normalize_addresses(values) == reference_collapsed(values)


@pytest.mark.parametrize("bad", ["192.0.2.010", "192.0.2.0/33", "192.0.2.256"])
def test_ipv4_collapse_refuses_what_ipaddress_refuses(bad):
    with pytest.raises(ValueError):
        reference_collapsed([bad])
    model._NORMALIZED.clear()
    with pytest.raises(NapError, match="is not an IPv4/IPv6 address or CIDR"):
        model.normalize_addresses(["192.0.2.1", bad])
