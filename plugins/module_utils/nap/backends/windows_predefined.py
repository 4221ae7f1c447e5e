# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Firewall backend: Windows predefined rule groups (issue #17) (pure Python).

Which predefined groups cover the host's planned inbound flows (:func:`predefined_groups`,
:func:`predefined_scope`), which of their enabled rules admit more than the plan (:func:`wider_predefined`),
and the owned marker rule that records what ``predefined: disable`` turned off (:func:`marker_fw`,
:func:`marker_disabled`).  The ops that disable and re-enable them live in windows_changes.py.

* INetFwRule::Grouping of a predefined rule is its resource string (``@FirewallAPI.dll,-28502``), the same on
  every language of Windows (INetFwRule::get_Grouping,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-get_grouping).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.windows import (
    ACTION_ALLOW, DIR_IN, KEYWORD_READ, PROFILES_ALL, PROTOCOL_ANY, PROTOCOL_NAMES, _subtract, address_networks,
    icmp_protocol, win_name,
)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import PORT_KEYWORDS, PROTOCOL_NUMBERS


# ---------------------------------------------------------------------------
# Windows predefined rule groups (issue #17): the wider predefined rules beside the owned ones
# ---------------------------------------------------------------------------
# Installing a role enables its predefined inbound rules from any address: "NPS and Firewalls" / Configure Firewalls
# for RADIUS Traffic (https://learn.microsoft.com/en-us/windows-server/networking/technologies/nps/nps-firewalls-configure)
# says the NPS exceptions are configured automatically during installation; the same holds for DHCP Server, Routing
# and Remote Access and IIS (docs/windows.md, assumptions).  The read returns the inbound rules of the groups the
# catalogue names for the host's planned flows (by resource string, else by rule name); the controller decides which
# of the enabled ones admit more than the plan.
PREDEFINED_MODES = ("ignore", "report", "disable")
# The groups that serve the whole domain on a domain controller: predefined: disable is refused for them.
DOMAIN_GROUPS = (catalogue.GROUP_ADDS, catalogue.GROUP_DNS, catalogue.GROUP_KDC)
MARKER_NAME = "predefined-disabled"     # model name of the owned marker rule (disabled) that records what was disabled
MARKER_TEXT = "configmgr.nap disabled these predefined rules; state: absent re-enables them: "


def predefined_groups(rules, plan=None, host=None):
    """[{name, resource, rules}] of the predefined groups that cover the host's planned inbound flows: the plan's
    ``windows_group`` of every flow whose destination is the host, else the catalogue's groups of each inbound rule's
    flow (every choice of a GroupChoice)."""
    found = []
    if plan is not None:
        for flow in plan.get("flows") or []:
            if host and flow.get("dst_host") == host:
                found.extend(flow.get("windows_group") or [])
    else:
        for rule in rules:
            flow = catalogue.FLOWS_BY_ID.get(rule.flow_id) or catalogue.VIA_BY_ID.get(rule.flow_id)
            if rule.direction == "in" and flow is not None:
                found.extend(catalogue.group_data(flow.groups()))
    merged = OrderedDict()
    for group in found:
        key = (group.get("name"), group.get("resource"))
        entry = merged.setdefault(key, {"name": group.get("name"), "resource": group.get("resource"), "rules": []})
        entry["rules"].extend(r for r in group.get("rules") or [] if r not in entry["rules"])
    return list(merged.values())


def predefined_scope(groups):
    """(resource strings, rule names) the read script matches: a group by its resource string, its listed rules by
    Name (the only way for the groups without a known resource string: NPS, IIS)."""
    resources, rule_names = [], []
    for group in groups:
        if group.get("resource") and group["resource"] not in resources:
            resources.append(group["resource"])
        rule_names.extend(r for r in group.get("rules") or [] if r not in rule_names)
    return resources, rule_names


def _group_of(fw, groups):
    """The catalogue group (dict) a predefined rule belongs to: by resource string, else by a listed rule name."""
    grouping = str(fw.get("Grouping") or "").lower()
    name = str(fw.get("Name") or "")
    for group in groups:
        if group.get("resource") and group["resource"].lower() == grouping:
            return group
    for group in groups:
        if name in (group.get("rules") or []):
            return group
    return None


def _port_items(text):
    """LocalPorts items of a predefined rule (None for any)."""
    if text is None or str(text).strip() in ("", "*"):
        return None
    out = []
    for item in str(text).split(","):
        low = item.strip().lower()
        if low:
            out.append(KEYWORD_READ.get(low, low))
    return out


def _item_range(item):
    if item in PORT_KEYWORDS:
        return None
    low, _dash, high = str(item).partition("-")
    return int(low), int(high or low)


def _item_against(item, planned_ports, fits):
    """An RPC keyword matches itself; a port or range is tested with ``fits(low, high, plow, phigh)`` against each
    numeric planned port or range."""
    if item in PORT_KEYWORDS:
        return item in planned_ports
    low, high = _item_range(item)
    return any(fits(low, high, *_item_range(str(port))) for port in planned_ports if port not in PORT_KEYWORDS)


def _item_covered(item, planned_ports):
    """Whether one port item (a port, a range or an RPC keyword) lies within the planned ports."""
    return _item_against(item, planned_ports, lambda low, high, plow, phigh: plow <= low and high <= phigh)


def _item_overlaps(item, planned_ports):
    return _item_against(item, planned_ports, lambda low, high, plow, phigh: plow <= high and low <= phigh)


def _planned_protocol(rule):
    if rule.protocol == "icmp":
        return icmp_protocol(rule)
    return PROTOCOL_NUMBERS[rule.protocol]


def _covered_networks(nets, allowed):
    remaining = list(nets)
    for net in allowed:
        remaining = _subtract(remaining, net)
    return not remaining


def wider_predefined(doc, want, groups):
    """The enabled predefined inbound allow rules of the read (``predefined_rules``) that admit more than the plan.

    A rule counts when the catalogue lists it by name for a planned flow, or when it overlaps a planned inbound port
    of its protocol (matched by its group's resource string); it is wider when it admits a port the plan does not open
    (or every port), or remote addresses beyond the planned sources of those ports (Any where the plan has sources).
    Returns [{name, grouping, group, resource, protocol, local_ports, remote_addresses, why}].
    """
    inbound = [r for r in want if r.direction == "in"]
    out = []
    for fw in doc.get("predefined_rules") or []:
        if not fw.get("Enabled") or int(fw.get("Direction") or 0) != DIR_IN or fw.get("Action") != ACTION_ALLOW:
            continue
        group = _group_of(fw, groups)
        if group is None:
            continue
        try:
            protocol = int(fw.get("Protocol"))
        except (TypeError, ValueError):
            continue
        listed = str(fw.get("Name") or "") in (group.get("rules") or [])
        same = [r for r in inbound if protocol == PROTOCOL_ANY or _planned_protocol(r) == protocol]
        why = []
        relevant = same
        if protocol in (6, 17):
            items = _port_items(fw.get("LocalPorts"))
            planned_ports = [p for r in same for p in (r.dst_ports or ())]
            any_port = [r for r in same if not r.dst_ports]
            if items is None:
                if not any_port:
                    why.append("every %s port" % PROTOCOL_NAMES[protocol].upper())
            else:
                if not any_port:
                    extra = [i for i in items if not _item_covered(i, planned_ports)]
                    if extra:
                        why.append("%s %s that the plan does not open" % (
                            PROTOCOL_NAMES[protocol].upper(), ",".join(str(i) for i in extra)))
                    relevant = [r for r in same if not r.dst_ports or any(
                        _item_overlaps(i, list(r.dst_ports)) for i in items)]
                if not listed and not relevant:
                    continue            # a rule of the group on ports no planned flow uses
        elif protocol == PROTOCOL_ANY:
            why.append("every protocol")
        elif not same and not listed:
            continue
        if not relevant and not why:
            why.append("%s that the plan does not open" % PROTOCOL_NAMES.get(protocol, "protocol %s" % protocol))
        nets, unknown = address_networks(fw.get("RemoteAddresses"))
        sources = []
        any_source = any(not r.src_addresses for r in relevant)
        for rule in relevant:
            sources.extend(ipaddress.ip_network(a, strict=False) for a in rule.src_addresses)
        if relevant and not any_source and (unknown or not _covered_networks(nets, sources)):
            remote = str(fw.get("RemoteAddresses") or "*")
            what = "remote address Any" if remote.strip() in ("", "*") else "remote addresses %s" % remote
            why.append("%s where the plan admits %s" % (what, ", ".join(sorted(set(str(s) for s in sources)))))
        if why:
            out.append(OrderedDict((
                ("name", str(fw.get("Name") or "")), ("grouping", str(fw.get("Grouping") or "")),
                ("group", group.get("name")), ("resource", group.get("resource")),
                ("protocol", PROTOCOL_NAMES.get(protocol, str(protocol))),
                ("local_ports", str(fw.get("LocalPorts") or "*")),
                ("remote_addresses", str(fw.get("RemoteAddresses") or "*")), ("why", "; ".join(why)))))
    return out


def domain_group_of(entry):
    """The English name of the domain-wide group (AD DS, DNS, Kerberos KDC) a wider predefined rule belongs to, or
    None."""
    for name, resource in DOMAIN_GROUPS:
        if (resource and entry.get("grouping", "").lower() == resource.lower()) or entry.get("group") == name:
            return name
    return None


def marker_name(prefix):
    return win_name(MARKER_NAME, prefix)


def marker_fw(group, prefix, disabled):
    """The owned marker rule: disabled, admitting nothing that matters (UDP 9 from 127.0.0.1), its Description the
    predefined rules the module disabled as JSON [[Name, Grouping], ...] ('|' is refused there, JSON has none)."""
    fw = OrderedDict()
    fw["Name"] = marker_name(prefix)
    fw["Description"] = MARKER_TEXT + json.dumps([list(x) for x in disabled], separators=(",", ":"))
    fw["Grouping"] = group
    fw["Direction"] = DIR_IN
    fw["Action"] = ACTION_ALLOW
    fw["Protocol"] = 17
    fw["LocalPorts"] = "9"
    fw["RemotePorts"] = None
    fw["LocalAddresses"] = "*"
    fw["RemoteAddresses"] = "127.0.0.1/32"
    fw["Profiles"] = PROFILES_ALL
    fw["Enabled"] = False
    return fw


def marker_disabled(fw):
    """[[Name, Grouping]] recorded in a marker rule ([] when it cannot be read)."""
    text = str((fw or {}).get("Description") or "")
    if not text.startswith(MARKER_TEXT):
        return []
    try:
        data = json.loads(text[len(MARKER_TEXT):])
    except ValueError:
        return []
    return [[str(x[0]), str(x[1])] for x in data if isinstance(x, list) and len(x) == 2]
