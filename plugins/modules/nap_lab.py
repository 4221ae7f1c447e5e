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
  - Starts the real daemons named in a host's C(services) inside its namespace, each with its own configuration,
    pid, socket, log and state paths under C(<lab_dir>/srv/<host>/<service>/) (nothing is read from or written to
    the machine's own daemon paths, and nothing listens in the machine's own namespace) -
    C(samba_dc) (C(samba-tool domain provision) once per lab, then C(samba)),
    C(smbd) (smbd and samba-dcerpcd), C(rpc) (samba-dcerpcd alone), C(freeradius) (a copy of Debian's
    configuration, the lab's enforcement points as RADIUS clients with the secret C(vars.nap_radius_secret)),
    C(nginx) (self-signed certificate), C(dhcp_server) and C(dhcp_relay) (dnsmasq), C(charon) (strongSwan, with
    its own C(strongswan.conf)) and C(ntp) (an NTP responder in the lab listener). See C(docs/lab.md).
  - Creating twice is a no-op (a daemon whose configuration changed is restarted). O(state=absent) removes every
    namespace (with its veths and bridges) and every process the lab made, also after a create that stopped half
    way, using the state file it writes first.
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
  services:
    description:
      - Start the daemons named in the hosts' C(services).
    type: bool
    default: true
notes:
  - Needs root, C(ip) (iproute2) and a kernel with network namespaces, veth and bridge support.
  - The services need Debian's samba, samba-ad-provision, freeradius, nginx-light, dnsmasq-base, strongswan-charon,
    openssl and util-linux (C(unshare)); a missing one fails the create with the package to install.
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
  description: Per lab host (and router) its namespace, addresses, zone(s), interpreter wrapper, listener ports and
    services.
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
import shutil
import signal
import sys
import time
from collections import OrderedDict, deque

from ansible.module_utils.basic import AnsibleModule

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

LISTENER = r'''#!/usr/bin/env python3
# configmgr.nap lab listener: accepts TCP connections on the given ports, answers one line, closes;
# arguments of the form ntp:<port> answer NTP client requests on that UDP port (server mode, stratum 2).
import os, selectors, socket, struct, sys, time
pidfile, name, args = sys.argv[1], sys.argv[2], sys.argv[3:]
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
for arg in args:
    if arg.startswith("ntp:"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(arg[4:])))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "ntp")
        continue
    port = int(arg)
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


def ntp_now():
    now = time.time() + 2208988800
    return struct.pack("!II", int(now), int((now % 1) * 4294967296))


while True:
    for key, _ in sel.select():
        try:
            if key.data == "ntp":
                data, peer = key.fileobj.recvfrom(512)
                if len(data) >= 48 and (data[0] & 7) == 3:
                    stamp = ntp_now()
                    reply = (struct.pack("!BBbb", (data[0] & 0x38) | 4, 2, 6, -20) + b"\0" * 8 + b"LOCL"
                             + stamp + data[40:48] + stamp + ntp_now())
                    key.fileobj.sendto(reply, peer)
                continue
            conn, _ = key.fileobj.accept()
            conn.sendall(("nap-lab %s %d\n" % (name, key.data)).encode())
            conn.close()
        except OSError:
            pass
'''

SPAWN = r'''#!/usr/bin/env python3
# configmgr.nap lab: start a foreground daemon in the background. spawn.py PIDFILE LOGFILE ARGV...
# Forks twice, writes its pid to PIDFILE and executes ARGV (the pid stays the daemon's).
import os, sys
pidfile, logfile, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
log = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.dup2(log, 1)
os.dup2(log, 2)
os.closerange(3, 256)
tmp = pidfile + ".tmp"
with open(tmp, "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(tmp, pidfile)
os.execvp(argv[0], argv)
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
        self.domain = dict(lab.get("domain") or {})
        for name, spec in self.nodes.items():
            try:
                services = _services_of(spec)
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
            hvars["nap_probe_capable"] = True
            if spec.get("listen"):
                hvars["nap_lab_listen"] = [int(p) for p in spec["listen"]]
            if spec.get("services"):
                hvars["nap_lab_services"] = list(_services_of(spec))
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
# Services: real daemons inside the namespaces (pure part: what to write and run)
# ---------------------------------------------------------------------------
SERVICES = ("samba_dc", "smbd", "rpc", "freeradius", "nginx", "dhcp_server", "dhcp_relay", "charon", "ntp")
# Debian package of each binary, for the error message when one is missing.
PACKAGES = {"samba-tool": "samba (and samba-ad-provision)", "samba": "samba", "smbd": "samba",
            "samba-dcerpcd": "samba", "freeradius": "freeradius", "nginx": "nginx-light", "openssl": "openssl",
            "dnsmasq": "dnsmasq-base", "charon": "strongswan-charon", "unshare": "util-linux"}
BINARIES = {"samba-dcerpcd": "/usr/libexec/samba/samba-dcerpcd", "charon": "/usr/lib/ipsec/charon"}
FREERADIUS_CONF = "/etc/freeradius/3.0"
SAMBA_PROVISION_DATA = "/usr/share/samba/setup/ad-schema"
# Groups whose lab hosts FreeRADIUS registers as RADIUS clients by default (the enforcement points).
RADIUS_CLIENT_GROUPS = ("nap_dhcp_servers", "nap_hras", "nap_vpn_servers", "nap_ts_gateways", "nap_radius_clients")


class Daemon:
    """One process a service runs in a node's namespace.

    ``argv`` starts it (it daemonizes itself, or through the lab's spawn helper when ``spawn``), ``pidfile``
    is where its pid lands, ``exe`` the basename /proc/<pid>/exe must have, ``files`` the configuration it
    reads (path -> (content, mode); a change restarts it), ``prepare`` one-time steps (commands run in the
    namespace, each with the file that marks it done), ``ready`` the (protocol, port) it must listen on.
    """

    def __init__(self, node, service, name, argv, pidfile, exe, ready=(), files=None, prepare=(), env=None,
                 spawn=False, dirs=()):
        self.node = node
        self.service = service
        self.name = name
        self.argv = argv
        self.pidfile = pidfile
        self.exe = exe
        self.ready = list(ready)
        self.files = files or OrderedDict()
        self.prepare = list(prepare)
        self.env = env or {}
        self.spawn = spawn
        self.dirs = list(dirs)

    @property
    def label(self):
        return "%s %s" % (self.node, self.name)


def _services_of(spec):
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


def _smb_global(base, node, workgroup, extra=()):
    lines = ["[global]",
             "  netbios name = %s" % node.upper().replace("-", "")[:15],
             "  workgroup = %s" % workgroup,
             "  server role = standalone server",
             "  interfaces = lo eth0",
             "  bind interfaces only = yes",
             "  pid directory = %s/run" % base,
             "  lock directory = %s/lock" % base,
             "  state directory = %s/state" % base,
             "  cache directory = %s/cache" % base,
             "  private dir = %s/private" % base,
             "  ncalrpc dir = %s/run/ncalrpc" % base,
             "  winbindd socket directory = %s/run/winbindd" % base,
             "  log file = %s/log/log.%%m" % base,
             "  logging = file",
             "  load printers = no",
             "  printcap name = /dev/null",
             "  disable spoolss = yes",
             "  usershare path =",
             "  panic action =",
             "  smb ports = 445",
             "  disable netbios = yes",
             "  rpc start on demand helpers = no"] + list(extra)
    return "\n".join(lines) + "\n"


def _nginx_conf(base, address, http, https):
    listens = ["    listen %s:%d;" % (address, p) for p in http]
    listens += ["    listen %s:%d ssl;" % (address, p) for p in https]
    return "\n".join([
        "# configmgr.nap lab: nginx stands in for IIS (workers as root: the lab directory may be private to root)",
        "user root root;",
        "worker_processes 1;",
        "pid %s/run/nginx.pid;" % base,
        "error_log %s/log/error.log;" % base,
        "events { worker_connections 64; }",
        "http {",
        "  access_log %s/log/access.log;" % base,
        "  client_body_temp_path %s/tmp/body;" % base,
        "  proxy_temp_path %s/tmp/proxy;" % base,
        "  fastcgi_temp_path %s/tmp/fastcgi;" % base,
        "  uwsgi_temp_path %s/tmp/uwsgi;" % base,
        "  scgi_temp_path %s/tmp/scgi;" % base,
        "  server {"] + listens + [
        "    ssl_certificate %s/cert.pem;" % base,
        "    ssl_certificate_key %s/key.pem;" % base,
        "    root %s/www;" % base,
        "  }",
        "}"]) + "\n"


def radiusd_conf(text, base):
    """Debian's radiusd.conf pointed at the lab directory: paths, no user switch, no reject delay."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        key = stripped.split("=", 1)[0].strip() if "=" in stripped and not stripped.startswith("#") else None
        if key == "logdir" and not line.startswith("\t"):
            line = "logdir = %s/log" % base
        elif key == "raddbdir" and not line.startswith("\t"):
            line = "raddbdir = %s/raddb" % base
        elif key == "run_dir" and not line.startswith("\t"):
            line = "run_dir = %s/run" % base
        elif key == "pidfile" and not line.startswith("\t"):
            line = "pidfile = %s/run/radiusd.pid" % base
        elif key in ("user", "group") and line.startswith("\t") and line.count("\t") == 1:
            line = "#" + line + "  # configmgr.nap lab: runs as root inside its namespace"
        elif key == "reject_delay":
            line = "\treject_delay = 0"
        out.append(line)
    return "\n".join(out) + "\n"


class Services:
    """The daemons of a lab, computed from its definition (no side effects)."""

    def __init__(self, topo, lab_dir):
        self.topo = topo
        self.lab_dir = lab_dir
        lab_vars = topo.vars
        domain = topo.domain
        self.realm = str(domain.get("realm", "LAB.NAP.TEST")).upper()
        self.workgroup = str(domain.get("netbios", self.realm.split(".", 1)[0]))[:15].upper()
        self.secret = lab_vars.get("nap_radius_secret")

    def base(self, node, service):
        return os.path.join(self.lab_dir, "srv", node, service)

    def daemons(self, node):
        spec = self.topo.nodes[node]
        out = []
        for service, options in _services_of(spec).items():
            out.extend(getattr(self, "_" + service)(node, options))
        return out

    def all(self):
        out = []
        for node in self.topo.nodes:
            out.extend(self.daemons(node))
        return out

    def address(self, node):
        spec = self.topo.nodes[node]
        return str(self.topo.address(node, spec["zones"][0]))

    def _node_named(self, name, what):
        if name not in self.topo.nodes:
            raise LabError("%s names %r, which is not a lab host or router" % (what, name))
        return name

    # -- Samba AD DC ------------------------------------------------------
    def _samba_dc(self, node, options):
        base = self.base(node, "samba")
        address = self.address(node)
        realm = str(options.get("realm", self.realm)).upper()
        workgroup = str(options.get("netbios", self.workgroup)).upper()
        conf = os.path.join(base, "etc", "smb.conf")
        opts = ["interfaces=lo eth0", "bind interfaces only=yes", "pid directory=%s/run" % base,
                "log file=%s/log/log.%%m" % base, "winbindd socket directory=%s/run/winbindd" % base,
                "ncalrpc dir=%s/run/ncalrpc" % base, "ntp signd socket directory=%s/run/ntp_signd" % base,
                "dns forwarder=", "load printers=no", "printcap name=/dev/null", "disable spoolss=yes",
                "panic action=", "usershare path=", "disable netbios=yes"]
        provision = ["samba-tool", "domain", "provision", "--configfile=/dev/null",
                     "--targetdir=%s" % base, "--realm=%s" % realm, "--domain=%s" % workgroup, "--server-role=dc",
                     "--use-rfc2307", "--dns-backend=SAMBA_INTERNAL",
                     "--host-ip=%s" % address, "--host-name=%s" % node] + ["--option=%s" % o for o in opts]
        files = OrderedDict()
        ready = [("tcp", p) for p in (53, 88, 135, 389, 445, 464, 636, 3268, 3269)] + \
            [("udp", p) for p in (53, 88, 389, 464)]
        return [Daemon(node, "samba_dc", "samba AD DC", ["samba", "-s", conf], os.path.join(base, "run", "samba.pid"),
                       "samba", ready, files, prepare=[("provision the AD domain %s" % realm, provision,
                                                        os.path.join(base, "provisioned"))],
                       dirs=[os.path.join(base, d) for d in ("run", "log")])]

    # -- Samba file server and RPC ----------------------------------------
    def _smb(self, node, service, with_smbd):
        base = self.base(node, service)
        conf = os.path.join(base, "smb.conf")
        shares = ("\n[nap]\n  path = %s/share\n  read only = yes\n  guest ok = yes\n" % base) if with_smbd else ""
        files = OrderedDict([(conf, (_smb_global(base, node, self.workgroup) + shares, 0o644))])
        dirs = [os.path.join(base, d) for d in ("run", "lock", "state", "cache", "private", "log", "share")]
        out = []
        if with_smbd:
            out.append(Daemon(node, service, "smbd", ["smbd", "-s", conf, "-D"], os.path.join(base, "run", "smbd.pid"),
                              "smbd", [("tcp", 445)], files, dirs=dirs))
        out.append(Daemon(node, service, "samba-dcerpcd", [BINARIES["samba-dcerpcd"], "-s", conf, "-D",
                                                           "--libexec-rpcds"],
                          os.path.join(base, "run", "samba-dcerpcd.pid"), "samba-dcerpcd", [("tcp", 135)],
                          files, dirs=dirs))
        return out

    def _smbd(self, node, options):
        return self._smb(node, "smbd", True)

    def _rpc(self, node, options):
        return self._smb(node, "rpc", False)

    # -- FreeRADIUS (the NPS) ---------------------------------------------
    def radius_clients(self, options):
        names = []
        groups = RADIUS_CLIENT_GROUPS if options.get("clients") is None else ()
        for name, spec in self.topo.nodes.items():
            if any(g in (spec.get("groups") or []) for g in groups):
                names.append(name)
        for name in list(options.get("clients") or []) + list(options.get("extra_clients") or []):
            name = self._node_named(str(name), "freeradius clients")
            if name not in names:
                names.append(name)
        return names

    def _freeradius(self, node, options):
        base = self.base(node, "freeradius")
        secret = options.get("secret", self.secret)
        if not secret:
            raise LabError("host %s: the freeradius service needs a shared secret (vars: nap_radius_secret)" % node)
        if any(c in str(secret) for c in "\"\\\n"):
            raise LabError("host %s: the RADIUS secret must not contain quotes, backslashes or newlines" % node)
        address = self.address(node)
        clients = []
        for name in self.radius_clients(options):
            spec = self.topo.nodes[name]
            for zone in spec["zones"]:
                clients.append("client %s-%s {\n  ipaddr = %s\n  secret = \"%s\"\n  shortname = %s\n"
                               "  require_message_authenticator = yes\n}\n"
                               % (name, zone, self.topo.address(name, zone), secret, name))
        site = "\n".join([
            "# configmgr.nap lab: FreeRADIUS stands in for NPS. Status-Server is answered (status_server = yes),",
            "# every Access-Request gets an Access-Reject, accounting is acknowledged.",
            "server nap {",
            "  listen {", "    type = auth", "    ipaddr = %s" % address, "    port = 1812", "  }",
            "  listen {", "    type = acct", "    ipaddr = %s" % address, "    port = 1813", "  }",
            "  authorize {", "    reject", "  }",
            "  authenticate {", "  }",
            "  preacct {", "  }",
            "  accounting {", "    ok", "  }",
            "  post-auth {", "    Post-Auth-Type REJECT {", "      ok", "    }", "  }",
            "}"]) + "\n"
        raddb = os.path.join(base, "raddb")
        files = OrderedDict([
            (os.path.join(raddb, "clients.conf"), ("# configmgr.nap lab: the registered RADIUS clients\n"
                                                   + "".join(clients), 0o640)),
            (os.path.join(raddb, "sites-enabled", "nap"), (site, 0o644)),
            (os.path.join(raddb, "radiusd.conf"), (None, 0o640)),   # rendered from Debian's at start
        ])
        return [Daemon(node, "freeradius", "freeradius", ["freeradius", "-d", raddb, "-n", "radiusd"],
                       os.path.join(base, "run", "radiusd.pid"), "freeradius", [("udp", 1812), ("udp", 1813)], files,
                       prepare=[("copy %s" % FREERADIUS_CONF, None, os.path.join(raddb, "dictionary"))],
                       dirs=[os.path.join(base, d) for d in ("run", "log")])]

    # -- nginx (IIS: the HRA, remediation servers) ------------------------
    def _nginx(self, node, options):
        base = self.base(node, "nginx")
        http = [int(p) for p in options.get("http", [80])]
        https = [int(p) for p in options.get("https", [443])]
        files = OrderedDict([
            (os.path.join(base, "nginx.conf"), (_nginx_conf(base, self.address(node), http, https), 0o644)),
            (os.path.join(base, "www", "index.html"), ("nap-lab %s\n" % node, 0o644)),
        ])
        cert = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-days", "365", "-subj", "/CN=%s.%s" % (node, self.realm.lower()), "-keyout",
                os.path.join(base, "key.pem"), "-out", os.path.join(base, "cert.pem")]
        argv = ["nginx", "-e", os.path.join(base, "log", "error.log"), "-p", base, "-c", os.path.join(base, "nginx.conf")]
        return [Daemon(node, "nginx", "nginx", argv,
                       os.path.join(base, "run", "nginx.pid"), "nginx", [("tcp", p) for p in http + https], files,
                       prepare=[("self-signed certificate", cert, os.path.join(base, "cert.pem"))],
                       dirs=[os.path.join(base, d) for d in ("run", "log", "tmp")])]

    # -- dnsmasq: DHCP server and relay ------------------------------------
    def dhcp_zones(self, node, options):
        zones = options.get("zones")
        if zones is None:
            zones = [z for z, spec in self.topo.zone_info.items() if spec.get("clients")]
            zones += [z for z in self.topo.nodes[node]["zones"] if z not in zones]
        for zone in zones:
            if zone not in self.topo.zones:
                raise LabError("host %s: dhcp_server zone %r is not a lab zone" % (node, zone))
        return list(zones)

    def _dhcp_server(self, node, options):
        base = self.base(node, "dnsmasq")
        lines = ["# configmgr.nap lab: dnsmasq as the DHCP server (no DNS); relayed scopes match the relay's giaddr",
                 "port=0", "interface=eth0", "bind-interfaces", "user=root", "group=root",
                 "pid-file=%s/run/dnsmasq.pid" % base, "dhcp-leasefile=%s/state/leases" % base,
                 "log-facility=%s/log/dnsmasq.log" % base, "log-dhcp", "dhcp-authoritative",
                 # offer at once: no ICMP check of the address first (the probes wait well under its 3 s)
                 "no-ping"]
        for zone in self.dhcp_zones(node, options):
            net = self.topo.zones[zone]
            first = net.network_address + max(2, min(100, net.num_addresses // 2))
            last = min(first + 99, net.broadcast_address - 1)
            lines.append("dhcp-range=set:%s,%s,%s,%s,1h" % (zone, first, last, net.netmask))
        conf = os.path.join(base, "dnsmasq.conf")
        files = OrderedDict([(conf, ("\n".join(lines) + "\n", 0o644))])
        return [Daemon(node, "dhcp_server", "dnsmasq (DHCP)", ["dnsmasq", "--conf-file=%s" % conf],
                       os.path.join(base, "run", "dnsmasq.pid"), "dnsmasq", [("udp", 67)], files,
                       dirs=[os.path.join(base, d) for d in ("run", "log", "state")])]

    def _dhcp_relay(self, node, options):
        base = self.base(node, "dhcp-relay")
        server = options.get("server")
        if server is None:
            servers = [n for n in self.topo.nodes if "dhcp_server" in _services_of(self.topo.nodes[n])]
            if len(servers) != 1:
                raise LabError("host %s: dhcp_relay needs 'server' (lab hosts with dhcp_server: %s)"
                               % (node, ", ".join(servers) or "none"))
            server = servers[0]
        server = self._node_named(str(server), "dhcp_relay server")
        zones = options.get("zones")
        if zones is None:
            zones = [z for z in self.topo.nodes[node]["zones"] if self.topo.zone_info[z].get("clients")]
        lines = ["# configmgr.nap lab: dnsmasq as the DHCP relay agent of the client zones (no DNS, no DHCP server)",
                 # bind-interfaces: the DHCP socket gets SO_REUSEADDR, so a DHCP relay probe can run beside it
                 "port=0", "bind-interfaces", "user=root", "group=root", "pid-file=%s/run/dnsmasq.pid" % base,
                 "log-facility=%s/log/dnsmasq.log" % base, "log-dhcp"]
        for zone in self.topo.nodes[node]["zones"]:
            lines.append("interface=%s" % (_iface(zone) if node in self.topo.routers else "eth0"))
        for zone in zones:
            if zone not in self.topo.nodes[node]["zones"]:
                raise LabError("host %s: dhcp_relay zone %r is not one of its zones" % (node, zone))
            lines.append("dhcp-relay=%s,%s" % (self.topo.address(node, zone), self.address(server)))
        conf = os.path.join(base, "dnsmasq.conf")
        files = OrderedDict([(conf, ("\n".join(lines) + "\n", 0o644))])
        return [Daemon(node, "dhcp_relay", "dnsmasq (DHCP relay)", ["dnsmasq", "--conf-file=%s" % conf],
                       os.path.join(base, "run", "dnsmasq.pid"), "dnsmasq", [("udp", 67)], files,
                       dirs=[os.path.join(base, d) for d in ("run", "log")])]

    # -- strongSwan charon (the IPsec-protected server) --------------------
    def _charon(self, node, options):
        base = self.base(node, "charon")
        conf = os.path.join(base, "strongswan.conf")
        text = "\n".join([
            "# configmgr.nap lab: charon answers IKE on UDP 500/4500 (no connection is configured, so it refuses",
            "# every proposal: the responder is there). /run is bound to %s/run in its own mount namespace," % base,
            "# so its hard-wired /run/charon.pid lands in the lab directory.",
            "charon {",
            "  port = 500",
            "  port_nat_t = 4500",
            "  install_routes = no",
            "  install_virtual_ip = no",
            "  load = random nonce aes sha1 sha2 hmac gmp pem pkcs1 x509 pubkey kernel-netlink socket-default vici",
            "  plugins {",
            "    vici {",
            "      socket = unix://%s/run/charon.vici" % base,
            "    }",
            "  }",
            "  filelog {",
            "    lab {",
            "      path = %s/log/charon.log" % base,
            "      default = 1",
            "      time_format = %F %T",
            "    }",
            "  }",
            "}"]) + "\n"
        files = OrderedDict([(conf, (text, 0o644))])
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$1" /run && exec "$2"', "sh", os.path.join(base, "run"), BINARIES["charon"]]
        return [Daemon(node, "charon", "charon (IKE)", argv, os.path.join(base, "run", "spawn.pid"), "charon",
                       [("udp", 500), ("udp", 4500)], files, env={"STRONGSWAN_CONF": conf}, spawn=True,
                       dirs=[os.path.join(base, d) for d in ("run", "log")])]

    def _ntp(self, node, options):
        return []   # served by the lab listener (UDP 123), see Lab.listener_args


# ---------------------------------------------------------------------------
# Host side (ip netns ...)
# ---------------------------------------------------------------------------
# The generated inventory holds vars.nap_radius_secret: owner only.
INVENTORY_MODE = 0o600


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
            if os.path.lexists(tmp):
                os.unlink(tmp)
            # created 0600 (O_EXCL, no symlink followed), widened to ``mode`` only once written: a file holding
            # the RADIUS secret is never readable by others, not even while it is written
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(content)
                os.chmod(tmp, mode)
                os.rename(tmp, path)
            finally:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
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
        self.write(self.path("bin", "spawn.py"), SPAWN, 0o755)
        if self.module.params["listeners"]:
            for node in topo.nodes:
                args = self.listener_args(node)
                if args:
                    self.start_listener(node, args)
        if self.module.params["services"]:
            self.start_services()
        inv = topo.inventory(self.lab_dir)
        # the inventory holds the lab's RADIUS secret (nap_radius_secret): readable by its owner only
        self.write(self.path("inventory.yml"), "# Generated by configmgr.nap.nap_lab; removed by state=absent.\n"
                   + yaml.dump(json.loads(json.dumps(inv)), Dumper=IndentedDumper, default_flow_style=False,
                               sort_keys=False), INVENTORY_MODE)

    def pidfile(self, node):
        return self.path("run", "%s.pid" % node)

    def listener_args(self, node):
        """The lab listener's port arguments for a node: its TCP ``listen`` ports, ntp:123 for the ntp service."""
        spec = self.topo.nodes[node]
        args = [str(int(p)) for p in spec.get("listen") or []]
        if "ntp" in _services_of(spec):
            args.append("ntp:123")
        return args

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
        self.actions.append("%s: listener on %s" % (ns, ", ".join(
            ("UDP %s (NTP)" % p[4:]) if str(p).startswith("ntp:") else "TCP %s" % p for p in ports)))
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

    # -- services -----------------------------------------------------------
    def netns_inode(self, ns):
        try:
            return os.stat(os.path.join("/run/netns", ns)).st_ino
        except OSError:
            return None

    @staticmethod
    def _pid_of(pidfile):
        try:
            with open(pidfile) as handle:
                return int(handle.read().split()[0])
        except (IOError, OSError, ValueError, IndexError):
            return None

    def daemon_pid(self, daemon):
        """pid of a daemon when its pid file names a live process of the right program in the node's namespace."""
        pid = self._pid_of(daemon.pidfile)
        if not pid:
            return None
        try:
            exe = os.path.basename(os.readlink("/proc/%d/exe" % pid))
            netns = os.stat("/proc/%d/ns/net" % pid).st_ino
        except OSError:
            return None
        if exe.replace(" (deleted)", "") != daemon.exe:
            return None
        if netns != self.netns_inode(self.topo.netns(daemon.node)):
            return None
        return pid

    def binary(self, name):
        if name in BINARIES:
            if not os.access(BINARIES[name], os.X_OK):
                raise LabError("%s is missing: install the Debian package %s (make setup)"
                               % (BINARIES[name], PACKAGES[name]))
            return BINARIES[name]
        path = self.module.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin"])
        if not path:
            raise LabError("%s is missing: install the Debian package %s (make setup)" % (name, PACKAGES.get(name, name)))
        return path

    def _argv(self, argv):
        first = argv[0]
        if os.path.isabs(first):
            if not os.access(first, os.X_OK):
                name = os.path.basename(first)
                raise LabError("%s is missing: install the Debian package %s (make setup)"
                               % (first, PACKAGES.get(name, name)))
            return list(argv)
        return [self.binary(first)] + list(argv[1:])

    def start_services(self):
        services = Services(self.topo, self.lab_dir)
        self.rendered = set()
        self.changed_files = set()
        for daemon in services.all():
            self.start_daemon(daemon)
        # readiness last: the daemons come up in parallel
        if not self.check:
            for daemon in services.all():
                self.wait_ready(daemon)

    def _prepare(self, daemon):
        for text, argv, marker in daemon.prepare:
            if os.path.exists(marker):
                continue
            self.actions.append("%s: %s" % (daemon.label, text))
            if self.check:
                continue
            if daemon.service == "freeradius":
                raddb = os.path.dirname(marker)
                if not os.path.isdir(FREERADIUS_CONF):
                    raise LabError("%s is missing: install the Debian package freeradius (make setup)"
                                   % FREERADIUS_CONF)
                if os.path.isdir(raddb):
                    shutil.rmtree(raddb)
                shutil.copytree(FREERADIUS_CONF, raddb, symlinks=True)
                for sub, keep in (("mods-enabled", ("always",)), ("sites-enabled", ("nap",))):
                    for entry in os.listdir(os.path.join(raddb, sub)):
                        if entry not in keep:
                            os.unlink(os.path.join(raddb, sub, entry))
                continue
            if daemon.service == "samba_dc":
                base = os.path.dirname(marker)
                if not os.path.isdir(SAMBA_PROVISION_DATA):
                    raise LabError("%s is missing: install the Debian package samba-ad-provision" % SAMBA_PROVISION_DATA)
                # a provision that stopped half way leaves a partial target directory: start again (stopping a samba
                # that runs on it first)
                running = self.daemon_pid(daemon)
                if running:
                    self._kill_all([running])
                for entry in ("private", "etc", "state", "cache", "bind-dns"):
                    if os.path.isdir(os.path.join(base, entry)):
                        shutil.rmtree(os.path.join(base, entry))
            ns = self.topo.netns(daemon.node)
            rc, out, err = self.module.run_command([self.ip, "netns", "exec", ns] + self._argv(argv))
            if rc != 0:
                raise LabError("%s: %s failed: %s" % (daemon.label, text, (err or out).strip()[-2000:]))
            if not os.path.exists(marker):
                # the step leaves no file of its own (a provision): mark it done only now that it succeeded
                with open(marker, "w") as handle:
                    handle.write("done\n")

    def _render(self, daemon, path, content):
        if content is None and daemon.service == "freeradius":
            with open(os.path.join(FREERADIUS_CONF, "radiusd.conf")) as handle:
                content = radiusd_conf(handle.read(), os.path.dirname(os.path.dirname(path)))
        return content

    def start_daemon(self, daemon):
        ns = self.topo.netns(daemon.node)
        if not self.check:
            for path in daemon.dirs:
                if not os.path.isdir(path):
                    os.makedirs(path)
        self._prepare(daemon)
        for path, (content, mode) in daemon.files.items():
            if path in self.rendered:
                continue
            self.rendered.add(path)
            if self.check and not os.path.isdir(os.path.dirname(path)):
                self.changed_files.add(path)
                continue
            if self.write(path, self._render(daemon, path, content), mode):
                self.changed_files.add(path)
        changed = any(path in self.changed_files for path in daemon.files)
        pid = self.daemon_pid(daemon)
        if pid and not changed:
            return
        if pid:
            self.actions.append("%s: restart %s (pid %d, configuration changed)" % (ns, daemon.name, pid))
            if not self.check:
                self._kill_all([pid])
        else:
            self.actions.append("%s: start %s" % (ns, daemon.name))
        if self.check:
            return
        if os.path.exists(daemon.pidfile):
            os.unlink(daemon.pidfile)
        argv = self._argv(daemon.argv)
        if daemon.spawn:
            argv = [self.python, self.path("bin", "spawn.py"), daemon.pidfile,
                    os.path.join(os.path.dirname(os.path.dirname(daemon.pidfile)), "log", "spawn.log")] + argv
        rc, out, err = self.module.run_command([self.ip, "netns", "exec", ns] + argv,
                                               environ_update=daemon.env or None)
        if rc != 0:
            raise LabError("%s in %s did not start: %s" % (daemon.name, ns, (err or out).strip()[-2000:]))
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.daemon_pid(daemon):
                return
            time.sleep(0.05)
        raise LabError("%s in %s did not start (no live %s process in %s)" % (daemon.name, ns, daemon.exe,
                                                                              daemon.pidfile))

    def listening(self, pid):
        """{(protocol, port)} bound for listening in the namespace of ``pid`` (from /proc/<pid>/net)."""
        found = set()
        for proto, name, state in (("tcp", "tcp", "0A"), ("tcp", "tcp6", "0A"), ("udp", "udp", "07"),
                                   ("udp", "udp6", "07")):
            try:
                with open("/proc/%d/net/%s" % (pid, name)) as handle:
                    lines = handle.read().splitlines()[1:]
            except (IOError, OSError):
                continue
            for line in lines:
                parts = line.split()
                if len(parts) > 3 and parts[3] == state:
                    found.add((proto, int(parts[1].rsplit(":", 1)[1], 16)))
        return found

    def wait_ready(self, daemon, timeout=60):
        deadline = time.time() + timeout
        missing = list(daemon.ready)
        while True:
            pid = self.daemon_pid(daemon)
            if not pid:
                raise LabError("%s in %s exited after starting (see the logs under %s)" % (
                    daemon.name, self.topo.netns(daemon.node), os.path.dirname(os.path.dirname(daemon.pidfile))))
            have = self.listening(pid)
            missing = [r for r in daemon.ready if r not in have]
            if not missing or time.time() > deadline:
                break
            time.sleep(0.1)
        if missing:
            raise LabError("%s in %s does not listen on %s after %d s" % (
                daemon.name, self.topo.netns(daemon.node), ", ".join("%s/%d" % r for r in missing), timeout))

    # -- absent -----------------------------------------------------------
    def destroy(self):
        topo = self.topo
        targets = list(topo.namespaces())
        targets += [ns for ns in self.recorded() if ns not in targets]
        have = self.existing()
        pids = []
        for node in topo.nodes:
            pid = self.running(node)
            if pid:
                self.actions.append("stop listener %s (pid %d)" % (node, pid))
                pids.append(pid)
        for daemon in self._daemons_for_cleanup():
            pid = self.daemon_pid(daemon) or self._orphan(daemon)
            if pid and pid not in pids:
                self.actions.append("stop %s (pid %d)" % (daemon.label, pid))
                pids.append(pid)
        for ns in targets:
            if ns not in have:
                continue
            rc, out, err = self.run(["netns", "pids", ns], check_rc=False)
            for pid in [int(p) for p in out.split() if p.isdigit()]:
                if pid not in pids:
                    self.actions.append("stop process %d in %s" % (pid, ns))
                    pids.append(pid)
        if not self.check:
            self._kill_all(pids)
        for ns in targets:
            if ns in have:
                self.do("delete netns %s" % ns, ["netns", "del", ns])
        for rel in [os.path.join("bin", "%s-python" % n) for n in topo.nodes] + \
                [os.path.join("run", "%s.%s" % (n, ext)) for n in topo.nodes for ext in ("pid", "log")] + \
                [os.path.join("bin", "listener.py"), os.path.join("bin", "spawn.py"), "inventory.yml", "state.json"]:
            path = self.path(rel)
            if os.path.lexists(path):
                self.actions.append("remove %s" % path)
                if not self.check:
                    os.unlink(path)
        srv = self.path("srv")
        if os.path.isdir(srv):
            self.actions.append("remove %s (service files)" % srv)
            if not self.check:
                shutil.rmtree(srv)
        for rel in ("bin", "run", ""):
            path = self.path(rel) if rel else self.lab_dir
            if os.path.isdir(path) and not os.listdir(path) and not self.check:
                os.rmdir(path)

    def _daemons_for_cleanup(self):
        try:
            return Services(self.topo, self.lab_dir).all()
        except LabError:
            return []

    def _orphan(self, daemon):
        """A daemon's pid when its pid file names a live process of its program, whatever its namespace
        (a namespace deleted under it); pid reuse by another program is never killed."""
        pid = self._pid_of(daemon.pidfile)
        if not pid:
            return None
        try:
            exe = os.path.basename(os.readlink("/proc/%d/exe" % pid)).replace(" (deleted)", "")
            netns = os.stat("/proc/%d/ns/net" % pid).st_ino
        except OSError:
            return None
        if exe != daemon.exe or netns == os.stat("/proc/self/ns/net").st_ino:
            return None
        return pid

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        try:
            with open("/proc/%d/stat" % pid) as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (IOError, OSError, IndexError):
            return False

    @classmethod
    def _kill_all(cls, pids, grace=5.0):
        """SIGTERM every pid at once, wait up to ``grace`` seconds for all, then SIGKILL what is left."""
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.time() + grace
        left = list(pids)
        while left and time.time() < deadline:
            for pid in left:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except OSError:
                    pass
            left = [pid for pid in left if cls._alive(pid)]
            if left:
                time.sleep(0.05)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    @classmethod
    def _kill(cls, pid):
        cls._kill_all([pid], grace=2.0)


SECRET_KEYS = ("secret", "nap_radius_secret", "password")


def _secrets_in(node):
    """Every value of a secret-named key in a lab definition (RADIUS shared secrets, passwords)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and isinstance(value, (str, int)) and str(value):
                yield str(value)
            else:
                for found in _secrets_in(value):
                    yield found
    elif isinstance(node, list):
        for item in node:
            for found in _secrets_in(item):
                yield found


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
            services=dict(type="bool", default=True),
        ),
        mutually_exclusive=[("definition", "lab")],
        required_one_of=[("definition", "lab")],
        supports_check_mode=True,
    )
    params = module.params
    for secret in _secrets_in(params.get("lab")):     # an inline definition's secrets stay out of -vvv output
        module.no_log_values.add(secret)
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
                           router=node in topo.routers, listen=[int(p) for p in spec.get("listen") or []],
                           services=list(_services_of(spec)))
    module.exit_json(changed=bool(lab.actions), actions=lab.actions, namespaces=topo.namespaces(), hosts=hosts,
                     inventory=lab.path("inventory.yml"), lab_dir=lab_dir,
                     zones=dict((z, str(n)) for z, n in topo.zones.items()))


if __name__ == "__main__":
    main()
