#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""configmgr.nap benchmarks: our way side by side with the way users do it today (issue 9).

    python bench/run.py            # full run (tens of minutes: the per-rule anchors are slow)
    python bench/run.py --quick    # small sizes, fewer repetitions (CI)
    python bench/run.py --case nft --case planner   # a subset

Prints one line per figure, ``RATIO <name> <value>`` or ``FIGURE <name> <value> <unit>``, followed by
the target and ``met``/``missed`` where the issue sets one; writes bench/results.md and
bench/results.json (``--out DIR`` to write elsewhere). Times are never asserted.

Network safety: every nft, iptables, ip, listener and probe runs inside network namespaces this
script creates (names ``napbn<pid>-*``), which have no route out and hold only 198.18.0.0/15
addresses. They are deleted at the end, on failure and on Ctrl-C / SIGTERM (try/finally plus a
safety net that deletes every namespace with this run's prefix, and stale ones of dead runs).
The machine's own firewall, routes and sysctls are never touched.  See bench/README.md.
"""

from __future__ import print_function

import argparse
import atexit
import datetime
import gc
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")


def _reexec_in_venv():
    """Run under the project's .venv (ansible-core and PyYAML live there)."""
    try:
        import ansible  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
        import yaml  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
        return
    except ImportError:
        pass
    if os.path.exists(VENV_PY) and os.path.realpath(sys.executable) != os.path.realpath(VENV_PY) \
            and not os.environ.get("NAP_BENCH_REEXEC"):
        os.environ["NAP_BENCH_REEXEC"] = "1"
        os.execv(VENV_PY, [VENV_PY] + sys.argv)
    sys.exit("bench: ansible-core and PyYAML are needed: run `make venv` and use .venv/bin/python")


if __name__ == "__main__":
    _reexec_in_venv()

import yaml  # noqa: E402

PY = sys.executable
BIN = os.path.dirname(PY)
PREFIX = "napbn%d" % (os.getpid() % 100000)
SIZES = {}      # --sizes CASE=N,N overrides
NS_PATTERN = re.compile(r"^napbn(\d+)-")
TARGETS = {
    "noop_vs_floor": 1.3,          # no-op converge at N=300 within 1.3x the ping floor
    "noop_vs_anchor": 60.0,        # ... and at least 60x faster than the per-rule anchor
    "planner_10k_s": 2.0,          # 10,000-host planner under 2 s
    "near_linear": 1.2,            # growth exponent (we call <= 1.2 near-linear)
    "plan_vs_inventory": 1.5,      # plan.yml within 1.5x of ansible-core's own inventory load
    "probe_vs_waitfor": 30.0,      # probes at least 30x faster than the wait_for loop end to end
    "probe_vs_nmap": 2.0,          # module's own probing time within 2x of nmap's
    "probe_vs_longest": 2.0,       # 500 probes within 2x the longest single timeout
}


# ===========================================================================
# Output
# ===========================================================================
class Results:
    def __init__(self, quick):
        self.quick = quick
        self.figures = []
        self.raw = {}
        self.notes = []
        self.started = time.time()

    def figure(self, case, name, value, unit=None, target=None, met=None, note=None):
        """Record and print one figure. ``unit`` None makes it a RATIO line."""
        kind = "RATIO" if unit is None else "FIGURE"
        entry = dict(case=case, kind=kind, name=name, value=value, unit=unit, target=target, met=met, note=note)
        self.figures.append(entry)
        text = _fmt(value)
        line = "%s %s %s" % (kind, name, text) + ("" if unit is None else " " + unit)
        if target:
            line += "    target %s: %s" % (target, "n/a" if met is None else ("met" if met else "missed"))
        if note:
            line += "    (%s)" % note
        print(line, flush=True)
        return entry

    def note(self, text):
        self.notes.append(text)
        print("# " + text, flush=True)


def _fmt(value):
    if value is None:
        return "nan"
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 100:
        return "%.1f" % value
    if abs(value) >= 1:
        return "%.3f" % value
    return "%.4g" % value


def log(text):
    print("... " + text, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def exponent(n1, t1, n2, t2):
    if not t1 or not t2 or t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(float(n2) / n1)


# ===========================================================================
# Processes
# ===========================================================================
def sh(*args, **kw):
    check = kw.pop("check", True)
    out = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         check=False, **kw)
    if check and out.returncode != 0:
        raise RuntimeError("%s failed (%d): %s %s" % (" ".join(args), out.returncode, out.stdout[-2000:],
                                                      out.stderr[-2000:]))
    return out


# A measured command is started by this small launcher, which times it and reports its peak RSS. Linux keeps a
# process's peak RSS across execve (the peak of the image it replaced), so a command forked straight from this
# process, which holds the results and every module it imported (70 MiB and more by the planner case), would
# report at least that; the launcher is a bare Python (-S, a few MiB), and its child starts from it.
_LAUNCHER = r"""
import os, signal, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        sys.stderr.write("bench launcher: cannot run %s: %s\n" % (cmd[0], exc))
    os._exit(127)
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))   # the bench's timeout
signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C reaches the command too (same process group): wait for it
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(report, "w") as handle:
    handle.write("%r %d\n" % (wall, usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def timed(cmd, env=None, cwd=None, timeout=3600, stdin_text=None):
    """Run cmd; return dict(wall, rc, out, err, maxrss_kb): the wall time from its start to its end and the peak
    RSS of its process tree (the command and the children it waited for), both taken by _LAUNCHER."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".timed") as report:
        stdin = subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-E", "-c", _LAUNCHER, report.name] + list(cmd),
                                stdout=out, stderr=err, stdin=stdin, env=env, cwd=cwd,
                                universal_newlines=True)
        if stdin_text is not None:
            proc.stdin.write(stdin_text)
            proc.stdin.close()
        deadline = start + timeout
        while True:
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.terminate()           # the launcher kills the command it started, and ends
                pid, status, _usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        outer = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        fields = report.read().split()
        out.seek(0)
        err.seek(0)
        return dict(wall=float(fields[0]) if fields else outer, rc=proc.returncode, out=out.read(), err=err.read(),
                    maxrss_kb=int(fields[1]) if fields else None)


def recap(text):
    """Counts of the PLAY RECAP, summed over hosts."""
    tail = text.split("PLAY RECAP")[-1]
    out = {}
    for key in ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"):
        out[key] = sum(int(n) for n in re.findall(r"\b%s=(\d+)" % key, tail))
    return out


# ===========================================================================
# Network namespaces (the only place where nft, iptables, listeners and probes run)
# ===========================================================================
class Namespaces:
    def __init__(self):
        self.made = []
        self.procs = []

    def name(self, short):
        return "%s-%s" % (PREFIX, short)

    def add(self, short):
        name = self.name(short)
        self.made.append(name)
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    @staticmethod
    def exec_(name, *args, **kw):
        return sh("ip", "netns", "exec", name, *args, **kw)

    @staticmethod
    def assert_isolated(name):
        routes = sh("ip", "-n", name, "route", "show").stdout + sh("ip", "-n", name, "-6", "route", "show").stdout
        if "default" in routes:
            raise RuntimeError("namespace %s has a default route: refusing to go on" % name)
        for line in sh("ip", "-n", name, "-4", "-o", "address", "show").stdout.splitlines():
            addr = line.split()[3]
            if not (addr.startswith("198.18.") or addr.startswith("198.19.") or addr.startswith("127.")):
                raise RuntimeError("namespace %s holds %s, outside 198.18.0.0/15" % (name, addr))

    def popen(self, name, args, **kw):
        proc = subprocess.Popen(["ip", "netns", "exec", name] + list(args), **kw)
        self.procs.append(proc)
        return proc

    def remove_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = []
        safety_net()
        self.made = []


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def safety_net(stale_too=False):
    """Delete every namespace of this run (prefix napbn<pid>-) and, with stale_too, those of dead runs."""
    try:
        listed = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, universal_newlines=True,
                                check=False).stdout
    except OSError:
        return
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NS_PATTERN.match(name)
        if not match:
            continue
        mine = name.startswith(PREFIX + "-")
        stale = stale_too and not mine and not _pid_alive(int(match.group(1)))
        if not (mine or stale):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], stdout=subprocess.PIPE, universal_newlines=True,
                              check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


# ===========================================================================
# Ansible environment
# ===========================================================================
class Env:
    def __init__(self, work):
        self.work = work
        coll = os.path.join(work, "collections", "ansible_collections", "configmgr")
        os.makedirs(coll)
        os.symlink(ROOT, os.path.join(coll, "nap"))
        self.collections = os.path.join(work, "collections")
        self.base = dict(os.environ)
        for key in list(self.base):
            if key.startswith("ANSIBLE_"):
                del self.base[key]
        self.base.update(
            ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([self.collections, os.path.join(ROOT, ".cache", "collections")]),
            ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="0",
            ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_LOCAL_TEMP=os.path.join(work, "ansible-tmp"), ANSIBLE_REMOTE_TMP=os.path.join(work, "remote-tmp"),
            ANSIBLE_CONFIG=os.path.join(work, "ansible.cfg"))
        with open(os.path.join(work, "ansible.cfg"), "w") as handle:
            handle.write("[defaults]\n")     # defaults only: no user or project ansible.cfg

    def env(self, **extra):
        env = dict(self.base)
        env.update(extra)
        return env

    def playbook(self, playbook, inventory=None, extra=(), env=None, timeout=7200):
        cmd = [os.path.join(BIN, "ansible-playbook")]
        if inventory:
            cmd += ["-i", inventory]
        cmd += list(extra) + [playbook]
        return timed(cmd, env=env or self.env(), cwd=self.work, timeout=timeout)

    def wrapper(self, ns_name):
        """Interpreter wrapper: modules of a host with this interpreter run inside the namespace."""
        path = os.path.join(self.work, "bin", "%s-python" % ns_name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write("#!/bin/sh\nexec %s netns exec %s %s \"$@\"\n" % (shutil.which("ip"), ns_name, PY))
        os.chmod(path, 0o755)
        return path

    def write(self, name, content):
        path = os.path.join(self.work, name)
        with open(path, "w") as handle:
            if isinstance(content, str):
                handle.write(content)
            else:
                json.dump(content, handle)
        return path


def expect_ok(run, what):
    if run["rc"] != 0:
        raise RuntimeError("%s failed (rc %d):\n%s\n%s" % (what, run["rc"], run["out"][-3000:], run["err"][-2000:]))
    return run


# ===========================================================================
# Case 1: nftables perimeter
# ===========================================================================
NFT_OURS = """- hosts: router
  gather_facts: false
  tasks:
    - name: Converge the owned nftables table (one task)
      configmgr.nap.nft_nap_policy:
        zones: "{{ bench_zones }}"
        management_sources: "{{ bench_management }}"
        rules: "{{ bench_rules }}"
"""
NFT_ANCHOR = """- hosts: router
  gather_facts: false
  tasks:
    - name: One iptables rule per loop item (the common per-rule way)
      ansible.builtin.iptables:
        chain: FORWARD
        protocol: tcp
        source: "{{ item.src_addresses[0] }}"
        destination: "{{ item.dst_addresses[0] }}"
        destination_port: "{{ item.dst_ports[0] }}"
        jump: ACCEPT
        comment: "{{ item.name }}"
      loop: "{{ bench_rules }}"
      loop_control:
        label: "{{ item.name }}"
"""
PING = """- hosts: %s
  gather_facts: false
  tasks:
    - name: Ansible's fixed floor
      ansible.builtin.ping:
"""
PING_SAME_INPUT = """- hosts: router
  gather_facts: false
  tasks:
    - name: Ansible's own no-op module fed the same rules the same way (the input floor)
      ansible.builtin.ping:
        data: "{{ bench_rules }}"
"""
NFT_ZONES = {"clients": ["198.18.16.0/20"], "servers": ["198.18.64.0/20"], "management": ["198.18.9.0/24"]}
NFT_MANAGEMENT = ["198.18.9.10"]


def nft_rules(n):
    return [dict(name="BENCH-%04d-TCP-FWD" % i, flow_id="BENCH-%04d" % i, direction="forward", protocol="tcp",
                 src_addresses=["198.18.%d.0/24" % (16 + i % 16)],
                 dst_addresses=["198.18.%d.%d/32" % (64 + i // 250, i % 250 + 1)], dst_ports=[1024 + i])
            for i in range(n)]


MODULE_ALONE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
sys.argv = [sys.argv[0]]     # the module reads its arguments from stdin, as when run by hand
from ansible_collections.configmgr.nap.plugins.modules import nft_nap_policy
try:
    nft_nap_policy.main()
except SystemExit:
    pass
sys.stderr.write("MODULE_ALONE %.6f\n" % (time.perf_counter() - t0))
"""


def case_nft(res, env, nss, quick, reps, anchor_sample, anchor_reps_big):
    sizes = SIZES.get("nft") or ([300] if quick else [100, 300, 1000])
    router = nss.add("r")
    nss.assert_isolated(router)
    wrapper = env.wrapper(router)
    inv = env.write("nft-inventory.yml", yaml.safe_dump({"all": {"hosts": {"router": {
        "ansible_connection": "local", "ansible_python_interpreter": wrapper}}}}))
    ours_pb = env.write("nft-ours.yml", NFT_OURS)
    anchor_pb = env.write("nft-anchor.yml", NFT_ANCHOR)
    ping_pb = env.write("ping-router.yml", PING % "router")
    input_pb = env.write("ping-same-input.yml", PING_SAME_INPUT)
    anchor_sizes = dict((n, min(n, anchor_sample) if anchor_sample else n) for n in sizes)
    vars_files = {}
    for n in set(sizes) | set(anchor_sizes.values()):
        vars_files[n] = env.write("nft-vars-%d.json" % n, dict(
            bench_rules=nft_rules(n), bench_zones=NFT_ZONES, bench_management=NFT_MANAGEMENT))
    raw = res.raw.setdefault("nft", dict(sizes=sizes, reps=reps, anchor_sizes=anchor_sizes,
                                         anchor_reps_from_300=anchor_reps_big, runs=[]))

    def flush():
        nss.exec_(router, "nft", "flush", "ruleset")

    def ours_rules():
        out = nss.exec_(router, "nft", "-j", "list", "table", "inet", "configmgr_nap", check=False)
        if out.returncode != 0:
            return 0
        return len([i for i in json.loads(out.stdout)["nftables"]
                    if "rule" in i and "BENCH-" in (i["rule"].get("comment") or "")])

    def anchor_rules():
        out = nss.exec_(router, "iptables", "-S", "FORWARD")
        return len([line for line in out.stdout.splitlines() if line.startswith("-A FORWARD")])

    def run(kind, n, phase, rep):
        pb = {"ours": ours_pb, "anchor": anchor_pb, "floor": ping_pb, "input_floor": input_pb}[kind]
        extra = ["-e", "@" + vars_files[n]] if kind != "floor" else []
        out = expect_ok(env.playbook(pb, inv, extra), "%s %s N=%d" % (kind, phase, n))
        rc = recap(out["out"])
        entry = dict(kind=kind, n=n, phase=phase, wall=out["wall"], changed=rc["changed"], rep=rep)
        if kind == "ours":
            entry["rules_in_table"] = ours_rules()
        elif kind == "anchor":
            entry["rules_in_chain"] = anchor_rules()
        raw["runs"].append(entry)
        log("nft %-6s %-8s N=%-5d %7.2f s changed=%d" % (kind, phase, n, out["wall"], rc["changed"]))
        return entry

    def module_alone(n, rep):
        """The module's own run for a no-op (same wrapper, no ansible-playbook around it)."""
        module_args = dict(rules=nft_rules(n), zones=NFT_ZONES, management_sources=NFT_MANAGEMENT)
        args = json.dumps({"ANSIBLE_MODULE_ARGS": module_args})
        out = timed([wrapper, "-c", MODULE_ALONE, env.collections], stdin_text=args)
        match = re.search(r"MODULE_ALONE ([\d.]+)", out["err"])
        if out["rc"] != 0 or not match or '"changed": false' not in out["out"]:
            raise RuntimeError("nft_nap_policy alone failed: %s %s" % (out["out"][-1000:], out["err"][-2000:]))
        raw["runs"].append(dict(kind="module_alone", n=n, phase="noop", wall=out["wall"],
                                inside=float(match.group(1)), rep=rep))

    for rep in range(reps):
        for idx, n in enumerate(sizes):
            order = ["ours", "anchor"] if (rep + idx) % 2 == 0 else ["anchor", "ours"]
            for kind in order:
                m = n if kind == "ours" else anchor_sizes[n]
                if kind == "anchor" and m >= 300 and rep >= anchor_reps_big:
                    continue
                if kind == "anchor" and anchor_sizes[n] != n and any(
                        r["kind"] == "anchor" and r["n"] == m and r["rep"] == rep for r in raw["runs"]):
                    continue      # the sample size is shared by several N
                flush()
                first = run(kind, m, "converge", rep)
                again = run(kind, m, "noop", rep)
                if kind == "ours":
                    module_alone(m, rep)
                count = first.get("rules_in_table", first.get("rules_in_chain"))
                if first["changed"] < 1 or again["changed"] != 0 or count != m:
                    res.note("nft %s N=%d: unexpected outcome (converge changed=%d, no-op changed=%d, %d rules)"
                             % (kind, m, first["changed"], again["changed"], count))
            for kind in (("floor", "input_floor") if rep % 2 == 0 else ("input_floor", "floor")):
                run(kind, n, "ping", rep)
    flush()

    def med(kind, n, phase, key="wall"):
        return median([r[key] for r in raw["runs"] if r["kind"] == kind and r["n"] == n and r["phase"] == phase])

    def anchor_pairs(kind, n, phase, kind_phase):
        """(anchor wall, wall of ``kind``) for each anchor run of ``phase`` at N and the run of ``kind`` (in
        ``kind_phase``) of the same repetition: measured one after the other, they share the machine's pace."""
        return [(a["wall"], b["wall"]) for a in raw["runs"] for b in raw["runs"]
                if a["kind"] == "anchor" and b["kind"] == kind and a["n"] == b["n"] == n
                and a["phase"] == phase and b["phase"] == kind_phase and a["rep"] == b["rep"]]

    floor = median([r["wall"] for r in raw["runs"] if r["kind"] == "floor"])
    res.figure("nft", "nft.floor.ping", floor, "s", note="one-task ansible.builtin.ping playbook, same host")
    per_rule = {}
    missed = []                       # the no-op targets at N=300 a full run missed: then it profiles the no-op
    for phase in ("converge", "noop"):
        # the anchor's cost per rule beyond the floor, from the largest anchor size measured
        m = max(anchor_sizes.values())
        per_rule[phase] = (med("anchor", m, phase) - floor) / m
        res.figure("nft", "nft.%s.anchor_iptables_loop.per_rule" % phase, per_rule[phase], "s",
                   note="(loop time - ping floor) / rules, at N=%d" % m)
    for n in sizes:
        for phase in ("converge", "noop"):
            ours = med("ours", n, phase)
            res.figure("nft", "nft.%s.ours.n%d" % (phase, n), ours, "s")
            note = None
            if anchor_sizes[n] == n:
                anchor = med("anchor", n, phase)
                runs = len([r for r in raw["runs"] if r["kind"] == "anchor" and r["n"] == n and r["phase"] == phase])
                if runs < reps:
                    note = "%d run(s)" % runs
                res.figure("nft", "nft.%s.anchor_iptables_loop.n%d" % (phase, n), anchor, "s", note=note)
            else:
                anchor = floor + per_rule[phase] * n
                note = "anchor EXTRAPOLATED from %d rules" % anchor_sizes[n]
                res.figure("nft", "nft.%s.anchor_iptables_loop.n%d" % (phase, n), anchor, "s",
                           note="EXTRAPOLATED: floor + %d x per-rule cost measured at N=%d" % (n, anchor_sizes[n]))
            ratio = anchor / ours
            if anchor_sizes[n] == n:
                # side by side: each anchor run against ours of the same repetition (measured just before or after
                # it); the anchor runs once at N >= 300, and the median of ours would mix in repetitions the
                # anchor did not share (a slower one moves every playbook of it, the floor too)
                pairs = anchor_pairs("ours", n, phase, phase)
                if pairs:
                    unpaired = ratio
                    ratio = median([a / o for a, o in pairs])
                    note = "%s%d pair(s) of the same repetition; the anchor over the median of ours: %.1f" % (
                        note + "; " if note else "", len(pairs), unpaired)
            target, met = None, None
            if phase == "noop" and n == 300:
                target, met = ">= %g" % TARGETS["noop_vs_anchor"], ratio >= TARGETS["noop_vs_anchor"]
                if not met:
                    missed.append("the anchor target")
            res.figure("nft", "nft.%s.anchor_over_ours.n%d" % (phase, n), ratio, None, target, met, note=note)
            ratio = ours / floor
            target, met = None, None
            if phase == "noop" and n == 300:
                target, met = "<= %g" % TARGETS["noop_vs_floor"], ratio <= TARGETS["noop_vs_floor"]
                if not met:
                    missed.append("the floor target")
            res.figure("nft", "nft.%s.ours_over_floor.n%d" % (phase, n), ratio, None, target, met)
            if phase == "noop":
                # the input floor: ansible.builtin.ping fed the same N rules the same way (-e @file, a templated
                # argument, the arguments in the payload and back in the result's invocation); ping also returns
                # them as its data, once more than nft_nap_policy does, so ours may come in under it
                input_floor = med("input_floor", n, "ping")
                res.figure("nft", "nft.floor.ping_same_input.n%d" % n, input_floor, "s",
                           note="ansible.builtin.ping with data: the same %d rules, read from the same -e @file "
                                "(ping returns them twice: data and invocation)" % n)
                res.figure("nft", "nft.noop.ours_over_input_floor.n%d" % n, ours / input_floor, None,
                           note="what nft_nap_policy adds to Ansible's handling of the same input")
                if anchor_sizes[n] == n:
                    pairs = anchor_pairs("input_floor", n, "noop", "ping")
                    if pairs:
                        res.figure("nft", "nft.noop.anchor_over_input_floor.n%d" % n,
                                   median([a / f for a, f in pairs]), None,
                                   note="the anchor over ping fed the same rules: about what a module that only "
                                        "takes them reaches (%d pair(s) of the same repetition)" % len(pairs))
        res.figure("nft", "nft.noop.ours.module_alone.n%d" % n, med("module_alone", n, "noop"), "s",
                   note="the module run through the same wrapper without ansible-playbook (python start included)")
    if not quick and missed:
        flush()
        run("ours", 300, "converge", -1)
        text = profile_playbook(env, ours_pb, inv, ["-e", "@" + vars_files[300]])
        raw["profile_noop_300"] = text
        path = os.path.join(res.out_dir, "profile-nft-noop-300.txt")
        with open(path, "w") as handle:
            handle.write(text)
        res.note("no-op N=300 missed %s: ansible-playbook profile in %s"
                 % (" and ".join(missed), os.path.relpath(path, ROOT)))
        flush()


# ===========================================================================
# Case 2: Windows (the fake Windows host of the tests, in process)
# ===========================================================================
FOREIGN_RULES = 500


def _windows_imports():
    sys.path.insert(0, env_collections_root())
    sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "plugins", "action"))
    import fake_windows  # pylint: disable=import-outside-toplevel,import-error
    from ansible_collections.configmgr.nap.plugins.action.win_nap_firewall import ActionModule  # noqa
    return fake_windows, ActionModule


def env_collections_root():
    return os.environ["NAP_BENCH_COLLECTIONS"]


def windows_store(fake_windows, n_foreign):
    fixture = os.path.join(ROOT, "tests", "unit", "plugins", "action", "fixtures", "windows",
                           "synthetic-2008r2-sp1.json")
    with open(fixture) as handle:
        doc = json.load(handle)
    rules = list(doc["rules"])[:n_foreign]
    for i in range(n_foreign - len(rules)):
        rules.append(dict(Name="Foreign app rule %03d" % i, Description="installed by some application",
                          Grouping="Foreign group %d" % (i % 7), Direction=1 + (i % 2), Action=1, Protocol=6,
                          LocalPorts=str(30000 + i), Enabled=bool(i % 3), Profiles=7))
    doc["rules"] = rules
    return fake_windows.FakeWindowsHost.from_dump(doc)


def windows_rules(n):
    rules = [dict(name="MGMT-WINRM-TCP-IN", flow_id="MGMT-WINRM", direction="in", protocol="tcp",
                  src_addresses=["198.18.9.10/32"], dst_ports=[5985, 5986])]
    for i in range(n - 1):
        rules.append(dict(name="BENCH-%04d-TCP-IN" % i, flow_id="BENCH-%04d" % i, direction="in", protocol="tcp",
                          src_addresses=["198.18.%d.0/24" % (16 + i % 16)], dst_ports=[1024 + i],
                          description="bench rule %d" % i))
    return rules


def counted_reader(fake, counting):
    """Wrap the fake's walk (the read, and the read-back at the end of an apply) so that every walk adds the
    store size (every rule visited) to counting."""
    walk = fake._state

    def counted_walk(params):
        counting["visited"] += len(fake.store)
        return walk(params)
    return counted_walk


class WindowsRunner:
    """The real action plugin; the transport (win_powershell) answered by the fake Windows host."""

    def __init__(self, fake, action_cls, counting):
        self.fake = fake
        self.action_cls = action_cls
        self.counting = counting

    def __call__(self, **args):
        from unittest.mock import MagicMock  # pylint: disable=import-outside-toplevel
        from ansible.playbook.play_context import PlayContext  # pylint: disable=import-outside-toplevel
        from ansible.playbook.task import Task  # pylint: disable=import-outside-toplevel
        task = Task()
        task.action = "configmgr.nap.win_nap_firewall"
        task.args = args
        task.check_mode = False
        task.diff = False
        action = self.action_cls(task, MagicMock(), PlayContext(), loader=MagicMock(), templar=MagicMock(),
                                 shared_loader_obj=MagicMock())
        host_time = [0.0]

        def execute_module(**kw):
            t0 = time.perf_counter()
            try:
                return self.fake.execute_module(check_mode=False, **kw)
            finally:
                host_time[0] += time.perf_counter() - t0

        action._execute_module = execute_module
        calls0, walks0, lookups0 = len(self.fake.calls), self.fake.walks, self.fake.lookups
        visited0 = self.counting["visited"]
        t0 = time.perf_counter()
        result = action.run(task_vars={"inventory_hostname": "winbench"})
        total = time.perf_counter() - t0
        if result.get("failed"):
            raise RuntimeError("win_nap_firewall failed: %s" % result.get("msg"))
        return dict(changed=bool(result.get("changed")), remote_calls=result.get("remote_calls", 0),
                    calls=[k for k, _p in self.fake.calls[calls0:]], walks=self.fake.walks - walks0,
                    walk_visited=self.counting["visited"] - visited0, lookups=self.fake.lookups - lookups0,
                    total=total, host=host_time[0], controller=total - host_time[0], ops=len(result["commands"]))


def case_windows(res, quick, reps):
    fake_windows, action_cls = _windows_imports()
    sizes = SIZES.get("windows") or [50, 300, 1000]      # in process and cheap: the same in quick mode
    raw = res.raw.setdefault("windows", dict(sizes=sizes, reps=reps, foreign_rules=FOREIGN_RULES, runs=[],
                                             anchor_model={}))
    for rep in range(reps):
        for n in (sizes if rep % 2 == 0 else list(reversed(sizes))):
            fake = windows_store(fake_windows, FOREIGN_RULES)
            counting = {"visited": 0}
            fake._state = counted_reader(fake, counting)
            runner = WindowsRunner(fake, action_cls, counting)
            args = dict(rules=windows_rules(n), management_sources=["198.18.9.10"])
            gc.collect()
            first = runner(**args)
            gc.collect()
            again = runner(**args)
            if not first["changed"] or again["changed"] or len(fake.owned()) != n:
                res.note("windows N=%d: unexpected outcome (%s / %s, %d owned)" % (n, first, again, len(fake.owned())))
            for phase, out in (("converge", first), ("noop", again)):
                out.update(n=n, phase=phase, rep=rep, store_size=len(fake.store))
                raw["runs"].append(out)
                log("windows %-8s N=%-5d calls=%d walks=%d visited=%d controller=%.3f s" % (
                    phase, n, out["remote_calls"], out["walks"], out["walk_visited"], out["controller"]))

    res.note("windows anchor: community.windows.win_firewall_rule cannot run here (no PowerShell); its cost is "
             "modelled: one module run (one remote call) per rule, each walking the whole store "
             "($fw.Rules | Where-Object), so rules visited = sum over the N runs of the store size at that run")
    for n in sizes:
        runs = [r for r in raw["runs"] if r["n"] == n]
        conv = [r for r in runs if r["phase"] == "converge"]
        noop = [r for r in runs if r["phase"] == "noop"]
        anchor_conv = sum(FOREIGN_RULES + k for k in range(n))      # the store grows by one rule per run
        anchor_noop = n * (FOREIGN_RULES + n)
        raw["anchor_model"][str(n)] = dict(
            converge=dict(remote_calls=n, walks=n, visited=anchor_conv),
            noop=dict(remote_calls=n, walks=n, visited=anchor_noop))
        for phase, group, anchor_visited in (("converge", conv, anchor_conv), ("noop", noop, anchor_noop)):
            calls = median([r["remote_calls"] for r in group])
            walks = median([r["walks"] for r in group])
            visited = median([r["walk_visited"] for r in group])
            lookups = median([r["lookups"] for r in group])
            ctl = median([r["controller"] for r in group])
            tgt_calls = tgt_walks = met_calls = met_walks = None
            if phase == "noop":
                tgt_calls, met_calls = "= 1", calls == 1
                tgt_walks, met_walks = "= 1", walks == 1
            else:       # the read, and the apply that reads the owned group back in the same call
                tgt_calls, met_calls = "= 2", calls == 2
                tgt_walks, met_walks = "= 2", walks == 2
            res.figure("windows", "windows.%s.ours.remote_calls.n%d" % (phase, n), int(calls), "calls",
                       tgt_calls, met_calls)
            res.figure("windows", "windows.%s.ours.store_walks.n%d" % (phase, n), int(walks), "walks",
                       tgt_walks, met_walks)
            res.figure("windows", "windows.%s.ours.rules_visited.n%d" % (phase, n), int(visited), "rules")
            res.figure("windows", "windows.%s.ours.lookups_by_name.n%d" % (phase, n), int(lookups), "lookups",
                       note="INetFwRules.Item/Remove by name in the apply call, not walks")
            res.figure("windows", "windows.%s.ours.controller_time.n%d" % (phase, n), ctl, "s")
            res.figure("windows", "windows.%s.anchor_model.remote_calls.n%d" % (phase, n), n, "calls")
            res.figure("windows", "windows.%s.anchor_model.rules_visited.n%d" % (phase, n), anchor_visited, "rules")
            res.figure("windows", "windows.%s.anchor_over_ours.rules_visited.n%d" % (phase, n),
                       anchor_visited / float(visited), None)


# ===========================================================================
# Case 3: planner
# ===========================================================================
FIXED_ROLES = [  # (group, count, vars) -- the servers of an estate; their number does not grow with it
    ("nap_site_servers", 1, {}),
    ("nap_shv_points", 2, {}),
    ("nap_domain_controllers", 2, {}),
    ("nap_hras", 2, {}),
    ("nap_certification_authorities", 1, {}),
    ("nap_dhcp_servers", 2, {}),
    ("nap_vpn_servers", 1, {}),
    ("nap_ts_gateways", 1, {}),
    ("nap_remediation_servers", 2, {"nap_remediation_roles": ["management_point", "software_update_point",
                                                              "distribution_point"]}),
    ("nap_dhcp_relays", 1, {}),
    ("nap_dns_servers", 2, {}),
    ("nap_site_database_servers", 1, {}),
    ("nap_console_hosts", 2, {}),
]
GROWING_ROLES = [  # (group, share of the rest, zone) -- the hosts whose number grows with the estate
    ("nap_clients", 0.60, "clients"),
    ("nap_radius_clients", 0.15, "network"),
    ("nap_rdp_hosts", 0.10, "servers"),
    ("nap_ipsec_protected", 0.10, "servers"),
    ("nap_site_systems", 0.05, "servers"),
]
PLAN_ZONES = {"servers": ["198.18.0.0/17"], "clients": ["198.19.0.0/17"], "network": ["198.19.128.0/18"],
              "management": ["198.19.255.0/24"]}
PLAN_SETTINGS = {
    "nap_enforcement_methods": ["dhcp", "ipsec", "vpn", "tsg", "8021x"],
    "nap_include_configmgr_base": True,
    "nap_client_networks": ["198.19.0.0/17"],
    "nap_management_sources": ["198.19.255.10/32"],
    "nap_zones": PLAN_ZONES,
}


def gen_inventory(n):
    """(groups, hostvars, settings, inventory document) of an estate of n hosts across every role."""
    import ipaddress  # pylint: disable=import-outside-toplevel
    counters = dict((z, int(ipaddress.ip_network(c[0]).network_address) + 10) for z, c in PLAN_ZONES.items())

    def address(zone):
        counters[zone] += 1
        return str(ipaddress.ip_address(counters[zone]))

    groups, hostvars = {}, {}
    perimeter = {"rtr01": ["servers", "clients", "management"], "rtr02": ["clients", "network"]}
    groups["nap_perimeter"] = list(perimeter)
    for name, zones in perimeter.items():
        hostvars[name] = {"ansible_host": address("management"), "nap_perimeter_platform": "nftables",
                          "nap_perimeter_zones": zones, "nap_address": [address(z) for z in zones]}
    fixed = 0
    for group, count, hvars in FIXED_ROLES:
        hosts = []
        for i in range(count):
            name = "%s%02d" % (group[4:].rstrip("s")[:10].replace("_", ""), i + 1)
            hosts.append(name)
            hostvars[name] = dict(hvars, ansible_host=address("servers"))
        groups[group] = hosts
        fixed += count
    groups["nap_global_catalogs"] = groups["nap_domain_controllers"][:1]
    rest = max(n - fixed - len(perimeter), len(GROWING_ROLES))
    done = 0
    for idx, (group, share, zone) in enumerate(GROWING_ROLES):
        count = rest - done if idx == len(GROWING_ROLES) - 1 else max(1, int(round(rest * share)))
        done += count
        hosts = []
        for i in range(count):
            name = "%s%05d" % (group[4:].rstrip("s").replace("_", "")[:8], i + 1)
            hosts.append(name)
            hvars = {"ansible_host": address(zone)}
            if group == "nap_radius_clients":
                hvars["nap_platform"] = "none"
            hostvars[name] = hvars
        groups[group] = hosts
    children = {}
    placed = set()
    for group, hosts in groups.items():
        entry = {}
        for host in hosts:
            if host in placed:
                entry[host] = None
            else:
                entry[host] = hostvars[host]
                placed.add(host)
        children[group] = {"hosts": entry}
    doc = {"all": {"vars": PLAN_SETTINGS, "children": children}}
    return groups, hostvars, dict(PLAN_SETTINGS), doc


PLAN_FLOOR = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: One task (ansible-core loads the same inventory)
      ansible.builtin.debug:
        msg: loaded
"""

PLANNER_CHILD = r"""
import gc, json, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import run as bench
from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
groups, hostvars, settings, _doc = bench.gen_inventory(int(sys.argv[3]))
mode = sys.argv[4]
gc.collect()
if mode == "time":
    t0 = time.perf_counter()
    plan = planner.plan(groups, hostvars, settings)
    wall = time.perf_counter() - t0
    out = {"wall": wall, "flows": len(plan["flows"]), "hosts": len(plan["hosts"]),
           "rules": sum(len(h["inbound"]) + len(h["outbound"]) for h in plan["hosts"].values())
           + sum(len(p["forward"]) for p in plan["perimeter"].values()), "warnings": len(plan["warnings"])}
elif mode == "read":
    # the plan file as nap_plan writes it, read in a forked process as in each Ansible worker that takes the plan
    # (every host's task of a converge): plandoc.load against json.load as it comes (the collector on)
    import multiprocessing, os, tempfile
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import plandoc
    plan = planner.plan(groups, hostvars, settings)
    fd, path = tempfile.mkstemp(prefix="napbench-plan-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(plan, separators=(",", ":")) + "\n")
    del plan
    gc.collect()
    context = multiprocessing.get_context("fork")

    def in_worker(read):
        reader, writer = context.Pipe(duplex=False)

        def work():
            t0 = time.perf_counter()
            plan = read()
            t1 = time.perf_counter()
            [dict(i=i) for i in range(100000)]     # the action's own work after the read: the collector's next passes
            writer.send((t1 - t0, time.perf_counter() - t0))

        process = context.Process(target=work)
        process.start()
        got = reader.recv()
        process.join()
        return got

    def plain():
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))

    ours = in_worker(lambda: plandoc.load(path))
    naive = in_worker(plain)
    out = {"wall": ours[1], "read": ours[0], "naive_wall": naive[1], "naive_read": naive[0],
           "plan_bytes": os.path.getsize(path)}
    os.unlink(path)
elif mode == "memory":
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    plan = planner.plan(groups, hostvars, settings)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    out = {"peak_bytes": peak}
else:
    import cProfile, pstats, io
    prof = cProfile.Profile()
    prof.enable()
    planner.plan(groups, hostvars, settings)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
    text2 = io.StringIO()
    pstats.Stats(prof, stream=text2).sort_stats("tottime").print_stats(15)
    out = {"profile_cumulative": text.getvalue(), "profile_tottime": text2.getvalue()}
json.dump(out, sys.stdout)
"""

WORKER_PROFILER = r"""
import cProfile, os, signal, sys
import ansible.executor.process.worker as worker
_orig = worker.WorkerProcess._run
def _run(self):
    prof = cProfile.Profile()
    prof.enable()
    try:
        return _orig(self)
    finally:
        prof.disable()
        # the last task's worker is terminated once the play is done: its profile is written all the same
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        path = os.path.join(os.environ["NAP_BENCH_PROFILE_DIR"], "worker-%d.prof" % os.getpid())
        prof.dump_stats(path + ".part")
        os.rename(path + ".part", path)
worker.WorkerProcess._run = _run
sys.argv = ["ansible-playbook"] + sys.argv[1:]
main_prof = cProfile.Profile()
from ansible.cli.playbook import main
main_prof.enable()
try:
    main()
except SystemExit:
    pass
finally:
    main_prof.disable()
    main_prof.dump_stats(os.path.join(os.environ["NAP_BENCH_PROFILE_DIR"], "main.prof"))
"""


TASK_TIMER = r"""
# A callback for the bench: the wall time from each task's start to the next one's (the last: to the stats).
import time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nap_bench_task_time"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.current, self.started, self.rows = None, None, []

    def _next(self, name):
        now = time.perf_counter()
        if self.current is not None:
            self.rows.append((self.current, now - self.started))
        self.current, self.started = name, now

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._next(task.get_name())

    def v2_playbook_on_stats(self, stats):
        self._next(None)
        for name, seconds in self.rows:
            self._display.display("NAP_BENCH_TASK %.4f %s" % (seconds, name))
"""


def task_times(env, playbook, inventory, extra):
    """[(task name, seconds)] of one ansible-playbook run, from the TASK_TIMER callback."""
    cdir = os.path.join(env.work, "callbacks")
    if not os.path.isdir(cdir):
        os.makedirs(cdir)
        with open(os.path.join(cdir, "nap_bench_task_time.py"), "w") as handle:
            handle.write(TASK_TIMER)
    out = expect_ok(env.playbook(playbook, inventory, extra, env=env.env(
        ANSIBLE_CALLBACK_PLUGINS=cdir, ANSIBLE_CALLBACKS_ENABLED="nap_bench_task_time")), "task times")
    rows = []
    for line in out["out"].splitlines():
        match = re.match(r"NAP_BENCH_TASK ([\d.]+) (.*)$", line)
        if match:
            rows.append((match.group(2), float(match.group(1))))
    return out["wall"], rows


def planner_child(n, mode):
    out = timed([PY, "-c", PLANNER_CHILD, env_collections_root(), HERE, str(n), mode],
                env=dict(os.environ, PYTHONHASHSEED="0"), timeout=3600)
    if out["rc"] != 0:
        raise RuntimeError("planner child (%s, %d) failed: %s" % (mode, n, out["err"][-3000:]))
    return json.loads(out["out"])


def case_planner(res, env, quick, reps):
    sizes = SIZES.get("planner") or ([100, 1000] if quick else [100, 1000, 10000])
    raw = res.raw.setdefault("planner", {"sizes": sizes, "reps": reps, "runs": [], "inventories": {}})
    inventories = {}
    for n in sizes:
        groups, _hv, _s, doc = gen_inventory(n)
        path = env.write("plan-inventory-%d.yml" % n, yaml.safe_dump(doc, default_flow_style=False))
        inventories[n] = path
        raw["inventories"][str(n)] = dict((g, len(h)) for g, h in groups.items())
    plan_pb = os.path.join(ROOT, "playbooks", "plan.yml")
    floor_pb = env.write("plan-floor.yml", PLAN_FLOOR)
    report_dir = os.path.join(env.work, "nap-report")
    for rep in range(reps):
        for n in (sizes if rep % 2 == 0 else list(reversed(sizes))):
            inv = inventories[n]
            steps = [
                ("planner", lambda n=n: planner_child(n, "time")),
                ("plan_read", lambda n=n: planner_child(n, "read")),
                ("plan_yml", lambda inv=inv: expect_ok(env.playbook(plan_pb, inv, ["-e", "nap_report_dir=" + report_dir]),
                                                       "plan.yml")),
                ("inventory_playbook", lambda inv=inv: expect_ok(env.playbook(floor_pb, inv), "one-task playbook")),
                ("ansible_inventory", lambda inv=inv: expect_ok(timed(
                    [os.path.join(BIN, "ansible-inventory"), "-i", inv, "--list", "--output",
                     os.path.join(env.work, "inventory-list.json")], env=env.env(), cwd=env.work), "ansible-inventory")),
            ]
            if rep % 2:
                steps = steps[1:] + steps[:1]
            for kind, step in steps:
                out = step()
                entry = dict(kind=kind, n=n, rep=rep, wall=out["wall"])
                for key in ("flows", "rules", "hosts", "warnings", "maxrss_kb", "read", "naive_wall", "plan_bytes"):
                    if key in out:
                        entry[key] = out[key]
                raw["runs"].append(entry)
                rss = "" if "maxrss_kb" not in out else "  maxrss %d MiB" % (out["maxrss_kb"] // 1024)
                log("planner %-18s N=%-6d %7.3f s%s" % (kind, n, out["wall"], rss))
    for n in sizes:
        entry = planner_child(n, "memory")
        raw["runs"].append(dict(kind="planner_memory", n=n, peak_bytes=entry["peak_bytes"]))

    def med(kind, n, key="wall"):
        return median([r.get(key) for r in raw["runs"] if r["kind"] == kind and r["n"] == n])

    biggest = sizes[-1]
    for n in sizes:
        t = med("planner", n)
        tgt, met = None, None
        if n == 10000:
            tgt, met = "< %g s" % TARGETS["planner_10k_s"], t < TARGETS["planner_10k_s"]
        res.figure("planner", "planner.plan.time.n%d" % n, t, "s", tgt, met,
                   note="%d flows, %d rules" % (med("planner", n, "flows"), med("planner", n, "rules")))
        res.figure("planner", "planner.plan.peak_memory.n%d" % n, med("planner_memory", n, "peak_bytes") / 2.0 ** 20,
                   "MiB", note="tracemalloc peak")
        read_t, naive_t = med("plan_read", n), med("plan_read", n, "naive_wall")
        res.figure("planner", "planner.plan_read.worker.n%d" % n, read_t, "s",
                   note="one forked worker reads the plan file (%.1f MB) and allocates 100,000 dicts after: paid by "
                        "every host's task that takes the plan" % (med("plan_read", n, "plan_bytes") / 1e6))
        res.figure("planner", "planner.plan_read.json_load_over_ours.n%d" % n, naive_t / read_t, None,
                   note="json.loads of the same file as it comes (the collector on), the same worker work after")
        plan_t, floor_t, inv_t = med("plan_yml", n), med("inventory_playbook", n), med("ansible_inventory", n)
        res.figure("planner", "planner.plan_yml.time.n%d" % n, plan_t, "s")
        res.figure("planner", "planner.plan_yml.peak_rss.n%d" % n, med("plan_yml", n, "maxrss_kb") / 1024.0, "MiB")
        res.figure("planner", "planner.inventory_load.one_task_playbook.n%d" % n, floor_t, "s")
        res.figure("planner", "planner.inventory_load.one_task_playbook.peak_rss.n%d" % n,
                   med("inventory_playbook", n, "maxrss_kb") / 1024.0, "MiB")
        res.figure("planner", "planner.inventory_load.ansible_inventory_list.n%d" % n, inv_t, "s")
        tgt, met = "<= %g" % TARGETS["plan_vs_inventory"], plan_t / floor_t <= TARGETS["plan_vs_inventory"]
        res.figure("planner", "planner.plan_yml_over_inventory_load.n%d" % n, plan_t / floor_t, None, tgt, met,
                   note="vs the one-task playbook on the same inventory")
        res.figure("planner", "planner.plan_yml_over_ansible_inventory_list.n%d" % n, plan_t / inv_t, None)
    for kind, label in (("planner", "plan"), ("plan_yml", "plan_yml"), ("inventory_playbook", "inventory_load")):
        for a, b in zip(sizes, sizes[1:]):
            exp = exponent(a, med(kind, a), b, med(kind, b))
            tgt, met = None, None
            if kind == "planner":
                tgt, met = "<= %g (near-linear)" % TARGETS["near_linear"], exp <= TARGETS["near_linear"]
            res.figure("planner", "planner.%s.growth_exponent.n%d_n%d" % (label, a, b), exp, None, tgt, met)
    # profile when a target is missed
    planner_missed = biggest == 10000 and med("planner", biggest) >= TARGETS["planner_10k_s"]
    # plan.yml at any size (not only the largest: 1,000 hosts has the highest fixed share)
    plan_missed = any(med("plan_yml", n) / med("inventory_playbook", n) > TARGETS["plan_vs_inventory"] for n in sizes)
    if planner_missed and not quick:
        prof = planner_child(biggest, "profile")
        raw["profile_planner"] = prof
        path = os.path.join(res.out_dir, "profile-planner.txt")
        with open(path, "w") as handle:
            handle.write(prof["profile_cumulative"] + "\n" + prof["profile_tottime"])
        res.note("planner profile (N=%d) written to %s" % (biggest, os.path.relpath(path, ROOT)))
    if plan_missed and not quick:
        # where a missed plan.yml figure goes, task by task, next to the one-task playbook: the fixed cost of the
        # plan role's tasks against the planning and the reports (the nap_plan task)
        lines = ["plan.yml and the one-task playbook, task by task (one run each; wall time from a task's start to "
                 "the next one's)", ""]
        for n in sizes:
            for label, pb, extra in (("plan.yml", plan_pb, ["-e", "nap_report_dir=" + report_dir]),
                                     ("one-task playbook", floor_pb, [])):
                wall, rows = task_times(env, pb, inventories[n], extra)
                raw.setdefault("task_times", []).append(dict(n=n, playbook=label, wall=wall, tasks=rows))
                lines.append("N=%d %s: %.3f s in all, %.3f s in tasks" % (n, label, wall, sum(t for _n, t in rows)))
                lines.extend("    %7.3f s  %s" % (t, name) for name, t in rows)
            lines.append("")
        path = os.path.join(res.out_dir, "plan-yml-tasks.txt")
        with open(path, "w") as handle:
            handle.write("\n".join(lines))
        res.note("plan.yml task times written to %s" % os.path.relpath(path, ROOT))
        # profiled at 1,000 hosts at most: under cProfile the 10,000-host run takes many minutes
        at = max(n for n in sizes if n <= 1000)
        raw["profile_plan_yml"] = profile_playbook(env, plan_pb, inventories[at],
                                                   ["-e", "nap_report_dir=" + report_dir])
        path = os.path.join(res.out_dir, "profile-plan-yml.txt")
        with open(path, "w") as handle:
            handle.write(raw["profile_plan_yml"])
        res.note("plan.yml profile (N=%d) written to %s" % (at, os.path.relpath(path, ROOT)))


ESTATES = [  # (name, inventory hosts, NAP servers, RADIUS clients); NAP servers 0: the example's nine hosts
    ("n20000_nap9", 20000, 0, 0),
    ("n20000_nap2300", 20000, 300, 2000),
]
QUICK_ESTATES = [("n2000_nap9", 2000, 0, 0), ("n2000_nap230", 2000, 30, 200)]


def gen_estate(total, servers, radius):
    """(inventory document, NAP hosts): an estate of ``total`` inventory hosts of which only some are in NAP groups.

    servers 0: the nine hosts of examples/inventory.yml; else every fixed server role, two perimeter routers and
    server roles (RDP hosts, IPsec-protected servers, site systems) up to ``servers``, plus ``radius`` RADIUS
    clients (802.1X switches and access points). The rest are hosts of other groups (web, db, workstations),
    with a few variables each, that the plan must not read."""
    if servers:
        fixed = sum(c for _g, c, _v in FIXED_ROLES) + 2        # + the two perimeter routers
        # an estate big enough that its 15 % of RADIUS clients covers ``radius``; then trimmed
        _groups, _hv, _settings, doc = gen_inventory(fixed + int(radius / 0.15) + 10)
        children = doc["all"]["children"]
        del children["nap_clients"]
        rest = max(servers - fixed, 3)
        for group, share in (("nap_rdp_hosts", 0.4), ("nap_ipsec_protected", 0.4), ("nap_site_systems", 0.2)):
            keep = max(1, int(round(rest * share))) if group != "nap_site_systems" else \
                rest - sum(max(1, int(round(rest * x))) for x in (0.4, 0.4))
            children[group]["hosts"] = dict(list(children[group]["hosts"].items())[:keep])
        children["nap_radius_clients"]["hosts"] = dict(list(children["nap_radius_clients"]["hosts"].items())[:radius])
    else:
        with open(os.path.join(ROOT, "examples", "inventory.yml")) as handle:
            doc = yaml.safe_load(handle)
        children = doc["all"]["children"]
    nap_hosts = set()
    for group in children.values():
        nap_hosts.update((group or {}).get("hosts") or {})
    others = total - len(nap_hosts)
    for g, (group, share) in enumerate((("web_servers", 0.2), ("db_servers", 0.1), ("workstations", 0.7))):
        count = others - sum(int(others * x) for _n, x in (("w", 0.2), ("d", 0.1))) if g == 2 else int(others * share)
        hosts = {}
        for i in range(count):
            hosts["%s%05d" % (group[:3], i + 1)] = {
                "ansible_host": "%s%05d.corp.example.test" % (group[:3], i + 1),
                "app_tier": group, "backup_window": "0%d:00" % (i % 6), "owner": "team-%d" % (i % 40)}
        children[group] = {"hosts": hosts, "vars": {"patch_group": group}}
    return doc, len(nap_hosts)


def case_estate(res, env, quick, reps):
    """plan.yml against the one-task playbook on large inventories where only some hosts are in NAP groups."""
    estates = QUICK_ESTATES if quick else ESTATES
    raw = res.raw.setdefault("estate", {"estates": [e[0] for e in estates], "reps": reps, "runs": [], "nap_hosts": {}})
    plan_pb = os.path.join(ROOT, "playbooks", "plan.yml")
    floor_pb = env.write("plan-floor.yml", PLAN_FLOOR)
    report_dir = os.path.join(env.work, "nap-report-estate")
    paths = {}
    for name, total, servers, radius in estates:
        doc, nap = gen_estate(total, servers, radius)
        paths[name] = env.write("estate-%s.yml" % name, yaml.safe_dump(doc, default_flow_style=False))
        raw["nap_hosts"][name] = nap
    for rep in range(reps):
        for name, _t, _s, _r in (estates if rep % 2 == 0 else list(reversed(estates))):
            inv = paths[name]
            steps = [("plan_yml", lambda inv=inv: expect_ok(env.playbook(plan_pb, inv, ["-e", "nap_report_dir=" + report_dir]),
                                                            "plan.yml")),
                     ("inventory_playbook", lambda inv=inv: expect_ok(env.playbook(floor_pb, inv), "one-task playbook"))]
            if rep % 2:
                steps.reverse()
            for kind, step in steps:
                out = step()
                raw["runs"].append(dict(kind=kind, estate=name, rep=rep, wall=out["wall"], maxrss_kb=out["maxrss_kb"]))
                log("estate %-16s %-18s %7.3f s  maxrss %d MiB" % (name, kind, out["wall"], out["maxrss_kb"] // 1024))

    def med(kind, name, key="wall"):
        return median([r.get(key) for r in raw["runs"] if r["kind"] == kind and r["estate"] == name])

    for name, total, _servers, _radius in estates:
        plan_t, floor_t = med("plan_yml", name), med("inventory_playbook", name)
        nap = raw["nap_hosts"][name]
        res.figure("estate", "estate.%s.plan_yml.time" % name, plan_t, "s",
                   note="%d inventory hosts, %d in NAP groups" % (total, nap))
        res.figure("estate", "estate.%s.plan_yml.peak_rss" % name, med("plan_yml", name, "maxrss_kb") / 1024.0, "MiB")
        res.figure("estate", "estate.%s.inventory_load.one_task_playbook" % name, floor_t, "s")
        ratio = plan_t / floor_t
        res.figure("estate", "estate.%s.plan_yml_over_inventory_load" % name, ratio, None,
                   "<= %g" % TARGETS["plan_vs_inventory"], ratio <= TARGETS["plan_vs_inventory"])


def profile_playbook(env, playbook, inventory, extra):
    """cProfile of ansible-playbook: the main process and every worker process (which run the tasks)."""
    import pstats  # pylint: disable=import-outside-toplevel
    import io  # pylint: disable=import-outside-toplevel
    pdir = tempfile.mkdtemp(dir=env.work, prefix="prof-")
    out = timed([PY, "-c", WORKER_PROFILER, "-i", inventory] + list(extra) + [playbook],
                env=env.env(NAP_BENCH_PROFILE_DIR=pdir), cwd=env.work)
    deadline = time.time() + 5        # a worker may still be writing its profile after ansible-playbook is done
    while any(name.endswith(".part") for name in os.listdir(pdir)) and time.time() < deadline:
        time.sleep(0.05)
    text = io.StringIO()
    text.write("ansible-playbook %s under cProfile: %.2f s wall, rc %d\n" % (
        os.path.basename(playbook), out["wall"], out["rc"]))
    for name in sorted(n for n in os.listdir(pdir) if not n.endswith(".part")):
        try:
            stats = pstats.Stats(os.path.join(pdir, name), stream=text)
        except (EOFError, TypeError, ValueError):
            # a worker that exits before cProfile writes its file leaves it empty: note it and go on
            text.write("\n===== %s: empty profile (the worker exited before writing it), skipped =====\n" % name)
            continue
        text.write("\n===== %s (cumulative) =====\n" % name)
        stats.sort_stats("cumulative").print_stats(30)
        text.write("\n===== %s (tottime) =====\n" % name)
        stats.sort_stats("tottime").print_stats(15)
    return text.getvalue()


# ===========================================================================
# Case 4: probes
# ===========================================================================
PROBE_NET = "198.18.251"
VANTAGE = PROBE_NET + ".1"
# five target addresses: all ports listening, half listening, nothing listening, nft drop (twice)
PROBE_HOSTS = [(PROBE_NET + ".10", "open"), (PROBE_NET + ".11", "half"), (PROBE_NET + ".12", "closed"),
               (PROBE_NET + ".13", "filtered"), (PROBE_NET + ".14", "filtered")]
PROBE_PORT0 = 20000
LISTENER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(128)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select(60):
        try:
            conn, _peer = key.fileobj.accept()
            conn.close()
        except OSError:
            pass
"""
PROBE_OURS = """- hosts: vantage
  gather_facts: false
  tasks:
    - name: Probe every target at once
      configmgr.nap.nap_port_probe:
        targets: "{{ bench_targets }}"
"""
PROBE_ANCHOR = """- hosts: vantage
  gather_facts: false
  tasks:
    - name: One wait_for per target (how playbooks check ports today)
      ansible.builtin.wait_for:
        host: "{{ item.host }}"
        port: "{{ item.port }}"
        timeout: 1
      loop: "{{ bench_targets }}"
      loop_control:
        label: "{{ item.host }}:{{ item.port }}"
      ignore_errors: true
"""


def probe_targets(n):
    per_host = n // len(PROBE_HOSTS)
    ports = list(range(PROBE_PORT0, PROBE_PORT0 + per_host))
    targets, listen = [], []
    for host, kind in PROBE_HOSTS:
        for i, port in enumerate(ports):
            state = {"open": "open", "closed": "closed", "filtered": "blocked"}.get(kind)
            if kind == "half":
                state = "open" if i % 2 == 0 else "closed"
            if state == "open":
                listen.append("%s:%d" % (host, port))
            targets.append({"name": "%s:%d" % (host, port), "host": host, "port": port, "expect": state})
    return targets, listen, ports


def case_probe(res, env, nss, quick, reps, waitfor_max):
    sizes = SIZES.get("probe") or ([50] if quick else [50, 500])
    a, b = nss.add("pa"), nss.add("pb")
    sh("ip", "link", "add", "name", PREFIX + "va", "netns", a, "type", "veth", "peer", "name", PREFIX + "vb",
       "netns", b)
    sh("ip", "-n", a, "address", "add", VANTAGE + "/24", "dev", PREFIX + "va")
    for host, _kind in PROBE_HOSTS:
        sh("ip", "-n", b, "address", "add", host + "/24", "dev", PREFIX + "vb")
    sh("ip", "-n", a, "link", "set", PREFIX + "va", "up")
    sh("ip", "-n", b, "link", "set", PREFIX + "vb", "up")
    for ns in (a, b):
        nss.assert_isolated(ns)
    drops = "".join("    ip daddr %s drop\n" % h for h, k in PROBE_HOSTS if k == "filtered")
    nss.exec_(b, "nft", "-f", "-", input="table inet bench {\n  chain input {\n    type filter hook input priority 0; "
                                         "policy accept;\n%s  }\n}\n" % drops)
    biggest_targets, listen, _ports = probe_targets(max(sizes))
    proc = nss.popen(b, [PY, "-c", LISTENER] + listen, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     universal_newlines=True)
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("listener did not start: %s" % proc.stderr.read())
    inv = env.write("probe-inventory.yml", yaml.safe_dump({"all": {"hosts": {"vantage": {
        "ansible_connection": "local", "ansible_python_interpreter": env.wrapper(a)}}}}))
    ours_pb = env.write("probe-ours.yml", PROBE_OURS)
    anchor_pb = env.write("probe-anchor.yml", PROBE_ANCHOR)
    ping_pb = env.write("ping-vantage.yml", PING % "vantage")
    raw = res.raw.setdefault("probe", {"sizes": sizes, "reps": reps, "runs": [], "waitfor_max": waitfor_max})
    nmap = shutil.which("nmap")
    if not nmap:
        res.note("nmap is not installed (apt-get install nmap): the nmap figures are left out")
    tree_env = env.env(ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree")

    def tree_result(tree_dir):
        with open(os.path.join(tree_dir, "vantage")) as handle:
            return json.load(handle)

    def run_ours(n, targets):
        tree_dir = tempfile.mkdtemp(dir=env.work, prefix="tree-")
        vars_file = env.write("probe-vars-%d.json" % n, {"bench_targets": targets})
        out = expect_ok(env.playbook(ours_pb, inv, ["-e", "@" + vars_file],
                                     env=dict(tree_env, ANSIBLE_CALLBACK_TREE_DIR=tree_dir)), "nap_port_probe")
        result = tree_result(tree_dir)
        results = result["results"]
        waits = [r["time_ms"] / 1000.0 for r in results if r["state"] not in ("open", "closed")]
        entry = dict(kind="ours", n=n, wall=out["wall"], elapsed=result["elapsed"], states=result["summary"]["states"],
                     ok=result["summary"]["ok"], longest_wait=max(waits) if waits else 0.0, rtt=result.get("rtt"))
        log("probe ours     N=%-4d %6.2f s wall, elapsed %.3f s, longest wait %.3f s, %s" % (
            n, out["wall"], entry["elapsed"], entry["longest_wait"], entry["states"]))
        return entry

    def run_waitfor(n, targets):
        tree_dir = tempfile.mkdtemp(dir=env.work, prefix="tree-")
        vars_file = env.write("probe-wf-vars-%d.json" % n, {"bench_targets": targets})
        out = expect_ok(env.playbook(anchor_pb, inv, ["-e", "@" + vars_file],
                                     env=dict(tree_env, ANSIBLE_CALLBACK_TREE_DIR=tree_dir)), "wait_for loop")
        items = tree_result(tree_dir).get("results") or []
        correct = sum(1 for t, r in zip(targets, items) if bool(r.get("failed")) == (t["expect"] != "open"))
        entry = dict(kind="waitfor", n=n, m=len(targets), wall=out["wall"], correct=correct, items=len(items))
        log("probe wait_for N=%-4d %6.2f s wall on %d targets (%d classified as expected)" % (
            n, out["wall"], len(targets), correct))
        return entry

    def run_floor(n):
        out = expect_ok(env.playbook(ping_pb, inv), "ping")
        return dict(kind="floor", n=n, wall=out["wall"])

    def run_nmap(n, ports):
        hosts = [h for h, _k in PROBE_HOSTS]
        last = hosts[-1].rsplit(".", 1)[1]
        cmd = ["ip", "netns", "exec", a, nmap, "-Pn", "-n", "-sT", "--max-retries", "0", "-oX", "-",
               "-p", "%d-%d" % (ports[0], ports[-1]), hosts[0] + "-" + last]
        out = timed(cmd)
        if out["rc"] != 0:
            raise RuntimeError("nmap failed: %s" % out["err"][-2000:])
        states = {}
        for host_xml in re.findall(r"<host\b.*?</host>", out["out"], re.S):
            addr = re.search(r'<address addr="([^"]+)"', host_xml).group(1)
            for port, state in re.findall(r'<port protocol="tcp" portid="(\d+)"><state state="([^"]+)"', host_xml):
                states["%s:%s" % (addr, port)] = state
            extra = re.search(r'<extraports state="([^"]+)" count="(\d+)"', host_xml)
            if extra:
                for port in ports:
                    states.setdefault("%s:%d" % (addr, port), extra.group(1))
        elapsed = float(re.search(r'<finished [^>]*elapsed="([\d.]+)"', out["out"]).group(1))
        entry = dict(kind="nmap", n=n, wall=out["wall"], elapsed=elapsed, counts={})
        for state in states.values():
            entry["counts"][state] = entry["counts"].get(state, 0) + 1
        log("probe nmap     N=%-4d %6.3f s wall, elapsed %.2f s, %s" % (n, out["wall"], elapsed, entry["counts"]))
        return entry

    for rep in range(reps):
        for n in (sizes if rep % 2 == 0 else list(reversed(sizes))):
            targets, _listen, ports = probe_targets(n)
            steps = [("ours", lambda: run_ours(n, targets))]
            if nmap:
                steps.append(("nmap", lambda: run_nmap(n, ports)))
            if waitfor_max:
                m = min(n, waitfor_max)
                sample = targets[::max(1, n // m)][:m]        # every k-th target: the same mix of states
                steps.append(("waitfor", lambda: run_waitfor(n, sample)))
            steps.append(("floor", lambda: run_floor(n)))
            if rep % 2:
                steps.reverse()
            for _kind, step in steps:
                entry = step()
                entry["rep"] = rep
                raw["runs"].append(entry)

    def med(kind, n, key="wall"):
        return median([r.get(key) for r in raw["runs"] if r["kind"] == kind and r["n"] == n])

    floor = median([r["wall"] for r in raw["runs"] if r["kind"] == "floor"])
    wf_runs = [r for r in raw["runs"] if r["kind"] == "waitfor"]
    per_target = median([(r["wall"] - floor) / r["m"] for r in wf_runs])
    res.figure("probe", "probe.floor.ping", floor, "s", note="one-task ping playbook on the vantage")
    res.figure("probe", "probe.waitfor.per_target", per_target, "s",
               note="(loop time - ping floor) / targets; ansible.builtin.wait_for timeout=1")
    for n in sizes:
        ours_wall, ours_el = med("ours", n), med("ours", n, "elapsed")
        longest = med("ours", n, "longest_wait")
        res.figure("probe", "probe.ours.wall.n%d" % n, ours_wall, "s", note="ansible-playbook, one task")
        res.figure("probe", "probe.ours.elapsed.n%d" % n, ours_el, "s", note="the module's own probing time")
        res.figure("probe", "probe.ours.longest_single_wait.n%d" % n, longest, "s",
                   note="longest wait of one silent target (timeout auto)")
        if n == 500:
            res.figure("probe", "probe.ours.elapsed_over_longest_wait.n%d" % n, ours_el / longest, None,
                       "<= %g" % TARGETS["probe_vs_longest"], ours_el / longest <= TARGETS["probe_vs_longest"])
        oks = [r["ok"] for r in raw["runs"] if r["kind"] == "ours" and r["n"] == n]
        if min(oks) != n:
            res.note("probe N=%d: the module classified only %d of %d as expected" % (n, min(oks), n))
        for r in wf_runs:
            if r["n"] == n and r["correct"] != r["m"]:
                res.note("probe N=%d: the wait_for loop classified %d of %d as expected" % (n, r["correct"], r["m"]))
        sample = [r for r in wf_runs if r["n"] == n]
        if sample and sample[0]["m"] == n:
            wf = med("waitfor", n)
            res.figure("probe", "probe.waitfor.wall.n%d" % n, wf, "s")
            note = None
        else:
            wf = floor + per_target * n
            res.figure("probe", "probe.waitfor.wall.n%d" % n, wf, "s",
                       note="EXTRAPOLATED: floor + %d x per-target time measured on %d targets" % (
                           n, max(r["m"] for r in wf_runs)))
            note = "wait_for extrapolated"
        res.figure("probe", "probe.waitfor_over_ours.n%d" % n, wf / ours_wall, None,
                   ">= %g" % TARGETS["probe_vs_waitfor"], wf / ours_wall >= TARGETS["probe_vs_waitfor"], note=note)
        if nmap:
            nm_wall, nm_el = med("nmap", n), med("nmap", n, "elapsed")
            res.figure("probe", "probe.nmap.wall.n%d" % n, nm_wall, "s")
            res.figure("probe", "probe.nmap.elapsed.n%d" % n, nm_el, "s", note="nmap's own elapsed (10 ms steps)")
            counts = [r["counts"] for r in raw["runs"] if r["kind"] == "nmap" and r["n"] == n][0]
            res.figure("probe", "probe.ours_elapsed_over_nmap_wall.n%d" % n, ours_el / nm_wall, None,
                       "<= %g" % TARGETS["probe_vs_nmap"], ours_el / nm_wall <= TARGETS["probe_vs_nmap"],
                       note="nmap states %s" % json.dumps(counts, sort_keys=True))
            if nm_el:
                res.figure("probe", "probe.ours_elapsed_over_nmap_elapsed.n%d" % n, ours_el / nm_el, None)
    proc.kill()


# ===========================================================================
# Versions, report
# ===========================================================================
def precompile():
    """Compile the collection's Python files once, into the __pycache__ beside them (which git and ansible-galaxy
    ignore): what Python does on a collection's first run and pip does for ansible-core at install. Without it, an
    environment that sets PYTHONDONTWRITEBYTECODE (this machine's does) compiles the collection's plugins in every
    ansible-playbook process and worker, about 25 ms for the nap_plan action, while ansible-core's come compiled."""
    import compileall  # pylint: disable=import-outside-toplevel
    ok = compileall.compile_dir(os.path.join(ROOT, "plugins"), quiet=1)
    return "the collection's plugins compiled at start%s (PYTHONDONTWRITEBYTECODE %s)" % (
        "" if ok else ": compileall FAILED", "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "not set")


def versions():
    out = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        import ansible.release  # pylint: disable=import-outside-toplevel
        out["ansible-core"] = ansible.release.__version__
    except ImportError:
        out["ansible-core"] = None
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        out["configmgr.nap"] = yaml.safe_load(handle).get("version")
    out["configmgr.nap commit"] = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    dirty = sh("git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", check=False).stdout.strip()
    out["configmgr.nap tree"] = "modified" if dirty else "clean"
    for name in ("community.windows", "ansible.windows", "community.general"):
        ns, coll = name.split(".")
        manifest = os.path.join(ROOT, ".cache", "collections", "ansible_collections", ns, coll, "MANIFEST.json")
        try:
            with open(manifest) as handle:
                out[name] = json.load(handle)["collection_info"]["version"]
        except (IOError, OSError, ValueError, KeyError):
            out[name] = None
    for tool, args in (("nft", ["--version"]), ("iptables", ["-V"]), ("nmap", ["--version"]), ("ip", ["-V"])):
        path = shutil.which(tool)
        out[tool] = sh(path, *args, check=False).stdout.strip().splitlines()[0] if path else None
    out["kernel"] = platform.release()
    out["cpus"] = os.cpu_count()
    try:
        out["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    return out


def write_report(res, vers, out_dir, args, duration):
    doc = dict(quick=res.quick, args=vars(args), versions=vers, started=datetime.datetime.fromtimestamp(
        res.started).isoformat(timespec="seconds"), duration_s=round(duration, 1), figures=res.figures,
        notes=res.notes, raw=res.raw, targets=TARGETS)
    try:
        doc["loadavg_at_end"] = os.getloadavg()
    except OSError:
        pass
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(doc, handle, indent=1, sort_keys=True, default=str)
    lines = ["# configmgr.nap benchmark results", "",
             "%s run of `python bench/run.py%s`, %s, %.0f s, medians of %s repetitions (see results.json for "
             "every sample). Generated; do not edit." % (
                 "Quick" if res.quick else "Full", " --quick" if res.quick else "", doc["started"], duration,
                 args.reps_text), "",
             "## Versions", "", "| component | version |", "|---|---|"]
    for key in sorted(vers):
        lines.append("| %s | %s |" % (key, vers[key]))
    titles = {"nft": "1. nftables perimeter (nft_nap_policy vs ansible.builtin.iptables loop vs ping floor)",
              "windows": "2. Windows (win_nap_firewall on the fake host vs modelled win_firewall_rule per rule)",
              "planner": "3. Planner (planner.plan, plan.yml, ansible-core's inventory load)",
              "probe": "4. Probes (nap_port_probe vs wait_for loop vs nmap)",
              "estate": "5. Large estates (plan.yml vs the one-task playbook, only some hosts in NAP groups)"}
    for case in ("nft", "windows", "planner", "probe", "estate"):
        figs = [f for f in res.figures if f["case"] == case]
        if not figs:
            continue
        lines += ["", "## " + titles[case], "", "| figure | value | unit | target | result | note |",
                  "|---|---:|---|---|---|---|"]
        for f in figs:
            result = "" if f["met"] is None else ("met" if f["met"] else "**missed**")
            cells = (f["name"], _fmt(f["value"]), f["unit"] or "ratio", f["target"] or "", result, f["note"] or "")
            lines.append("| `%s` | %s | %s | %s | %s | %s |" % cells)
    if res.notes:
        lines += ["", "## Notes", ""] + ["- " + n for n in res.notes]
    with open(os.path.join(out_dir, "results.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and fewer repetitions (CI)")
    parser.add_argument("--case", action="append", choices=["nft", "windows", "planner", "probe", "estate"],
                        help="run only this case (repeatable)")
    parser.add_argument("--reps", type=int, help="repetitions per case (default: 3 full, 1 quick; planner/windows "
                                                 "in process: 5 full, 1 quick)")
    parser.add_argument("--waitfor-max", type=int,
                        help="largest probe size the wait_for loop is measured at (beyond: extrapolated from the "
                             "per-target time; default 50, quick 5)")
    parser.add_argument("--anchor-sample", type=int,
                        help="run the iptables loop on this many rules only and extrapolate to N (default: none, "
                             "quick 10)")
    parser.add_argument("--anchor-reps-big", type=int, default=1,
                        help="repetitions of the iptables loop at N >= 300 (default 1: ~0.5 s per rule and run)")
    parser.add_argument("--sizes", action="append", default=[], metavar="CASE=N,N",
                        help="override the sizes of a case, e.g. --sizes nft=100,300 (repeatable)")
    parser.add_argument("--out", default=HERE, help="directory for results.md/results.json (default bench/)")
    args = parser.parse_args()
    # the large estates (20,000 inventory hosts) are in the full run; --quick runs them only with --case estate
    cases = args.case or (["nft", "windows", "planner", "probe"] + ([] if args.quick else ["estate"]))
    for spec in args.sizes:
        case, _sep, numbers = spec.partition("=")
        SIZES[case] = [int(x) for x in numbers.split(",") if x.strip()]
    if os.geteuid() != 0 and ("nft" in cases or "probe" in cases):
        sys.exit("bench: the nft and probe cases create network namespaces: run as root (or --case windows "
                 "--case planner)")
    for tool in ("ip", "nft"):
        if ("nft" in cases or "probe" in cases) and not shutil.which(tool):
            sys.exit("bench: %s is needed (apt-get install iproute2 nftables)" % tool)
    if "nft" in cases and not shutil.which("iptables"):
        sys.exit("bench: the nft case compares with ansible.builtin.iptables: apt-get install iptables")
    reps_ext = args.reps or (1 if args.quick else 3)
    if args.waitfor_max is None:
        args.waitfor_max = 5 if args.quick else 50
    if args.anchor_sample is None and args.quick:
        args.anchor_sample = 10
    reps_int = args.reps or (1 if args.quick else 5)
    args.reps_text = "%d (external runs) / %d (in-process)" % (reps_ext, reps_int)
    os.makedirs(args.out, exist_ok=True)

    res = Results(args.quick)
    res.out_dir = args.out
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(safety_net)
    safety_net(stale_too=True)
    work = tempfile.mkdtemp(prefix="napbench-")
    nss = Namespaces()
    start = time.time()
    ok = False
    vers = {}
    try:
        env = Env(work)
        os.environ["NAP_BENCH_COLLECTIONS"] = env.collections
        vers = versions()
        vers["bytecode"] = precompile()
        print("# configmgr.nap bench (%s), namespaces %s-*, work dir %s" % (
            "quick" if args.quick else "full", PREFIX, work), flush=True)
        shown = ("ansible-core", "python", "configmgr.nap", "nft", "iptables", "nmap")
        print("# " + ", ".join("%s %s" % (k, vers[k]) for k in shown), flush=True)
        for case in ("nft", "windows", "planner", "probe", "estate"):
            if case not in cases:
                continue
            log("case %s" % case)
            if case == "nft":
                try:
                    case_nft(res, env, nss, args.quick, reps_ext, args.anchor_sample, args.anchor_reps_big)
                finally:
                    nss.remove_all()
            elif case == "windows":
                case_windows(res, args.quick, reps_int)
            elif case == "planner":
                case_planner(res, env, args.quick, reps_ext)
            elif case == "estate":
                case_estate(res, env, args.quick, reps_ext)
            elif case == "probe":
                try:
                    case_probe(res, env, nss, args.quick, reps_ext, args.waitfor_max)
                finally:
                    nss.remove_all()
        ok = True
    finally:
        nss.remove_all()
        safety_net()
        shutil.rmtree(work, ignore_errors=True)
        duration = time.time() - start
        if res.figures:
            write_report(res, vers, args.out, args, duration)
            print("# wrote %s and %s (%.0f s)%s" % (
                os.path.join(args.out, "results.md"), os.path.join(args.out, "results.json"), duration,
                "" if ok else " -- INCOMPLETE run"), flush=True)
    left = [n for n in sh("ip", "netns", "list", check=False).stdout.split() if n.startswith(PREFIX + "-")]
    if left:
        print("# WARNING: namespaces left behind: %s" % " ".join(left), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
