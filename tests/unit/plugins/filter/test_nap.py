# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters nap_flows and nap_query."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.configmgr.nap.plugins.filter.nap import nap_flows, nap_query

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "module_utils", "nap"))
from test_report import example_plan  # noqa: E402  pylint: disable=wrong-import-position


def test_catalogue_without_input():
    seed = nap_flows(category="seed")
    assert [f["id"] for f in seed] == ["NAP-AD-WRITE", "NAP-GC-READ", "NAP-SHV-INSTALL", "NAP-SHV-CONFIG",
                                       "NAP-SHV-STATUS"]
    assert seed[0]["services"][0]["choice"] == {"setting": "nap_ad_ldap_mode",
                                                "options": {"ldap": [389], "ldaps": [636]}}


def test_plan_flows_into_one_host_and_by_protocol():
    plan = example_plan()
    into = nap_flows({"plan": plan}, dst_host="nps01")
    assert into and all(f["dst_host"] == "nps01" for f in into)
    udp = nap_flows(plan, protocol="udp")
    assert udp and all(f["protocol"] == "udp" for f in udp)
    assert sorted(set(f["id"] for f in nap_flows(plan, port=50000))) == ["AD-RPC", "IPSEC-HRA-CA", "NAP-SHV-CONFIG"]
    assert [f["dst_host"] for f in nap_flows(plan, port=636)] == ["dc01", "dc02"]


def test_query_with_jmespath():
    plan = example_plan()
    ids = nap_query({"plan": plan}, "flows[?protocol=='udp'].id | sort(@)")
    assert "DHCP-RELAY" in ids and "NAP-AD-WRITE" not in ids
    assert nap_query(plan, "hosts.dc01.inbound[?flow_id=='NAP-AD-WRITE'].dst_ports[]") == [636]


def test_filter_errors_are_clear():
    with pytest.raises(AnsibleFilterError, match="unknown criteria colour"):
        nap_flows(colour="red")
    with pytest.raises(AnsibleFilterError, match="invalid JMESPath expression"):
        nap_query(example_plan(), "flows[?")


def test_the_playbooks_role_groups_are_the_catalogues():
    """playbooks/vars/role_groups.yml is the one list the playbooks target; it must be the catalogue's."""
    import os
    import yaml
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
    with open(os.path.join(root, "playbooks", "vars", "role_groups.yml")) as handle:
        data = yaml.safe_load(handle)
    groups = [g for _role, g, _text in catalogue.ROLE_GROUPS]
    assert data["__nap_host_groups"] == [g for g in groups if g != "nap_perimeter"]
    assert data["__nap_perimeter_group"] == "nap_perimeter"


def test_drift_report_names_each_drifted_host():
    from ansible_collections.configmgr.nap.plugins.filter.nap import nap_drift_report
    hostvars = {"rtr01": {"__nap_drifted": True, "__nap_drift": {"missing": ["IPSEC-HRA-TCP-FWD"]}},
                "cm01": {"__nap_drifted": False}}
    assert nap_drift_report(["rtr01", "cm01"], hostvars) == ["rtr01: missing IPSEC-HRA-TCP-FWD; extra -; changed -"]
    assert nap_drift_report(["cm01"], hostvars) == ["no drift on 1 host(s)"]


def test_the_example_plans_without_a_warning():
    """The bundled example names its router in nap_dhcp_relays: a router joined to the client zone relays."""
    plan = example_plan()
    assert plan["warnings"] == []
    relayed = [f for f in plan["flows"] if f["id"] == "DHCP-RELAY"]
    assert relayed and set(f["src_host"] for f in relayed) == {"rtr01"}


def test_verify_inventory_takes_what_verify_needs_and_no_secret():
    from ansible_collections.configmgr.nap.plugins.filter.nap_verify import nap_verify_inventory
    hostvars = {"nps01": {"ansible_host": "192.0.2.20", "nap_radius_secret": "S3cret", "nap_platform": "windows"},
                "rtr01": {"nap_address": "192.0.2.1", "nap_probe_capable": True}}
    out = nap_verify_inventory(["nps01", "rtr01"], hostvars)
    assert out["nps01"] == {"address": "192.0.2.20", "capable": "", "platform": "windows", "radius_secret": True,
                            "listener_method": "auto", "windows_version": "", "powershell_version": ""}
    assert out["rtr01"]["address"] == "192.0.2.1" and out["rtr01"]["radius_secret"] is False
    assert "S3cret" not in repr(out)


def test_a_2003_host_is_described_as_not_applicable():
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
    plan = {"hosts": {"cm03": {"platform": "windows", "roles": ["site_server"], "host_rules": "not_applicable",
                               "host_rules_note": "Windows Server 2003 has neither FwPolicy2 nor netsh advfirewall"}},
            "perimeter": {}, "flows": []}
    described = plandoc.describe(plan, "cm03")
    assert described["platform"] == "not_applicable" and "2003" in described["note"]


def test_drift_report_lists_wider_predefined_rules_host_by_host():
    """Issue 17 item 2: a Windows host whose predefined rules admit more than the plan is listed, even when its owned
    rules did not drift (win_nap_firewall's drift.predefined)."""
    from ansible_collections.configmgr.nap.plugins.filter.nap import nap_drift_report
    predefined = ["NPS-NPSSvc-In-UDP-1812", "NPS-NPSSvc-In-UDP-1645"]
    hostvars = {"nps01": {"__nap_drifted": False, "__nap_drift": {"predefined": predefined}},
                "dc01": {"__nap_drifted": True, "__nap_drift": {"changed": ["AD-LDAP-TCP-IN"],
                                                                "predefined": ["ADDS-LDAP-TCP-In"]}},
                "cm01": {"__nap_drifted": False, "__nap_drift": {"predefined": []}}}
    assert nap_drift_report(["nps01", "dc01", "cm01"], hostvars) == [
        "dc01: missing -; extra -; changed AD-LDAP-TCP-IN",
        "nps01: predefined rules wider than the plan NPS-NPSSvc-In-UDP-1812, NPS-NPSSvc-In-UDP-1645",
        "dc01: predefined rules wider than the plan ADDS-LDAP-TCP-In"]
    assert nap_drift_report(["cm01"], hostvars) == ["no drift on 1 host(s)"]
