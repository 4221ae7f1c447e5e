#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test stand-in for ansible.windows.win_powershell (SYNTHETIC): answers the firewall scripts with the fake Windows
host, and runs the probe sender of configmgr.nap.win_nap_port_probe (probe_sender.ps1) as a Python re-implementation
of its semantics, inside the namespace the module runs in (the lab's Windows hosts), so the real services answer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_powershell
short_description: Test stand-in for ansible.windows.win_powershell (fake Windows host)
description:
  - Answers the scripts of configmgr.nap.win_nap_firewall with the fake Windows host of the tests.
  - Runs the probe sender of configmgr.nap.win_nap_port_probe with real sockets where the module runs.
  - See tests/fake_windows/README.md.
author:
  - configmgr.nap maintainers (@configmgr-nap)
options:
  script:
    description: The script.
    type: str
    required: true
  parameters:
    description: The script's parameters.
    type: dict
"""

import base64
import errno
import json
import os
import re
import selectors
import socket
import struct
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows  # noqa: F401 (bundled)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_lockout  # noqa: F401 pylint: disable=unused-import

HERE = os.path.dirname(os.path.abspath(__file__))


def state_path():
    if os.environ.get("FAKE_WINDOWS_STATE"):
        return os.environ["FAKE_WINDOWS_STATE"]
    directory = os.environ["FAKE_WINDOWS_STATE_DIR"]
    try:
        name = subprocess.run(["ip", "netns", "identify", str(os.getpid())], stdout=subprocess.PIPE,
                              universal_newlines=True, check=False).stdout.strip()
    except OSError:
        name = ""
    return os.path.join(directory, (name or "localhost") + ".json")


def load(path, fake_windows):
    if not os.path.exists(path):
        seed = os.environ.get("FAKE_WINDOWS_SEED") or os.path.join(
            os.path.dirname(fake_windows.__file__), "fixtures", "windows", "synthetic-2008r2-sp1.json")
        with open(seed) as handle:
            doc = json.load(handle)
        with open(path, "w") as handle:
            json.dump(doc, handle)
    with open(path) as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------------------------------------------
# probe_sender.ps1, re-implemented: the same parameters, the same statuses and reply format, the same bytes on the wire
# (the controller built them); one non-blocking socket per probe, at most Concurrency at once, each with its TimeoutMs.
# ---------------------------------------------------------------------------------------------------------------
SENDER_MARKER = "# configmgr.nap probe sender v1"
_UNREACHABLE = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM)


def _status_of(err):
    if err in (errno.ECONNREFUSED, errno.ECONNRESET):
        return "refused"
    if err == errno.ETIMEDOUT:
        return "timeout"
    if err in _UNREACHABLE:
        return "unreachable"
    return "error"


class _SenderProbe(object):
    def __init__(self, spec, now, sel=None):
        self.spec = spec
        self.started = now
        self.sel = sel
        self.registered = False
        self.sock = None
        self.connected = False
        self.buffer = b""
        self.replies = []
        self.result = None

    def done(self, status, now, error=""):
        if self.sock is not None:
            if self.registered:
                self.sel.unregister(self.sock)
                self.registered = False
            self.sock.close()
            self.sock = None
        replies = [base64.b64encode(self.buffer).decode()] if self.buffer else \
            [base64.b64encode(r).decode() for r in self.replies]
        self.result = {"Id": self.spec["Id"], "Status": status, "Replies": replies,
                       "TimeMs": round((now - self.started) * 1000.0, 3), "Error": error}

    def start(self, now):
        family = socket.AF_INET6 if ":" in self.spec["Address"] else socket.AF_INET
        tcp = self.spec["Protocol"] == "tcp"
        self.sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        address = (self.spec["Address"], int(self.spec["Port"]))
        try:
            if tcp:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                err = self.sock.connect_ex(address)
                if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                    self.done(_status_of(err), now, os.strerror(err))
                    return None
                return selectors.EVENT_WRITE
            self.sock.connect(address)
            self.connected = True
            for payload in self.spec.get("Send") or []:
                self.sock.send(base64.b64decode(payload))
        except OSError as exc:
            self.done(_status_of(exc.errno), now, str(exc))
            return None
        return selectors.EVENT_READ

    def step(self, now):
        """-> new events to wait for, or None."""
        if self.spec["Protocol"] == "tcp" and not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.done(_status_of(err), now, "socket error %d" % err)
                return None
            self.connected = True
            if self.spec.get("Mode") != "exchange":
                self.done("open", now)
                return None
            try:
                for payload in self.spec.get("Send") or []:
                    self.sock.sendall(base64.b64decode(payload))
            except OSError as exc:
                self.done("silent", now, "connected, sending failed: %s" % exc)
                return None
            return selectors.EVENT_READ
        while self.result is None:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if self.spec["Protocol"] == "tcp" and self.buffer:
                    self.done("replied", now)
                else:
                    self.done(_status_of(exc.errno), now, str(exc))
                return None
            if self.spec["Protocol"] == "udp":
                self.replies.append(data)
                continue
            if not data:
                self.done("replied" if self.buffer else "silent", now)
                return None
            self.buffer += data
            if self.spec.get("Framing") == "u32" and len(self.buffer) >= 4 and \
                    len(self.buffer) >= 4 + struct.unpack("!I", self.buffer[:4])[0]:
                self.done("replied", now)
                return None
        if self.spec["Protocol"] == "udp" and self.replies and self.result is None:
            self.done("replied", now)
        return None

    def expire(self, now):
        if self.spec["Protocol"] == "tcp" and self.connected:
            self.done("replied" if self.buffer else "silent", now)
        else:
            self.done("timeout", now)


def run_sender(params):
    """What probe_sender.ps1 puts in $Ansible.Result, as a dict."""
    ps_version = os.environ.get("FAKE_WINDOWS_PS_VERSION", "5.1.17763.1")
    minimum = str(params.get("MinPsVersion") or "5.1")
    out = {"sender": 1, "ps_version": ps_version, "supported": False, "results": []}
    if tuple(int(x) for x in ps_version.split(".")[:2]) < tuple(int(x) for x in minimum.split(".")[:2]):
        out["error"] = "cannot run the probe (PowerShell %s); it needs PowerShell %s" % (ps_version, minimum)
        return out
    out["supported"] = True
    pending = list(json.loads(params["ProbesJson"]))
    concurrency = int(params.get("Concurrency") or 64)
    begin = time.monotonic()
    hard_end = begin + float(params.get("DeadlineMs") or 60000) / 1000.0
    active, finished = [], []
    sel = selectors.DefaultSelector()
    try:
        while pending or active:
            now = time.monotonic()
            if now >= hard_end:
                break
            while pending and len(active) < concurrency:
                probe = _SenderProbe(pending.pop(0), time.monotonic(), sel)
                events = probe.start(probe.started)
                if probe.result is None:
                    sel.register(probe.sock, events, probe)
                    probe.registered = True
                    active.append(probe)
                else:
                    finished.append(probe)
            due = min(p.started + float(p.spec["TimeoutMs"]) / 1000.0 for p in active) if active else now
            for key, _mask in sel.select(max(0.0, min(due, hard_end) - time.monotonic())):
                probe = key.data
                if probe.result is None:
                    sock = probe.sock
                    events = probe.step(time.monotonic())
                    if events and probe.result is None:
                        sel.modify(sock, events, probe)
            now = time.monotonic()
            for probe in list(active):
                if probe.result is None and now - probe.started >= float(probe.spec["TimeoutMs"]) / 1000.0:
                    probe.expire(now)
                if probe.result is not None:
                    active.remove(probe)
                    finished.append(probe)
        now = time.monotonic()
        for probe in active:
            probe.done("error", now, "the total deadline (%s ms) passed before the probe finished" % params.get("DeadlineMs"))
            finished.append(probe)
        for spec in pending:
            probe = _SenderProbe(spec, now)
            probe.done("error", now, "not started: the total deadline (%s ms) passed" % params.get("DeadlineMs"))
            finished.append(probe)
    finally:
        for probe in active:
            if probe.sock is not None:
                probe.sock.close()
        sel.close()
    out["results"] = [p.result for p in finished]
    return out


def main():
    module = AnsibleModule(argument_spec=dict(script=dict(type="str", required=True), parameters=dict(type="dict")),
                           supports_check_mode=True)
    if SENDER_MARKER in module.params["script"]:
        module.exit_json(changed=False, output=[], error=[], result=json.dumps(run_sender(module.params["parameters"] or {})))
    import fake_windows  # pylint: disable=import-outside-toplevel,import-error
    path = state_path()
    doc = load(path, fake_windows)
    host = fake_windows.FakeWindowsHost.from_dump(doc)
    script = module.params["script"]
    params = module.params["parameters"] or {}
    if script in (windows.READ_PS1, windows.APPLY_PS1):
        result = host.execute_module(module_name="ansible.windows.win_powershell",
                                     module_args={"script": script, "parameters": params},
                                     check_mode=module.check_mode)
    else:
        # a drift script of the integration target (COM calls), understood through two patterns
        if module.check_mode:
            module.exit_json(changed=True, msg="skipped, running in check mode", result={})
        prefix = params.get("Prefix", "")
        for name in re.findall(r"\.Remove\(\$Prefix \+ '([^']+)'\)", script):
            host.remove(prefix + name)
        for name in re.findall(r"\.Item\(\$Prefix \+ '([^']+)'\)\.Enabled = \$false", script):
            host.edit(prefix + name, Enabled=False)
        result = {"changed": True, "result": {}}
    doc["rules"] = [r.record() for r in host.store]
    doc["calls"] = doc.get("calls", 0) + 1
    with open(path, "w") as handle:
        json.dump(doc, handle)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
