# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's definition and what follows from it alone: zones, namespace names, addresses, links, routes and
the Ansible inventory of the lab (no side effects; nap_lab's LabSupervisor builds what LabTopology computes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import re
from collections import OrderedDict, deque

try:
    import yaml
    HAS_YAML = True

    class IndentedDumper(yaml.SafeDumper):  # pylint: disable=too-many-ancestors
        """Sequences indented under their key, as yamllint (ansible-lint) wants."""

        def increase_indent(self, flow=False, indentless=False):
            return super(IndentedDumper, self).increase_indent(flow, False)
except ImportError:  # pragma: no cover
    HAS_YAML = False

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,11}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,15}$")

# The services a lab host may name (services.Services has a ``_<name>`` method for each).
SERVICES = ("samba_dc", "smbd", "rpc", "freeradius", "nginx", "dhcp_server", "dhcp_relay", "charon", "ntp")
# The generated inventory holds vars.nap_radius_secret: owner only.
INVENTORY_MODE = 0o600


class LabError(Exception):
    pass


def services_of(spec):
    """A node's ``services``: a list of names or of one-key mappings, or a mapping name -> options."""
    raw = spec.get("services") or []
    out = OrderedDict()
    if isinstance(raw, dict):
        items = list(raw.items())
    else:
        items = []
        for entry in raw:
            if isinstance(entry, dict) and len(entry) == 1:
                items.append(list(entry.items())[0])
            else:
                items.append((entry, None))
    for name, options in items:
        out[str(name)] = dict(options or {})
    return out


# ---------------------------------------------------------------------------
# Definition -> topology (pure)
# ---------------------------------------------------------------------------
def load_definition(path=None, data=None):
    if data is not None:
        return data
    if not HAS_YAML:
        raise LabError("PyYAML is needed to read the lab definition %s" % path)
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def zone_iface(zone):
    return ("e-" + zone)[:15]


def switch_port(node):
    return ("p-" + node)[:15]


class LabTopology:
    """Namespaces, links, addresses and routes of a lab, computed from its definition."""

    def __init__(self, lab, prefix="nap", base_subnet=None, windows_vantages=False):
        # windows_vantages: the Windows-platform hosts probe through the Windows path of verify.yml
        # (win_nap_port_probe and its PowerShell sender; in the lab the stand-in win_powershell of tests/fake_windows
        # runs the sender's exchanges inside the host's namespace), the Linux hosts and routers keep nap_port_probe.
        self.windows_vantages = bool(windows_vantages)
        if not _PREFIX_RE.match(prefix or ""):
            raise LabError("prefix %r: expected letters, digits and '-', at most 16 characters" % (prefix,))
        self.prefix = prefix
        base = base_subnet or lab.get("base_subnet") or "198.18.0.0/16"
        try:
            self.base = ipaddress.ip_network(str(base), strict=True)
        except ValueError as exc:
            raise LabError("base_subnet %r is not a network: %s" % (base, exc))
        if self.base.version != 4 or not self.base.subnet_of(LAB_RANGE):
            raise LabError("base_subnet %s is outside 198.18.0.0/15, the only range the lab may use" % self.base)
        zone_prefix = int(lab.get("zone_prefix", 24))
        if zone_prefix < self.base.prefixlen or zone_prefix > 29:
            raise LabError("zone_prefix /%d does not fit in base_subnet %s" % (zone_prefix, self.base))
        subnets = list(self.base.subnets(new_prefix=zone_prefix))
        self.zones = OrderedDict()
        self.zone_info = OrderedDict()
        for name, spec in (lab.get("zones") or {}).items():
            spec = spec if isinstance(spec, dict) else {"index": spec}
            name = str(name)
            if not _NAME_RE.match(name):
                raise LabError("zone %r: expected lower-case letters, digits and '-', at most 12 characters" % name)
            index = int(spec.get("index", 0))
            if not 0 <= index < len(subnets):
                raise LabError("zone %s: index %d is outside base_subnet %s (%d zones of /%d fit)"
                               % (name, index, self.base, len(subnets), zone_prefix))
            self.zones[name] = subnets[index]
            self.zone_info[name] = spec
        if len(set(self.zones.values())) != len(self.zones):
            raise LabError("two zones share an index")
        self.routers = OrderedDict()
        self.hosts = OrderedDict()
        for name, spec in (lab.get("routers") or {}).items():
            zones = [str(z) for z in (spec or {}).get("zones") or []]
            if len(zones) < 2:
                raise LabError("router %s: expected at least two zones" % name)
            self._check_node(name, zones)
            self.routers[str(name)] = dict(spec, zones=zones, id=int((spec or {}).get("id", 1)))
        for name, spec in (lab.get("hosts") or {}).items():
            spec = dict(spec or {})
            self._check_node(name, [str(spec.get("zone"))])
            if "id" not in spec:
                raise LabError("host %s: 'id' (its host number in the zone) is required" % name)
            spec["zones"] = [str(spec["zone"])]
            self.hosts[str(name)] = spec
        self.nodes = OrderedDict(list(self.routers.items()) + list(self.hosts.items()))
        seen = {}
        for name, spec in self.nodes.items():
            for zone in spec["zones"]:
                addr = self.address(name, zone)
                if addr in seen:
                    raise LabError("%s and %s both get %s" % (seen[addr], name, addr))
                seen[addr] = name
        self.vars = dict(lab.get("vars") or {})
        self.domain = dict(lab.get("domain") or {})
        for name, spec in self.nodes.items():
            try:
                services = services_of(spec)
            except (TypeError, ValueError, AttributeError):
                raise LabError("host %s: services must be a list of names (or of name: options mappings)" % name)
            for service in services:
                if service not in SERVICES:
                    raise LabError("host %s: unknown service %r (known: %s)" % (name, service, ", ".join(SERVICES)))

    def _check_node(self, name, zones):
        if not _NAME_RE.match(str(name)):
            raise LabError("host %r: expected lower-case letters, digits and '-', at most 12 characters" % (name,))
        if str(name) in getattr(self, "routers", {}) or str(name) in getattr(self, "hosts", {}):
            raise LabError("host %s is defined twice" % name)
        for zone in zones:
            if zone not in self.zones:
                raise LabError("host %s: zone %r is not in zones (%s)" % (name, zone, ", ".join(self.zones)))

    def netns(self, node):
        return "%s-%s" % (self.prefix, node)

    def switch(self, zone):
        return "%s-sw-%s" % (self.prefix, zone)

    def namespaces(self):
        return [self.switch(z) for z in self.zones] + [self.netns(n) for n in self.nodes]

    def address(self, node, zone):
        host_id = int(self.nodes[node]["id"])
        net = self.zones[zone]
        if not 0 < host_id < net.num_addresses - 1:
            raise LabError("%s: id %d does not fit in zone %s (%s)" % (node, host_id, zone, net))
        return net.network_address + host_id

    def links(self):
        """(node, zone, switch namespace, port name, node namespace, interface name)."""
        out = []
        for node, spec in self.nodes.items():
            for zone in spec["zones"]:
                out.append((node, zone, self.switch(zone), switch_port(node), self.netns(node),
                            zone_iface(zone) if node in self.routers else "eth0"))
        return out

    def routes(self, node):
        """[(destination network, gateway)] so that every lab zone is reachable from ``node``."""
        own = set(self.nodes[node]["zones"])
        out = []
        for target, net in self.zones.items():
            if target in own:
                continue
            hop = self._next_hop(node, own, target)
            if hop:
                out.append((str(net), str(hop)))
        return out

    def _next_hop(self, node, own, target):
        # BFS over zones; state = zone, remembering the first router used from one of our zones.
        queue = deque()
        seen = set(own)
        for zone in sorted(own):
            for router, spec in self.routers.items():
                if router != node and zone in spec["zones"]:
                    for nxt in spec["zones"]:
                        if nxt not in seen:
                            seen.add(nxt)
                            queue.append((nxt, self.address(router, zone)))
        while queue:
            zone, hop = queue.popleft()
            if zone == target:
                return hop
            for router, spec in self.routers.items():
                if zone in spec["zones"]:
                    for nxt in spec["zones"]:
                        if nxt not in seen:
                            seen.add(nxt)
                            queue.append((nxt, hop))
        return None

    def inventory(self, lab_dir):
        """The lab's Ansible inventory (a dict ready for YAML)."""
        groups = OrderedDict()
        hosts = OrderedDict()
        for name, spec in self.nodes.items():
            hvars = OrderedDict()
            hvars["ansible_connection"] = "local"
            if "{{" in lab_dir:
                # A templated lab_dir (examples/lab/inventory.yml: relative to inventory_dir): delegated tasks
                # template the interpreter without the host's magic vars (no inventory_dir), so it reads the
                # host's own nap_lab_dir through hostvars, which works in every context.
                hvars["ansible_python_interpreter"] = "{{ hostvars['%s'].nap_lab_dir }}/bin/%s-python" % (name, name)
            else:
                hvars["ansible_python_interpreter"] = os.path.join(lab_dir, "bin", "%s-python" % name)
            hvars["nap_lab_netns"] = self.netns(name)
            addrs = [str(self.address(name, z)) for z in spec["zones"]]
            hvars["nap_address"] = addrs if name in self.routers else addrs[0]
            if name in self.routers:
                hvars["nap_perimeter_platform"] = spec.get("platform", "nftables")
                hvars["nap_perimeter_zones"] = [str(z) for z in spec.get("perimeter_zones") or spec["zones"]]
            else:
                hvars["nap_platform"] = spec.get("platform", "windows")
            windows = name not in self.routers and hvars.get("nap_platform") == "windows"
            hvars["nap_probe_capable"] = not (self.windows_vantages and windows)
            if self.windows_vantages and windows:
                # the namespace's listeners are still read with ss (listen_ports_facts), not Get-NetTCPConnection
                hvars["nap_listener_method"] = "listen_ports_facts"
            if spec.get("listen"):
                hvars["nap_lab_listen"] = [int(p) for p in spec["listen"]]
            if spec.get("services"):
                hvars["nap_lab_services"] = list(services_of(spec))
            for key, value in (spec.get("vars") or {}).items():
                hvars[key] = value
            hosts[name] = hvars
            for group in spec.get("groups") or (["nap_perimeter"] if name in self.routers else []):
                groups.setdefault(group, OrderedDict())[name] = None
        allvars = OrderedDict()
        allvars["nap_lab_prefix"] = self.prefix
        allvars["nap_lab_dir"] = lab_dir
        if self.windows_vantages:
            allvars["nap_lab_windows_vantages"] = True
        allvars["nap_zones"] = OrderedDict((z, [str(n)]) for z, n in self.zones.items())
        clients = [str(self.zones[z]) for z, spec in self.zone_info.items() if spec.get("clients")]
        if clients:
            allvars["nap_client_networks"] = clients
        mgmt = ["%s/32" % self.address(n, s["zones"][0]) for n, s in self.hosts.items() if s.get("management")]
        if mgmt:
            allvars["nap_management_sources"] = mgmt
        for key, value in self.vars.items():
            allvars.setdefault(key, value)
        children = OrderedDict((g, OrderedDict([("hosts", OrderedDict((h, {}) for h in members))]))
                               for g, members in groups.items())
        return OrderedDict([("all", OrderedDict([("vars", allvars), ("hosts", hosts), ("children", children)]))])

    def inventory_text(self, lab_dir):
        """The inventory file's YAML text; it holds the lab's secrets (vars.nap_radius_secret): write it
        INVENTORY_MODE."""
        if not HAS_YAML:
            raise LabError("PyYAML is needed to write the lab's inventory")
        inv = json.loads(json.dumps(self.inventory(lab_dir)))
        return "# Generated by configmgr.nap.nap_lab; removed by state=absent.\n" + yaml.dump(
            inv, Dumper=IndentedDumper, default_flow_style=False, sort_keys=False)
