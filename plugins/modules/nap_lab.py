#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nap_lab
short_description: Build or remove a NAP site in Linux network namespaces (test lab)
version_added: 0.1.0
description:
  - Builds, on the machine it runs on (as root), a NAP site made of Linux network namespaces, from a lab
    definition (zones, routers, hosts), with one namespace per host and router, one switch namespace per zone
    (a bridge that the zone's hosts and routers are plugged into with veth pairs), addresses from the
    benchmarking range 198.18.0.0/15, and routes between the lab zones through the routers.
  - The machine's own network namespace is never changed. No veth reaches it and no namespace has a route out
    of the lab. IP forwarding is enabled inside router namespaces only.
  - Writes, under O(lab_dir), an interpreter wrapper per namespace (C(bin/<host>-python), which runs
    C(ip netns exec <namespace> <python>) with absolute paths), a tiny TCP listener started in each host that
    has C(listen) ports (pid files under C(run/)), and an Ansible inventory of the lab (C(inventory.yml)) in
    which every lab host uses C(ansible_connection=local) and its wrapper as C(ansible_python_interpreter).
  - Creating twice is a no-op. O(state=absent) removes every namespace (with its veths and bridges) and every
    process the lab made, also after a create that stopped half way, using the state file it writes first.
  - O(prefix) and O(base_subnet) let two labs (for example parallel Molecule scenarios) run side by side.
author:
  - configmgr.nap maintainers (@configmgr-nap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  state:
    description:
      - C(present) builds the lab (missing parts only); C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  definition:
    description:
      - Path of the lab definition file (YAML, see C(examples/lab/lab.yml)).
      - Mutually exclusive with O(lab).
    type: path
  lab:
    description:
      - The lab definition as a mapping, instead of O(definition).
    type: dict
  prefix:
    description:
      - Prefix of every namespace name (C(<prefix>-<host>), C(<prefix>-sw-<zone>)).
      - Letters, digits and C(-), at most 16 characters.
    type: str
    default: nap
  base_subnet:
    description:
      - The subnet the lab's zones are cut from (zone C(i) is the C(i)-th subnet of the zone size). Must lie in
        198.18.0.0/15. Overrides the definition's C(base_subnet).
    type: str
  lab_dir:
    description:
      - Directory for the wrappers, pid files, state file and inventory. Defaults to C(build/lab/<prefix>)
        under the current directory.
    type: path
  python:
    description:
      - Absolute path of the Python interpreter the wrappers run. Defaults to the interpreter running this
        module.
    type: path
  listeners:
    description:
      - Start the TCP listeners of the hosts that have C(listen) ports.
    type: bool
    default: true
notes:
  - Needs root, C(ip) (iproute2) and a kernel with network namespaces, veth and bridge support.
  - "Runs on the controller (C(hosts: localhost)); it changes nothing outside the namespaces it creates."
attributes:
  check_mode:
    support: full
    details: Reports whether the lab would be created or removed.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Build the lab
  configmgr.nap.nap_lab:
    definition: "{{ playbook_dir }}/../examples/lab/lab.yml"
    lab_dir: "{{ playbook_dir }}/../build/lab/nap"
  become: true

- name: A second lab beside the first
  configmgr.nap.nap_lab:
    definition: examples/lab/lab.yml
    prefix: nap2
    base_subnet: 198.19.16.0/20

- name: Remove the lab
  configmgr.nap.nap_lab:
    definition: examples/lab/lab.yml
    state: absent
"""

RETURN = r"""
namespaces:
  description: The lab's namespaces.
  returned: always
  type: list
  elements: str
hosts:
  description: Per lab host (and router) its namespace, addresses, zone(s) and interpreter wrapper.
  returned: always
  type: dict
inventory:
  description: Path of the generated inventory of the lab.
  returned: always
  type: str
lab_dir:
  description: The lab directory.
  returned: always
  type: str
zones:
  description: Zone name -> CIDR of the lab.
  returned: always
  type: dict
actions:
  description: What the run did (or would do in check mode), one line each.
  returned: always
  type: list
  elements: str
"""

import ipaddress
import json
import os
import re
import signal
import sys
import time
from collections import OrderedDict, deque

from ansible.module_utils.basic import AnsibleModule

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,11}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,15}$")

LISTENER = r'''#!/usr/bin/env python3
# configmgr.nap lab listener: accepts TCP connections on the given ports, answers one line, closes.
import os, selectors, socket, sys
pidfile, name, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
# daemonize (the lab starts it with run_command, which waits for stdout and stderr to close)
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
log = os.open(pidfile[:-4] + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.dup2(log, 1)
os.dup2(log, 2)
sel = selectors.DefaultSelector()
for port in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, port)
tmp = pidfile + ".tmp"
with open(tmp, "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(tmp, pidfile)
while True:
    for key, _ in sel.select():
        try:
            conn, _ = key.fileobj.accept()
            conn.sendall(("nap-lab %s %d\n" % (name, key.data)).encode())
            conn.close()
        except OSError:
            pass
'''


class LabError(Exception):
    pass


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


def _iface(zone):
    return ("e-" + zone)[:15]


def _port(node):
    return ("p-" + node)[:15]


class Topology:
    """Namespaces, links, addresses and routes of a lab, computed from its definition."""

    def __init__(self, lab, prefix="nap", base_subnet=None):
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
                out.append((node, zone, self.switch(zone), _port(node), self.netns(node),
                            _iface(zone) if node in self.routers else "eth0"))
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
            hvars["ansible_python_interpreter"] = os.path.join(lab_dir, "bin", "%s-python" % name)
            hvars["nap_lab_netns"] = self.netns(name)
            addrs = [str(self.address(name, z)) for z in spec["zones"]]
            hvars["nap_address"] = addrs if name in self.routers else addrs[0]
            if name in self.routers:
                hvars["nap_perimeter_platform"] = spec.get("platform", "nftables")
                hvars["nap_perimeter_zones"] = [str(z) for z in spec.get("perimeter_zones") or spec["zones"]]
            else:
                hvars["nap_platform"] = spec.get("platform", "windows")
            if spec.get("listen"):
                hvars["nap_lab_listen"] = [int(p) for p in spec["listen"]]
            for key, value in (spec.get("vars") or {}).items():
                hvars[key] = value
            hosts[name] = hvars
            for group in spec.get("groups") or (["nap_perimeter"] if name in self.routers else []):
                groups.setdefault(group, OrderedDict())[name] = None
        allvars = OrderedDict()
        allvars["nap_lab_prefix"] = self.prefix
        allvars["nap_lab_dir"] = lab_dir
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


# ---------------------------------------------------------------------------
# Host side (ip netns ...)
# ---------------------------------------------------------------------------
class Lab:
    def __init__(self, module, topo, lab_dir, python):
        self.module = module
        self.topo = topo
        self.lab_dir = lab_dir
        self.python = python
        self.check = module.check_mode
        self.actions = []
        self.ip = module.get_bin_path("ip", required=True)

    def run(self, args, check_rc=True):
        rc, out, err = self.module.run_command([self.ip] + args)
        if check_rc and rc != 0:
            raise LabError("ip %s failed: %s" % (" ".join(args), (err or out).strip()))
        return rc, out, err

    def do(self, text, args):
        self.actions.append(text)
        if not self.check:
            self.run(args)

    def existing(self):
        rc, out, err = self.run(["netns", "list"], check_rc=False)
        return set(line.split()[0] for line in out.splitlines() if line.strip())

    def links_in(self, ns):
        rc, out, err = self.run(["-n", ns, "-j", "link", "show"], check_rc=False)
        try:
            return dict((item["ifname"], item) for item in json.loads(out or "[]"))
        except ValueError:
            return {}

    def addrs_in(self, ns, dev):
        rc, out, err = self.run(["-n", ns, "-j", "addr", "show", "dev", dev], check_rc=False)
        try:
            items = json.loads(out or "[]")
        except ValueError:
            return set()
        return set("%s/%s" % (a["local"], a["prefixlen"]) for i in items for a in i.get("addr_info", [])
                   if a.get("family") == "inet")

    def routes_in(self, ns):
        rc, out, err = self.run(["-n", ns, "-j", "route", "show"], check_rc=False)
        try:
            return set((r.get("dst"), r.get("gateway")) for r in json.loads(out or "[]"))
        except ValueError:
            return set()

    def sysctl(self, ns, key, value):
        rc, out, err = self.module.run_command([self.ip, "netns", "exec", ns, "sysctl", "-n", key])
        if rc == 0 and out.strip() == str(value):
            return
        self.actions.append("%s: sysctl %s=%s" % (ns, key, value))
        if not self.check:
            rc, out, err = self.module.run_command([self.ip, "netns", "exec", ns, "sysctl", "-qw",
                                                    "%s=%s" % (key, value)])
            if rc != 0:
                raise LabError("sysctl %s in %s failed: %s" % (key, ns, err.strip()))

    # -- files ----------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.lab_dir, *parts)

    def write(self, path, content, mode=0o644):
        try:
            with open(path) as handle:
                if handle.read() == content:
                    if (os.stat(path).st_mode & 0o777) != mode and not self.check:
                        os.chmod(path, mode)
                    return False
        except (IOError, OSError):
            pass
        self.actions.append("write %s" % path)
        if not self.check:
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                os.makedirs(parent)
            tmp = path + ".tmp"
            with open(tmp, "w") as handle:
                handle.write(content)
            os.chmod(tmp, mode)
            os.rename(tmp, path)
        return True

    def state_file(self):
        return self.path("state.json")

    def recorded(self):
        try:
            with open(self.state_file()) as handle:
                return json.load(handle).get("namespaces", [])
        except (IOError, OSError, ValueError):
            return []

    # -- present ----------------------------------------------------------
    def create(self):
        topo = self.topo
        wanted = topo.namespaces()
        record = sorted(set(self.recorded()) | set(wanted))
        # Record what we are about to make before making it, so that absent finds a half-built lab.
        self.write(self.state_file(), json.dumps({"prefix": topo.prefix, "base_subnet": str(topo.base),
                                                  "namespaces": record}, indent=1) + "\n")
        have = self.existing()
        for ns in wanted:
            if ns not in have:
                self.do("add netns %s" % ns, ["netns", "add", ns])
        if self.check and any(ns not in have for ns in wanted):
            self.actions.append("(and the links, addresses, routes and listeners of the new namespaces)")
            return
        for ns in wanted:
            if "UP" not in self.links_in(ns).get("lo", {}).get("flags", []):
                self.do("%s: lo up" % ns, ["-n", ns, "link", "set", "lo", "up"])
        for zone in topo.zones:
            sw = topo.switch(zone)
            links = self.links_in(sw)
            if "br0" not in links:
                self.do("%s: bridge br0" % sw, ["-n", sw, "link", "add", "br0", "type", "bridge"])
                links = self.links_in(sw)
            if "UP" not in links.get("br0", {}).get("flags", []):
                self.do("%s: br0 up" % sw, ["-n", sw, "link", "set", "br0", "up"])
            self.sysctl(sw, "net.ipv4.ip_forward", 0)
        for node, zone, sw, port, ns, ifname in topo.links():
            sw_links = self.links_in(sw)
            ns_links = self.links_in(ns)
            if port not in sw_links or ifname not in ns_links:
                if port in sw_links:
                    self.do("%s: delete stale %s" % (sw, port), ["-n", sw, "link", "del", port])
                if ifname in ns_links:
                    self.do("%s: delete stale %s" % (ns, ifname), ["-n", ns, "link", "del", ifname])
                self.do("veth %s:%s <-> %s:%s" % (sw, port, ns, ifname),
                        ["-n", sw, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns])
                sw_links = self.links_in(sw)
                ns_links = self.links_in(ns)
            if sw_links.get(port, {}).get("master") != "br0":
                self.do("%s: %s master br0" % (sw, port), ["-n", sw, "link", "set", port, "master", "br0"])
            if "UP" not in sw_links.get(port, {}).get("flags", []):
                self.do("%s: %s up" % (sw, port), ["-n", sw, "link", "set", port, "up"])
            cidr = "%s/%d" % (topo.address(node, zone), topo.zones[zone].prefixlen)
            if cidr not in self.addrs_in(ns, ifname):
                self.do("%s: %s %s" % (ns, ifname, cidr), ["-n", ns, "addr", "add", cidr, "dev", ifname])
            if "UP" not in ns_links.get(ifname, {}).get("flags", []):
                self.do("%s: %s up" % (ns, ifname), ["-n", ns, "link", "set", ifname, "up"])
        for node in topo.nodes:
            ns = topo.netns(node)
            self.sysctl(ns, "net.ipv4.ip_forward", 1 if node in topo.routers else 0)
            have_routes = self.routes_in(ns)
            for dst, gw in topo.routes(node):
                if (dst, gw) not in have_routes:
                    self.do("%s: route %s via %s" % (ns, dst, gw), ["-n", ns, "route", "replace", dst, "via", gw])
            self.write(self.path("bin", "%s-python" % node),
                       "#!/bin/sh\n# configmgr.nap lab: run Python inside network namespace %s\n"
                       "exec %s netns exec %s %s \"$@\"\n" % (ns, self.ip, ns, self.python), 0o755)
        self.write(self.path("bin", "listener.py"), LISTENER, 0o755)
        if self.module.params["listeners"]:
            for node, spec in topo.hosts.items():
                if spec.get("listen"):
                    self.start_listener(node, [int(p) for p in spec["listen"]])
        inv = topo.inventory(self.lab_dir)
        self.write(self.path("inventory.yml"), "# Generated by configmgr.nap.nap_lab; removed by state=absent.\n"
                   + yaml.safe_dump(json.loads(json.dumps(inv)), default_flow_style=False, sort_keys=False))

    def pidfile(self, node):
        return self.path("run", "%s.pid" % node)

    def running(self, node, ports=None):
        """pid of the node's listener when it runs (on exactly ``ports`` when given), else None."""
        try:
            with open(self.pidfile(node)) as handle:
                pid = int(handle.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmd = [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
        except (IOError, OSError, ValueError):
            return None
        for i, part in enumerate(cmd):
            if part.endswith("listener.py"):
                if ports is not None and cmd[i + 3:] != [str(p) for p in ports]:
                    return None
                return pid
        return None

    def start_listener(self, node, ports):
        if self.running(node, ports):
            return
        old = self.running(node)
        ns = self.topo.netns(node)
        if old:
            self.actions.append("%s: stop listener %d (other ports)" % (ns, old))
            if not self.check:
                self._kill(old)
        self.actions.append("%s: listener on TCP %s" % (ns, ", ".join(map(str, ports))))
        if self.check:
            return
        run = self.path("run")
        if not os.path.isdir(run):
            os.makedirs(run)
        pidfile = self.pidfile(node)
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        rc, out, err = self.module.run_command([self.ip, "netns", "exec", ns, self.python,
                                                self.path("bin", "listener.py"), pidfile, node]
                                               + [str(p) for p in ports])
        if rc != 0:
            raise LabError("the listener in %s did not start: %s" % (ns, (err or out).strip()))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.running(node):
                return
            time.sleep(0.05)
        raise LabError("the listener in %s did not start (see %s)" % (ns, self.path("run", "%s.log" % node)))

    # -- absent -----------------------------------------------------------
    def destroy(self):
        topo = self.topo
        targets = list(topo.namespaces())
        targets += [ns for ns in self.recorded() if ns not in targets]
        have = self.existing()
        for node in topo.nodes:
            pid = self.running(node)
            if pid:
                self.actions.append("stop listener %s (pid %d)" % (node, pid))
                if not self.check:
                    self._kill(pid)
        for ns in targets:
            if ns not in have:
                continue
            rc, out, err = self.run(["netns", "pids", ns], check_rc=False)
            for pid in [int(p) for p in out.split() if p.isdigit()]:
                self.actions.append("stop process %d in %s" % (pid, ns))
                if not self.check:
                    self._kill(pid)
            self.do("delete netns %s" % ns, ["netns", "del", ns])
        for rel in [os.path.join("bin", "%s-python" % n) for n in topo.nodes] + \
                [os.path.join("run", "%s.%s" % (n, ext)) for n in topo.nodes for ext in ("pid", "log")] + \
                [os.path.join("bin", "listener.py"), "inventory.yml", "state.json"]:
            path = self.path(rel)
            if os.path.lexists(path):
                self.actions.append("remove %s" % path)
                if not self.check:
                    os.unlink(path)
        for rel in ("bin", "run", ""):
            path = self.path(rel) if rel else self.lab_dir
            if os.path.isdir(path) and not os.listdir(path) and not self.check:
                os.rmdir(path)

    @staticmethod
    def _kill(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return
        for _attempt in range(40):
            try:
                os.kill(pid, 0)
            except OSError:
                return
            try:
                os.waitpid(pid, os.WNOHANG)
            except OSError:
                pass
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            definition=dict(type="path"),
            lab=dict(type="dict"),
            prefix=dict(type="str", default="nap"),
            base_subnet=dict(type="str"),
            lab_dir=dict(type="path"),
            python=dict(type="path"),
            listeners=dict(type="bool", default=True),
        ),
        mutually_exclusive=[("definition", "lab")],
        required_one_of=[("definition", "lab")],
        supports_check_mode=True,
    )
    params = module.params
    if os.geteuid() != 0:
        module.fail_json(msg="nap_lab creates network namespaces and must run as root (become: true)")
    try:
        topo = Topology(load_definition(params["definition"], params["lab"]), params["prefix"], params["base_subnet"])
    except (LabError, IOError, OSError, ValueError) as exc:
        module.fail_json(msg="nap_lab: %s" % exc)
    lab_dir = os.path.abspath(params["lab_dir"] or os.path.join("build", "lab", params["prefix"]))
    python = params["python"] or sys.executable
    if not os.path.isabs(python):
        module.fail_json(msg="python must be an absolute path, got %s" % python)
    lab = Lab(module, topo, lab_dir, python)
    try:
        if params["state"] == "present":
            lab.create()
        else:
            lab.destroy()
    except LabError as exc:
        module.fail_json(msg="nap_lab: %s" % exc, actions=lab.actions)
    hosts = OrderedDict()
    for node, spec in topo.nodes.items():
        hosts[node] = dict(netns=topo.netns(node), zones=spec["zones"],
                           addresses=[str(topo.address(node, z)) for z in spec["zones"]],
                           interpreter=lab.path("bin", "%s-python" % node),
                           router=node in topo.routers, listen=[int(p) for p in spec.get("listen") or []])
    module.exit_json(changed=bool(lab.actions), actions=lab.actions, namespaces=topo.namespaces(), hosts=hosts,
                     inventory=lab.path("inventory.yml"), lab_dir=lab_dir,
                     zones=dict((z, str(n)) for z, n in topo.zones.items()))


if __name__ == "__main__":
    main()
