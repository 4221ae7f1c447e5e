# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""configmgr.nap.win_nap_port_probe: probes from a Windows host.

The controller validates the targets and builds every payload with module_utils/nap/probe_remote.py
(remote_requests, over the probe classes of probe_engine.py that nap_port_probe runs on Linux); ONE ansible.windows.win_powershell
call runs the sender (module_utils/nap/powershell/probe_sender.ps1) on the host, which connects, sends those
bytes and returns what came back; the controller judges the replies with the same classifiers
(remote_results).  Nothing is sent when the input is bad.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_engine, probe_remote
from ansible_collections.configmgr.nap.plugins.modules.win_nap_port_probe import argument_spec
from ansible_collections.configmgr.nap.plugins.plugin_utils._win_powershell import POWERSHELL_MODULE, error_text

SENDER_PATH = os.path.join(os.path.dirname(os.path.abspath(probe_engine.__file__)), "powershell", "probe_sender.ps1")
SENDER_MARKER = "# configmgr.nap probe sender v1"
MIN_PS_VERSION = "5.1"


def sender_script():
    with open(SENDER_PATH) as handle:
        return handle.read()


def sender_parameters(wire, concurrency, deadline):
    """The sender's parameters (its param block): the probes as ONE JSON string, the bound and the deadline."""
    return {"ProbesJson": json.dumps([w for w in wire if w is not None], separators=(",", ":")),
            "Concurrency": int(concurrency), "DeadlineMs": int(math.ceil(deadline * 1000)),
            "MinPsVersion": MIN_PS_VERSION}


def default_deadline(wire, concurrency):
    sent = [w for w in wire if w is not None]
    if not sent:
        return 5.0
    longest = max(w["TimeoutMs"] for w in sent) / 1000.0
    batches = (len(sent) + concurrency - 1) // concurrency
    return longest * (batches + 1) + 5.0


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(argument_spec())

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        result["changed"] = False
        host = task_vars.get("inventory_hostname") or "?"
        try:
            _vr, args = self.validate_argument_spec(argument_spec=argument_spec())
        except AnsibleActionFail as exc:
            result.update(failed=True, msg="win_nap_port_probe: %s (nothing was sent)" % to_text(exc))
            return result
        concurrency = args["concurrency"]
        try:
            if concurrency < 1:
                raise probe_engine.ProbeError("concurrency must be at least 1, got %d" % concurrency)
            probes, wire = probe_remote.remote_requests(args["targets"], timeout=args["timeout"],
                                                        max_timeout=args["max_timeout"],
                                                        source_address=args.get("source_address"))
        except probe_engine.ProbeError as exc:
            result.update(failed=True, msg="configmgr.nap.win_nap_port_probe: %s (nothing was sent)" % to_text(exc),
                          results=[], failures=[])
            return result
        deadline = args.get("deadline") or default_deadline(wire, concurrency)
        replies, extra = [], {}
        if any(w is not None for w in wire):
            res = self._execute_module(module_name=POWERSHELL_MODULE,
                                       module_args={"script": sender_script(),
                                                    "parameters": sender_parameters(wire, concurrency, deadline)},
                                       task_vars=task_vars)
            if res.get("unreachable"):
                return dict(res, changed=False)
            if res.get("failed"):
                result.update(failed=True, msg="win_nap_port_probe: the probe sender on %s failed through %s: %s"
                              % (host, POWERSHELL_MODULE, error_text(res)), results=[], failures=[])
                return result
            raw = res.get("result")
            try:
                doc = json.loads(raw) if isinstance(raw, (str, bytes)) else (raw or {})
            except ValueError as exc:
                doc = {"error": "cannot read the JSON the sender returned: %s" % exc}
            if not isinstance(doc, dict) or not doc.get("supported"):
                why = doc.get("error") if isinstance(doc, dict) else None
                result.update(failed=True, results=[], failures=[], ps_version=(doc or {}).get("ps_version"),
                              msg="win_nap_port_probe: %s: %s" % (host, why or "the sender returned no results"))
                return result
            replies = doc.get("results") or []
            extra = {"ps_version": doc.get("ps_version")}
        results = probe_remote.remote_results(probes, wire, replies)
        summary = probe_engine.summarize(results)
        failures = [probe_engine.describe_failure(r) for r in results if not r["ok"]]
        elapsed = round(max([r["time_ms"] for r in results] + [0.0]) / 1000.0, 4)
        result.update(results=results, summary=summary, failures=failures, elapsed=elapsed, **extra)
        if failures:
            result.update(failed=True, msg="%d of %d probes broke their expectation: %s" % (
                len(failures), summary["total"], "; ".join(failures)))
        else:
            result["msg"] = "%d probes, all as expected" % summary["total"]
        return result
