# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The concurrent probe engine: target validation, sockets, one event loop, bounded concurrency and
sockets, timeouts, the hard deadline, and the results.  The packets and what counts as an answer
are in probe_codecs.py, the timeout arguments and the ``timeout: auto`` estimate in probe_timing.py (re-exported
here), the remote senders of win_nap_port_probe (remote_requests / remote_results) in probe_remote.py.

Pure Python, standard library only, Python 3.8 syntax: this file runs on the vantage host
inside the ``nap_port_probe`` module.

Outcomes (``state``):

* ``open``: TCP handshake completed, or the UDP service answered the probe correctly
  (see probe_codecs.py; for plain ``udp``: any datagram back);
* ``closed``: TCP reset, or ICMP port unreachable for UDP;
* ``filtered``: no TCP answer within the timeout, or an ICMP error other than port
  unreachable (host/net unreachable, administratively prohibited);
* ``open|filtered``: UDP silence: a service that ignored the probe (NPS ignores unknown
  RADIUS clients) or a firewall that drops it, the two cannot be told apart;
* ``unexpected``: a datagram came back from the target port but it is not a valid answer
  (an echo, another protocol, or a RADIUS reply that fails authentication: wrong secret);
* ``error``: the probe could not be made (e.g. binding UDP 68 needs root).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import ipaddress
import os
import selectors
import socket
import struct
import time

from ansible_collections.configmgr.nap.plugins.module_utils.nap.probe_codecs import (
    BOTH_KINDS, DHCP_MESSAGES, IKE_VERSIONS, KINDS, RADIUS_REQUESTS, UDP_KINDS, as_bytes, auto_udp_kind,
    build_cldap_search, build_dns_query, build_kerberos_as_req, build_ntp_request, classify_cldap, classify_datagram,
    classify_dhcp, classify_dns, classify_ike, classify_kerberos, classify_ntp, classify_radius, dhcp_request,
    encode_dns_name, ike_requests, parse_mac, radius_request, random_bytes, random_int, random_mac)
# the timeout part lives in probe_timing.py; its names stay importable from here (tests and callers use them)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.probe_timing import (  # noqa: F401 pylint: disable=unused-import
    DEFAULT_MAX_TIMEOUT, DEFAULT_MIN_TIMEOUT, DEFAULT_TIMEOUT, SERVICE_ALLOWANCE, ProbeError, RttEstimator, TimeoutPolicy,
    parse_timeout)

STATES = ("open", "closed", "filtered", "open|filtered", "unexpected", "error")
BLOCKED_STATES = ("closed", "filtered", "open|filtered")
EXPECTS = ("open", "closed", "blocked")
PROTOCOLS = ("tcp", "udp")

DEFAULT_KERBEROS_REALM = "NAP-PROBE.INVALID"
# The argument spec of one target (nap_port_probe and win_nap_port_probe take the same targets).
TARGET_SPEC = dict(
    name=dict(type="str"),
    host=dict(type="str", required=True, aliases=["address"]),
    port=dict(type="int", required=True),
    protocol=dict(type="str", choices=["tcp", "udp"]),
    kind=dict(type="str", choices=list(KINDS), default="auto"),
    expect=dict(type="str", choices=["open", "closed", "blocked"]),
    secret=dict(type="str", no_log=True),
    radius_request=dict(type="str", choices=list(RADIUS_REQUESTS), default="status_server"),
    user=dict(type="str", default="configmgr-nap-probe"),
    password=dict(type="str", no_log=True),
    dhcp_message=dict(type="str", choices=list(DHCP_MESSAGES), default="discover"),
    mac=dict(type="str"),
    ike_version=dict(type="str", choices=list(IKE_VERSIONS), default="both"),
    dns_name=dict(type="str", default="."),
    kerberos_realm=dict(type="str", default=DEFAULT_KERBEROS_REALM),
    timeout=dict(type="float"),
)

DEFAULT_CONCURRENCY = 256
# File descriptors left free under the open-files limit (RLIMIT_NOFILE) besides those the process
# already holds when the probes start: the selector's own descriptor and whatever the module or a
# library opens meanwhile.
FD_HEADROOM = 16
# datagrams a UDP probe reads from one socket before the event loop looks at the other probes again
DATAGRAMS_PER_EVENT = 64


# ===========================================================================
# Targets
# ===========================================================================
_TARGET_KEYS = ("name", "host", "address", "port", "protocol", "kind", "expect", "secret", "timeout",
                "radius_request", "user", "password", "dhcp_message", "mac", "ike_version", "dns_name", "kerberos_realm")


class Target:
    """One validated probe target."""

    def __init__(self, index, name, host, address, family, port, protocol, kind, expect, timeout, options):
        self.index = index
        self.name = name
        self.host = host
        self.address = address
        self.family = family
        self.port = port
        self.protocol = protocol
        self.kind = kind
        self.expect = expect
        self.timeout = timeout
        self.options = options

    def label(self):
        text = "%s %s" % (self.protocol, _hostport(self.address, self.port))
        if self.kind not in ("tcp", "udp"):
            text += " %s" % self.kind
        return "%s (%s)" % (self.name, text) if self.name else text


def _hostport(address, port):
    return "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)


def _resolve(host, where, resolver):
    text = str(host).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        infos = resolver(text, None, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProbeError("%s: host %r does not resolve (%s)" % (where, text, exc))
    if not infos:
        raise ProbeError("%s: host %r does not resolve" % (where, text))
    return infos[0][4][0]


def normalize_targets(targets, resolver=socket.getaddrinfo):
    """Validate every target; raise ProbeError listing all problems, before anything is sent."""
    if not targets:
        raise ProbeError("no targets: give at least one target (host, port)")
    if not isinstance(targets, (list, tuple)):
        raise ProbeError("targets must be a list of mappings, got %r" % (targets,))
    errors = []
    out = []
    for index, raw in enumerate(targets):
        where = "target %d" % (index + 1)
        if not isinstance(raw, dict):
            errors.append("%s: expected a mapping (host, port, ...), got %r" % (where, raw))
            continue
        name = raw.get("name")
        if name:
            where += " (%s)" % name
        unknown = sorted(set(k for k, v in raw.items() if v is not None) - set(_TARGET_KEYS))
        if unknown:
            errors.append("%s: unknown key(s) %s" % (where, ", ".join(unknown)))
        try:
            out.append(_normalize_target(index, raw, where, resolver))
        except ProbeError as exc:
            errors.append(str(exc))
    if errors:
        raise ProbeError("; ".join(errors))
    return out


def _normalize_target(index, raw, where, resolver):
    host = raw.get("host") or raw.get("address")
    if raw.get("host") and raw.get("address") and raw.get("host") != raw.get("address"):
        raise ProbeError("%s: give host or address, not both" % where)
    if not host:
        raise ProbeError("%s: 'host' (or 'address') is required" % where)
    port = raw.get("port")
    try:
        port = int(port)
        if isinstance(raw.get("port"), bool) or str(raw.get("port")).strip() != str(port):
            raise ValueError()
    except (TypeError, ValueError):
        raise ProbeError("%s: port %r is not a number 1-65535" % (where, raw.get("port")))
    if not 1 <= port <= 65535:
        raise ProbeError("%s: port %d is out of range; expected 1-65535" % (where, port))
    kind = str(raw.get("kind") or "auto").strip().lower()
    if kind not in KINDS:
        raise ProbeError("%s: kind %r is not one of %s" % (where, raw.get("kind"), ", ".join(KINDS)))
    protocol = raw.get("protocol")
    if protocol is None:
        protocol = "udp" if kind in UDP_KINDS else "tcp"
    protocol = str(protocol).strip().lower()
    if protocol not in PROTOCOLS:
        raise ProbeError("%s: protocol %r is not one of tcp, udp" % (where, raw.get("protocol")))
    if kind == "auto":
        kind = protocol if protocol == "tcp" else auto_udp_kind(port)
        if kind == "radius" and not raw.get("secret"):
            kind = "udp"
    elif kind in BOTH_KINDS:
        pass
    elif kind in UDP_KINDS and protocol != "udp":
        raise ProbeError("%s: kind %s probes over UDP, but protocol is %s" % (where, kind, protocol))
    elif kind == "tcp" and protocol != "tcp":
        raise ProbeError("%s: kind tcp probes over TCP, but protocol is %s" % (where, protocol))
    expect = raw.get("expect")
    if expect is not None:
        expect = str(expect).strip().lower()
        if expect not in EXPECTS:
            raise ProbeError("%s: expect %r is not one of %s" % (where, raw.get("expect"), ", ".join(EXPECTS)))
    options = {}
    if kind == "radius":
        if not raw.get("secret"):
            raise ProbeError("%s: a RADIUS probe needs the shared secret ('secret') of a registered RADIUS client"
                             % where)
        request = str(raw.get("radius_request") or "status_server").strip().lower()
        if request not in RADIUS_REQUESTS:
            raise ProbeError("%s: radius_request %r is not one of %s"
                             % (where, raw.get("radius_request"), ", ".join(RADIUS_REQUESTS)))
        options.update(secret=as_bytes(raw.get("secret")), radius_request=request,
                       user=str(raw.get("user") or "configmgr-nap-probe"),
                       password=as_bytes(raw.get("password")) if raw.get("password") else random_bytes(12).hex().encode())
        if len(options["password"]) > 128:
            raise ProbeError("%s: a RADIUS password is at most 128 bytes" % where)
    elif raw.get("secret") is not None and kind != "udp":
        raise ProbeError("%s: 'secret' is only for RADIUS probes (kind radius)" % where)
    if kind in ("dhcp", "dhcp_relay"):
        message = str(raw.get("dhcp_message") or "discover").strip().lower()
        if message not in DHCP_MESSAGES:
            raise ProbeError("%s: dhcp_message %r is not one of %s"
                             % (where, raw.get("dhcp_message"), ", ".join(DHCP_MESSAGES)))
        try:
            mac = parse_mac(raw["mac"]) if raw.get("mac") else random_mac()
        except ValueError as exc:
            raise ProbeError("%s: %s" % (where, exc))
        options.update(dhcp_message=message, mac=mac)
    if kind == "ike":
        version = str(raw.get("ike_version") or "both").strip().lower()
        if version not in IKE_VERSIONS:
            raise ProbeError("%s: ike_version %r is not one of %s"
                             % (where, raw.get("ike_version"), ", ".join(IKE_VERSIONS)))
        options["ike_version"] = version
    if kind == "dns":
        try:
            encode_dns_name(raw.get("dns_name") or ".")
        except (ValueError, UnicodeError) as exc:
            raise ProbeError("%s: dns_name: %s" % (where, exc))
        options["dns_name"] = raw.get("dns_name") or "."
    if kind == "kerberos":
        realm = str(raw.get("kerberos_realm") or DEFAULT_KERBEROS_REALM).strip()
        if not realm or len(realm) > 255 or any(ord(c) < 33 or ord(c) > 126 for c in realm):
            raise ProbeError("%s: kerberos_realm %r is not a realm name (printable ASCII, no spaces)"
                             % (where, raw.get("kerberos_realm")))
        options["kerberos_realm"] = realm
    timeout = parse_timeout(raw.get("timeout"), "%s: timeout" % where, allow_auto=False)
    address = _resolve(host, where, resolver)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if kind in ("dhcp", "dhcp_relay") and family != socket.AF_INET:
        raise ProbeError("%s: DHCP probes are IPv4 only (DHCPv6 is another protocol)" % where)
    return Target(index, raw.get("name"), str(host), address, family, port, protocol, kind, expect, timeout,
                  options)


def judge(expect, state):
    """Did the state meet the expectation?  An error never does."""
    if state == "error":
        return False
    if expect is None:
        return True
    if expect == "open":
        return state == "open"
    if expect == "closed":
        return state == "closed"
    return state in BLOCKED_STATES


# ===========================================================================
# Probes
# ===========================================================================
_FILTER_ERRNOS = {errno.EHOSTUNREACH: "ICMP host unreachable or administratively prohibited",
                  errno.ENETUNREACH: "ICMP network unreachable",
                  errno.EACCES: "refused by a firewall (ICMP prohibited)",
                  errno.EPERM: "refused by the vantage host's own firewall",
                  errno.ETIMEDOUT: "connection timed out"}


class _OutOfFiles(Exception):
    """A socket could not be opened for lack of file descriptors (EMFILE, ENFILE): retry the probe later."""


_FD_ERRNOS = (errno.EMFILE, errno.ENFILE)


class _Probe:
    socktype = socket.SOCK_STREAM
    # how many sockets the probe holds at once: the scheduler keeps their sum under the open-files limit
    socket_count = 1

    def __init__(self, target, source_address=None):
        self.target = target
        self.source_address = source_address
        self.sock = None
        self.extra = []
        self.started = None
        self.result = None
        self.answer = {}
        self.timed_out = False

    # exclusive key: probes with the same key never run at the same time
    def exclusive(self):
        return None

    def finish(self, state, now, detail, answer=None):
        if self.result is None:
            elapsed = (now - self.started) if self.started is not None else 0.0
            self.result = (state, elapsed, detail, answer if answer is not None else self.answer)

    def sockets(self):
        return ([self.sock] if self.sock is not None else []) + list(self.extra)

    def close(self):
        for sock in self.sockets():
            try:
                sock.close()
            except OSError:
                pass
        self.sock = None
        self.extra = []

    def _socket(self):
        sock = socket.socket(self.target.family, self.socktype)
        sock.setblocking(False)
        return sock

    def _out_of_files(self, exc):
        """Raise _OutOfFiles (after closing what was opened) when ``exc`` is EMFILE/ENFILE."""
        if exc.errno in _FD_ERRNOS:
            self.close()
            self.started = None
            raise _OutOfFiles(str(exc))

    def _bind_source(self, sock, port=0):
        if self.source_address or port:
            sock.bind((self.source_address or ("::" if self.target.family == socket.AF_INET6 else "0.0.0.0"), port))


class TcpProbe(_Probe):
    """Handshake: open; reset: closed; silence or ICMP error: filtered.  The socket closes with RST."""

    def start(self, now):
        self.started = now
        try:
            sock = self.sock = self._socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._bind_source(sock)
            err = sock.connect_ex((self.target.address, self.target.port))
        except OSError as exc:
            self._out_of_files(exc)
            self.finish("error", now, "cannot start the connection: %s" % exc)
            return None
        if err in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            return [(sock, selectors.EVENT_WRITE)]
        self._error(err, now)
        return None

    def _error(self, err, now):
        if err == errno.ECONNREFUSED:
            self.finish("closed", now, "connection refused (TCP reset)")
        elif err in _FILTER_ERRNOS:
            self.finish("filtered", now, _FILTER_ERRNOS[err])
        else:
            self.finish("error", now, "connect failed: %s" % os.strerror(err))

    def on_event(self, sock, mask, now):
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            self.finish("open", now, "TCP handshake completed")
        else:
            self._error(err, now)

    def expire(self, now, waited):
        self.finish("filtered", now, "no answer to the SYN within %.0f ms" % (waited * 1000))


class TcpExchangeProbe(TcpProbe):
    """Handshake, then one request and its answer on the stream: ``open`` only for a valid answer.  A
    handshake without an answer in time is ``unexpected`` (something listens, not the service)."""

    def __init__(self, target, source_address=None):
        TcpProbe.__init__(self, target, source_address)
        self.connected = False
        self.buffer = b""
        self.request = b""

    def request_bytes(self, local_address):
        return b""

    def check(self, data):
        return classify_datagram(data)

    def on_event(self, sock, mask, now):
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err != 0:
                self._error(err, now)
                return None
            self.connected = True
            try:
                self.request = self.request_bytes(self.sock.getsockname()[0])
                self.sock.sendall(self.request)
            except OSError as exc:
                self.finish("error", now, "TCP handshake completed, sending the request failed: %s" % exc)
                return None
            return selectors.EVENT_READ
        try:
            data = self.sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self.finish("unexpected", now, "TCP handshake completed, then the connection failed: %s" % exc)
            return None
        if data:
            self.buffer += data
            verdict = self.check(self.buffer)
            if verdict is not None:
                self.finish(verdict[0], now, verdict[1], verdict[2])
            return None
        verdict = self.check(self.buffer) if self.buffer else None
        if verdict is None:
            self.finish("unexpected", now, "TCP handshake completed, the connection closed without a %s answer"
                        % self.target.kind)
        else:
            self.finish(verdict[0], now, verdict[1], verdict[2])
        return None

    def expire(self, now, waited):
        if self.connected:
            self.finish("unexpected", now, "TCP handshake completed, no %s answer within %.0f ms"
                        % (self.target.kind, waited * 1000))
        else:
            TcpProbe.expire(self, now, waited)


class KerberosTcpProbe(TcpExchangeProbe):
    def __init__(self, target, source_address=None):
        TcpExchangeProbe.__init__(self, target, source_address)
        self.nonce = random_int(32)

    def request_bytes(self, local_address):
        return build_kerberos_as_req(self.nonce, self.target.options["kerberos_realm"], tcp=True)

    def check(self, data):
        return classify_kerberos(data, self.request, tcp=True)


class UdpProbe(_Probe):
    """Connected UDP socket: an ICMP port unreachable comes back as ECONNREFUSED.

    Subclasses build the request and judge the answers; this generic one sends an empty
    datagram and counts any datagram back as open.
    """

    socktype = socket.SOCK_DGRAM
    local_port = 0
    silence = "no answer within %.0f ms: a UDP service that ignores the probe, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        _Probe.__init__(self, target, source_address)
        self.ignored = 0

    def requests(self, local_address):
        return [b""]

    def check(self, data):
        """-> (state, detail, answer) for a datagram that settles the probe, or None to keep waiting."""
        return classify_datagram(data)

    def _prepare(self, sock):
        self._bind_source(sock, self.local_port)

    def _connected(self, local_address):
        """Hook run once the socket is connected and has its local address, before the requests go out."""

    def start(self, now):
        self.started = now
        try:
            sock = self.sock = self._socket()
            self._prepare(sock)
        except OSError as exc:
            self._out_of_files(exc)
            self.finish("error", now, "cannot open the UDP socket: %s" % (exc.strerror or exc))
            return None
        try:
            sock.connect((self.target.address, self.target.port))
            local = sock.getsockname()[0]
            self._connected(local)
            for payload in self.requests(local):
                sock.send(payload)
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                self.finish("closed", now, "ICMP port unreachable")
            elif exc.errno in _FILTER_ERRNOS and exc.errno != errno.EACCES:
                self.finish("filtered", now, _FILTER_ERRNOS[exc.errno])
            else:
                self.finish("error", now, "cannot send: %s" % exc)
            return None
        return [(sock, selectors.EVENT_READ)] + [(extra, selectors.EVENT_READ) for extra in self.extra]

    def on_event(self, sock, mask, now):
        # at most DATAGRAMS_PER_EVENT at a time: a flood of non-answers must not keep the loop from
        # the other probes' timeouts and the deadline (the selector reports the rest again)
        for _i in range(DATAGRAMS_PER_EVENT):
            if self.result is not None:
                return
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:
                    self.finish("closed", now, "ICMP port unreachable")
                elif exc.errno in _FILTER_ERRNOS:
                    self.finish("filtered", now, _FILTER_ERRNOS[exc.errno])
                else:
                    self.finish("error", now, "receive failed: %s" % exc)
                return
            try:
                verdict = self.check(data)
            except Exception:  # pylint: disable=broad-except
                # the parsers raise only ValueError (which check() takes as "not an answer"); should one
                # still fail on some datagram, that datagram is not an answer either, and the run goes on
                verdict = None
            if verdict is None:
                if sock is self.sock:
                    self.ignored += 1
                continue
            state, detail, answer = verdict
            self.finish(state, now, detail, answer)

    def expire(self, now, waited):
        if self.ignored:
            self.finish("unexpected", now, "%d datagram(s) came back from the port, none a valid answer to the %s probe"
                        % (self.ignored, self.target.kind))
        else:
            self.finish("open|filtered", now, self.silence % (waited * 1000))


class DhcpProbe(UdpProbe):
    """DISCOVER or INFORM as a client (from UDP 68) or as a relay (from UDP 67, giaddr = our address)."""

    relay = False
    socket_count = 2            # the connected socket and the listener for broadcast answers

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.xid = random_int(32)
        self.local_port = 67 if self.relay else 68
        self.silence = ("no DHCP answer within %.0f ms: no scope for this client or relay, a server that does not "
                        "answer, or a firewall that drops it")

    def exclusive(self):
        return ("udp", self.local_port, self.target.address)

    def _bind(self, sock, address):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            sock.bind((address, self.local_port))
        except OSError as exc:
            raise OSError(exc.errno, "binding UDP %d failed (%s); a DHCP %s probe needs root or CAP_NET_BIND_SERVICE, "
                          "and no other DHCP software holding the port without SO_REUSEADDR"
                          % (self.local_port, exc.strerror, "relay" if self.relay else "client"))

    def _prepare(self, sock):
        self._bind(sock, self.source_address or "0.0.0.0")
        # The connected socket gets ICMP errors and the answers sent from the server's address.  A
        # server answers a DISCOVER with the BROADCAST flag by a broadcast to UDP 68, which a
        # connected socket does not see (connect() pins its local address), and a multi-homed
        # server may answer from another of its addresses: an unconnected listener on the same
        # port takes those; answers are matched on the xid.
        if not self.relay:
            self._listen("0.0.0.0")

    def _connected(self, local_address):
        # A relay probe's answers come unicast to its giaddr, which is the connected socket's own
        # address: its listener binds that address, never the wildcard.  On a host that is itself a
        # DHCP relay (dnsmasq, dhcrelay: a wildcard socket on UDP 67 with SO_REUSEADDR), a newer
        # wildcard socket takes the unicast datagrams to every address of the host (Linux hands them
        # to the most recently bound of equal sockets): the server's OFFERs to the relay's other
        # giaddrs would end in the probe and the relayed clients would get no answer while it ran.
        if self.relay:
            self._listen(local_address)

    def _listen(self, address):
        listener = self._socket()
        self.extra.append(listener)
        self._bind(listener, address)

    def requests(self, local_address):
        opts = self.target.options
        return [dhcp_request(opts["dhcp_message"], self.xid, opts["mac"], local_address, self.relay)]

    def check(self, data):
        return classify_dhcp(data, self.xid)


class DhcpRelayProbe(DhcpProbe):
    relay = True


class RadiusProbe(UdpProbe):
    silence = ("no RADIUS answer within %.0f ms: the server does not know this vantage as a RADIUS client (NPS "
               "ignores unknown clients), does not implement the request, or a firewall drops it")

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.identifier = random_int(8)
        self.authenticator = random_bytes(16)
        self.packet = None

    def requests(self, local_address):
        opts = self.target.options
        self.packet = radius_request(opts["radius_request"], self.identifier, opts["secret"], self.authenticator,
                                     opts["user"], opts["password"], local_address)
        return [self.packet]

    def check(self, data):
        return classify_radius(data, self.packet, self.target.options["secret"])


class IkeProbe(UdpProbe):
    silence = "no ISAKMP answer within %.0f ms: no IKE responder, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.natt = target.port == 4500
        self.spis = {}
        self.sent = set()

    def requests(self, local_address):
        packets, spis = ike_requests(self.target.options["ike_version"], self.natt)
        self.spis.update(spis)
        self.sent = set(packets)
        return packets

    def check(self, data):
        return classify_ike(data, self.spis, self.sent, self.natt)


class DnsProbe(UdpProbe):
    silence = "no DNS answer within %.0f ms: no DNS server, or a firewall that drops the query"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.qid = random_int(16)

    def requests(self, local_address):
        return [build_dns_query(self.qid, self.target.options["dns_name"], "SOA")]

    def check(self, data):
        return classify_dns(data, self.qid)


class CldapProbe(UdpProbe):
    silence = "no CLDAP answer within %.0f ms: no domain controller, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.message_id = 1 + random_int(16) % 32000

    def requests(self, local_address):
        return [build_cldap_search(self.message_id)]

    def check(self, data):
        return classify_cldap(data, self.message_id)


class NtpProbe(UdpProbe):
    silence = "no NTP answer within %.0f ms: no time server, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.transmit = random_bytes(8)

    def requests(self, local_address):
        return [build_ntp_request(self.transmit)]

    def check(self, data):
        return classify_ntp(data, self.transmit)


class KerberosProbe(UdpProbe):
    silence = "no Kerberos answer within %.0f ms: no KDC, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.nonce = random_int(32)
        self.packet = None

    def requests(self, local_address):
        self.packet = build_kerberos_as_req(self.nonce, self.target.options["kerberos_realm"])
        return [self.packet]

    def check(self, data):
        return classify_kerberos(data, self.packet)


PROBES = {"tcp": TcpProbe, "udp": UdpProbe, "dhcp": DhcpProbe, "dhcp_relay": DhcpRelayProbe,
          "radius": RadiusProbe, "ike": IkeProbe, "dns": DnsProbe, "cldap": CldapProbe, "ntp": NtpProbe,
          "kerberos": KerberosProbe}
# kinds that probe over TCP with a request (the handshake alone is kind tcp)
TCP_PROBES = {"kerberos": KerberosTcpProbe}


def probe_class(target):
    """The probe class of a validated target."""
    if target.protocol == "tcp" and target.kind in TCP_PROBES:
        return TCP_PROBES[target.kind]
    return PROBES[target.kind]


# ===========================================================================
# Engine: one selector loop, bounded concurrency, hard deadline
# ===========================================================================
def _fd_limit():
    """The soft open-files limit (RLIMIT_NOFILE, ``ulimit -n``)."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return 1 << 20 if limit == resource.RLIM_INFINITY or limit > 1 << 20 else limit
    except (ImportError, ValueError, OSError):
        return 1024


def _open_fds():
    """How many file descriptors the process holds now, or None when the system does not tell."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return max(0, len(os.listdir(path)) - 1)        # less the one listdir itself used
        except OSError:
            continue
    return None


def socket_budget(limit=None, in_use=None):
    """How many sockets the probes may hold at once: the open-files limit less the descriptors
    the process already holds and FD_HEADROOM; at least 1 (one probe at a time still runs)."""
    if limit is None:
        limit = _fd_limit()
    if in_use is None:
        in_use = _open_fds()
    if in_use is None:
        in_use = 2 * FD_HEADROOM
    return max(1, limit - in_use - FD_HEADROOM)


def _rounds(probes, concurrency, budget):
    """How many waits in a row the probes may take: batches bounded by ``concurrency`` probes and by
    ``budget`` sockets, and probes that share an exclusive key run one after the other."""
    if not probes:
        return 0
    per_round = max(1, min(concurrency, budget // max(p.socket_count for p in probes)))
    turns = {}
    for p in probes:
        key = p.exclusive()
        if key is not None:
            turns[key] = turns.get(key, 0) + 1
    return max([(len(probes) + per_round - 1) // per_round] + list(turns.values()))


def run(targets, timeout=DEFAULT_TIMEOUT, max_timeout=DEFAULT_MAX_TIMEOUT, min_timeout=DEFAULT_MIN_TIMEOUT,
        concurrency=DEFAULT_CONCURRENCY, deadline=None, source_address=None, clock=time.monotonic,
        resolver=socket.getaddrinfo):
    """Probe every target concurrently; return (results, info).

    ``targets``: raw mappings (validated here, ProbeError before anything is sent) or
    Target objects.  ``results`` keep the order of the targets.

    At most ``concurrency`` probes are in flight, and the sockets they hold (``socket_count``
    of each kind: two for DHCP) stay within socket_budget(), under the open-files limit: at a
    low limit the probes take turns, they do not fail with EMFILE.  Should a socket still be
    refused for lack of descriptors (the process opened others meanwhile), the probe waits for
    a running one to finish and the budget shrinks to what is open.
    """
    if targets and all(isinstance(t, Target) for t in targets):
        parsed = list(targets)
    else:
        parsed = normalize_targets(targets, resolver)
    policy = TimeoutPolicy(timeout, max_timeout, min_timeout)
    try:
        concurrency = int(concurrency)
    except (TypeError, ValueError):
        raise ProbeError("concurrency %r is not a number" % (concurrency,))
    if concurrency < 1:
        raise ProbeError("concurrency must be at least 1, got %d" % concurrency)
    limit = _fd_limit()
    budget = socket_budget(limit)
    concurrency = max(1, min(concurrency, budget))
    if source_address:
        try:
            source_address = str(ipaddress.ip_address(str(source_address).strip()))
        except ValueError:
            raise ProbeError("source_address %r is not an IP address" % (source_address,))
    probes = [probe_class(t)(t, source_address) for t in parsed]
    if deadline is None:
        deadline = policy.longest(parsed) * (_rounds(probes, concurrency, budget) + 1) + 5.0
    else:
        deadline = parse_timeout(deadline, "deadline", allow_auto=False)

    waiting = list(probes)
    active = {}
    busy = set()
    held = peak_sockets = peak_probes = 0
    begin = clock()
    hard_end = begin + deadline
    sel = selectors.DefaultSelector()
    try:
        while waiting or active:
            now = clock()
            if now >= hard_end:
                break
            # start what concurrency, the socket budget and exclusivity allow, in order
            i = 0
            while i < len(waiting) and len(active) < concurrency:
                probe = waiting[i]
                key = probe.exclusive()
                if key is not None and key in busy:
                    i += 1
                    continue
                if active and held + probe.socket_count > budget:
                    break
                waiting.pop(i)
                try:
                    registrations = probe.start(clock())
                except _OutOfFiles as exc:
                    if active:
                        waiting.insert(i, probe)
                        budget = max(1, held)
                        break
                    probe.finish("error", clock(), "cannot open a socket: %s (open-files limit %d)" % (exc, limit))
                    _settle(probe, policy, busy)
                    continue
                if probe.result is not None or not registrations:
                    if probe.result is None:
                        probe.finish("error", clock(), "the probe did not start")
                    _settle(probe, policy, busy)
                    continue
                for sock, events in registrations:
                    sel.register(sock, events, probe)
                active[id(probe)] = probe
                held += len(probe.sockets())
                peak_sockets = max(peak_sockets, held)
                peak_probes = max(peak_probes, len(active))
                if key is not None:
                    busy.add(key)
            if not active:
                if waiting:
                    continue
                break
            now = clock()
            next_due = min(p.started + policy.wait_for(p.target) for p in active.values())
            wait = max(0.0, min(next_due, hard_end) - now)
            for key, mask in sel.select(wait):
                probe = key.data
                if id(probe) not in active:
                    continue
                if probe.result is None:
                    events = probe.on_event(key.fileobj, mask, clock())
                    if events and probe.result is None:
                        sel.modify(key.fileobj, events, probe)
                if probe.result is not None:
                    held -= _retire(probe, sel, active, policy, busy)
            now = clock()
            for probe in list(active.values()):
                waited = now - probe.started
                limit_s = policy.wait_for(probe.target)
                if waited >= limit_s:
                    probe.timed_out = True
                    probe.expire(now, limit_s)
                    held -= _retire(probe, sel, active, policy, busy)
        now = clock()
        for probe in list(active.values()):
            probe.finish("error", now, "the total deadline (%.1f s) passed before the probe finished" % deadline)
            held -= _retire(probe, sel, active, policy, busy)
        for probe in waiting:
            probe.finish("error", now, "not started: the total deadline (%.1f s) passed" % deadline)
    finally:
        for probe in list(active.values()):
            probe.close()
        sel.close()
    elapsed = clock() - begin
    results = [_result(p) for p in probes]
    info = {"elapsed": round(elapsed, 4), "rtt": policy.overall.as_dict(),
            "timeout": policy.mode, "max_timeout": policy.max_timeout, "min_timeout": policy.min_timeout,
            "concurrency": concurrency, "deadline": deadline, "fd_limit": limit, "socket_budget": budget,
            "peak_sockets": peak_sockets, "peak_probes": peak_probes}
    return results, info


def _settle(probe, policy, busy):
    if probe.result is not None and not getattr(probe, "timed_out", False) and probe.result[0] != "error":
        policy.sample(probe.target.address, probe.result[1])
    key = probe.exclusive()
    if key is not None:
        busy.discard(key)
    probe.close()


def _retire(probe, sel, active, policy, busy):
    """Unregister and close a finished probe; -> how many sockets it released."""
    sockets = probe.sockets()
    for sock in sockets:
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
    active.pop(id(probe), None)
    _settle(probe, policy, busy)
    return len(sockets)


def _result(probe):
    t = probe.target
    state, elapsed, detail, answer = probe.result
    return {
        "name": t.name,
        "host": t.host,
        "address": t.address,
        "protocol": t.protocol,
        "port": t.port,
        "kind": t.kind,
        "state": state,
        "time_ms": round(elapsed * 1000.0, 3),
        "detail": detail,
        "answer": answer or {},
        "expected": t.expect,
        "ok": judge(t.expect, state),
    }


def summarize(results):
    states = dict((s, 0) for s in STATES)
    for r in results:
        states[r["state"]] = states.get(r["state"], 0) + 1
    failed = [r for r in results if not r["ok"]]
    return {"total": len(results), "ok": len(results) - len(failed), "failed": len(failed), "states": states}


def describe_failure(result):
    target = "%s %s" % (result["protocol"], _hostport(result["address"], result["port"]))
    if result["kind"] not in ("tcp", "udp"):
        target += " %s" % result["kind"]
    if result["name"]:
        target = "%s (%s)" % (result["name"], target)
    if result["expected"]:
        return "%s: expected %s, got %s (%s)" % (target, result["expected"], result["state"], result["detail"])
    return "%s: %s (%s)" % (target, result["state"], result["detail"])


def probe_many(targets, **kwargs):
    """run() plus the summary and the failure message: what the module returns."""
    results, info = run(targets, **kwargs)
    summary = summarize(results)
    failures = [describe_failure(r) for r in results if not r["ok"]]
    return results, summary, info, failures
