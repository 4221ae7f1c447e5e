# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endpoints and zones of a plan: a host or a group of networks in one zone, the zones of nap_zones, and the
graph of zones joined by perimeter devices (which devices a flow crosses)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import deque

from ansible_collections.configmgr.nap.plugins.module_utils.nap import names
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, parse_network


class Endpoint:
    __slots__ = ("host", "addresses", "zones", "role")

    def __init__(self, host, addresses, zones, role):
        self.host = host
        self.addresses = tuple(addresses)
        self.zones = frozenset(zones)
        self.role = role


def span(net):
    """(version, first address, last address) of an ip_network, the addresses as integers: what subnet_of compares."""
    return net.version, int(net.network_address), int(net.broadcast_address)


class Zones:
    def __init__(self, zones_var):
        self.nets = []          # (network, zone)
        self.spans = []         # (version, first, last, prefix length, zone, network), in the order of nets
        self.names = []
        if zones_var in (None, {}, []):
            return
        if not isinstance(zones_var, dict):
            raise NapError("nap_zones is %r; expected a mapping of zone name -> list of CIDRs" % (zones_var,))
        seen = {}
        for name, cidrs in zones_var.items():
            names.check("zone", name, "nap_zones: zone name")
            if isinstance(cidrs, str):
                cidrs = [cidrs]
            if not isinstance(cidrs, (list, tuple)) or not cidrs:
                raise NapError("nap_zones[%s] is %r; expected a non-empty list of CIDRs" % (name, cidrs))
            self.names.append(str(name))
            for cidr in cidrs:
                net = parse_network(cidr, "nap_zones[%s]" % name)
                if net in seen and seen[net] != name:
                    raise NapError("nap_zones: %s is in both zone %s and zone %s, so the perimeter decision for "
                                   "its addresses is ambiguous; give each CIDR to one zone" % (net, seen[net], name))
                seen[net] = str(name)
                self.nets.append((net, str(name)))
                self.spans.append(span(net) + (net.prefixlen, str(name), net))

    @property
    def defined(self):
        return bool(self.nets)

    def zone_of(self, net, where):
        """Zone of a network or address: the most specific zone CIDR that contains it."""
        return self.zone_of_span(span(net), where, net)

    def zone_of_span(self, net_span, where, net):
        """zone_of() of a network given as its span(); ``net``: the network (or its text) for the message.

        A plan asks for every host's zone: integer comparisons in place of ipaddress's subnet_of, over the zone CIDRs
        in the order nap_zones lists them (the first one the network spans raises; the first most specific one wins).
        """
        version, first, last = net_span
        best = None
        for zversion, zfirst, zlast, zprefix, zone, znet in self.spans:
            if zversion != version:
                continue
            if first <= zfirst and zlast <= last and (zfirst != first or zlast != last):
                raise NapError("%s: %s spans zone %s (%s) and more, so the perimeter decision is ambiguous; split "
                               "it along the zones in nap_zones" % (where, net, zone, znet))
            if zfirst <= first and last <= zlast and (best is None or zprefix > best[0]):
                best = (zprefix, zone)
        return best[1] if best else None


class ZoneGraph:
    """Zones joined by perimeter devices; a flow crosses the devices on its shortest paths."""

    def __init__(self, devices):
        self.devices = devices          # name -> set of zones
        self.by_zone = {}
        for dev, zones in devices.items():
            for zone in zones:
                self.by_zone.setdefault(zone, set()).add(dev)
        self._cache = {}

    def _distances(self, start):
        key = frozenset(start)
        if key in self._cache:
            return self._cache[key]
        dist = dict((z, 0) for z in start)
        queue = deque(start)
        while queue:
            zone = queue.popleft()
            for dev in self.by_zone.get(zone, ()):
                for nxt in self.devices[dev]:
                    if nxt not in dist:
                        dist[nxt] = dist[zone] + 1
                        queue.append(nxt)
        self._cache[key] = dist
        return dist

    def component(self, zones):
        """Every zone reachable from these zones through perimeter devices (the device's own included)."""
        return set(self._distances(frozenset(zones)))

    def crossed(self, src_zones, dst_zones):
        """Devices on any shortest path between the two zone sets ([] when they share a zone).

        Returns None when no path joins them.
        """
        if not src_zones or not dst_zones:
            return []
        if src_zones & dst_zones:
            return []
        dsrc = self._distances(src_zones)
        ddst = self._distances(dst_zones)
        reach = [dsrc[z] for z in dst_zones if z in dsrc]
        if not reach:
            return None
        best = min(reach)
        out = []
        for dev in sorted(self.devices):
            zones = self.devices[dev]
            for z1 in zones:
                for z2 in zones:
                    if z1 != z2 and z1 in dsrc and z2 in ddst and dsrc[z1] + 1 + ddst[z2] == best:
                        out.append(dev)
                        break
                else:
                    continue
                break
        return out


# ---------------------------------------------------------------------------
# Planner
# ---------------------------------------------------------------------------
