# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flows.json and flows.csv write each flow from parts reused by value (report._json_flows, report._csv_lines):
the same text as encoding each flow whole and writing each row with the csv module, also where equal values are
not written the same (1, 1.0 and True; dicts in another key order) and for hostile texts. report._net reads
IPv4 itself: the same as ipaddress."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import csv
import io
import ipaddress
import random

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner, report
from test_report import load_example  # pylint: disable=import-error


def example_plan():
    """The plan of examples/inventory.yml (groups and host vars flattened as Ansible would)."""
    return planner.plan(*load_example())


def reference_json(flows):
    return list(map(report._ENCODE, flows))


def reference_csv(flows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(report._csv_rows(flows))
    return buf.getvalue()


def check(flows):
    assert report._json_flows(flows) == reference_json(flows)
    lines = report._csv_lines(flows)
    assert "".join(reference_csv(flows) if lines is None else lines) == reference_csv(flows)


def flow(fid="A", src="h1", dst="h2", **extra):
    out = {"id": fid, "purpose": "p %s" % (fid,), "source": "seed", "category": "seed", "src_role": "client",
           "dst_role": "server", "src_host": src, "src_addresses": ["10.0.0.1/32"], "src_zone": "z1",
           "dst_host": dst, "dst_addresses": ["10.0.0.2/32"], "dst_zone": "z2", "protocol": "tcp",
           "dst_ports": [443], "src_ports": [], "rpc_dynamic": False, "perimeter": [],
           "windows_group": [{"name": "g", "resource": None, "rules": ["r1", "r2"]}]}
    out.update(extra)
    return out


def test_example_plan():
    flows = example_plan()["flows"]
    assert report._csv_lines(flows) is not None
    check(flows)


@pytest.mark.parametrize("variant", [
    {"dst_ports": [443.0]}, {"dst_ports": [True]}, {"src_ports": [1]}, {"src_ports": [True]},
    {"rpc_dynamic": 0}, {"rpc_dynamic": None}, {"dst_ports": None}, {"dst_ports": ["443"]},
    {"windows_group": [{"resource": None, "name": "g", "rules": ["r1", "r2"]}]},
    {"windows_group": [{"name": "g", "resource": None, "rules": ("r1", "r2")}]},
    {"windows_group": None}, {"perimeter": ("fw1",)}, {"src_zone": ["z1", "z3"]}, {"src_zone": None},
])
def test_equal_values_written_otherwise(variant):
    """A flow equal to an earlier one (1 == 1.0 == True, dicts in any order) but written otherwise."""
    flows = [flow(), flow(dst="h3"), flow(dst="h3", **variant), flow(), flow(**variant), flow(dst="h4")]
    check(flows)
    check(list(reversed(flows)))


@pytest.mark.parametrize("key", ["dst_ports", "src_ports", "src_addresses", "perimeter", "rpc_dynamic_ranges"])
@pytest.mark.parametrize("values", [(1, True, 1.0), (0, False, 0.0, -0.0)])
def test_equal_numbers(key, values):
    for value in values:
        flows = [flow(**{key: [other]}) for other in values] + [flow(**{key: [value]})]
        check(flows)
        check(flows[::-1])
    for value in values:
        for other in ("id", "src_host", "dst_zone", "via", "protocol"):
            check([flow(**{other: value}) for value in values] + [flow(**{other: value})])


def test_hostile_texts_and_shapes():
    weird = ["a,b", 'say "hi"', "line\nbreak", "cr\rhere", " lead", "trail ", "", "é ü \u2028 \U0001f600",
             "back\\slash", "tab\there", "x" * 300, 1, 1.0, True, 0, False, None]
    rng = random.Random(7)
    flows = []
    for index in range(400):
        item = flow(fid=rng.choice(["A", "B", rng.choice(weird)]), src=rng.choice(["h1", "h2", None, "", "h,3"]),
                    dst=rng.choice(["h1", "h4", None, rng.choice(weird)]))
        for key in ("purpose", "src_role", "dst_zone", "protocol", "category"):
            if rng.random() < 0.2:
                item[key] = rng.choice(weird + [None])
        if rng.random() < 0.3:
            item["src_addresses"] = rng.sample(["10.0.0.%d/32" % i for i in range(5)] + weird[:3], 2)
        if rng.random() < 0.2:
            item["dst_ports"] = rng.sample([53, 88, 135, 443, "49152-65535"], 2)
        if rng.random() < 0.2:
            item["via"] = rng.choice(weird)
        if rng.random() < 0.2:
            item["rpc_dynamic"] = True
            item["rpc_dynamic_range"] = "49152-65535"
            item["rpc_dynamic_ranges"] = ["49152-65535", rng.choice(weird)]
        if rng.random() < 0.1:
            item["windows_group"] = []
            item["windows_group_note"] = rng.choice(weird)
        if rng.random() < 0.05:
            item = dict(reversed(list(item.items())))           # another key order
        if rng.random() < 0.05:
            del item[rng.choice(["dst_zone", "src_host", "purpose", "protocol"])]
        if rng.random() < 0.02:
            item["src_host"] = ["unhashable"]
        flows.append(item)
        if rng.random() < 0.3:
            flows.append(copy.deepcopy(item))
    check(flows)
    check(flows[::-1])


def test_other_plans_fall_back():
    flows = [flow(), flow(dst="h3")]
    for broken in ({"dst_ports": [1.5]}, {"rpc_dynamic": 1}):
        other = flows + [flow(**broken)]
        assert report._csv_lines(other) is None
        check(other)
    del flows[0]["windows_group"]              # not in flows.csv
    assert report._csv_lines(flows) is not None
    check(flows)


def test_render_json_and_csv_of_flows():
    plan = example_plan()
    rows = list(csv.reader(io.StringIO(report.render_csv(plan))))
    assert rows[0] == list(report.CSV_COLUMNS) and len(rows) == len(plan["flows"]) + 1
    assert report.render_json(plan).count("\n    {\"id\": ") == len(plan["flows"])


def reference_net(text):
    try:
        net = ipaddress.ip_network(str(text), strict=False)
        return (net.version, net.prefixlen, net.max_prefixlen, int(net.network_address))
    except ValueError:
        return False


def test_net_reads_ipv4_as_ipaddress_does():
    """report._net reads the planner's IPv4 addresses and networks itself (_ipv4): the same as ipaddress, and what
    it turns down (leading zeros, netmasks, spaces, non-ASCII digits, IPv6) goes to ipaddress."""
    octets = ["0", "1", "00", "01", "255", "256", "199", "1000", "9", "10", "", " 1", "+1", "\u0661", "0x1"]
    prefixes = ["", "/0", "/32", "/33", "/24", "/024", "/", "/255.255.0.0", "/0.0.0.255", "/1\n", "\n", "/00"]
    rng = random.Random(11)
    texts = [1, None, "::1", "fe80::1/10", "10.0.0.1/32", "10.1.2.3/8", "0.0.0.0/0", "255.255.255.255"]
    for _index in range(5000):
        texts.append(".".join(rng.choice(octets) for _octet in range(rng.choice([3, 4, 4, 5]))) + rng.choice(prefixes))
        texts.append("%d.%d.%d.%d/%d" % (tuple(rng.randrange(0, 300) for _octet in range(4)) + (rng.randrange(40),)))
    for text in texts:
        report._NETS.clear()
        assert report._net(text) == reference_net(text), text
    report._NETS.clear()


def reference_render_json(plan):
    """render_json as it was before flows were written from parts (one join per top-level key)."""
    encode = report._ENCODE
    parts = ["{\n"]
    last = len(plan) - 1
    for index, (key, value) in enumerate(plan.items()):
        comma = "," if index < last else ""
        if isinstance(value, dict) and value:
            parts.append("  %s: {\n    " % encode(key))
            parts.append(",\n    ".join(["%s: %s" % (encode(k), encode(v)) for k, v in value.items()]))
            parts.append("\n  }%s\n" % comma)
        elif isinstance(value, list) and value:
            parts.append("  %s: [\n    " % encode(key))
            parts.append(",\n    ".join(map(encode, value)))
            parts.append("\n  ]%s\n" % comma)
        else:
            parts.append("  %s: %s%s\n" % (encode(key), encode(value), comma))
    parts.append("}\n")
    return "".join(parts)


def test_render_json_as_before():
    plan = example_plan()
    assert report.render_json(plan) == reference_render_json(plan)
    odd = {"a": {}, "b": [], "flows": [flow(), 1, "x", [flow()], flow(dst_ports=[True])], "c": {"k": [1, "é"]},
           "d": ["one"], "e": None, "f": {"only": 1}}
    assert report.render_json(odd) == reference_render_json(odd)


def test_host_flows_kinds_as_kind_key():
    """_HostFlows gives flows equal by _kind_key one kind (it compares their fields first): also where equal fields
    make unequal keys or the other way round."""
    flows = [flow(), flow(dst_ports=[True]), flow(dst_ports=[1]), flow(dst_ports=[1.0]), flow(dst_ports=(1,)),
             flow(rpc_dynamic=True, rpc_dynamic_ranges=[]), flow(rpc_dynamic=True), flow(rpc_dynamic=1),
             flow(rpc_dynamic=True, rpc_dynamic_ranges=None), flow(rpc_dynamic=True, rpc_dynamic_ranges=("a",)),
             flow(rpc_dynamic=True, rpc_dynamic_ranges=["a"]), flow(via="x"), flow(via=None), flow(perimeter=("f",)),
             flow(perimeter=["f"]), flow(), flow(dst_ports=[1]), flow(src_ports="ab"), flow(src_ports=["a", "b"]),
             flow(src_ports={"a": 1, "b": 2}), flow(src_ports={"b": 2, "a": 1})]
    plan = {"flows": flows}
    index = report._HostFlows(plan)
    keys, expected = {}, []
    for item in flows:
        expected.append(keys.setdefault(report._kind_key(item), len(keys)))
    got = [index.by_host["h1"][i] for i in range(0, 4 * len(flows), 4)]
    assert got == expected
    assert [kind.service for kind in index.kinds] == \
        [report._Kind(flows[expected.index(number)]).service for number in range(len(keys))]


class TaggedStr(str):
    """What ansible-core 2.19 hands over for inventory texts: a str subclass that compares and hashes as str."""


class OddStr(str):
    """A str subclass whose equality is not str's: its parts must not be reused."""

    def __eq__(self, other):
        return False

    __hash__ = str.__hash__


def _retag(value, cls):
    if isinstance(value, str):
        return cls(value)
    if isinstance(value, list):
        return [_retag(item, cls) for item in value]
    if isinstance(value, dict):
        return dict((key, _retag(item, cls)) for key, item in value.items())
    return value


@pytest.mark.parametrize("cls,reused", [(TaggedStr, True), (OddStr, False)])
def test_str_subclasses_write_the_same_and_reuse_parts_only_when_they_compare_as_str(monkeypatch, cls, reused):
    flows = example_plan()["flows"]
    tagged = [_retag(entry, cls) for entry in flows]
    calls = []
    real = report._json_part
    monkeypatch.setattr(report, "_json_part", lambda keys, values: calls.append(keys) or real(keys, values))
    assert report._json_flows(tagged) == reference_json(flows)
    # three parts a flow written anew (source, destination, the rest) unless they are reused
    assert (len(calls) < len(flows)) is reused, len(calls)
    assert report._csv_lines(tagged) == report._csv_lines(flows)


def test_host_flows_others_and_group_rows_as_from_the_flows():
    """_HostFlows collects the flows between two networks and the first flow of each kind with Windows groups in its
    one pass: flows.md gets the same from them as from all the flows (also for None and "" ends, and kinds that
    share a label)."""
    plan = example_plan()
    plan["flows"] = plan["flows"] + [
        flow(src=None, dst=None), flow(src="", dst=None), flow(src=None, dst=""), flow(src="", dst=""),
        flow(src=None, dst="h2"), flow(src="h1", dst=""), flow(fid="B", via="x"), flow(fid="B", dst_ports=[1]),
        flow(fid="B", windows_group=[]), flow(fid="C", windows_group=[{"name": "n", "resource": "", "rules": []}])]
    del plan["flows"][-3]["windows_group"]      # the first flow of label B has none: the next kind's counts
    index = report._HostFlows(plan)
    assert index.others == [f for f in plan["flows"] if not f["dst_host"] and not f["src_host"]]
    rows = report._group_rows(plan, index)
    assert rows == report._group_rows(plan)
    assert list(rows)[-4:] == ["A", "B (x)", "B", "C"] and rows["B"] == "none: "


# -- the planner's FlowLayout: each kind and end written once, the same text as by value ------------------------
def _estates():
    from test_planner import done_when_estate  # pylint: disable=import-error
    from test_planner_speed_equivalence import estate  # pylint: disable=import-error
    from test_report import large_estate  # pylint: disable=import-error
    done = done_when_estate()
    yield "example", load_example()
    yield "ports and groups some hosts decide", estate()
    yield "issue 18 (IPv4-only DHCP ends, client RPC ranges)", (done["groups"], done["hostvars"], done["settings"])
    groups, hostvars, settings = large_estate(dcs=20, radius_clients=50)
    yield "large, outbound block", (groups, hostvars, dict(settings, nap_windows_outbound_policy="block"))


@pytest.mark.parametrize("name,inventory", list(_estates()), ids=lambda v: v if isinstance(v, str) else "")
def test_a_layout_writes_what_the_flows_say(name, inventory):
    layout = planner.FlowLayout()
    plan = planner.plan(*inventory, layout=layout)
    assert plan == planner.plan(*inventory), "the layout changes nothing in the plan"
    flows = plan["flows"]
    assert layout.describes(flows) and len(layout.kinds) < len(flows), name
    assert report._json_flows(flows, layout) == reference_json(flows)
    assert "".join(report._csv_lines(flows, layout)) == reference_csv(flows)
    assert report.render_all(plan, None, layout) == report.render_all(plan)


def test_a_layout_is_not_used_for_other_flows():
    layout = planner.FlowLayout()
    plan = planner.plan(*load_example(), layout=layout)
    flows = plan["flows"]
    changed = flows[1:]                       # another list: the layout describes the plan's own
    assert not layout.describes(changed)
    assert report._json_flows(changed, layout) == reference_json(changed)
    flows.append(dict(flows[0], src_host="other"))     # the same list, grown: no longer what the layout says
    assert not layout.describes(flows)
    assert "".join(report._csv_lines(flows, layout)) == reference_csv(flows)
    assert report._json_flows(flows, layout)[-1] == report._ENCODE(flows[-1])


def layout_by_value(flows):
    """A FlowLayout of any flows, made from their values: a kind is every field but the ends (in order), an end a
    side's host, addresses and zone. What the planner's layout says of the flows it made."""
    import json
    layout = planner.FlowLayout()
    layout.flows = flows
    kinds, ends = {}, {}
    for number, item in enumerate(flows):
        kind = json.dumps([(k, v) for k, v in item.items() if k not in report._SRC + report._DST])
        layout.kind_of.append(kinds.setdefault(kind, len(kinds)))
        if layout.kind_of[-1] == len(layout.kinds):
            layout.kinds.append(number)
        for side, numbers in (("src", layout.src_of), ("dst", layout.dst_of)):
            end = json.dumps([item[side + "_host"], item[side + "_addresses"], item[side + "_zone"]])
            numbers.append(ends.setdefault(end, len(ends)))
            if numbers[-1] == len(layout.ends):
                layout.ends.append((number, side))
    return layout


def test_a_layout_gives_flows_md_what_the_flows_give():
    """Every kind of end (a host to itself, network to network, None and "" ends) and kinds without Windows groups
    before and after those with them: _HostFlows and flows.md the same from the layout as from the flows."""
    plan = example_plan()
    plan["flows"] = plan["flows"] + [
        flow(src=None, dst=None), flow(src="", dst=None), flow(src=None, dst=""), flow(src="", dst=""),
        flow(src=None, dst="h2"), flow(src="h1", dst=""), flow(src="h1", dst="h1"), flow(src="h2", dst="h2"),
        flow(fid="B", via="x"), flow(fid="B", dst_ports=[1]), flow(fid="B", windows_group=[]),
        flow(fid="C", windows_group=[{"name": "n", "resource": "", "rules": []}]), flow(src="h3", dst="h1"),
        flow(src="h1", dst="h2", src_addresses=["10.0.0.9/32"]), flow(src="h2", dst="h1", dst_zone="z9")]
    del plan["flows"][-6]["windows_group"]
    layout = layout_by_value(plan["flows"])
    assert len(layout.kinds) < len(plan["flows"])
    laid, plain = report._HostFlows(plan, layout), report._HostFlows(plan)
    assert laid.ends == plain.ends and laid.others == plain.others and dict(laid.by_host) == dict(plain.by_host)
    assert list(laid.grouped.items()) == list(plain.grouped.items())
    assert [k.service for k in laid.kinds] == [k.service for k in plain.kinds]
    assert report.render_all(plan, None, layout) == report.render_all(plan)
