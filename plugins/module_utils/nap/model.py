# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical rule model shared by the planner, every backend and the diff.

A rule is platform-neutral: a direction (``in`` and ``out`` on a host,
``forward`` on a perimeter device), a protocol, source and destination
addresses and ports.  Dynamic RPC stays abstract on host rules as the port
keywords ``rpc-epmap`` (TCP 135, the endpoint mapper) and ``rpc-dynamic``
(the dynamic range); each backend spells them its own way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.configmgr.nap.plugins.module_utils.nap.names import (
    SOURCE_FORBIDDEN, NapError, ascii_digits, check, check_text,
)

PROTOCOLS = ("tcp", "udp", "esp", "ah", "gre", "icmp")
PORT_PROTOCOLS = ("tcp", "udp")
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51}
PORT_KEYWORDS = ("rpc-epmap", "rpc-dynamic")
DIRECTIONS = ("in", "out", "forward")
ACTIONS = ("allow",)
RULE_FIELDS = (
    "name", "flow_id", "direction", "action", "protocol",
    "src_addresses", "dst_addresses", "src_ports", "dst_ports",
    "description", "source", "icmp_type",
)
# ICMP types a rule may narrow protocol icmp to (field icmp_type; absent or null: every ICMP type).  Like the protocol
# "icmp" itself (ICMP on IPv4 addresses, ICMPv6 on IPv6 ones), a name stands for the type of each family: (ICMPv4 type,
# ICMPv6 type, code or None for every code).  RFC 792 (echo, type 8) and RFC 4443 (echo request, type 128).
ICMP_TYPES = {
    "echo-request": (8, 128, None),
}
# Fields a rule may lack: to_dict() carries icmp_type only where it is set, and diff.changed_fields reads a missing
# field as None.  diff.DEFAULT_COMPARE compares icmp_type (Windows reads it back from IcmpTypesAndCodes); nftables
# compares it in its own parse_rules.
OPTIONAL_FIELDS = ("icmp_type",)


def parse_port(value, where="port", allow_keywords=False):
    """Return a port spec in canonical form: an int, a "low-high" string or a keyword.

    >>> parse_port("80")
    80
    >>> parse_port("49152-65535")
    '49152-65535'
    """
    if isinstance(value, bool):
        raise NapError("%s: %r is not a port (expected 1-65535 or \"low-high\")" % (where, value))
    if isinstance(value, int):
        if 1 <= value <= 65535:
            return value
        raise NapError("%s: port %d is outside 1-65535" % (where, value))
    text = str(value).strip().lower()
    if allow_keywords and text in PORT_KEYWORDS:
        return text
    if ascii_digits(text):
        return parse_port(int(text), where)
    parts = text.split("-")
    if len(parts) == 2 and ascii_digits(parts[0]) and ascii_digits(parts[1]):
        low, high = int(parts[0]), int(parts[1])
        if not (1 <= low <= 65535 and 1 <= high <= 65535):
            raise NapError("%s: range %r is outside 1-65535" % (where, value))
        if low > high:
            raise NapError("%s: range %r has its low end above its high end" % (where, value))
        return low if low == high else "%d-%d" % (low, high)
    raise NapError("%s: %r is not a port (expected 1-65535 or \"low-high\")" % (where, value))


def port_bounds(spec):
    """(low, high) of a numeric port spec."""
    if isinstance(spec, int):
        return spec, spec
    low, high = spec.split("-")
    return int(low), int(high)


def port_in(port, specs):
    """Whether the port is one of ``specs`` (ints, "low-high" ranges; keywords and junk never match)."""
    for spec in specs or ():
        if isinstance(spec, bool):
            continue
        if isinstance(spec, int):
            if spec == port:
                return True
            continue
        text = str(spec).strip()
        if ascii_digits(text):
            if int(text) == port:
                return True
            continue
        parts = text.split("-")
        if len(parts) == 2 and ascii_digits(parts[0]) and ascii_digits(parts[1]):
            if int(parts[0]) <= port <= int(parts[1]):
                return True
    return False


def most_specific_zone(net, zone_networks):
    """(zone, zone network) of the most specific zone network that holds ``net`` (an ip_network), or None.

    ``zone_networks`` is an iterable of (ip_network, zone name), as nap_zones lists them.
    """
    best = None
    for znet, zone in zone_networks:
        if znet.version == net.version and net.subnet_of(znet):
            if best is None or znet.prefixlen > best[1].prefixlen:
                best = (zone, znet)
    return best


def _port_sort_key(spec):
    if isinstance(spec, int):
        return (0, spec, spec, "")
    if spec in PORT_KEYWORDS:
        return (1, 0, 0, spec)
    low, high = port_bounds(spec)
    return (0, low, high, "")


def normalize_ports(values, where="ports", allow_keywords=False):
    """Parse, de-duplicate and sort a list of port specs."""
    if values is None:
        return ()
    if isinstance(values, (str, int)):
        values = [values]
    seen = set()
    out = []
    for value in values:
        spec = parse_port(value, where, allow_keywords)
        if spec not in seen:
            seen.add(spec)
            out.append(spec)
    return tuple(sorted(out, key=_port_sort_key))


# Plans repeat the same addresses and address lists thousands of times: parse each once.
_CACHE_LIMIT = 200000
_NETWORKS = {}
_NORMALIZED = {}


def parse_network(value, where="address"):
    """Return an ip_network (strict=False) for an address, CIDR or host address."""
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    if isinstance(value, str) and value in _NETWORKS:
        return _NETWORKS[value]
    text = str(value).strip()
    if "%" in text:
        raise NapError("%s: %r has a scope id (%%...); a firewall rule cannot be scoped to an interface's zone: "
                       "give the address without it (e.g. fe80::1)" % (where, value))
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NapError("%s: %r is not an IPv4/IPv6 address or CIDR (e.g. 192.0.2.10 or 192.0.2.0/24)" % (where, value))
    if isinstance(value, str) and len(_NETWORKS) < _CACHE_LIMIT:
        _NETWORKS[value] = net
    return net


def is_ip_address(value):
    """True for a plain IPv4/IPv6 address (a scope id, ``fe80::1%eth0``, is not one here)."""
    try:
        text = str(value).strip()
        if "%" in text:
            return False
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def normalize_addresses(values, where="addresses", collapse=True):
    """Parse, collapse and sort a list of addresses into CIDR strings.

    Covered networks disappear (192.0.2.7/32 inside 192.0.2.0/24) and adjacent ones join;
    with ``collapse=False`` each network is kept as given (only de-duplicated).
    IPv4 sorts before IPv6.
    """
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    try:
        key = (tuple(values), collapse)
        result = _NORMALIZED.get(key)
    except TypeError:           # an unhashable value: the slow path names it
        key = result = None
    if result is not None:
        return result
    if key is not None and _ipv4_normal(key[0], collapse):
        result = key[0]         # already in normal form (a plan's or a rule's own addresses): nothing to parse
    else:
        result = _normalize(values if key is None else key[0], where, collapse)
    if key is not None and len(_NORMALIZED) < _CACHE_LIMIT and all(isinstance(v, str) for v in key[0]):
        _NORMALIZED[key] = result
        _NORMALIZED[(result, collapse)] = result        # normalizing a result again gives it back
    return result


def ipv4_number(text):
    """The integer of an IPv4 address written the one way every ipaddress version reads it (four ASCII decimal
    octets, 0-255, no leading zero), else None (ipaddress decides). The planner, the reports and normalize_addresses
    read canonical addresses with it at a fraction of the cost of ipaddress's parser."""
    octets = text.split(".")
    if len(octets) != 4:
        return None
    number = 0
    for octet in octets:
        if not octet.isdigit() or not octet.isascii() or len(octet) > 3 or (octet[0] == "0" and octet != "0"):
            return None
        octet = int(octet)
        if octet > 255:
            return None
        number = number << 8 | octet
    return number


def ipv4_prefix(text):
    """(address as an int, prefix length) of IPv4 text as the planner writes it (ipv4_number's address, then
    optionally "/" and a prefix length 0-32 without a leading zero; 32 without), else None: ipaddress decides the
    rest. The one reader of it for normalize_addresses and the reports."""
    addr, sep, prefix = text.partition("/")
    if sep:
        if not prefix.isdigit() or not prefix.isascii() or len(prefix) > 2 or (prefix[0] == "0" and prefix != "0"):
            return None
        prefix = int(prefix)
        if prefix > 32:
            return None
    else:
        prefix = 32
    number = ipv4_number(addr)
    return None if number is None else (number, prefix)


def _ipv4_normal(values, collapse):
    """Whether ``values`` are IPv4 CIDR strings already as ``_normalize`` writes them: canonical text, sorted, and
    (collapse) no network covering or joining another.  False for anything else (IPv6 included): the slow path decides.
    """
    last = None
    for value in values:
        if type(value) is not str or not value.isascii():      # pylint: disable=unidiomatic-typecheck
            return False        # a str subclass (Ansible's tagged or unsafe text) is given back as plain str below
        found = ipv4_prefix(value) if "/" in value else None
        if found is None:
            return False
        number, plen = found
        size = 1 << (32 - plen)
        if number & (size - 1):
            return False
        if last is not None:
            if collapse:
                # sorted and disjoint, and no two halves of one network (collapse_addresses would join them)
                if number <= last[1] or (plen == last[2] and number == last[1] + 1 and not last[0] & size):
                    return False
            elif (number, plen) <= (last[0], last[2]):
                return False
        last = (number, number + size - 1, plen)
    return True


def _ipv4_spans(values):
    """[(first, last)] integers of each value where every one is IPv4 text the fast reader takes (an address or
    address/prefix; host bits set as ip_network(strict=False) allows), else None: ipaddress decides the rest."""
    spans = []
    for value in values:
        if not isinstance(value, str):
            return None
        found = ipv4_prefix(value.strip())
        if found is None:
            return None
        number, bits = found
        size = 1 << (32 - bits)
        first = number & ~(size - 1)
        spans.append((first, first + size - 1))
    return spans


def _ipv4_collapsed(spans):
    """The CIDRs of ipaddress.collapse_addresses for the networks ``spans`` (as str): the union's ranges, each
    written as its largest aligned blocks, in address order."""
    out = []
    spans.sort()
    merged = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1][1] = last
        else:
            merged.append([first, last])
    for first, last in merged:
        while first <= last:
            size = first & -first if first else 1 << 32
            while first + size - 1 > last:
                size >>= 1
            out.append("%d.%d.%d.%d/%d" % (first >> 24, first >> 16 & 255, first >> 8 & 255, first & 255,
                                           33 - size.bit_length()))
            first += size
    return tuple(out)


def _normalize(values, where, collapse):
    if collapse:
        spans = _ipv4_spans(values)        # IPv4 only (most rules): integers, ten times as fast as ipaddress
        if spans is not None:
            return _ipv4_collapsed(spans)
    v4, v6 = [], []
    for value in values:
        net = parse_network(value, where)
        (v4 if net.version == 4 else v6).append(net)
    if not collapse:
        return tuple(str(n) for n in sorted(set(v4)) + sorted(set(v6)))
    out = [str(n) for n in ipaddress.collapse_addresses(v4)]
    out += [str(n) for n in ipaddress.collapse_addresses(v6)]
    return tuple(out)


def ports_text(ports):
    return ",".join(str(p) for p in ports) if ports else "any"


class Rule:
    """One allow rule in the canonical model (immutable by convention)."""

    __slots__ = RULE_FIELDS

    def __init__(self, name, flow_id, direction, protocol, src_addresses=(), dst_addresses=(),
                 src_ports=(), dst_ports=(), description="", source="", action="allow", icmp_type=None):
        self.name = name
        self.flow_id = flow_id
        self.direction = direction
        self.action = action
        self.protocol = protocol
        self.src_addresses = tuple(src_addresses)
        self.dst_addresses = tuple(dst_addresses)
        self.src_ports = tuple(src_ports)
        self.dst_ports = tuple(dst_ports)
        self.description = description
        self.source = source
        self.icmp_type = icmp_type

    @classmethod
    def from_dict(cls, data, where="rule"):
        """Build and validate a rule from user or plan data; errors name the rule and field."""
        if not isinstance(data, dict):
            raise NapError("%s: expected a mapping, got %r" % (where, data))
        name = data.get("name")
        if not name or not isinstance(name, str):
            raise NapError("%s: 'name' is required and must be a string" % where)
        name = check("rule", name, "%s: name" % where)
        where = "rule %r" % name
        unknown = set(data) - set(RULE_FIELDS)
        if unknown:
            raise NapError("%s: unknown field(s) %s (known: %s)" % (where, ", ".join(sorted(unknown)), ", ".join(RULE_FIELDS)))
        protocol = str(data.get("protocol", "")).lower()
        if protocol not in PROTOCOLS:
            raise NapError("%s: protocol %r is not one of %s" % (where, data.get("protocol"), ", ".join(PROTOCOLS)))
        direction = str(data.get("direction", "in")).lower()
        if direction not in DIRECTIONS:
            raise NapError("%s: direction %r is not one of %s" % (where, data.get("direction"), ", ".join(DIRECTIONS)))
        action = str(data.get("action", "allow")).lower()
        if action not in ACTIONS:
            raise NapError("%s: action %r is not supported (only allow)" % (where, data.get("action")))
        src_ports = normalize_ports(data.get("src_ports"), "%s: src_ports" % where, allow_keywords=False)
        dst_ports = normalize_ports(data.get("dst_ports"), "%s: dst_ports" % where, allow_keywords=True)
        if protocol not in PORT_PROTOCOLS and (src_ports or dst_ports):
            raise NapError("%s: protocol %s has no ports, but ports were given" % (where, protocol))
        keywords = [p for p in dst_ports if p in PORT_KEYWORDS]
        if keywords and (protocol != "tcp" or direction != "in" or len(dst_ports) != 1):
            raise NapError("%s: the port keyword %s stands alone on an inbound TCP rule" % (where, keywords[0]))
        icmp_type = data.get("icmp_type")
        if icmp_type is not None:
            icmp_type = str(icmp_type).strip().lower()
            if icmp_type not in ICMP_TYPES:
                raise NapError("%s: icmp_type %r is not one of %s" % (where, data.get("icmp_type"),
                                                                      ", ".join(sorted(ICMP_TYPES))))
            if protocol != "icmp":
                raise NapError("%s: icmp_type %s needs protocol icmp, not %s" % (where, icmp_type, protocol))
        flow_id = check("flow_id", data.get("flow_id") or name, "%s: flow_id" % where)
        # white space folded to single spaces: every backend (Cisco remarks, netsh, YAML) reads it back alike
        description = " ".join(check_text(data.get("description"), "%s: description" % where).split())
        source = " ".join(check_text(data.get("source"), "%s: source" % where, forbidden=SOURCE_FORBIDDEN).split())
        return cls(
            name=name,
            flow_id=flow_id,
            direction=direction,
            action=action,
            protocol=protocol,
            src_addresses=normalize_addresses(data.get("src_addresses"), "%s: src_addresses" % where),
            dst_addresses=normalize_addresses(data.get("dst_addresses"), "%s: dst_addresses" % where),
            src_ports=src_ports,
            dst_ports=dst_ports,
            description=description,
            source=source,
            icmp_type=icmp_type,
        )

    def replace(self, **changes):
        """A copy of the rule with ``changes`` (fields of RULE_FIELDS) in place of its own values."""
        data = dict((field, getattr(self, field)) for field in RULE_FIELDS)
        data.update(changes)
        return Rule(**data)

    def to_dict(self, name=None, src_addresses=None, dst_addresses=None):
        """The canonical dict form; ``icmp_type`` only where the rule narrows ICMP to one type.

        ``name`` and the addresses, when given, stand for the rule's own: the dict of the rule merged from this
        one, without building that rule (the planner's merge makes one dict per merged rule)."""
        data = {
            "name": self.name if name is None else name,
            "flow_id": self.flow_id,
            "direction": self.direction,
            "action": self.action,
            "protocol": self.protocol,
            "src_addresses": list(self.src_addresses if src_addresses is None else src_addresses),
            "dst_addresses": list(self.dst_addresses if dst_addresses is None else dst_addresses),
            "src_ports": list(self.src_ports),
            "dst_ports": list(self.dst_ports),
            "description": self.description,
            "source": self.source,
        }
        if self.icmp_type is not None:
            data["icmp_type"] = self.icmp_type
        return data

    def key(self):
        """What the rule does, without its name and texts: what a diff compares."""
        key = (self.direction, self.action, self.protocol, self.src_addresses, self.dst_addresses,
               self.src_ports, self.dst_ports)
        return key + (self.icmp_type,) if self.icmp_type is not None else key

    def __eq__(self, other):
        return isinstance(other, Rule) and self.to_dict() == other.to_dict()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.name,) + self.key())

    def __repr__(self):
        return "Rule(%s %s %s %s -> %s:%s)" % (
            self.name, self.direction, self.protocol,
            ",".join(self.src_addresses) or "any",
            ",".join(self.dst_addresses) or "any", ports_text(self.dst_ports))

    def summary(self):
        """One readable line, as a diff shows it."""
        src = ",".join(self.src_addresses) or "any"
        dst = ",".join(self.dst_addresses) or "any"
        text = "%s %s %s %s" % (self.name, self.direction, self.action, self.protocol)
        text += " from %s" % src
        if self.src_ports:
            text += " port %s" % ports_text(self.src_ports)
        text += " to %s" % dst
        if self.dst_ports:
            text += " port %s" % ports_text(self.dst_ports)
        if self.icmp_type:
            text += " type %s" % self.icmp_type
        return text
