# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the verify role (thin wrappers over module_utils/nap/verify.py and netstat.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc, verify
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError
from ansible_collections.configmgr.nap.plugins.module_utils.nap.netstat import parse_netstat_ano


def _plain(data):
    """Plain dicts and lists (Ansible stores no OrderedDict)."""
    return json.loads(json.dumps(data, default=str))


def _plan(data):
    return plandoc.load(data)


def nap_verify_probes(plan, inventory, vantages=None, controller_zones=None, controller="localhost",
                      radius_secret=None, dns_name=".", negatives=True, unplanned_ports=None, kerberos_realm=None):
    try:
        unplanned = verify.DEFAULT_UNPLANNED if unplanned_ports is None else unplanned_ports
        jobs = verify.probe_jobs(_plan(plan), inventory, vantages=vantages, controller_zones=controller_zones,
                                 controller=controller, radius_secret=radius_secret, dns_name=dns_name,
                                 negatives=negatives, unplanned_ports=unplanned, kerberos_realm=kerberos_realm or None)
        return _plain(jobs)
    except (NapError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("configmgr.nap.nap_verify_probes: %s" % to_native(exc))


def nap_verify_listener_jobs(plan, inventory, settings=None):
    try:
        return _plain(verify.listener_jobs(_plan(plan), inventory, settings))
    except (NapError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("configmgr.nap.nap_verify_listener_jobs: %s" % to_native(exc))


def nap_verify_report(probes, results, listener_jobs=None, listener_results=None, when=None, unprobed="fail"):
    try:
        observed = verify.observed_listeners(listener_results)
        checks = verify.listener_checks(listener_jobs or [], observed, when)
        return _plain(verify.report(probes, results, checks, when, unprobed=str(unprobed)))
    except (NapError, ValueError, TypeError, KeyError) as exc:
        raise AnsibleFilterError("configmgr.nap.nap_verify_report: %s" % to_native(exc))


def nap_verify_results(probes, hostvars, var=("__nap_verify_probe_linux", "__nap_verify_probe_windows"),
                       loop_results=None):
    """{vantage: the probe result it registered as ``var``}, {} for a vantage that never registered one.  With
    several names (one probe task per runner), the first result that is not skipped.  ``loop_results``: registered
    results of loops delegated to vantages (items are jobs), which count for the vantages that registered none."""
    names = [var] if isinstance(var, str) else list(var)
    delegated = {}
    for item in loop_results or []:
        if isinstance(item, dict) and isinstance(item.get("item"), dict) and not item.get("skipped"):
            delegated[item["item"].get("vantage")] = item
    out = {}
    for job in (probes or {}).get("jobs", []):
        vantage = job["vantage"]
        hvars = hostvars[vantage] if vantage in hostvars else {}
        found = {}
        for name in names:
            value = hvars.get(name) if hasattr(hvars, "get") else None
            if isinstance(value, dict) and value and not value.get("skipped"):
                found = value
                break
            if isinstance(value, dict) and value and not found:
                found = value
        if (not found or found.get("skipped")) and vantage in delegated:
            found = delegated[vantage]
        out[vantage] = found
    return _plain(out)


def nap_verify_targets(targets, secret=None):
    try:
        return verify.with_secret(targets, secret)
    except NapError as exc:
        raise AnsibleFilterError("configmgr.nap.nap_verify_targets: %s" % to_native(exc))


def nap_netstat_listeners(text):
    try:
        return parse_netstat_ano(text)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("configmgr.nap.nap_netstat_listeners: %s" % to_native(exc))


def nap_verify_inventory(hosts, hostvars):
    """What verify needs of each inventory host: address, probe capability, platform, listener method,
    Windows version, and whether a RADIUS secret is set (never the secret itself)."""
    out = {}
    for host in hosts or []:
        hvars = hostvars[host] if host in hostvars else {}

        def get(name, default=""):
            value = hvars.get(name)
            return default if value is None else value
        secret = get("nap_radius_secret")
        out[host] = {
            "address": get("nap_address") or get("ansible_host"),
            "capable": get("nap_probe_capable"),
            "platform": get("nap_platform"),
            "radius_secret": len(str(secret)) > 0,
            "listener_method": get("nap_listener_method", "auto"),
            "windows_version": str(get("nap_windows_version")),
            "powershell_version": str(get("nap_powershell_version")),
        }
    return _plain(out)


class FilterModule(object):
    def filters(self):
        return {
            "nap_verify_inventory": nap_verify_inventory,
            "nap_verify_probes": nap_verify_probes,
            "nap_verify_listener_jobs": nap_verify_listener_jobs,
            "nap_verify_report": nap_verify_report,
            "nap_verify_targets": nap_verify_targets,
            "nap_verify_results": nap_verify_results,
            "nap_netstat_listeners": nap_netstat_listeners,
        }
