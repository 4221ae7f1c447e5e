# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for configmgr.nap.nft_nap_policy: read the plan on the controller, send the target only its own.

The plan (its handle, the plan itself, or a registered nap_plan result) never travels to the target:
this plugin reads it here and calls the module with the host's own rules, the zones its table owns (with
their networks), the management sources and ports the planner decided, and the host's dynamic RPC range.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

MODULE = "configmgr.nap.nft_nap_policy"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        # imported when the task runs, not when Ansible loads the plugin (issue 22)
        from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
        from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError

        host = self._task.args.get("host") or task_vars.get("inventory_hostname")
        try:
            args = plandoc.nft_arguments(self._task.args, host)
        except NapError as exc:
            result.update(failed=True, changed=False,
                          msg="nft_nap_policy: %s (nothing was sent to the host)" % to_text(exc))
            return result
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        return result
