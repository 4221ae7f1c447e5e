# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What verify.yml probes (vantages, kinds, negative probes) and how it judges (pure; no packets here)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os

import pytest
import yaml

from ansible_collections.configmgr.nap.plugins.filter import nap_verify
from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner, verify
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))))
VANTAGES = {"clients-a": "cla01", "clients-b": "clb01", "management": "mgmt01"}


def lab_inventory():
    with open(os.path.join(ROOT, "examples", "lab", "inventory.yml")) as handle:
        return yaml.safe_load(handle)["all"]


def lab_plan(**overrides):
    inv = lab_inventory()
    groups = dict((g, list(v["hosts"])) for g, v in inv["children"].items())
    settings = dict((k, v) for k, v in inv["vars"].items() if k.startswith("nap_") and not k.startswith("nap_lab"))
    settings.update(overrides)
    return planner.plan(groups, inv["hosts"], settings)


def lab_hosts(capable=True):
    out = {}
    for name, hv in lab_inventory()["hosts"].items():
        out[name] = {"address": hv["nap_address"], "capable": hv.get("nap_probe_capable") if capable else "",
                     "platform": hv.get("nap_platform", ""), "radius_secret": True}
    return out


def index(jobs):
    out = {}
    for job in jobs["jobs"]:
        assert len(job["targets"]) <= len(job["checks"])
        assert sorted(set(c["probe_index"] for c in job["checks"])) == list(range(len(job["targets"])))
        for check in job["checks"]:
            target = job["targets"][check["probe_index"]]
            key = (check["check"], check["flow"], job["vantage"], target["host"], target["protocol"], target["port"])
            out.setdefault(key, []).append((target, check))
    return out


def test_every_flow_of_the_lab_gets_a_vantage_and_its_protocol():
    jobs = verify.probe_jobs(lab_plan(), lab_hosts(), vantages=VANTAGES, radius_secret=True, dns_name="lab.nap.test")
    idx = index(jobs)
    kinds = dict((k[1:], v[0][0]["kind"]) for k, v in idx.items() if k[0] == "flow")
    assert kinds[("NAP-AD-WRITE", "cm01", "198.18.1.5", "tcp", 636)] == "tcp"
    assert kinds[("NAP-GC-READ", "nps01", "198.18.1.5", "tcp", 3269)] == "tcp"
    assert kinds[("AD-CLDAP", "cm01", "198.18.1.5", "udp", 389)] == "cldap"
    assert kinds[("AD-DNS", "nps01", "198.18.1.5", "udp", 53)] == "dns"
    assert kinds[("AD-TIME", "cm01", "198.18.1.5", "udp", 123)] == "ntp"
    assert kinds[("AD-KERBEROS", "cm01", "198.18.1.5", "udp", 88)] == "kerberos"
    assert kinds[("AD-KERBEROS", "cm01", "198.18.1.5", "tcp", 88)] == "kerberos"
    assert kinds[("DHCP-CLIENT", "cla01", "198.18.2.1", "udp", 67)] == "dhcp"      # the relay's address in clients-a
    assert kinds[("DHCP-CLIENT", "clb01", "198.18.3.1", "udp", 67)] == "dhcp"
    assert kinds[("DHCP-RELAY", "rtr01", "198.18.1.40", "udp", 67)] == "dhcp_relay"
    assert kinds[("DHCP-RADIUS", "dhcp01", "198.18.1.20", "udp", 1813)] == "radius"
    assert kinds[("IPSEC-IKE", "clb01", "198.18.1.45", "udp", 4500)] == "ike"
    assert kinds[("MGMT-SSH", "mgmt01", "198.18.9.1", "tcp", 22)] == "tcp"
    dns = idx[("flow", "AD-DNS", "nps01", "198.18.1.5", "udp", 53)][0][0]
    assert dns["dns_name"] == "lab.nap.test" and dns["expect"] == "open"
    radius = idx[("flow", "DHCP-RADIUS", "dhcp01", "198.18.1.20", "udp", 1812)][0][0]
    assert "secret" not in radius, "the secret is added at probe time, never kept in the jobs"
    kerberos = idx[("flow", "AD-KERBEROS", "cm01", "198.18.1.5", "udp", 88)][0]
    assert kerberos[0]["expect"] == "open" and not kerberos[1]["lenient"]
    assert kerberos[0]["kerberos_realm"] == "LAB.NAP.TEST"          # from nap_probe_dns_name
    epmap = idx[("flow", "NAP-SHV-CONFIG", "cm01", "198.18.1.20", "tcp", 135)][0][1]
    assert "dynamic RPC range 49152-65535" in epmap["note"]
    # ipsec01 protects https (nap_ipsec_protected_services): that flow travels inside ESP, so it is unprobeable
    assert sorted((c["flow"], c["protocol"], c["detail"]) for c in jobs["not_probed"]) == sorted(
        [("IPSEC-IKE", "esp", "IP protocol esp has no ports to probe")] * 2
        + [("IPSEC-PROTECTED", "tcp", "carried inside IPsec: a probe in the clear proves nothing about the protected path")] * 2)


def test_negative_probes_cross_the_perimeter_only():
    jobs = verify.probe_jobs(lab_plan(), lab_hosts(), vantages=VANTAGES, radius_secret=True)
    idx = index(jobs)
    negatives = [k for k in idx if k[0] != "flow"]
    # the unchosen HTTP of the HRA and the custom WSUS ports, from the clients' vantages
    assert ("unchosen", "IPSEC-HRA", "cla01", "198.18.1.30", "tcp", 80) in negatives
    assert ("unchosen", "REMEDIATION", "clb01", "198.18.1.50", "tcp", 8530) in negatives
    # the CM-MP alternative (443) is planned by CM-SUP for the same clients: never probed as negative
    assert ("unchosen", "REMEDIATION", "cla01", "198.18.1.50", "tcp", 443) not in negatives
    # the DC's listeners from the clients and the management network
    for vantage in ("cla01", "clb01", "mgmt01"):
        for port in (389, 636, 3268, 3269, 88, 445):
            assert ("unplanned", "UNPLANNED", vantage, "198.18.1.5", "tcp", port) in negatives
    # planned from there: never negative (WinRM from management, HTTPS to the HRA from clients)
    assert not [k for k in negatives if k[2] == "mgmt01" and k[5] in (5985, 5986)]
    assert not [k for k in negatives if k[2] == "cla01" and k[3] == "198.18.1.30" and k[5] == 443]
    assert ("unplanned", "UNPLANNED", "mgmt01", "198.18.1.30", "tcp", 443) in negatives
    # nothing negative within a zone: LDAP 389 (unchosen of NAP-AD-WRITE) is not probed from the site server
    assert not [k for k in negatives if k[2] in ("cm01", "nps01")]
    for key in negatives:
        target = idx[key][0][0]
        assert target["expect"] == "blocked" and target["kind"] in ("tcp", "dns", "cldap", "ike", "ntp", "dhcp")
    off = verify.probe_jobs(lab_plan(), lab_hosts(), vantages=VANTAGES, radius_secret=True, negatives=False)
    assert not [k for k in index(off) if k[0] != "flow"]


def test_ldap_mode_chooses_the_unchosen_port():
    plan = lab_plan(nap_ad_ldap_mode="ldap", nap_hra_transport="http")
    plan = copy.deepcopy(plan)
    # put the site server behind the router, in the management zone, so that NAP-AD-WRITE crosses it
    for flow in plan["flows"]:
        if flow["id"] == "NAP-AD-WRITE":
            flow["perimeter"] = ["rtr01"]
    idx = index(verify.probe_jobs(plan, lab_hosts(), vantages=VANTAGES, radius_secret=True))
    assert ("unchosen", "NAP-AD-WRITE", "cm01", "198.18.1.5", "tcp", 636) in idx
    assert ("unchosen", "IPSEC-HRA", "cla01", "198.18.1.30", "tcp", 443) in idx
    assert ("flow", "IPSEC-HRA", "cla01", "198.18.1.30", "tcp", 80) in idx


def test_windows_sources_probe_through_the_windows_sender():
    hosts = lab_hosts(capable=False)          # the servers are Windows as modelled: they probe through PowerShell
    jobs = verify.probe_jobs(lab_plan(), hosts, vantages=VANTAGES, radius_secret=True)
    runners = dict((j["vantage"], j["runner"]) for j in jobs["jobs"])
    assert runners["cm01"] == runners["nps01"] == runners["dhcp01"] == "win_nap_port_probe"
    assert runners["rtr01"] == "nap_port_probe"                         # the nftables device
    assert runners["cla01"] == "win_nap_port_probe"                     # the lab's clients are Windows too
    idx = index(jobs)
    check = idx[("flow", "NAP-AD-WRITE", "cm01", "198.18.1.5", "tcp", 636)][0][1]
    assert check["vantage_kind"] == "source" and check["runner"] == "win_nap_port_probe"
    # DHCP is the one thing a Windows vantage cannot probe: the client zones' vantages are Windows here
    unprobed = [(c["flow"], c["detail"]) for c in jobs["not_probed"] if c["verdict"] == "not probed"]
    assert unprobed == [("DHCP-CLIENT", "the vantage %s of zone %s is a Windows host, which cannot bind UDP 67/68 while the "
                         "DHCP services hold them (name a Linux vantage for DHCP)" % (v, z))
                        for z, v in (("clients-a", "cla01"), ("clients-b", "clb01"))]
    assert sorted(c["detail"] for c in jobs["not_probed"] if c["verdict"] == "unprobeable") == sorted(
        ["IP protocol esp has no ports to probe"] * 2 + ["carried inside IPsec: a probe in the clear proves nothing about the protected path"] * 2)
    # with a Linux vantage in the zone, DHCP goes there
    linux = dict(hosts, cla01=dict(hosts["cla01"], capable=True))
    jobs = verify.probe_jobs(lab_plan(), linux, vantages=VANTAGES, radius_secret=True)
    assert ("flow", "DHCP-CLIENT", "cla01", "198.18.2.1", "udp", 67) in index(jobs)


def test_windows_sources_without_powershell_51_use_the_zone_vantage_or_are_not_probed():
    hosts = lab_hosts(capable=False)
    for name in hosts:
        if hosts[name]["platform"] == "windows" and name not in VANTAGES.values():
            hosts[name]["windows_version"] = "2008"          # Windows Server 2008 SP2: PowerShell 3.0 at most
    hosts["nps01"]["windows_version"] = "2008 R2"
    hosts["nps01"]["powershell_version"] = "2.0"              # 2008 R2 without WMF 5.1
    jobs = verify.probe_jobs(lab_plan(), hosts, vantages=VANTAGES, radius_secret=True)
    reasons = dict(((c["flow"], c["source"], c["port"]), c["detail"]) for c in jobs["not_probed"])
    assert "cm01 cannot run the probe (PowerShell 3.0" in reasons[("NAP-AD-WRITE", "cm01", 636)]
    assert "zone servers has no vantage" in reasons[("NAP-AD-WRITE", "cm01", 636)]
    assert "nps01 cannot run the probe (PowerShell 2.0" in reasons[("NAP-GC-READ", "nps01", 3269)]
    assert jobs["zones_without_vantage"] == ["servers"]
    # the router (nftables) can, and the client flows have their vantages
    assert set(j["vantage"] for j in jobs["jobs"]) == {"cla01", "clb01", "rtr01", "mgmt01"}
    with_servers = verify.probe_jobs(lab_plan(), hosts, vantages=dict(VANTAGES, servers="mgmt01"),
                                     radius_secret=True)
    idx = index(with_servers)
    check = idx[("flow", "NAP-AD-WRITE", "mgmt01", "198.18.1.5", "tcp", 636)][0][1]
    assert check["vantage_kind"] == "zone vantage"
    # the controller in the management zone
    ctrl = verify.probe_jobs(lab_plan(), hosts, vantages={}, controller_zones=["management"], radius_secret=True)
    assert "localhost" in [j["vantage"] for j in ctrl["jobs"]]
    assert ("flow", "MGMT-WINRM", "localhost", "198.18.1.10", "tcp", 5986) in index(ctrl)


def test_a_vantage_outside_the_source_networks_is_refused():
    hosts = lab_hosts()
    hosts["cla01"]["address"] = "198.18.9.77"     # not in 198.18.2.0/24
    jobs = verify.probe_jobs(lab_plan(), hosts, vantages=dict(VANTAGES, **{"clients-a": "cla01"}), radius_secret=True)
    details = [c["detail"] for c in jobs["not_probed"] if c["flow"] == "IPSEC-HRA"]
    assert details and "is not in the source networks 198.18.2.0/24" in details[0]


def test_radius_without_a_secret_is_not_probed():
    hosts = lab_hosts()
    for entry in hosts.values():
        entry["radius_secret"] = False
    jobs = verify.probe_jobs(lab_plan(), hosts, vantages=VANTAGES, radius_secret=False)
    assert [c["flow"] for c in jobs["not_probed"] if c["protocol"] == "udp"] == ["DHCP-RADIUS"] * 2 + \
        ["IPSEC-HRA-RADIUS"] * 2
    assert "nap_radius_secret" in jobs["not_probed"][0]["detail"] or "nap_radius_secret" in jobs["not_probed"][-1][
        "detail"]


def test_with_secret_fills_radius_targets_only():
    targets = [{"name": "a", "host": "x", "port": 1812, "kind": "radius"}, {"name": "b", "host": "x", "port": 53}]
    out = verify.with_secret(targets, "s3cret")
    assert out[0]["secret"] == "s3cret" and "secret" not in out[1] and "secret" not in targets[0]
    with pytest.raises(NapError, match="no shared secret"):
        verify.with_secret(targets, "")


@pytest.mark.parametrize("bad,match", [
    ({"vantages": {"nowhere": "cla01"}}, "not in nap_zones"),
    ({"unplanned_ports": [{"protocol": "sctp", "port": 1}]}, "unplanned_ports"),
    ({"unplanned_ports": [{"protocol": "tcp", "port": 0}]}, "1-65535"),
])
def test_bad_input(bad, match):
    with pytest.raises(NapError, match=match):
        verify.probe_jobs(lab_plan(), lab_hosts(), **bad)


def result(state, detail="d"):
    return {"state": state, "detail": detail, "time_ms": 1.0}


@pytest.mark.parametrize("expected,lenient,state,verdict", [
    ("open", False, "open", "ok"),
    ("open", False, "filtered", "broken"),
    ("open", False, "open|filtered", "broken"),
    ("open", True, "open|filtered", "unconfirmed"),
    ("open", True, "closed", "broken"),
    ("blocked", False, "filtered", "ok"),
    ("blocked", False, "closed", "ok"),
    ("blocked", False, "open|filtered", "ok"),
    ("blocked", False, "open", "broken"),
    ("blocked", False, "unexpected", "broken"),
    ("open", False, "error", "broken"),
])
def test_judge(expected, lenient, state, verdict):
    assert verify.judge({"expected": expected, "lenient": lenient}, result(state)) == verdict


def test_report_names_the_broken_flow():
    jobs = verify.probe_jobs(lab_plan(), lab_hosts(), vantages=VANTAGES, radius_secret=True)
    results = []
    for job in jobs["jobs"]:
        got = []
        for check in job["checks"]:
            state = "open" if check["expected"] == "open" else "filtered"
            if check["flow"] == "IPSEC-HRA" and check["port"] == 443 and job["vantage"] == "cla01":
                state = "filtered"
            got.append(result(state))
        results.append({"item": {"vantage": job["vantage"]}, "results": got})
    results[-1] = {"item": {"vantage": results[-1]["item"]["vantage"]}, "unreachable": True, "msg": "gone"}
    listeners = verify.listener_checks([{"host": "dc01", "method": "listen_ports_facts", "expected": [
        {"protocol": "tcp", "port": 389, "service": "ldap", "role": "domain_controller"}]}],
        {"dc01": {"tcp": [{"address": "198.18.1.5", "port": 389, "name": "samba"}], "udp": []}}, "T")
    out = verify.report(jobs, results, listeners, when="2026-01-01T00:00:00Z")
    assert not out["ok"]
    flows = out["summary"]["broken_flows"]
    assert flows == ["IPSEC-HRA"]
    # the last job (mgmt01) was unreachable: its checks are not probed, saying so, and fail the run (policy fail)
    assert "MGMT-WINRM" in out["summary"]["unprobed_flows"]
    assert any(line.startswith("MGMT-WINRM ") and "the vantage mgmt01 was unreachable: gone" in line
               for line in out["unprobed"])
    assert [line for line in out["broken"] if line.startswith("IPSEC-HRA ")] == [
        "IPSEC-HRA 198.18.2.0/24 -> hra01 (198.18.1.30) tcp/443 from cla01: expected open, observed filtered (d)"]
    doc = json.loads(out["json"])
    assert doc["summary"]["time"] == "2026-01-01T00:00:00Z"
    for entry in doc["entries"]:
        for key in ("flow", "vantage", "target", "expected", "observed", "verdict", "time"):
            assert key in entry
    assert "**Broken:** IPSEC-HRA" in out["markdown"]
    assert "| ok | LISTENER | dc01 | dc01 | dc01 | 198.18.1.5 | tcp/389 |" in out["markdown"]
    # the filter gives plain dicts (Ansible stores no OrderedDict)
    rep = nap_verify.nap_verify_report(jobs, results, when="T")
    assert rep["entries"][0].__class__ is dict


def test_listener_jobs_pick_the_method():
    plan = lab_plan()
    hosts = lab_hosts(capable=False)
    hosts["dc01"]["windows_version"] = "2008 R2"
    hosts["ca01"]["listener_method"] = "none"
    jobs = dict((j["host"], j) for j in verify.listener_jobs(plan, hosts))
    assert jobs["dc01"]["method"] == "netstat"
    assert jobs["nps01"]["method"] == "win_listen_ports_facts"
    assert jobs["ca01"]["method"] == "none"
    assert [(e["protocol"], e["port"]) for e in jobs["hra01"]["expected"]] == [("tcp", 443)]
    assert "ipsec01" not in jobs and "wsus01" not in jobs        # no listener of their own
    assert dict((j["host"], j["method"]) for j in verify.listener_jobs(plan, lab_hosts()))["dc01"] == \
        "listen_ports_facts"
    hosts["dc01"]["listener_method"] = "telnet"
    with pytest.raises(NapError, match="nap_listener_method"):
        verify.listener_jobs(plan, hosts)


def test_the_new_dependency_flows_are_probed_where_the_lab_has_the_service():
    """Issue 18: the Samba AD DC answers the domain members' flows (NPS, HRA, site server ...), the HRA's global
    catalog bind and the clients' DNS; each is a probe from its source, or from the client zones' vantages."""
    jobs = verify.probe_jobs(lab_plan(), lab_hosts(), vantages=VANTAGES, radius_secret=True, dns_name="lab.nap.test")
    idx = index(jobs)
    kinds = dict((k[1:], v[0][0]["kind"]) for k, v in idx.items() if k[0] == "flow")
    dc = "198.18.1.5"
    for member in ("cm01", "nps01", "hra01", "ca01", "dhcp01", "wsus01"):
        assert kinds[("AD-LDAP", member, dc, "tcp", 389)] == "tcp"
        assert kinds[("AD-SMB", member, dc, "tcp", 445)] == "tcp"
        assert kinds[("AD-RPC", member, dc, "tcp", 135)] == "tcp"
        assert kinds[("AD-KPASSWD", member, dc, "tcp", 464)] == "tcp"
        assert kinds[("AD-KPASSWD", member, dc, "udp", 464)] == "udp"
    assert kinds[("IPSEC-HRA-GC", "hra01", dc, "tcp", 3269)] == "tcp"
    assert kinds[("CLIENT-DNS", "cla01", dc, "udp", 53)] == "dns"
    assert kinds[("CLIENT-DNS", "clb01", dc, "tcp", 53)] == "tcp"
    rpc = idx[("flow", "AD-RPC", "nps01", dc, "tcp", 135)][0][1]
    assert "dynamic RPC range 49152-65535" in rpc["note"]
    # LDAPS chosen for NAP-AD-WRITE: TCP 389 of the domain members is planned, so never probed as "unchosen" from them
    assert not [k for k in idx if k[0] == "unchosen" and k[5] == 389 and k[2] in ("cm01", "nps01", "hra01")]


def test_nps_listens_on_the_legacy_radius_ports_without_negative_probes_of_them():
    plan = lab_plan()
    assert [(x["protocol"], x["port"]) for x in plan["hosts"]["nps01"]["listeners"] if x["protocol"] == "udp"] == [
        ("udp", 1645), ("udp", 1646), ("udp", 1812), ("udp", 1813)]
    assert not [f for f in plan["flows"] if {1645, 1646} & set(f["dst_ports"])]      # not chosen: not opened
    jobs = verify.probe_jobs(plan, lab_hosts(), vantages=VANTAGES, radius_secret=True)
    idx = index(jobs)
    # an NPS ignores RADIUS from clients it does not know, so silence proves nothing: never a negative probe
    assert not [k for k in idx if k[0] != "flow" and k[4] == "udp" and k[5] in (1645, 1646, 1812, 1813)]
    listeners = dict((j["host"], j) for j in verify.listener_jobs(plan, lab_hosts()))
    assert ("udp", 1645) in [(e["protocol"], e["port"]) for e in listeners["nps01"]["expected"]]


# ---------------------------------------------------------------------------------------------------------------
# A Windows estate: examples/inventory.yml, planned and probed on paper (no host contacted)
# ---------------------------------------------------------------------------------------------------------------
def example_inventory():
    with open(os.path.join(ROOT, "examples", "inventory.yml")) as handle:
        return yaml.safe_load(handle)["all"]


def example_plan_and_hosts():
    inv = example_inventory()
    groups, hostvars = {}, {}
    for group, body in inv["children"].items():
        groups[group] = list((body or {}).get("hosts") or {})
        for name, hvars in ((body or {}).get("hosts") or {}).items():
            hostvars.setdefault(name, {}).update(hvars or {})
    settings = dict((k, v) for k, v in inv["vars"].items() if k.startswith("nap_"))
    plan = planner.plan(groups, hostvars, settings)
    hosts = nap_verify.nap_verify_inventory(list(hostvars), hostvars)
    return plan, hosts


def test_every_flow_check_sourced_by_a_managed_host_of_the_example_has_a_vantage():
    plan, hosts = example_plan_and_hosts()
    managed = set(n for n, h in plan["hosts"].items() if h.get("platform") != "none") | set(plan.get("perimeter") or {})
    jobs = verify.probe_jobs(plan, hosts)
    sourced = [c for c in jobs["not_probed"] if c["source"] in managed and c["verdict"] != "unprobeable"] + [
        c for job in jobs["jobs"] for c in job["checks"] if c["check"] == "flow" and c["source"] in managed]
    assert len(sourced) > 100
    without = [(c["flow"], c["source"], c["port"], c.get("detail")) for c in sourced if not c.get("vantage")]
    assert without == []
    # the Windows servers probe their own flows through the PowerShell sender, the router with nap_port_probe
    runners = dict((j["vantage"], j["runner"]) for j in jobs["jobs"])
    assert runners == dict([(n, "win_nap_port_probe") for n in ("cm01", "nps01", "hra01", "ca01", "dhcp01", "wsus01")]
                           + [("rtr01", "nap_port_probe")])
    # the client and management zones have no nap_probe_vantage: named, and their flows not probed, saying why
    assert jobs["zones_without_vantage"] == ["clients-a", "clients-b", "management"]
    reasons = set(c["detail"] for c in jobs["not_probed"] if c["verdict"] == "not probed" and c["source"] not in managed)
    assert "the source is a network and zone clients-a has no vantage (nap_probe_vantage)" in reasons
    # the only checks of managed sources not probed: RADIUS without a secret (the vantage is known)
    assert set((c["flow"], c["detail"]) for c in jobs["not_probed"] if c["source"] in managed
               and c["verdict"] == "not probed") == {
        ("DHCP-RADIUS", "a RADIUS probe needs the vantage's shared secret (nap_radius_secret)"),
        ("IPSEC-HRA-RADIUS", "a RADIUS probe needs the vantage's shared secret (nap_radius_secret)")}


def test_no_duplicate_checks_remediation_probes_port_80_once_per_vantage():
    plan, hosts = example_plan_and_hosts()
    jobs = verify.probe_jobs(plan, hosts, vantages={"clients-a": "cm01"} and {}, radius_secret=True)
    lab = verify.probe_jobs(lab_plan(), lab_hosts(), vantages=VANTAGES, radius_secret=True)
    for result in (jobs, lab):
        for job in result["jobs"]:
            keys = [(c["check"], c["flow"], c["address"], c["protocol"], c["port"], c["expected"]) for c in job["checks"]]
            assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]
            targets = [(t["host"], t["protocol"], t["port"], t.get("kind"), t.get("expect")) for t in job["targets"]]
            assert len(targets) == len(set(targets))
        keys = [(c["flow"], c["source"], c["target"], c["protocol"], c["port"]) for c in result["not_probed"]]
        assert len(keys) == len(set(keys))
    remediation = [c for job in lab["jobs"] if job["vantage"] == "cla01" for c in job["checks"]
                   if c["flow"] == "REMEDIATION" and c["port"] == 80 and c["check"] == "flow"]
    assert len(remediation) == 1


def test_unprobed_checks_fail_the_run_by_default_and_warn_on_request():
    plan, hosts = example_plan_and_hosts()
    jobs = verify.probe_jobs(plan, hosts, radius_secret=True)
    results = dict((job["vantage"], {"results": [result("open" if c["expected"] == "open" else "filtered")
                                                 for c in job["checks"]]}) for job in jobs["jobs"])
    failing = verify.report(jobs, results, when="T")
    assert not failing["ok"] and failing["broken"] == []
    assert failing["summary"]["unprobed_flows"] == ["CLIENT-DNS", "DHCP-CLIENT", "IPSEC-HRA", "IPSEC-IKE", "MGMT-SSH",
                                                    "MGMT-WINRM", "REMEDIATION"]
    assert "CLIENT-DNS 198.51.100.0/25 -> dc01 udp/53: the source is a network and zone clients-a has no vantage " \
           "(nap_probe_vantage)" in failing["unprobed"]
    assert "**Zones without a vantage** (nap_probe_vantage): clients-a, clients-b, management" in failing["markdown"]
    assert "**Not probed** (fails the run: nap_verify_unprobed is fail)" in failing["markdown"]
    warning = verify.report(jobs, results, when="T", unprobed="warn")
    assert warning["ok"] and warning["unprobed"] == failing["unprobed"]
    # the ESP of IPSEC-IKE and the services IPsec protects on cm01 (inside ESP): counted apart, never failing
    assert sorted(set((e["flow"], e["detail"]) for e in warning["entries"] if e["verdict"] == "unprobeable")) == [
        ("IPSEC-IKE", "IP protocol esp has no ports to probe"),
        ("IPSEC-PROTECTED", "carried inside IPsec: a probe in the clear proves nothing about the protected path")]
    with pytest.raises(NapError, match="nap_verify_unprobed is 'maybe'"):
        verify.report(jobs, results, unprobed="maybe")


def test_an_unreachable_vantage_makes_its_checks_not_probed_and_the_report_is_still_made():
    plan, hosts = example_plan_and_hosts()
    jobs = verify.probe_jobs(plan, hosts, radius_secret=True)
    results = dict((job["vantage"], {"results": [result("open" if c["expected"] == "open" else "filtered")
                                                 for c in job["checks"]]}) for job in jobs["jobs"])
    results["cm01"] = {"unreachable": True, "msg": "ntlm: the specified credentials were rejected by the server"}
    del results["nps01"]
    out = verify.report(jobs, results, when="T", unprobed="warn")
    cm01 = [e for e in out["entries"] if e.get("vantage") == "cm01" and e["check"] != "listener"]
    assert cm01 and all(e["verdict"] == "not probed" for e in cm01)
    assert cm01[0]["detail"] == "the vantage cm01 was unreachable: ntlm: the specified credentials were rejected by " \
                                "the server"
    nps01 = [e for e in out["entries"] if e.get("vantage") == "nps01"]
    assert nps01 and set(e["detail"] for e in nps01) == {
        "the probe task did not run on vantage nps01 (did it fail before?)"}
    assert json.loads(out["json"])["summary"]["verdicts"]["not probed"] >= len(cm01) + len(nps01)


def test_the_results_filter_picks_each_vantages_own_result():
    probes = {"jobs": [{"vantage": "cm01"}, {"vantage": "rtr01"}, {"vantage": "gone"}, {"vantage": "dhcp01"}]}
    hostvars = {"cm01": {"__nap_verify_probe_linux": {"skipped": True}, "__nap_verify_probe_windows": {"results": [1]}},
                "rtr01": {"__nap_verify_probe_linux": {"results": [2]}, "__nap_verify_probe_windows": {"skipped": True}},
                "dhcp01": {}}
    loop = [{"item": {"vantage": "dhcp01"}, "results": [3]}, {"item": {"vantage": "cm01"}, "skipped": True}]
    out = nap_verify.nap_verify_results(probes, hostvars, loop_results=loop)
    assert out == {"cm01": {"results": [1]}, "rtr01": {"results": [2]}, "gone": {}, "dhcp01": {"item": {
        "vantage": "dhcp01"}, "results": [3]}}
