# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables backend: canonical rules <-> one owned nft table (pure Python, no nft calls).

The collection owns exactly one table (default ``inet configmgr_nap``) and renders it whole:

* one named set per zone and address family (``zone_<name>_v4`` / ``zone_<name>_v6``) holding the
  zone's networks minus the more specific networks of other zones (the planner's "most specific
  zone wins" rule, made disjoint), and ``owned_v4`` / ``owned_v6``, the union of the owned zones;
* chain ``forward`` (hook forward, policy accept): established/related, the management
  anti-lockout rule, the planned forward rules, then one drop per owned zone and family for
  traffic from that zone to another owned zone.  Traffic between zones the table does not own,
  or from/to addresses in no owned zone, is not touched;
* chain ``input`` (hook input, policy accept): established/related, loopback, IPv6 neighbour
  discovery, anti-lockout, the host's planned inbound rules, then a drop of what comes *from an
  owned zone*.  Traffic from addresses outside the owned zones is left to the host's other
  tables (the collection never drops what it was not asked to decide);
* chain ``output`` only when outbound rules are planned (outbound policy block), in the same spirit
  (drop of unplanned traffic *to* owned zones).

Every planned rule carries the comment ``<name>|<flow_id>[|<port keyword>]``, which is how it is
parsed back; the structural rules carry ``configmgr.nap:<what>``.  Descriptions are not stored in
nft (comments are limited to 128 bytes); a parsed rule takes the wanted rule's description when
its nft form is exactly what that rule renders to.

``desired_state()`` builds a :class:`TableState` from the model, ``parse_table()`` builds one
from ``nft -j list table`` output; ``compare()`` explains the difference per rule with the shared
:func:`diff.diff_rules` and per structural object, and ``TableState.script()`` renders the one
atomic transaction that replaces the owned table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import names
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import (
    PORT_KEYWORDS, PORT_PROTOCOLS, PROTOCOL_NUMBERS, NapError, Rule, normalize_addresses, parse_network,
    parse_port, port_bounds,
)

DEFAULT_TABLE = "configmgr_nap"
DEFAULT_FAMILY = "inet"
FAMILIES = {"inet": (4, 6), "ip": (4,), "ip6": (6,)}
DEFAULT_RPC_RANGE = "49152-65535"
MARK = "configmgr.nap:"
MGMT_PORTS = (22, 5985, 5986)
COMMENT_MAX = 128
ND_TYPES = ("nd-neighbor-advert", "nd-neighbor-solicit", "nd-router-advert", "nd-router-solicit")
CHAIN_OF = {"in": "input", "out": "output", "forward": "forward"}
DIRECTION_OF = dict((v, k) for k, v in CHAIN_OF.items())
CHAIN_ORDER = ("input", "forward", "output")
PROTO_NAMES = dict((v, k) for k, v in PROTOCOL_NUMBERS.items())
PROTO_NAMES[58] = "ipv6-icmp"
# model.ICMP_TYPES -> the nft name of the type (the same in icmp and icmpv6), and the match of each family
NFT_ICMP_TYPES = {"echo-request": "echo-request"}
NFT_ICMP_TYPE_NAMES = dict((v, k) for k, v in NFT_ICMP_TYPES.items())
ICMP_KEY = {4: "icmp type", 6: "icmpv6 type"}
IP_KEY = {4: "ip", 6: "ip6"}
_IDENT_RE = re.compile(r"[^a-z0-9_]")
_ERROR_RE = re.compile(r"^(?:/dev/stdin|-|<cmdline>):(\d+):[0-9-]+: Error: (.*)$")

# Words nft's parser reads as keywords where a table name stands (seen refused by nft 1.0.6, quoted or not).
NFT_KEYWORDS = frozenset("""
inet ip ip6 arp bridge netdev table chain set map rule add delete flush list define include describe reset export
monitor insert replace create element type hook priority policy accept drop counter comment elements flags interval
log tcp udp meta ct handle index position quota limit reject queue jump goto continue return mark snat dnat
masquerade redirect vmap secmark synproxy flowtable devices offload timeout size auto-merge dynamic constant ether
vlan icmp icmpv6 esp ah comp sctp dccp th ipsec fib rt osf exthdr hbh frag dst mh srh tproxy numgen jhash symhash
random ecn""".split())

# compare: descriptions are not stored in nft; see parse_rules() for how they are carried over
COMPARE = ("direction", "action", "protocol", "src_addresses", "dst_addresses", "src_ports", "dst_ports",
           "description")
TAMPERED = "edited by hand in nft: "


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------
def _merge_ports(ports):
    """Canonical port list: ints and "low-high" ranges, overlapping and adjacent ones merged."""
    if len(ports) == 1 and type(ports[0]) is int:      # pylint: disable=unidiomatic-typecheck
        return (ports[0],)      # the usual single port (a bool is no port: it takes the path below)
    spans = sorted(port_bounds(p) for p in ports)
    merged = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple(low if low == high else "%d-%d" % (low, high) for low, high in merged)


def _addr_key(text):
    net = ipaddress.ip_network(text)
    return (net.version, net.network_address, net.prefixlen)


def _split_family(addresses):
    v4 = tuple(a for a in addresses if ":" not in a)
    v6 = tuple(a for a in addresses if ":" in a)
    return {4: v4, 6: v6}


def _quote(text):
    """An nft quoted string.  nft has no escape inside quotes, so what it cannot carry is refused."""
    text = str(text)
    if '"' in text or "\\" in text or names.bad_character(text) is not None:
        raise NapError("%r cannot be written as an nft quoted string (no double quote, backslash or control "
                       "character)" % (text,))
    return '"%s"' % text


def _fmt_value(value):
    return str(value)


class Match:
    """One nft match: key ("ip saddr", "tcp dport", "meta l4proto", "ct state", ...), op and values."""

    __slots__ = ("key", "op", "values")

    def __init__(self, key, op, values):
        self.key = key
        self.op = op
        values = tuple(values)
        if not any(isinstance(v, str) and v.startswith("@") for v in values):
            if key.endswith("port"):
                values = _merge_ports(values)
            elif key.endswith("addr"):
                values = tuple(normalize_addresses(values))
            else:
                values = tuple(sorted(set(str(v) for v in values)))
        self.values = values

    @classmethod
    def parsed(cls, key, op, values):
        """A match whose values are already in the form __init__ gives them (the parser's _*_values): the listing
        of a large table is not normalized a second time."""
        match = cls.__new__(cls)
        match.key, match.op, match.values = key, op, values
        return match

    def norm(self):
        return (self.key, self.op, tuple(str(v) for v in self.values))

    def text(self):
        op = "" if self.op == "==" else self.op + " "
        vals = self.values
        if self.key == "ct state":
            body = ",".join(vals)
        elif self.key in ("iifname", "oifname"):
            body = ", ".join(_quote(v) for v in vals)
            if len(vals) > 1:
                body = "{ %s }" % body
        elif len(vals) == 1:
            body = _fmt_value(vals[0])
        else:
            body = "{ %s }" % ", ".join(_fmt_value(v) for v in vals)
        return "%s %s%s" % (self.key, op, body)


class NftRule:
    """One nft rule of the owned table, in a form that both the renderer and the parser produce."""

    __slots__ = ("chain", "matches", "verdict", "comment", "counter", "handle", "unknown", "_norm")

    def __init__(self, chain, matches, verdict, comment="", counter=True, handle=None, unknown=()):
        self.chain = chain
        self.matches = tuple(matches)
        self.verdict = verdict
        self.comment = comment or ""
        self.counter = counter
        self.handle = handle
        self.unknown = tuple(unknown)
        self._norm = None

    def norm(self):
        # a rule is not changed once built; a compare reads each rule's norm several times
        if self._norm is None:
            self._norm = (self.chain, tuple(sorted(m.norm() for m in self.matches)), self.verdict, self.comment,
                          self.unknown)
        return self._norm

    def body(self):
        parts = [m.text() for m in self.matches]
        parts += ["<unparsed %s>" % u for u in self.unknown]
        if self.counter:
            parts.append("counter")
        parts.append(self.verdict or "continue")
        if self.comment:
            parts.append("comment %s" % _quote(self.comment))
        return " ".join(parts)

    def __repr__(self):
        return "NftRule(%s: %s)" % (self.chain, self.body())


class NftSet:
    __slots__ = ("name", "type", "elements", "comment")

    def __init__(self, name, type_, elements, comment=""):
        self.name = name
        self.type = type_
        self.elements = tuple(elements)
        self.comment = comment or ""

    def norm(self):
        return (self.type, self.elements, self.comment)

    def definition(self):
        text = "type %s; flags interval;" % self.type
        if self.comment:
            text += " comment %s;" % _quote(self.comment)
        if self.elements:
            text += " elements = { %s };" % ", ".join(self.elements)
        return text


class Chain:
    __slots__ = ("name", "type", "hook", "prio", "policy", "rules")

    def __init__(self, name, type_="filter", hook=None, prio=0, policy="accept", rules=None):
        self.name = name
        self.type = type_
        self.hook = hook
        self.prio = prio
        self.policy = policy
        self.rules = list(rules or [])

    def header_norm(self):
        return (self.type, self.hook, self.prio, self.policy)

    def header(self):
        if self.hook is None:
            return ""
        return "type %s hook %s priority %s; policy %s;" % (self.type, self.hook, self.prio, self.policy)


class TableState:
    """The owned table: sets, chains and their rules (rendered or parsed)."""

    def __init__(self, family=DEFAULT_FAMILY, name=DEFAULT_TABLE):
        self.family = family
        self.name = name
        self.sets = OrderedDict()
        self.chains = OrderedDict()
        self.extra_objects = []     # flowtables, maps, counters... found in the owned table
        self.rendered = {}          # desired_state: rule name -> (the policy's rule, its nft rules)

    @property
    def ref(self):
        return "%s %s" % (self.family, self.name)

    def norm(self):
        return (
            tuple((n, s.norm()) for n, s in sorted(self.sets.items())),
            tuple((n, c.header_norm(), tuple(r.norm() for r in c.rules)) for n, c in sorted(self.chains.items())),
            tuple(self.extra_objects),
        )

    def all_rules(self):
        for chain in self.chains.values():
            yield from chain.rules

    def definition(self):
        """``table <family> <name> { ... }`` with every set, chain and rule."""
        lines = ["table %s {" % self.ref]
        for nset in self.sets.values():
            lines.append("\tset %s { %s }" % (nset.name, nset.definition()))
        for chain in self.chains.values():
            lines.append("\tchain %s {" % chain.name)
            if chain.header():
                lines.append("\t\t" + chain.header())
            for rule in chain.rules:
                lines.append("\t\t" + rule.body())
            lines.append("\t}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def script(self):
        """One atomic transaction (for ``nft -f -``) that replaces the owned table whole.

        ``table`` creates the table when it is missing, so that ``delete table`` never fails; nft
        applies the file as one batch: either all of it or nothing.
        """
        return ("#!/usr/sbin/nft -f\n# configmgr.nap: owned table %s, rendered whole (one transaction)\n"
                "table %s\ndelete table %s\n" % (self.ref, self.ref, self.ref)) + self.definition()

    def delete_script(self):
        return "table %s\ndelete table %s\n" % (self.ref, self.ref)

    def script_lines(self):
        """:meth:`script` as a list of lines (``state: rendered``): split on the newlines it was joined with
        only, so a line is never cut elsewhere; joined with ``\\n`` (plus a final one) they are the script."""
        return self.script().split("\n")[:-1]


# ---------------------------------------------------------------------------
# Model -> nft
# ---------------------------------------------------------------------------
def comment_for(rule):
    """The comment that names a planned rule: ``name|flow_id[|keyword]``."""
    parts = [rule.name, rule.flow_id or rule.name]
    keywords = [p for p in rule.dst_ports if p in PORT_KEYWORDS]
    if keywords:
        parts.append(keywords[0])
    return "|".join(parts)


def parse_comment(comment):
    """(name, flow_id, keyword) of a planned rule's comment, or None."""
    if not comment or comment.startswith(MARK):
        return None
    parts = comment.split("|")
    if len(parts) < 2 or len(parts) > 3 or not parts[0]:
        return None
    keyword = parts[2] if len(parts) == 3 else None
    if keyword is not None and keyword not in PORT_KEYWORDS:
        return None
    return parts[0], parts[1], keyword


def check_rule_name(rule, names_checked=False):
    """NapError unless the rule's name and flow_id fit an nft comment (``names_checked``: Rule.from_dict has checked
    both as names already)."""
    where = "rule %r" % rule.name
    if not names_checked:
        names.check("rule", rule.name, "%s: name" % where)
        names.check("flow_id", rule.flow_id or rule.name, "%s: flow_id" % where)
    if rule.name.startswith(MARK):
        raise NapError("%s: names starting with %r are reserved for the table's own rules" % (where, MARK))
    if len(comment_for(rule).encode("utf-8")) > COMMENT_MAX:
        raise NapError("%s: 'name|flow_id' is longer than the %d bytes an nft comment holds (%r); use a shorter name"
                       % (where, COMMENT_MAX, comment_for(rule)))


def spell_ports(rule, rpc_range):
    out = []
    for port in rule.dst_ports:
        if port == "rpc-epmap":
            out.append(135)
        elif port == "rpc-dynamic":
            out.append(parse_port(rpc_range, "rpc_dynamic_range"))
        else:
            out.append(port)
    return out


def _matching_families(rule, src, dst, families):
    """Address families in which the rule can match: each side that lists addresses needs one of it."""
    out = []
    for fam in (4, 6):
        if fam not in families:
            continue
        if rule.src_addresses and not src[fam]:
            continue
        if rule.dst_addresses and not dst[fam]:
            continue
        out.append(fam)
    return out


def effective_rule(rule, families=(4, 6)):
    """The rule as nft can express it, plus warnings.

    Ports are merged (nft merges overlapping and adjacent intervals); addresses of a family that
    can never match (IPv6 sources towards IPv4-only destinations, or a family the table does not
    carry) are dropped with a warning.  Raises NapError when nothing of the rule can match.
    """
    warnings = []
    src = _split_family(rule.src_addresses)
    dst = _split_family(rule.dst_addresses)
    keep = _matching_families(rule, src, dst, families)
    if (rule.src_addresses or rule.dst_addresses) and not keep:
        raise NapError("rule %r can never match in an nft table of family %s: its sources and destinations "
                       "share no address family the table carries (sources %s, destinations %s)"
                       % (rule.name, "/".join("IPv%d" % f for f in families),
                          ",".join(rule.src_addresses) or "any", ",".join(rule.dst_addresses) or "any"))
    new_src = tuple(a for f in keep for a in src[f]) if rule.src_addresses else ()
    new_dst = tuple(a for f in keep for a in dst[f]) if rule.dst_addresses else ()
    dropped = [a for a in rule.src_addresses + rule.dst_addresses if a not in new_src + new_dst]
    if dropped:
        warnings.append("rule %s: %s can never match (no peer of the same address family in the rule, or the "
                        "table's family does not carry it) and is left out of the nft rule"
                        % (rule.name, ", ".join(dropped)))
    dst_ports = rule.dst_ports
    if not any(p in PORT_KEYWORDS for p in dst_ports):
        dst_ports = _merge_ports(dst_ports)
    return rule.replace(src_addresses=new_src, dst_addresses=new_dst, src_ports=_merge_ports(rule.src_ports),
                        dst_ports=dst_ports), warnings


def rule_to_nft(rule, families=(4, 6), rpc_range=DEFAULT_RPC_RANGE):
    """A canonical rule as nft rules (one per address family it needs)."""
    if rule.action != "allow":
        raise NapError("rule %r: action %r is not supported by the nftables backend" % (rule.name, rule.action))
    chain = CHAIN_OF[rule.direction]
    comment = comment_for(rule)
    dports = _merge_ports(spell_ports(rule, rpc_range))
    sports = _merge_ports(rule.src_ports)
    src = _split_family(rule.src_addresses)
    dst = _split_family(rule.dst_addresses)
    if not rule.src_addresses and not rule.dst_addresses:
        # an ICMP type is a match of one family's header (icmp type / icmpv6 type): one rule per family
        targets = [f for f in (4, 6) if f in families] if rule.icmp_type else [None]
    else:
        targets = _matching_families(rule, src, dst, families)
    out = []
    for fam in targets:
        matches = []
        if fam is not None:
            if src[fam]:
                matches.append(Match("%s saddr" % IP_KEY[fam], "==", src[fam]))
            if dst[fam]:
                matches.append(Match("%s daddr" % IP_KEY[fam], "==", dst[fam]))
        if rule.protocol in PORT_PROTOCOLS:
            if sports:
                matches.append(Match("%s sport" % rule.protocol, "==", sports))
            if dports:
                matches.append(Match("%s dport" % rule.protocol, "==", dports))
            if not sports and not dports:
                matches.append(Match("meta l4proto", "==", (rule.protocol,)))
        elif rule.protocol == "icmp" and rule.icmp_type:
            # nft names the type alike in both families (echo-request: ICMP type 8, ICMPv6 type 128) and lists the
            # rule without the meta l4proto dependency it implies, so the rule is rendered as nft lists it
            if rule.icmp_type not in NFT_ICMP_TYPES:
                raise NapError("rule %r: icmp_type %r has no nft spelling here" % (rule.name, rule.icmp_type))
            matches.append(Match(ICMP_KEY[fam], "==", (NFT_ICMP_TYPES[rule.icmp_type],)))
        elif rule.protocol == "icmp":
            if fam == 4:
                names = ("icmp",)
            elif fam == 6:
                names = ("ipv6-icmp",)
            else:
                names = tuple(n for f, n in ((4, "icmp"), (6, "ipv6-icmp")) if f in families)
            matches.append(Match("meta l4proto", "==", names))
        else:
            matches.append(Match("meta l4proto", "==", (rule.protocol,)))
        out.append(NftRule(chain, matches, "accept", comment))
    return out


def _zone_ident(name, used):
    base = _IDENT_RE.sub("_", str(name).lower()) or "zone"
    ident = base
    i = 2
    while ident in used:
        ident = "%s_%d" % (base, i)
        i += 1
    used.add(ident)
    return ident


def effective_zones(zones):
    """{zone: {4: (cidrs), 6: (cidrs)}}: each zone's networks minus more specific networks of other zones."""
    nets = []
    for zone, cidrs in zones.items():
        names.check("zone", zone, "zones: zone name")
        if isinstance(cidrs, str):
            cidrs = [cidrs]
        if not cidrs:
            raise NapError("zones[%s] is empty; expected a list of CIDRs" % zone)
        for cidr in cidrs:
            nets.append((parse_network(cidr, "zones[%s]" % zone), str(zone)))
    for net, zone in nets:
        for other, ozone in nets:
            if net == other and zone != ozone:
                raise NapError("zones: %s is in both zone %s and zone %s; give each CIDR to one zone" % (net, zone, ozone))
    out = OrderedDict()
    for zone in zones:
        pieces = []
        for net, z in nets:
            if z != str(zone):
                continue
            parts = [net]
            for other, ozone in nets:
                if ozone == z or other.version != net.version or other.prefixlen <= net.prefixlen:
                    continue
                if not other.subnet_of(net):
                    continue
                nxt = []
                for part in parts:
                    if other.subnet_of(part):
                        nxt.extend(part.address_exclude(other))
                    elif part.subnet_of(other):
                        continue
                    else:
                        nxt.append(part)
                parts = nxt
            pieces.extend(parts)
        fam = {4: (), 6: ()}
        for version in (4, 6):
            sel = [p for p in pieces if p.version == version]
            fam[version] = tuple(str(n) for n in ipaddress.collapse_addresses(sel))
        out[str(zone)] = fam
    return out


class Policy:
    """What the owned table must contain: the rules, owned zones, management sources and options."""

    def __init__(self, rules, zones=None, management_sources=(), rpc_dynamic_range=DEFAULT_RPC_RANGE,
                 family=DEFAULT_FAMILY, table=DEFAULT_TABLE, allow_lockout=False, management_ports=None):
        if family not in FAMILIES:
            raise NapError("family %r is not supported; expected one of %s" % (family, ", ".join(sorted(FAMILIES))))
        names.check("table", table, "table")
        if table.lower() in NFT_KEYWORDS:
            raise NapError("table %r is an nft keyword, which nft does not take as a table name (quoted or not); "
                           "choose another name (default %s)" % (table, DEFAULT_TABLE))
        self.family = family
        self.table = table
        self.families = FAMILIES[family]
        self.allow_lockout = bool(allow_lockout)
        match = re.fullmatch(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*", str(rpc_dynamic_range))
        if not match or not (1024 <= int(match.group(1)) <= int(match.group(2)) <= 65535):
            raise NapError("rpc_dynamic_range is %r; expected \"low-high\" with 1024 <= low <= high <= 65535 "
                           "(e.g. \"49152-65535\")" % (rpc_dynamic_range,))
        self.rpc_dynamic_range = "%d-%d" % (int(match.group(1)), int(match.group(2)))
        self.warnings = []
        self.zones = effective_zones(zones or {})
        self.zone_networks = OrderedDict()
        for zone, cidrs in (zones or {}).items():
            cidrs = [cidrs] if isinstance(cidrs, str) else cidrs
            self.zone_networks[str(zone)] = list(normalize_addresses(cidrs, collapse=False))
        self.management_sources = normalize_addresses(management_sources or (), "management_sources")
        # The plan decides each host's management port (planner.management_port); without a plan the
        # connection defaults of SSH and WinRM stay open.
        self.management_ports = tuple(sorted(set(parse_port(p, "management_ports") for p in management_ports))) \
            if management_ports else MGMT_PORTS
        seen = set()
        self.rules = []
        for rule in rules:
            from_dict = not isinstance(rule, Rule)
            if from_dict:
                rule = Rule.from_dict(rule)
            if rule.name in seen:
                raise NapError("rules: duplicate rule name %r (each rule needs its own name)" % rule.name)
            seen.add(rule.name)
            check_rule_name(rule, from_dict)
            eff, warns = effective_rule(rule, self.families)
            self.warnings.extend(warns)
            self.rules.append(eff)
        self.rules.sort(key=lambda r: (CHAIN_ORDER.index(CHAIN_OF[r.direction]), r.name))

    def rules_in(self, direction):
        return [r for r in self.rules if r.direction == direction]


def desired_state(policy):
    """The TableState the policy renders to."""
    state = TableState(policy.family, policy.table)
    used = set(["owned"])
    owned = {4: [], 6: []}
    zone_sets = OrderedDict()
    for zone, fam in policy.zones.items():
        ident = _zone_ident(zone, used)
        for version in policy.families:
            if not fam[version]:
                continue
            name = "zone_%s_v%d" % (ident, version)
            state.sets[name] = NftSet(name, "ipv4_addr" if version == 4 else "ipv6_addr", fam[version],
                                      "zone %s" % zone)
            zone_sets.setdefault(zone, {})[version] = name
            owned[version].extend(fam[version])
    for version in policy.families:
        if owned[version]:
            name = "owned_v%d" % version
            elems = normalize_addresses(owned[version])
            state.sets[name] = NftSet(name, "ipv4_addr" if version == 4 else "ipv6_addr", elems, "owned zones")

    established = NftRule(None, [Match("ct state", "==", ("established", "related"))], "accept",
                          MARK + "established", counter=False)
    mgmt = []
    if not policy.allow_lockout and policy.management_sources:
        split = _split_family(policy.management_sources)
        for version in policy.families:
            if split[version]:
                mgmt.append(NftRule(None, [Match("%s saddr" % IP_KEY[version], "==", split[version]),
                                           Match("tcp dport", "==", policy.management_ports)], "accept",
                                    MARK + "anti-lockout"))

    def chain(name, head, planned, tail):
        ch = Chain(name, "filter", name, 0, "accept")
        for rule in head:
            ch.rules.append(NftRule(name, rule.matches, rule.verdict, rule.comment, rule.counter))
        for rule in planned:
            nrules = rule_to_nft(rule, policy.families, policy.rpc_dynamic_range)
            state.rendered[rule.name] = (rule, nrules)
            ch.rules.extend(nrules)
        ch.rules.extend(tail)
        state.chains[name] = ch

    # input: from owned zones, only what is planned
    head = [established, NftRule(None, [Match("iifname", "==", ("lo",))], "accept", MARK + "loopback", False)]
    if 6 in policy.families:
        head.append(NftRule(None, [Match("icmpv6 type", "==", ND_TYPES)], "accept", MARK + "icmpv6-nd", False))
    tail = []
    for version in policy.families:
        if owned[version]:
            tail.append(NftRule("input", [Match("%s saddr" % IP_KEY[version], "==", ("@owned_v%d" % version,))],
                                "drop", MARK + "drop unplanned from owned zones"))
    chain("input", head + mgmt, policy.rules_in("in"), tail)

    # forward: between two different owned zones, only what is planned
    tail = []
    for zone, sets in zone_sets.items():
        for version, name in sets.items():
            key = IP_KEY[version]
            tail.append(NftRule("forward", [Match("%s saddr" % key, "==", ("@" + name,)),
                                            Match("%s daddr" % key, "==", ("@owned_v%d" % version,)),
                                            Match("%s daddr" % key, "!=", ("@" + name,))],
                                "drop", MARK + "drop unplanned from zone %s" % zone))
    chain("forward", [established] + mgmt, policy.rules_in("forward"), tail)

    outbound = policy.rules_in("out")
    if outbound:
        tail = []
        for version in policy.families:
            if owned[version]:
                tail.append(NftRule("output", [Match("%s daddr" % IP_KEY[version], "==",
                                                     ("@owned_v%d" % version,))],
                                    "drop", MARK + "drop unplanned to owned zones"))
        chain("output", [established, NftRule(None, [Match("oifname", "==", ("lo",))], "accept",
                                              MARK + "loopback", False)],
              outbound, tail)
    return state


# ---------------------------------------------------------------------------
# nft JSON -> TableState
# ---------------------------------------------------------------------------
class _Unparsed(Exception):
    pass


def _addr_values(right):
    """Address values of a JSON right-hand side: CIDR strings (ranges summarized)."""
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    fast = _addr_texts(items)
    if fast is not None:
        try:
            return tuple(normalize_addresses(fast))
        except NapError:
            pass        # the item by item parse below names what it cannot read, as it always did
    out = []
    for item in items:
        if isinstance(item, str):
            if item.startswith("@"):
                out.append(item)
                continue
            try:
                out.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise _Unparsed(item)
        elif isinstance(item, dict) and "prefix" in item:
            out.append(str(ipaddress.ip_network("%s/%s" % (item["prefix"]["addr"], item["prefix"]["len"]),
                                                strict=False)))
        elif isinstance(item, dict) and "range" in item:
            low, high = [ipaddress.ip_address(a) for a in item["range"]]
            out.extend(str(n) for n in ipaddress.summarize_address_range(low, high))
        else:
            raise _Unparsed(json.dumps(item, sort_keys=True))
    refs = [v for v in out if v.startswith("@")]
    if refs:
        if len(out) != 1:
            raise _Unparsed(json.dumps(right, sort_keys=True))
        return tuple(refs)
    return tuple(normalize_addresses(out))


def _addr_texts(items):
    """CIDR texts of plain addresses and prefixes (what nft lists for a planned rule), for normalize_addresses, which
    takes canonical IPv4 text without building an ip_network per address; None when an item is anything else."""
    out = []
    for item in items:
        if isinstance(item, str) and not item.startswith("@"):
            text = item if "/" in item else item + ("/128" if ":" in item else "/32")
        elif isinstance(item, dict) and len(item) == 1 and isinstance(item.get("prefix"), dict) \
                and isinstance(item["prefix"].get("addr"), str) and isinstance(item["prefix"].get("len"), int) \
                and not isinstance(item["prefix"]["len"], bool):
            text = "%s/%d" % (item["prefix"]["addr"], item["prefix"]["len"])
        else:
            return None
        if text.strip() != text:
            return None     # parse_network would take it stripped, ip_network does not
        out.append(text)
    return out


def _port_values(right):
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    ports = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            ports.append(item)
        elif isinstance(item, dict) and "range" in item:
            ports.append("%d-%d" % tuple(item["range"]))
        elif isinstance(item, str) and item.startswith("@"):
            if len(items) != 1:
                raise _Unparsed(json.dumps(right, sort_keys=True))
            return (item,)
        else:
            raise _Unparsed(json.dumps(item, sort_keys=True))
    return _merge_ports(ports)


def _name_values(right, key):
    if isinstance(right, dict) and "set" in right:
        items = right["set"]
    elif isinstance(right, list):
        items = right
    else:
        items = [right]
    out = []
    for item in items:
        if key == "meta l4proto" and isinstance(item, int):
            item = PROTO_NAMES.get(item, str(item))
        if not isinstance(item, (str, int)):
            raise _Unparsed(json.dumps(item, sort_keys=True))
        out.append(str(item))
    return tuple(sorted(set(out)))


def _parse_match(match):
    left, right, op = match.get("left"), match.get("right"), match.get("op", "==")
    if op == "in":
        op = "=="
    if op not in ("==", "!="):
        raise _Unparsed(json.dumps(match, sort_keys=True))
    if isinstance(left, dict) and "payload" in left and "protocol" in left["payload"]:
        proto, field = left["payload"]["protocol"], left["payload"].get("field")
        key = "%s %s" % (proto, field)
        if proto in ("ip", "ip6") and field in ("saddr", "daddr"):
            return Match.parsed(key, op, _addr_values(right))
        if proto in ("tcp", "udp") and field in ("sport", "dport"):
            return Match.parsed(key, op, _port_values(right))
        if proto in ("icmp", "icmpv6") and field == "type":
            return Match.parsed(key, op, _name_values(right, key))
    elif isinstance(left, dict) and "meta" in left:
        key = left["meta"].get("key")
        if key == "l4proto":
            return Match.parsed("meta l4proto", op, _name_values(right, "meta l4proto"))
        if key in ("iifname", "oifname"):
            return Match.parsed(key, op, _name_values(right, key))
    elif isinstance(left, dict) and "ct" in left and left["ct"].get("key") == "state" and "dir" not in left["ct"]:
        return Match.parsed("ct state", op, _name_values(right, "ct state"))
    raise _Unparsed(json.dumps(match, sort_keys=True))


def _parse_rule(data):
    matches, unknown = [], []
    verdict, counter = None, False
    for expr in data.get("expr", []):
        if not isinstance(expr, dict) or len(expr) != 1:
            unknown.append(json.dumps(expr, sort_keys=True))
            continue
        (kind, value), = expr.items()
        if verdict is not None:
            unknown.append(json.dumps(expr, sort_keys=True))
        elif kind == "match":
            try:
                matches.append(_parse_match(value))
            except (_Unparsed, KeyError, TypeError, ValueError) as exc:
                unknown.append(str(exc) if isinstance(exc, _Unparsed) else json.dumps(expr, sort_keys=True))
        elif kind == "counter":
            counter = True
        elif kind in ("accept", "drop", "return", "continue"):
            verdict = kind
        else:
            unknown.append(json.dumps(expr, sort_keys=True))
    return NftRule(data.get("chain"), matches, verdict, data.get("comment", ""), counter, data.get("handle"),
                   unknown)


def parse_table(doc, family=DEFAULT_FAMILY, name=DEFAULT_TABLE):
    """TableState of the owned table from ``nft -j list table`` (or ``list ruleset``) output; None if absent."""
    if isinstance(doc, str):
        doc = json.loads(doc) if doc.strip() else {"nftables": []}
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    state = None
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        (kind, data), = item.items()
        if kind == "metainfo" or not isinstance(data, dict):
            continue
        if kind == "table":
            if data.get("family") == family and data.get("name") == name:
                state = TableState(family, name)
            continue
        if data.get("family") != family or data.get("table") != name:
            continue
        if state is None:
            state = TableState(family, name)
        if kind == "set":
            elems = ()
            try:
                elems = _addr_values({"set": data.get("elem", [])}) if data.get("elem") else ()
            except (_Unparsed, KeyError, TypeError, ValueError):
                elems = ("<unparsed %s>" % json.dumps(data.get("elem"), sort_keys=True),)
            flags = data.get("flags", [])
            type_ = data.get("type")
            if isinstance(type_, list) or flags not in (["interval"], ("interval",)):
                type_ = "%s<flags %s>" % (json.dumps(type_), ",".join(flags) if isinstance(flags, list) else flags)
            state.sets[data["name"]] = NftSet(data["name"], type_, elems, data.get("comment", ""))
        elif kind == "chain":
            state.chains[data["name"]] = Chain(data["name"], data.get("type"), data.get("hook"), data.get("prio"),
                                               data.get("policy"))
        elif kind == "rule":
            chain = state.chains.get(data.get("chain"))
            if chain is None:
                chain = state.chains[data.get("chain")] = Chain(data.get("chain"))
            chain.rules.append(_parse_rule(data))
        else:
            state.extra_objects.append("%s %s" % (kind, data.get("name")))
    return state


# ---------------------------------------------------------------------------
# TableState -> canonical rules (parse back)
# ---------------------------------------------------------------------------
def _nft_to_rule(name, flow_id, keyword, parts, rpc_range):
    """Best-effort canonical Rule from the nft parts of one planned rule.

    A port keyword named in the comment comes back as the keyword when the port is its current
    spelling (135, or ``rpc_range``); with ``rpc_range=None`` whatever the rule holds is taken
    for the dynamic range (gathered state).
    """
    direction = DIRECTION_OF.get(parts[0].chain, "in")
    protocol = icmp_type = None
    src, dst, sports, dports = [], [], (), ()
    for part in parts:
        for m in part.matches:
            if m.key in ("ip saddr", "ip6 saddr"):
                src.extend(m.values)
            elif m.key in ("ip daddr", "ip6 daddr"):
                dst.extend(m.values)
            elif m.key.endswith(" sport"):
                protocol = m.key.split()[0]
                sports = m.values
            elif m.key.endswith(" dport"):
                protocol = m.key.split()[0]
                dports = m.values
            elif m.key in ICMP_KEY.values():
                protocol = "icmp"
                icmp_type = ",".join(NFT_ICMP_TYPE_NAMES.get(v, v) for v in m.values)
            elif m.key == "meta l4proto":
                names = set(m.values)
                if names <= set(("icmp", "ipv6-icmp")):
                    protocol = "icmp"
                elif len(names) == 1:
                    protocol = names.pop()
                else:
                    protocol = ",".join(sorted(names))
    if keyword == "rpc-epmap" and tuple(dports) == (135,):
        dports = ("rpc-epmap",)
    elif keyword == "rpc-dynamic" and len(dports) == 1 and (
            rpc_range is None or tuple(dports) == (parse_port(rpc_range),)):
        dports = ("rpc-dynamic",)
    return Rule(name=name, flow_id=flow_id, direction=direction, protocol=protocol or "?",
                src_addresses=normalize_addresses([a for a in src if not a.startswith("@")]) +
                tuple(a for a in src if a.startswith("@")),
                dst_addresses=normalize_addresses([a for a in dst if not a.startswith("@")]) +
                tuple(a for a in dst if a.startswith("@")),
                src_ports=tuple(sports), dst_ports=tuple(dports), icmp_type=icmp_type)


def _multiset(rules, comments=True):
    return sorted(repr(r.norm() if comments else r.norm()[:3] + r.norm()[4:]) for r in rules)


def _render_key(rule):
    """What rule_to_nft reads of a rule: two rules with the same key render to the same nft rules."""
    return (rule.name, rule.flow_id, rule.direction, rule.action, rule.protocol, rule.src_addresses,
            rule.dst_addresses, rule.src_ports, rule.dst_ports, rule.icmp_type)


def parse_rules(state, families=(4, 6), rpc_range=DEFAULT_RPC_RANGE, want=(), rendered=None):
    """Canonical rules of the planned part of a TableState (what diff.diff_rules compares).

    A rule whose nft form is exactly what it renders to takes the description of the wanted rule of
    the same name; one that was changed by hand in a way the model cannot express (another verdict,
    an extra statement, a part deleted or duplicated) gets a description starting with
    ``edited by hand in nft:`` so that the diff reports it.  Rules without a planned comment
    (added by hand) come back named ``handle-<n>``.

    ``rendered`` is the ``rendered`` of the desired_state() of the same families and rpc_range: a rule read back
    as planned takes the nft rules rendered there instead of being rendered again.
    """
    if state is None:
        return []
    rendered = rendered if rendered and rpc_range is not None else {}
    want_by_name = dict((r.name, r) for r in want)
    groups = OrderedDict()
    foreign = []
    for chain in state.chains.values():
        for nrule in chain.rules:
            if nrule.comment.startswith(MARK):
                continue
            parsed = parse_comment(nrule.comment)
            if parsed is None or chain.name not in DIRECTION_OF:
                foreign.append(nrule)
                continue
            groups.setdefault((parsed[0], chain.name), (parsed, []))[1].append(nrule)
    out = []
    for (name, _chain), ((_name, flow_id, keyword), parts) in groups.items():
        rule = _nft_to_rule(name, flow_id, keyword, parts, rpc_range)
        spelled = rpc_range
        if rpc_range is None:
            spelled = str(next((p for part in parts for m in part.matches if m.key == "tcp dport"
                                for p in m.values), DEFAULT_RPC_RANGE))
        planned = rendered.get(name)
        if planned is not None and _render_key(planned[0]) == _render_key(rule):
            nrules = planned[1]
        else:
            try:
                nrules = rule_to_nft(rule, families, spelled) if rule.protocol in PROTOCOL_NUMBERS else None
            except NapError:
                nrules = None
        exact = nrules is not None and _multiset(nrules, False) == _multiset(parts, False) and \
            all(p.counter for p in parts)
        if exact and name in want_by_name and want_by_name[name].icmp_type != rule.icmp_type:
            # the diff compares no icmp_type (diff.DEFAULT_COMPARE): a rule for another (or every) ICMP type is an update
            rule.description = "ICMP type %s, planned %s" % (rule.icmp_type or "any", want_by_name[name].icmp_type or "any")
        elif exact and name in want_by_name:
            rule.description = want_by_name[name].description
            rule.source = want_by_name[name].source
        elif not exact:
            rule.description = TAMPERED + " ; ".join(p.body() for p in parts)
        out.append(rule)
    for nrule in foreign:
        chain = nrule.chain
        rule = _nft_to_rule("handle-%s" % nrule.handle, "", None, [nrule], rpc_range or DEFAULT_RPC_RANGE)
        rule.direction = DIRECTION_OF.get(chain, "chain %s" % chain)
        if nrule.verdict != "accept" or nrule.unknown:
            rule.action = nrule.verdict or "?"
        rule.description = "not planned (chain %s): %s" % (chain, nrule.body())
        out.append(rule)
    return out


def parse_zones(state):
    """{zone: [cidrs]} from the zone sets' comments and elements (effective, disjoint networks)."""
    zones = OrderedDict()
    if state is None:
        return zones
    for nset in state.sets.values():
        if nset.name.startswith("zone_") and nset.comment.startswith("zone "):
            zones.setdefault(nset.comment[5:], []).extend(e for e in nset.elements if not e.startswith("<"))
    return zones


def parse_management(state):
    if state is None:
        return []
    out = []
    for rule in state.all_rules():
        if rule.comment == MARK + "anti-lockout":
            for m in rule.matches:
                if m.key.endswith(" saddr"):
                    out.extend(m.values)
    return list(normalize_addresses([a for a in out if not a.startswith("@")]))


__all__ = ["Policy", "TableState", "parse_table", "effective_rule", "effective_zones", "desired_state", "parse_rules",
           "DEFAULT_TABLE", "DEFAULT_FAMILY"]
