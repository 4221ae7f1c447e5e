# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real packets through the roles and playbooks: perimeter.yml converges the bundled lab's router,
drift.yml reports a rule deleted by hand and corrects it on request.

Builds examples/lab/lab.yml under its own namespace prefix and removes it afterwards (root, ip, nft).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from labkit import ROOT, changed_count, needs_root_and_tools, playbook, remove_namespaces, sh, tcp_connects

pytestmark = needs_root_and_tools
PREFIX = "napr%d" % (os.getpid() % 100000)
LAB_PLAYBOOK = os.path.join(ROOT, "playbooks", "lab.yml")
PLANNED = ("cla01", "198.18.1.30", 443)        # IPSEC-HRA over HTTPS
UNPLANNED = ("cla01", "198.18.1.5", 389)       # client to the DC's LDAP


def ns(host):
    return "%s-%s" % (PREFIX, host)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    lab_dir = str(tmp_path_factory.mktemp("naproles") / "lab")
    args = ["-e", "nap_lab_prefix=%s" % PREFIX, "-e", "nap_lab_dir=%s" % lab_dir]
    try:
        playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=present", *args)
        yield os.path.join(lab_dir, "inventory.yml")
    finally:
        try:
            playbook(LAB_PLAYBOOK, "-e", "nap_lab_state=absent", *args)
        finally:
            remove_namespaces(PREFIX)


def connects(flow):
    src, address, port = flow
    return tcp_connects(ns(src), address, port)


def hand_delete(rule):
    text = sh("ip", "netns", "exec", ns("rtr01"), "nft", "-a", "list", "chain", "inet", "configmgr_nap", "forward").stdout
    handles = [line.rsplit("handle", 1)[1].strip() for line in text.splitlines() if '"%s|' % rule in line]
    assert handles, text
    out = sh("ip", "netns", "exec", ns("rtr01"), "nft", "delete", "rule", "inet", "configmgr_nap", "forward",
             "handle", handles[0])
    assert out.returncode == 0, out.stderr


def test_01_perimeter_playbook_converges_and_is_idempotent(inventory):
    assert connects(UNPLANNED), "before the converge the router forwards everything"
    first = playbook("-i", inventory, os.path.join(ROOT, "playbooks", "perimeter.yml"))
    assert changed_count(first) >= 1
    assert connects(PLANNED) and not connects(UNPLANNED)
    second = playbook("-i", inventory, os.path.join(ROOT, "playbooks", "perimeter.yml"))
    assert changed_count(second) == 0, second.stdout[-3000:]


def test_02_drift_is_reported_and_fails_without_correction(inventory):
    hand_delete("IPSEC-HRA-TCP-FWD")
    assert not connects(PLANNED)
    out = playbook("-i", inventory, os.path.join(ROOT, "playbooks", "drift.yml"), "--limit", "rtr01", check=False)
    assert out.returncode != 0
    assert "rtr01: missing IPSEC-HRA-TCP-FWD; extra -; changed -" in out.stdout
    assert "run again with -e nap_drift_correct=true" in out.stdout
    assert not connects(PLANNED), "reporting drift must not change the router"


def test_03_drift_is_corrected_on_request(inventory):
    out = playbook("-i", inventory, os.path.join(ROOT, "playbooks", "drift.yml"), "--limit", "rtr01",
                   "-e", "nap_drift_correct=true")
    assert "rtr01: corrected 1 change(s)" in out.stdout
    assert connects(PLANNED) and not connects(UNPLANNED)
    clean = playbook("-i", inventory, os.path.join(ROOT, "playbooks", "drift.yml"), "--limit", "rtr01")
    assert "no drift on 1 host(s)" in clean.stdout
