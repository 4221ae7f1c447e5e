# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small stand-alone scripts the lab writes to <lab_dir>/bin/ and runs inside its namespaces.

They are string constants, not files of their own: AnsiballZ ships a module's module_utils as Python (in
the module's zip), not other files, and these scripts are not run as part of the module but by the lab's
Python inside a namespace, long after the module has exited. LabSupervisor writes them out with
``write()`` (only when their text changed) and runs them as ``<python> <lab_dir>/bin/<name>``.

- ``LISTENER`` (bin/listener.py): the stand-in listener of a host: answers ``nap-lab <host> <port>`` on
  each TCP port, and NTP client requests on ``ntp:<port>`` (UDP).
- ``SPAWN`` (bin/spawn.py): puts a foreground daemon (charon) in the background and writes its pid file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
