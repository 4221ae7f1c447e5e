# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles and playbooks on the whole bundled lab: site.yml converges the router (real nftables, real
packets) and the Windows-modelled servers (the fake Windows host, one rule store per namespace);
drift.yml reports hand-made drift on both kinds of host and corrects it on request.

Builds examples/lab/lab.yml under its own namespace prefix and removes it afterwards (root, ip, nft).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from labkit import ROOT, changed_count, needs_root_and_tools, playbook, remove_namespaces, sh, tcp_connects

pytestmark = needs_root_and_tools
PREFIX = "napr%d" % (os.getpid() % 100000)
LAB_PLAYBOOK = os.path.join(ROOT, "playbooks", "lab.yml")
PLANNED = ("cla01", "198.18.1.30", 443)        # IPSEC-HRA over HTTPS
UNPLANNED = ("cla01", "198.18.1.5", 389)       # client to the DC's LDAP
WINDOWS_HOSTS = ("dc01", "cm01", "nps01", "hra01", "ca01", "dhcp01", "ipsec01", "wsus01")


def ns(host):
    return "%s-%s" % (PREFIX, host)


class Site:
    def __init__(self, tmp):
        self.lab_dir = str(tmp / "lab")
        self.stores = str(tmp / "windows")
        os.makedirs(self.stores)
        self.inventory = os.path.join(self.lab_dir, "inventory.yml")

    def run(self, name, *args, **kw):
        return playbook("-i", self.inventory, os.path.join(ROOT, "playbooks", name), *args,
                        fake_windows_dir=self.stores, **kw)

    def store(self, host):
        with open(os.path.join(self.stores, ns(host) + ".json")) as handle:
            return json.load(handle)

    def owned_names(self, host):
        return sorted(r["Name"] for r in self.store(host)["rules"] if r["Grouping"] == "ConfigMgr NAP")

    def drop_windows_rule(self, host, name):
        path = os.path.join(self.stores, ns(host) + ".json")
        doc = self.store(host)
        doc["rules"] = [r for r in doc["rules"] if r["Name"] != name]
        with open(path, "w") as handle:
            json.dump(doc, handle)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("naproles"))
    args = ["-e", "nap_lab_prefix=%s" % PREFIX, "-e", "nap_lab_dir=%s" % site.lab_dir]
    try:
        playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=present", *args)
        yield site
    finally:
        try:
            playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=absent", *args)
        finally:
            remove_namespaces(PREFIX)


def connects(flow):
    src, address, port = flow
    return tcp_connects(ns(src), address, port)


def plan_inbound_names(site, host):
    """Names of the rules the plan gives a host, as Windows holds them (planned once per module)."""
    if not hasattr(site, "plan"):
        report = os.path.join(site.lab_dir, "report")
        playbook("-i", site.inventory, os.path.join(ROOT, "playbooks", "plan.yml"), "-e", "nap_report_dir=%s" % report)
        with open(os.path.join(report, "flows.json")) as handle:
            site.plan = json.load(handle)
    entry = site.plan["hosts"][host]
    return sorted("configmgr.nap " + r["name"] for r in entry["inbound"] + entry["outbound"])


def hand_delete_router_rule(rule):
    text = sh("ip", "netns", "exec", ns("rtr01"), "nft", "-a", "list", "chain", "inet", "configmgr_nap", "forward").stdout
    handles = [line.rsplit("handle", 1)[1].strip() for line in text.splitlines() if '"%s|' % rule in line]
    assert handles, text
    out = sh("ip", "netns", "exec", ns("rtr01"), "nft", "delete", "rule", "inet", "configmgr_nap", "forward",
             "handle", handles[0])
    assert out.returncode == 0, out.stderr


def test_01_site_converges_every_host_and_is_idempotent(site):
    assert connects(UNPLANNED), "before the converge the router forwards everything"
    first = site.run("site.yml")
    assert changed_count(first) == 1 + len(WINDOWS_HOSTS)
    assert connects(PLANNED) and not connects(UNPLANNED)
    second = site.run("site.yml")
    assert changed_count(second) == 0, second.stdout[-3000:]


def test_02_each_windows_store_holds_exactly_its_planned_rules(site):
    for host in WINDOWS_HOSTS:
        assert site.owned_names(host) == plan_inbound_names(site, host), host
    foreign = [r["Name"] for r in site.store("cm01")["rules"] if r["Grouping"] != "ConfigMgr NAP"]
    assert foreign, "the synthetic host's own rules are still there"


def test_03_drift_is_reported_on_both_kinds_of_host(site):
    site.drop_windows_rule("nps01", "configmgr.nap NAP-SHV-INSTALL-TCP-IN")
    hand_delete_router_rule("IPSEC-HRA-TCP-FWD")
    out = site.run("drift.yml", check=False)
    assert out.returncode != 0
    assert "nps01: missing NAP-SHV-INSTALL-TCP-IN; extra -; changed -" in out.stdout
    assert "rtr01: missing IPSEC-HRA-TCP-FWD; extra -; changed -" in out.stdout
    assert "cm01 has drifted" not in out.stdout
    assert not connects(PLANNED), "reporting drift must not change anything"
    assert "configmgr.nap NAP-SHV-INSTALL-TCP-IN" not in site.owned_names("nps01")


def test_04_drift_is_corrected_on_request(site):
    out = site.run("drift.yml", "-e", "nap_drift_correct=true")
    assert "rtr01: corrected 1 change(s)" in out.stdout and "nps01: corrected 1 change(s)" in out.stdout
    assert connects(PLANNED) and not connects(UNPLANNED)
    assert site.owned_names("nps01") == plan_inbound_names(site, "nps01")
    clean = site.run("drift.yml")
    assert "no drift on %d host(s)" % (1 + len(WINDOWS_HOSTS)) in clean.stdout


def test_05_limit_converges_one_host_only(site):
    site.drop_windows_rule("cm01", "configmgr.nap NAP-SHV-STATUS-TCP-IN")
    site.drop_windows_rule("dc01", "configmgr.nap NAP-AD-WRITE-TCP-IN")
    out = site.run("site.yml", "--limit", "cm01")
    assert changed_count(out) == 1
    assert "configmgr.nap NAP-SHV-STATUS-TCP-IN" in site.owned_names("cm01")
    assert "configmgr.nap NAP-AD-WRITE-TCP-IN" not in site.owned_names("dc01")


def test_06_role_backup_goes_to_nap_firewall_backup_dir(site, tmp_path):
    """The role passes nap_firewall_backup_dir as backup_options.dir_path (issue 13, item 4): the backup lands
    there, on the controller, and no deprecation is shown. Only a Windows host changes (--limit): the router's
    backup would be written on this machine's own file system."""
    site.drop_windows_rule("nps01", "configmgr.nap NAP-SHV-INSTALL-TCP-IN")
    backups = tmp_path / "nap-backups"
    out = site.run("site.yml", "--limit", "nps01", "-e", "nap_firewall_backup=true",
                   "-e", "nap_firewall_backup_dir=%s" % backups)
    assert changed_count(out) == 1
    files = os.listdir(str(backups))
    assert len(files) == 1 and files[0].startswith("nps01_win_nap_firewall.") and files[0].endswith(".json"), files
    with open(str(backups / files[0])) as handle:
        saved = json.load(handle)
    assert "configmgr.nap NAP-SHV-INSTALL-TCP-IN" not in [r["Name"] for r in saved["rules"]]
    assert "DEPRECATION" not in out.stdout + out.stderr and "backup_dir" not in out.stdout + out.stderr
    assert site.owned_names("nps01") == plan_inbound_names(site, "nps01")
