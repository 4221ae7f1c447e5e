# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for configmgr.nap.nap_export: write the plan as an Aerleon policy tree, contact no host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError
from ansible_collections.configmgr.nap.plugins.plugin_utils._files import UnsafePathError, write_tree

FORMATS = ("aerleon",)
POLICY_DIR = "policies/pol/"
COMMAND = "aclgen --base_directory policies --definitions_directory def --output_directory out"


def _aerleon():
    """The Aerleon backend, imported when an export runs: ansible-core imports an action plugin for every task
    that names it, also one that is skipped (plan.yml's export, unless -e nap_export=...), and it compiles a
    collection's module_utils from source each time (the backend and the Cisco one it uses: about 8 ms)."""
    from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import aerleon
    return aerleon


def _culprit(name):
    """'perimeter device X: ' when the file name is the policy of device X (the device name made the path)."""
    if name.startswith(POLICY_DIR) and name.endswith(".yaml"):
        return "perimeter device %r: " % name[len(POLICY_DIR):-len(".yaml")]
    return ""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("plan", "format", "dest", "devices", "targets", "filter_name"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars or {})
        del tmp
        args = self._task.args
        result["changed"] = False
        fmt = args.get("format") or "aerleon"
        if fmt not in FORMATS:
            result.update(failed=True, msg="format: %s is not known; expected one of %s" % (fmt, ", ".join(FORMATS)))
            return result
        if args.get("plan") is None or not args.get("dest"):
            result.update(failed=True, msg="plan and dest are required")
            return result
        aerleon = _aerleon()
        devices = args.get("devices")
        if isinstance(devices, str):
            devices = [devices]
        targets = args.get("targets") or list(aerleon.DEFAULT_TARGETS)
        if isinstance(targets, str):
            targets = [targets]
        try:
            files = aerleon.export(args["plan"], devices, targets, args.get("filter_name") or aerleon.DEFAULT_FILTER)
        except NapError as exc:
            result.update(failed=True, msg="configmgr.nap export: %s (nothing was written)" % to_text(exc))
            return result
        dest = os.path.abspath(os.path.expanduser(to_text(args["dest"])))
        try:
            paths, changed = write_tree(files, dest, self._task.check_mode)
        except UnsafePathError as exc:
            result.update(failed=True, msg="configmgr.nap export: %s%s" % (_culprit(exc.name), to_text(exc)))
            return result
        except (IOError, OSError) as exc:
            result.update(failed=True, msg="configmgr.nap export: cannot write to %s: %s" % (dest, to_text(exc)))
            return result
        result.update(dest=dest, files=paths, changed_files=changed, changed=bool(changed), command=COMMAND)
        return result
