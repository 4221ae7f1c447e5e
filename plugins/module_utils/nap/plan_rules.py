# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planned flows -> rules in the canonical model: each flow's inbound, outbound and forward rules, address
lists merged where no address pair is added, and every rule given a unique, stable name."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import Rule, normalize_addresses, normalize_ports


_TRAITS = {}


def has_trait(flow_id, trait):
    """catalogue.has_trait(), looked up once per flow id and trait (the catalogue does not change)."""
    key = (flow_id, trait)
    found = _TRAITS.get(key)
    if found is None:
        found = catalogue.has_trait(flow_id, trait)
        if len(_TRAITS) < 10000:
            _TRAITS[key] = found
    return found


def base_name(flow):
    name = flow["id"]
    if flow.get("via"):
        name += "-" + flow["via"]
    return name + "-" + flow["protocol"].upper()


def perimeter_ports(flow):
    ports = list(flow["dst_ports"])
    if flow["rpc_dynamic"]:
        ports.extend(flow.get("rpc_dynamic_ranges") or [flow["rpc_dynamic_range"]])
    return ports


_PORTS = {}


def _normal_perimeter_ports(flow):
    """normalize_ports(perimeter_ports(flow)), parsed once per distinct port list (a plan repeats each many times)."""
    key = (tuple(flow["dst_ports"]), flow["rpc_dynamic"], flow.get("rpc_dynamic_range"),
           tuple(flow.get("rpc_dynamic_ranges") or ()))
    ports = _PORTS.get(key)
    if ports is None:
        ports = normalize_ports(perimeter_ports(flow))
        if len(_PORTS) < 10000:
            _PORTS[key] = ports
    return ports


def host_inbound(flow):
    if not flow["dst_host"]:
        return []
    sources = flow["src_addresses"]
    if has_trait(flow["id"], "unaddressed_source") and any(":" not in a for a in sources):
        # A DHCPDISCOVER leaves a client that has no address yet from 0.0.0.0.
        sources = normalize_addresses(list(sources) + ["0.0.0.0/32"])
    base = dict(flow_id=flow["id"], direction="in", protocol=flow["protocol"],
                src_addresses=sources, dst_addresses=(),
                src_ports=flow["src_ports"], description=flow["purpose"], source=flow["source"],
                icmp_type=flow.get("icmp_type"))
    if flow["rpc_dynamic"]:
        return [Rule(name=base_name(flow) + "-IN-EPMAP", dst_ports=("rpc-epmap",), **base),
                Rule(name=base_name(flow) + "-IN-RPC", dst_ports=("rpc-dynamic",), **base)]
    return [Rule(name=base_name(flow) + "-IN", dst_ports=flow["dst_ports"], **base)]


def relay_reply(flow):
    return Rule(name=base_name(flow) + "-IN", flow_id=flow["id"], direction="in", protocol=flow["protocol"],
                src_addresses=flow["dst_addresses"], dst_addresses=(), src_ports=flow["dst_ports"],
                dst_ports=flow["src_ports"], description=flow["purpose"] + " (the server's replies)",
                source=flow["source"])


def host_outbound(flow):
    return Rule(name=base_name(flow) + "-OUT", flow_id=flow["id"], direction="out", protocol=flow["protocol"],
                src_addresses=(), dst_addresses=flow["dst_addresses"], src_ports=flow["src_ports"],
                dst_ports=_normal_perimeter_ports(flow), description=flow["purpose"],
                source=flow["source"], icmp_type=flow.get("icmp_type"))


def forward_rule(flow):
    return Rule(name=base_name(flow) + "-FWD", flow_id=flow["id"], direction="forward", protocol=flow["protocol"],
                src_addresses=flow["src_addresses"], dst_addresses=flow["dst_addresses"],
                src_ports=flow["src_ports"], dst_ports=_normal_perimeter_ports(flow),
                description=flow["purpose"], source=flow["source"], icmp_type=flow.get("icmp_type"))


def merge(rules, side):
    """Merge rules that differ only in the addresses of one side (exact: no pair is added)."""
    return [_rule(rule, rule.name, src, dst) for rule, src, dst in _merge(_items(rules), side)]


def _items(rules):
    return [(rule, rule.src_addresses, rule.dst_addresses) for rule in rules]


def _merge(items, side):
    """Merge (rule, src_addresses, dst_addresses) items whose rules differ only in the addresses of one side.

    A group's addresses are collected first and normalized once (linear in the rules); the first rule of each group
    gives the other fields.  Nothing else is built: the caller makes one rule (or dict) per merged item.
    """
    groups = OrderedDict()
    if side == "src":
        for rule, src, dst in items:
            key = (rule.name, rule.protocol, rule.src_ports, rule.dst_ports, rule.icmp_type, dst)
            group = groups.get(key)
            if group is None:
                groups[key] = (rule, list(src), dst)
            else:
                group[1].extend(src)
        return [(rule, normalize_addresses(src), dst) for rule, src, dst in groups.values()]
    for rule, src, dst in items:
        key = (rule.name, rule.protocol, rule.src_ports, rule.dst_ports, rule.icmp_type, src)
        group = groups.get(key)
        if group is None:
            groups[key] = (rule, src, list(dst))
        else:
            group[2].extend(dst)
    return [(rule, src, normalize_addresses(dst)) for rule, src, dst in groups.values()]


def replace(rule, **changes):
    data = rule.to_dict()
    data.update(changes)
    return Rule(**data)


def _rule(rule, name, src, dst):
    return Rule(name=name, flow_id=rule.flow_id, direction=rule.direction, action=rule.action, protocol=rule.protocol,
                src_addresses=src, dst_addresses=dst, src_ports=rule.src_ports, dst_ports=rule.dst_ports,
                description=rule.description, source=rule.source, icmp_type=rule.icmp_type)


def _named(rules, side):
    """Merged (name, rule, src_addresses, dst_addresses), every name unique and stable, sorted by name."""
    items = _items(rules)
    if side == "both":
        items = _merge(_merge(items, "dst"), "src")
    else:
        items = _merge(items, side)
    return _name(items)


def _name(items):
    """Merged items -> (name, rule, src_addresses, dst_addresses), every name unique and stable, sorted by name."""
    by_name = OrderedDict()
    for item in items:
        by_name.setdefault(item[0].name, []).append(item)
    out = []
    for name, group in by_name.items():
        if len(group) == 1:
            out.append((name,) + group[0])
            continue
        names = {}
        for item in group:
            port_tag = "_".join(str(p) for p in item[0].dst_ports) or "ANY"
            names.setdefault(name + "-" + port_tag, []).append(item)
        for sub, members in names.items():
            for rule, src, dst in members:
                if len(members) == 1:
                    out.append((sub, rule, src, dst))
                else:
                    key = (rule.direction, rule.action, rule.protocol, tuple(src), tuple(dst), rule.src_ports,
                           rule.dst_ports)
                    if rule.icmp_type is not None:
                        key += (rule.icmp_type,)
                    digest = hashlib.sha1(repr(key).encode("utf-8")).hexdigest()[:6]
                    out.append((sub + "-" + digest, rule, src, dst))
    out.sort(key=lambda item: item[0])
    return out


def finish(rules, side):
    """Merge address lists, then give every rule a unique, stable name."""
    return [_rule(rule, name, src, dst) for name, rule, src, dst in _named(rules, side)]


def finish_dicts(rules, side):
    """``[r.to_dict() for r in finish(rules, side)]``, building one dict per merged rule and no rule."""
    return [rule.to_dict(name, src, dst) for name, rule, src, dst in _named(rules, side)]


def forward_key(flow):
    """What forward_dicts groups a flow by: what a forward rule's first merge compares (all but the destination)."""
    return (base_name(flow), flow["protocol"], tuple(flow["src_ports"]), _normal_perimeter_ports(flow),
            flow.get("icmp_type"), tuple(flow["src_addresses"]))


def forward_dicts(flows, keys=None):
    """``finish_dicts([forward_rule(f) for f in flows], "both")``, building one rule per group of flows that merge.

    A perimeter device carries the flows of every host: most differ only in their destination addresses, so the
    flows are grouped by what a forward rule's first merge compares, and each group makes one rule.  ``keys``: each
    flow's forward_key(), where the caller has them; or keys that stand for them, equal where they are equal, the
    source addresses last (the planner's: a number standing for the rest of the key, and the source addresses).
    """
    groups = {}                 # ordered (as OrderedDict is, and a third cheaper): a device has a group per source
    for flow, key in zip(flows, map(forward_key, flows) if keys is None else keys):
        group = groups.get(key)
        if group is None:
            groups[key] = (flow, list(flow["dst_addresses"]))
        else:
            group[1].extend(flow["dst_addresses"])
    # the second merge (_merge(items, "src")), on the groups: a group's key holds what its rule's key would
    merged = {}
    normal = {}                 # destination addresses -> normalize_addresses() of them: most groups repeat a few
    for key, (flow, dst) in groups.items():
        dst = tuple(dst)
        normal_dst = normal.get(dst)
        if normal_dst is None:
            normal_dst = normal[dst] = normalize_addresses(dst)
        merged_key = key[:-1] + (normal_dst,)
        group = merged.get(merged_key)
        if group is None:
            merged[merged_key] = (flow, list(key[-1]), normal_dst)
        else:
            group[1].extend(key[-1])
    items = []
    for flow, src, dst in merged.values():
        items.append((forward_rule(flow), normalize_addresses(src), dst))
    return [rule.to_dict(name, src, dst) for name, rule, src, dst in _name(items)]


_EPMAP = ("rpc-epmap",)
_RPC = ("rpc-dynamic",)


def inbound_key(flow):
    """What inbound_dicts groups a flow's host_inbound rules by: ((merge key, index of the rule), ...), and whether
    its IPv4 sources take 0.0.0.0/32 too; None for a flow without a destination host (it has no inbound rule)."""
    if not flow["dst_host"]:
        return None
    name = base_name(flow)
    common = (flow["protocol"], tuple(flow["src_ports"]))
    icmp_type = flow.get("icmp_type")
    if flow["rpc_dynamic"]:
        parts = (((name + "-IN-EPMAP",) + common + (_EPMAP, icmp_type, ()), 0),
                 ((name + "-IN-RPC",) + common + (_RPC, icmp_type, ()), 1))
    else:
        parts = (((name + "-IN",) + common + (tuple(flow["dst_ports"]), icmp_type, ()), 0),)
    return parts, has_trait(flow["id"], "unaddressed_source")


def inbound_dicts(items, keys=None):
    """``finish_dicts(rules, "src")`` of a host's inbound rules, where each item is a flow (standing for its
    ``host_inbound`` rules) or a rule (a relay's reply rule): one rule is built per group of rules that merge.

    A server takes the same flow from every client: the flows are grouped by what the merge compares first.
    ``keys``: each flow's inbound_key() (anything for a rule), where the caller has them.
    """
    groups = {}                 # ordered, as OrderedDict is, and cheaper
    for item, key in zip(items, [None] * len(items) if keys is None else keys):
        if isinstance(item, Rule):
            parts = (((item.name, item.protocol, item.src_ports, item.dst_ports, item.icmp_type, item.dst_addresses),
                      None),)
            sources = item.src_addresses
        else:
            if keys is None:
                key = inbound_key(item)
            if key is None:
                continue
            parts, unaddressed = key
            sources = item["src_addresses"]
            if unaddressed and any(":" not in a for a in sources):
                # A DHCPDISCOVER leaves a client that has no address yet from 0.0.0.0 (as host_inbound adds it;
                # merged lists normalize alike)
                sources = list(sources) + ["0.0.0.0/32"]
        for group_key, index in parts:
            group = groups.get(group_key)
            if group is None:
                groups[group_key] = (item, index, list(sources))
            else:
                group[2].extend(sources)
    merged = []
    for source, index, addresses in groups.values():
        rule = source if index is None else host_inbound(source)[index]
        merged.append((rule, normalize_addresses(addresses), rule.dst_addresses))
    return [rule.to_dict(name, src, dst) for name, rule, src, dst in _name(merged)]
