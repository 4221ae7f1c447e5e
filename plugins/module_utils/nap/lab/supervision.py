# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab on this machine: network namespaces, bridges and veth pairs (``ip``), the files under the lab
directory, and the processes inside the namespaces (the stand-in listeners and the daemons of services.py):
starting them, their pid files, readiness, stopping them. What to build comes from topology.LabTopology.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import signal
import time

from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.scripts import LISTENER, SPAWN
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.services import (
    BINARIES, PACKAGES, SAMBA_PROVISION_DATA, Services, copy_freeradius, listener_args, render)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.topology import INVENTORY_MODE, LabError


class LabSupervisor:
    """Builds and removes a lab on this machine: namespaces, bridges, veths, addresses, routes, the files under
    ``lab_dir`` and the processes (listeners, daemons) inside the namespaces. ``module`` runs the commands
    (run_command, get_bin_path) and says whether this is check mode and what to start (params)."""

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
                args = listener_args(topo.nodes[node])
                if args:
                    self.start_listener(node, args)
        if self.module.params["services"]:
            self.start_services()
        # the inventory holds the lab's RADIUS secret (nap_radius_secret): readable by its owner only
        self.write(self.path("inventory.yml"), topo.inventory_text(self.lab_dir), INVENTORY_MODE)

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
                copy_freeradius(os.path.dirname(marker))
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
            if self.write(path, render(daemon, path, content), mode):
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
