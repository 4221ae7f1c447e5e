# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a plan as flows.json, flows.csv, flows.md and topology.mmd (pure functions)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import ipaddress
import json
import re
from collections import OrderedDict, defaultdict
from functools import partial
from itertools import chain
from operator import itemgetter

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue, model

REPORT_FILES = OrderedDict((
    ("json", "flows.json"),
    ("csv", "flows.csv"),
    ("md", "flows.md"),
    ("mermaid", "topology.mmd"),
))
CSV_COLUMNS = ("id", "purpose", "source", "category", "src_role", "src_host", "src_addresses", "src_zone",
               "dst_role", "dst_host", "dst_addresses", "dst_zone", "protocol", "dst_ports", "src_ports",
               "rpc_dynamic", "rpc_dynamic_range", "via", "perimeter")


def _ports(ports):
    return ",".join(str(p) for p in ports)


def _service(flow):
    text = flow["protocol"].upper()
    if flow["dst_ports"]:
        text += " " + _ports(flow["dst_ports"])
    if flow["rpc_dynamic"]:
        text += " + RPC " + ",".join(flow.get("rpc_dynamic_ranges") or [flow.get("rpc_dynamic_range", "")])
    if flow.get("icmp_type"):
        text += " " + flow["icmp_type"]
    if flow["src_ports"]:
        text += " (from port %s)" % _ports(flow["src_ports"])
    return text


def _group_rows(plan, index=None):
    """One row per flow id (and via): the Windows predefined groups that cover it on its destination.
    ``index``: the plan's _HostFlows, whose ``grouped`` has the first flow of each label that has groups."""
    rows = OrderedDict()
    for flow in plan["flows"] if index is None else index.grouped.values():
        if "windows_group" not in flow:
            continue
        key = _flow_label(flow)
        if key in rows:
            continue
        groups = "; ".join("%s (%s)%s" % (g["name"], g["resource"] or "no resource string found",
                                          (": " + ", ".join(g["rules"])) if g["rules"] else "")
                           for g in flow["windows_group"])
        rows[key] = groups or "none: " + flow.get("windows_group_note", "")
    return rows


def _endpoint(flow, side):
    return _host_and_addresses(flow[side + "_host"], flow[side + "_addresses"])


def _host_and_addresses(host, addresses):
    addrs = ", ".join(addresses)
    return "%s (%s)" % (host, addrs) if host else addrs


# One encoder for every line. A plan is a tree: looking for cycles (json.dumps does) is a tenth of the time.
_ENCODE = json.JSONEncoder(check_circular=False).encode


def render_json(plan, layout=None):
    """flows.json: each top-level key on its own line, and under it each flow, host, device or warning on one line.

    ``indent`` makes Python fall back to its pure-Python encoder (seconds on an estate of thousands of hosts); each
    line here is written by the C encoder, and a plan still reads (and diffs) one item per line. ``layout``: the
    planner's FlowLayout of the plan, if at hand (_json_flows).
    """
    if not isinstance(plan, dict):
        return json.dumps(plan) + "\n"
    encode = _ENCODE
    parts = ["{\n"]                   # joined once: flows.json is a hundred megabytes at ten thousand hosts
    last = len(plan) - 1
    for index, (key, value) in enumerate(plan.items()):
        comma = "," if index < last else ""
        if isinstance(value, dict) and value:
            parts.append("  %s: {\n    " % encode(key))
            for k, v in value.items():
                parts.extend((encode(k), ": ", encode(v), ",\n    "))
            parts[-1] = "\n  }%s\n" % comma
        elif isinstance(value, list) and value:
            parts.append("  %s: [\n    " % encode(key))
            items = _json_flows(value, layout) if key == "flows" else list(map(encode, value))
            lines = [",\n    "] * (2 * len(items) - 1)       # copied once, by the last join
            lines[::2] = items
            parts.extend(lines)
            parts.append("\n  ]%s\n" % comma)
        else:
            parts.append("  %s: %s%s\n" % (encode(key), encode(value), comma))
    parts.append("}\n")
    return "".join(parts)


def render_csv(plan, layout=None):
    """flows.csv: a row per flow. ``layout``: the planner's FlowLayout of the plan, if at hand (_csv_lines)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    lines = _csv_lines(plan["flows"], layout)
    if lines is None:
        writer.writerows(_csv_rows(plan["flows"]))
        return buf.getvalue()
    lines.insert(0, buf.getvalue())
    return "".join(lines)


def _csv_rows(flows):
    # one row at a time (a list of them all would set the garbage collector traversing the whole plan), and
    # nothing to do for the cells that are text (most) or None (the csv module writes an empty cell)
    for flow in flows:
        yield _csv_row(map(flow.get, CSV_COLUMNS))


def _csv_row(values):
    return [value if value.__class__ is str or value is None else
            " ".join(map(str, value)) if value.__class__ is list else _csv_cell(value)
            for value in values]


def _csv_texts():
    """A function: the cells of ``values`` as the csv module writes them in a row (quoted where needed,
    comma-separated)."""
    buf = io.StringIO()
    write = csv.writer(buf, lineterminator="\n").writerow

    def text(values):
        buf.seek(0)
        buf.truncate()
        # one more cell: a row of a single empty cell is written as "" (to tell it from no row at all)
        write(_csv_row(values) + ["-"])
        return buf.getvalue()[:-3]
    return text


# ---------------------------------------------------------------------------------------------------------
# flows.json and flows.csv: one line per flow, from parts that the flows of a plan repeat
# ---------------------------------------------------------------------------------------------------------
# A flow's line is its catalogue texts (the same for every flow of an id), its two ends (a host's name, addresses
# and zone: the same for every flow of the host) and the rest (protocol, ports, groups: mostly the same for the
# flows of an id). Each part is written once and looked up by value after that, which takes a third off the time
# of flows.json and half off flows.csv. A part is reused only for a value equal to the one it was written for, and
# only where equal means the same text: text, None and lists of them; ports and rpc_dynamic where all are ints and
# bools (1 == 1.0 == True); the dicts of the Windows groups where all have their keys in one order (dicts are
# equal in any order). The flows are checked for the last two once their lines are written (_uniform).
_CAT = ("id", "purpose", "source", "category", "src_role", "dst_role")
_SRC = ("src_host", "src_addresses", "src_zone")
_DST = ("dst_host", "dst_addresses", "dst_zone")
_HEAD = _CAT + _SRC + _DST
_CSV_TAIL = CSV_COLUMNS[CSV_COLUMNS.index("protocol"):]
_get_cat, _get_src, _get_dst = itemgetter(*_CAT), itemgetter(*_SRC), itemgetter(*_DST)
_PORTS = ("dst_ports", "src_ports")


_TEXT_CLASSES = {str: True}


def _is_text(value):
    """str, or a subclass of it that compares and hashes as str (ansible-core's tagged strings)."""
    cls = value.__class__
    known = _TEXT_CLASSES.get(cls)
    if known is None:
        known = _TEXT_CLASSES[cls] = issubclass(cls, str) and cls.__eq__ is str.__eq__ and cls.__hash__ is str.__hash__
    return known


def _plain(value):
    """Is a value equal to ``value`` written the same (text, None, lists of them)?"""
    if value is None or _is_text(value):
        return True
    if value.__class__ is list:
        return all(map(_plain, value))
    return False


def _plain_tail(keys, values):
    """_plain for the rest of a flow, where _uniform holds: ints for ports, bools for rpc_dynamic, and dicts of
    text (and lists of it) for the Windows groups."""
    for key, value in zip(keys, values):
        if key in _PORTS:
            plain = value.__class__ is list and all(port.__class__ is int for port in value)
        elif key == "rpc_dynamic":
            plain = value.__class__ is bool
        elif key == "windows_group":
            plain = value.__class__ is list and all(group.__class__ is dict and all(map(_plain, group.values()))
                                                    for group in value)
        else:
            plain = _plain(value)
        if not plain:
            return False
    return True


def _uniform(keys, tails):
    """Have ``tails`` (values of ``keys``) only ints for the ports, bools for rpc_dynamic, and one key order in
    the Windows groups? Checked once the lines are written (a few passes over values that are at hand then, none
    over the flows): where not, the lines are written again without reusing parts."""
    try:
        for index, key in enumerate(keys):
            values = map(itemgetter(index), tails)
            if key in _PORTS:
                uniform = set(map(type, chain.from_iterable(values))) <= {int}
            elif key == "rpc_dynamic":
                uniform = set(map(type, values)) <= {bool}
            elif key == "windows_group":
                uniform = len(set(map(tuple, chain.from_iterable(values)))) <= 1
            else:
                continue
            if not uniform:
                return False
    except TypeError:
        return False
    return True


def _json_part(keys, values):
    """The JSON of some keys of a flow as they are written in the flow's object (without the braces)."""
    return _ENCODE(dict(zip(keys, values)))[1:-1]


def _end_part(parts, end, write):
    """(end, its text) of a flow's end (host, addresses, zone): from ``parts`` where an equal end was written
    (a host's, or a network's addresses), else ``write(end)``, kept when _plain says equal is the same text."""
    key = end[0] or tuple(end[1])
    part = parts.get(key)
    if part is None or part[0] != end:
        part = (end, write(end))
        if _plain(list(end)):
            parts[key] = part
    return part


def _laid_out(flows, layout, kind_texts):
    """([kind_texts(its first flow) for each kind], [(host, addresses, zone) of each end]) of ``flows`` by their
    planner.FlowLayout: the parts their lines are written from, each once."""
    get = {"src": _get_src, "dst": _get_dst}
    return ([kind_texts(flows[first]) for first in layout.kinds],
            [get[side](flows[first]) for first, side in layout.ends])


def _json_flows(flows, layout=None):
    """The JSON of each flow, as _ENCODE writes it; with the planner's FlowLayout of ``flows``, from each kind's
    and end's JSON (written once: the layout says which flows share them)."""
    if layout is not None and layout.describes(flows):
        return _json_laid_out(flows, layout)
    encode = _ENCODE
    out = []
    append = out.append
    shapes = {}                       # the flow's keys (in order) -> (keys of the rest, its getter, {_CAT: parts},
    #                                   the rest of each flow written from parts)
    srcs, dsts = {}, {}               # a host (or a network's addresses) -> (end, its JSON)
    get_cat, get_src, get_dst, head = _get_cat, _get_src, _get_dst, len(_HEAD)
    src_json, dst_json = partial(_json_part, _SRC), partial(_json_part, _DST)
    for flow in flows:
        try:
            keys = tuple(flow)
            shape = shapes.get(keys)
            if shape is None:
                tail = keys[head:]
                shape = shapes[keys] = keys[:head] == _HEAD and len(tail) > 1 and (tail, itemgetter(*tail), {}, [])
            if not shape:
                append(encode(flow))
                continue
            tail_keys, get_tail, kinds, tails = shape
            cat, tail, src, dst = get_cat(flow), get_tail(flow), get_src(flow), get_dst(flow)
            for kind in kinds.get(cat, ()):     # an id's flows of several protocols or ports: a few
                if kind[0] == tail:
                    break
            else:
                kind = (tail, _json_part(_CAT, cat), _json_part(tail_keys, tail))
                if _plain(list(cat)) and _plain_tail(tail_keys, tail):
                    kinds.setdefault(cat, []).append(kind)
            src_part = _end_part(srcs, src, src_json)
            dst_part = _end_part(dsts, dst, dst_json)
        except TypeError:             # not a dict, unhashable values
            append(encode(flow))
            continue
        tails.append(tail)
        append("{%s, %s, %s, %s}" % (kind[1], src_part[1], dst_part[1], kind[2]))
    if not all(_uniform(shape[0], shape[3]) for shape in shapes.values() if shape):
        return list(map(encode, flows))
    return out


def _json_laid_out(flows, layout):
    def kind_texts(flow):
        tail_keys = tuple(flow)[len(_HEAD):]
        return _json_part(_CAT, _get_cat(flow)), _json_part(tail_keys, tuple(map(flow.get, tail_keys)))
    kinds, ends = _laid_out(flows, layout, kind_texts)
    srcs, dsts = [None] * len(ends), [None] * len(ends)
    out = []
    append = out.append
    for kind, src, dst in zip(layout.kind_of, layout.src_of, layout.dst_of):
        cat, tail = kinds[kind]
        src_text, dst_text = srcs[src], dsts[dst]
        if src_text is None:
            src_text = srcs[src] = _json_part(_SRC, ends[src])
        if dst_text is None:
            dst_text = dsts[dst] = _json_part(_DST, ends[dst])
        append("{%s, %s, %s, %s}" % (cat, src_text, dst_text, tail))
    return out


def _csv_lines(flows, layout=None):
    """The lines of flows.csv but its header (as the csv module writes them), or None where _uniform does not
    hold; with the planner's FlowLayout of ``flows``, from each kind's and end's cells (written once)."""
    if layout is not None and layout.describes(flows):
        return _csv_laid_out(flows, layout)
    out = []
    append = out.append
    kinds, ends = {}, {}              # (a host's cells are the same at either end)
    tails = []
    get_cat, get_src, get_dst, tail_keys, csv_text = _get_cat, _get_src, _get_dst, _CSV_TAIL, _csv_texts()
    for flow in flows:
        try:
            cat, src, dst = get_cat(flow), get_src(flow), get_dst(flow)
            tail = tuple(map(flow.get, tail_keys))
            for kind in kinds.get(cat, ()):
                if kind[0] == tail:
                    break
            else:
                kind = (tail, csv_text(cat[:-1]), csv_text(cat[-1:]), csv_text(tail))
                if _plain(list(cat)) and _plain_tail(tail_keys, tail):
                    kinds.setdefault(cat, []).append(kind)
            src_part = _end_part(ends, src, csv_text)
            dst_part = _end_part(ends, dst, csv_text)
        except (KeyError, TypeError):  # a cell missing (empty in the row), unhashable
            append(csv_text(map(flow.get, CSV_COLUMNS)) + "\n")
            continue
        tails.append(tail)
        append("%s,%s,%s,%s,%s\n" % (kind[1], src_part[1], kind[2], dst_part[1], kind[3]))
    return out if _uniform(tail_keys, tails) else None


def _csv_laid_out(flows, layout):
    csv_text = _csv_texts()

    def kind_texts(flow):
        cat = _get_cat(flow)
        return csv_text(cat[:-1]), csv_text(cat[-1:]), csv_text(tuple(map(flow.get, _CSV_TAIL)))
    kinds, ends = _laid_out(flows, layout, kind_texts)
    texts = [None] * len(ends)        # (an end's cells are the same at either end)
    out = []
    append = out.append
    for kind, src, dst in zip(layout.kind_of, layout.src_of, layout.dst_of):
        head, dst_role, tail = kinds[kind]
        src_text, dst_text = texts[src], texts[dst]
        if src_text is None:
            src_text = texts[src] = csv_text(ends[src])
        if dst_text is None:
            dst_text = texts[dst] = csv_text(ends[dst])
        append("%s,%s,%s,%s,%s\n" % (head, src_text, dst_role, dst_text, tail))
    return out


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------------------------------
# Grouping: hosts by zone and roles (the diagram's boxes, and the peers a table row may stand for)
# ---------------------------------------------------------------------------------------------------------
# Mermaid's defaults (maxEdges, maxTextSize): a diagram above either is not drawn at all, on GitHub either.
MERMAID_MAX_EDGES = 500
MERMAID_MAX_TEXT = 50000
# From this many hosts with the same section (or peers of one row that differ only in the host), flows.md
# writes them once.
GROUP_MIN = 3
# Names shown where one box or cell stands for several hosts or networks: the first ones, "...", the last.
SHOWN_NAMES = 3


def _zone(value):
    """A host's zone as text, or None (no zone, or several)."""
    return value if isinstance(value, str) else None


def _some(names, shown=SHOWN_NAMES):
    names = list(names)
    if len(names) <= shown + 1:
        return ", ".join(names)
    return "%s ... %s" % (", ".join(names[:shown]), names[-1])


def _role_key(plan, host):
    entry = plan["hosts"].get(host) or {}
    return (_zone(entry.get("zone")), tuple(entry.get("roles") or ()))


def _role_groups(plan):
    """{(zone, roles): [hosts]} of the plan's hosts that are not perimeter devices, in plan order."""
    groups = OrderedDict()
    for host in plan["hosts"]:
        if host not in plan["perimeter"]:
            groups.setdefault(_role_key(plan, host), []).append(host)
    return groups


def _group_text(key, count):
    zone, roles = key
    return "%d %s hosts%s" % (count, ", ".join(roles) or "other", (" in zone %s" % zone) if zone else "")


# ---------------------------------------------------------------------------------------------------------
# Which rule of a host each flow becomes
# ---------------------------------------------------------------------------------------------------------
_NETS = {}


def _ipv4(text):
    """An IPv4 address or network as the planner writes them (model.ipv4_number's canonical address, a prefix length
    without a leading zero), read at a fraction of the cost of ipaddress, which reads everything else (and what this
    turns down); the form _net gives."""
    found = model.ipv4_prefix(text) if text.__class__ is str else None
    if found is None:
        return None
    number, prefix = found
    return (4, prefix, 32, (number >> (32 - prefix)) << (32 - prefix))


def _net(text):
    """An address or network as (IP version, prefix length, address bits, network address as an int), or False."""
    net = _NETS.get(text)
    if net is None:
        net = _ipv4(text)
        if net is None:
            try:
                net = ipaddress.ip_network(str(text), strict=False)
                net = (net.version, net.prefixlen, net.max_prefixlen, int(net.network_address))
            except ValueError:
                net = False
        if len(_NETS) > 100000:
            _NETS.clear()
        _NETS[text] = net
    return net


class _Cover:
    """Does a rule's address list cover an address (empty: any)?  One set lookup per prefix length."""

    def __init__(self, cidrs):
        self.any = not cidrs
        sets = OrderedDict()
        for cidr in cidrs or ():
            net = _net(cidr)
            if net:
                sets.setdefault(net[:2], set()).add(net[3])
        self.sets = list(sets.items())

    def covers(self, cidrs):
        if self.any:
            return True
        for cidr in cidrs:
            net = _net(cidr)
            if not net:
                return False
            version, length, bits, addr = net
            for (net_version, prefix), nets in self.sets:
                if net_version == version and prefix <= length and (addr >> (bits - prefix) << (bits - prefix)) in nets:
                    break
            else:
                return False
        return True


_BOUNDS = {}
_KEYWORDS = frozenset(model.PORT_KEYWORDS)


def _port_covers(rule_ports, ports):
    """Every port of ``ports`` lies in one of ``rule_ports`` (ints, "low-high"; keywords never match)."""
    key = tuple(rule_ports)
    bounds = _BOUNDS.get(key)
    if bounds is None:
        bounds = []
        for spec in rule_ports:
            if isinstance(spec, int):
                bounds.append((spec, spec))
            elif isinstance(spec, str) and "-" in spec and spec not in model.PORT_KEYWORDS:
                low, high = spec.split("-", 1)
                bounds.append((int(low), int(high)))
        if len(_BOUNDS) > 10000:
            _BOUNDS.clear()
        _BOUNDS[key] = bounds
    return all(any(low <= int(port) <= high for low, high in bounds) for port in ports)


# A host's end of a flow: its source, its destination, or both (a flow between two of its own addresses).
SRC, DST, BOTH = 0, 1, 2


class _Kind:
    """A flow but for its two ends, once for all the flows that share it (most flows of an estate differ only in
    their ends): the texts of its row in flows.md, and what the rule that carries it on a host depends on."""

    def __init__(self, flow):
        self.id = flow["id"]
        self.protocol = flow["protocol"]
        self.rpc_dynamic = flow["rpc_dynamic"]
        self.dst_ports = flow["dst_ports"]
        self.src_ports = flow["src_ports"]
        self.prefix = "%s%s-%s-" % (flow["id"], ("-" + flow["via"]) if flow.get("via") else "",
                                    flow["protocol"].upper())
        self.label = _flow_label(flow)
        self.service = _service(flow)
        self.texts = (flow["purpose"], flow["source"], ", ".join(flow["perimeter"]) or "-")


def _kind_key(flow):
    """Equal for flows that _Kind cannot tell apart."""
    return (flow["id"], flow.get("via"), flow["protocol"], flow["rpc_dynamic"], tuple(flow["dst_ports"]),
            tuple(flow["src_ports"]), flow.get("rpc_dynamic_range", ""), tuple(flow.get("rpc_dynamic_ranges") or ()),
            flow.get("icmp_type"), flow["purpose"], flow["source"], tuple(flow["perimeter"]))


# What _kind_key reads of a flow that every flow has; the lists last.
_get_kind = itemgetter("id", "protocol", "rpc_dynamic", "purpose", "source", "dst_ports", "src_ports", "perimeter")
_LIST_OR_NONE = (list, type(None))


class _HostRules:
    """The planned rules of one host, and which of them carry a flow."""

    def __init__(self, entry):
        self.entry = entry
        self.by_flow = {}
        self.covers = {}
        self.tests = {}
        self.cells = {}
        self.tag = " (not applicable)" if entry.get("host_rules") == "not_applicable" else ""
        for direction in ("inbound", "outbound", "not_applicable_rules"):
            for rule in entry.get(direction) or []:
                self.by_flow.setdefault((rule["flow_id"], rule["protocol"]), []).append(rule)

    def _cover(self, rule, side):
        key = (id(rule), side)
        if key not in self.covers:
            self.covers[key] = _Cover(rule[side + "_addresses"])
        return self.covers[key]

    def _tests(self, kind, end):
        """The rules on the host that may carry a flow of ``kind`` with the host at ``end`` (in, out, the relay's
        replies: same flow id, protocol and ports), each as the address tests that decide it, in order: (a _Cover,
        the end of the flow whose addresses it must cover, the rule's name and tag); the first that passes counts."""
        tests = []
        for rule in self.by_flow.get((kind.id, kind.protocol), ()):
            rule_tests = []
            if end != SRC and rule["direction"] == "in":
                if kind.rpc_dynamic:
                    ports = not _KEYWORDS.isdisjoint(rule["dst_ports"])
                else:
                    ports = _port_covers(rule["dst_ports"], kind.dst_ports) and \
                        list(rule["src_ports"]) == list(kind.src_ports)
                if ports:
                    rule_tests.append((self._cover(rule, "src"), SRC, (rule["name"], "")))
            if end != DST:
                if rule["direction"] == "in" and kind.src_ports and kind.dst_ports and \
                        _port_covers(rule["src_ports"], kind.dst_ports) and \
                        _port_covers(rule["dst_ports"], kind.src_ports):
                    rule_tests.append((self._cover(rule, "src"), DST, (rule["name"], " (replies)")))
                elif rule["direction"] == "out" and list(rule["src_ports"]) == list(kind.src_ports) and \
                        _port_covers(rule["dst_ports"], kind.dst_ports):
                    rule_tests.append((self._cover(rule, "dst"), DST, (rule["name"], "")))
            if rule_tests:
                tests.append(rule_tests)
        return tests

    def cell(self, number, kind, end, src, dst):
        """The rule cell of a flow of ``kind`` (its number in _HostFlows.kinds) from the end ``src`` to ``dst``
        with the host at ``end``: the names of the rules on the host that carry it (addresses that cover the
        flow's), or why none is needed."""
        slot = 3 * number + end       # an int: cheaper to hash than a (kind, end) tuple, once a flow
        tests = self.tests.get(slot)
        if tests is None:
            tests = self.tests[slot] = self._tests(kind, end)
        out = []
        for rule_tests in tests:
            for cover, side, item in rule_tests:
                if cover.covers((dst if side == DST else src)[1]):
                    out.append(item)
                    break
        key = (slot, tuple(out))
        text = self.cells.get(key)
        if text is None:
            text = self.cells[key] = self._text(kind, end, out)
        return text

    def _text(self, kind, end, out):
        # rules named after the flow's own id, via and protocol (REMEDIATION-CM-MP-TCP-IN for REMEDIATION via
        # CM-MP) win over others that also match
        own = [item for item in out if item[0].startswith(kind.prefix)]
        names = [name + tag + self.tag for name, tag in (own or out)]
        if names:
            return ", ".join(names)
        if end == SRC and self.entry.get("outbound_policy") != "block":
            return "- (outbound allowed)"
        if end != SRC and self.entry.get("platform") == "windows" and \
                catalogue.has_trait(kind.id, "windows_exempt"):
            return "- (Windows permits IKE and ESP itself)"
        return "-"


# ---------------------------------------------------------------------------------------------------------
# flows.md
# ---------------------------------------------------------------------------------------------------------
SELF = object()          # the host (or each host) of the section, in a row
FLOW_HEADER = ("| flow | from | to | service | rule here | purpose | source | perimeter |",
               "|---|---|---|---|---|---|---|---|")


def _flow_label(flow):
    return flow["id"] + (" (%s)" % flow["via"] if flow.get("via") else "")


class _HostFlows:
    """What a host's section depends on of its flows, so that hosts with equal ones share the work (one pass over
    the flows). ``by_host``: {host: its flows in plan order}, each flow four numbers: its _Kind in ``kinds``, the
    host's end of it (SRC, DST or BOTH), and its source and destination in ``ends`` (host, addresses), the host's
    own end None unless the flow is between two of its addresses. Numbers rather than a tuple per flow: the cyclic
    garbage collector skips them, while a few hundred thousand new tuples set it traversing the whole plan.
    ``layout``: the planner's FlowLayout of the plan, if at hand: then each of its kinds is found once, not each
    flow's (_laid_out; the same numbers)."""

    def __init__(self, plan, layout=None):
        self.kinds, self.kind_index = [], {}
        self.ends, self.end_index = [], {}
        self.by_host = defaultdict(list)
        self.others = []              # the flows between two networks
        # kind -> its first flow with Windows groups: a label's first such flow is the first of its kinds' here
        self.grouped = OrderedDict()
        # host (or a network's None) -> [its flows in by_host, the addresses of its last end, that end's number]:
        # one look-up a host a flow
        self.records = {}
        if layout is not None and layout.describes(plan["flows"]):
            self._laid_out(plan["flows"], layout)
        else:
            self._by_value(plan["flows"])

    def _kind(self, flow):
        key = _kind_key(flow)
        kind = self.kind_index.get(key)
        if kind is None:
            kind = self.kind_index[key] = len(self.kinds)
            self.kinds.append(_Kind(flow))
        return kind

    def _laid_out(self, flows, layout):
        """The numbers from the layout's kinds and ends: each found once, in the order _by_value finds them."""
        others, grouped = self.others, self.grouped
        get_record, new_record, end_of = self.records.get, self._record, self._end
        kinds = [self._kind(flows[first]) for first in layout.kinds]
        # a kind's first flow with Windows groups: the flows of a layout kind have the same keys, and the layout's
        # kinds come in the order of their first flows
        for kind, first in zip(kinds, layout.kinds):
            if kind not in grouped and "windows_group" in flows[first]:
                grouped[kind] = flows[first]
        ends = [(flows[first][side + "_host"], flows[first][side + "_addresses"]) for first, side in layout.ends]
        hosts = [host for host, _addresses in ends]
        numbers = [None] * len(ends)          # an end's number in self.ends
        lists = [None] * len(ends)            # the by_host list of an end's host
        for index, (kind, src, dst) in enumerate(zip(layout.kind_of, layout.src_of, layout.dst_of)):
            kind = kinds[kind]
            src_host, dst_host = hosts[src], hosts[dst]
            if not (src_host or dst_host):
                others.append(flows[index])
                continue
            # (the look-ups below are written out, not a helper: this loop runs once per flow)
            if src_host:
                src_list = lists[src]
                if src_list is None:
                    src_list = lists[src] = (get_record(src_host) or new_record(src_host))[0]
                if src_host == dst_host:
                    src_end = numbers[src]
                    if src_end is None:
                        src_end = numbers[src] = end_of(*ends[src])
                    dst_end = numbers[dst]
                    if dst_end is None:
                        dst_end = numbers[dst] = end_of(*ends[dst])
                    src_list.extend((kind, BOTH, src_end, dst_end))
                    continue
                dst_end = numbers[dst]
                if dst_end is None:
                    dst_end = numbers[dst] = end_of(*ends[dst])
                src_list.extend((kind, SRC, None, dst_end))
            if dst_host:
                dst_list = lists[dst]
                if dst_list is None:
                    dst_list = lists[dst] = (get_record(dst_host) or new_record(dst_host))[0]
                src_end = numbers[src]
                if src_end is None:
                    src_end = numbers[src] = end_of(*ends[src])
                dst_list.extend((kind, DST, src_end, None))

    def _by_value(self, flows):
        kind_index, grouped, others = self.kind_index, self.grouped, self.others
        get_record, new_record, end_of = self.records.get, self._record, self._end
        seen = {}                     # id -> [(the fields _kind_key reads, as they are, its kind)]
        get_kind = _get_kind
        for flow in flows:
            # equal fields make an equal _kind_key, which costs three times as much to build and hash; lists are
            # equal only to lists, which make equal tuples there (not so dicts: equal in any order)
            fields = (get_kind(flow), flow.get("via"), flow.get("rpc_dynamic_range", ""),
                      flow.get("rpc_dynamic_ranges"), flow.get("icmp_type"))
            for known, kind in seen.get(fields[0][0], ()):
                if known == fields:
                    break
            else:
                kind = self._kind(flow)
                if all(value.__class__ is list for value in fields[0][-3:]) and fields[3].__class__ in _LIST_OR_NONE:
                    seen.setdefault(fields[0][0], []).append((fields, kind))
            if kind not in grouped and "windows_group" in flow:
                grouped[kind] = flow
            src_host, dst_host = flow["src_host"], flow["dst_host"]
            if src_host:
                src = get_record(src_host) or new_record(src_host)
                if src_host == dst_host:
                    src[0].extend((kind, BOTH, end_of(src_host, flow["src_addresses"]),
                                   end_of(dst_host, flow["dst_addresses"])))
                elif dst_host:
                    # _end inline for its usual case: the host's addresses of its last flow
                    dst = get_record(dst_host) or new_record(dst_host)
                    addresses = flow["dst_addresses"]
                    src[0].extend((kind, SRC, None, dst[2] if dst[1] == addresses else end_of(dst_host, addresses)))
                    addresses = flow["src_addresses"]
                    dst[0].extend((kind, DST, src[2] if src[1] == addresses else end_of(src_host, addresses), None))
                else:
                    src[0].extend((kind, SRC, None, end_of(dst_host, flow["dst_addresses"])))
            elif dst_host:
                dst = get_record(dst_host) or new_record(dst_host)
                dst[0].extend((kind, DST, end_of(src_host, flow["src_addresses"]), None))
            else:
                others.append(flow)

    def _record(self, host):
        record = self.records[host] = [self.by_host[host] if host else [], _NO_END, None]
        return record

    def _end(self, host, addresses):
        record = self.records.get(host) or self._record(host)
        if record[1] == addresses:    # a host's flows mostly have the same addresses for it
            return record[2]
        key = (host, tuple(addresses))
        index = self.end_index.get(key)
        if index is None:
            index = self.end_index[key] = len(self.ends)
            self.ends.append(key)
        record[1], record[2] = addresses, index
        return index


_NO_END = object()        # the addresses of a host's last end before it has one: equal to none


def _endpoint_text(ends, end, memo):
    text = memo.get(end)
    if text is None:
        text = memo[end] = _host_and_addresses(*ends[end])
    return text


def _host_rows(plan, index, flows, rules, groups, memo):
    """The rows of a host's flow table (cells with SELF for the host's own end) for its ``flows`` (as _HostFlows
    has them). Rows that differ only in a peer host of one zone and roles, from GROUP_MIN of them on, are one row
    that says how many hosts it stands for (and names some); fewer stay one row each.

    ``memo`` (one per rendering) keeps what does not depend on the host: endpoint texts, a peer's key.
    """
    texts = memo.setdefault("endpoint", {})
    # numbers for what a row's bucket is looked up by (ints hash faster than the tuples they stand for): an end's
    # peer (its host's _role_key, or None for a network or perimeter device) and a kind's texts
    peers = memo.setdefault("peer", {})
    peer_numbers = memo.setdefault("peer_numbers", {})
    kind_texts = memo.setdefault("kind_texts", {})
    text_numbers = memo.setdefault("text_numbers", {})
    kinds, ends = index.kinds, index.ends
    perimeter = plan["perimeter"]
    cell_of = rules.cell
    buckets = OrderedDict()           # one row, or rows that differ only in the peer: [row, peers' ends]
    numbers = iter(flows)
    for number, end, src, dst in zip(numbers, numbers, numbers, numbers):
        kind = kinds[number]
        cell = cell_of(number, kind, end, None if src is None else ends[src], None if dst is None else ends[dst])
        peer_end = dst if end == SRC else src if end == DST else None
        peer = None
        if peer_end is not None:
            peer = peers.get(peer_end, SELF)
            if peer is SELF:
                host = ends[peer_end][0]
                if host and host not in perimeter:
                    peer_key = _role_key(plan, host)
                    peer = peer_numbers.setdefault(peer_key, (len(peer_numbers), peer_key))
                else:
                    peer = None
                peers[peer_end] = peer
        if peer is None:
            row = (kind.label, SELF if end == SRC else _endpoint_text(ends, src, texts),
                   SELF if end == DST else _endpoint_text(ends, dst, texts), kind.service, cell) + kind.texts
            buckets[len(buckets)] = (None, None, row, None)
            continue
        kind_text = kind_texts.get(number)
        if kind_text is None:
            kind_text = kind_texts[number] = text_numbers.setdefault((kind.label, kind.service) + kind.texts,
                                                                     len(text_numbers))
        # (peer_key, the peer's side, kind.label, kind.service, cell, kind.texts), as numbers where they can be
        key = (peer[0], end, kind_text, cell)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = (peer[1], 2 if end == SRC else 1,
                                     (kind.label, SELF, SELF, kind.service, cell) + kind.texts, [])
        bucket[3].append(peer_end)
    rows = []
    for peer_key, peer_side, row, peer_ends in buckets.values():
        if peer_ends is None:
            rows.append(row)
            continue
        cells = list(row)
        if len(peer_ends) < GROUP_MIN:
            for peer_end in peer_ends:
                cells[peer_side] = _endpoint_text(ends, peer_end, texts)
                rows.append(tuple(cells))
            continue
        peers = [ends[peer_end][0] for peer_end in peer_ends]
        hosts = groups.get(peer_key) or []
        text = _group_text(peer_key, len(hosts))
        if len(set(peers)) != len(hosts):
            text = "%d of the %s" % (len(set(peers)), text)
        cells[peer_side] = "%s (%s)" % (text, _some(peers))
        rows.append(tuple(cells))
    return tuple(rows)


def _rule_rows(entry):
    rows = []
    for direction in ("inbound", "outbound", "not_applicable_rules"):
        for rule in entry.get(direction) or []:
            remote = rule["src_addresses"] if rule["direction"] == "in" else rule["dst_addresses"]
            label = rule["direction"] + (" (not applicable)" if direction == "not_applicable_rules" else "")
            rows.append((rule["name"], label, rule["flow_id"], rule["protocol"],
                         ", ".join(remote) or "any", _ports(rule["dst_ports"]) or "-",
                         _ports(rule["src_ports"]) or "-"))
    return tuple(rows)


def _section_key(entry, flows):
    """Equal for hosts whose sections _section cannot tell apart: the entry's fields it reads, its rules, its flows
    (as _HostFlows has them, without the host's own name and addresses)."""
    rules = tuple(tuple((rule["name"], rule["direction"], rule["flow_id"], rule["protocol"],
                         tuple(rule["src_addresses"]), tuple(rule["dst_addresses"]), tuple(rule["src_ports"]),
                         tuple(rule["dst_ports"])) for rule in entry.get(direction) or ())
                  for direction in ("inbound", "outbound", "not_applicable_rules"))
    return _entry_fields(entry) + (rules, flows)


def _entry_fields(entry):
    """What a host's section shows of its entry besides its rules and flows."""
    return (tuple(entry["roles"]), entry["platform"], repr(entry["zone"]), entry.get("outbound_policy"),
            entry.get("windows_version"), entry.get("host_rules"))


def _section(plan, index, entry, flows, groups, memo):
    """The signature of one host's section: the same for hosts whose sections differ only in the host's own
    name and addresses (roles, platform, zone, the rules, the rows with SELF for the host)."""
    rows = _host_rows(plan, index, flows, _HostRules(entry), groups, memo)
    return _entry_fields(entry) + (len(flows) // 4, _rule_rows(entry), rows)


def _write_section(lines, plan, hosts, sig):
    roles, platform, _zone_repr, _policy, version, host_rules, nflows, rule_rows, rows = sig
    entry = plan["hosts"][hosts[0]]
    if version:
        platform = "%s %s" % (platform, version)
    zone_text = entry["zone"] if isinstance(entry["zone"], str) else (", ".join(entry["zone"] or []) or "none")
    inbound, outbound = len(entry["inbound"]), len(entry["outbound"])
    if len(hosts) == 1:
        host = hosts[0]
        lines.append("## %s (%s)" % (host, ", ".join(roles)))
        lines.append("")
        lines.append("Platform %s, address %s, zone %s; %d flows, %d inbound and %d outbound rules."
                     % (platform, ", ".join(entry["addresses"]), zone_text, nflows, inbound, outbound))
        self_text = "%s (%s)" % (host, ", ".join(entry["addresses"]))
    else:
        lines.append("## %d hosts: %s (zone %s)" % (len(hosts), ", ".join(roles), zone_text))
        lines.append("")
        lines.append("These hosts have the same flows and the same rules; only their own name and address "
                     "differ (addresses in flows.csv): %s." % ", ".join(hosts))
        lines.append("")
        lines.append("Platform %s, zone %s; each host: %d flows, %d inbound and %d outbound rules."
                     % (platform, zone_text, nflows, inbound, outbound))
        self_text = "each host"
    if platform == "none":
        lines.append("")
        lines.append("Ansible does not manage %s (platform none): the rules are planned, not converged."
                     % ("this host" if len(hosts) == 1 else "these hosts"))
    if host_rules == "not_applicable":
        lines.append("")
        lines.append("Host rules are not applicable: %s. The rules it would need are listed as not applicable; "
                     "%d of them." % (entry.get("host_rules_note") or "the host's firewall cannot be written",
                                      len(entry.get("not_applicable_rules") or [])))
    lines.append("")
    if rule_rows:
        lines.append("| rule | direction | flow | protocol | remote addresses | ports | source ports |")
        lines.append("|---|---|---|---|---|---|---|")
        for row in rule_rows:
            lines.append("| %s |" % " | ".join(_md_cell(x) for x in row))
        lines.append("")
    if not rows:
        lines.append("No flows.")
        lines.append("")
        return
    lines.extend(FLOW_HEADER)
    for row in rows:
        lines.append("| %s |" % " | ".join(_md_cell(self_text if c is SELF else c) for c in row))
    lines.append("")


INTRO = ("Each host section lists the rules planned on the host (what its firewall gets), then its flows; the "
         "column *rule here* names the rule each flow becomes on this host: an inbound rule for a flow the host "
         "receives, an outbound rule for a flow it sends when its outbound policy is block (with allow, the "
         "default, a flow it sends needs no rule there). Hosts with the same flows and rules (many identical "
         "RADIUS clients, DCs, ...) share one section, and a row that stands for several peer hosts of one zone "
         "and roles names how many; flows.csv and flows.json have every flow one by one.")


def render_markdown(plan, mermaid=None, layout=None):
    """flows.md; ``mermaid``: render_mermaid(plan) when the caller has it already (render_all); ``layout``: the
    planner's FlowLayout of the plan, if at hand (_HostFlows)."""
    lines = ["# NAP flow matrix", ""]
    settings = plan["settings"]
    lines.append("Generated by configmgr.nap from the inventory; %d flows, %d hosts, %d perimeter devices."
                 % (len(plan["flows"]), len(plan["hosts"]), len(plan["perimeter"])))
    lines.append("")
    lines.append("Settings: " + "; ".join(
        "`%s`: %s" % (k, v if not isinstance(v, list) else (", ".join(map(str, v)) or "none"))
        for k, v in settings.items() if k != "nap_zones"))
    lines.append("")
    if plan.get("warnings"):
        lines.append("## Warnings")
        lines.append("")
        lines.extend("- " + w for w in plan["warnings"])
        lines.append("")
    if mermaid is None:
        mermaid = render_mermaid(plan)
    lines.append("## Topology")
    lines.append("")
    lines.append("Hosts grouped by zone and roles (a box of several hosts says how many and names some), the "
                 "perimeter devices, and arrows labelled with the flow ids between them; also in topology.mmd.")
    lines.append("")
    lines.append("```mermaid")
    lines.extend(mermaid.splitlines())
    lines.append("```")
    lines.append("")
    lines.append(INTRO)
    lines.append("")
    index = _HostFlows(plan, layout)
    groups = _role_groups(plan)
    sections = OrderedDict()          # signature -> hosts, in plan order
    signatures = {}                   # _section_key -> signature: most hosts of a role share it, worked out once
    memo = {}
    for host, entry in plan["hosts"].items():
        flows = tuple(index.by_host.get(host, ()))
        key = _section_key(entry, flows)
        sig = signatures.get(key)
        if sig is None:
            sig = signatures[key] = _section(plan, index, entry, flows, groups, memo)
        sections.setdefault(sig, []).append(host)
    for sig, hosts in sections.items():
        if len(hosts) >= GROUP_MIN:
            _write_section(lines, plan, hosts, sig)
        else:
            for host in hosts:
                _write_section(lines, plan, [host], sig)
    others = index.others
    if others:
        lines.append("## Between networks")
        lines.append("")
        lines.extend(FLOW_HEADER)
        for flow in others:
            lines.append("| %s |" % " | ".join(_md_cell(x) for x in (
                _flow_label(flow), _endpoint(flow, "src"), _endpoint(flow, "dst"), _service(flow), "-",
                flow["purpose"], flow["source"], ", ".join(flow["perimeter"]) or "-")))
        lines.append("")
    group_rows = _group_rows(plan, index)
    if group_rows:
        lines.append("## Windows predefined rule groups")
        lines.append("")
        lines.append("The predefined groups (matched by resource string; English names shown) and rules that cover "
                     "each flow on its destination.")
        lines.append("")
        lines.append("| flow | group (resource string): rules |")
        lines.append("|---|---|")
        for label, text in group_rows.items():
            lines.append("| %s | %s |" % (_md_cell(label), _md_cell(text)))
        lines.append("")
    for dev, entry in plan["perimeter"].items():
        lines.append("## Perimeter %s (%s; zones %s)" % (dev, entry["platform"], ", ".join(entry["zones"])))
        lines.append("")
        lines.append("| rule | protocol | from | to | ports | source ports |")
        lines.append("|---|---|---|---|---|---|")
        for rule in entry["forward"]:
            lines.append("| %s | %s | %s | %s | %s | %s |" % tuple(_md_cell(x) for x in (
                rule["name"], rule["protocol"], ", ".join(rule["src_addresses"]) or "any",
                ", ".join(rule["dst_addresses"]) or "any", _ports(rule["dst_ports"]) or "-",
                _ports(rule["src_ports"]) or "-")))
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# topology.mmd
# ---------------------------------------------------------------------------------------------------------
def _node_id(text):
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", text)


class _Ids:
    """Stable node ids derived from the names, never two names on one id (``a.b`` and ``a-b``)."""

    def __init__(self):
        self.ids = {}
        self.used = set()

    def __call__(self, key, hint):
        if key not in self.ids:
            base = _node_id(hint)
            nid, i = base, 2
            while nid in self.used:
                nid, i = "%s_%d" % (base, i), i + 1
            self.used.add(nid)
            self.ids[key] = nid
        return self.ids[key]


def _esc(text):
    """Text for a quoted Mermaid label: its entity codes for the characters a label cannot hold."""
    text = str(text).replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return text.replace("\r", " ").replace("\n", " ")


def _label(*parts):
    return "<br/>".join(_esc(p) for p in parts)


_SIDE_KEYS = (("src_host", "src_zone", "src_addresses", "src_role"),
              ("dst_host", "dst_zone", "dst_addresses", "dst_role"))


def _diagram(plan, detail):
    """(lines, number of edges) of the diagram: hosts grouped by zone and roles (``detail`` "roles") or by
    zone only ("zones"), networks by zone and role (or zone), perimeter devices one by one."""
    ids = _Ids()
    nodes = OrderedDict()             # key -> {"zone", "members", "roles", "kind"}
    zones = OrderedDict()             # zone -> [keys]
    where = {}                        # host -> the number of its key
    # keys by number: an edge is looked up once a flow, by two ints rather than two tuples (cheaper to hash)
    numbers, keys, members = {}, [], []

    def number(key):
        no = numbers.get(key)
        if no is None:
            no = numbers[key] = len(keys)
            keys.append(key)
            node = nodes.get(key)
            members.append(None if node is None else node["members"])
        return no

    def add(key, zone, member, roles, kind):
        node = nodes.get(key)
        if node is None:
            node = nodes[key] = {"zone": zone, "members": [], "roles": [], "kind": kind, "seen": set()}
            zones.setdefault(zone, []).append(key)
        if member not in node["seen"]:      # a box may hold thousands of hosts
            node["seen"].add(member)
            node["members"].append(member)
        for role in roles:
            if role not in node["roles"]:
                node["roles"].append(role)
        return number(key)

    for host, entry in plan["hosts"].items():
        if host in plan["perimeter"]:
            where[host] = number(("device", host))
            continue
        zone = _zone(entry["zone"])
        group = tuple(entry["roles"]) if detail == "roles" else ()
        where[host] = add(("hosts", zone, group), zone, host, entry["roles"], "hosts")

    net_roles = OrderedDict()         # (zone, addresses) -> the roles the networks play (client, restricted...)
    for flow in plan["flows"]:
        if flow["src_host"] and flow["dst_host"]:     # most flows: between two hosts
            continue
        for host_key, zone_key, addresses_key, role_key in _SIDE_KEYS:
            if not flow[host_key]:
                roles = net_roles.setdefault((_zone(flow[zone_key]), ", ".join(flow[addresses_key])), [])
                if flow[role_key] not in roles:
                    roles.append(flow[role_key])

    def endpoint(flow, side):
        host = flow[side + "_host"]
        zone = _zone(flow[side + "_zone"])
        if host:
            if host not in where:
                where[host] = add(("hosts", zone, (flow[side + "_role"],)), zone, host, [flow[side + "_role"]],
                                  "hosts")
            return where[host]
        addresses = ", ".join(flow[side + "_addresses"])
        roles = net_roles[(zone, addresses)]
        return add(("nets", zone, tuple(roles) if detail == "roles" else ()), zone, addresses, roles, "nets")

    edges = OrderedDict()             # (source's number, destination's number) -> labels
    get = where.get
    for flow in plan["flows"]:
        src_host, dst_host = flow["src_host"], flow["dst_host"]
        src = get(src_host) if src_host else None       # most ends: a host of the plan
        if src is None:
            src = endpoint(flow, "src")
        dst = get(dst_host) if dst_host else None
        if dst is None:
            dst = endpoint(flow, "dst")
        # a loop only on a box of several hosts or networks, for a flow between two of them
        if src == dst and (members[src] is None or len(members[src]) < 2 or (src_host or "") == (dst_host or "")):
            continue
        labels = edges.get((src, dst))
        if labels is None:
            labels = edges[(src, dst)] = []
        if flow["id"] not in labels:
            labels.append(flow["id"])
    for dev, entry in plan["perimeter"].items():
        for zone in entry["zones"]:
            zones.setdefault(zone, [])

    lines = ["flowchart LR"]
    for zone, members in zones.items():
        indent = "    "
        if zone:
            lines.append('    subgraph %s["%s"]' % (ids(("zone", zone), "zone_" + zone), _label("zone " + zone)))
            indent = "        "
        for key in members:
            node = nodes[key]
            names = node["members"]
            if node["kind"] == "hosts":
                hint = names[0] if len(names) == 1 else "g_%s_%s" % (zone or "", "_".join(key[2]) or "hosts")
                if len(names) == 1:
                    text = _label(names[0], ", ".join(node["roles"]))
                else:
                    text = _label("%d hosts: %s" % (len(names), _some(names)), ", ".join(node["roles"]))
            else:
                hint = names[0] if len(names) == 1 else "nets_%s_%s" % (zone or "", "_".join(key[2]) or "all")
                what = " / ".join(r.replace("_", " ") for r in node["roles"])
                text = _label(what, names[0] if len(names) == 1 else "%d: %s" % (len(names), _some(names)))
            lines.append('%s%s["%s"]' % (indent, ids(key, hint), text))
        if zone:
            lines.append("    end")
    count = 0
    for dev, entry in plan["perimeter"].items():
        dev_id = ids(("device", dev), dev)
        lines.append('    %s{{"%s"}}' % (dev_id, _label(dev, "perimeter %s" % entry["platform"])))
        for zone in entry["zones"]:
            lines.append("    %s --- %s" % (dev_id, ids(("zone", zone), "zone_" + zone)))
            count += 1
    for (src, dst), labels in edges.items():
        src, dst = keys[src], keys[dst]
        src_id = ids(src, src[1]) if src[0] == "device" else ids(src, "")
        dst_id = ids(dst, dst[1]) if dst[0] == "device" else ids(dst, "")
        lines.append('    %s -->|"%s"| %s' % (src_id, _esc(", ".join(labels)), dst_id))
        count += 1
    return lines, count


def render_mermaid(plan):
    """The topology as a Mermaid flowchart: hosts grouped by zone and roles, so that it stays within Mermaid's
    default limits (MERMAID_MAX_EDGES, MERMAID_MAX_TEXT) at estate size; should an estate still exceed them,
    hosts are grouped by zone only."""
    lines, edges = _diagram(plan, "roles")
    text = "\n".join(lines) + "\n"
    if edges > MERMAID_MAX_EDGES or len(text) > MERMAID_MAX_TEXT:
        lines, edges = _diagram(plan, "zones")
        text = "\n".join(lines) + "\n"
    return text


RENDERERS = {"json": render_json, "csv": render_csv, "md": render_markdown, "mermaid": render_mermaid}


def render_all(plan, formats=None, layout=None):
    """{file name: text} for the requested formats (all by default); ``layout``: the planner's FlowLayout of the
    plan, if at hand (flows.json, flows.csv and flows.md are written faster with it)."""
    formats = formats or list(REPORT_FILES)
    out = OrderedDict()
    mermaid = None
    for fmt in formats:
        if fmt == "md":
            mermaid = render_mermaid(plan) if mermaid is None else mermaid
            out[REPORT_FILES[fmt]] = render_markdown(plan, mermaid, layout)
        elif fmt == "mermaid":
            mermaid = render_mermaid(plan) if mermaid is None else mermaid
            out[REPORT_FILES[fmt]] = mermaid
        else:
            out[REPORT_FILES[fmt]] = RENDERERS[fmt](plan, layout) if fmt in ("json", "csv") else RENDERERS[fmt](plan)
    return out
