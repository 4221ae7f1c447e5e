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


def host_inbound(flow):
    if not flow["dst_host"]:
        return []
    sources = flow["src_addresses"]
    if catalogue.has_trait(flow["id"], "unaddressed_source") and any(":" not in a for a in sources):
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
                dst_ports=normalize_ports(perimeter_ports(flow)), description=flow["purpose"],
                source=flow["source"], icmp_type=flow.get("icmp_type"))


def forward_rule(flow):
    return Rule(name=base_name(flow) + "-FWD", flow_id=flow["id"], direction="forward", protocol=flow["protocol"],
                src_addresses=flow["src_addresses"], dst_addresses=flow["dst_addresses"],
                src_ports=flow["src_ports"], dst_ports=normalize_ports(perimeter_ports(flow)),
                description=flow["purpose"], source=flow["source"], icmp_type=flow.get("icmp_type"))


def merge(rules, side):
    """Merge rules that differ only in the addresses of one side (exact: no pair is added).

    The addresses of each group are collected first and normalized once (linear in the rules).
    """
    groups = OrderedDict()
    for rule in rules:
        if side == "src":
            key = (rule.name, rule.protocol, rule.src_ports, rule.dst_ports, rule.icmp_type, rule.dst_addresses)
            addresses = rule.src_addresses
        else:
            key = (rule.name, rule.protocol, rule.src_ports, rule.dst_ports, rule.icmp_type, rule.src_addresses)
            addresses = rule.dst_addresses
        if key in groups:
            groups[key][1].extend(addresses)
        else:
            groups[key] = (rule, list(addresses))
    out = []
    for first, addresses in groups.values():
        if side == "src":
            out.append(replace(first, src_addresses=normalize_addresses(addresses)))
        else:
            out.append(replace(first, dst_addresses=normalize_addresses(addresses)))
    return out


def replace(rule, **changes):
    data = rule.to_dict()
    data.update(changes)
    return Rule(**data)


def finish(rules, side):
    """Merge address lists, then give every rule a unique, stable name."""
    if side == "both":
        rules = merge(merge(rules, "dst"), "src")
    else:
        rules = merge(rules, side)
    by_name = OrderedDict()
    for rule in rules:
        by_name.setdefault(rule.name, []).append(rule)
    out = []
    for name, group in by_name.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        names = {}
        for rule in group:
            port_tag = "_".join(str(p) for p in rule.dst_ports) or "ANY"
            names.setdefault(name + "-" + port_tag, []).append(rule)
        for sub, members in names.items():
            for rule in members:
                if len(members) == 1:
                    out.append(replace(rule, name=sub))
                else:
                    digest = hashlib.sha1(repr(rule.key()).encode("utf-8")).hexdigest()[:6]
                    out.append(replace(rule, name=sub + "-" + digest))
    out.sort(key=lambda r: r.name)
    return out
