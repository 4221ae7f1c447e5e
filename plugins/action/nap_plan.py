# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for configmgr.nap.nap_plan: plan on the controller, contact no host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

try:
    from collections.abc import Mapping
except ImportError:  # pragma: no cover
    Mapping = dict

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue, collector
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc, planner
from ansible_collections.configmgr.nap.plugins.module_utils.nap import report
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError
from ansible_collections.configmgr.nap.plugins.plugin_utils._files import safe_paths, write_tree

try:    # how VariableManager.get_vars(host) merges a host's inventory variables (ansible-core 2.15 and later)
    from ansible.inventory.helpers import get_group_vars, sort_groups
    from ansible.utils.vars import combine_vars
    from ansible.vars.plugins import get_vars_from_inventory_sources, get_vars_from_path
except ImportError:  # pragma: no cover - another ansible-core: every host through hostvars
    get_group_vars = sort_groups = combine_vars = get_vars_from_inventory_sources = get_vars_from_path = None

SETTING_NAMES = tuple(s.name for s in catalogue.SETTINGS) + ("nap_zones",)
HOST_VAR_PREFIXES = ("nap_",)
HOST_VAR_NAMES = planner.CONNECTION_VARS


def _wanted(name):
    return name.startswith(HOST_VAR_PREFIXES) or name in HOST_VAR_NAMES


def _plain(value):
    """True when templating cannot change ``value``: builtin scalars and strings without a template delimiter."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return "{" not in value and not value.startswith("#jinja2:")
    if isinstance(value, Mapping):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False        # vaulted values and anything else: through the templating engine


def _has(cache, name):
    """Whether a variable manager cache holds data for host ``name`` (the fact cache's get raises KeyError)."""
    try:
        return bool(cache.get(name))
    except KeyError:
        return False


class _InventoryVars(object):
    """The merged variables of inventory hosts, as ``hostvars[host]`` gives them, at a fraction of the cost.

    ``hostvars[host][name]`` runs ``VariableManager.get_vars(host)`` (every source, about 0.5 ms a host) and
    templates each value. The planner needs only the ``nap_*`` and connection variables, so this reads them the
    way ``get_vars(host)`` merges them: the group part (the ``all`` group and the host's groups, from the
    inventory and the vars plugins, in C(VARIABLE_PRECEDENCE) order) once per distinct set of groups, then the
    host's own inventory and vars-plugin variables, then the extra vars. A host that has facts, set_fact or
    include_vars data, or a selected value that templating could change, goes through ``hostvars`` as before.
    """

    _ENTRIES = ("all_inventory", "all_plugins_inventory", "all_plugins_play", "groups_inventory",
                "groups_plugins_inventory", "groups_plugins_play")

    def __init__(self, hostvars):
        self.hostvars = hostvars
        self.fast = False
        if get_vars_from_inventory_sources is None:
            return
        try:
            inventory, manager = hostvars._inventory, hostvars._variable_manager
            self.caches = (manager._fact_cache, manager._nonpersistent_fact_cache, manager._vars_cache)
            self.extra_vars = manager._extra_vars
            self.sources = inventory._sources
            self.all_group = inventory.groups.get("all")
            self.basedirs = [manager._loader.get_basedir()] if manager.safe_basedir else []
            self.loader = manager._loader
            self.inventory = inventory
        except AttributeError:
            return
        if any(entry not in self._ENTRIES for entry in C.VARIABLE_PRECEDENCE) or self.all_group is None:
            return
        self.combine, self.sort_groups, self.get_group_vars = combine_vars, sort_groups, get_group_vars
        self.from_sources, self.from_path = get_vars_from_inventory_sources, get_vars_from_path
        self.by_groups = {}
        self.host_layers = (self._plugins_inventory, self._plugins_play)
        # the extra vars are the same for every host: selected and checked once
        self.extra = dict((k, v) for k, v in (self.extra_vars or {}).items() if _wanted(k))
        self.extra_plain = all(_plain(v) for v in self.extra.values())
        self.fast = True

    def prepare(self, names):
        """Ask the vars plugins once for all the hosts ``names`` together: a plugin's answer for several hosts is their
        answers merged, so where it holds none of the selected variables, no host's does, and the per-host calls
        (two a host, each through every vars plugin) are left out."""
        if not self.fast:
            return
        try:
            hosts = [host for host in map(self.inventory.get_host, names) if host is not None]
            self.host_layers = tuple(layer for layer in (self._plugins_inventory, self._plugins_play)
                                     if any(map(_wanted, layer(hosts))))
        except (KeyError, TypeError, AttributeError):
            self.fast = False       # an inventory this code does not know: the exact path for every host

    def _plugins_inventory(self, entities):
        return self.from_sources(self.loader, self.sources, entities, "task")

    def _plugins_play(self, entities):
        data = {}
        for path in self.basedirs:
            data = self.combine(data, self.from_path(self.loader, path, entities, "task"))
        return data

    def _group_part(self, host):
        groups = self.sort_groups([g for g in host.get_groups() if g.name != "all"])
        key = tuple(g.name for g in groups)
        data = self.by_groups.get(key)
        if data is None:
            parts = {"all_inventory": self.all_group.get_vars,
                     "all_plugins_inventory": lambda: self._plugins_inventory([self.all_group]),
                     "all_plugins_play": lambda: self._plugins_play([self.all_group]),
                     "groups_inventory": lambda: self.get_group_vars(groups),
                     "groups_plugins_inventory": lambda: self._plugins_inventory(groups),
                     "groups_plugins_play": lambda: self._plugins_play(groups)}
            data = {}
            for entry in C.VARIABLE_PRECEDENCE:
                data = self.combine(data, parts[entry]())
            data = dict((k, v) for k, v in data.items() if _wanted(k))
            # checked once per set of groups, not once per host: only the host's own layers are checked per host
            self.by_groups[key] = (data, all(_plain(v) for v in data.values()))
        return self.by_groups[key]

    def _quick(self, name):
        """The selected variables of ``name`` without templating, or None when they need the full path."""
        host = self.inventory.get_host(name)
        if host is None or any(_has(cache, name) for cache in self.caches):
            return None
        data, plain = self._group_part(host)
        if not plain:
            return None
        if not self.extra_plain:
            return None
        # host.vars: what host.get_vars() gives but the magic variables (inventory_hostname, group_names), which
        # are not selected and cost more to make than the rest
        for layer in [host.vars] + [ask([host]) for ask in self.host_layers]:
            if layer:
                own = dict((k, v) for k, v in layer.items() if _wanted(k))
                if not all(_plain(v) for v in own.values()):
                    return None
                data = self.combine(data, own)
        return self.combine(data, self.extra) if self.extra else dict(data)

    def get(self, name):
        data = None
        if self.fast:
            try:
                data = self._quick(name)
            except (KeyError, TypeError, AttributeError):
                self.fast = False       # an inventory this code does not know: the exact path for every host
                data = None
        if data is None:
            hvars = self.hostvars[name]
            data = dict((k, hvars[k]) for k in list(hvars.keys()) if _wanted(k))
        return data


_SCALARS = frozenset((str, int, float, bool, type(None)))


def builtin(value):
    """``value`` in builtin types. ansible-core 2.19 hands inventory values over as subclasses of str, list, dict and
    so on that carry their origin; the planner and the reports treat them as their base types. Used for the group
    lists, the settings (the host names and zone names every flow repeats) and the groups and host variables given
    as arguments; not for the inventory's host variables: the reports reuse parts for tagged text too
    (report._is_text), and converting every host's variables would cost more than it saves (0.1 s at 10,000 hosts).
    Values of other types (vaulted ones) stay as they are: the planner rejects what it cannot use."""
    cls = value.__class__
    if cls in _SCALARS:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return dict((builtin(k), builtin(v)) for k, v in value.items())
    if isinstance(value, list):
        return [builtin(v) for v in value]
    if isinstance(value, tuple):
        return tuple(builtin(v) for v in value)
    return value


def inventory_from_task_vars(task_vars):
    """(groups, hostvars) restricted to the hosts of the nap_* groups and their nap_* (and connection) variables;
    the group and host names as builtin str."""
    groups = dict((str(g), [str(h) for h in hosts]) for g, hosts in (task_vars.get("groups") or {}).items()
                  if g in catalogue.ROLE_BY_GROUP)
    reader = _InventoryVars(task_vars.get("hostvars") or {})
    reader.prepare(set(host for hosts in groups.values() for host in hosts))
    hostvars = {}
    for hosts in groups.values():
        for host in hosts:
            if host not in hostvars:
                hostvars[host] = reader.get(host)
    return groups, hostvars


# What the last run planned, kept alive in a forked Ansible worker: the worker ends with os._exit as soon as the task's
# result is sent, so freeing the plan's objects one by one (1.7 million, 0.15 s at 10,000 hosts) would be work for
# nothing. Only the last run's are kept: a process that runs the action again frees the previous plan then.
_RETAINED = []


def _retain_in_worker(*objects):
    """In a forked worker: keep ``objects`` until the process ends, and move every object alive now into the
    collector's permanent generation (gc.freeze). Once the task's collector pause ends, the first full collection
    would otherwise traverse the kept plan and the inventory (0.3 s at 10,000 hosts) while the result is sent."""
    if collector.in_forked_worker():
        _RETAINED[:] = objects
        collector.freeze_in_worker()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("report_dir", "formats", "settings", "groups", "hostvars", "controller_addresses",
                             "learn_controller_addresses", "publish_stats", "return_plan"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        # the plan lives until the task ends: the collector stays off while the reports are rendered too (a pass over
        # it costs 0.6 s at 10,000 hosts and finds nothing)
        with collector.CollectorPaused():
            return self._plan(result, task_vars)

    def _plan(self, result, task_vars):
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
                groups = builtin(args.get("groups") or {})
                hostvars = builtin(args.get("hostvars") or {})
            else:
                groups, hostvars = inventory_from_task_vars(task_vars)
            settings = dict((k, builtin(task_vars[k])) for k in SETTING_NAMES if task_vars.get(k) is not None)
            settings.update(builtin(args.get("settings") or {}))
            addresses = args.get("controller_addresses")
            if addresses is None and settings.get("nap_management_sources") is None \
                    and boolean(args.get("learn_controller_addresses", False), strict=False):
                addresses = self._learn_controller_addresses(task_vars)
            # the layout: how the flows repeat, which the reports write each part of once
            layout = planner.FlowLayout() if args.get("report_dir") else None
            plan = planner.plan(groups, hostvars, settings, addresses or [], layout=layout)
            _retain_in_worker(plan, groups, hostvars, layout)
        except NapError as exc:
            result.update(failed=True, msg="configmgr.nap plan: %s (nothing was written)" % to_text(exc))
            return result
        result["summary"] = bounded_summary(planner.summary(plan))
        result["counts"] = {"hosts": len(plan["hosts"]), "perimeter_devices": len(plan["perimeter"]),
                            "flows": len(plan["flows"]), "warnings": len(plan["warnings"])}
        if plan["warnings"]:
            result["warnings"] = list(plan["warnings"])
        if args.get("return_plan"):
            result["plan"] = json.loads(json.dumps(plan))     # plain dicts and lists: what variable storage supports
        report_dir = args.get("report_dir")
        if report_dir:
            report_dir = os.path.abspath(os.path.expanduser(to_text(report_dir)))
            try:
                paths, changed = render_and_write(plan, formats, report_dir, self._task.check_mode, layout)
            except (IOError, OSError) as exc:
                result.update(failed=True, msg="configmgr.nap plan: cannot write the report to %s: %s"
                              % (report_dir, to_text(exc)))
                return result
            except NapError as exc:
                result.update(failed=True, msg="configmgr.nap plan: %s" % to_text(exc))
                return result
            result["report_dir"] = report_dir
            result["files"] = paths
            result["changed"] = bool(changed)
            if "json" in formats and not self._task.check_mode:
                result[plandoc.PLAN_FILE_KEY] = os.path.join(report_dir, report.REPORT_FILES["json"])
        if plandoc.PLAN_FILE_KEY not in result:
            try:
                # compact: only the collection reads this file (the C encoder; indent would take the pure-Python one)
                result[plandoc.PLAN_FILE_KEY] = _private_plan_file(json.dumps(plan, separators=(",", ":")) + "\n")
            except (IOError, OSError) as exc:
                result.update(failed=True, msg="configmgr.nap plan: cannot write the plan file under %s: %s"
                              % (C.DEFAULT_LOCAL_TMP, to_text(exc)))
                return result
        if boolean(args.get("publish_stats", False), strict=False):
            result["ansible_stats"] = self._stats(result, formats)
        return result

    def _learn_controller_addresses(self, task_vars):
        """ansible_default_ipv4/ipv6 of the host the task runs on (delegated to localhost: the controller)."""
        facts = self._execute_module(module_name="ansible.builtin.setup", module_args={"gather_subset": ["network"]},
                                     task_vars=task_vars)
        if facts.get("failed"):
            raise NapError("nap_management_sources is not set and learning the controller's addresses with "
                           "ansible.builtin.setup failed: %s" % to_text(facts.get("msg") or facts))
        found = facts.get("ansible_facts") or {}
        return [a for a in ((found.get("ansible_default_ipv4") or {}).get("address"),
                            (found.get("ansible_default_ipv6") or {}).get("address")) if a]

    def _stats(self, result, formats):
        """The custom statistic nap_plan (what ansible.builtin.set_stats returns): small on purpose, never the plan.

        report_dir, files and plan_file are null / [] when no report was written (no report_dir, or check mode:
        then the plan lives only in the run's temporary directory)."""
        written = "report_dir" in result and not self._task.check_mode
        data = {"summary": [line for line in result["summary"] if not line[:1].isspace()],
                "counts": result["counts"],
                "report_dir": result["report_dir"] if written else None,
                "files": result["files"] if written else [],
                "plan_file": result[plandoc.PLAN_FILE_KEY] if written and "json" in formats else None}
        return {"data": {"nap_plan": data}, "per_host": False, "aggregate": False}


# From this many flows on, flows.json is rendered and written in a forked child while this process renders the other
# formats (about 5,000 flows: 350 hosts of the bench estate; below, the fork costs more than it saves).
PARALLEL_FLOWS = 5000


def render_and_write(plan, formats, report_dir, check_mode, layout=None):
    """Render the reports and write them under ``report_dir`` (write_tree); returns (all paths, changed paths).
    ``layout``: the planner's FlowLayout of the plan, if at hand (report.render_all).

    A large plan's flows.json (about half of the rendering, and the biggest file) is rendered and written by a forked
    child while this process does the other formats: the controller's main process only waits while a task runs, so
    a second core is free. Every name is checked before anything is written, as write_tree does; the paths come back
    in the order of ``formats``. A failure in the child is raised here as in the serial path."""
    split = [f for f in formats if f == "json"]
    rest = [f for f in formats if f != "json"]
    if not split or not rest or len(plan["flows"]) < PARALLEL_FLOWS or not hasattr(os, "fork"):
        return write_tree(report.render_all(plan, formats, layout), report_dir, check_mode)
    where = safe_paths([report.REPORT_FILES[f] for f in formats], report_dir)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                        # the child: flows.json, then its answer, then out
        status = 0
        try:
            os.close(read_end)
            try:
                answer = {"ok": write_tree(report.render_all(plan, split, layout), report_dir, check_mode)}
            except (IOError, OSError) as exc:
                answer = {"os_error": to_text(exc)}
            except Exception as exc:  # pylint: disable=broad-except
                answer = {"error": "%s: %s" % (type(exc).__name__, to_text(exc))}
            data = to_bytes(json.dumps(answer))
            while data:
                data = data[os.write(write_end, data):]
        except BaseException:  # pylint: disable=broad-except
            status = 1
        finally:
            os._exit(status)        # no atexit handlers, no buffers of the parent flushed twice
    os.close(write_end)
    try:
        mine = write_tree(report.render_all(plan, rest, layout), report_dir, check_mode)
    finally:
        with os.fdopen(read_end, "rb") as handle:
            reply = handle.read()
        os.waitpid(pid, 0)
    try:
        answer = json.loads(reply.decode("utf-8"))
    except ValueError:
        answer = {"error": "the process writing %s ended without an answer" % report.REPORT_FILES["json"]}
    if "os_error" in answer:
        raise OSError(answer["os_error"])
    if "error" in answer:
        raise NapError("rendering %s failed: %s" % (report.REPORT_FILES["json"], answer["error"]))
    paths = [where[report.REPORT_FILES[f]] for f in formats]
    changed = set(mine[1] + answer["ok"][1])
    return paths, [path for path in paths if path in changed]


SUMMARY_HOST_LINES = 40


def bounded_summary(lines, limit=SUMMARY_HOST_LINES):
    """The summary with at most ``limit`` per-host lines (the indented ones): registered and printed, it must not
    grow with the estate (10,000 hosts: 10,000 lines through the result queue, the callback and set_stats)."""
    per_host = [i for i, line in enumerate(lines) if line.startswith(" ")]
    if len(per_host) <= limit:
        return lines
    cut = set(per_host[limit:])
    out = [line for i, line in enumerate(lines) if i not in cut]
    out.insert(per_host[limit - 1] + 1, "  ... %d more host and device lines: see flows.md, flows.csv, or "
               "configmgr.nap.nap_plan_host per host" % len(cut))
    return out


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
