# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nft_nap_policy's action plugin: what it sends the module, with _execute_module replaced (no host, no nft)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
from unittest.mock import MagicMock

from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task

from ansible_collections.configmgr.nap.plugins.action.nft_nap_policy import ActionModule
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc, planner

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "modules"))
from test_nft_nap_policy import router_estate  # noqa: E402  pylint: disable=wrong-import-position,import-error

RULES = [dict(name="IPSEC-HRA-TCP-FWD", flow_id="IPSEC-HRA", direction="forward", protocol="tcp",
              src_addresses=["198.51.100.0/24"], dst_addresses=["192.0.2.30"], dst_ports=[443])]
ZONES = {"clients": ["198.51.100.0/24"], "servers": ["192.0.2.0/24"]}


def run(hostname="rtr01", **args):
    """(result, [module args sent]) of the action run like a task."""
    task = Task()
    task.action = "configmgr.nap.nft_nap_policy"
    task.args = args
    action = ActionModule(task, MagicMock(), PlayContext(), loader=MagicMock(), templar=MagicMock(),
                          shared_loader_obj=MagicMock())
    sent = []

    def execute_module(module_name=None, module_args=None, task_vars=None):
        assert module_name == "configmgr.nap.nft_nap_policy"
        sent.append(module_args)
        return {"changed": False}

    action._execute_module = execute_module
    return action.run(task_vars={"inventory_hostname": hostname}), sent


def test_explicit_rules_are_sent_as_given_without_host():
    result, sent = run(rules=RULES, zones=ZONES, management_sources=["203.0.113.10"], host="rtr01")
    assert not result.get("failed") and sent == [dict(rules=RULES, zones=ZONES, management_sources=["203.0.113.10"])]
    result, sent = run(rules=RULES, plan=None, table="nap")
    assert sent == [dict(rules=RULES, table="nap")]


def test_a_plan_is_resolved_on_the_controller_for_the_host():
    plan = planner.plan(*router_estate())
    result, sent = run(plan=plan, allow_lockout=True)
    assert not result.get("failed"), result.get("msg")
    assert sent == [plandoc.nft_arguments(dict(plan=plan, allow_lockout=True), "rtr01")]
    assert "plan" not in sent[0] and sent[0]["rules"] and sent[0]["management_sources"] == ["198.18.9.10/32"]
    result, sent = run(hostname="rtr01", plan=plan, host="nope")
    assert result["failed"] is True and "nothing was sent to the host" in result["msg"] and sent == []


def test_plan_and_rules_fail_before_anything_is_sent():
    result, sent = run(plan={"hosts": {}}, rules=RULES)
    assert result["failed"] is True and "nothing was sent to the host" in result["msg"] and sent == []


def test_loading_the_plugin_does_not_import_the_plan_reader():
    """Ansible loads the action plugin in every run: loading it imports neither plandoc nor the model; the task
    imports them when it runs (issue 22)."""
    code = ("import sys\n"
            "from ansible_collections.configmgr.nap.plugins.action import nft_nap_policy\n"
            "prefix = 'ansible_collections.configmgr.nap.plugins.module_utils'\n"
            "loaded = [m for m in sys.modules if m.startswith(prefix)]\n"
            "assert not loaded, loaded\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
