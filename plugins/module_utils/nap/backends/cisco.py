# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cisco ASA / IOS backend: plan rules <-> resource-module configuration (pure Python).

Nothing here talks to a device.  The functions build the ``config`` argument of the
resource modules of the (optional) vendor collections and read their ``parsed`` /
``gathered`` output back into canonical :class:`Rule` objects:

ASA (``cisco.asa``)
  * ``asa_ogs_config()``: one *network* object group per distinct address set
    (``<prefix>NET-<label>``, the label is the host or zone the set is, else a digest) and one
    *service* object group per rule (``<prefix>SVC-<rule name>``) holding
    ``service-object <proto> [source ...] [destination ...]`` entries, ESP/AH/GRE as a bare
    ``service-object esp``.  The service group's description carries ``<rule name> (<flow id>)
    <description>``: it is how a rule is parsed back, since ``asa_acls`` renders remarks only
    with line numbers (which the running config does not show back).
  * ``asa_acls_config()``: one extended ACL the collection owns (default ``CONFIGMGR-NAP``),
    one ACE per rule: ``permit object-group <svc> <src> <dst>``.
  * ``asa_block_commands()``: the alternative binding, our entries as a remark-delimited block
    inside an ACL the user names and binds; returns the ``asa_config`` lines that rewrite the
    block and nothing else.
  * ``asa_stale_ogs()``: owned object groups (by prefix) that the wanted config no longer uses,
    for ``state: deleted`` after the ACL was replaced.
  * ``asa_changes()``: all of the above decided for one run of the perimeter role (filter to_asa_changes).

IOS (``cisco.ios``)
  * ``ios_acls_config()``: one extended named ACL (plus an IPv6 ACL of the same name when
    IPv6 rules exist).  IOS ACLs are stateless, so every forward entry gets its return entry:
    TCP replies with ``established``, UDP and ESP/AH/GRE/ICMP with the mirrored entry (RADIUS
    1812/1813, DHCP relay 67<->67, IKE 500/4500 replies).  Because the ACL is bound inbound on
    interfaces it also sees traffic *to* the router: the device's own inbound rules from the plan
    (management SSH, DHCP requests to the relay) and the replies to flows the device itself
    starts (DHCP relay to the server) are added.  cisco.ios has no object-group resource
    module, so entries list addresses (one ACE per source x destination x port).
  * ``ios_acl_interfaces_config()``: the binding, merged with what the interfaces already bind.

Ports come back from a device as names or numbers, and the names are the vendor's, not
IANA's: on ASA ``radius`` is 1645, ``radius-acct`` 1646, ``kerberos`` 750 and ``cifs`` 3020
(so RADIUS 1812/1813, Kerberos 88 and SMB 445 stay numbers).  ``port_number()`` normalises with
the tables below; rendering writes the spelling the device shows (``port_spelling()``: ``www``,
``bootps``, ``isakmp``, ... else the number), because the resource modules compare strings and
would otherwise rewrite every named port on each run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue, names, plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import (
    PORT_KEYWORDS, PORT_PROTOCOLS, NapError, Rule, normalize_addresses, normalize_ports, parse_network,
    port_bounds,
)

DEFAULT_ACL_NAME = "CONFIGMGR-NAP"
PLATFORMS = ("cisco_asa", "cisco_ios")
KNOWN_PLATFORMS = ("nftables", "cisco_asa", "cisco_ios", "other")
NAME_MAX = 64            # ASA object-group and ACL names
DESCRIPTION_MAX = 200    # ASA object-group description
REMARK_MAX = 100         # IOS / ASA remark text
BLOCK_BEGIN = "configmgr.nap BEGIN %s (managed block, do not edit)"
BLOCK_END = "configmgr.nap END %s"

# ---------------------------------------------------------------------------
# Port names.  ASA: "Cisco Secure Firewall ASA Series General Operations CLI Configuration Guide",
# TCP and UDP ports table.  IOS: the "eq" keywords of "ip access-list extended" (15.x / IOS XE).
# Both show these names in the running configuration whatever number was typed.
# ---------------------------------------------------------------------------
_ASA_BOTH = {
    "cifs": 3020, "discard": 9, "domain": 53, "echo": 7, "http": 80, "kerberos": 750, "nfs": 2049,
    "pim-auto-rp": 496, "sip": 5060, "sunrpc": 111, "tacacs": 49, "talk": 517, "www": 80,
}
ASA_PORTS = {
    "tcp": dict(_ASA_BOTH, **{
        "aol": 5190, "bgp": 179, "chargen": 19, "citrix-ica": 1494, "cmd": 514, "ctiqbe": 2748,
        "daytime": 13, "exec": 512, "finger": 79, "ftp": 21, "ftp-data": 20, "gopher": 70, "h323": 1720,
        "hostname": 101, "https": 443, "ident": 113, "imap4": 143, "irc": 194, "klogin": 543,
        "kshell": 544, "ldap": 389, "ldaps": 636, "login": 513, "lotusnotes": 1352, "lpd": 515,
        "netbios-ssn": 139, "nntp": 119, "pcanywhere-data": 5631, "pop2": 109, "pop3": 110,
        "pptp": 1723, "rsh": 514, "rtsp": 554, "smtp": 25, "sqlnet": 1521, "ssh": 22, "telnet": 23,
        "uucp": 540, "whois": 43,
    }),
    "udp": dict(_ASA_BOTH, **{
        "biff": 512, "bootpc": 68, "bootps": 67, "dnsix": 195, "isakmp": 500, "mobile-ip": 434,
        "nameserver": 42, "netbios-dgm": 138, "netbios-ns": 137, "ntp": 123, "pcanywhere-status": 5632,
        "radius": 1645, "radius-acct": 1646, "rip": 520, "secureid-udp": 5510, "snmp": 161,
        "snmptrap": 162, "syslog": 514, "tftp": 69, "time": 37, "vxlan": 4789, "who": 513, "xdmcp": 177,
    }),
}
_IOS_BOTH = {"discard": 9, "domain": 53, "echo": 7, "pim-auto-rp": 496, "sunrpc": 111, "tacacs": 49,
             "talk": 517, "time": 37}
IOS_PORTS = {
    "tcp": dict(_IOS_BOTH, **{
        "bgp": 179, "chargen": 19, "cmd": 514, "daytime": 13, "drip": 3949, "exec": 512, "finger": 79,
        "ftp": 21, "ftp-data": 20, "gopher": 70, "hostname": 101, "ident": 113, "irc": 194,
        "klogin": 543, "kshell": 544, "login": 513, "lpd": 515, "msrpc": 135, "nntp": 119,
        "onep-plain": 15001, "onep-tls": 15002, "pop2": 109, "pop3": 110, "smtp": 25, "telnet": 23,
        "uucp": 540, "whois": 43, "www": 80,
    }),
    "udp": dict(_IOS_BOTH, **{
        "biff": 512, "bootpc": 68, "bootps": 67, "dnsix": 195, "isakmp": 500, "mobile-ip": 434,
        "nameserver": 42, "netbios-dgm": 138, "netbios-ns": 137, "netbios-ss": 139,
        "non500-isakmp": 4500, "ntp": 123, "rip": 520, "ripv6": 521, "snmp": 161, "snmptrap": 162,
        "syslog": 514, "tftp": 69, "who": 513, "xdmcp": 177,
    }),
}
PORT_TABLES = {"cisco_asa": ASA_PORTS, "cisco_ios": IOS_PORTS}
# Numbers with two names: the one the device shows.  (tcp 514 is both cmd and rsh: left a number.)
_PREFERRED = {80: "www"}


def _display_table(table):
    out = {}
    for proto, names in table.items():
        by_number = {}
        for name, number in names.items():
            by_number.setdefault(number, []).append(name)
        out[proto] = dict((n, _PREFERRED.get(n, names_[0])) for n, names_ in by_number.items()
                          if len(names_) == 1 or n in _PREFERRED)
    return out


# number -> the name the running configuration shows.  Rendering uses these spellings, so that the
# resource modules (which compare strings) see no difference between what we want and what the
# device shows back: `replaced` stays idempotent.
DISPLAY_TABLES = {"cisco_asa": _display_table(ASA_PORTS), "cisco_ios": _display_table(IOS_PORTS)}


def port_spelling(number, protocol, platform="cisco_asa"):
    """The spelling of a port in the device's running config: its name if it has one, else the number.

    >>> port_spelling(1645, "udp")
    'radius'
    >>> port_spelling(1812, "udp")
    '1812'
    """
    return DISPLAY_TABLES.get(platform, {}).get(protocol, {}).get(int(number), str(int(number)))


ASA_PROTOCOLS = {"tcp": "tcp", "udp": "udp", "esp": "esp", "ah": "ah", "gre": "gre", "icmp": "icmp"}
IOS_PROTOCOLS = {"tcp": "tcp", "udp": "udp", "esp": "esp", "ah": "ahp", "gre": "gre", "icmp": "icmp"}
_PROTO_NUMBERS_BACK = {"6": "tcp", "17": "udp", "50": "esp", "51": "ah", "47": "gre", "1": "icmp"}


def port_number(value, protocol, platform="cisco_asa"):
    """A port as the device shows it (number or the vendor's name) -> int.

    >>> port_number("radius", "udp")
    1645
    >>> port_number("1812", "udp")
    1812
    """
    text = str(value).strip().lower()
    if re.fullmatch(r"[0-9]+", text):
        number = int(text)
        if 1 <= number <= 65535:
            return number
        raise NapError("%s: port %s is outside 1-65535" % (platform, value))
    table = PORT_TABLES.get(platform, {})
    protocols = [protocol] if protocol in ("tcp", "udp") else ["tcp", "udp"]
    for proto in protocols:
        if text in table.get(proto, {}):
            return table[proto][text]
    raise NapError("%s: unknown %s port name %r (known: %s)" % (
        platform, "/".join(protocols), value, ", ".join(sorted(set().union(*[table.get(p, {}) for p in protocols])))))


def _protocol_back(text):
    text = str(text or "").strip().lower()
    if text in _PROTO_NUMBERS_BACK:
        return _PROTO_NUMBERS_BACK[text]
    if text == "ahp":
        return "ah"
    return text


# ---------------------------------------------------------------------------
# Input: plan, nap_plan result, perimeter entry or rule list
# ---------------------------------------------------------------------------
def _plan_doc(data):
    """A plan in any accepted form (handle, plan, nap_plan result); a perimeter entry or rule list as given."""
    if isinstance(data, str) or (isinstance(data, dict) and ("plan" in data or plandoc.PLAN_FILE_KEY in data)):
        return plandoc.load(data)
    return data


def device_entry(data, device=None, platform=None):
    """(perimeter entry, plan or None) for ``device``; fails closed on what a backend cannot render.

    ``data`` is a plan (flows.json), a registered nap_plan result, one perimeter entry (a mapping
    with ``forward``) or a list of rule dicts (then ``platform`` is taken as given).
    """
    data = _plan_doc(data)
    if isinstance(data, (list, tuple)):
        return {"platform": platform, "forward": list(data), "zones": [], "zone_networks": {},
                "addresses": []}, None
    if not isinstance(data, dict):
        raise NapError("expected a plan (the nap_plan result or flows.json), a perimeter entry or a list of "
                       "rules, got %s" % type(data).__name__)
    if "perimeter" in data:
        perimeter = data.get("perimeter") or {}
        if not device:
            raise NapError("a plan holds %d perimeter device(s) (%s): name the device, e.g. "
                           "plan | configmgr.nap.to_asa_acls('fw01')" % (len(perimeter), ", ".join(perimeter) or "none"))
        if device not in perimeter:
            raise NapError("device %s is not a perimeter device of the plan (perimeter devices: %s); add it to "
                           "group nap_perimeter" % (device, ", ".join(perimeter) or "none"))
        entry = perimeter[device]
        check_device(data, device, entry, platform)
        return entry, data
    if "forward" in data:
        entry = data
        check_device(None, device or "device", entry, platform)
        return entry, None
    raise NapError("expected a plan (keys format_version, perimeter, ...) or a perimeter entry (key forward); "
                   "got keys %s" % ", ".join(sorted(map(str, data))))


def check_device(plan, device, entry, platform=None):
    """Fail with one clear message before any command: unknown platform, wrong platform, bad zones."""
    have = entry.get("platform")
    if have not in KNOWN_PLATFORMS:
        raise NapError("perimeter device %s: nap_perimeter_platform is %r; expected one of %s"
                       % (device, have, ", ".join(KNOWN_PLATFORMS)))
    if platform and have != platform:
        raise NapError("perimeter device %s: nap_perimeter_platform is %s, so it cannot take %s configuration "
                       "(use the %s backend)" % (device, have, platform, have))
    if plan is None:
        return
    zones_var = (plan.get("settings") or {}).get("nap_zones") or {}
    zones = entry.get("zones") or []
    unknown = [z for z in zones if z not in zones_var]
    if unknown:
        raise NapError("perimeter device %s: zones %s are not in nap_zones (known zones: %s)"
                       % (device, ", ".join(map(str, unknown)), ", ".join(sorted(zones_var)) or "none"))
    for zone, nets in (entry.get("zone_networks") or {}).items():
        if zone not in zones:
            raise NapError("perimeter device %s: zone_networks names zone %s, which the device does not join "
                           "(nap_perimeter_zones: %s)" % (device, zone, ", ".join(zones)))
        if sorted(normalize_addresses(nets, collapse=False)) != sorted(normalize_addresses(zones_var[zone], collapse=False)):
            raise NapError("perimeter device %s: zone %s has networks %s in the device entry but %s in nap_zones; "
                           "plan again" % (device, zone, ", ".join(nets), ", ".join(zones_var[zone])))


def forward_rules(entry):
    rules = []
    for i, data in enumerate(entry.get("forward") or []):
        rule = data if isinstance(data, Rule) else Rule.from_dict(data, "forward rule %d" % (i + 1))
        if rule.direction != "forward":
            raise NapError("rule %s: direction %s; a perimeter device takes forward rules" % (rule.name, rule.direction))
        keywords = [p for p in rule.dst_ports if p in PORT_KEYWORDS]
        if keywords:
            raise NapError("rule %s: port keyword %s on a perimeter rule; the plan gives perimeter rules the "
                           "dynamic RPC range (nap_rpc_dynamic_range) instead" % (rule.name, keywords[0]))
        if len("FWD %s (%s)" % (rule.name, rule.flow_id)) > REMARK_MAX:
            raise NapError("rule %s: 'FWD <name> (<flow id>)' is longer than the %d characters of a Cisco remark, "
                           "which is how the rule is read back; use a shorter name or flow id" % (rule.name, REMARK_MAX))
        if rule.description[-1:] in ("'", '"'):
            raise NapError("rule %s: the description ends with a quote, which the Cisco parsers strip from a remark; "
                           "reword it" % rule.name)
        rules.append(rule)
    rule_names = [r.name for r in rules]
    dupes = sorted(set(n for n in rule_names if rule_names.count(n) > 1))
    if dupes:
        raise NapError("duplicate rule name(s) %s" % ", ".join(dupes))
    return rules


def _check_name(name, what):
    names.check("acl", name, what)
    if len(name) > NAME_MAX:
        raise NapError("%s %r: use 1-%d characters from A-Z a-z 0-9 _ . - (e.g. CONFIGMGR-NAP)" % (what, name, NAME_MAX))


def _bounded(name, limit=NAME_MAX):
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8].upper()
    return name[:limit - 9] + "-" + digest


def _description(rule, limit):
    text = "%s (%s) %s" % (rule.name, rule.flow_id, rule.description)
    return text.strip()[:limit]


_DESC_RE = re.compile(r"^(?P<name>\S+) \((?P<flow>[^)]*)\)(?: (?P<text>.*))?$")


def _parse_description(text):
    match = _DESC_RE.match(str(text or "").strip())
    if not match:
        return None, None, ""
    return match.group("name"), match.group("flow"), match.group("text") or ""


# ---------------------------------------------------------------------------
# ASA
# ---------------------------------------------------------------------------
def _asa_network_object(addresses):
    obj = OrderedDict()
    hosts, nets, v6 = [], [], []
    for text in addresses:
        net = parse_network(text)
        if net.version == 6:
            v6.append(str(net))
        elif net.prefixlen == 32:
            hosts.append(str(net.network_address))
        else:
            nets.append("%s %s" % (net.network_address, net.netmask))
    if hosts:
        obj["host"] = hosts
    if nets:
        obj["address"] = nets
    if v6:
        obj["ipv6_address"] = v6
    return obj


def _port_dict(spec, protocol, platform="cisco_asa"):
    low, high = port_bounds(spec)
    if low == high:
        return {"eq": port_spelling(low, protocol, platform)}
    return {"range": {"start": port_spelling(low, protocol, platform), "end": port_spelling(high, protocol, platform)}}


class AsaNames:
    """The owned names on one ASA: ACL, network and service object groups."""

    def __init__(self, acl_name=DEFAULT_ACL_NAME, prefix=None):
        _check_name(acl_name, "ACL name")
        self.acl = acl_name
        self.prefix = prefix if prefix is not None else acl_name + "-"
        _check_name(self.prefix + "X", "object-group prefix")

    def net(self, label):
        return _bounded(self.prefix + "NET-" + label)

    def svc(self, rule_name):
        return _bounded(self.prefix + "SVC-" + rule_name)


def asa_model(data, device=None, acl_name=DEFAULT_ACL_NAME, prefix=None):
    """(rules, ogs config, acls config) for one ASA."""
    entry, plan = device_entry(data, device, "cisco_asa")
    rules = forward_rules(entry)
    names = AsaNames(acl_name, prefix)
    labels = plandoc.address_labels(plan)
    networks = OrderedDict()   # addresses tuple -> group name
    used = {}

    def net_group(addresses):
        if not addresses:
            return None
        key = tuple(addresses)
        if key not in networks:
            name = names.net(plandoc.address_set_label(addresses, labels))
            if name in used and used[name] != key:
                name = names.net(plandoc.address_set_label(addresses, {}))
            used[name] = key
            networks[key] = name
        return networks[key]

    services = []
    icmp_groups = []
    aces = []
    for rule in rules:
        svc_name = names.svc(rule.name)
        svc = OrderedDict()
        svc["name"] = svc_name
        svc["description"] = _description(rule, DESCRIPTION_MAX)
        entries = []
        proto = ASA_PROTOCOLS[rule.protocol]
        if rule.protocol in PORT_PROTOCOLS and (rule.src_ports or rule.dst_ports):
            for sport in rule.src_ports or (None,):
                for dport in rule.dst_ports or (None,):
                    item = OrderedDict([("protocol", proto)])
                    if sport is not None:
                        item["source_port"] = _port_dict(sport, rule.protocol)
                    if dport is not None:
                        item["destination_port"] = _port_dict(dport, rule.protocol)
                    entries.append(item)
        else:
            entries.append(OrderedDict([("protocol", proto)]))
        ace = OrderedDict()
        ace["grant"] = "permit"
        ace["protocol"] = "object-group " + svc_name
        if rule.icmp_type:
            # an icmp-type object group (named and described as a service group would be) at the end of an icmp ACE:
            # access-list ACL extended permit icmp SRC DST object-group NAME (ICMP of IPv4 only, as before)
            icmp_groups.append(OrderedDict([("name", svc_name), ("description", svc["description"]),
                                            ("icmp_type", {"icmp_object": [CISCO_ICMP[rule.icmp_type][0]]})]))
            ace["protocol"] = "icmp"
        else:
            svc["services_object"] = entries
            services.append(svc)
        src = net_group(rule.src_addresses)
        dst = net_group(rule.dst_addresses)
        ace["source"] = {"object_group": src} if src else {"any": True}
        ace["destination"] = {"object_group": dst} if dst else {"any": True}
        if rule.icmp_type:
            ace["destination"]["service_object_group"] = svc_name
        aces.append(ace)
    groups = []
    for addresses, name in networks.items():
        group = OrderedDict()
        group["name"] = name
        group["description"] = ("configmgr.nap " + ", ".join(addresses))[:DESCRIPTION_MAX]
        group["network_object"] = _asa_network_object(addresses)
        groups.append(group)
    ogs = []
    if groups:
        ogs.append(OrderedDict([("object_type", "network"), ("object_groups", groups)]))
    if services:
        ogs.append(OrderedDict([("object_type", "service"), ("object_groups", services)]))
    if icmp_groups:
        ogs.append(OrderedDict([("object_type", "icmp-type"), ("object_groups", icmp_groups)]))
    acl = OrderedDict([("name", names.acl), ("acl_type", "extended"), ("aces", aces)])
    return rules, ogs, {"acls": [acl]} if aces else {"acls": []}


def asa_ogs_config(data, device=None, acl_name=DEFAULT_ACL_NAME, prefix=None):
    """``config`` for cisco.asa.asa_ogs (state replaced): the owned object groups."""
    return asa_model(data, device, acl_name, prefix)[1]


def asa_acls_config(data, device=None, acl_name=DEFAULT_ACL_NAME, prefix=None):
    """``config`` for cisco.asa.asa_acls (state replaced): the owned ACL only."""
    return asa_model(data, device, acl_name, prefix)[2]


def asa_owned_names(acl_name=DEFAULT_ACL_NAME, prefix=None):
    names = AsaNames(acl_name, prefix)
    return {"acl": names.acl, "object_group_prefix": names.prefix}


def _og_entries(gathered):
    """[(object_type, group)] of asa_ogs gathered/parsed output (list of {object_type, object_groups})."""
    out = []
    for block in gathered or []:
        for group in block.get("object_groups") or []:
            out.append((block.get("object_type"), group))
    return out


def asa_stale_ogs(wanted, gathered, acl_name=DEFAULT_ACL_NAME, prefix=None):
    """``config`` for asa_ogs state deleted: owned groups (by prefix) present but no longer wanted.

    An empty list means nothing to delete (do not call the module then: ``deleted`` with no config
    deletes every object group of the device).
    """
    prefix = AsaNames(acl_name, prefix).prefix
    keep = set((t, g["name"]) for t, g in _og_entries(wanted))
    stale = OrderedDict()
    for otype, group in _og_entries(gathered):
        name = group.get("name") or ""
        if name.startswith(prefix) and (otype, name) not in keep:
            stale.setdefault(otype, []).append({"name": name})
    return [{"object_type": t, "object_groups": g} for t, g in stale.items()]


def asa_owned_ogs(gathered, acl_name=DEFAULT_ACL_NAME, prefix=None):
    """``config`` for asa_ogs state deleted on removal: every owned group present (by prefix)."""
    return asa_stale_ogs([], gathered, acl_name, prefix)


def _asa_addresses(side, groups, where):
    side = side or {}
    if side.get("any") or side.get("any4") or side.get("any6"):
        return ()
    if side.get("object_group"):
        name = side["object_group"]
        if name not in groups:
            raise NapError("%s: network object-group %s is not defined" % (where, name))
        obj = groups[name].get("network_object") or {}
        addrs = list(obj.get("host") or [])
        addrs += ["%s/%s" % tuple(a.split()) if " " in a else a for a in obj.get("address") or []]
        addrs += list(obj.get("ipv6_address") or [])
        for other in obj.get("object") or []:
            raise NapError("%s: network object-group %s refers to object %s, which is not resolved"
                           % (where, name, other))
        for nested in groups[name].get("group_object") or []:
            addrs += list(_asa_addresses({"object_group": nested}, groups, where))
        return tuple(addrs)
    if side.get("host"):
        return (side["host"],)
    if side.get("address"):
        if side.get("netmask"):
            return ("%s/%s" % (side["address"], side["netmask"]),)
        return (side["address"],)
    if side.get("interface"):
        raise NapError("%s: 'interface %s' cannot be expressed as addresses" % (where, side["interface"]))
    return ()


def _ports_from(pp, protocol, platform, where):
    if not pp:
        return ()
    if pp.get("range"):
        low = port_number(pp["range"]["start"], protocol, platform)
        high = port_number(pp["range"]["end"], protocol, platform)
        return ("%d-%d" % (low, high) if low != high else low,)
    if pp.get("eq") is not None:
        return (port_number(pp["eq"], protocol, platform),)
    raise NapError("%s: port match %s cannot be expressed as a port list (only eq and range)" % (where, dict(pp)))


def asa_rules_from_parsed(acls, ogs, acl_name=DEFAULT_ACL_NAME, prefix=None):
    """Rules from asa_acls + asa_ogs parsed/gathered output, for the owned ACL only.

    Ports are normalised with the ASA table (``radius`` -> 1645, ``https`` -> 443, ...).
    A rule's name, flow id and description come from its service group's description;
    an ACE written by hand gets the name ``<acl>-LINE<n>``.
    """
    acls = (acls or {}).get("acls") if isinstance(acls, dict) else acls
    acl = None
    for item in acls or []:
        if item.get("name") == acl_name:
            acl = item
    if acl is None:
        return []
    groups = dict((g["name"], g) for _kind, g in _og_entries(ogs))
    rules = []
    for n, ace in enumerate(acl.get("aces") or [], 1):
        if ace.get("remark") and not ace.get("grant"):
            continue
        where = "ACL %s entry %d" % (acl_name, n)
        if ace.get("grant") != "permit":
            raise NapError("%s: %s entries are not part of the model (only permit)" % (where, ace.get("grant")))
        src = _asa_addresses(ace.get("source"), groups, where)
        dst = _asa_addresses(ace.get("destination"), groups, where)
        protocol = str(ace.get("protocol") or "")
        name, flow_id, text = None, None, ""
        services = []
        icmp_types = set()
        if protocol.startswith("object-group "):
            svc_name = protocol.split(" ", 1)[1]
            if svc_name not in groups:
                raise NapError("%s: service object-group %s is not defined" % (where, svc_name))
            svc = groups[svc_name]
            name, flow_id, text = _parse_description(svc.get("description"))
            name = name or svc_name
            for item in svc.get("services_object") or []:
                proto = _protocol_back(item.get("protocol"))
                services.append((proto, _ports_from(item.get("source_port"), proto, "cisco_asa", where),
                                 _ports_from(item.get("destination_port"), proto, "cisco_asa", where)))
            for proto in (svc.get("service_object") or {}).get("protocol") or []:
                services.append((_protocol_back(proto), (), ()))
            for item in svc.get("port_object") or []:
                proto = svc.get("protocol") or "tcp"
                services.append((proto, (), _ports_from(item, proto, "cisco_asa", where)))
        else:
            proto = _protocol_back(protocol or (list(ace.get("protocol_options") or {}) or [""])[0])
            dst_side = ace.get("destination") or {}
            sports = _ports_from((ace.get("source") or {}).get("port_protocol"), proto, "cisco_asa", where)
            icmp_group = (groups.get(dst_side.get("service_object_group")) or {}).get("icmp_type")
            for option, value in ((ace.get("protocol_options") or {}).get("icmp") or {}).items():
                if value:
                    icmp_types.add(CISCO_ICMP_BACK.get(option, option.replace("_", "-")))
            if icmp_group is not None:
                name, flow_id, text = _parse_description(groups[dst_side["service_object_group"]].get("description"))
                name = name or dst_side["service_object_group"]
                icmp_types.update(CISCO_ICMP_BACK.get(o, o) for o in icmp_group.get("icmp_object") or [])
                services.append((proto, (), ()))
            elif dst_side.get("service_object_group"):
                svc = groups.get(dst_side["service_object_group"]) or {}
                for item in svc.get("port_object") or []:
                    services.append((proto, sports, _ports_from(item, proto, "cisco_asa", where)))
            else:
                services.append((proto, sports, _ports_from(dst_side.get("port_protocol"), proto, "cisco_asa", where)))
            name = name or "%s-LINE%d" % (acl_name, n)
        by_proto = OrderedDict()
        for proto, sports, dports in services:
            slot = by_proto.setdefault(proto, (set(), set()))
            slot[0].update(sports)
            slot[1].update(dports)
        for i, (proto, (sports, dports)) in enumerate(by_proto.items()):
            rules.append(Rule.from_dict({
                "name": name if i == 0 else "%s-%s" % (name, proto.upper()),
                "flow_id": flow_id or name, "direction": "forward", "protocol": proto,
                "src_addresses": list(src), "dst_addresses": list(dst),
                "src_ports": sorted(sports, key=str), "dst_ports": sorted(dports, key=str),
                "description": text, "icmp_type": ",".join(sorted(icmp_types)) if proto == "icmp" and icmp_types
                else None,
            }, where))
    return rules


# -- remark-delimited block inside a user-named ACL ---------------------------------
def _asa_ace_text(ace):
    """One ACE dict (as asa_model builds them) -> the text after 'access-list NAME '."""
    parts = ["extended", ace["grant"], ace["protocol"]]
    for side in ("source", "destination"):
        value = ace[side]
        parts.append("any" if value.get("any") else "object-group " + value["object_group"])
    if ace["destination"].get("service_object_group"):
        parts.append("object-group " + ace["destination"]["service_object_group"])    # icmp-type group
    return " ".join(parts)


def asa_block_lines(data, device=None, acl_name=DEFAULT_ACL_NAME, prefix=None, block_acl=None):
    """The wanted block (texts after 'access-list <block_acl> '), markers included."""
    block_acl = block_acl or acl_name
    _check_name(block_acl, "ACL name")
    acls = asa_model(data, device, acl_name, prefix)[2]
    aces = acls["acls"][0]["aces"] if acls["acls"] else []
    lines = ["remark " + BLOCK_BEGIN % acl_name]
    lines += [_asa_ace_text(a) for a in aces]
    lines.append("remark " + BLOCK_END % acl_name)
    return lines


def _norm(text):
    return " ".join(str(text).split())


def asa_block_commands(data, running_config, block_acl, device=None, acl_name=DEFAULT_ACL_NAME, prefix=None,
                       state="present"):
    """``asa_config`` lines that (re)write our block inside ``block_acl`` and touch nothing else.

    ``running_config`` is the output of ``show running-config access-list <block_acl>`` (other
    ACLs' lines are ignored).  The old block (between our BEGIN and END remarks) is removed line by
    line, then the wanted block is inserted with ``line N`` where the old one began (line 1 for a
    new block, ahead of the user's entries).  Returns [] when the block is already as wanted.
    ``state=absent`` only removes the block.
    """
    _check_name(block_acl, "ACL name")
    head = "access-list %s " % block_acl
    current = []
    for raw in str(running_config or "").splitlines():
        line = _norm(raw)
        if line.startswith(head):
            rest = line[len(head):]
            if rest.startswith("line "):
                rest = rest.split(" ", 2)[2]
            current.append(rest)
    begin = "remark " + BLOCK_BEGIN % acl_name
    end = "remark " + BLOCK_END % acl_name
    starts = [i for i, t in enumerate(current) if t == _norm(begin)]
    ends = [i for i, t in enumerate(current) if t == _norm(end)]
    if len(starts) > 1 or len(ends) > 1 or bool(starts) != bool(ends) or (starts and ends[0] < starts[0]):
        raise NapError("ACL %s: the configmgr.nap block markers are damaged (%d BEGIN, %d END remark); remove "
                       "the block's lines by hand and run again" % (block_acl, len(starts), len(ends)))
    old = current[starts[0]:ends[0] + 1] if starts else []
    if state == "absent":
        want = []
    else:
        want = [_norm(t) for t in asa_block_lines(data, device, acl_name, prefix, block_acl)]
    if old == want:
        return []
    commands = ["no " + head + t for t in reversed(old)]
    position = starts[0] + 1 if starts else 1
    for i, text in enumerate(want):
        commands.append("%sline %d %s" % (head, position + i, text))
    return commands


_GLOBAL_RE = re.compile(r"^access-group \S+ global$")


def asa_changes(data, device, state="present", binding="global", block_acl=None, acl_name=DEFAULT_ACL_NAME,
                access_group_show="", block_show="", gathered=None, prefix=None):
    """What the perimeter role sends to one ASA, in order: ``ogs_replaced`` (asa_ogs replaced), ``pre_lines``
    (asa_config; absent: unbind, block removal), ``acls`` (asa_acls ``{state, config}`` or None), ``post_lines``
    (asa_config: the global binding when not bound yet, or the block) and ``ogs_deleted`` (asa_ogs deleted; never
    called with []).  The shows: ``show running-config access-group`` / ``access-list <block_acl or acl_name>``."""
    if state not in ("present", "absent") or binding not in ("global", "block", "none"):
        raise NapError("%s: state %r / nap_perimeter_asa_binding %r; expected present or absent / global, block or "
                       "none" % (device, state, binding))
    ogs, acls = asa_model(data, device, acl_name, prefix)[1:]
    if binding == "block" and not block_acl:
        raise NapError("%s: nap_perimeter_asa_binding is block, so nap_perimeter_asa_block_acl must name the "
                       "interface ACL to hold the block" % device)
    ours = "access-group %s global" % acl_name
    bound = [t for t in (_norm(x) for x in str(access_group_show or "").splitlines()) if _GLOBAL_RE.match(t)]
    block = []
    if binding == "block":
        block = asa_block_commands(data, block_show, block_acl, device, acl_name, prefix, state)
    out = {"ogs_replaced": [], "pre_lines": [], "acls": None, "post_lines": [], "ogs_deleted": []}
    if state == "absent":
        out["pre_lines"] = (["no " + ours] if ours in bound else []) + block
        out["acls"] = {"state": "deleted", "config": {"acls": [{"name": acl_name}]}}
        out["ogs_deleted"] = asa_owned_ogs(gathered, acl_name, prefix)
        return out
    if binding == "global" and bound and bound != [ours]:
        raise NapError("%s binds another global ACL (%s); an ASA has one global access-group. Set "
                       "nap_perimeter_asa_binding: block with nap_perimeter_asa_block_acl naming that ACL."
                       % (device, ", ".join(bound)))
    out["ogs_replaced"] = ogs
    if binding != "block" and acls["acls"]:
        out["acls"] = {"state": "replaced", "config": acls}
    out["post_lines"] = block if binding == "block" else [ours] if binding == "global" and not bound else []
    out["ogs_deleted"] = asa_stale_ogs(ogs, gathered, acl_name, prefix)
    return out


# ---------------------------------------------------------------------------
# IOS
# ---------------------------------------------------------------------------
def _ios_port_dict(spec, protocol):
    """Port match for ios_acls: ``eq`` is a string (the IOS name when there is one), ``range`` bounds
    are ints (its argspec, and its parser reads only digits there)."""
    low, high = port_bounds(spec)
    if low == high:
        return {"eq": port_spelling(low, protocol, "cisco_ios")}
    return {"range": {"start": low, "end": high}}


def _ios_side(text):
    net = parse_network(text)
    if net.prefixlen == 0:
        return OrderedDict([("any", True)])
    if net.prefixlen == net.max_prefixlen:
        return OrderedDict([("host", str(net.network_address))])
    if net.version == 6:
        return OrderedDict([("address", str(net))])
    return OrderedDict([("address", str(net.network_address)), ("wildcard_bits", str(net.hostmask))])


def _split_af(addresses):
    v4 = [a for a in addresses if ":" not in a]
    v6 = [a for a in addresses if ":" in a]
    return v4, v6


class _IosAcl:
    def __init__(self):
        self.aces = {4: [], 6: []}

    def add(self, af, remark, aces):
        if not aces:
            return
        seq_list = self.aces[af]
        first = True
        for ace in aces:
            item = OrderedDict()
            item["sequence"] = (len(seq_list) + 1) * 10
            if first and remark:
                item["remarks"] = [remark[:REMARK_MAX]]
                first = False
            item.update(ace)
            seq_list.append(item)


# model.ICMP_TYPES -> the ICMP message keyword of the IOS / ASA ACE (IPv4), and of its reply (IOS return entries)
CISCO_ICMP = {"echo-request": ("echo", "echo_reply")}
CISCO_ICMP_BACK = dict((v[0], k) for k, v in CISCO_ICMP.items())


def _ios_entries(protocol, srcs, dsts, sports, dports, established=False, icmp=None):
    """ACE dicts (without sequence) for every src x dst x sport x dport; ``icmp``: the ICMP message keyword."""
    out = []
    proto = IOS_PROTOCOLS[protocol]
    for src in srcs:
        for dst in dsts:
            for sport in sports or (None,):
                for dport in dports or (None,):
                    ace = OrderedDict()
                    ace["grant"] = "permit"
                    ace["protocol"] = proto
                    ace["source"] = _ios_side(src)
                    if sport is not None:
                        ace["source"]["port_protocol"] = _ios_port_dict(sport, protocol)
                    ace["destination"] = _ios_side(dst)
                    if dport is not None:
                        ace["destination"]["port_protocol"] = _ios_port_dict(dport, protocol)
                    if established:
                        ace["protocol_options"] = {"tcp": {"established": True}}
                    if icmp:
                        ace["protocol_options"] = {"icmp": {icmp: True}}
                    out.append(ace)
    return out


def _ios_pair(acl, kind, rule, src, dst, sports, dports, reply=True):
    """Forward (or inbound) entries of one rule and, when ``reply``, their return entries."""
    for af, (s, d) in ((4, (_split_af(src)[0], _split_af(dst)[0])), (6, (_split_af(src)[1], _split_af(dst)[1]))):
        if (src and not s) or (dst and not d):
            continue
        s = s or ["0.0.0.0/0" if af == 4 else "::/0"]
        d = d or ["0.0.0.0/0" if af == 4 else "::/0"]
        # an ICMP type narrows the IPv4 entries (echo, replies echo-reply); the IPv6 entries stay every ICMP type,
        # as ios_acls has no ICMPv6 echo-request option
        icmp = CISCO_ICMP[rule.icmp_type] if rule.icmp_type and af == 4 else (None, None)
        acl.add(af, "%s %s" % (kind, _description(rule, REMARK_MAX - len(kind) - 1)),
                _ios_entries(rule.protocol, s, d, sports, dports, icmp=icmp[0]))
        if reply:
            acl.add(af, "RET %s" % rule.name,
                    _ios_entries(rule.protocol, d, s, dports, sports, established=rule.protocol == "tcp",
                                 icmp=icmp[1]))


def ios_model(data, device=None, acl_name=DEFAULT_ACL_NAME):
    """(forward rules, inbound rules, ios_acls config) for one IOS router."""
    _check_name(acl_name, "ACL name")
    entry, plan = device_entry(data, device, "cisco_ios")
    rules = forward_rules(entry)
    acl = _IosAcl()
    for rule in rules:
        _ios_pair(acl, "FWD", rule, rule.src_addresses, rule.dst_addresses, rule.src_ports, rule.dst_ports)
    inbound = []
    own = list(entry.get("addresses") or [])
    if plan and device in (plan.get("hosts") or {}) and own:
        host = plan["hosts"][device]
        for data_rule in host.get("inbound") or []:
            rule = Rule.from_dict(data_rule, "host %s inbound rule" % device)
            dst = list(own)
            if catalogue.has_trait(rule.flow_id, "unaddressed_source"):
                dst.append("255.255.255.255/32")    # DHCPDISCOVER is a broadcast
            inbound.append(rule)
            _ios_pair(acl, "IN", rule, rule.src_addresses, normalize_addresses(dst), rule.src_ports,
                      rule.dst_ports, reply=False)
        planned_in = set(r.flow_id for r in inbound)
        for flow in plan.get("flows") or []:
            if flow.get("src_host") != device or flow["id"] in planned_in:
                continue    # (the plan already lets in the replies of e.g. the DHCP relay it starts)
            ports = list(flow.get("dst_ports") or [])
            if flow.get("rpc_dynamic"):
                ports.extend(flow.get("rpc_dynamic_ranges") or [flow.get("rpc_dynamic_range")])
            rule = Rule.from_dict({
                "name": "%s-%s-ORIG" % (flow["id"], flow["protocol"].upper()), "flow_id": flow["id"],
                "direction": "out", "protocol": flow["protocol"], "dst_addresses": flow.get("dst_addresses"),
                "src_ports": flow.get("src_ports"), "dst_ports": normalize_ports(ports),
                "description": flow.get("purpose") or ""}, "flow %s" % flow["id"])
            # only the replies: the request leaves the router and no inbound ACL sees it
            for af, (s, d) in ((4, (_split_af(own)[0], _split_af(rule.dst_addresses)[0])),
                               (6, (_split_af(own)[1], _split_af(rule.dst_addresses)[1]))):
                if s and d:
                    acl.add(af, "RET %s" % rule.name,
                            _ios_entries(rule.protocol, d, s, rule.dst_ports, rule.src_ports,
                                         established=rule.protocol == "tcp"))
    config = []
    for af, afi in ((4, "ipv4"), (6, "ipv6")):
        if acl.aces[af]:
            config.append(OrderedDict([("afi", afi), ("acls", [OrderedDict([
                ("name", acl_name), ("acl_type", "extended") if af == 4 else ("acl_type", None),
                ("aces", acl.aces[af])])])]))
    for block in config:
        for item in block["acls"]:
            if item.get("acl_type") is None:
                del item["acl_type"]
    return rules, inbound, config


def ios_acls_config(data, device=None, acl_name=DEFAULT_ACL_NAME):
    """``config`` for cisco.ios.ios_acls (state replaced): the owned ACL(s) only."""
    return ios_model(data, device, acl_name)[2]


def _ios_addr(side):
    side = side or {}
    if side.get("any"):
        return None
    if side.get("host"):
        return side["host"]
    if side.get("address"):
        if side.get("wildcard_bits"):
            mask = ipaddress.IPv4Address(int(ipaddress.IPv4Address(side["wildcard_bits"])) ^ 0xFFFFFFFF)
            return "%s/%s" % (side["address"], mask)
        return side["address"]
    return None


def ios_rules_from_parsed(parsed, acl_name=DEFAULT_ACL_NAME):
    """{'forward': [Rule], 'inbound': [Rule], 'return': {rule name: count}} from ios_acls parsed output.

    Entries are grouped by the remark that opens them (``FWD``/``IN``/``RET <name>``); ports are
    normalised with the IOS table (``www`` -> 80, ``bootps`` -> 67, ``isakmp`` -> 500, ...).
    """
    groups = OrderedDict()
    for block in parsed or []:
        for acl in block.get("acls") or []:
            if acl.get("name") != acl_name:
                continue
            current = None
            for ace in acl.get("aces") or []:
                for remark in ace.get("remarks") or []:
                    text = str(remark).strip().strip("'")
                    kind, _sep, rest = text.partition(" ")
                    if kind in ("FWD", "IN", "RET"):
                        current = (kind, rest)
                if not ace.get("grant"):
                    continue
                if current is None:
                    seq = ace.get("sequence")
                    current = ("FWD", "%s-SEQ%s (%s-SEQ%s)" % (acl_name, seq, acl_name, seq))
                groups.setdefault(current, []).append(ace)
    out = {"forward": [], "inbound": [], "return": OrderedDict()}
    merged = OrderedDict()
    for (kind, text), aces in groups.items():
        if kind == "RET":
            out["return"][text] = out["return"].get(text, 0) + len(aces)
            continue
        name, flow_id, desc = _parse_description(text)
        name = name or text
        for ace in aces:
            where = "ACL %s sequence %s" % (acl_name, ace.get("sequence"))
            proto = _protocol_back(ace.get("protocol") or
                                   (ace.get("protocol_options") or {}).get("protocol_number"))
            key = (kind, name)
            slot = merged.setdefault(key, {"name": name, "flow_id": flow_id or name, "description": desc,
                                           "protocol": proto, "src": set(), "dst": set(), "sp": set(),
                                           "dp": set(), "icmp": set()})
            for option, value in ((ace.get("protocol_options") or {}).get("icmp") or {}).items():
                if value:
                    slot["icmp"].add(CISCO_ICMP_BACK.get(option, option.replace("_", "-")))
            if slot["protocol"] != proto:
                raise NapError("%s: entries of %s mix protocols %s and %s" % (where, name, slot["protocol"], proto))
            src = _ios_addr(ace.get("source"))
            dst = _ios_addr(ace.get("destination"))
            if src:
                slot["src"].add(src)
            if dst:
                slot["dst"].add(dst)
            slot["sp"].update(_ports_from((ace.get("source") or {}).get("port_protocol"), proto, "cisco_ios", where))
            slot["dp"].update(_ports_from((ace.get("destination") or {}).get("port_protocol"), proto, "cisco_ios",
                                          where))
    for (kind, name), slot in merged.items():
        rule = Rule.from_dict({
            "name": name, "flow_id": slot["flow_id"], "direction": "forward" if kind == "FWD" else "in",
            "protocol": slot["protocol"], "src_addresses": sorted(slot["src"]),
            "dst_addresses": sorted(slot["dst"]), "src_ports": sorted(slot["sp"], key=str),
            "dst_ports": sorted(slot["dp"], key=str), "description": slot["description"],
            "icmp_type": ",".join(sorted(slot["icmp"])) or None}, "ACL %s" % acl_name)
        out["forward" if kind == "FWD" else "inbound"].append(rule)
    return out


def ios_acl_interfaces_config(data, device=None, interfaces=None, acl_name=DEFAULT_ACL_NAME, direction="in",
                              current=None, state="present"):
    """``config`` for cisco.ios.ios_acl_interfaces (state replaced) binding the owned ACL.

    ``interfaces`` names the interfaces facing NAP zones (a list, or a mapping interface -> zone).
    With ``current`` (the module's gathered output) every other binding of those interfaces is
    kept, so ``replaced`` changes only ours; an interface that already binds another ACL in the
    same direction and family fails (an interface takes one ACL per direction).  With
    ``state=absent`` the result is the interfaces' bindings without ours (without ``interfaces``:
    every interface of ``current`` that binds ours; [] when none does).
    """
    _check_name(acl_name, "ACL name")
    if direction not in ("in", "out"):
        raise NapError("direction is %r; expected in or out" % direction)
    if isinstance(interfaces, dict):
        interfaces = list(interfaces)
    if isinstance(interfaces, str):
        interfaces = [interfaces]
    if state == "absent" and not interfaces:
        interfaces = [item.get("name") for item in current or []
                      if any(a.get("name") == acl_name and a.get("direction") == direction
                             for g in item.get("access_groups") or [] for a in g.get("acls") or [])]
        if not interfaces:
            return []
    if not interfaces:
        raise NapError("no interfaces to bind %s to: set nap_perimeter_interfaces (the interfaces facing the "
                       "NAP zones, e.g. [GigabitEthernet0/0, GigabitEthernet0/1])" % acl_name)
    afis = ["ipv4"]
    if data is not None:
        config = ios_acls_config(data, device, acl_name)
        afis = [b["afi"] for b in config] or ["ipv4"]
    have = OrderedDict()
    for item in current or []:
        have[item.get("name")] = item
    out = []
    for name in interfaces:
        names.check("interface", name, "nap_perimeter_interfaces: interface name")
        groups = OrderedDict()
        for group in (have.get(name) or {}).get("access_groups") or []:
            groups[group.get("afi")] = [dict(a) for a in group.get("acls") or []]
        for afi in ("ipv4", "ipv6"):
            acls = [a for a in groups.get(afi, []) if not (a.get("name") == acl_name and a.get("direction") == direction)]
            if state != "absent" and afi in afis:
                other = [a for a in acls if a.get("direction") == direction]
                if other:
                    raise NapError("interface %s already binds %s ACL %s %s; an interface takes one ACL per direction: "
                                   "unbind it, or put the NAP entries inside it (see docs/perimeter-vendors.md)"
                                   % (name, afi, other[0].get("name"), direction))
                acls.append({"name": acl_name, "direction": direction})
            if acls:
                groups[afi] = acls
            else:
                groups.pop(afi, None)
        entry = OrderedDict([("name", name)])
        if groups:
            entry["access_groups"] = [{"afi": afi, "acls": acls} for afi, acls in groups.items()]
        out.append(entry)
    return out


__all__ = [
    "DEFAULT_ACL_NAME", "ASA_PORTS", "IOS_PORTS", "port_number", "device_entry", "check_device",
    "asa_ogs_config", "asa_acls_config", "asa_stale_ogs", "asa_owned_ogs", "asa_rules_from_parsed",
    "asa_block_commands", "asa_block_lines", "asa_changes", "ios_acls_config", "ios_rules_from_parsed",
    "ios_acl_interfaces_config",
]
