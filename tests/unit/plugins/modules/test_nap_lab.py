# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nap_lab topology and services (pure part: module_utils/nap/lab/): names, addresses, routes, inventory, daemons;
no namespace is created here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os

import pytest
import yaml

from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.services import Services, radiusd_conf
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.topology import SERVICES, LabError, LabTopology

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
LAB = os.path.join(ROOT, "examples", "lab", "lab.yml")


def lab():
    with open(LAB) as handle:
        return yaml.safe_load(handle)


def test_example_lab_topology():
    topo = LabTopology(lab())
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
    topo = LabTopology(lab(), "t1", "198.19.240.0/20")
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
    with pytest.raises(LabError, match=match):
        LabTopology(lab(), prefix, base)


def test_routers_in_series_route_through_each_other():
    topo = LabTopology({
        "zones": {"a": 1, "b": 2, "c": 3},
        "routers": {"r1": {"zones": ["a", "b"]}, "r2": {"zones": ["b", "c"], "id": 2}},
        "hosts": {"ha": {"zone": "a", "id": 10}, "hc": {"zone": "c", "id": 10}},
    })
    assert topo.routes("ha") == [("198.18.2.0/24", "198.18.1.1"), ("198.18.3.0/24", "198.18.1.1")]
    assert topo.routes("r1") == [("198.18.3.0/24", "198.18.2.2")]
    assert topo.routes("r2") == [("198.18.1.0/24", "198.18.2.1")]
    assert topo.routes("hc") == [("198.18.1.0/24", "198.18.3.2"), ("198.18.2.0/24", "198.18.3.2")]


def test_generated_inventory_plans():
    topo = LabTopology(lab())
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
    generated = json.loads(json.dumps(LabTopology(lab()).inventory("{{ inventory_dir }}/../../build/lab/nap")))
    assert static == generated


# ---------------------------------------------------------------------------------------------------------------
# Services (pure part: what each daemon gets)
# ---------------------------------------------------------------------------------------------------------------
def daemons(lab_dir="/x/lab"):
    out = {}
    for daemon in Services(LabTopology(lab()), lab_dir).all():
        out[(daemon.node, daemon.name)] = daemon
    return out


def test_example_lab_services():
    got = daemons()
    assert sorted(got) == sorted([
        ("rtr01", "dnsmasq (DHCP relay)"), ("dc01", "samba AD DC"), ("cm01", "smbd"), ("cm01", "samba-dcerpcd"),
        ("nps01", "smbd"), ("nps01", "samba-dcerpcd"), ("nps01", "freeradius"), ("hra01", "nginx"),
        ("ca01", "samba-dcerpcd"), ("dhcp01", "dnsmasq (DHCP)"), ("ipsec01", "charon (IKE)"), ("wsus01", "nginx")])
    for daemon in got.values():
        # every path of every daemon is under the lab directory
        paths = [daemon.pidfile] + list(daemon.files) + list(daemon.dirs) + [m for _t, _a, m in daemon.prepare]
        assert all(p.startswith("/x/lab/srv/%s/" % daemon.node) for p in paths), (daemon.label, paths)
        for path, (content, _mode) in daemon.files.items():
            for line in (content or "").splitlines():
                if line.lstrip().startswith("#"):
                    continue
                for word in line.replace("=", " ").split():
                    if word.startswith("/") and word not in ("/dev/null",):
                        assert word.startswith("/x/lab/srv/"), (daemon.label, path, line)
    dc = got[("dc01", "samba AD DC")]
    provision = dc.prepare[0][1]
    assert provision[:3] == ["samba-tool", "domain", "provision"]
    assert "--use-rfc2307" in provision and "--dns-backend=SAMBA_INTERNAL" in provision
    assert "--realm=LAB.NAP.TEST" in provision and "--host-ip=198.18.1.5" in provision
    assert "--configfile=/dev/null" in provision      # the machine's smb.conf is not read
    assert ("tcp", 3269) in dc.ready and ("udp", 389) in dc.ready
    assert dc.argv == ["samba", "-s", "/x/lab/srv/dc01/samba/etc/smb.conf"]


def test_freeradius_clients_and_secret():
    got = daemons()
    conf = got[("nps01", "freeradius")].files["/x/lab/srv/nps01/freeradius/raddb/clients.conf"][0]
    # the enforcement points (DHCP server, HRA) and the extra vantage, with the lab's secret
    for name, address in (("dhcp01", "198.18.1.40"), ("hra01", "198.18.1.30"), ("mgmt01", "198.18.9.10")):
        assert "client %s-" % name in conf and "ipaddr = %s" % address in conf
    assert conf.count('secret = "nap-lab-radius-secret"') == 3
    assert "198.18.1.10" not in conf       # the site server is no RADIUS client
    data = lab()
    data["vars"] = dict(data["vars"])
    del data["vars"]["nap_radius_secret"]
    with pytest.raises(LabError, match="nap_radius_secret"):
        Services(LabTopology(data), "/x").all()


def test_radiusd_conf_points_at_the_lab():
    text = ("prefix = /usr\nlogdir = /var/log/freeradius\nraddbdir = /etc/freeradius/3.0\n"
            "run_dir = ${localstatedir}/run/${name}\npidfile = ${run_dir}/${name}.pid\nsecurity {\n"
            "\tuser = freerad\n\tgroup = freerad\n\treject_delay = 1\n\tstatus_server = yes\n}\n")
    out = radiusd_conf(text, "/x/f")
    assert "logdir = /x/f/log\n" in out and "raddbdir = /x/f/raddb\n" in out and "run_dir = /x/f/run\n" in out
    assert "pidfile = /x/f/run/radiusd.pid\n" in out
    assert "#\tuser = freerad" in out and "#\tgroup = freerad" in out and "\treject_delay = 0\n" in out
    assert "\tstatus_server = yes" in out


def test_dhcp_scopes_and_relay():
    got = daemons()
    server = got[("dhcp01", "dnsmasq (DHCP)")].files["/x/lab/srv/dhcp01/dnsmasq/dnsmasq.conf"][0]
    assert "dhcp-range=set:clients-a,198.18.2.100,198.18.2.199,255.255.255.0,1h" in server
    assert "dhcp-range=set:servers,198.18.1.100,198.18.1.199,255.255.255.0,1h" in server
    assert "port=0" in server and "no-ping" in server
    relay = got[("rtr01", "dnsmasq (DHCP relay)")].files["/x/lab/srv/rtr01/dhcp-relay/dnsmasq.conf"][0]
    assert "dhcp-relay=198.18.2.1,198.18.1.40" in relay and "dhcp-relay=198.18.3.1,198.18.1.40" in relay
    assert "dhcp-relay=198.18.1.1" not in relay and "bind-interfaces" in relay


def test_charon_gets_its_own_conf_and_run_directory():
    charon = daemons()[("ipsec01", "charon (IKE)")]
    assert charon.env == {"STRONGSWAN_CONF": "/x/lab/srv/ipsec01/charon/strongswan.conf"}
    assert charon.spawn and charon.exe == "charon"
    assert charon.argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert "/x/lab/srv/ipsec01/charon/run" in charon.argv
    conf = charon.files["/x/lab/srv/ipsec01/charon/strongswan.conf"][0]
    assert "socket = unix:///x/lab/srv/ipsec01/charon/run/charon.vici" in conf


def test_inventory_marks_every_lab_host_probe_capable():
    inv = json.loads(json.dumps(LabTopology(lab()).inventory("/x/lab")))["all"]
    assert all(h["nap_probe_capable"] is True for h in inv["hosts"].values())
    assert inv["hosts"]["dc01"]["nap_lab_services"] == ["samba_dc", "ntp"]
    assert inv["vars"]["nap_probe_vantage"] == {"clients-a": "cla01", "clients-b": "clb01", "management": "mgmt01"}


@pytest.mark.parametrize("services,match", [
    (["bogus"], "unknown service 'bogus'"),
    ("samba_dc", "unknown service 's'"),
])
def test_bad_services(services, match):
    data = lab()
    data["hosts"]["dc01"] = dict(data["hosts"]["dc01"], services=services)
    with pytest.raises(LabError, match=match):
        LabTopology(data)


def test_dhcp_relay_needs_one_server():
    data = lab()
    data["hosts"]["dhcp02"] = {"zone": "servers", "id": 41, "services": ["dhcp_server"]}
    with pytest.raises(LabError, match="dhcp_relay needs 'server'"):
        Services(LabTopology(data), "/x").all()


def test_every_service_name_has_its_daemons():
    # topology.SERVICES (what a definition may name) and services.Services (what runs) stay in step
    topo = LabTopology(lab())
    for name in SERVICES:
        assert callable(getattr(Services(topo, "/x"), "_" + name, None)), name
