# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Selecting flows from the catalogue or a plan."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, port_in

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:  # pragma: no cover
    HAS_JMESPATH = False

CRITERIA = ("id", "protocol", "host", "src_host", "dst_host", "category", "port")


def _flows_of(data):
    if data is None or data == "catalogue" or data == "catalog":
        return catalogue.catalogue_entries()
    if isinstance(data, dict) and "flows" in data and isinstance(data["flows"], list):
        return data["flows"]
    if isinstance(data, (dict, str)):
        return plandoc.load(data).get("flows", [])
    if isinstance(data, list):
        return data
    raise NapError("expected a plan, a list of flows or nothing (the catalogue), got %r" % type(data).__name__)


def _port_matches(flow, port):
    specs = list(flow.get("dst_ports") or [])
    specs.extend(flow.get("rpc_dynamic_ranges") or ([flow["rpc_dynamic_range"]] if flow.get("rpc_dynamic_range") else []))
    return port_in(port, specs)


def select_flows(data=None, **criteria):
    """Flows of the catalogue (no data) or of a plan, filtered by id, protocol, host, category or port."""
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise NapError("unknown criteria %s; known: %s" % (", ".join(sorted(unknown)), ", ".join(CRITERIA)))
    out = []
    for flow in _flows_of(data):
        if "id" in criteria and flow.get("id") not in _as_list(criteria["id"]):
            continue
        if "protocol" in criteria:
            protocols = [str(p).lower() for p in _as_list(criteria["protocol"])]
            have = [flow["protocol"]] if "protocol" in flow else [s["protocol"] for s in flow.get("services", [])]
            if not set(have) & set(protocols):
                continue
        if "category" in criteria and flow.get("category") not in _as_list(criteria["category"]):
            continue
        if "src_host" in criteria and flow.get("src_host") != criteria["src_host"]:
            continue
        if "dst_host" in criteria and flow.get("dst_host") != criteria["dst_host"]:
            continue
        if "host" in criteria and criteria["host"] not in (flow.get("src_host"), flow.get("dst_host")):
            continue
        if "port" in criteria:
            try:
                port = int(criteria["port"])
            except (TypeError, ValueError):
                raise NapError("port must be a number, got %r" % (criteria["port"],))
            if not _port_matches(flow, port):
                continue
        out.append(flow)
    return out


def _as_list(value):
    return value if isinstance(value, (list, tuple)) else [value]


def jmespath_query(data, expression):
    """Run a JMESPath expression over a plan (or a registered nap_plan result)."""
    if not HAS_JMESPATH:
        raise NapError("the jmespath Python library is required on the controller (pip install jmespath)")
    if isinstance(data, str) or (isinstance(data, dict) and ("plan" in data or plandoc.PLAN_FILE_KEY in data)):
        data = plandoc.load(data)
    try:
        return jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathError as exc:
        raise NapError("invalid JMESPath expression %r: %s" % (expression, exc))
