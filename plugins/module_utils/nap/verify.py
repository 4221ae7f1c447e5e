# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What verify.yml probes and checks, and how it judges the answers (pure functions, no I/O).

``probe_jobs(plan, inventory, ...)`` turns a plan into probe jobs, one per vantage host, each a
list of ``configmgr.nap.nap_port_probe`` targets and, in the same order, the checks they stand for:

* every flow of the plan from its source to its destination, expect open.  The vantage is the
  flow's source host when it can run the probe (``nap_probe_capable``, or a Linux or nftables
  platform), else the host named for its zone in ``nap_probe_vantage`` (for a network source the
  vantage's address must lie in the flow's source networks), else the controller for the zones
  in ``controller_zones``; otherwise the flow is reported as not probed;
* negative checks across every perimeter device of the plan (expect blocked): the unchosen side of
  each "X or Y" of the flows that cross it (TCP 389 when LDAPS is chosen, 3268 when GC SSL, 80 when
  the HRA uses HTTPS, ...), from the flow's own vantage, and unplanned ports (the destination's
  expected listeners and ``unplanned_ports``) from each zone vantage to the hosts of the other zones
  the device owns.  A port some planned flow opens for that vantage is never probed as negative,
  and nothing is probed negatively inside one zone (where the service may legitimately listen).

``listener_jobs`` names, per plan host, how its listeners are read and which it must have;
``report`` joins the probe results and the listeners into the report (entries, summary, broken
lines, Markdown).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap import listeners as listener_table
from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, most_specific_zone, port_in
from ansible_collections.configmgr.nap.plugins.module_utils.nap.probe_codecs import UDP_PORT_KINDS
from ansible_collections.configmgr.nap.plugins.module_utils.nap.settings import parse_bool
from ansible_collections.configmgr.nap.plugins.module_utils.nap.netstat import parse_netstat_ano

# Plain UDP probes cannot tell a silent service from a drop: their "open|filtered" is reported as unconfirmed.
LENIENT_KINDS = ("udp",)
DEFAULT_UNPLANNED = ({"protocol": "tcp", "port": 135}, {"protocol": "tcp", "port": 445},
                     {"protocol": "tcp", "port": 3389})
LISTENER_METHODS = ("auto", "listen_ports_facts", "win_listen_ports_facts", "netstat", "none")
CAPABLE_PLATFORMS = ("linux", "nftables")
# "not probed": a check that could have been made and was not (no vantage, no secret, the vantage was unreachable);
# "unprobeable": one no probe can make (IP protocols without ports, port ranges, traffic inside IPsec).
VERDICTS = ("ok", "broken", "unconfirmed", "not probed", "unprobeable")
UNPROBED_POLICIES = ("fail", "warn")
# The runner of a vantage: nap_port_probe (Linux, nftables devices, the controller) or the PowerShell sender.
RUNNER_LINUX = "nap_port_probe"
RUNNER_WINDOWS = "win_nap_port_probe"
# ansible.windows.win_powershell needs PowerShell 5.1 ("Requirements" of the module: PowerShell 5.1 or newer), which
# WMF 5.1 brings to Windows Server 2008 R2 SP1, 2012 and 2012 R2; 2016 and later have it built in
# ("Windows Management Framework 5.1", https://learn.microsoft.com/en-us/powershell/scripting/windows-powershell/wmf/overview).
# Windows Server 2008 (SP2) and 2003 cannot get it: their highest PowerShell is 3.0 and 2.0.
MIN_POWERSHELL = (5, 1)
WINDOWS_MAX_POWERSHELL = {"2003": "2.0", "2008": "3.0", "xp": "2.0"}
# kinds whose probe binds a privileged local port the Windows DHCP services hold
LINUX_ONLY_KINDS = ("dhcp", "dhcp_relay")


def _net(text):
    return ipaddress.ip_network(str(text), strict=False)


def _addr(text):
    return ipaddress.ip_address(str(text).split("/", 1)[0])


def _zones(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(z) for z in value]
    return [str(value)]


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _port_items(ports):
    """Flow dst_ports -> (single ports, "low-high" ranges)."""
    singles, ranges = [], []
    for port in ports or []:
        if isinstance(port, int) or re.fullmatch(r"[0-9]+", str(port)):
            singles.append(int(port))
        else:
            ranges.append(str(port))
    return singles, ranges


class Inventory:
    """What verify needs of every inventory host: addresses, probe capability, RADIUS secret, listener method."""

    def __init__(self, plan, inventory):
        self.plan = plan
        self.hosts = dict(inventory or {})

    def get(self, name):
        return self.hosts.get(name) or {}

    def platform(self, name):
        if name in (self.plan.get("hosts") or {}):
            return self.plan["hosts"][name].get("platform")
        if name in (self.plan.get("perimeter") or {}):
            return self.plan["perimeter"][name].get("platform")
        return self.get(name).get("platform")

    def capable(self, name):
        flag = self.get(name).get("capable")
        if flag is not None and flag != "":
            return parse_bool(flag, "%s: nap_probe_capable" % name)
        return self.platform(name) in CAPABLE_PLATFORMS

    def windows_vantage(self, name):
        """(True, None) when ``name`` can probe through the PowerShell sender, else (False, why not)."""
        if self.platform(name) != "windows":
            return False, "%s is not a Windows host (nap_platform %s)" % (name, self.platform(name))
        version = str(self.get(name).get("powershell_version") or "").strip()
        if not version:
            windows = str(self.get(name).get("windows_version") or "").lower().replace(" ", "").replace("server", "")
            for prefix, highest in WINDOWS_MAX_POWERSHELL.items():
                if windows.startswith(prefix) and not windows.startswith("2008r2"):
                    version = highest
        if version:
            try:
                parts = tuple(int(x) for x in version.split(".")[:2])
            except ValueError:
                raise NapError("%s: nap_powershell_version %r is not a version such as 5.1" % (name, version))
            if parts < MIN_POWERSHELL:
                return False, "%s cannot run the probe (PowerShell %s; the Windows sender needs 5.1)" % (name, version)
        return True, None

    def runner(self, name, controller=None):
        """How ``name`` probes: RUNNER_LINUX, RUNNER_WINDOWS, or None (with the reason)."""
        if name == controller or self.capable(name):
            return RUNNER_LINUX, None
        ok, why = self.windows_vantage(name)
        if ok:
            return RUNNER_WINDOWS, None
        if self.platform(name) == "windows":
            return None, why
        return None, ("%s cannot run the probe (nap_platform %s; set nap_probe_capable on a Linux host)"
                      % (name, self.platform(name)))

    def addresses(self, name):
        entry = (self.plan.get("hosts") or {}).get(name) or (self.plan.get("perimeter") or {}).get(name)
        if entry and entry.get("addresses"):
            return [str(_addr(a)) for a in entry["addresses"]]
        out = []
        for value in _as_list(self.get(name).get("address")):
            try:
                out.append(str(_addr(value)))
            except ValueError:
                continue
        return out


class ProbePlanner:
    def __init__(self, plan, inventory, vantages=None, controller_zones=None, controller="localhost",
                 radius_secret=None, dns_name=".", negatives=True, unplanned_ports=DEFAULT_UNPLANNED, kerberos_realm=None):
        plan = plandoc.load(plan)
        if "flows" not in plan:
            raise NapError("expected a whole plan (flows.json), got one without flows")
        self.plan = plan
        self.inv = Inventory(plan, inventory)
        self.vantages = dict(vantages or {})
        self.controller_zones = [str(z) for z in _as_list(controller_zones)]
        self.controller = controller
        self.radius_secret = radius_secret
        self.dns_name = dns_name or "."
        realm = kerberos_realm or (self.dns_name.strip(".").upper() if self.dns_name.strip(".") else None)
        self.kerberos_realm = realm
        self.negatives = negatives
        self.unplanned = []
        for item in _as_list(unplanned_ports):
            if not isinstance(item, dict) or str(item.get("protocol", "tcp")) not in ("tcp", "udp"):
                raise NapError("unplanned_ports: expected {protocol: tcp|udp, port: N}, got %r" % (item,))
            port = int(item.get("port", 0))
            if not 0 < port < 65536:
                raise NapError("unplanned_ports: port %r is not 1-65535" % (item.get("port"),))
            self.unplanned.append((str(item.get("protocol", "tcp")), port))
        zones = (plan.get("settings") or {}).get("nap_zones") or {}
        self.zone_nets = OrderedDict((z, [_net(c) for c in _as_list(cidrs)]) for z, cidrs in zones.items())
        for zone, host in self.vantages.items():
            if zone not in self.zone_nets:
                raise NapError("nap_probe_vantage names zone %r, which is not in nap_zones (%s)"
                               % (zone, ", ".join(self.zone_nets) or "none"))
            if not host:
                raise NapError("nap_probe_vantage: zone %s names no host" % zone)
        self.jobs = OrderedDict()
        self.not_probed = []

    # -- vantage --------------------------------------------------------------------------------------
    def zone_of(self, address):
        addr = _addr(address)
        best = most_specific_zone(ipaddress.ip_network(addr), ((net, zone) for zone, nets in self.zone_nets.items()
                                                               for net in nets))
        return best[0] if best else None

    def vantage_address(self, vantage):
        if vantage == self.controller:
            return None
        addrs = self.inv.addresses(vantage)
        return addrs[0] if addrs else None

    def vantage_for(self, flow, kinds=()):
        """(vantage host, how, None) or (None, None, reason).  ``kinds``: the probe kinds the flow needs; a
        Windows vantage cannot make DHCP probes, so a zone's Linux vantage takes those."""
        src = flow.get("src_host")
        linux_only = any(k in LINUX_ONLY_KINDS for k in kinds)
        reasons = []
        if src:
            runner, why = self.inv.runner(src, self.controller)
            if runner == RUNNER_LINUX or (runner == RUNNER_WINDOWS and not linux_only):
                return src, "source", None
            if runner == RUNNER_WINDOWS:
                reasons.append("a Windows vantage (%s) cannot bind UDP 67/68 while the DHCP services hold them" % src)
            else:
                reasons.append(why)
        zones = _zones(flow.get("src_zone"))
        src_nets = [_net(a) for a in flow.get("src_addresses") or []]
        for zone in zones:
            vantage = self.vantages.get(zone)
            if not vantage:
                continue
            address = self.vantage_address(vantage)
            if not src and address and src_nets and not any(_addr(address) in n for n in src_nets
                                                            if n.version == _addr(address).version):
                reasons.append("the vantage %s of zone %s (%s) is not in the source networks %s"
                               % (vantage, zone, address, ", ".join(str(n) for n in src_nets)))
                continue
            runner, why = self.inv.runner(vantage, self.controller)
            if runner is None:
                reasons.append("the vantage %s of zone %s: %s" % (vantage, zone, why))
                continue
            if runner == RUNNER_WINDOWS and linux_only:
                reasons.append("the vantage %s of zone %s is a Windows host, which cannot bind UDP 67/68 while the "
                               "DHCP services hold them (name a Linux vantage for DHCP)" % (vantage, zone))
                continue
            return vantage, "zone vantage", None
        for zone in zones:
            if zone in self.controller_zones:
                return self.controller, "controller", None
        if any(self.vantages.get(z) for z in zones):
            return None, None, "; ".join(reasons)
        where = ("zone %s has no vantage (nap_probe_vantage)" % "/".join(zones)) if zones else \
            "the source is in no zone (nap_zones)"
        if not src and not reasons:
            reasons.append("the source is a network")
        return None, None, "%s and %s" % ("; ".join(reasons), where)

    def target_address(self, flow, vantage):
        addrs = [str(_addr(a)) for a in flow.get("dst_addresses") or []
                 if _net(a).num_addresses == 1]
        if not addrs:
            return None
        own = self.vantage_address(vantage)
        own_zone = self.zone_of(own) if own else None
        src_zones = _zones(flow.get("src_zone")) + ([own_zone] if own_zone else [])
        for zone in src_zones:
            for address in addrs:
                if self.zone_of(address) == zone:
                    return address
        return addrs[0]

    # -- targets ------------------------------------------------------------------------------------
    def kind(self, flow, protocol, port):
        if protocol == "tcp":
            return "kerberos" if port == 88 else "tcp"
        if catalogue.has_trait(flow.get("id"), "relay_takes_replies") or (port == 67 and 67 in (flow.get("src_ports") or [])):
            return "dhcp_relay"
        if port == 67:
            return "dhcp"
        return UDP_PORT_KINDS.get(port, "udp")

    def secret_for(self, vantage):
        secret = self.inv.get(vantage).get("radius_secret")
        return secret if secret else self.radius_secret

    def add(self, vantage, check, target):
        """One check from ``vantage``.  A probe that this vantage already makes (same address, protocol, port,
        kind and expectation) is not made twice: the check of the same flow is dropped (the other port set or
        path is noted on the first), a check of another flow shares the probe's result (``probe_index``)."""
        runner = self.inv.runner(vantage, self.controller)[0] or RUNNER_LINUX
        job = self.jobs.setdefault(vantage, {"vantage": vantage, "runner": runner, "targets": [], "checks": []})
        key = (target["host"], target["protocol"], target["port"], target.get("kind"), target.get("expect"))
        for index, other in enumerate(job["targets"]):
            if (other["host"], other["protocol"], other["port"], other.get("kind"), other.get("expect")) != key:
                continue
            first = job["checks"][index]
            if first["flow"] == check["flow"] and first["check"] == check["check"]:
                if check.get("via") and check.get("via") != first.get("via"):
                    extra = "the same probe stands for %s via %s" % (check["flow"], check["via"])
                    first["note"] = "; ".join(n for n in (first.get("note"), extra) if n)
                return
            job["checks"].append(dict(check, vantage=vantage, probe=other.get("kind", "tcp"), probe_index=index,
                                      runner=runner))
            return
        target = dict(target)
        target["name"] = "%s #%d" % (check["flow"], len(job["targets"]) + 1)
        check = dict(check, vantage=vantage, probe=target.get("kind", "tcp"), probe_index=len(job["targets"]),
                     runner=runner)
        job["targets"].append(target)
        job["checks"].append(check)

    def skip(self, check, reason, vantage=None, verdict="not probed"):
        key = tuple(check.get(k) for k in ("check", "flow", "source", "target", "protocol", "port", "expected"))
        for other in self.not_probed:
            if tuple(other.get(k) for k in ("check", "flow", "source", "target", "protocol", "port", "expected")) == key:
                return      # the same check for another port set or path of the flow (REMEDIATION via CM-MP, CM-DP)
        self.not_probed.append(dict(check, verdict=verdict, observed=None, detail=reason, vantage=vantage))

    def unprobeable(self, check, reason):
        self.skip(check, reason, verdict="unprobeable")

    def build_target(self, vantage, check, protocol, port, kind, expect):
        target = {"host": check["address"], "port": port, "protocol": protocol, "kind": kind}
        if expect:
            target["expect"] = expect
        if kind == "radius":
            # the secret itself is added at probe time (nap_verify_targets), so that it never sits in a loop item
            if not self.secret_for(vantage):
                return None, "a RADIUS probe needs the vantage's shared secret (nap_radius_secret)"
        elif kind == "dns":
            target["dns_name"] = self.dns_name
        elif kind == "kerberos" and self.kerberos_realm:
            target["kerberos_realm"] = self.kerberos_realm
        return target, None

    def flow_checks(self):
        for flow in self.plan.get("flows") or []:
            protocol = flow.get("protocol")
            base = OrderedDict([
                ("check", "flow"), ("flow", flow.get("id")), ("purpose", flow.get("purpose")),
                ("source", flow.get("src_host") or ", ".join(flow.get("src_addresses") or [])),
                ("source_zone", "/".join(_zones(flow.get("src_zone"))) or None),
                ("target", flow.get("dst_host") or ", ".join(flow.get("dst_addresses") or [])),
                ("address", None), ("protocol", protocol), ("port", None), ("expected", "open"),
                ("via", flow.get("via")), ("perimeter", list(flow.get("perimeter") or []))])
            if protocol not in ("tcp", "udp"):
                self.unprobeable(base, "IP protocol %s has no ports to probe" % protocol)
                continue
            if catalogue.has_trait(flow.get("id"), "inside_ipsec"):
                self.unprobeable(base, "carried inside IPsec: a probe in the clear proves nothing about the protected "
                                       "path")
                continue
            if not flow.get("dst_host"):
                self.unprobeable(base, "the destination is a network, not one host")
                continue
            singles, ranges = _port_items(flow.get("dst_ports"))
            if not singles:
                self.unprobeable(base, "only port ranges (%s): no listener to probe" % ", ".join(ranges))
                continue
            vantage, how, reason = self.vantage_for(flow, [self.kind(flow, protocol, p) for p in singles])
            if vantage is None:
                for port in singles:
                    self.skip(dict(base, port=port), reason)
                continue
            address = self.target_address(flow, vantage)
            base["address"] = address
            base["vantage_kind"] = how
            for port in singles:
                check = dict(base, port=port)
                kind = self.kind(flow, protocol, port)
                lenient = kind in LENIENT_KINDS
                check["lenient"] = lenient
                note = []
                if flow.get("rpc_dynamic"):
                    note.append("the dynamic RPC range %s behind the endpoint mapper is not probed"
                                % flow.get("rpc_dynamic_range"))
                if ranges:
                    note.append("port ranges %s are not probed" % ", ".join(ranges))
                check["note"] = "; ".join(note) or None
                target, why = self.build_target(vantage, check, protocol, port, kind, None if lenient else "open")
                if target is None:
                    self.skip(check, why, vantage=vantage)
                    continue
                self.add(vantage, check, target)
                if self.negatives and flow.get("perimeter"):
                    self.unchosen_checks(flow, vantage, how, check)

    # -- negatives ----------------------------------------------------------------------------------
    def allowed(self, source_address, address, protocol, port):
        """Whether a planned flow opens protocol/port from source_address to address."""
        src = _addr(source_address) if source_address else None
        dst = _addr(address)
        for flow in self.plan.get("flows") or []:
            if flow.get("protocol") != protocol:
                continue
            if not any(_net(a).version == dst.version and dst in _net(a) for a in flow.get("dst_addresses") or []):
                continue
            if src is not None and flow.get("src_addresses") and not any(
                    _net(a).version == src.version and src in _net(a) for a in flow["src_addresses"]):
                continue
            ports = list(flow.get("dst_ports") or [])
            if flow.get("rpc_dynamic"):
                ports.extend(flow.get("rpc_dynamic_ranges") or [flow.get("rpc_dynamic_range")])
            if port_in(port, ports):
                return True
        return False

    def unchosen_ports(self, flow, protocol, port):
        fdef = catalogue.FLOWS_BY_ID.get(flow.get("id"))
        if flow.get("via"):
            fdef = catalogue.CM_BY_ID.get(flow["via"]) or fdef
        if fdef is None:
            return []
        out = []
        for service in fdef.services:
            choice = service.dst_ports
            if service.protocol != protocol or not isinstance(choice, catalogue.Choice):
                continue
            if any(isinstance(k, bool) for k in choice.options):
                continue   # an on/off setting (legacy RADIUS ports), not an "X or Y"
            options = [list(v) for v in choice.options.values()]
            if not any(port in v for v in options):
                continue
            for ports in options:
                if port not in ports:
                    out.extend(p for p in ports if p not in out)
        return [(p, "unchosen", flow.get("id")) for p in out]

    def unchosen_checks(self, flow, vantage, how, check):
        source_address = self.vantage_address(vantage) if vantage != self.controller else None
        for port, why, flow_id in self.unchosen_ports(flow, check["protocol"], check["port"]):
            if source_address and self.allowed(source_address, check["address"], check["protocol"], port):
                continue
            neg = dict(check, check="unchosen", port=port, expected="blocked", lenient=False,
                       note="the other side of the flow's \"X or Y\" must not cross %s"
                       % ", ".join(flow.get("perimeter") or []))
            kind = "tcp" if check["protocol"] == "tcp" else UDP_PORT_KINDS.get(port, "udp")
            target, why_not = self.build_target(vantage, neg, check["protocol"], port, kind, "blocked")
            if target is not None and not self._duplicate(vantage, neg):
                self.add(vantage, neg, target)

    def zones_without_vantage(self):
        """Source zones of the plan's flows that need a zone vantage and have none (nor the controller)."""
        out = []
        for flow in self.plan.get("flows") or []:
            src = flow.get("src_host")
            if src and self.inv.runner(src, self.controller)[0]:
                continue
            for zone in _zones(flow.get("src_zone")):
                if zone not in self.vantages and zone not in self.controller_zones and zone not in out:
                    out.append(zone)
        return out

    def _duplicate(self, vantage, check):
        for other in (self.jobs.get(vantage) or {}).get("checks", []):
            if (other["address"], other["protocol"], other["port"], other["expected"]) == \
                    (check["address"], check["protocol"], check["port"], check["expected"]):
                return True
        return False

    def unplanned_checks(self):
        hosts = self.plan.get("hosts") or {}
        for device, entry in (self.plan.get("perimeter") or {}).items():
            owned = [str(z) for z in entry.get("owned_zones") or entry.get("zones") or []]
            sources = [(z, self.vantages[z], "zone vantage") for z in owned if z in self.vantages]
            sources += [(z, self.controller, "controller") for z in owned
                        if z in self.controller_zones and z not in self.vantages]
            for zone, vantage, how in sources:
                source_address = self.vantage_address(vantage)
                for name, host in hosts.items():
                    if host.get("platform") == "none":
                        continue
                    host_zones = _zones(host.get("zone"))
                    if not host_zones or zone in host_zones or not any(z in owned for z in host_zones):
                        continue
                    addresses = [str(_addr(a)) for a in host.get("addresses") or []]
                    if not addresses:
                        continue
                    address = addresses[0]
                    try:
                        expected = listener_table.listeners_for(self.plan, host=name)
                    except NapError:
                        expected = []
                    ports = [(e["protocol"], e["port"]) for e in expected] + self.unplanned
                    for protocol, port in ports:
                        kind = "tcp" if protocol == "tcp" else UDP_PORT_KINDS.get(port, "udp")
                        if kind in ("radius", "udp", "kerberos"):
                            continue   # silence proves nothing: an NPS ignores unknown clients
                        if source_address and self.allowed(source_address, address, protocol, port):
                            continue
                        if source_address is None and self.allowed(None, address, protocol, port):
                            continue
                        check = OrderedDict([
                            ("check", "unplanned"), ("flow", "UNPLANNED"),
                            ("purpose", "no flow of the plan opens this port from zone %s" % zone),
                            ("source", "zone %s" % zone), ("source_zone", zone), ("target", name),
                            ("address", address), ("protocol", protocol), ("port", port), ("expected", "blocked"),
                            ("via", None), ("perimeter", [device]), ("vantage_kind", how), ("lenient", False),
                            ("note", "must not cross %s" % device)])
                        if self._duplicate(vantage, check):
                            continue
                        target, why = self.build_target(vantage, check, protocol, port, kind, "blocked")
                        if target is not None:
                            self.add(vantage, check, target)

    def build(self):
        self.flow_checks()
        if self.negatives:
            self.unplanned_checks()
        return {"jobs": list(self.jobs.values()), "not_probed": self.not_probed,
                "zones_without_vantage": self.zones_without_vantage()}


def with_secret(targets, secret):
    """The targets with ``secret`` set on the RADIUS ones (the probe module wants it per target)."""
    out = []
    for target in targets or []:
        target = dict(target)
        if target.get("kind") == "radius":
            if not secret:
                raise NapError("%s is a RADIUS probe and no shared secret was given (nap_radius_secret)"
                               % target.get("name"))
            target["secret"] = secret
        out.append(target)
    return out


def probe_jobs(plan, inventory, vantages=None, controller_zones=None, controller="localhost", radius_secret=None,
               dns_name=".", negatives=True, unplanned_ports=DEFAULT_UNPLANNED, kerberos_realm=None):
    """The probes of a verify run: {"jobs": [{vantage, runner, targets, checks}], "not_probed": [checks],
    "zones_without_vantage": [zones]}."""
    return ProbePlanner(plan, inventory, vantages, controller_zones, controller, radius_secret, dns_name, negatives,
                        unplanned_ports, kerberos_realm).build()


# ---------------------------------------------------------------------------------------------------------
# Listeners
# ---------------------------------------------------------------------------------------------------------
def listener_method(name, plan, inventory):
    inv = Inventory(plan, inventory)
    method = str(inv.get(name).get("listener_method") or "auto")
    if method not in LISTENER_METHODS:
        raise NapError("%s: nap_listener_method is %r; expected one of %s" % (name, method, ", ".join(LISTENER_METHODS)))
    if method != "auto":
        return method
    platform = inv.platform(name)
    if platform == "none":
        return "none"
    if inv.capable(name) or platform == "linux":
        return "listen_ports_facts"
    version = str(inv.get(name).get("windows_version") or "").lower().replace(" ", "")
    if version.startswith("2008") or version.startswith("2003"):
        return "netstat"
    return "win_listen_ports_facts"


def listener_jobs(plan, inventory, settings=None):
    """Per plan host with expected listeners: {host, method, expected}."""
    plan = plandoc.load(plan)
    out = []
    for name in (plan.get("hosts") or {}):
        expected = listener_table.listeners_for(plan, host=name, settings=(settings or {}).get(name))
        if not expected:
            continue
        out.append({"host": name, "method": listener_method(name, plan, inventory),
                    "expected": [{"protocol": e["protocol"], "port": e["port"], "service": e["service"],
                                  "role": e["role"]} for e in expected]})
    return out


def observed_listeners(results):
    """{host: {"tcp": [...], "udp": [...]}, or a string saying why not} from registered loop results of
    listen_ports_facts / win_listen_ports_facts (ansible_facts.tcp_listen, udp_listen) and of a
    ``netstat -ano`` command (stdout), each loop item being a listener job ({host, method, ...})."""
    out = {}
    for result in results or []:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        job = result.get("item") or {}
        host = job.get("host")
        if not host:
            continue
        if result.get("unreachable"):
            out[host] = "%s was unreachable: %s" % (host, result.get("msg", ""))
            continue
        if result.get("failed"):
            out[host] = "reading the listeners of %s (%s) failed: %s" % (host, job.get("method"), result.get("msg", ""))
            continue
        if job.get("method") == "netstat":
            facts = parse_netstat_ano(result.get("stdout", ""))
        else:
            facts = result.get("ansible_facts") or {}
        out[host] = {"tcp": list(facts.get("tcp_listen") or []), "udp": list(facts.get("udp_listen") or [])}
    return out


def _reachable(address):
    try:
        addr = _addr(str(address).strip("[]"))
    except ValueError:
        return True   # "*" and friends
    return not addr.is_loopback


def listener_checks(jobs, observed, when=None):
    """Compare expected listeners with observed ones ({host: {"tcp": [...], "udp": [...]}} of dicts with
    protocol, port and address, as listen_ports_facts, win_listen_ports_facts and nap_netstat_listeners give);
    a host missing from ``observed`` (or mapped to a string, the reason) is not checked."""
    out = []
    for job in jobs:
        host = job["host"]
        seen = observed.get(host) if observed else None
        for item in job["expected"]:
            entry = OrderedDict([
                ("check", "listener"), ("flow", "LISTENER"), ("purpose", "%s listens (%s)" % (item["service"],
                                                                                              item["role"])),
                ("source", host), ("source_zone", None), ("vantage", host), ("vantage_kind", job["method"]),
                ("target", host), ("address", None), ("protocol", item["protocol"]), ("port", item["port"]),
                ("probe", job["method"]), ("expected", "listening"), ("time", when)])
            if job["method"] == "none":
                entry.update(verdict="unprobeable", observed=None, detail="nap_listener_method is none")
            elif not isinstance(seen, dict):
                entry.update(verdict="not probed", observed=None,
                             detail=str(seen) if seen else "the listeners of %s could not be read" % host)
            else:
                found = [s for s in (seen.get(item["protocol"]) or [])
                         if int(s.get("port", -1)) == int(item["port"]) and _reachable(s.get("address", ""))]
                if found:
                    entry.update(verdict="ok", observed="listening", address=str(found[0].get("address")),
                                 detail="%s/%d bound on %s%s" % (item["protocol"], item["port"], ", ".join(
                                     sorted(set(str(s.get("address")) for s in found))),
                                     (" by %s" % found[0]["name"]) if found[0].get("name") else ""))
                else:
                    detail = "nothing listens on %s/%d (other than loopback)" % (item["protocol"], item["port"])
                    entry.update(verdict="broken", observed="missing", detail=detail)
            out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------
def judge(check, result):
    state = result.get("state")
    expected = check["expected"]
    if state == "error":
        return "broken"
    if expected == "open":
        if state == "open":
            return "ok"
        if check.get("lenient") and state == "open|filtered":
            return "unconfirmed"
        return "broken"
    if expected == "blocked":
        return "ok" if state in ("closed", "filtered", "open|filtered") else "broken"
    return "ok" if state == expected else "broken"


def _by_vantage(results):
    """{vantage: registered probe result} from a mapping vantage -> result (the probes ran as a task on each
    vantage), or from registered loop results whose items are jobs ({vantage, ...})."""
    if isinstance(results, dict):
        return dict((k, v if isinstance(v, dict) else {}) for k, v in results.items())
    by_vantage = {}
    for item in results or []:
        if isinstance(item, dict):
            job = item.get("item") or {}
            by_vantage[job.get("vantage")] = item
    return by_vantage


def probe_entries(jobs, results, when=None):
    """Join each job's checks with the probe results of its vantage (``results``: see _by_vantage).  Checks of a
    vantage that was unreachable, or whose probe task did not run, are not probed (and say why)."""
    by_vantage = _by_vantage(results)
    out = []
    for job in jobs.get("jobs", []) if isinstance(jobs, dict) else jobs:
        reg = by_vantage.get(job["vantage"]) or {}
        got = reg.get("results") or []
        for i, check in enumerate(job["checks"]):
            entry = OrderedDict(check)
            entry["time"] = when
            i = check.get("probe_index", i)
            if reg.get("unreachable") or not reg or reg.get("skipped"):
                entry["observed"] = None
                entry["verdict"] = "not probed"
                if reg.get("unreachable"):
                    reason = "the vantage %s was unreachable: %s" % (job["vantage"], reg.get("msg") or "no connection")
                elif reg.get("skipped"):
                    reason = "the probe task of vantage %s was skipped: %s" % (job["vantage"], reg.get("skip_reason", ""))
                else:
                    reason = "the probe task did not run on vantage %s (did it fail before?)" % job["vantage"]
                entry["detail"] = reason
                entry["time_ms"] = None
            elif i < len(got) and isinstance(got[i], dict) and got[i].get("state"):
                result = got[i]
                entry["observed"] = result["state"]
                entry["verdict"] = judge(check, result)
                entry["detail"] = result.get("detail")
                entry["time_ms"] = result.get("time_ms")
                if entry["verdict"] == "unconfirmed":
                    entry["detail"] = "%s (plain UDP: silence cannot tell a service from a drop)" % result.get("detail")
            else:
                entry["observed"] = "error"
                entry["verdict"] = "broken"
                reason = reg.get("msg") or ("the vantage was unreachable" if reg.get("unreachable") else
                                            "the probe did not run")
                entry["detail"] = "no result from vantage %s: %s" % (job["vantage"], reason)
                entry["time_ms"] = None
            out.append(entry)
    return out


def _line(entry):
    port = "%s/%s" % (entry.get("protocol"), entry.get("port")) if entry.get("port") is not None \
        else str(entry.get("protocol"))
    where = "%s -> %s" % (entry.get("source"), entry.get("target"))
    if entry.get("address") and entry.get("address") != entry.get("target"):
        where += " (%s)" % entry["address"]
    vantage = (" from %s" % entry["vantage"]) if entry.get("vantage") and entry.get("check") != "listener" else ""
    what = entry["flow"] if entry.get("check") == "flow" else "%s %s" % (entry["flow"], entry.get("check"))
    if entry.get("check") == "listener":
        return "LISTENER %s %s: expected listening, observed %s" % (entry["target"], port, entry.get("observed"))
    return "%s %s %s%s: expected %s, observed %s (%s)" % (
        what, where, port, vantage, entry["expected"], entry.get("observed"), entry.get("detail"))


def _unprobed_line(entry):
    port = "%s/%s" % (entry.get("protocol"), entry.get("port")) if entry.get("port") is not None \
        else str(entry.get("protocol"))
    what = entry["flow"] if entry.get("check") in ("flow", None) else "%s %s" % (entry["flow"], entry.get("check"))
    return "%s %s -> %s %s: %s" % (what, entry.get("source"), entry.get("target"), port, entry.get("detail"))


def report(jobs, results, listeners=None, when=None, unprobed="fail"):
    """{"entries", "summary", "broken", "unprobed", "ok", "markdown", "json", "html"} of a verify run.

    ``unprobed`` (fail or warn): whether checks that were not probed (no vantage, no secret, an unreachable
    vantage) make the run not ok; unprobeable checks (no probe can make them) never do."""
    if unprobed not in UNPROBED_POLICIES:
        raise NapError("nap_verify_unprobed is %r; expected fail or warn" % (unprobed,))
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import verify_html

    entries = probe_entries(jobs, results, when)
    for entry in (jobs.get("not_probed", []) if isinstance(jobs, dict) else []):
        entry = OrderedDict(entry)
        entry["time"] = when
        entries.append(entry)
    entries.extend(listeners or [])
    counts = OrderedDict((v, 0) for v in VERDICTS)
    for entry in entries:
        counts[entry["verdict"]] = counts.get(entry["verdict"], 0) + 1
    broken = [_line(e) for e in entries if e["verdict"] == "broken"]
    not_probed = [_unprobed_line(e) for e in entries if e["verdict"] == "not probed"]
    flows = sorted(set(e["flow"] for e in entries if e["verdict"] == "broken" and e.get("check") == "flow"))
    unprobed_flows = sorted(set(e["flow"] for e in entries if e["verdict"] == "not probed"))
    ok = not broken and (unprobed == "warn" or not not_probed)
    summary = OrderedDict([("time", when), ("total", len(entries)), ("verdicts", counts),
                           ("broken_flows", flows), ("unprobed_flows", unprobed_flows),
                           ("zones_without_vantage", list((jobs.get("zones_without_vantage") if isinstance(jobs, dict)
                                                           else None) or [])),
                           ("probed_share", _probed_share(counts)), ("unprobed_policy", unprobed), ("ok", ok)])
    doc = OrderedDict([("format_version", 1), ("summary", summary), ("entries", entries)])
    return {"entries": entries, "summary": summary, "broken": broken, "unprobed": not_probed, "ok": ok,
            "markdown": markdown(summary, entries), "json": json.dumps(doc, indent=1, default=str) + "\n",
            "html": verify_html.render(summary, entries)}


def _probed_share(counts):
    """The share of the checks that could be made that were made (ok, broken, unconfirmed), 0-1."""
    probeable = sum(n for v, n in counts.items() if v != "unprobeable")
    made = sum(counts.get(v, 0) for v in ("ok", "broken", "unconfirmed"))
    return round(float(made) / probeable, 4) if probeable else 1.0


def _cell(value):
    if value is None:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(summary, entries):
    counts = summary["verdicts"]
    lines = ["# configmgr.nap verify report", "",
             "Run at %s: %d checks, %s." % (summary.get("time") or "-", summary["total"],
                                            ", ".join("%d %s" % (n, v) for v, n in counts.items())), ""]
    broken = [e for e in entries if e["verdict"] == "broken"]
    unprobed = [e for e in entries if e["verdict"] == "not probed"]
    if summary["ok"] and not unprobed:
        lines += ["**Everything as planned.**", ""]
    if broken:
        lines += ["**Broken:** %s" % (", ".join(summary["broken_flows"]) or "see below"), ""]
        for entry in broken:
            lines.append("- " + _line(entry))
        lines.append("")
    if unprobed:
        lines += ["**Not probed** (%s: nap_verify_unprobed is %s): %s" % (
            "fails the run" if summary.get("unprobed_policy", "fail") == "fail" else "a warning",
            summary.get("unprobed_policy", "fail"), ", ".join(summary.get("unprobed_flows") or [])), ""]
        for entry in unprobed:
            lines.append("- " + _unprobed_line(entry))
        lines.append("")
    if summary.get("zones_without_vantage"):
        lines += ["**Zones without a vantage** (nap_probe_vantage): %s" % ", ".join(summary["zones_without_vantage"]),
                  ""]
    sections = (("flow", "Planned flows (expect open)"), ("unchosen", "Unchosen side of \"X or Y\" (expect blocked)"),
                ("unplanned", "Unplanned ports across perimeters (expect blocked)"),
                ("listener", "Listeners"))
    for check, title in sections:
        rows = [e for e in entries if e.get("check") == check]
        if not rows:
            continue
        lines += ["## " + title, "",
                  "| verdict | flow | source | vantage | target | address | port | probe | expected | observed | "
                  "ms | detail |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        order = dict((v, i) for i, v in enumerate(("broken", "unconfirmed", "not probed", "ok", "unprobeable")))
        for e in sorted(rows, key=lambda r: order.get(r["verdict"], 9)):
            port = "%s/%s" % (e.get("protocol"), e.get("port")) if e.get("port") is not None else e.get("protocol")
            ms = ("%.1f" % e["time_ms"]) if isinstance(e.get("time_ms"), (int, float)) else ""
            detail = e.get("detail") or ""
            if e.get("note"):
                detail = (detail + "; " if detail else "") + e["note"]
            lines.append("| %s |" % " | ".join(_cell(x) for x in (
                e["verdict"], e.get("flow"), e.get("source"), e.get("vantage"), e.get("target"), e.get("address"),
                port, e.get("probe"), e.get("expected"), e.get("observed"), ms, detail)))
        lines.append("")
    return "\n".join(lines)
