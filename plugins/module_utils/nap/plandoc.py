# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan document and its one hand-off: every consumer reads the plan through this module.

A plan reaches a module, filter or action in one of three forms, all accepted everywhere:

* the **handle** that ``configmgr.nap.nap_plan`` returns (``result.plan_file``, a path on the
  controller, or the whole registered result, which carries it): the plan stays out of what
  Ansible templates, registers and prints;
* the plan itself (the flows.json document, docs/flows-json.md);
* a registered result of an older run that still carries ``plan`` inline.

The accessors give each consumer the facts the planner decided (host rules, a device's owned zones
with their networks, expected listeners, management sources and ports, effective settings), so that
no consumer works them out again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re

try:
    from collections.abc import Mapping
except ImportError:     # pragma: no cover - Python 2 controllers are not supported, but keep imports safe
    Mapping = dict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import collector
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, normalize_addresses

PLAN_FILE_KEY = "plan_file"
_LOADED = {}        # path -> ((mtime_ns, size), plan): a play reads its plan file once per process


def is_plan(data):
    """A plan document (flows.json): a mapping with a ``hosts`` mapping (a partial plan of only some sections works)."""
    return isinstance(data, Mapping) and isinstance(data.get("hosts"), Mapping) and "roles" not in data


def load(data, what="plan"):
    """The plan document from a handle, a plan, or a registered nap_plan result; NapError otherwise."""
    if is_plan(data):
        return data
    if isinstance(data, Mapping):
        if is_plan(data.get("plan")):
            return data["plan"]
        if data.get(PLAN_FILE_KEY):
            return _read(data[PLAN_FILE_KEY], what)
        if data.get("failed"):
            raise NapError("%s: the nap_plan task failed (%s)" % (what, data.get("msg") or "no message"))
    if isinstance(data, str) and data.strip():
        return _read(data.strip(), what)
    raise NapError("%s: expected the handle of configmgr.nap.nap_plan (its registered result or result.%s), or a "
                   "plan (flows.json); got %s" % (what, PLAN_FILE_KEY, _shape(data)))


def _shape(data):
    if isinstance(data, Mapping):
        return "a mapping with keys %s" % ", ".join(sorted(map(str, data))[:8])
    return type(data).__name__


def _read(path, what):
    path = os.path.expanduser(str(path))
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise NapError("%s: cannot read the plan file %s (%s); run configmgr.nap.nap_plan first" % (what, path, exc))
    key = (getattr(stat, "st_mtime_ns", stat.st_mtime), stat.st_size)
    cached = _LOADED.get(path)
    if cached and cached[0] == key:
        return cached[1]
    _LOADED.clear()        # the previous plan is freed before the next is read
    # Every host's task of a converge reads the plan in a worker of its own (ansible-core forks one per host and
    # task), so this read is paid once per host: the collector paused (its passes over the millions of new
    # containers found nothing and took three quarters of the time), plain dicts (ordered; OrderedDict's hook cost
    # as much again), and in a worker the plan frozen out of the collector's way until the worker ends.
    with collector.CollectorPaused():
        try:
            with open(path, "rb") as handle:
                plan = json.loads(handle.read().decode("utf-8"))
        except (IOError, OSError, ValueError) as exc:
            raise NapError("%s: %s is not a readable plan file (%s)" % (what, path, exc))
        if not is_plan(plan):
            raise NapError("%s: %s does not hold a plan (flows.json of configmgr.nap.nap_plan)" % (what, path))
        collector.freeze_in_worker()
    _LOADED[path] = (key, plan)
    return plan


# ---------------------------------------------------------------------------
# Accessors
# ---------------------------------------------------------------------------
def hosts(plan):
    return plan.get("hosts") or {}


def devices(plan):
    return plan.get("perimeter") or {}


def names(plan):
    return sorted(set(hosts(plan)) | set(devices(plan)))


def host_entry(plan, host):
    """The host's entry (a perimeter device's host entry when it also has one); NapError when absent."""
    entry = hosts(plan).get(host)
    if entry is None:
        raise NapError("host %r is not in the plan (hosts: %s)" % (host, ", ".join(names(plan)) or "none"))
    return entry


def device(plan, name):
    entry = devices(plan).get(name)
    if entry is None:
        raise NapError("device %r is not a perimeter device of the plan (perimeter devices: %s); add it to group "
                       "nap_perimeter" % (name, ", ".join(devices(plan)) or "none"))
    return entry


def describe(plan, name):
    """What a role needs to know of a host without slicing the plan: kind, platform, roles (or {})."""
    if name in devices(plan):
        return {"kind": "perimeter", "platform": devices(plan)[name].get("platform"), "roles": ["perimeter"]}
    entry = hosts(plan).get(name)
    if entry is None:
        return {}
    out = {"kind": "host", "platform": entry.get("platform"), "roles": list(entry.get("roles") or [])}
    if entry.get("host_rules") == "not_applicable":     # XP / Server 2003: no FwPolicy2 API, no netsh advfirewall
        out["platform"] = "not_applicable"
        out["note"] = entry.get("host_rules_note") or "host rules are not applicable to this host's Windows version"
    return out


def host_rules(plan, name):
    """Every rule of a host or device: inbound, outbound, and forward for a perimeter device."""
    if name not in hosts(plan) and name not in devices(plan):
        raise NapError("host %r is not in the plan (hosts: %s)" % (name, ", ".join(names(plan)) or "none"))
    entry = hosts(plan).get(name) or {}
    rules = list(entry.get("inbound") or []) + list(entry.get("outbound") or [])
    if name in devices(plan):
        rules += list(devices(plan)[name].get("forward") or [])
    return rules


def settings(plan, host=None):
    """The plan's settings; with ``host``, that host's effective settings over them."""
    out = dict(plan.get("settings") or {})
    if host is not None and host in hosts(plan):
        out.update(hosts(plan)[host].get("settings") or {})
    return out


def management_sources(plan):
    return list((plan.get("settings") or {}).get("nap_management_sources") or [])


def management_port(plan, name):
    """The port Ansible reaches this host or device on (decided by the planner), or None."""
    for entry in (devices(plan).get(name), hosts(plan).get(name)):
        if entry and entry.get("management_port"):
            return int(entry["management_port"])
    return None


def management_ports(plan):
    """Every management port of the plan's hosts and devices (what a device's forward anti-lockout keeps open)."""
    ports = set()
    for entry in list(hosts(plan).values()) + list(devices(plan).values()):
        if entry.get("management_port"):
            ports.add(int(entry["management_port"]))
    return sorted(ports)


def owned_zone_networks(plan, name):
    """{zone: [cidrs]} of the zones a perimeter device owns; a host's table owns every zone of the plan."""
    all_zones = (plan.get("settings") or {}).get("nap_zones") or {}
    if name not in devices(plan):
        return dict((z, list(all_zones[z])) for z in sorted(all_zones))
    entry = devices(plan)[name]
    if "owned_zone_networks" in entry:
        return dict((z, list(n)) for z, n in sorted(entry["owned_zone_networks"].items()))
    owned = entry.get("owned_zones") or entry.get("zones") or []     # plans written before owned_zone_networks
    return dict((z, list(all_zones[z])) for z in sorted(owned) if z in all_zones)


def listeners(plan, host):
    """The listeners the planner expects on ``host`` (from its roles and its own settings)."""
    entry = host_entry(plan, host)
    if "listeners" in entry:
        return list(entry["listeners"])
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import listeners as table   # older plans
    return table.expected_listeners(entry.get("roles") or [], settings(plan, host))


def nft_arguments(args, host):
    """nft_nap_policy's arguments for ``host`` with the plan resolved: its own rules, the zones its table owns
    (with their networks), the management sources and ports, and its dynamic RPC range (explicit ones win)."""
    args = dict(args)
    plan = args.pop("plan", None)
    args.pop("host", None)
    if plan is None:
        return args
    if args.get("rules") is not None:
        raise NapError("plan and rules are mutually exclusive: give the plan (the host's rules come from it) or "
                       "explicit rules")
    if not host:
        raise NapError("plan is given but the host is unknown: name this host or device as in the plan (host: ...)")
    doc = load(plan)
    args["rules"] = host_rules(doc, host)
    if args.get("zones") is None:
        args["zones"] = owned_zone_networks(doc, host)
    if args.get("management_sources") is None:
        args["management_sources"] = management_sources(doc)
    if args.get("management_ports") is None:
        # a device keeps every managed host behind it reachable; a host only needs its own port
        own = management_port(doc, host)
        ports = management_ports(doc) if host in devices(doc) else ([own] if own else [])
        if ports:
            args["management_ports"] = ports
    if args.get("rpc_dynamic_range") is None:
        entry = hosts(doc).get(host) or {}
        if entry.get("rpc_dynamic_range"):
            args["rpc_dynamic_range"] = entry["rpc_dynamic_range"]
    return args


def address_labels(plan):
    """Readable labels for address sets: a host's addresses -> host name, a zone's networks -> zone."""
    labels = {}
    if plan:
        plan_settings = plan.get("settings") or {}
        for var, label in (("nap_management_sources", "MGMT-SOURCES"), ("nap_restricted_networks", "RESTRICTED"),
                           ("nap_client_networks", "CLIENTS")):
            if plan_settings.get(var):
                labels[tuple(normalize_addresses(plan_settings[var]))] = label
        for zone, nets in sorted((plan_settings.get("nap_zones") or {}).items()):
            labels.setdefault(tuple(normalize_addresses(nets)), "ZONE-" + zone)
        for host, hentry in sorted(hosts(plan).items()):
            addrs = tuple(normalize_addresses(hentry.get("addresses") or []))
            if addrs:
                labels[addrs] = host
    return labels


def address_set_label(addresses, labels):
    """The label of an address set (its host or zone), or a stable digest; only A-Z 0-9 _ . -."""
    label = labels.get(tuple(addresses))
    if label is None:
        label = "SET-" + hashlib.sha1(",".join(addresses).encode("utf-8")).hexdigest()[:8].upper()
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", label).upper()


__all__ = ["nft_arguments", "address_labels", "address_set_label", "load", "is_plan", "host_entry", "device",
           "describe", "host_rules", "settings", "management_sources", "management_port", "management_ports",
           "owned_zone_networks", "listeners", "PLAN_FILE_KEY"]
