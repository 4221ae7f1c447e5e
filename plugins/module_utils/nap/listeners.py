# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Listeners a host must have, from its roles and the settings (for verification).

The table is "Listeners expected per role" of the NAP flow reference (catalogue.LISTENERS
holds its text).  A listener is a local port a service must be bound to; whether a path
reaches it is what the probes check.  "X or Y" settings choose here too, except that a
domain controller and a global catalog always listen on the plain port (LDAP 389, GC
3268) and add the TLS port when that mode is chosen, and that NPS (the SHV point, a RADIUS
proxy) listens on UDP 1812, 1813, 1645 and 1646 whether or not nap_radius_legacy_ports
opens the legacy pair (catalogue.CITE_NPS_PORTS); the flows open only what is chosen.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError
from ansible_collections.configmgr.nap.plugins.module_utils.nap.settings import parse_bool, validate_setting

# Settings the listener table depends on (and their defaults come from the catalogue).
LISTENER_SETTINGS = ("nap_ad_ldap_mode", "nap_gc_mode", "nap_hra_transport", "nap_radius_legacy_ports",
                     "nap_vpn_protocols")
# Host variable (see docs/inventory.md): false when a domain controller does not serve DNS.
DNS_SETTING = "nap_dc_serves_dns"


def _dc(s):
    out = [("tcp", 389, "ldap")]
    if s["nap_ad_ldap_mode"] == "ldaps":
        out.append(("tcp", 636, "ldaps"))
    out += [("tcp", 88, "kerberos"), ("tcp", 445, "smb"), ("tcp", 135, "rpc-epmap")]
    if s[DNS_SETTING]:
        out += [("tcp", 53, "dns"), ("udp", 53, "dns")]
    return out


def _gc(s):
    out = [("tcp", 3268, "gc")]
    if s["nap_gc_mode"] == "gc_ssl":
        out.append(("tcp", 3269, "gc-ssl"))
    return out


def _nps(_s):
    """NPS listens on all four RADIUS ports by default (NPS Ports), whatever nap_radius_legacy_ports says."""
    return [("udp", 1812, "radius"), ("udp", 1813, "radius-accounting"),
            ("udp", 1645, "radius-legacy"), ("udp", 1646, "radius-accounting-legacy")]


def _shv(s):
    return _nps(s) + [("tcp", 445, "smb"), ("tcp", 135, "rpc-epmap")]


def _hra(s):
    return [("tcp", 443, "https")] if s["nap_hra_transport"] == "https" else [("tcp", 80, "http")]


def _vpn(s):
    out = []
    protocols = s["nap_vpn_protocols"]
    if "pptp" in protocols:
        out.append(("tcp", 1723, "pptp"))
    if "l2tp" in protocols or "ikev2" in protocols:
        out += [("udp", 500, "ike"), ("udp", 4500, "ike-natt")]
    if "sstp" in protocols:
        out.append(("tcp", 443, "sstp"))
    return out


ROLE_LISTENERS = {
    "domain_controller": _dc,
    "global_catalog": _gc,
    "site_server": lambda s: [("tcp", 445, "smb"), ("tcp", 135, "rpc-epmap")],
    "shv_point": _shv,
    "radius_proxy": _nps,
    "hra": _hra,
    "dhcp_server": lambda s: [("udp", 67, "dhcp")],
    "vpn_server": _vpn,
    "ts_gateway": lambda s: [("tcp", 443, "https")],
    "certification_authority": lambda s: [("tcp", 135, "rpc-epmap")],
    # not in the table's rows but named by its DNS clause: a DNS server serves DNS
    "dns_server": lambda s: [("tcp", 53, "dns"), ("udp", 53, "dns")],
}
ROLE_ORDER = [role for role, _group, _text in catalogue.ROLE_GROUPS]


def effective_settings(*layers):
    """Merge setting mappings (later wins) over the defaults and validate the ones used here."""
    merged = {}
    for layer in layers:
        if not layer:
            continue
        if not isinstance(layer, Mapping):
            raise NapError("settings must be a mapping of nap_* variables, got %r" % (layer,))
        for key, value in layer.items():
            if value is not None and (key in LISTENER_SETTINGS or key == DNS_SETTING):
                merged[key] = value
    out = {}
    for name in LISTENER_SETTINGS:
        spec = catalogue.SETTINGS_BY_NAME[name]
        out[name] = validate_setting(name, merged.get(name, spec.default), "")
    out[DNS_SETTING] = parse_bool(merged.get(DNS_SETTING, True), DNS_SETTING)
    return out


def normalize_roles(roles):
    """Role ids or inventory group names (nap_domain_controllers) -> role ids, in catalogue order."""
    if isinstance(roles, str):
        roles = [r for r in roles.replace(",", " ").split() if r]
    if not isinstance(roles, (list, tuple, set)):
        raise NapError("roles must be a list of role names, got %r" % (roles,))
    out = set()
    for role in roles:
        name = str(role).strip()
        if name in catalogue.ROLE_BY_GROUP:
            name = catalogue.ROLE_BY_GROUP[name]
        if name not in catalogue.GROUP_BY_ROLE:
            raise NapError("unknown role %r; known roles: %s" % (role, ", ".join(ROLE_ORDER)))
        out.add(name)
    return [r for r in ROLE_ORDER if r in out]


def expected_listeners(roles, settings=None):
    """[{protocol, port, role, roles, service}] sorted by protocol and port, one per (protocol, port).

    ``role`` is the first role (in catalogue order) that needs the listener, ``roles`` all of them.
    """
    settings = effective_settings(settings)
    found = {}
    for role in normalize_roles(roles):
        rule = ROLE_LISTENERS.get(role)
        if rule is None:
            continue
        for protocol, port, service in rule(settings):
            entry = found.get((protocol, port))
            if entry is None:
                found[(protocol, port)] = {"protocol": protocol, "port": port, "role": role, "roles": [role],
                                           "service": service}
            elif role not in entry["roles"]:
                entry["roles"].append(role)
    return [found[k] for k in sorted(found)]


def listeners_for(data, host=None, settings=None, **overrides):
    """What the filter takes: a plan host entry ({"roles": [...], ...}), a list of roles, or a plan
    (or a registered nap_plan result) with ``host``.

    Settings, later wins: defaults, the plan's settings, ``nap_*`` keys of the host entry (a
    mapping of host variables with ``roles`` works too), ``settings``, keyword overrides.
    """
    plan_settings = None
    planlike = isinstance(data, str) or (isinstance(data, Mapping) and "roles" not in data and (
        "hosts" in data or "plan" in data or plandoc.PLAN_FILE_KEY in data))
    if host and not planlike:
        raise NapError("host=%r needs a plan as input" % (host,))
    if planlike:
        if not host:
            raise NapError("a plan was given: name the host (host=...) whose listeners you want")
        plan = plandoc.load(data)
        if not settings and not overrides:
            return plandoc.listeners(plan, host)     # what the planner decided for this host
        plan_settings = plandoc.settings(plan, host)
        data = plandoc.host_entry(plan, host)
    if isinstance(data, Mapping):
        if "roles" not in data:
            raise NapError("a host entry needs 'roles' (got keys: %s)" % ", ".join(sorted(data)))
        roles = data["roles"]
        host_settings = dict((k, v) for k, v in data.items() if k.startswith("nap_"))
    elif isinstance(data, (list, tuple, str)):
        roles = data
        host_settings = None
    else:
        raise NapError("expected a host entry with 'roles', a list of roles, or a plan with host=..., got %r"
                       % (data,))
    unknown = sorted(k for k in overrides if k not in LISTENER_SETTINGS and k != DNS_SETTING)
    if unknown:
        raise NapError("unknown setting(s) %s; known: %s" % (
            ", ".join(unknown), ", ".join(LISTENER_SETTINGS + (DNS_SETTING,))))
    merged = {}
    for layer in (plan_settings, host_settings, settings, overrides):
        if layer is None:
            continue
        if not isinstance(layer, Mapping):
            raise NapError("settings must be a mapping of nap_* variables, got %r" % (layer,))
        merged.update((k, v) for k, v in layer.items() if v is not None)
    return expected_listeners(roles, merged)
