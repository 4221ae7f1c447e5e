# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe engine when resources are short or the peer misbehaves.

Under a low open-files limit (RLIMIT_NOFILE) it counts sockets, not probes.  Each run happens in a
child Python whose soft RLIMIT_NOFILE is lowered to 128 before it starts; it probes loopback
targets that never answer (a bound UDP socket that nobody reads) with a short timeout, and prints
the results as JSON.  Every probe must end with a normal verdict, later if need
be, never with EMFILE ("Too many open files").

* a two-socket kind (a generic UDP probe that opens a second socket, as DHCP does) runs
  unprivileged on 127.0.0.1;
* the real DHCP kind binds UDP 68 (root) on 0.0.0.0: it runs inside a network namespace of its
  own (``unshare --net``, only its loopback up), which disappears with the child; skipped when
  that is not possible;
* "overcommit": the engine is told it may hold far more sockets than the limit allows, so sockets
  are refused with EMFILE: the refused probes wait for running ones and run later.

Then, without sockets: the deadline counts the turns probes take, a flood of datagrams that are no
answer does not hold the event loop, and a datagram a parser chokes on is no answer (not a crash).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_engine

resource = pytest.importorskip("resource")

LIMIT = 128
COUNT = 100

CHILD = r'''
import json
import socket
import sys

from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_engine

mode, count = sys.argv[1], int(sys.argv[2])
if sys.argv[3:] == ["overcommit"]:
    probe_engine.socket_budget = lambda *_args, **_kwargs: 100000
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)       # bound, never read: the targets stay silent
if mode == "dhcp":
    sink.bind(("0.0.0.0", 0))                                  # inside the child's own network namespace
    port = sink.getsockname()[1]
    targets = [{"host": "127.0.1.%d" % (i + 1), "port": port, "kind": "dhcp", "dhcp_message": "inform"}
               for i in range(count)]                          # one address each: DHCP probes of one server take turns
else:
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]

    class TwoSocketProbe(probe_engine.UdpProbe):
        """A generic UDP probe that also opens an unconnected socket, like the DHCP listener."""
        socket_count = 2

        def _prepare(self, sock):
            probe_engine.UdpProbe._prepare(self, sock)
            self.extra.append(self._socket())

    probe_engine.PROBES["udp"] = TwoSocketProbe
    targets = [{"name": "t%d" % i, "host": "127.0.0.1", "port": port, "kind": "udp"} for i in range(count)]
results, info = probe_engine.run(targets, timeout=0.2)
print(json.dumps({"results": results, "info": info}))
'''


def _lower_limit():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard if hard == resource.RLIM_INFINITY else max(hard, LIMIT)))


def run_child(mode, prefix=(), extra=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run(list(prefix) + [sys.executable, "-c", CHILD, mode, str(COUNT)] + list(extra), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          preexec_fn=_lower_limit, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_all_normal(out, state):
    results = out["results"]
    assert len(results) == COUNT
    emfile = [r["detail"] for r in results if "Too many open files" in r["detail"] or "EMFILE" in r["detail"]]
    assert not emfile, "%d of %d probes failed for lack of file descriptors: %s" % (len(emfile), COUNT, emfile[0])
    states = probe_engine.summarize(results)["states"]
    assert states[state] == COUNT, states


def test_two_socket_kind_at_128_open_files_all_complete():
    out = run_child("twosock")
    assert_all_normal(out, "open|filtered")
    info = out["info"]
    # the sockets, not the probes, were bounded: fewer than 64 two-socket probes were in flight at once
    assert info["fd_limit"] == LIMIT and info["peak_sockets"] <= info["socket_budget"] < LIMIT
    assert 1 <= info["peak_probes"] < LIMIT // 2 and info["peak_sockets"] == 2 * info["peak_probes"]


def test_sockets_refused_with_emfile_wait_for_a_turn():
    out = run_child("twosock", extra=("overcommit",))
    assert_all_normal(out, "open|filtered")
    info = out["info"]
    # the budget shrank to the sockets open when the first one was refused
    assert info["peak_sockets"] == info["socket_budget"] < LIMIT and info["peak_probes"] < COUNT


def _can_unshare_net():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    try:
        return subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _can_unshare_net(), reason="needs root and unshare --net (DHCP probes bind UDP 68)")
def test_real_dhcp_at_128_open_files_all_complete():
    # sh -c: bring up the loopback of the new (empty) namespace, then become the child; "$@" carries its argv
    out = run_child("dhcp", prefix=("unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"))
    assert_all_normal(out, "open|filtered")
    assert all(r["detail"].startswith("no DHCP answer") for r in out["results"])


# ---------------------------------------------------------------------------
# without sockets
# ---------------------------------------------------------------------------
def no_dns(*_args, **_kwargs):
    raise AssertionError("no name resolution expected")


def probes(raws):
    return [probe_engine.PROBES[t.kind](t) for t in probe_engine.normalize_targets(raws, resolver=no_dns)]


def test_socket_budget():
    assert probe_engine.socket_budget(limit=128, in_use=4) == 128 - 4 - probe_engine.FD_HEADROOM
    assert probe_engine.socket_budget(limit=20, in_use=10) == 1                  # one probe at a time still runs
    assert probe_engine.socket_budget(limit=1024) <= 1024 - probe_engine.FD_HEADROOM - 3  # stdin, stdout, stderr at least
    assert probe_engine.DhcpProbe.socket_count == probe_engine.DhcpRelayProbe.socket_count == 2
    assert probe_engine.TcpProbe.socket_count == probe_engine.UdpProbe.socket_count == probe_engine.RadiusProbe.socket_count == 1


def test_rounds_count_sockets_and_exclusive_turns():
    tcp = probes([{"host": "198.18.0.%d" % (i % 200 + 2), "port": 80 + i // 200} for i in range(1000)])
    assert probe_engine._rounds(tcp, 256, 1000) == 4                    # 1000 probes, 256 at a time
    assert probe_engine._rounds(tcp, 256, 100) == 10                    # 100 sockets at a time
    dhcp = probes([{"host": "198.18.0.%d" % (i + 2), "port": 67, "kind": "dhcp"} for i in range(100)])
    assert probe_engine._rounds(dhcp, 256, 108) == 2                    # two sockets each: 54 at a time
    assert probe_engine._rounds(dhcp, 256, 1) == 100                    # one probe at a time, whatever it needs
    one_server = probes([{"host": "198.18.0.2", "port": 67, "kind": "dhcp"}] * 10)
    assert probe_engine._rounds(one_server, 256, 1000) == 10            # DHCP probes of one server take turns
    assert probe_engine._rounds([], 256, 1000) == 0


def test_default_deadline_leaves_time_for_every_turn(monkeypatch):
    def settled_at_once(self, now):
        self.started = now
        self.finish("open|filtered", now, "no socket in this test")

    monkeypatch.setattr(probe_engine.DhcpProbe, "start", settled_at_once)
    monkeypatch.setattr(probe_engine, "socket_budget", lambda *_a, **_k: 9)
    many = [{"host": "198.18.0.%d" % (i + 2), "port": 67, "kind": "dhcp"} for i in range(20)]
    results, info = probe_engine.run(many, timeout=1.0, resolver=no_dns)
    assert [r["state"] for r in results] == ["open|filtered"] * 20
    assert info["deadline"] == 1.0 * (5 + 1) + 5.0          # 9 sockets hold 4 DHCP probes: 5 turns, plus one
    one_server = [{"host": "198.18.0.2", "port": 67, "kind": "dhcp"}] * 10
    assert probe_engine.run(one_server, timeout=1.0, resolver=no_dns)[1]["deadline"] == 1.0 * (10 + 1) + 5.0


class EndlessSocket:
    """recv() always has one more datagram that answers nothing."""

    def __init__(self):
        self.reads = 0

    def recv(self, _size):
        self.reads += 1
        return b"not an answer"


def test_a_flood_of_non_answers_does_not_hold_the_event_loop():
    p = probes([{"host": "198.18.0.2", "port": 53, "kind": "dns"}])[0]
    p.started, p.sock = 0.0, EndlessSocket()
    start = time.time()
    p.on_event(p.sock, 1, 0.01)
    assert p.sock.reads == probe_engine.DATAGRAMS_PER_EVENT and p.ignored == probe_engine.DATAGRAMS_PER_EVENT
    assert p.result is None and time.time() - start < 1.0
    p.expire(0.5, 0.5)
    assert p.result[0] == "unexpected"


def test_a_parser_that_chokes_makes_the_datagram_no_answer(monkeypatch):
    def choke(self, data):
        raise IndexError("a parser bug")
    monkeypatch.setattr(probe_engine.DnsProbe, "check", choke)
    p = probes([{"host": "198.18.0.2", "port": 53, "kind": "dns"}])[0]
    p.started, p.sock = 0.0, EndlessSocket()
    p.on_event(p.sock, 1, 0.01)
    p.expire(0.5, 0.5)
    assert p.result[0] == "unexpected" and "none a valid answer" in p.result[2]
