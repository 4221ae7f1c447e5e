# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for configmgr.nap.win_nap_firewall.

Everything is decided on the controller: the input is validated before any remote call, the host
is read with ONE ansible.windows.win_powershell call (one pass over the HNetCfg.FwPolicy2 rule
collection), the diff is the collection's shared diff, and every change goes to the host in ONE
more call.  Nothing is sent when nothing differs, nor in check mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc, planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_changes
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_lockout
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_predefined
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_render
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError
from ansible_collections.configmgr.nap.plugins.modules.win_nap_firewall import MUTUALLY_EXCLUSIVE, argument_spec
from ansible_collections.configmgr.nap.plugins.plugin_utils._files import safe_component, write_new
from ansible_collections.configmgr.nap.plugins.plugin_utils._win_powershell import POWERSHELL_MODULE, error_text

NOTHING_SENT = "nothing was sent to the host"
NOTHING_CHANGED = "nothing was changed"
DEPRECATED_BACKUP_DIR = ("win_nap_firewall: the option backup_dir is deprecated, use backup_options: "
                         "{dir_path: <directory>} instead")
LIST_NAMES = (("in", "inbound"), ("out", "outbound"))


class _Fail(Exception):
    """Stop the run with this message (and extra result keys)."""

    def __init__(self, msg, **extra):
        super(_Fail, self).__init__(msg)
        self.msg = msg
        self.extra = extra


def backup_options(args):
    """{dir_path, filename} of the backup, the deprecated backup_dir mapped onto dir_path."""
    options = dict(args.get("backup_options") or {})
    if args.get("backup_dir") is not None and not options.get("dir_path"):
        options["dir_path"] = args["backup_dir"]
    return options


def filename_problem(name):
    """Why ``name`` is not a plain file name (backup_options.filename), or None."""
    if name is None:
        return None
    bad = any(ord(c) < 32 or ord(c) == 127 for c in name)
    if bad or not name or name in (".", "..") or "/" in name or "\\" in name:
        return ("backup_options.filename %r is not a plain file name (no / or \\ nor control character, not . or "
                "..)" % (name,))
    return None


def diff_in_list_order(rdiff, have, want, host):
    """Ansible's --diff for a rule diff: one line per rule that changes, in the order of the rule lists - inbound
    rules, then outbound, each in the order of the rules on the host (before) and of the wanted rules (after) -
    every line naming its list (``inbound: <rule>``), as nft_nap_policy names the chain."""
    def lines(rules, changed):
        ids = set(id(r) for r in changed)
        out = []
        for direction, label in LIST_NAMES:
            out.extend("%s: %s" % (label, r.summary()) for r in rules if id(r) in ids and r.direction == direction)
        out.extend("%s: %s" % (r.direction, r.summary()) for r in rules
                   if id(r) in ids and r.direction not in dict(LIST_NAMES))
        return "".join(line + "\n" for line in out)
    header = " (%s)" % host if host else ""
    return {
        "before_header": "rules before" + header,
        "after_header": "rules after" + header,
        "before": lines(have, rdiff.remove + [old for old, _new in rdiff.update]),
        "after": lines(want, rdiff.add + [new for _old, new in rdiff.update]),
    }


def op_line(op):
    """One op as a reviewable netsh-style line (the module applies it through the COM API)."""
    if op["op"] == "add":
        return windows_render.op_command({"op": "add", "name": op["name"], "rule": dict(op["set"])})
    if op["op"] in ("disable", "enable"):
        enable = "no" if op["op"] == "disable" else "yes"
        return 'set rule name="%s" (group %s) new enable=%s' % (op["name"], op["grouping"] or "(none)", enable)
    if op["op"] == "update":
        copies = " (%d copies)" % len(op["temp"]) if op.get("temp") else ""
        values = " ".join("%s=%s" % (k, "*" if v in (None, "") else v) for k, v in op["set"])
        return 'set rule name="%s"%s new %s' % (op["name"], copies, values)
    return windows_render.op_command({"op": "remove", "name": op["name"]})


def _failure_text(res, prefix):
    """One failed op of the apply script: op, rule (model name), error and the properties it had set."""
    done = " (after setting %s)" % ", ".join(res["set"]) if res.get("set") else ""
    return "%s %s: %s%s" % (res.get("op", "?"), windows.model_name(str(res.get("name")), prefix), res.get("error"), done)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(argument_spec())

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        result["changed"] = False
        self._calls = 0
        try:
            _vr, args = self.validate_argument_spec(argument_spec=argument_spec(),
                                                    mutually_exclusive=MUTUALLY_EXCLUSIVE)
        except AnsibleActionFail as exc:
            result.update(failed=True, msg="win_nap_firewall: %s (%s)" % (to_text(exc), NOTHING_SENT))
            return result
        warnings = []
        try:
            self._run(args, task_vars, result, warnings)
        except _Fail as exc:
            result.update(exc.extra)
            result.update(failed=True, msg=exc.msg)
        if self._calls:
            result["remote_calls"] = self._calls
        if warnings:
            result["warnings"] = warnings
        return result

    # ------------------------------------------------------------------
    def _inputs(self, args, task_vars):
        """(host, group, prefix, mask, wanted model rules, plan) validated, before any remote call."""
        host = args.get("host") or task_vars.get("inventory_hostname") or "?"
        group, prefix = args["group"], args["name_prefix"]
        try:
            windows.check_group(group)
            windows.check_prefix(prefix)
            mask = windows.profiles_mask(args["profiles"])
            plan = args.get("plan")
            if plan is not None:
                plan = plandoc.load(plan)
                items = windows.rules_from_plan(plan, host)
                where = "plan hosts[%s]" % host
            else:
                items = args.get("rules") or []
                where = "rules"
            rules = windows.rules_from_input(items, where)
        except NapError as exc:
            raise _Fail("win_nap_firewall: host %s: %s (%s)" % (host, to_text(exc), NOTHING_SENT))
        try:
            windows.check_windows_values(rules, host, group, prefix, mask)
        except NapError as exc:
            raise _Fail("win_nap_firewall: %s (%s)" % (to_text(exc), NOTHING_SENT))
        return host, group, prefix, mask, rules, plan

    @staticmethod
    def _wanted_management(args, plan, task_vars, host):
        """(sources as given, or None; the one management port). Sources: the option, else the plan's, else
        nap_management_sources. Port: the plan's (decided by the planner), else the same rule on this host's vars
        (NapError when those are wrong)."""
        sources = args.get("management_sources")
        if sources is None and plan is not None:
            sources = plandoc.management_sources(plan) or None
        if sources is None:
            sources = task_vars.get("nap_management_sources")
        if isinstance(sources, str):
            sources = [sources]
        port = plandoc.management_port(plan, host) if plan is not None else None
        if not port:
            port = planner.management_port(task_vars, "windows", host)
        return sources, int(port)

    def _management(self, args, plan, task_vars, warnings, host):
        """(CIDRs, (port,)) for the lockout check; without sources, any address of the controller's family."""
        try:
            sources, port = self._wanted_management(args, plan, task_vars, host)
        except NapError as exc:
            raise _Fail("win_nap_firewall: %s (%s)" % (to_text(exc), NOTHING_SENT))
        out = []
        for item in sources or []:
            try:
                out.extend(str(n) for n in windows.parse_address_item(str(item)))
            except ValueError:
                raise _Fail("win_nap_firewall: management_sources: %r is not an IPv4/IPv6 address, CIDR or range (%s)"
                            % (item, NOTHING_SENT))
        if not out:
            family = "0.0.0.0/0"
            try:
                if ipaddress.ip_address(to_text(task_vars.get("ansible_host") or "")).version == 6:
                    family = "::/0"
            except ValueError:
                pass
            out = [family]
            if not args["allow_lockout"]:
                warnings.append("management_sources is not set (nor nap_management_sources): the anti-lockout "
                                "check requires WinRM to stay open from any address (%s)" % family)
        return out, (port,)

    def _powershell(self, script, parameters, task_vars, what, host):
        self._calls += 1
        res = self._execute_module(module_name=POWERSHELL_MODULE,
                                   module_args={"script": script, "parameters": parameters},
                                   task_vars=task_vars)
        if res.get("failed") or res.get("unreachable"):
            hint = ""
            text = error_text(res)
            if "was not found" in text and POWERSHELL_MODULE in text:
                hint = " (install the ansible.windows collection on the controller)"
            elif what == "read":
                hint = (" (if the host runs PowerShell 2.0 / Windows Server 2008, Ansible cannot manage it: use "
                        "state: rendered)")
            raise _Fail("win_nap_firewall: %s on host %s through %s failed: %s%s" % (
                what, host, POWERSHELL_MODULE, text, hint), powershell_result=res)
        raw = res.get("result")
        if isinstance(raw, dict) and not raw:
            raise _Fail("win_nap_firewall: the %s script returned nothing on host %s (%s)" % (
                what, host, to_text(res.get("msg") or "no result")), powershell_result=res)
        try:
            return json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        except ValueError as exc:
            raise _Fail("win_nap_firewall: cannot read the JSON the %s script returned on host %s: %s"
                        % (what, host, exc), powershell_result=res)

    # ------------------------------------------------------------------
    def _run(self, args, task_vars, result, warnings):
        state = args["state"]
        if args.get("backup_dir") is not None:
            self._display.deprecated(DEPRECATED_BACKUP_DIR, version="1.0.0", collection_name="configmgr.nap")
        problem = filename_problem(backup_options(args).get("filename"))
        if problem and args["backup"]:
            raise _Fail("win_nap_firewall: %s (%s)" % (problem, NOTHING_SENT))
        host, group, prefix, mask, rules, plan = self._inputs(args, task_vars)
        if state in ("absent", "gathered") and rules:
            warnings.append("state %s ignores the wanted rules" % state)

        if state == "rendered":
            try:
                # no 0.0.0.0/0 fallback here: without sources, any planned rule that admits the port counts
                sources, port = self._wanted_management(args, plan, task_vars, host)
                result["rendered"] = dict(windows_render.render_all_lines(
                    rules, group, prefix, mask, host, management_sources=sources, management_port=port))
            except NapError as exc:
                raise _Fail("win_nap_firewall: %s (nothing was rendered)" % to_text(exc))
            return

        os_version, ps_version = windows.facts_versions(task_vars)
        if os_version and ps_version:
            ps_major = str(ps_version).split(".", 1)[0]
            old_ps = ps_major.isdigit() and int(ps_major) < 5
            if old_ps or not windows.version_ok(os_version, "5.1"):
                raise _Fail("win_nap_firewall: " + windows.unsupported_message(host, os_version, ps_version))

        sources, ports = self._management(args, plan, task_vars, warnings, host)
        mode = args["predefined"]
        groups = windows_predefined.predefined_groups(rules, plan, host) if mode != "ignore" else []
        scope = windows_predefined.predefined_scope(groups)

        # ---- read: one remote call, one pass over the rule store (the predefined groups in the same pass)
        doc = self._powershell(windows.READ_PS1, windows.read_parameters(group, prefix, ports, scope), task_vars, "read",
                               host)
        result["host_info"] = dict((k, doc.get(k)) for k in (
            "os_version", "ps_version", "local_policy_modify_state", "current_profile_types", "rule_count"))
        if not doc.get("supported"):
            raise _Fail("win_nap_firewall: " + windows.unsupported_message(host, doc.get("os_version"), doc.get("ps_version")))
        target = windows.full_rules(rules, prefix) if state == "present" else []
        host_state = windows_changes.HostState(doc, group, prefix, mask, adopt=[r.name for r in target])
        gp_problem = windows.local_policy_problem(host, doc.get("local_policy_modify_state"))
        outside = [str(fw.get("Name")) for fw in host_state.outside_fw]

        if state == "gathered":
            if gp_problem:
                warnings.append(gp_problem)
            if outside:
                warnings.append("rules outside the group %r carry the name prefix %r: %s" % (
                    group, prefix, ", ".join(sorted(outside))))
            result["gathered"] = [windows.to_model(r, prefix) for r in host_state.owned]
            masks = set(windows.profiles_mask(windows.profiles_names(fw.get("Profiles"))) for fw in host_state.owned_fw
                        if str(fw.get("Profiles") or "").isdigit())
            result["gathered_options"] = dict(group=group, name_prefix=prefix,
                                              profiles=windows.profiles_names(masks.pop() if len(masks) == 1 else mask))
            if mode != "ignore":
                result["gathered_predefined"] = windows_predefined.wider_predefined(doc, windows.full_rules(rules, prefix), groups)
            return

        rdiff, ops = windows_changes.plan_changes(target, host_state)
        predefined = self._predefined(result, warnings, host, group, prefix, mode, state, doc, host_state, target,
                                      groups)
        ops = predefined["before"] + ops + predefined["after"]
        result["before"] = [windows.to_model(r, prefix) for r in host_state.owned]
        result["after"] = [windows.to_model(r, prefix) for r in target]
        result["rule_changes"] = [dict(c, name=windows.model_name(c["name"], prefix)) for c in rdiff.commands()]
        result["drift"] = dict((k, [windows.model_name(n, prefix) for n in v]) for k, v in rdiff.summary().items())
        if predefined["wider"]:
            result["drift"]["predefined"] = [w["name"] for w in predefined["wider"]]
        result["commands"] = [op_line(op) for op in ops]
        if host_state.adopted_fw:
            adopted = sorted(str(fw.get("Name")) for fw in host_state.adopted_fw)
            warnings.append("rule(s) with an empty group and a planned name are adopted into the group %r (netsh "
                            "cannot set a group): %s" % (group, ", ".join(adopted)))

        # ---- guards, all before any change
        collisions = host_state.collisions(set(op["name"] for op in ops) | set(r.name for r in target))
        if collisions:
            raise _Fail("win_nap_firewall: host %s: rule name(s) %s are used by rule(s) outside the group %r "
                        "(groups: %s); the COM API removes rules by name, so the module refuses to touch them. "
                        "Rename or delete those rules, or choose another name_prefix (%s)" % (
                            host, ", ".join(sorted(set(str(fw.get("Name")) for fw in collisions))), group,
                            ", ".join(sorted(set(str(fw.get("Grouping") or "(none)") for fw in collisions))),
                            NOTHING_CHANGED))
        others = sorted(set(outside) - set(str(fw.get("Name")) for fw in collisions))
        if others:
            warnings.append("rules outside the group %r carry the name prefix %r (left alone): %s" % (
                group, prefix, ", ".join(others)))
        if gp_problem:
            if state == "present" and args["local_policy_override"] == "fail" and ops:
                raise _Fail("win_nap_firewall: %s (%s)" % (gp_problem, NOTHING_CHANGED))
            warnings.append(gp_problem)
        if ops and not args["allow_lockout"]:
            problems = windows_lockout.lockout_problems(sources, ports, doc, group, target, mask)
            if problems:
                raise _Fail("win_nap_firewall: host %s: after this run no enabled inbound rule would admit "
                            "WinRM/PSRP from the management sources (%s): %s. Add a rule for it (the plan's "
                            "MGMT-WINRM flow), fix management_sources, or set allow_lockout: true (%s)" % (
                                host, ", ".join(sources), "; ".join(problems), NOTHING_CHANGED))
            steps = windows_lockout.apply_lockout_problems(sources, ports, host_state, ops)
            if steps:
                _index, label, problems = steps[0]
                raise _Fail("win_nap_firewall: host %s: the apply would cut WinRM/PSRP from the management sources "
                            "(%s) on its way, at '%s': %s. Set allow_lockout: true to apply anyway (%s)" % (
                                host, ", ".join(sources), label, "; ".join(problems), NOTHING_CHANGED))

        if not ops:
            return
        result["changed"] = True
        result["diff"] = diff_in_list_order(rdiff, host_state.owned, target, host)
        if self._task.check_mode:
            return

        if args["backup"]:
            result["backup_path"] = self._backup(args, task_vars, host, group, prefix, host_state,
                                                 result.get("predefined"))

        # ---- apply: one remote call with every change, the owned group read back in the same call
        reply = self._powershell(windows.APPLY_PS1, windows.apply_parameters(group, ops, prefix, ports, scope),
                                 task_vars, "apply", host)
        outcome = windows_changes.apply_outcome(reply, ops, target, host_state, sources, ports,
                                                check_lockout=not args["allow_lockout"])
        self._report(result, outcome, ops, host, prefix, sources)

    @staticmethod
    def _predefined(result, warnings, host, group, prefix, mode, state, doc, host_state, target, groups):
        """The predefined rules of the run: {wider, before: ops first, after: ops last}; fills result["predefined"].

        present: the wider rules (report: a warning; disable: the marker, then one disable op each, after the owned
        rules' ops); absent (whatever the mode): re-enable what the marker records (before the removals: it only
        widens), then remove the marker (last)."""
        out = {"wider": [], "before": [], "after": []}
        if state == "absent":           # whatever the mode: the marker is the collection's record
            ops, enabled = windows_changes.restore_ops(host_state)
            out["before"], out["after"] = ops[:-1], ops[-1:]
            result["predefined"] = {"enabled": enabled}
            return out
        if mode == "ignore":
            return out
        wider = windows_predefined.wider_predefined(doc, target, groups)
        out["wider"] = wider
        try:
            ops, disabled, recorded = windows_changes.predefined_ops(host_state, wider, mode, group, prefix)
        except NapError as exc:
            raise _Fail("win_nap_firewall: host %s: %s (%s)" % (host, to_text(exc), NOTHING_CHANGED), predefined={
                "wider": wider})
        out["after"] = ops
        result["predefined"] = {"wider": wider, "disabled": disabled, "recorded": recorded}
        if wider and mode == "report":
            warnings.append("host %s: %d enabled predefined rule(s) admit more than the plan (predefined: disable turns "
                            "them off): %s" % (host, len(wider), "; ".join(
                                "%s (%s): %s" % (w["name"], w["group"], w["why"]) for w in wider)))
        return out

    @staticmethod
    def _report(result, outcome, ops, host, prefix, sources):
        """Put what the apply really did into the result; fail on a partial apply or a lockout read back."""
        result["apply_results"] = outcome["results"]
        after_state, left = outcome["after_state"], outcome["left"]
        if after_state is not None:
            result["after"] = [windows.to_model(r, prefix) for r in after_state.owned]
            result["left"] = dict((k, [windows.model_name(n, prefix) for n in v]) for k, v in left.summary().items() if v)
        failed = outcome["failed"]
        if failed:
            done = [r for r in outcome["results"] if r.get("ok")]
            result["changed"] = bool(done)
            raise _Fail("win_nap_firewall: host %s: %d of %d change(s) failed, %d applied, %d not run (a partial "
                        "apply, read back into 'after'; what is left is in 'left' and the next run completes it): %s"
                        % (host, len(failed), len(ops), len(done), len(outcome["skipped"]),
                           "; ".join(_failure_text(r, prefix) for r in failed)))
        if outcome["lockout"]:
            raise _Fail("win_nap_firewall: host %s: read back after the apply, no enabled inbound rule admits "
                        "WinRM/PSRP from the management sources (%s): %s" % (
                            host, ", ".join(sources), "; ".join(outcome["lockout"])))

    def _backup(self, args, task_vars, host, group, prefix, host_state, predefined=None):
        options = backup_options(args)
        directory = options.get("dir_path") or os.path.join(task_vars.get("playbook_dir") or os.getcwd(), "backup")
        directory = os.path.abspath(os.path.expanduser(to_text(directory)))
        stamp = datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")
        content = {
            "host": host,
            "group": group,
            "name_prefix": prefix,
            "saved": stamp,
            "os_version": host_state.doc.get("os_version"),
            "rules": host_state.owned_fw,
            "model": [windows.to_model(r, prefix) for r in host_state.owned],
            # predefined: disable - the marker rule as read ([] recorded before) and what this run disables / enables
            "predefined_marker": getattr(host_state, "marker_fw", None),
            "predefined": predefined or {},
        }
        # the host name is inventory input: only a sanitised form of it names the file (never a path); a
        # filename of the task's own must be a plain file name (checked before the read, and again by write_new)
        if options.get("filename"):
            stem, suffix = os.path.splitext(to_text(options["filename"]))
        else:
            stem, suffix = "%s_win_nap_firewall.%s" % (safe_component(host), stamp), ".json"
        try:
            return write_new(directory, stem, suffix, json.dumps(content, indent=2, sort_keys=True) + "\n")
        except (IOError, OSError) as exc:
            raise _Fail("win_nap_firewall: host %s: cannot write the backup to %s: %s (%s)" % (
                host, directory, exc, NOTHING_CHANGED))
