# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aerleon export: the plan's perimeter rules as an Aerleon policy (pure Python, no Aerleon import).

Aerleon (https://github.com/aerleon/aerleon) generates ACLs for many platforms (Juniper, Palo Alto,
Arista, Cisco, GCP, nftables, ...) from one policy and one set of network / service definitions.
``export()`` returns the files of such a tree, as text, keyed by relative path::

    def/networks.yaml      one network token per address set (NAP_<label>)
    def/services.yaml      one service token per rule and port side (NAP_<rule>, NAP_<rule>_SRC)
    policies/pol/<device>.yaml one filter per device (aclgen reads pol/ directories), one accept term per forward rule
    README.txt             how to run aclgen on it

then ``aclgen --base_directory policies --definitions_directory def --output_directory out``
renders every target named in the headers.  The terms only accept: what the target does with
everything else is its default (an implicit deny on most), as with the Cisco backend.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
from collections import OrderedDict

try:
    import yaml     # the export runs on the controller, where ansible-core brings PyYAML
    HAS_YAML = True
except ImportError:     # pragma: no cover - module_utils must import anywhere
    HAS_YAML = False

from ansible_collections.configmgr.nap.plugins.module_utils.nap import names, plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import cisco
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, port_bounds

DEFAULT_FILTER = "CONFIGMGR-NAP"
DEFAULT_TARGETS = ("juniper", "cisco")
# header options per target (filter name first); "mixed" when a filter holds IPv6 rules
TARGET_OPTIONS = {
    "juniper": ("inet", "mixed"), "junipersrx": None, "cisco": ("extended", "mixed"), "ciscoasa": ("", ""),
    "ciscoxr": ("", "mixed"), "cisconx": ("extended", "mixed"), "arista": ("extended", "mixed"),
    "nftables": None, "speedway": ("INPUT ACCEPT", "INPUT ACCEPT"), "iptables": ("INPUT ACCEPT", "INPUT ACCEPT"),
}
PROTOCOLS = {"tcp": "tcp", "udp": "udp", "esp": "esp", "ah": "ah", "gre": "gre", "icmp": "icmp"}
# model.ICMP_TYPES -> Aerleon's icmp-type keyword
AERLEON_ICMP = {"echo-request": "echo-request"}
_TOKEN_RE = re.compile(r"[^A-Za-z0-9_-]")


def _token(text):
    return _TOKEN_RE.sub("_", text).upper()


def _plain(node):
    """OrderedDicts -> dicts (insertion order kept), so that yaml.safe_dump can write them."""
    if isinstance(node, dict):
        return dict((str(k), _plain(v)) for k, v in node.items())
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


def _dump(node):
    """YAML text of an export file: yaml.safe_dump quotes and escapes every value as YAML requires."""
    if not HAS_YAML:
        raise NapError("the Aerleon export needs PyYAML on the controller (pip install pyyaml)")
    return yaml.safe_dump(_plain(node), default_flow_style=False, sort_keys=False, allow_unicode=False, width=1000)


def _ports(ports):
    out = []
    for spec in ports:
        low, high = port_bounds(spec)
        out.append(str(low) if low == high else "%d-%d" % (low, high))
    return out


def _header_targets(targets, filter_name, mixed):
    if isinstance(targets, dict):
        return OrderedDict((names.check("acl", k, "targets: target name"),
                            names.check_text(v, "targets[%s]: header options" % k, longest=200)) for k, v in targets.items())
    out = OrderedDict()
    for target in targets or DEFAULT_TARGETS:
        target = names.check("acl", str(target).strip().lower(), "targets: target name")
        options = TARGET_OPTIONS.get(target, ("", ""))
        if options is None:     # targets whose header has no filter name (zones, tables)
            out[target] = ""
            continue
        option = options[1] if mixed else options[0]
        out[target] = ("%s %s" % (filter_name, option)).strip()
    return out


def export(plan, devices=None, targets=None, filter_name=DEFAULT_FILTER):
    """{relative path: text} of an Aerleon policy tree for the plan's perimeter devices."""
    plan = plandoc.load(plan, "plan")
    if not isinstance(plan, dict) or "perimeter" not in plan:
        raise NapError("expected a plan (the nap_plan result or flows.json) with a 'perimeter' section")
    names.check("acl", filter_name, "filter_name")
    perimeter = plan.get("perimeter") or {}
    if devices:
        unknown = [d for d in devices if d not in perimeter]
        if unknown:
            raise NapError("device(s) %s are not perimeter devices of the plan (perimeter devices: %s)"
                           % (", ".join(unknown), ", ".join(perimeter) or "none"))
    else:
        devices = list(perimeter)
    if not devices:
        raise NapError("the plan has no perimeter device (group nap_perimeter): nothing to export")
    networks = OrderedDict()
    services = OrderedDict()
    net_tokens = {}
    files = OrderedDict()
    for device in devices:
        names.check("host", device, "perimeter device name")
        entry = perimeter[device]
        cisco.check_device(plan, device, entry)
        rules = cisco.forward_rules(entry)
        labels = plandoc.address_labels(plan)

        def net(addresses):
            if not addresses:
                return None
            key = tuple(addresses)
            if key not in net_tokens:
                token = "NAP_" + _token(plandoc.address_set_label(addresses, labels))
                if token in networks and tuple(a["address"] for a in networks[token]["values"]) != key:
                    token = "NAP_" + _token(plandoc.address_set_label(addresses, {}))
                net_tokens[key] = token
                networks[token] = {"values": [OrderedDict([("address", a)]) for a in addresses]}
            return net_tokens[key]

        terms = []
        mixed = False
        for rule in rules:
            if any(":" in a for a in rule.src_addresses + rule.dst_addresses):
                mixed = True
            term = OrderedDict()
            term["name"] = rule.name.lower()
            term["comment"] = "%s (%s) %s" % (rule.name, rule.flow_id, rule.description)
            src, dst = net(rule.src_addresses), net(rule.dst_addresses)
            if src:
                term["source-address"] = src
            if dst:
                term["destination-address"] = dst
            term["protocol"] = PROTOCOLS[rule.protocol]
            if rule.icmp_type:
                term["icmp-type"] = AERLEON_ICMP[rule.icmp_type]      # Aerleon's name, valid for icmp and icmpv6
            for side, ports, suffix in (("source-port", rule.src_ports, "_SRC"), ("destination-port", rule.dst_ports, "")):
                if not ports:
                    continue
                token = "NAP_" + _token(rule.name) + suffix
                values = [OrderedDict([("port", p), ("protocol", rule.protocol)]) for p in _ports(ports)]
                if token in services and services[token] != values:
                    token += "_" + hashlib.sha1(repr(values).encode("utf-8")).hexdigest()[:6].upper()
                services[token] = values
                term[side] = token
            term["action"] = "accept"
            terms.append(term)
        if not terms:
            continue
        policy = OrderedDict()
        policy["filters"] = [OrderedDict([
            ("header", OrderedDict([
                ("comment", "configmgr.nap: NAP forward rules of perimeter device %s (generated, do not edit)" % device),
                ("targets", _header_targets(targets, filter_name, mixed)),
            ])),
            ("terms", terms),
        ])]
        files["policies/pol/%s.yaml" % device] = _dump(policy)
    files["def/networks.yaml"] = _dump({"networks": networks})
    files["def/services.yaml"] = _dump({"services": services})
    files["README.txt"] = (
        "Aerleon policy exported by configmgr.nap from the NAP plan (generated, do not edit).\n"
        "Generate the ACLs of every target named in the policy headers with:\n"
        "  aclgen --base_directory policies --definitions_directory def --output_directory out\n"
        "Devices: %s\n" % ", ".join(devices))
    return files


__all__ = ["export", "DEFAULT_FILTER", "DEFAULT_TARGETS"]
