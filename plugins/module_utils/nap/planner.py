# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory -> flows -> per-host and per-perimeter rules in the canonical model.

``plan(groups, hostvars, settings)`` is a pure function: it reads inventory groups, each
host's variables and the global settings, validates them all before building anything,
and returns the plan (the flows.json document, see docs/flows-json.md).  Any problem in
the input raises ``NapError`` with one message naming the host, group or variable at
fault and the expected form.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from collections import OrderedDict, defaultdict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap import listeners as listener_table
from ansible_collections.configmgr.nap.plugins.module_utils.nap import names, plan_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.collector import CollectorPaused
from ansible_collections.configmgr.nap.plugins.module_utils.nap.zones import Endpoint, ZoneGraph, Zones, span
from ansible_collections.configmgr.nap.plugins.module_utils.nap.settings import (
    parse_bool, parse_protected_services, parse_windows_version, validate_setting,
)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import (
    NapError, ipv4_number, is_ip_address, normalize_addresses, normalize_ports,
)

PLAN_FORMAT_VERSION = 1
_PLAIN_CHOICES = {"nap_ad_ldap_mode": "ldap", "nap_gc_mode": "gc", "nap_hra_transport": "http"}
_PLAIN_TEXT = {"nap_ad_ldap_mode": "plain LDAP (TCP 389)", "nap_gc_mode": "plain global catalog (TCP 3268)",
               "nap_hra_transport": "HTTP (TCP 80) to the HRA"}


# Roles only a Windows server can hold (ConfigMgr 2007 and the NAP server roles of Windows Server 2008).
WINDOWS_ONLY_ROLES = ("site_server", "shv_point", "hra", "certification_authority", "dhcp_server", "vpn_server",
                      "ts_gateway", "site_system", "site_database", "console_host", "radius_proxy")
# Roles a perimeter device may hold besides its own (a router relays DHCP; a switch is a RADIUS client).
PERIMETER_EXTRA_ROLES = ("perimeter", "dhcp_relay", "radius_client")
# Host variables the planner reads besides the nap_* ones: the address and how Ansible connects.
CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_connection", "ansible_ssh_port", "ansible_winrm_port",
                   "ansible_winrm_scheme", "ansible_psrp_port", "ansible_psrp_protocol", "ansible_httpapi_port",
                   "ansible_httpapi_use_ssl")
# the catalogue's role lists as sets, for the per-host checks
_UNMANAGED_ROLES = frozenset(catalogue.UNMANAGED_ROLES)
_DOMAIN_MEMBER_ROLES = frozenset(catalogue.DOMAIN_MEMBER_ROLES)
_DOMAIN_CONTROLLER_ROLES = frozenset(catalogue.DOMAIN_CONTROLLER_ROLES)
_PORT_VARS = {"ssh": ("ansible_port", "ansible_ssh_port"), "winrm": ("ansible_port", "ansible_winrm_port"),
              "psrp": ("ansible_port", "ansible_psrp_port"), "network_cli": ("ansible_port",),
              "httpapi": ("ansible_port", "ansible_httpapi_port")}


def management_port(hvars, platform, host):
    """The one TCP port Ansible reaches ``host`` on: the port every backend keeps open and MGMT flows plan.

    The host's ``ansible_port`` (or the connection's own port variable) when set; else the connection's
    default: 22 for ssh and network_cli, 5986 for winrm and psrp (5985 only where
    ``ansible_winrm_scheme`` / ``ansible_psrp_protocol`` says http), 443 or 80 for httpapi.  A host
    without ``ansible_connection`` (or with ``local``, as in the lab) takes its platform's default:
    winrm for Windows, ssh for the rest.
    """
    hvars = hvars or {}
    conn = str(hvars.get("ansible_connection") or "").strip().lower().rsplit(".", 1)[-1]
    if conn not in _PORT_VARS:
        conn = "winrm" if platform == "windows" else "ssh"
    for var in _PORT_VARS[conn]:
        value = hvars.get(var)
        if value is not None and str(value).strip() != "":
            try:
                port = normalize_ports([value], "host %s: %s" % (host, var))
            except NapError:
                raise NapError("host %s: %s is %r; expected a TCP port 1-65535 (the port Ansible connects to)"
                               % (host, var, value))
            if len(port) != 1 or not isinstance(port[0], int):
                raise NapError("host %s: %s is %r; expected one TCP port" % (host, var, value))
            return port[0]
    if conn in ("winrm", "psrp"):
        scheme_var = "ansible_winrm_scheme" if conn == "winrm" else "ansible_psrp_protocol"
        scheme = str(hvars.get(scheme_var) or "https").strip().lower()
        if scheme not in ("http", "https"):
            raise NapError("host %s: %s is %r; expected http or https" % (host, scheme_var, hvars.get(scheme_var)))
        return catalogue.MANAGEMENT_DEFAULT_PORTS[conn + ("_http" if scheme == "http" else "")]
    if conn == "httpapi":
        ssl = parse_bool(hvars.get("ansible_httpapi_use_ssl", False), "host %s: ansible_httpapi_use_ssl" % host)
        return 443 if ssl else 80
    return catalogue.MANAGEMENT_DEFAULT_PORTS["ssh"]


def _same_value(value, other):
    """Is ``value`` the same setting value as ``other``: equal, and of the same kinds all through (text and text,
    lists and lists, bool and bool; 1 and True are not)? A value of any other kind is never the same."""
    if value is other:
        return True
    if isinstance(value, str):
        return isinstance(other, str) and value == other
    if isinstance(value, list):
        return isinstance(other, list) and len(value) == len(other) and all(map(_same_value, value, other))
    if isinstance(value, dict):
        return (isinstance(other, dict) and len(value) == len(other)
                and all(key in other and _same_value(item, other[key]) for key, item in value.items()))
    return value.__class__ in (bool, int) and value.__class__ is other.__class__ and value == other


class Settings:
    """Global settings plus per-host overrides; records which settings were used."""

    def __init__(self, settings, hostvars):
        self.explicit = set()
        self.used = set()
        self.glob = {}
        self.glob_set = set()
        for spec in catalogue.SETTINGS:
            if settings.get(spec.name) is not None:
                self.explicit.add(spec.name)
                self.glob_set.add(spec.name)
                self.glob[spec.name] = validate_setting(spec.name, settings[spec.name], "")
            else:
                self.glob[spec.name] = spec.default
        self.per_host = {}
        setting_names = frozenset(spec.name for spec in catalogue.SETTINGS)
        for host, hvars in hostvars.items():
            own = {}
            if not setting_names.isdisjoint(hvars):         # most hosts set none: no look-up of every setting
                for spec in catalogue.SETTINGS:
                    value = hvars.get(spec.name)
                    if value is not None and not _same_value(value, settings.get(spec.name)):
                        # (a host's variables hold the inventory's global settings too, in Ansible: a value the
                        # same as the global one is the global one, validated once above)
                        own[spec.name] = validate_setting(spec.name, value, "host %s" % host)
                        if own[spec.name] != self.glob[spec.name]:
                            self.explicit.add(spec.name)
            self.per_host[host] = own

    def get(self, name, host=None, use=True):
        if use:
            self.used.add(name)
        if host is not None and name in self.per_host.get(host, {}):
            return self.per_host[host][name]
        return self.glob[name]

    def is_set(self, name, host=None):
        """Whether the inventory gives the setting a value (for ``host``: its own, or the global one)."""
        return name in self.glob_set or (host is not None and name in self.per_host.get(host, {}))


class Planner:
    def __init__(self, groups, hostvars, settings, controller_addresses=None):
        self.groups = groups or {}
        self.hostvars = hostvars or {}
        self.warnings = []
        self._warned = set()
        self.settings = Settings(settings or {}, self.hostvars)
        self.zones = Zones((settings or {}).get("nap_zones"))
        self.controller_addresses = controller_addresses or []
        self._fixed_services = {}         # flow id -> services(), for flows whose services no endpoint decides
        self._decided_services = {}       # (flow id, deciding hosts) -> (services(), plain choices), for the others
        self._source_decides = _Memo(_src_decides)  # flow -> whether the source decides any of its services
        self._endpoints = {}              # (host, role) -> its Endpoint
        self._collect_hosts()
        self._collect_perimeter()
        self._collect_networks()
        self._check_peers()

    # -- helpers ----------------------------------------------------------
    def warn(self, text):
        if text not in self._warned:
            self._warned.add(text)
            self.warnings.append(text)

    def members(self, role):
        return self.role_hosts.get(role, [])

    def _host_addresses(self, host, group):
        hvars = self.hostvars.get(host, {})
        value = hvars.get("nap_address")
        if value is not None:
            values = value if isinstance(value, (list, tuple)) else [value]
            out = []
            for item in values:
                addr = _ip_address(item)
                if addr is None:
                    raise NapError("host %s (group %s): nap_address %r is not an IPv4/IPv6 address "
                                   "(e.g. 192.0.2.10 or 2001:db8::10)" % (host, group, item))
                out.append(_host_address(addr, host, "nap_address"))
            return out
        ansible_host = hvars.get("ansible_host")
        addr = _ip_address(ansible_host) if ansible_host is not None else None
        if addr is not None:
            return [_host_address(addr, host, "ansible_host")]
        addr = _ip_address(host)
        if addr is not None:
            return [_host_address(addr, host, "the host name")]
        raise NapError("host %s (group %s) has no usable address: set nap_address (or ansible_host) to its "
                       "IPv4/IPv6 address, e.g. nap_address: 192.0.2.10" % (host, group))

    def _collect_hosts(self):
        self.role_hosts = OrderedDict()
        self.host_roles = OrderedDict()
        if not isinstance(self.groups, dict):
            raise NapError("the inventory groups are %s, not a mapping of group -> hosts; a YAML inventory is a "
                           "mapping (all: {children: ...}), not a list" % type(self.groups).__name__)
        for role, group, _text in catalogue.ROLE_GROUPS:
            hosts = self.groups.get(group) or []
            if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
                raise NapError("group %s is %r; expected a list of host names" % (group, hosts))
            hosts = list(hosts)
            self.role_hosts[role] = hosts
            for host in hosts:
                if host not in self.host_roles:
                    names.check("host", host, "group %s: host name" % group)
                self.host_roles.setdefault(host, [])
                if role not in self.host_roles[host]:
                    self.host_roles[host].append(role)
        if not self.host_roles:
            raise NapError("the inventory has no host in any NAP group (%s ...): check that -i names the inventory "
                           "and that it parses (Ansible only warns when it cannot; a YAML inventory is a mapping "
                           "such as all: {children: {nap_shv_points: {hosts: ...}}}, not a list)"
                           % ", ".join(g for _r, g, _t in catalogue.ROLE_GROUPS[:3]))
        self.addresses = {}
        self._address_spans = {}        # host -> span() of each of its addresses, for the zone lookup
        self._holders = {}              # ConfigMgr role -> the hosts whose nap_remediation_roles name it, in order
        self.mgmt_port = {}
        self.host_zone = {}
        self.platform = {}
        self.windows_version = {}
        self.domain_member = {}
        self.protected_services = {}
        for host, roles in self.host_roles.items():
            group = catalogue.GROUP_BY_ROLE[roles[0]]
            addrs = self._host_addresses(host, group)
            if len(addrs) == 1:         # what normalize_addresses makes of one address, without parsing it again
                self.addresses[host] = ("%s/%d" % (addrs[0], addrs[0].max_prefixlen),)
                self._address_spans[host] = ((addrs[0].version, int(addrs[0]), int(addrs[0])),)
            else:
                self.addresses[host] = tuple(normalize_addresses([str(a) for a in addrs]))
                self._address_spans[host] = tuple(span(ipaddress.ip_network(a)) for a in self.addresses[host])
            hvars = self.hostvars.get(host, {})
            if "perimeter" in roles:
                platform = str(hvars.get("nap_perimeter_platform", "")).strip().lower()
                if platform not in catalogue.PERIMETER_PLATFORMS:
                    raise NapError("host %s (group nap_perimeter): nap_perimeter_platform is %r; expected one of %s"
                                   % (host, hvars.get("nap_perimeter_platform"), ", ".join(catalogue.PERIMETER_PLATFORMS)))
            else:
                default = "none" if _UNMANAGED_ROLES.issuperset(roles) else "windows"
                platform = str(hvars.get("nap_platform", default)).strip().lower()
                if platform not in catalogue.HOST_PLATFORMS:
                    raise NapError("host %s: nap_platform is %r; expected one of %s"
                                   % (host, hvars.get("nap_platform"), ", ".join(catalogue.HOST_PLATFORMS)))
            self.platform[host] = platform
            self._check_roles(host, roles, platform)
            if platform != "none":
                self.mgmt_port[host] = management_port(hvars, "windows" if platform == "windows" else "ssh", host)
            roles_var = hvars.get("nap_remediation_roles")
            if roles_var is not None:
                valid = isinstance(roles_var, (list, tuple)) and all(str(r) in catalogue.REMEDIATION_ROLES for r in roles_var)
                if not valid:
                    raise NapError("host %s: nap_remediation_roles is %r; expected a list of %s"
                                   % (host, roles_var, ", ".join(catalogue.REMEDIATION_ROLES)))
                for cm_role in set(roles_var):
                    self._holders.setdefault(cm_role, []).append(host)
            self._collect_host_facts(host, roles, platform, hvars)

        self._check_unique_addresses()

    def _collect_host_facts(self, host, roles, platform, hvars):
        """A host's Windows version, domain membership and IPsec-protected services, validated.

        Group variables reach every host, so a Windows version on a Linux host or a perimeter device, membership on a
        domain controller and protected services on a host outside nap_ipsec_protected are accepted and ignored.
        """
        version = None
        if hvars.get("nap_windows_version") not in (None, ""):
            version = parse_windows_version(hvars["nap_windows_version"], "host %s: nap_windows_version" % host)
            if platform not in ("windows", "none"):
                version = None
        self.windows_version[host] = version
        default = not _DOMAIN_MEMBER_ROLES.isdisjoint(roles) and platform != "linux" and "perimeter" not in roles
        member = self._bool_hostvar(host, "nap_domain_member", default)
        self.domain_member[host] = member and "perimeter" not in roles and _DOMAIN_CONTROLLER_ROLES.isdisjoint(roles)
        services = hvars.get("nap_ipsec_protected_services")
        if services is not None and "ipsec_protected" in roles:
            self.protected_services[host] = parse_protected_services(
                services, "host %s: nap_ipsec_protected_services" % host)
        elif services is not None:
            parse_protected_services(services, "host %s: nap_ipsec_protected_services" % host)

    def host_rules_applicable(self, host):
        """Whether the collection can write the host's firewall rules: not on a Windows host whose version has no
        Windows Firewall with Advanced Security (XP, Server 2003)."""
        version = self.windows_version.get(host)
        return not (self.platform.get(host) == "windows" and version is not None
                    and not catalogue.WINDOWS_VERSIONS[version].host_firewall)

    def rpc_ranges(self, endpoint):
        """(ranges, declared) of the dynamic RPC range(s) behind the endpoint mapper of a destination.

        A host: its own nap_rpc_dynamic_range, else the global one when set, else its nap_windows_version's range
        (49152-65535 when it declares none).  A network (client networks): nap_client_windows_versions' ranges, both
        when they mix, else the global nap_rpc_dynamic_range when set, else 49152-65535.  ``declared``: whether the
        range comes from the inventory (a range or a version) rather than the default.
        """
        setting = "nap_rpc_dynamic_range"
        if endpoint.host is not None:
            if self.settings.is_set(setting, endpoint.host):
                return [self.settings.get(setting, endpoint.host)], True
            version = self.windows_version.get(endpoint.host)
            return [catalogue.rpc_range_of(version)], version is not None
        versions = self.settings.get("nap_client_windows_versions", use=False)
        if versions:
            self.settings.used.add("nap_client_windows_versions")
            ranges = sorted(set(catalogue.rpc_range_of(v) for v in versions), key=lambda r: int(r.split("-")[0]))
            return ranges, True
        if self.settings.is_set(setting):
            return [self.settings.get(setting)], True
        return [catalogue.RPC_RANGE_MODERN], False

    def _check_roles(self, host, roles, platform):
        def groups(role_list):
            return ", ".join(catalogue.GROUP_BY_ROLE[r] for r in role_list)

        if "perimeter" in roles:
            extra = [r for r in roles if r not in PERIMETER_EXTRA_ROLES]
            if extra:
                raise NapError("host %s is in nap_perimeter and in %s: a perimeter device (router or firewall) "
                               "cannot be a NAP server; it may also be a DHCP relay (nap_dhcp_relays) or a RADIUS "
                               "client. Put the server role on its own host" % (host, groups(extra)))
            return
        if platform == "linux":
            windows_only = [r for r in roles if r in WINDOWS_ONLY_ROLES]
            if windows_only:
                raise NapError("host %s: nap_platform is linux, but %s hold(s) Windows server roles (%s); set "
                               "nap_platform: windows (or none for a host Ansible does not manage)"
                               % (host, groups(windows_only), ", ".join(windows_only)))

    def _check_unique_addresses(self):
        owner = {}
        for host, addrs in self.addresses.items():
            for addr in addrs:
                if addr in owner and owner[addr] != host:
                    raise NapError("hosts %s and %s have the same address %s (nap_address or ansible_host): each "
                                   "inventory host is one machine; give each its own address, or put one host in "
                                   "several groups" % (owner[addr], host, addr.split("/")[0]))
                owner[addr] = host

    def _collect_perimeter(self):
        devices = OrderedDict()
        for host in self.members("perimeter"):
            zones = self.hostvars.get(host, {}).get("nap_perimeter_zones")
            if isinstance(zones, str):
                zones = [zones]
            if not isinstance(zones, (list, tuple)) or len(zones) < 2:
                raise NapError("host %s (group nap_perimeter): nap_perimeter_zones is %r; expected a list of at "
                               "least two zone names from nap_zones" % (host, zones))
            for zone in zones:
                names.check("zone", zone, "host %s: nap_perimeter_zones" % host)
            twice = sorted(set(str(z) for z in zones if list(map(str, zones)).count(str(z)) > 1))
            if twice:
                raise NapError("host %s (group nap_perimeter): nap_perimeter_zones lists %s twice; name each zone "
                               "the device joins once" % (host, ", ".join(twice)))
            unknown = [z for z in zones if str(z) not in self.zones.names]
            if unknown:
                raise NapError("host %s (group nap_perimeter): nap_perimeter_zones names %s, not in nap_zones "
                               "(known zones: %s)" % (host, ", ".join(map(str, unknown)),
                                                      ", ".join(self.zones.names) or "none"))
            devices[host] = set(str(z) for z in zones)
        self.topology = ZoneGraph(devices)
        for host, roles in self.host_roles.items():
            if host in devices:
                self.host_zone[host] = frozenset(devices[host])
                continue
            zones = set()
            for addr, addr_span in zip(self.addresses[host], self._address_spans[host]):
                zone = self.zones.zone_of_span(addr_span, "host %s" % host, addr)
                if zone:
                    zones.add(zone)
                    self._check_not_network_address(host, addr, addr_span, zone)
            if len(zones) > 1:
                raise NapError("host %s has addresses in zones %s; a host sits in one zone (a device that joins "
                               "zones belongs in group nap_perimeter)" % (host, ", ".join(sorted(zones))))
            if not zones and self.zones.defined:
                self.warn("host %s (%s) is in no zone of nap_zones: no perimeter rules are planned for its flows"
                          % (host, ", ".join(self.addresses[host])))
            self.host_zone[host] = frozenset(zones)

    def _check_not_network_address(self, host, addr, addr_span, zone):
        """NapError where the host's address ``addr`` (a normalized CIDR, its span() ``addr_span``) is the network
        address of one of its zone's CIDRs, or the broadcast address of an IPv4 one (not of a /31 or /32)."""
        version, first, last = addr_span
        for zversion, zfirst, zlast, zprefix, zname, znet in self.zones.spans:
            if zname != zone or zversion != version or not (zfirst <= first and last <= zlast):
                continue
            edge = zprefix < znet.max_prefixlen - 1
            if edge and first in (zfirst, zlast):
                if version == 6 and first != zfirst:
                    continue
                what = "network" if first == zfirst else "broadcast"
                raise NapError("host %s: its address %s is the %s address of zone %s (%s), not a host address; set "
                               "nap_address to the host's own address" % (host, addr.split("/")[0], what, zone, znet))

    def _network_endpoints(self, name, cidrs, role, warn=True):
        by_zone = OrderedDict()
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr)
            zone = self.zones.zone_of(net, name)
            if zone is None and self.zones.defined and warn:
                self.warn("%s: %s is in no zone of nap_zones: no perimeter rules are planned for its flows"
                          % (name, cidr))
            by_zone.setdefault(zone, []).append(cidr)
        return [Endpoint(None, normalize_addresses(c, collapse=False), [z] if z else [], role)
                for z, c in by_zone.items()]

    def _collect_networks(self):
        get = self.settings.get
        client = get("nap_client_networks", use=False)
        restricted = get("nap_restricted_networks", use=False)
        if restricted is None:
            restricted = client
        mgmt = get("nap_management_sources", use=False)
        if mgmt is not None and not mgmt:
            raise NapError("nap_management_sources is []: with no management source no MGMT-* flow and no "
                           "anti-lockout rule is planned, and converging the firewalls would cut Ansible off; "
                           "list the addresses Ansible connects from, e.g. nap_management_sources: [192.0.2.5/32]")
        if mgmt is None:
            guessed = [a for a in self.controller_addresses or [] if is_ip_address(a)]
            mgmt = list(normalize_addresses(guessed)) if guessed else []
            if mgmt:
                self.warn("nap_management_sources is not set: the management channel (MGMT-* flows, anti-lockout) "
                          "is kept open from the controller's own addresses as guessed: %s. Under AWX / Automation "
                          "Platform these are the execution environment's, not the source the hosts see; set "
                          "nap_management_sources" % ", ".join(mgmt))
            else:
                self.warn("nap_management_sources is not set and the controller's address is unknown: "
                          "no management (MGMT-*) flows are planned; set nap_management_sources")
        both = _uncovered(list(client) + list(restricted))
        self.networks = {
            "client_networks": self._network_endpoints("nap_client_networks", client, "client_networks"),
            "restricted_networks": self._network_endpoints("nap_restricted_networks", restricted,
                                                           "restricted_networks"),
            "client_and_restricted_networks": self._network_endpoints(
                "nap_client_networks + nap_restricted_networks", both, "client_networks", warn=False),
            "management_sources": self._network_endpoints("nap_management_sources", mgmt, "management_sources"),
        }
        self.effective = dict(self.settings.glob)
        self.effective["nap_restricted_networks"] = list(restricted)
        self.effective["nap_management_sources"] = list(mgmt)
        self.effective["nap_zones"] = dict((z, [str(n) for n, zz in self.zones.nets if zz == z])
                                           for z in self.zones.names)

    def _check_peers(self):
        methods = self.settings.get("nap_enforcement_methods", use=False)
        need = []
        if self.members("site_server") and not self.members("domain_controller"):
            need.append(("nap_site_servers", "nap_domain_controllers", "NAP-AD-WRITE publishes to a domain controller"))
        if self.members("shv_point") and not self.members("global_catalog"):
            need.append(("nap_shv_points", "nap_global_catalogs", "NAP-GC-READ reads from a global catalog"))
        if self.members("shv_point") and not self.members("site_server"):
            need.append(("nap_shv_points", "nap_site_servers", "the SHV point is installed by a site server"))
        if self.members("radius_proxy") and not self.members("shv_point"):
            need.append(("nap_radius_proxies", "nap_shv_points", "a RADIUS proxy forwards to an SHV point"))
        for method, group, why in (
                ("dhcp", "nap_dhcp_servers", "DHCP enforcement needs a DHCP server"),
                ("ipsec", "nap_hras", "IPsec enforcement needs a Health Registration Authority"),
                ("vpn", "nap_vpn_servers", "VPN enforcement needs a VPN server"),
                ("tsg", "nap_ts_gateways", "TS Gateway enforcement needs a TS Gateway"),
                ("8021x", "nap_radius_clients", "802.1X enforcement needs its switches or access points")):
            if method in methods and not self.groups.get(group):
                need.append(("nap_enforcement_methods (%s)" % method, group, why))
        if methods and not self.members("shv_point"):
            need.append(("nap_enforcement_methods", "nap_shv_points", "enforcement sends RADIUS to an SHV point"))
        if "ipsec" in methods and not self.members("certification_authority"):
            need.append(("nap_enforcement_methods (ipsec)", "nap_certification_authorities",
                         "the HRA requests health certificates from a CA"))
        if need:
            have, missing, why = need[0]
            holders = self.groups.get(have.split(" ")[0]) or []
            who = (" (%s)" % ", ".join(holders)) if holders else ""
            raise NapError("%s%s needs a peer: group %s is empty (%s); add the host(s) to %s"
                           % (have, who, missing, why, missing))
        if methods and not self.networks["client_networks"] and not self.members("client"):
            raise NapError("nap_enforcement_methods is %s but nap_client_networks is empty and group nap_clients has "
                           "no host: client flows need a source; set nap_client_networks, e.g. [192.0.2.0/24]"
                           % ", ".join(methods))

    # -- endpoint resolution ------------------------------------------------
    def host_endpoint(self, host, role):
        endpoint = self._endpoints.get((host, role))
        if endpoint is None:            # made once: a plan pairs each host with many
            endpoint = self._endpoints[host, role] = Endpoint(host, self.addresses[host], self.host_zone[host], role)
        return endpoint

    def role_endpoints(self, role):
        return [self.host_endpoint(h, role) for h in self.members(role)]

    def holders(self, cm_role):
        return list(self._holders.get(cm_role, ()))

    def resolve(self, name):
        if name in self.networks:
            return list(self.networks[name])
        if name == "client_endpoints":
            return list(self.networks["client_networks"]) + self.role_endpoints("client")
        if name == "domain_members":
            return [self.host_endpoint(h, "domain_member") for h in self.host_roles if self.domain_member.get(h)]
        if name == "client_and_restricted_networks":
            return list(self.networks["client_and_restricted_networks"])
        if name == "wins_server":
            return [self.host_endpoint(h, "wins_server") for h in self.holders("wins")]
        if name == "ad_servers":
            return self._unique(self.role_endpoints("domain_controller") + self.role_endpoints("global_catalog"))
        if name == "dns":
            if self.members("dns_server"):
                return self.role_endpoints("dns_server")
            return [self.host_endpoint(h, "domain_controller") for h in self.members("domain_controller")
                    if self._bool_hostvar(h, "nap_dc_serves_dns", True)]
        if name == "site_systems":
            hosts = self.members("site_system") + self.members("remediation_server")
            return self._unique([self.host_endpoint(h, "site_system") for h in hosts])
        if name == "windows_hosts":
            return [self.host_endpoint(h, "managed_host") for h in self.host_roles if self.platform[h] == "windows"]
        if name == "ssh_hosts":
            return [self.host_endpoint(h, "managed_host") for h in self.host_roles
                    if self.platform[h] not in ("windows", "none")]
        if name in catalogue.REMEDIATION_ROLES and (name == "global_catalog" or name not in catalogue.GROUP_BY_ROLE):
            hosts = self.holders(name)
            if name == "global_catalog":
                hosts = self.members("global_catalog") + hosts
            if name == "dns":
                return self._unique(self.resolve("dns") + [self.host_endpoint(h, "dns_server") for h in hosts])
            return self._unique([self.host_endpoint(h, name) for h in hosts])
        return self.role_endpoints(name)

    def host_settings(self, host):
        """The host's effective settings (per-host overrides over the global ones), as consumers need them."""
        out = OrderedDict()
        for spec in catalogue.SETTINGS:
            if spec.kind != "cidrs":
                out[spec.name] = self.settings.get(spec.name, host, use=False)
        out["nap_rpc_dynamic_range"] = self._host_rpc_range(host)
        out[listener_table.DNS_SETTING] = self._bool_hostvar(host, listener_table.DNS_SETTING, True)
        return out

    def _settings_and_listeners(self, host, roles, made):
        """host_settings() and the expected listeners of a host.

        A host without settings of its own has the global ones but its RPC range and nap_dc_serves_dns, and expects
        the listeners of its roles under them: each is made once (``made`` holds them) and copied.
        """
        if self.settings.per_host.get(host):
            settings = self.host_settings(host)
            return settings, listener_table.expected_listeners(roles, settings)
        key = (self._host_rpc_range(host), self._bool_hostvar(host, listener_table.DNS_SETTING, True))
        settings = made.get(key)
        if settings is None:
            settings = made[key] = self.host_settings(host)
        key = (key, tuple(roles))
        listeners = made.get(key)
        if listeners is None:
            listeners = made[key] = listener_table.expected_listeners(roles, settings)
        # each host its own copies (the values of the global settings are shared, as host_settings() shares them)
        return OrderedDict(settings), [dict(item, roles=list(item["roles"])) for item in listeners]

    def _host_rpc_range(self, host):
        """The dynamic RPC range the host itself uses (its range, else the global one when set, else its version's)."""
        if self.settings.is_set("nap_rpc_dynamic_range", host):
            return self.settings.get("nap_rpc_dynamic_range", host, use=False)
        return catalogue.rpc_range_of(self.windows_version.get(host))

    def _bool_hostvar(self, host, name, default):
        return parse_bool(self.hostvars.get(host, {}).get(name, default), "host %s: %s" % (host, name))

    @staticmethod
    def _unique(endpoints):
        seen, out = set(), []
        for ep in endpoints:
            if ep.host not in seen:
                seen.add(ep.host)
                out.append(ep)
        return out

    # -- conditions -----------------------------------------------------------
    def _enabled(self, flow):
        methods = None
        for kind, value in flow.when:
            if kind == "setting":
                if not self.settings.get(value):
                    return False
            elif kind == "remediation_role":
                return False        # planned through REMEDIATION only (ports_per_remediation_role)
            elif kind in ("method", "any_method", "vpn_protocol"):
                methods = self.settings.get("nap_enforcement_methods")
                if kind == "method" and value not in methods:
                    return False
                if kind == "any_method" and not methods:
                    return False
                if kind == "vpn_protocol" and "vpn" not in methods:
                    return False
        return True

    # -- pairs ------------------------------------------------------------
    def pairs(self, flow):
        if flow.pairing == "dhcp_client":
            pairs = self._dhcp_plan(flow)[0]
        elif flow.pairing == "dhcp_relay":
            pairs = self._dhcp_plan(flow)[1]
        else:
            srcs = self.resolve(flow.src)
            dsts = self.resolve(flow.dst)
            if "radius_via_proxy" in flow.traits and self.members("radius_proxy"):
                dsts = self.role_endpoints("radius_proxy")
            for kind, value in flow.when:
                if kind == "vpn_protocol":   # decided by each VPN server
                    dsts = [d for d in dsts if value in self.settings.get("nap_vpn_protocols", d.host)]
            if flow.pairing == "distinct":
                pairs = [(src, dst) for dst in dsts for src in srcs if src.host is None or src.host != dst.host]
            else:
                pairs = [(src, dst) for dst in dsts for src in srcs]
        if "ipv4_only" in flow.traits:
            pairs = self._ipv4_pairs(flow, pairs)
        if flow.dst_min_windows:
            for _src, dst in pairs:
                self._check_min_windows(flow, dst)
        return pairs

    def _ipv4_pairs(self, flow, pairs):
        """The pairs with their IPv4 addresses only; a network or host left without any is warned about."""
        out = []
        for src, dst in pairs:
            ends = []
            for end in (src, dst):
                v4 = [a for a in end.addresses if ":" not in a]
                v6 = [a for a in end.addresses if ":" in a]
                if v6 and not end.host:
                    self.warn("%s: client network %s is IPv6; NAP DHCP enforcement is DHCPv4 only, so no rule is "
                              "planned for it" % (flow.id, ", ".join(v6)))
                if not v4:
                    if end.host:
                        self.warn("%s: host %s has no IPv4 address; NAP DHCP enforcement is DHCPv4 only, so no rule "
                                  "is planned for it" % (flow.id, end.host))
                    break
                ends.append(end if len(v4) == len(end.addresses) else Endpoint(end.host, v4, end.zones, end.role))
            else:
                out.append(tuple(ends))
        return out

    def _check_min_windows(self, flow, dst):
        version = self.windows_version.get(dst.host)
        oldest = catalogue.WINDOWS_VERSIONS[flow.dst_min_windows]
        if version is not None and catalogue.WINDOWS_VERSIONS[version].rank < oldest.rank:
            raise NapError("host %s: %s (%s) needs %s or later, but nap_windows_version is %s; upgrade the host or "
                           "change %s" % (dst.host, flow.id, flow.purpose, oldest.label, version,
                                          ", ".join(sorted(flow.settings()))))

    def _dhcp_plan(self, flow):
        """Per DHCP server: client network endpoints on its segment, and relays for the others."""
        if hasattr(self, "_dhcp_cache"):
            return self._dhcp_cache
        direct, relayed = [], []
        networks = self.networks["client_networks"]
        if "ipv4_only" in flow.traits:
            networks = [pair[0] for pair in self._ipv4_pairs(flow, [(n, n) for n in networks])]
        for server in self.members("dhcp_server"):
            dst = self.host_endpoint(server, "dhcp_server")
            for net in networks:
                if not self.zones.defined or net.zones == dst.zones or not net.zones or not dst.zones:
                    direct.append((net, dst))
                    continue
                # a relay agent on the client network's segment: a host in that zone, or a router joined to it
                relays = [h for h in self.members("dhcp_relay") if net.zones <= self.host_zone[h]]
                if not relays:
                    relays = [d for d in (self.topology.crossed(net.zones, dst.zones) or [])
                              if net.zones <= self.topology.devices[d]]
                    if not relays:
                        raise NapError("DHCP server %s is in zone %s but client network %s is in zone %s, and no relay "
                                       "joins them: add the relay agent to group nap_dhcp_relays or a perimeter device "
                                       "joining zone %s to nap_perimeter" % (
                                           server, ", ".join(sorted(dst.zones)), ", ".join(net.addresses),
                                           ", ".join(sorted(net.zones)), ", ".join(sorted(net.zones))))
                    self.warn("DHCP relay assumed: %s relays DHCP for %s to %s (set group nap_dhcp_relays to name the "
                              "relay agent)" % (", ".join(relays), ", ".join(net.addresses), server))
                for relay in relays:
                    rel = self.host_endpoint(relay, "dhcp_relay")
                    direct.append((net, rel))
                    relayed.append((rel, dst))
        self._dhcp_cache = (self._dedupe(direct), self._dedupe(relayed))
        return self._dhcp_cache

    @staticmethod
    def _dedupe(pairs):
        seen, out = set(), []
        for src, dst in pairs:
            key = (src.host, src.addresses, dst.host)
            if key not in seen:
                seen.add(key)
                out.append((src, dst))
        return out

    # -- services -----------------------------------------------------------
    def services(self, flow, src, dst):
        """Resolved (protocol, dst_ports, src_ports, rpc_dynamic, via) for one pair."""
        if "ports_per_remediation_role" in flow.traits:
            out = []
            for cm_role in self.hostvars.get(dst.host, {}).get("nap_remediation_roles") or []:
                cm_flow = catalogue.VIA_BY_ID[catalogue.REMEDIATION_ROLES[cm_role]]
                for svc in self._resolve_services(cm_flow, src, dst):
                    out.append(svc[:4] + (cm_flow.id,))
            if not out:
                self.warn("host %s is in nap_remediation_servers without nap_remediation_roles: no remediation "
                          "ports are planned for it (e.g. nap_remediation_roles: [management_point])" % dst.host)
            return out
        if "ports_per_protected_service" in flow.traits:
            items = self.protected_services.get(dst.host)
            if items is None:
                self._unprotected.append(dst.host)
                return []
            out = []
            raw = OrderedDict()
            for name, protocol, port in items:
                if name is not None:
                    for svc in self._resolve_services(flow, src, dst, catalogue.PROTECTED_SERVICES[name]):
                        out.append(svc[:4] + (name.upper(),))
                else:
                    raw.setdefault(protocol, []).append(port)
            for protocol, ports in raw.items():
                out.append((protocol, normalize_ports(ports), (), False, None))
            return out
        fixed = self._fixed_services.get(flow.id)
        if fixed is not None:
            return fixed                # the same for every pair (read only)
        # decided by the endpoints: the same for every pair with the same deciding hosts (read only)
        key = (flow.id, src.host if self._source_decides[flow] else None, dst.host)
        found = self._decided_services.get(key)
        if found is not None:
            out, plain = found
            if plain:                   # each pair still notes its plain choices: their warning names the pair
                self._plain.extend((flow.id, setting, src, dst) for setting in plain)
            return out
        before = len(self._plain)
        out = [svc + (None,) for svc in self._resolve_services(flow, src, dst)]
        if not any(isinstance(s.dst_ports, (catalogue.ManagementPort, catalogue.Choice)) for s in flow.services):
            self._fixed_services[flow.id] = out
        else:
            self._decided_services[key] = (out, [setting for _id, setting, _src, _dst in self._plain[before:]])
        return out

    def _resolve_services(self, flow, src, dst, services=None):
        out = []
        for service in flow.services if services is None else services:
            ports = service.dst_ports
            if isinstance(ports, catalogue.ManagementPort):
                ports = (self.mgmt_port[dst.host],)
            elif isinstance(ports, catalogue.Choice):
                setting = ports.setting
                decider = flow.deciders.get(setting, "dst")
                value = self.settings.get(setting, src.host if decider == "src" else dst.host)
                ports = ports.options[value]
                if _PLAIN_CHOICES.get(setting) == value:
                    self._plain.append((flow.id, setting, src, dst))
            out.append((service.protocol, tuple(ports), tuple(service.src_ports), service.rpc_dynamic))
        return out

    def _windows_group_data(self, flow, via, src, dst):
        """(groups, note) of the Windows predefined groups that cover the flow on its destination, by resource string
        and English name (the predefined-groups issue), or why there is none: groups as (name, resource, rules)."""
        found = self._fixed_groups.get((flow.id, via))
        if found is not None:
            return found
        chooser = catalogue.VIA_BY_ID.get(via) or flow      # REMEDIATION: the flow it goes via
        if chooser.group_choice is None:
            found = self._fixed_groups[(flow.id, via)] = self._plan_groups(flow.id, via, None)
            return found                # no endpoint decides: the same for every pair
        setting = chooser.group_choice.setting
        host = src.host if chooser.deciders.get(setting, "dst") == "src" else dst.host
        found = self._decided_groups.get((flow.id, via, host))
        if found is None:
            found = self._decided_groups[(flow.id, via, host)] = self._plan_groups(
                flow.id, via, self.settings.get(setting, host))
        return found

    def _plan_groups(self, flow_id, via, value):
        """catalogue.plan_groups() as _windows_group_data() gives it, once per flow, via and setting value."""
        key = (flow_id, via, value)
        found = self._group_cache.get(key)
        if found is None:
            groups, note = catalogue.plan_groups(*key)
            found = self._group_cache[key] = (
                [(g["name"], g["resource"], tuple(g["rules"])) for g in catalogue.group_data(groups)], note)
        return found

    # -- main -------------------------------------------------------------
    def run(self, layout=None):
        """The plan document; ``layout``, a FlowLayout, is filled with how its flows repeat (see there)."""
        self._group_cache = {}
        self._fixed_groups = {}           # (flow id, via) -> _windows_group_data(), where no endpoint decides
        self._decided_groups = {}         # (flow id, via, deciding host) -> _windows_group_data(), for the others
        self._plain = []
        self._unprotected = []
        undeclared = OrderedDict()        # flow id -> RPC destinations whose range is the default
        declaring = set()                 # flow ids with a host endpoint that declares its Windows version
        flows = []
        # host -> [(flow or rule, its keys: (_ServiceKeys, source addresses) of a flow, None for a rule)]
        inbound = defaultdict(list)
        outbound = defaultdict(list)      # host -> its outbound rules (outbound policy block)
        # device -> its flows, and their keys for plan_rules.forward_dicts
        forward_flows, forward_keys = defaultdict(list), defaultdict(list)
        blocking = set(host for host in self.host_roles
                       if self.settings.get("nap_windows_outbound_policy", host, use=False) == "block")
        platform = self.platform
        service_keys = {}
        forward_numbers = {}              # forward_key() but the source addresses -> a number standing for it
        zone_texts = _Memo(_zone_text)    # zones -> _zone_text(); a list is shared: each entry takes its own copy
        crossed_cache = _Memo(lambda zones: self.topology.crossed(*zones))   # a plan asks for the same few pairs
        devices = self.topology.devices
        fixed_groups = self._fixed_groups
        if layout is not None:
            layout.flows = flows
            kind_numbers, end_numbers = {}, {}
            kinds, ends = layout.kinds, layout.ends
            kind_of, src_of, dst_of = layout.kind_of, layout.src_of, layout.dst_of

        for flow in catalogue.FLOWS:
            if not self._enabled(flow):
                continue
            flow_id, purpose, source, category = flow.id, flow.purpose, flow.source, flow.category
            icmp_types = {}
            for service in flow.services:
                if service.icmp_type and service.protocol not in icmp_types:
                    icmp_types[service.protocol] = service.icmp_type
            host_endpoints_only = "host_endpoints_only" in flow.traits
            inside_ipsec = "inside_ipsec" in flow.traits
            fixed = None                  # the flow's services, once known to be the same for every pair
            for src, dst in self.pairs(flow):
                src_host, dst_host = src.host, dst.host
                if host_endpoints_only and src_host is None and dst_host is None:
                    continue
                if inside_ipsec:
                    crossed = []          # across perimeters the flow is ESP (IPSEC-IKE)
                else:
                    crossed = crossed_cache[src.zones, dst.zones]
                if crossed is None:
                    self.warn("%s: no perimeter path joins zone %s and zone %s (%s -> %s): no perimeter rules"
                              % (flow_id, ", ".join(sorted(src.zones)), ", ".join(sorted(dst.zones)),
                                 src_host or ",".join(src.addresses), dst_host))
                    crossed = []
                if crossed and (src_host in devices or dst_host in devices):
                    crossed = [d for d in crossed if d not in (src_host, dst_host)]
                src_zone, dst_zone = zone_texts[src.zones], zone_texts[dst.zones]
                src_addresses, dst_addresses = src.addresses, dst.addresses
                services = fixed
                if services is None:
                    services = self.services(flow, src, dst)
                    fixed = self._fixed_services.get(flow_id)
                for protocol, dst_ports, src_ports, rpc, via in services:
                    # a plain dict (ordered, as a plan read back from JSON is): a third of the cost of an OrderedDict;
                    # [*items] copies a tuple (endpoints hold normalized addresses) faster than list() does
                    entry = {
                        "id": flow_id,
                        "purpose": purpose,
                        "source": source,
                        "category": category,
                        "src_role": src.role,
                        "dst_role": dst.role,
                        "src_host": src_host,
                        "src_addresses": [*src_addresses],
                        "src_zone": [*src_zone] if isinstance(src_zone, list) else src_zone,
                        "dst_host": dst_host,
                        "dst_addresses": [*dst_addresses],
                        "dst_zone": [*dst_zone] if isinstance(dst_zone, list) else dst_zone,
                        "protocol": protocol,
                        "dst_ports": [*dst_ports],
                        "src_ports": [*src_ports],
                        "rpc_dynamic": bool(rpc),
                    }
                    if rpc:
                        ranges, declared = self.rpc_ranges(dst)
                        entry["rpc_dynamic_range"] = ranges[0]
                        entry["rpc_dynamic_ranges"] = ranges
                        if not declared:
                            undeclared.setdefault(flow_id, OrderedDict())[dst_host or ", ".join(dst_addresses)] = \
                                dst_host is None
                        if any(self.windows_version.get(h) for h in (src_host, dst_host) if h):
                            declaring.add(flow_id)
                    if via:
                        entry["via"] = via
                    icmp_type = icmp_types and icmp_types.get(protocol)
                    if icmp_type:
                        entry["icmp_type"] = icmp_type
                    entry["perimeter"] = [*crossed]
                    group_data = fixed_groups.get((flow_id, via)) or self._windows_group_data(flow, via, src, dst)
                    groups, note = group_data
                    # each flow its own copy: consumers (and YAML dumpers) see no shared objects
                    entry["windows_group"] = [{"name": name, "resource": resource, "rules": [*rules]}
                                              for name, resource, rules in groups]
                    if note:
                        entry["windows_group_note"] = note
                    flows.append(entry)
                    # what the rules of a flow are grouped by depends on its service, not on its pair of endpoints
                    key = (flow_id, via, protocol, dst_ports, src_ports, rpc, dst_host is None,
                           tuple(entry["rpc_dynamic_ranges"]) if rpc else None)
                    keys = service_keys.get(key)
                    if keys is None:
                        keys = service_keys[key] = _ServiceKeys(entry, forward_numbers)
                    if layout is not None:
                        # every field but the two ends follows from the service's keys (the flow, via, protocol,
                        # ports, RPC ranges), the roles, the devices crossed and the Windows groups (one cached
                        # object per flow, via and setting value, alive while the planner is)
                        number = len(flows) - 1
                        kind_key = (keys, src.role, dst.role, tuple(crossed), id(group_data))
                        kind = kind_numbers.get(kind_key)
                        if kind is None:
                            kind = kind_numbers[kind_key] = len(kinds)
                            kinds.append(number)
                        kind_of.append(kind)
                        # an end (host, addresses, zone) follows from its endpoint (hashed by identity)
                        end = end_numbers.get(src)
                        if end is None:
                            end = end_numbers[src] = len(ends)
                            ends.append((number, "src"))
                        src_of.append(end)
                        end = end_numbers.get(dst)
                        if end is None:
                            end = end_numbers[dst] = len(ends)
                            ends.append((number, "dst"))
                        dst_of.append(end)
                    # the flow's rules: filed under its hosts and devices, made per host and device by _assemble
                    if dst_host and not (keys.windows_exempt and platform.get(dst_host) == "windows"):
                        inbound[dst_host].append((entry, (keys, src_addresses)))   # one rule per group that merges
                    if src_host and keys.relay_takes_replies:
                        # relay <-> server on UDP 67 both ways: the relay takes the server's replies
                        inbound[src_host].append((plan_rules.relay_reply(entry), None))
                    if src_host in blocking:
                        outbound[src_host].append(plan_rules.host_outbound(entry))
                    if crossed:
                        forward_key = (keys.forward, src_addresses)
                        for dev in crossed:                 # one rule per group of flows that merge
                            forward_flows[dev].append(entry)
                            forward_keys[dev].append(forward_key)
        for flow_id, setting, src, dst in self._plain:
            if self.topology.crossed(src.zones, dst.zones):
                self.warn("%s: %s crosses a perimeter (%s -> %s); consider %s=%s" % (
                    flow_id, _PLAIN_TEXT[setting], src.host or ",".join(src.addresses), dst.host, setting,
                    [k for k in catalogue.SETTINGS_BY_NAME[setting].choices if k != _PLAIN_CHOICES[setting]][0]))
        for flow_id, ends in undeclared.items():
            if flow_id not in declaring:
                continue
            for end, network in ends.items():
                what = ("the networks %s declare no Windows versions (nap_client_windows_versions)" % end if network
                        else "%s declares no Windows version (nap_windows_version)" % end)
                self.warn("%s: %s while other hosts of this flow do: its dynamic RPC range is taken as %s (Vista/2008 "
                          "and later; XP and 2003 use %s)"
                          % (flow_id, what, catalogue.RPC_RANGE_MODERN, catalogue.RPC_RANGE_LEGACY))
        if self._unprotected:
            hosts = list(OrderedDict.fromkeys(self._unprotected))
            self.warn("%d host(s) in nap_ipsec_protected without nap_ipsec_protected_services (%s): only IKE and ESP "
                      "are planned for them, and a connection security rule still needs the firewall rule of the "
                      "service it protects; list the services, e.g. nap_ipsec_protected_services: [smb, http]"
                      % (len(hosts), _some(hosts)))
        for name in sorted(self.settings.explicit - self.settings.used):
            if name in ("nap_client_networks", "nap_restricted_networks", "nap_management_sources",
                        "nap_windows_outbound_policy"):
                continue
            self.warn("%s is set but no planned flow uses it (%s)" % (name, catalogue.SETTINGS_BY_NAME[name].text))
        return self._assemble(flows, inbound, outbound, (forward_flows, forward_keys))

    def _assemble(self, flows, inbound, outbound, forward):
        hosts = OrderedDict()
        host_made = {}
        for host, roles in self.host_roles.items():
            entry = OrderedDict()
            entry["roles"] = list(roles)
            entry["platform"] = self.platform[host]
            entry["addresses"] = list(self.addresses[host])
            entry["zone"] = _zone_text(self.host_zone[host])
            entry["outbound_policy"] = self.settings.get("nap_windows_outbound_policy", host, use=False)
            entry["rpc_dynamic_range"] = self._host_rpc_range(host)
            entry["windows_version"] = self.windows_version.get(host)
            entry["domain_member"] = bool(self.domain_member.get(host))
            entry["management_port"] = self.mgmt_port.get(host)
            entry["settings"], entry["listeners"] = self._settings_and_listeners(host, roles, host_made)
            if self.host_rules_applicable(host):
                entry["host_rules"] = "planned"
            else:
                version = catalogue.WINDOWS_VERSIONS[self.windows_version[host]]
                entry["host_rules"] = "not_applicable"
                entry["host_rules_note"] = (
                    "%s has neither the Windows Firewall with Advanced Security COM API (HNetCfg.FwPolicy2) nor netsh "
                    "advfirewall: its rules are listed here and in not_applicable_rules for a manual or Group Policy "
                    "setup; perimeter devices still carry its flows (%s)" % (version.label, catalogue.CITE_FWPOLICY2))
                entry["not_applicable_rules"] = []
            entry["inbound"] = []
            entry["outbound"] = []
            hosts[host] = entry
        rules_made = {}
        for host, entry in hosts.items():
            entry["inbound"] = _inbound_dicts(inbound.get(host, ()), rules_made)
            entry["outbound"] = plan_rules.finish_dicts(outbound[host], "dst") if host in outbound else []
            if entry["host_rules"] == "not_applicable":
                entry["not_applicable_rules"] = entry["inbound"] + entry["outbound"]
                entry["inbound"], entry["outbound"] = [], []
        perimeter = OrderedDict()
        for dev, zones in self.topology.devices.items():
            pentry = OrderedDict()
            pentry["platform"] = self.platform[dev]
            pentry["zones"] = sorted(zones)
            pentry["zone_networks"] = dict((z, self.effective["nap_zones"][z]) for z in sorted(zones))
            pentry["owned_zones"] = sorted(self.topology.component(zones))
            pentry["owned_zone_networks"] = dict((z, self.effective["nap_zones"][z]) for z in pentry["owned_zones"])
            pentry["addresses"] = list(self.addresses[dev])
            pentry["management_port"] = self.mgmt_port.get(dev)
            pentry["forward"] = plan_rules.forward_dicts(forward[0].get(dev, []), forward[1].get(dev, []))
            perimeter[dev] = pentry
        plan = OrderedDict()
        plan["format_version"] = PLAN_FORMAT_VERSION
        plan["settings"] = self.effective
        plan["flows"] = flows
        plan["hosts"] = hosts
        plan["perimeter"] = perimeter
        plan["warnings"] = list(self.warnings)
        return plan


class _Memo(dict):
    """``memo[key]``: ``make(key)``, made once per key (a dict lookup where it is known: no call per item)."""

    def __init__(self, make):
        dict.__init__(self)
        self.make = make

    def __missing__(self, key):
        value = self[key] = self.make(key)
        return value


def _src_decides(flow):
    """Whether the source's settings choose any of the flow's ports (else only the destination's can)."""
    return any(isinstance(s.dst_ports, catalogue.Choice) and flow.deciders.get(s.dst_ports.setting, "dst") == "src"
               for s in flow.services)


class _ServiceKeys(object):
    """What the rules of a plan flow are grouped by, the same for every flow of one service: the planner makes them
    once per service.  ``inbound``: plan_rules.inbound_key(); ``forward``: a number standing for forward_key() but the
    source addresses (one per distinct key).  One per service, so compared by identity: the keys of a host's flows,
    and a forward key, hash without hashing the nested tuples in them."""

    __slots__ = ("inbound", "forward", "windows_exempt", "relay_takes_replies")

    def __init__(self, flow, forward_numbers):
        self.inbound = plan_rules.inbound_key(flow)
        self.forward = forward_numbers.setdefault(plan_rules.forward_key(flow)[:-1], len(forward_numbers))
        self.windows_exempt = plan_rules.has_trait(flow["id"], "windows_exempt")
        self.relay_takes_replies = plan_rules.has_trait(flow["id"], "relay_takes_replies")


def _inbound_dicts(pairs, made):
    """plan_rules.inbound_dicts() of a host's items (flows, a relay's reply rules) with their keys ((_ServiceKeys,
    source addresses) of a flow, None for a rule).

    Hosts that take the same services from the same sources (every client: from the site server, the console hosts,
    the management sources) have the same rules: they are made once (``made`` holds them) and copied.
    """
    if not pairs:
        return []
    items, keys = zip(*pairs)
    if None in keys:
        return plan_rules.inbound_dicts(items, [None if key is None else key[0].inbound for key in keys])
    rules = made.get(keys)
    if rules is None:
        rules = made[keys] = plan_rules.inbound_dicts(items, [key[0].inbound for key in keys])
        return rules
    # each host its own copy: consumers (and YAML dumpers) see no shared objects
    return [_rule_copy(rule) for rule in rules]


def _rule_copy(rule):
    """A copy of a rule dict with lists of its own."""
    rule = rule.copy()
    rule["src_addresses"] = list(rule["src_addresses"])
    rule["dst_addresses"] = list(rule["dst_addresses"])
    rule["src_ports"] = list(rule["src_ports"])
    rule["dst_ports"] = list(rule["dst_ports"])
    return rule


def _ip_address(value):
    """The ip_address of a plain IPv4/IPv6 address (as model.is_ip_address accepts it), else None."""
    text = str(value).strip()
    if "%" in text:
        return None
    number = ipv4_number(text)     # a host's address is read once per host: ipaddress takes half as long again
    if number is not None:
        return ipaddress.IPv4Address(number)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _host_address(addr, host, var):
    """A host's own address (an ip_address); NapError for an address no host can have (0.0.0.0, ::, multicast, ...)."""
    bad = None
    if addr.is_unspecified:
        bad = "the unspecified address"
    elif addr.is_multicast:
        bad = "a multicast address"
    elif addr.version == 4 and addr == _BROADCAST:
        bad = "the broadcast address"
    elif addr.is_loopback:
        bad = "a loopback address"
    if bad:
        raise NapError("host %s: %s is %s (%s), which no host can be reached at; set nap_address to the host's own "
                       "address, e.g. nap_address: 192.0.2.10" % (host, var, addr, bad))
    return addr


def _uncovered(cidrs):
    """The CIDRs that no other CIDR of the list covers, each once (not joined: adjacent ones may lie in two zones)."""
    nets = [ipaddress.ip_network(c) for c in normalize_addresses(cidrs, collapse=False)]
    return [str(n) for n in nets
            if not any(o != n and o.version == n.version and n.subnet_of(o) for o in nets)]


def _some(names, shown=3):
    names = list(names)
    return ", ".join(names) if len(names) <= shown + 1 else "%s ... %s" % (", ".join(names[:shown]), names[-1])


def _zone_text(zones):
    return sorted(zones)[0] if len(zones) == 1 else (None if not zones else sorted(zones))


class FlowLayout(object):
    """How the flows of one plan repeat, as the planner made them (plan(..., layout=FlowLayout())).

    A flow is its kind (every field but its two ends: the catalogue texts, the roles, the service, the devices
    crossed, the Windows groups) and its two ends (host, addresses and zone, from one endpoint); an estate of
    thousands of hosts has a few hundred kinds and an end per host or network. ``kind_of``, ``src_of`` and
    ``dst_of`` give each flow's numbers, ``kinds`` the index of each kind's first flow, ``ends`` each end's first
    flow and side ("src" or "dst"). The reports (report.render_json, render_csv) then write each kind and end once,
    instead of finding the repeats again by value. A layout describes ``flows``, the plan's list, as the planner
    left it: it is for the code that made the plan, before anything changes the flows.
    """

    __slots__ = ("flows", "kinds", "ends", "kind_of", "src_of", "dst_of")

    def __init__(self):
        self.flows = None
        self.kinds, self.ends = [], []
        self.kind_of, self.src_of, self.dst_of = [], [], []

    def describes(self, flows):
        """Is this the layout of ``flows`` (the same list, as many flows)?"""
        return self.flows is flows and len(self.kind_of) == len(flows)


def plan(groups, hostvars, settings, controller_addresses=None, layout=None):
    """Build the plan document from inventory groups, host variables and global settings.

    ``layout``: a FlowLayout to fill for the reports of this plan (see there)."""
    with CollectorPaused():
        return Planner(groups, hostvars, settings, controller_addresses).run(layout)


def summary(plan_doc):
    """Short text summary: hosts, flows, rules per host and device."""
    lines = []
    hosts = plan_doc["hosts"]
    lines.append("%d hosts, %d perimeter devices, %d flows (%d catalogue ids)" % (
        len(hosts), len(plan_doc["perimeter"]), len(plan_doc["flows"]),
        len(set(f["id"] for f in plan_doc["flows"]))))
    for name, entry in hosts.items():
        line = "  %-24s %-40s %3d inbound %3d outbound" % (
            name, ",".join(entry["roles"])[:40], len(entry["inbound"]), len(entry["outbound"]))
        if entry.get("host_rules") == "not_applicable":
            line += " (%d host rules not applicable: %s)" % (
                len(entry.get("not_applicable_rules") or []), entry.get("windows_version"))
        lines.append(line)
    for name, entry in plan_doc["perimeter"].items():
        lines.append("  %-24s %-40s %3d forward" % (name, "perimeter " + entry["platform"], len(entry["forward"])))
    if plan_doc.get("warnings"):
        lines.append("%d warning(s), listed above and in the report" % len(plan_doc["warnings"]))
    return lines


__all__ = ["plan", "Planner", "FlowLayout", "summary", "validate_setting", "parse_bool", "NapError"]
