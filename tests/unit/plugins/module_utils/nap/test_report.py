# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports: flows.json against its schema, CSV, Markdown grouped by host, Mermaid."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import json
import os

import jsonschema
import yaml

from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner, report

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))


def load_example():
    """Groups and host vars of examples/inventory.yml, flattened as Ansible would."""
    with open(os.path.join(ROOT, "examples", "inventory.yml")) as handle:
        inv = yaml.safe_load(handle)["all"]
    groups, hostvars = {}, {}

    def walk(name, node):
        node = node or {}
        groups.setdefault(name, [])
        for host, hvars in (node.get("hosts") or {}).items():
            groups[name].append(host)
            hostvars.setdefault(host, dict(inv["vars"])).update(hvars or {})
        for child, cnode in (node.get("children") or {}).items():
            walk(child, cnode)

    for child, cnode in inv["children"].items():
        walk(child, cnode)
    return groups, hostvars, inv["vars"]


def example_plan():
    return planner.plan(*load_example())


def test_flows_json_matches_the_schema():
    with open(os.path.join(ROOT, "docs", "flows.schema.json")) as handle:
        schema = json.load(handle)
    doc = json.loads(report.render_json(example_plan()))
    jsonschema.Draft202012Validator(schema).validate(doc)
    broken = json.loads(json.dumps(doc))
    broken["flows"][0]["dst_ports"] = [70000]
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
    assert errors, "the schema must reject a port above 65535"


def test_csv_has_one_row_per_flow():
    plan = example_plan()
    rows = list(csv.DictReader(io.StringIO(report.render_csv(plan))))
    assert len(rows) == len(plan["flows"])
    write = [r for r in rows if r["id"] == "NAP-AD-WRITE"]
    assert {(r["src_host"], r["dst_host"], r["dst_ports"], r["source"]) for r in write} == {
        ("cm01", "dc01", "636", "seed row 1"), ("cm01", "dc02", "636", "seed row 1")}


def test_markdown_groups_by_host_and_cites_sources():
    text = report.render_markdown(example_plan())
    assert "## nps01 (shv_point)" in text
    assert "## Perimeter rtr01 (nftables; zones clients-a, clients-b, management, servers)" in text
    row = [line for line in text.splitlines() if line.startswith("| NAP-SHV-CONFIG |")][0]
    assert "TCP 135 + RPC 49152-65535" in row and "seed row 3" in row
    assert "## Warnings" in text and "DHCP relay assumed" in text


def test_mermaid_draws_zones_devices_and_flows():
    text = report.render_mermaid(example_plan())
    assert text.startswith("flowchart LR\n")
    assert 'subgraph n_zone_servers["zone servers"]' in text
    assert 'n_rtr01{{"rtr01<br/>perimeter nftables"}}' in text
    assert '-->|"NAP-SHV-STATUS"| n_cm01' in text


def test_render_all_names_the_four_files():
    assert list(report.render_all(example_plan())) == ["flows.json", "flows.csv", "flows.md", "topology.mmd"]
