# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's services: the real daemons started inside the namespaces (Samba AD DC, smbd and samba-dcerpcd,
FreeRADIUS, nginx, dnsmasq, strongSwan charon) and the stand-in listener (the ports nothing else serves, NTP).

The pure part: what each daemon is started with, which files it reads and what it must listen on, all under
``<lab_dir>/srv/<host>/<service>/``. Starting, watching and stopping them is supervision.LabSupervisor's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.topology import LabError, services_of, zone_iface

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
        for service, options in services_of(spec).items():
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
            # NPS also listens on the legacy ports whether or not they are chosen (NPS Ports): so does the lab
            "  listen {", "    type = auth", "    ipaddr = %s" % address, "    port = 1645", "  }",
            "  listen {", "    type = acct", "    ipaddr = %s" % address, "    port = 1646", "  }",
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
                       os.path.join(base, "run", "radiusd.pid"), "freeradius", [("udp", 1812), ("udp", 1813), ("udp", 1645), ("udp", 1646)], files,
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
            servers = [n for n in self.topo.nodes if "dhcp_server" in services_of(self.topo.nodes[n])]
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
            lines.append("interface=%s" % (zone_iface(zone) if node in self.topo.routers else "eth0"))
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
        return []   # served by the lab listener (UDP 123), see listener_args


def listener_args(spec):
    """The lab listener's port arguments for a node: its TCP ``listen`` ports, ntp:123 for the ntp service."""
    args = [str(int(p)) for p in spec.get("listen") or []]
    if "ntp" in services_of(spec):
        args.append("ntp:123")
    return args


def copy_freeradius(raddb):
    """Debian's FreeRADIUS configuration copied to ``raddb``, with only the lab's module and virtual server."""
    if not os.path.isdir(FREERADIUS_CONF):
        raise LabError("%s is missing: install the Debian package freeradius (make setup)" % FREERADIUS_CONF)
    if os.path.isdir(raddb):
        shutil.rmtree(raddb)
    shutil.copytree(FREERADIUS_CONF, raddb, symlinks=True)
    for sub, keep in (("mods-enabled", ("always",)), ("sites-enabled", ("nap",))):
        for entry in os.listdir(os.path.join(raddb, sub)):
            if entry not in keep:
                os.unlink(os.path.join(raddb, sub, entry))


def render(daemon, path, content):
    """A daemon file's content; None stands for one rendered at start (radiusd.conf, from Debian's)."""
    if content is None and daemon.service == "freeradius":
        with open(os.path.join(FREERADIUS_CONF, "radiusd.conf")) as handle:
            content = radiusd_conf(handle.read(), os.path.dirname(os.path.dirname(path)))
    return content
