# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for configmgr.nap.nap_plan: plan on the controller, contact no host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc, planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap import report
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError
from ansible_collections.configmgr.nap.plugins.plugin_utils._files import write_tree

SETTING_NAMES = tuple(s.name for s in catalogue.SETTINGS) + ("nap_zones",)
HOST_VAR_PREFIXES = ("nap_",)
HOST_VAR_NAMES = planner.CONNECTION_VARS


def inventory_from_task_vars(task_vars):
    """(groups, hostvars) restricted to the hosts of the nap_* groups and their nap_* variables."""
    groups = dict((g, list(h)) for g, h in (task_vars.get("groups") or {}).items() if g in catalogue.ROLE_BY_GROUP)
    all_hostvars = task_vars.get("hostvars") or {}
    hostvars = {}
    for hosts in groups.values():
        for host in hosts:
            if host in hostvars:
                continue
            hvars = all_hostvars[host]
            hostvars[host] = dict((k, hvars[k]) for k in list(hvars.keys())
                                  if k.startswith(HOST_VAR_PREFIXES) or k in HOST_VAR_NAMES)
    return groups, hostvars


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("report_dir", "formats", "settings", "groups", "hostvars", "controller_addresses",
                             "return_plan"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        result["changed"] = False
        formats = args.get("formats") or list(report.REPORT_FILES)
        if isinstance(formats, str):
            formats = [formats]
        bad = [f for f in formats if f not in report.REPORT_FILES]
        if bad:
            result.update(failed=True, msg="formats: %s not known; expected some of %s"
                          % (", ".join(map(str, bad)), ", ".join(report.REPORT_FILES)))
            return result
        try:
            if args.get("groups") is not None or args.get("hostvars") is not None:
                groups = args.get("groups") or {}
                hostvars = args.get("hostvars") or {}
            else:
                groups, hostvars = inventory_from_task_vars(task_vars)
            settings = dict((k, task_vars[k]) for k in SETTING_NAMES if task_vars.get(k) is not None)
            settings.update(args.get("settings") or {})
            plan = planner.plan(groups, hostvars, settings, args.get("controller_addresses") or [])
        except NapError as exc:
            result.update(failed=True, msg="configmgr.nap plan: %s (nothing was written)" % to_text(exc))
            return result
        text = json.dumps(plan, indent=1) + "\n"
        result["summary"] = planner.summary(plan)
        result["counts"] = {"hosts": len(plan["hosts"]), "perimeter_devices": len(plan["perimeter"]),
                            "flows": len(plan["flows"]), "warnings": len(plan["warnings"])}
        if plan["warnings"]:
            result["warnings"] = list(plan["warnings"])
        if args.get("return_plan"):
            result["plan"] = json.loads(text)     # plain dicts and lists: what variable storage supports
        report_dir = args.get("report_dir")
        if report_dir:
            report_dir = os.path.abspath(os.path.expanduser(to_text(report_dir)))
            files = report.render_all(plan, formats)
            try:
                paths, changed = write_tree(files, report_dir, self._task.check_mode)
            except (IOError, OSError) as exc:
                result.update(failed=True, msg="configmgr.nap plan: cannot write the report to %s: %s"
                              % (report_dir, to_text(exc)))
                return result
            result["report_dir"] = report_dir
            result["files"] = paths
            result["changed"] = bool(changed)
            if "json" in formats and not self._task.check_mode:
                result[plandoc.PLAN_FILE_KEY] = os.path.join(report_dir, report.REPORT_FILES["json"])
        if plandoc.PLAN_FILE_KEY not in result:
            try:
                result[plandoc.PLAN_FILE_KEY] = _private_plan_file(text)
            except (IOError, OSError) as exc:
                result.update(failed=True, msg="configmgr.nap plan: cannot write the plan file under %s: %s"
                              % (C.DEFAULT_LOCAL_TMP, to_text(exc)))
        return result


def _private_plan_file(text):
    """The plan, for the handle, in this run's private temporary directory (0700, removed when the run ends).

    The name is the content's digest: the same plan is written once however many plays ask for it.
    """
    data = to_bytes(text)
    path = os.path.join(C.DEFAULT_LOCAL_TMP, "configmgr_nap-plan-%s.json" % hashlib.sha256(data).hexdigest()[:20])
    if not os.path.exists(path):
        tmp = "%s.%d.tmp" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.rename(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path
