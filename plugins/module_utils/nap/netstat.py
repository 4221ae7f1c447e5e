# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Listening sockets from ``netstat -ano`` output (Windows Server 2003, 2008 and 2008 R2).

``Get-NetTCPConnection`` (and so ``ansible.windows.win_listen_ports_facts``) exists only from
Windows Server 2012 on; older hosts have ``netstat -ano``:

    Proto  Local Address          Foreign Address        State           PID
    TCP    0.0.0.0:135            0.0.0.0:0              LISTENING       712
    TCP    [::]:445               [::]:0                 LISTENING       4
    UDP    0.0.0.0:1812           *:*                                    1364

A TCP row listens when its foreign address is the unspecified one (``0.0.0.0:0`` / ``[::]:0``),
whatever the state column says (it is localized: ``ABHÖREN``, ``ÉCOUTE``, ...); every UDP row
with ``*:*`` as foreign address is a bound socket.  The result has the shape of
``listen_ports_facts`` / ``win_listen_ports_facts``: ``tcp_listen`` and ``udp_listen``, lists of
``{protocol, address, port, pid, name}`` (``name`` is empty: netstat -ano does not give it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_ROW = re.compile(r"^\s*(TCP|UDP)\s+(\S+)\s+(\S+)\s+(?:(\S+)\s+)?(\d+)\s*$", re.IGNORECASE)


def split_endpoint(text):
    """"0.0.0.0:135" -> ("0.0.0.0", 135); "[::]:445" -> ("::", 445); "[fe80::1%11]:389" -> ("fe80::1%11", 389);
    "*:*" -> ("*", None)."""
    text = text.strip()
    if text.startswith("["):
        host, _sep, port = text[1:].partition("]:")
    else:
        host, _sep, port = text.rpartition(":")
    if not _sep:
        raise ValueError("not an address:port endpoint: %r" % text)
    return host, (int(port) if port.isdigit() else None)


def parse_netstat_ano(text):
    """{"tcp_listen": [...], "udp_listen": [...]} from the text of ``netstat -ano`` (other lines ignored)."""
    tcp, udp = [], []
    seen = set()
    for line in (text or "").splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        proto, local, foreign, _state, pid = match.groups()
        proto = proto.lower()
        try:
            address, port = split_endpoint(local)
            foreign_host, foreign_port = split_endpoint(foreign)
        except ValueError:
            continue
        if port is None:
            continue
        if proto == "tcp" and not (foreign_host in ("0.0.0.0", "::") and foreign_port == 0):
            continue
        if proto == "udp" and foreign_host != "*":
            continue
        key = (proto, address, port)
        if key in seen:
            continue
        seen.add(key)
        entry = {"protocol": proto, "address": address, "port": port, "pid": int(pid), "name": ""}
        (tcp if proto == "tcp" else udp).append(entry)
    return {"tcp_listen": tcp, "udp_listen": udp}
