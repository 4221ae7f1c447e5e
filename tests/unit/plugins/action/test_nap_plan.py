# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan playbook through real ansible-playbook: files written, idempotent, clean failures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4))
PLAYBOOK = os.path.join(ROOT, "playbooks", "plan.yml")
EXAMPLE = os.path.join(ROOT, "examples", "inventory.yml")


def ansible_playbook(*args, **kw):
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        [os.path.join(ROOT, "build", "pytest"), env.get("ANSIBLE_COLLECTIONS_PATH", "")]).rstrip(os.pathsep)
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook")] + list(args)
    return subprocess.run(cmd, env=env, cwd=kw.get("cwd", ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)


def test_plan_writes_reports_and_is_idempotent(tmp_path):
    out = tmp_path / "out"
    first = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "-e", "nap_report_dir=%s" % out)
    assert first.returncode == 0, first.stdout
    assert sorted(os.listdir(str(out))) == ["flows.csv", "flows.json", "flows.md", "topology.mmd"]
    assert "9 hosts, 1 perimeter devices" in first.stdout
    assert "changed=1" in first.stdout
    doc = json.loads((out / "flows.json").read_text())
    seed = {"NAP-AD-WRITE", "NAP-GC-READ", "NAP-SHV-INSTALL", "NAP-SHV-CONFIG", "NAP-SHV-STATUS"}
    assert seed <= {f["id"] for f in doc["flows"]}
    second = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "-e", "nap_report_dir=%s" % out)
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout


def test_check_mode_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "--check", "-e", "nap_report_dir=%s" % out)
    assert result.returncode == 0, result.stdout
    assert not out.exists()


@pytest.mark.parametrize("extra,message", [
    ("nap_ad_ldap_mode=starttls", "nap_ad_ldap_mode is 'starttls'; expected one of ldap, ldaps"),
    ("nap_rpc_dynamic_range=70000-70001", "nap_rpc_dynamic_range is '70000-70001'"),
])
def test_bad_input_fails_with_one_message_and_writes_nothing(tmp_path, extra, message):
    out = tmp_path / "out"
    result = ansible_playbook("-i", EXAMPLE, PLAYBOOK, "-e", "nap_report_dir=%s" % out, "-e", extra)
    assert result.returncode != 0
    assert message in result.stdout and "(nothing was written)" in result.stdout
    assert "Traceback" not in result.stdout and "argument_spec_data" not in result.stdout
    assert not out.exists()


def test_host_without_address_is_named(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  children:\n    nap_site_servers:\n      hosts:\n        cm01.example.com:\n"
                   "    nap_domain_controllers:\n      hosts:\n        dc01:\n          ansible_host: 192.0.2.5\n")
    result = ansible_playbook("-i", str(inv), PLAYBOOK, "-e", "nap_report_dir=%s" % (tmp_path / "out"),
                              "-e", "nap_management_sources=['203.0.113.10']")
    assert result.returncode != 0
    assert "host cm01.example.com (group nap_site_servers) has no usable address" in result.stdout
