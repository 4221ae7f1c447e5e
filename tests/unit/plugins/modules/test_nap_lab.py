# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nap_lab topology (pure part): names, addresses, routes, inventory; no namespace is created here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os

import pytest
import yaml

from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
from ansible_collections.configmgr.nap.plugins.modules import nap_lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
LAB = os.path.join(ROOT, "examples", "lab", "lab.yml")


def lab():
    with open(LAB) as handle:
        return yaml.safe_load(handle)


def test_example_lab_topology():
    topo = nap_lab.Topology(lab())
    assert topo.netns("rtr01") == "nap-rtr01" and topo.switch("servers") == "nap-sw-servers"
    assert len(topo.namespaces()) == 16
    assert str(topo.address("rtr01", "clients-a")) == "198.18.2.1"
    assert str(topo.address("hra01", "servers")) == "198.18.1.30"
    assert topo.routes("cla01") == [("198.18.1.0/24", "198.18.2.1"), ("198.18.3.0/24", "198.18.2.1"),
                                    ("198.18.9.0/24", "198.18.2.1")]
    assert topo.routes("rtr01") == []
    for _node, _zone, _sw, port, _ns, ifname in topo.links():
        assert len(port) <= 15 and len(ifname) <= 15


def test_every_address_is_in_the_lab_range():
    topo = nap_lab.Topology(lab(), "t1", "198.19.240.0/20")
    for node, spec in topo.nodes.items():
        for zone in spec["zones"]:
            assert topo.address(node, zone) in ipaddress.ip_network("198.19.240.0/20")
    assert topo.namespaces()[0].startswith("t1-")


@pytest.mark.parametrize("prefix,base,match", [
    ("nap", "10.0.0.0/16", "outside 198.18.0.0/15"),
    ("nap", "198.18.0.0/30", "does not fit"),
    ("bad prefix", None, "prefix"),
    ("nap", "198.18.0.0/22", "index 9 is outside"),
])
def test_bad_options(prefix, base, match):
    with pytest.raises(nap_lab.LabError, match=match):
        nap_lab.Topology(lab(), prefix, base)


def test_routers_in_series_route_through_each_other():
    topo = nap_lab.Topology({
        "zones": {"a": 1, "b": 2, "c": 3},
        "routers": {"r1": {"zones": ["a", "b"]}, "r2": {"zones": ["b", "c"], "id": 2}},
        "hosts": {"ha": {"zone": "a", "id": 10}, "hc": {"zone": "c", "id": 10}},
    })
    assert topo.routes("ha") == [("198.18.2.0/24", "198.18.1.1"), ("198.18.3.0/24", "198.18.1.1")]
    assert topo.routes("r1") == [("198.18.3.0/24", "198.18.2.2")]
    assert topo.routes("r2") == [("198.18.1.0/24", "198.18.2.1")]
    assert topo.routes("hc") == [("198.18.1.0/24", "198.18.3.2"), ("198.18.2.0/24", "198.18.3.2")]


def test_generated_inventory_plans():
    topo = nap_lab.Topology(lab())
    inv = json.loads(json.dumps(topo.inventory("/x/lab")))["all"]
    assert inv["hosts"]["rtr01"]["ansible_python_interpreter"] == "/x/lab/bin/rtr01-python"
    assert inv["vars"]["nap_management_sources"] == ["198.18.9.10/32"]
    groups = dict((g, list(v["hosts"])) for g, v in inv["children"].items())
    hostvars = dict((h, dict(v, **{})) for h, v in inv["hosts"].items())
    settings = dict((k, v) for k, v in inv["vars"].items() if k.startswith("nap_") and not k.startswith("nap_lab"))
    plan = planner.plan(groups, hostvars, settings)
    names = [r["name"] for r in plan["perimeter"]["rtr01"]["forward"]]
    assert "IPSEC-HRA-TCP-FWD" in names and "MGMT-WINRM-TCP-FWD" in names


def test_static_example_inventory_matches_the_definition():
    with open(os.path.join(ROOT, "examples", "lab", "inventory.yml")) as handle:
        static = yaml.safe_load(handle)
    generated = json.loads(json.dumps(nap_lab.Topology(lab()).inventory("{{ inventory_dir }}/../../build/lab/nap")))
    assert static == generated
