# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the lab tests: run commands and playbooks, probe from inside a namespace, clean up."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

needs_root_and_tools = [
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="lab tests create network namespaces: run them as root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="lab tests need nft: apt-get install nftables"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="lab tests need ip: apt-get install iproute2"),
]


def sh(*args, **kw):
    """Run a command and capture its output; check=True raises when it fails (default: return the result)."""
    check = kw.pop("check", False)
    return subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=check, **kw)


def in_netns(netns, *args, **kw):
    """sh() inside a network namespace (ip netns exec)."""
    return sh("ip", "netns", "exec", netns, *args, **kw)


FAKE_WINDOWS_DIR = os.path.join(ROOT, "tests", "fake_windows")
FAKE_WINDOWS_CODE = os.path.join(ROOT, "tests", "unit", "plugins", "action")
# The real ansible.windows (links) with only win_powershell replaced by the stand-in: tests/fake_windows/overlay.py.
# Never tests/fake_windows itself first on the path: it would hide win_listen_ports_facts and the rest.
FAKE_WINDOWS_OVERLAY = os.path.join(ROOT, "build", "fake-windows")


def _overlay_complete(dest):
    modules = os.path.join(dest, "ansible_collections", "ansible", "windows", "plugins", "modules")
    stand_in = os.path.join(FAKE_WINDOWS_DIR, "ansible_collections", "ansible", "windows", "plugins", "modules",
                            "win_powershell.py")
    return (os.path.realpath(os.path.join(modules, "win_powershell.py")) == os.path.realpath(stand_in)
            and os.path.exists(os.path.join(modules, "win_listen_ports_facts.ps1")))


def fake_windows_collections(dest=FAKE_WINDOWS_OVERLAY):
    """A collections path (build/fake-windows) with the real ansible.windows and the stand-in win_powershell.

    Built once with tests/fake_windows/overlay.py: into a fresh directory beside dest, then renamed into place,
    so that test runs started at the same time never see (or make) a half-built overlay."""
    if _overlay_complete(dest):
        return dest
    if FAKE_WINDOWS_DIR not in sys.path:
        sys.path.insert(0, FAKE_WINDOWS_DIR)
    import overlay  # noqa: E402  pylint: disable=import-outside-toplevel,import-error
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    fresh = tempfile.mkdtemp(prefix=".fake-windows-", dir=parent)
    try:
        overlay.build(fresh)
        if os.path.isdir(dest) and not _overlay_complete(dest):
            shutil.rmtree(dest, ignore_errors=True)   # an overlay of an older layout
        try:
            os.rename(fresh, dest)
        except OSError:
            if not _overlay_complete(dest):           # another run put a complete one there first: use it
                raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return dest


def ansible_env(fake_windows_dir=None):
    """Environment for ansible-playbook; with fake_windows_dir, Windows hosts answer through the fake
    Windows host of tests/fake_windows (ansible.windows.win_powershell replaced, the rest of the real
    ansible.windows kept: fake_windows_collections()), one rule store per lab namespace in that directory."""
    paths = [os.path.join(ROOT, "build", "pytest")] + [p for p in [os.environ.get("ANSIBLE_COLLECTIONS_PATH")] if p]
    paths.append(os.path.join(ROOT, ".cache", "collections"))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="0",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    if fake_windows_dir:
        paths.insert(0, fake_windows_collections())
        env["FAKE_WINDOWS_STATE_DIR"] = fake_windows_dir
        env["PYTHONPATH"] = os.pathsep.join([FAKE_WINDOWS_CODE] + [p for p in [env.get("PYTHONPATH")] if p])
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(paths)
    return env


def playbook(*args, **kw):
    """Run ansible-playbook from the repository root; assert success unless check=False."""
    out = sh(os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), *args,
             env=ansible_env(kw.get("fake_windows_dir")), cwd=ROOT)
    if kw.get("check", True):
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    return out


def changed_count(out):
    return sum(int(n) for n in re.findall(r"changed=(\d+)", out.stdout.split("PLAY RECAP")[-1]))


def lab_namespaces(prefix):
    """Names of the network namespaces whose name starts with prefix-."""
    names = [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()]
    return [name for name in names if name.startswith(prefix + "-")]


def remove_namespaces(prefix):
    """Safety net: kill the processes of and delete every namespace whose name starts with prefix-."""
    for name in lab_namespaces(prefix):
        for pid in sh("ip", "netns", "pids", name).stdout.split():
            sh("kill", "-9", pid)
        sh("ip", "netns", "del", name)


def tcp_connects(netns, address, port, expect_banner=None, timeout=0.5):
    """TCP connect from inside a namespace; True when the handshake completed (and, when expect_banner is given,
    the server's first line holds it). Real services (LDAP, HTTPS) wait for the client: no read without a banner."""
    code = ("import socket,sys\ntry:\n s=socket.create_connection((sys.argv[1],int(sys.argv[2])),%s)\n"
            " print('OK', s.recv(64).decode().strip() if sys.argv[3]=='1' else '')\nexcept OSError as e:\n"
            " print('FAIL',e)\n" % timeout)
    out = sh("ip", "netns", "exec", netns, sys.executable, "-c", code, address, str(port),
             "1" if expect_banner else "0")
    if not out.stdout.startswith("OK"):
        return False
    return expect_banner is None or out.stdout[len("OK "):].startswith(expect_banner)


# --- additions for the verify lab test (services, probes, isolation) --------------------------------------------
PROBE_DRIVER = (
    "import json, sys, time\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_engine\n"
    "args = json.load(sys.stdin)\n"
    "t0 = time.monotonic()\n"
    "results, summary, info, failures = probe_engine.probe_many(args.pop('targets'), **args)\n"
    "json.dump({'results': results, 'summary': summary, 'info': info, 'failures': failures,\n"
    "           'wall': time.monotonic() - t0}, sys.stdout)\n")


def collections_root():
    """A directory holding ansible_collections/configmgr/nap (tests/conftest.py makes it)."""
    parts = ROOT.split(os.sep)
    if parts[-3:-1] == ["ansible_collections", "configmgr"]:
        return os.sep.join(parts[:-3])
    return os.path.join(ROOT, "build", "pytest")


def probe_from(netns, targets, python=None, **kwargs):
    """Run the nap_port_probe engine inside a namespace (with python, default this interpreter; kwargs go to
    probe_engine.probe_many); return {results, summary, info, failures, wall (seconds)}."""
    import json  # pylint: disable=import-outside-toplevel
    kwargs["targets"] = targets
    out = in_netns(netns, python or sys.executable, "-c", PROBE_DRIVER, collections_root(), input=json.dumps(kwargs))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def states_by_name(out):
    return dict((r["name"], r["state"]) for r in out["results"])


def probe_states(out):
    """[(name, state)] of a probe_from() result, in the order of the targets."""
    return [(r["name"], r["state"]) for r in out["results"]]


def host_listeners():
    """Listening TCP and UDP sockets of the machine's own namespace, with their processes (ss -lntupH)."""
    out = sh("ss", "-lntupH")
    assert out.returncode == 0, out.stderr
    return set(" ".join(line.split()[:1] + line.split()[4:5] + line.split()[6:7]) for line in out.stdout.splitlines()
               if line.strip())


def namespace_pids(prefix):
    """{pid: namespace} of every process in a namespace whose name starts with prefix-."""
    pids = {}
    for name in lab_namespaces(prefix):
        for pid in sh("ip", "netns", "pids", name).stdout.split():
            pids[int(pid)] = name
    return pids


def pids_with_cmdline(fragment):
    """pids of the processes whose command line contains fragment (for example a lab directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (IOError, OSError):
            continue
        if fragment in cmd:
            found.append(int(entry))
    return found
