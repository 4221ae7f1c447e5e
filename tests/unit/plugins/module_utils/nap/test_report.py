# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports: flows.json against its schema, CSV, Markdown grouped by host with the diagram inline, Mermaid
(also for an estate of 200 DCs and 2,000 RADIUS clients: under Mermaid's default limits)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import json
import os
import re

import jsonschema
import pytest
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
    assert "## Warnings" not in text                  # the example plans without a warning
    plan = example_plan()
    plan["warnings"] = ["DHCP relay assumed: rtr01 relays DHCP for 198.51.100.0/25 to dhcp01"]
    text = report.render_markdown(plan)
    assert "## Warnings" in text and "DHCP relay assumed" in text


def test_mermaid_draws_zones_devices_and_flows():
    text = report.render_mermaid(example_plan())
    assert text.startswith("flowchart LR\n")
    assert 'subgraph n_zone_servers["zone servers"]' in text
    assert 'n_rtr01{{"rtr01<br/>perimeter nftables"}}' in text
    assert '-->|"NAP-SHV-STATUS"| n_cm01' in text


def test_render_all_names_the_four_files():
    assert list(report.render_all(example_plan())) == ["flows.json", "flows.csv", "flows.md", "topology.mmd"]


# --- flows.md: the diagram inline, what lands on each host --------------------------------------------
MERMAID_LINE = re.compile(
    r'\A(?:flowchart LR'
    r'|    subgraph n_\w+\["[^"\r\n]*"\]'
    r'|(?:    |        )n_\w+\["[^"\r\n]*"\]'
    r'|    end'
    r'|    n_\w+\{\{"[^"\r\n]*"\}\}'
    r'|    n_\w+ --- n_\w+'
    r'|    n_\w+ -->\|"[^"\r\n]*"\| n_\w+)\Z')


def diagram_figures(text):
    """(edges, characters) of a Mermaid flowchart, after checking that every line is a statement of ours and
    that every link joins defined nodes or subgraphs."""
    lines = text.splitlines()
    bad = [line for line in lines if not MERMAID_LINE.match(line)]
    assert not bad, "not a statement of the report: %r" % bad[:3]
    defined = set(re.findall(r"^\s+(?:subgraph )?(n_\w+)[\[{]", text, re.M))
    links = [line for line in lines if " --- " in line or " -->|" in line]
    for line in links:
        ends = re.findall(r"\bn_\w+", line)
        assert set(ends) <= defined, "a link to an undefined node: %r" % line
    return len(links), len(text)


def section(text, title):
    start = text.index("\n## %s" % title) + 1
    end = text.find("\n## ", start)
    return text[start:end if end > 0 else len(text)]


def test_flows_md_embeds_the_diagram():
    plan = example_plan()
    text = report.render_markdown(plan)
    assert "\n## Topology\n" in text
    assert "\n```mermaid\n" + report.render_mermaid(plan) + "```\n" in text
    assert text.index("## Topology") < text.index("## cm01")


def test_each_host_section_says_which_flows_become_a_rule():
    plan = example_plan()
    text = report.render_markdown(plan)
    cm01 = section(text, "cm01 ")
    assert "36 flows, 4 inbound and 0 outbound rules" in cm01
    rows = [line.split(" | ") for line in cm01.splitlines() if line.startswith("| ") and "(" in line]
    rule_here = dict(((row[0][2:], row[1], row[3]), row[4]) for row in rows if len(row) == 8)
    assert rule_here[("NAP-SHV-STATUS", "nps01 (192.0.2.20/32)", "TCP 445")] == "NAP-SHV-STATUS-TCP-IN"
    # Windows permits IKE and ESP itself: no host rule; the service IPsec protects gets one
    assert rule_here[("IPSEC-IKE", "198.51.100.0/25", "ESP")] == "- (Windows permits IKE and ESP itself)"
    assert rule_here[("IPSEC-IKE", "198.51.100.128/25", "UDP 500,4500")] == "- (Windows permits IKE and ESP itself)"
    assert rule_here[("IPSEC-PROTECTED (SMB)", "198.51.100.0/25", "TCP 445")] == "IPSEC-PROTECTED-SMB-TCP-IN"
    assert rule_here[("MGMT-WINRM", "203.0.113.10/32", "TCP 5986")] == "MGMT-WINRM-TCP-IN"
    assert rule_here[("NAP-AD-WRITE", "cm01 (192.0.2.10/32)", "TCP 636")] == "- (outbound allowed)"
    assert rule_here[("AD-LDAP", "cm01 (192.0.2.10/32)", "TCP 389")] == "- (outbound allowed)"
    assert sorted(set(rule_here.values())) == ["- (Windows permits IKE and ESP itself)", "- (outbound allowed)",
                                               "IPSEC-PROTECTED-HTTP-TCP-IN", "IPSEC-PROTECTED-SMB-TCP-IN",
                                               "MGMT-WINRM-TCP-IN", "NAP-SHV-STATUS-TCP-IN"]
    # the rules table names exactly the host's rules
    for rule in plan["hosts"]["cm01"]["inbound"]:
        assert "| %s | in | %s |" % (rule["name"], rule["flow_id"]) in cm01
    # the two sides of REMEDIATION each become their own rule; the relay takes the server's replies
    wsus = section(text, "wsus01 ")
    assert [line.split(" | ")[4] for line in wsus.splitlines() if line.startswith("| REMEDIATION (CM-MP)")] == \
        ["REMEDIATION-CM-MP-TCP-IN"] * 2
    assert "| DHCP-RELAY | rtr01 " in section(text, "rtr01 ")
    assert "| DHCP-RELAY-UDP-IN (replies) |" in section(text, "rtr01 ")


def test_every_rule_of_every_host_is_named_by_a_flow():
    groups, hostvars, settings = load_example()
    for outbound in ("allow", "block"):
        plan = planner.plan(groups, hostvars, dict(settings, nap_windows_outbound_policy=outbound))
        text = report.render_markdown(plan)
        for host, entry in plan["hosts"].items():
            part = section(text, host + " ")
            named = set()
            for line in part.splitlines():
                cells = line.split(" | ")
                if len(cells) == 8 and not line.startswith("| flow |") and not line.startswith("|---"):
                    named.update(n.replace(" (replies)", "") for n in cells[4].split(", ") if not n.startswith("-"))
            rules = set(r["name"] for r in entry["inbound"] + entry["outbound"])
            assert named == rules, "%s (%s): rules %s, named by its flows %s" % (host, outbound, rules, named)
        if outbound == "block":
            assert "outbound allowed" not in section(text, "cm01 ")
            assert "| NAP-AD-WRITE-TCP-OUT |" in section(text, "cm01 ")


# --- an estate of 200 DCs and 2,000 RADIUS clients ----------------------------------------------------
def large_estate(dcs=200, radius_clients=2000):
    """Groups, host vars and settings of a big estate, every host on its own address in 198.18.0.0/15."""
    groups = {"nap_site_servers": ["cm01"], "nap_shv_points": ["nps01", "nps02"], "nap_domain_controllers": [],
              "nap_global_catalogs": [], "nap_hras": ["hra01"], "nap_certification_authorities": ["ca01"],
              "nap_dhcp_servers": ["dhcp01"], "nap_ipsec_protected": ["cm01"], "nap_radius_clients": [],
              "nap_remediation_servers": ["wsus01"], "nap_perimeter": ["rtr01"]}
    hostvars = {"cm01": {"ansible_host": "198.18.0.10"}, "nps01": {"ansible_host": "198.18.0.20"},
                "nps02": {"ansible_host": "198.18.0.21"}, "hra01": {"ansible_host": "198.18.0.30"},
                "ca01": {"ansible_host": "198.18.0.35"}, "dhcp01": {"ansible_host": "198.18.0.40"},
                "wsus01": {"ansible_host": "198.18.0.50", "nap_remediation_roles": ["software_update_point"]},
                "rtr01": {"ansible_host": "198.18.0.1", "nap_perimeter_platform": "nftables",
                          "nap_address": ["198.18.0.1", "198.18.32.1", "198.18.64.1", "198.18.255.1"],
                          "nap_perimeter_zones": ["servers", "switches", "clients", "management"]}}
    for i in range(dcs):
        name = "dc%03d" % (i + 1)
        groups["nap_domain_controllers"].append(name)
        if i % 4 == 0:
            groups["nap_global_catalogs"].append(name)
        hostvars[name] = {"ansible_host": "198.18.%d.%d" % (1 + i // 250, 1 + i % 250)}
    for i in range(radius_clients):
        name = "sw%04d" % (i + 1)
        groups["nap_radius_clients"].append(name)
        hostvars[name] = {"ansible_host": "198.18.%d.%d" % (32 + i // 250, 2 + i % 250)}
    settings = {"nap_enforcement_methods": ["dhcp", "ipsec", "8021x"], "nap_client_networks": ["198.18.64.0/20"],
                "nap_management_sources": ["198.18.255.10/32"],
                "nap_zones": {"servers": ["198.18.0.0/19"], "switches": ["198.18.32.0/19"],
                              "clients": ["198.18.64.0/20"], "management": ["198.18.255.0/24"]}}
    return groups, hostvars, settings


@pytest.fixture(scope="module")
def estate_plan():
    return planner.plan(*large_estate())


def test_large_estate_diagram_stays_under_mermaids_limits(estate_plan):
    plan = estate_plan
    assert len(plan["hosts"]) == 2208 and len(plan["flows"]) > 8000
    text = report.render_mermaid(plan)
    edges, chars = diagram_figures(text)
    assert edges <= report.MERMAID_MAX_EDGES == 500
    assert chars <= report.MERMAID_MAX_TEXT == 50000
    # grouped by role and zone, and each box says how many hosts it stands for
    assert '["2000 hosts: sw0001, sw0002, sw0003 ... sw2000<br/>radius_client"]' in text
    assert '["150 hosts: dc002, dc003, dc004 ... dc200<br/>domain_controller"]' in text
    assert '["50 hosts: dc001, dc005, dc009 ... dc197<br/>domain_controller, global_catalog"]' in text
    assert re.search(r'n_g_switches_radius_client -->\|"8021X-RADIUS"\| n_g_servers_shv_point', text)


def test_large_estate_flows_md_stays_small(estate_plan):
    text = report.render_markdown(estate_plan)
    assert "\n```mermaid\n" + report.render_mermaid(estate_plan) + "```\n" in text
    assert len(text.encode("utf-8")) < 150000, "flows.md is %d bytes" % len(text.encode("utf-8"))
    # the 2,000 identical RADIUS clients share one section, with one row per flow, and name every client
    clients = section(text, "2000 hosts: radius_client")
    assert "sw0001, sw0002" in clients and "sw2000." in clients
    assert len([line for line in clients.splitlines() if line.startswith("| 8021X-RADIUS |")]) == 2
    assert "## sw0042" not in text
    # on the NPS, one row stands for them all, and it names the rule it becomes
    nps = section(text, "nps01 ")
    (row,) = [line for line in nps.splitlines() if line.startswith("| 8021X-RADIUS |")]
    assert "| 2000 radius_client hosts in zone switches (sw0001, sw0002, sw0003 ... sw2000) |" in row
    assert "| 8021X-RADIUS-UDP-IN |" in row


def test_diagram_falls_back_to_zones_beyond_the_limits(monkeypatch):
    monkeypatch.setattr(report, "MERMAID_MAX_EDGES", 10)
    text = report.render_mermaid(example_plan())
    assert '["8 hosts: cm01, nps01, dc01 ... wsus01<br/>' in text
    edges, _chars = diagram_figures(text)
    assert edges < 20


def test_a_host_without_advanced_firewall_lists_its_rules_as_not_applicable():
    """A 2003 site server: no FwPolicy2, no netsh advfirewall; flows.md says so and names the rules it would need."""
    groups, hostvars, settings = load_example()
    hostvars["cm01"]["nap_windows_version"] = "2003"
    hostvars["nps01"]["nap_windows_version"] = "2008"
    plan = planner.plan(groups, hostvars, dict(settings, nap_include_configmgr_base=True,
                                               nap_client_windows_versions=["xp", "vista"]))
    text = report.render_markdown(plan)
    cm01 = section(text, "cm01 ")
    assert "Platform windows 2003," in cm01 and "0 inbound and 0 outbound rules" in cm01
    assert "Host rules are not applicable: Windows Server 2003 has neither" in cm01
    assert "| NAP-SHV-STATUS-TCP-IN | in (not applicable) | NAP-SHV-STATUS |" in cm01
    rows = [line.split(" | ") for line in cm01.splitlines() if line.startswith("| NAP-SHV-STATUS |")]
    assert rows and rows[0][4] == "NAP-SHV-STATUS-TCP-IN (not applicable)"
    # the client push from the 2003 site server to clients that mix XP and Vista carries both RPC ranges
    push = [line for line in cm01.splitlines() if line.startswith("| CM-PUSH |") and "TCP 135" in line]
    assert push and "TCP 135 + RPC 1025-5000,49152-65535" in push[0]
    with open(os.path.join(ROOT, "docs", "flows.schema.json")) as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator(schema).validate(json.loads(report.render_json(plan)))


def test_example_plan_names_the_windows_group_of_every_flow_that_has_one():
    """Issue 17 item 1: every flow of the example's plan names its predefined groups by resource string (English
    names shown), or says why there is none; flows.md lists them."""
    plan = example_plan()
    catalogue = planner.catalogue
    for flow in plan["flows"]:
        assert flow["windows_group"] or flow["windows_group_note"], (flow["id"], flow.get("via"))
        cat = catalogue.VIA_BY_ID.get(flow.get("via")) or catalogue.FLOWS_BY_ID[flow["id"]]
        if cat.windows_group and flow["id"] != "IPSEC-PROTECTED":
            assert [g["resource"] for g in flow["windows_group"]] == [g[1] for g in cat.windows_group], flow["id"]
    names = set(g["name"] for f in plan["flows"] for g in f["windows_group"])
    assert {"File and Printer Sharing", "Remote Administration", "Network Policy Server", "DHCP Server",
            "Active Directory Domain Services", "DNS Service", "Windows Remote Management",
            "Secure World Wide Web Services (HTTPS)"} <= names
    (shv,) = [f for f in plan["flows"] if f["id"] == "NAP-SHV-CONFIG"]
    assert shv["windows_group"] == [{"name": "Remote Administration", "resource": "@FirewallAPI.dll,-29752",
                                     "rules": ["RemoteAdmin-RPCSS-In-TCP", "RemoteAdmin-In-TCP"]}]
    text = report.render_markdown(plan)
    table = section(text, "Windows predefined rule groups")
    assert "| NAP-SHV-INSTALL | File and Printer Sharing (@FirewallAPI.dll,-28502): FPS-SMB-In-TCP |" in table
    assert "| IPSEC-HRA-CA | none: no predefined group was found" in table


def test_flows_json_has_one_flow_host_and_device_per_line():
    plan = example_plan()
    text = report.render_json(plan)
    assert json.loads(text) == json.loads(json.dumps(plan))
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    flow_lines = [line for line in lines if line.startswith('    {"id": ')]
    assert len(flow_lines) == len(plan["flows"])
    assert json.loads(flow_lines[0].strip().rstrip(",")) == json.loads(json.dumps(plan["flows"][0]))
    for host in plan["hosts"]:
        line = next(line for line in lines if line.startswith("    %s: " % json.dumps(host)))
        assert json.loads(line.split(": ", 1)[1].rstrip(",")) == json.loads(json.dumps(plan["hosts"][host]))
    assert '  "settings": {' in lines
