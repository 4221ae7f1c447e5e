# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the NAP flow catalogue and plans (thin wrappers over module_utils)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc, query
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError


def nap_flows(data=None, **criteria):
    try:
        return query.select_flows(data, **criteria)
    except NapError as exc:
        raise AnsibleFilterError("configmgr.nap.nap_flows: %s" % to_native(exc))


def nap_query(data, expression):
    try:
        return query.jmespath_query(data, expression)
    except NapError as exc:
        raise AnsibleFilterError("configmgr.nap.nap_query: %s" % to_native(exc))


def nap_plan_host(data, host):
    try:
        return plandoc.describe(plandoc.load(data), host)
    except NapError as exc:
        raise AnsibleFilterError("configmgr.nap.nap_plan_host: %s" % to_native(exc))


def nap_drift_report(play_hosts, hostvars):
    """One line per drifted host (what drift.yml prints), or a single "no drift" line."""
    out = []
    for host in play_hosts or []:
        hvars = hostvars[host] if host in hostvars else {}
        if not hvars.get("__nap_drifted"):
            continue
        drift = hvars.get("__nap_drift") or {}
        out.append("%s: missing %s; extra %s; changed %s" % (
            host, ", ".join(drift.get("missing") or []) or "-", ", ".join(drift.get("extra") or []) or "-",
            ", ".join(drift.get("changed") or []) or "-"))
    out.extend(_predefined_lines(play_hosts, hostvars))
    return out or ["no drift on %d host(s)" % len(play_hosts or [])]


def _predefined_lines(play_hosts, hostvars):
    """One line per host whose enabled Windows predefined rules admit more than the plan (win_nap_firewall's
    drift.predefined, with predefined: report), whether or not its owned rules drifted."""
    out = []
    for host in play_hosts or []:
        hvars = hostvars[host] if host in hostvars else {}
        names = (hvars.get("__nap_drift") or {}).get("predefined") or []
        if names:
            out.append("%s: predefined rules wider than the plan %s" % (host, ", ".join(names)))
    return out


class FilterModule(object):
    def filters(self):
        return {"nap_flows": nap_flows, "nap_query": nap_query, "nap_plan_host": nap_plan_host,
                "nap_drift_report": nap_drift_report}
