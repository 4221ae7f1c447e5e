# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reachability probes: packet builders, answer parsers and a concurrent probe engine.

Pure Python, standard library only, Python 3.8 syntax: this file runs on the vantage host
inside the ``nap_port_probe`` module.

Outcomes (``state``):

* ``open``: TCP handshake completed, or the UDP service answered the probe correctly
  (a DHCP offer/ack/nak with our xid, a RADIUS reply that passes the authenticator checks
  with the shared secret, an ISAKMP reply carrying our initiator cookie/SPI, a DNS response
  with our id, a CLDAP searchResEntry/searchResDone with our message id, an NTP reply with
  our timestamp; for plain ``udp``: any datagram back);
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
import hashlib
import hmac
import ipaddress
import math
import os
import selectors
import socket
import struct
import time

STATES = ("open", "closed", "filtered", "open|filtered", "unexpected", "error")
BLOCKED_STATES = ("closed", "filtered", "open|filtered")
EXPECTS = ("open", "closed", "blocked")
PROTOCOLS = ("tcp", "udp")
KINDS = ("auto", "tcp", "udp", "dhcp", "dhcp_relay", "radius", "ike", "dns", "cldap", "ntp")
UDP_KINDS = ("udp", "dhcp", "dhcp_relay", "radius", "ike", "dns", "cldap", "ntp")
RADIUS_REQUESTS = ("status_server", "access_request")
DHCP_MESSAGES = ("discover", "inform")
IKE_VERSIONS = ("ikev1", "ikev2", "both")

# Service time allowed on top of the round-trip estimate in ``timeout: auto`` (seconds):
# the estimate comes from kernel-level answers (TCP handshakes, resets, ICMP), a service
# needs a little more to build its answer.
SERVICE_ALLOWANCE = {
    "tcp": 0.0, "udp": 0.0, "dns": 0.1, "cldap": 0.1, "ike": 0.1, "ntp": 0.05,
    "radius": 0.25, "dhcp": 0.5, "dhcp_relay": 0.5,
}

DEFAULT_TIMEOUT = "auto"
DEFAULT_MAX_TIMEOUT = 3.0
DEFAULT_MIN_TIMEOUT = 0.05
DEFAULT_CONCURRENCY = 256
# File descriptors left free under the open-files limit (RLIMIT_NOFILE) besides those the process
# already holds when the probes start: the selector's own descriptor and whatever the module or a
# library opens meanwhile.
FD_HEADROOM = 16
# datagrams a UDP probe reads from one socket before the event loop looks at the other probes again
DATAGRAMS_PER_EVENT = 64


class ProbeError(Exception):
    """Bad input, raised before anything is sent."""


def _rand(n):
    return os.urandom(n)


def _rand_int(bits):
    return int.from_bytes(os.urandom(bits // 8), "big")


def _to_bytes(value):
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


# ===========================================================================
# DHCP (RFC 2131 / RFC 2132)
# ===========================================================================
DHCP_MAGIC = b"\x63\x82\x53\x63"
DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPDECLINE, DHCPACK, DHCPNAK, DHCPRELEASE, DHCPINFORM = range(1, 9)
DHCP_TYPES = {1: "DHCPDISCOVER", 2: "DHCPOFFER", 3: "DHCPREQUEST", 4: "DHCPDECLINE", 5: "DHCPACK",
              6: "DHCPNAK", 7: "DHCPRELEASE", 8: "DHCPINFORM"}
# subnet mask, router, DNS, domain name, vendor specific (NAP uses it), lease time, server id
DHCP_PARAMS = (1, 3, 6, 15, 43, 51, 54)
_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")


def random_mac():
    """A locally administered unicast MAC address (02:..)."""
    raw = bytearray(_rand(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return bytes(raw)


def parse_mac(text):
    parts = str(text).replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError("%r is not a MAC address (e.g. 02:00:00:00:00:01)" % (text,))
    return bytes(int(p, 16) for p in parts)


def format_mac(raw):
    return ":".join("%02x" % b for b in bytearray(raw))


def encode_dhcp_options(options):
    """[(code, bytes)] -> option bytes, ending with the end option (255)."""
    out = b""
    for code, value in options:
        value = _to_bytes(value)
        if len(value) > 255:
            raise ValueError("DHCP option %d is longer than 255 bytes" % code)
        out += struct.pack("!BB", code, len(value)) + value
    return out + b"\xff"


def build_dhcp(message_type, xid, mac, ciaddr="0.0.0.0", giaddr="0.0.0.0", broadcast=True, hops=0,
               vendor_class=b"MSFT 5.0", params=DHCP_PARAMS, extra_options=()):
    """A BOOTREQUEST carrying a DHCP message (DISCOVER, INFORM, ...), padded to 300 bytes.

    ``broadcast`` sets the BROADCAST flag so a server answers a DISCOVER from a client
    without an address by broadcast; ``giaddr``/``hops`` make it a relayed request.
    """
    header = _BOOTP.pack(1, 1, 6, hops, xid, 0, 0x8000 if broadcast else 0,
                         socket.inet_aton(ciaddr), b"\0" * 4, b"\0" * 4, socket.inet_aton(giaddr),
                         bytes(mac), b"", b"")
    options = [(53, bytes(bytearray([message_type]))), (61, b"\x01" + bytes(mac))]
    if vendor_class:
        options.append((60, vendor_class))
    if params:
        options.append((55, bytes(bytearray(params))))
    options.extend(extra_options)
    packet = header + DHCP_MAGIC + encode_dhcp_options(options)
    if len(packet) < 300:
        packet += b"\0" * (300 - len(packet))
    return packet


def parse_dhcp_options(data):
    """Option bytes -> {code: bytes}; stops at the end option.  Raises ValueError if truncated."""
    options = {}
    i = 0
    data = bytearray(data)
    while i < len(data):
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            break
        if i + 1 >= len(data):
            raise ValueError("DHCP option %d is truncated" % code)
        length = data[i + 1]
        value = bytes(data[i + 2:i + 2 + length])
        if len(value) != length:
            raise ValueError("DHCP option %d is truncated" % code)
        # RFC 3396: a repeated option is concatenated.
        options[code] = options.get(code, b"") + value
        i += 2 + length
    return options


def _ip_list(raw):
    return [socket.inet_ntoa(raw[i:i + 4]) for i in range(0, len(raw) - len(raw) % 4, 4)]


def parse_dhcp(data):
    """A BOOTP/DHCP packet -> dict.  Raises ValueError when it is not one."""
    if len(data) < _BOOTP.size + 4:
        raise ValueError("too short for a DHCP packet (%d bytes)" % len(data))
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     bootfile) = _BOOTP.unpack(data[:_BOOTP.size])
    if data[_BOOTP.size:_BOOTP.size + 4] != DHCP_MAGIC:
        raise ValueError("no DHCP magic cookie")
    options = parse_dhcp_options(data[_BOOTP.size + 4:])
    mtype = bytearray(options.get(53, b"\0"))[0] if options.get(53) else None
    out = {
        "op": op, "htype": htype, "hlen": hlen, "hops": hops, "xid": xid, "secs": secs, "flags": flags,
        "ciaddr": socket.inet_ntoa(ciaddr), "yiaddr": socket.inet_ntoa(yiaddr),
        "siaddr": socket.inet_ntoa(siaddr), "giaddr": socket.inet_ntoa(giaddr),
        "chaddr": format_mac(chaddr[:min(hlen, 16)]),
        "options": options,
        "message_type": mtype,
        "message_type_name": DHCP_TYPES.get(mtype, "unknown(%s)" % mtype),
    }
    if 54 in options and len(options[54]) == 4:
        out["server_id"] = socket.inet_ntoa(options[54])
    if 51 in options and len(options[51]) == 4:
        out["lease_time"] = struct.unpack("!I", options[51])[0]
    if 1 in options and len(options[1]) == 4:
        out["subnet_mask"] = socket.inet_ntoa(options[1])
    if 3 in options:
        out["routers"] = _ip_list(options[3])
    if 6 in options:
        out["dns_servers"] = _ip_list(options[6])
    if 56 in options:
        out["message"] = options[56].decode("utf-8", "replace")
    return out


# ===========================================================================
# RADIUS (RFC 2865, RFC 2866, RFC 3579 Message-Authenticator, RFC 5997 Status-Server)
# ===========================================================================
RADIUS_CODES = {1: "Access-Request", 2: "Access-Accept", 3: "Access-Reject", 4: "Accounting-Request",
                5: "Accounting-Response", 11: "Access-Challenge", 12: "Status-Server", 13: "Status-Client"}
ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, ACCOUNTING_RESPONSE = 1, 2, 3, 5
ACCESS_CHALLENGE, STATUS_SERVER = 11, 12
ATTR_USER_NAME, ATTR_USER_PASSWORD, ATTR_NAS_IP_ADDRESS, ATTR_REPLY_MESSAGE = 1, 2, 4, 18
ATTR_NAS_IDENTIFIER, ATTR_MESSAGE_AUTHENTICATOR, ATTR_NAS_IPV6_ADDRESS = 32, 80, 95
RADIUS_REPLIES = {ACCESS_REQUEST: (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE),
                  STATUS_SERVER: (ACCESS_ACCEPT, ACCESS_REJECT, ACCOUNTING_RESPONSE)}
NAS_IDENTIFIER = b"configmgr.nap-probe"


def radius_attribute(attr_type, value):
    value = _to_bytes(value)
    if len(value) > 253:
        raise ValueError("RADIUS attribute %d is longer than 253 bytes" % attr_type)
    return struct.pack("!BB", attr_type, len(value) + 2) + value


def hide_password(password, secret, authenticator):
    """User-Password hiding of RFC 2865 section 5.2 (up to 128 bytes)."""
    password = _to_bytes(password)
    secret = _to_bytes(secret)
    if len(password) > 128:
        raise ValueError("a RADIUS User-Password is at most 128 bytes")
    padded = password + b"\0" * ((16 - len(password) % 16) % 16 if password else 16)
    out = b""
    last = authenticator
    for i in range(0, len(padded), 16):
        key = hashlib.md5(secret + last).digest()
        block = bytes(bytearray(a ^ b for a, b in zip(bytearray(padded[i:i + 16]), bytearray(key))))
        out += block
        last = block
    return out


def unhide_password(hidden, secret, authenticator):
    """Inverse of hide_password; trailing NULs are stripped."""
    secret = _to_bytes(secret)
    out = b""
    last = authenticator
    for i in range(0, len(hidden), 16):
        key = hashlib.md5(secret + last).digest()
        block = hidden[i:i + 16]
        out += bytes(bytearray(a ^ b for a, b in zip(bytearray(block), bytearray(key))))
        last = block
    return out.rstrip(b"\0")


def message_authenticator(secret, packet):
    """HMAC-MD5 over the packet (its Message-Authenticator value zeroed by the caller), RFC 3579 3.2."""
    return hmac.new(_to_bytes(secret), packet, hashlib.md5).digest()


def _find_attribute_offset(packet, attr_type):
    i = 20
    while i + 2 <= len(packet):
        t, length = bytearray(packet[i:i + 2])
        if length < 2:
            raise ValueError("RADIUS attribute %d has length %d" % (t, length))
        if t == attr_type:
            return i
        i += length
    return None


def build_radius(code, identifier, secret, attributes=(), authenticator=None, with_message_authenticator=True):
    """A RADIUS request with a random (or given) Request Authenticator.

    ``attributes`` is a list of (type, value).  The Message-Authenticator goes first
    (as servers hardened against BlastRADIUS prefer) and is computed over the whole packet.
    """
    if authenticator is None:
        authenticator = _rand(16)
    body = b""
    if with_message_authenticator:
        body += radius_attribute(ATTR_MESSAGE_AUTHENTICATOR, b"\0" * 16)
    for attr_type, value in attributes:
        body += radius_attribute(attr_type, value)
    length = 20 + len(body)
    if length > 4096:
        raise ValueError("RADIUS packet longer than 4096 bytes")
    packet = struct.pack("!BBH", code, identifier, length) + authenticator + body
    if with_message_authenticator:
        mac = message_authenticator(secret, packet)
        packet = packet[:22] + mac + packet[38:]
    return packet


def build_status_server(identifier, secret, authenticator=None, nas_identifier=NAS_IDENTIFIER):
    """Status-Server (RFC 5997): Message-Authenticator is mandatory."""
    attributes = [(ATTR_NAS_IDENTIFIER, nas_identifier)] if nas_identifier else []
    return build_radius(STATUS_SERVER, identifier, secret, attributes, authenticator)


def build_access_request(identifier, secret, user_name, password, authenticator=None,
                         nas_identifier=NAS_IDENTIFIER, nas_ip_address=None):
    """Access-Request with User-Name, hidden User-Password, NAS-Identifier, Message-Authenticator."""
    if authenticator is None:
        authenticator = _rand(16)
    attributes = [(ATTR_USER_NAME, user_name),
                  (ATTR_USER_PASSWORD, hide_password(password, secret, authenticator))]
    if nas_identifier:
        attributes.append((ATTR_NAS_IDENTIFIER, nas_identifier))
    if nas_ip_address:
        addr = ipaddress.ip_address(str(nas_ip_address))
        attributes.append((ATTR_NAS_IP_ADDRESS if addr.version == 4 else ATTR_NAS_IPV6_ADDRESS, addr.packed))
    return build_radius(ACCESS_REQUEST, identifier, secret, attributes, authenticator)


def parse_radius(data):
    """RADIUS packet -> dict(code, code_name, identifier, length, authenticator, attributes=[(type, value)])."""
    if len(data) < 20:
        raise ValueError("too short for RADIUS (%d bytes)" % len(data))
    code, identifier, length = struct.unpack("!BBH", data[:4])
    if length < 20 or length > len(data):
        raise ValueError("RADIUS length field %d does not fit the %d bytes received" % (length, len(data)))
    attributes = []
    i = 20
    while i < length:
        if i + 2 > length:
            raise ValueError("RADIUS attribute header truncated")
        t, alen = bytearray(data[i:i + 2])
        if alen < 2 or i + alen > length:
            raise ValueError("RADIUS attribute %d has a bad length %d" % (t, alen))
        attributes.append((t, bytes(data[i + 2:i + alen])))
        i += alen
    return {"code": code, "code_name": RADIUS_CODES.get(code, "code %d" % code), "identifier": identifier,
            "length": length, "authenticator": bytes(data[4:20]), "attributes": attributes}


def response_authenticator(packet, request_authenticator, secret):
    """MD5(Code + Identifier + Length + Request Authenticator + Attributes + Secret), RFC 2865 section 3."""
    length = struct.unpack("!H", packet[2:4])[0]
    return hashlib.md5(packet[:4] + request_authenticator + packet[20:length] + _to_bytes(secret)).digest()


def verify_radius_response(packet, request_authenticator, secret):
    """Check a reply with the shared secret: (True, "") or (False, reason).

    Checks the Response Authenticator and, when present, the Message-Authenticator
    (computed with the Request Authenticator in the authenticator field, RFC 3579 3.2).
    """
    try:
        parsed = parse_radius(packet)
    except ValueError as exc:
        return False, str(exc)
    packet = packet[:parsed["length"]]
    if not hmac.compare_digest(response_authenticator(packet, request_authenticator, secret), packet[4:20]):
        return False, "the Response Authenticator does not match (wrong shared secret?)"
    offset = _find_attribute_offset(packet, ATTR_MESSAGE_AUTHENTICATOR)
    if offset is not None:
        if packet[offset + 1] != 18:
            return False, "the Message-Authenticator attribute has a bad length"
        zeroed = packet[:4] + request_authenticator + packet[20:offset + 2] + b"\0" * 16 + packet[offset + 18:]
        if not hmac.compare_digest(message_authenticator(secret, zeroed), packet[offset + 2:offset + 18]):
            return False, "the Message-Authenticator does not match (wrong shared secret?)"
    return True, ""


def verify_radius_request(packet, secret):
    """Server side check of a request's Message-Authenticator (used by tests and fake servers)."""
    offset = _find_attribute_offset(packet, ATTR_MESSAGE_AUTHENTICATOR)
    if offset is None:
        return False
    zeroed = packet[:offset + 2] + b"\0" * 16 + packet[offset + 18:]
    return hmac.compare_digest(message_authenticator(secret, zeroed), packet[offset + 2:offset + 18])


def build_radius_response(code, request, secret, attributes=(), with_message_authenticator=True):
    """A reply to ``request`` (bytes) signed with ``secret``: what a server sends (tests, lab responders)."""
    identifier = bytearray(request)[1]
    req_auth = bytes(request[4:20])
    body = b""
    if with_message_authenticator:
        body += radius_attribute(ATTR_MESSAGE_AUTHENTICATOR, b"\0" * 16)
    for attr_type, value in attributes:
        body += radius_attribute(attr_type, value)
    header = struct.pack("!BBH", code, identifier, 20 + len(body))
    if with_message_authenticator:
        mac = message_authenticator(secret, header + req_auth + body)
        body = body[:2] + mac + body[18:]
    auth = hashlib.md5(header + req_auth + body + _to_bytes(secret)).digest()
    return header + auth + body


# ===========================================================================
# IKE / ISAKMP (RFC 2408/2409 IKEv1 Main Mode, RFC 7296 IKEv2 IKE_SA_INIT, RFC 3948 NAT-T)
# ===========================================================================
IKE_EXCHANGES = {2: "Main Mode", 4: "Aggressive Mode", 5: "Informational", 32: "Quick Mode",
                 34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL",
                 243: "AuthIP Main Mode"}
IKEV1_NOTIFY = {14: "NO-PROPOSAL-CHOSEN", 16: "PAYLOAD-MALFORMED", 18: "INVALID-COOKIE",
                5: "INVALID-MAJOR-VERSION", 1: "INVALID-PAYLOAD-TYPE", 24: "AUTHENTICATION-FAILED"}
IKEV2_NOTIFY = {1: "UNSUPPORTED_CRITICAL_PAYLOAD", 4: "INVALID_IKE_SPI", 5: "INVALID_MAJOR_VERSION",
                7: "INVALID_SYNTAX", 14: "NO_PROPOSAL_CHOSEN", 17: "INVALID_KE_PAYLOAD",
                24: "AUTHENTICATION_FAILED", 16390: "COOKIE", 16388: "NAT_DETECTION_SOURCE_IP",
                16389: "NAT_DETECTION_DESTINATION_IP"}
NATT_MARKER = b"\0\0\0\0"
_ISAKMP = struct.Struct("!8s8sBBBBII")


def _v1_attr(attr_type, value):
    """A TV-form (short) SA attribute."""
    return struct.pack("!HH", 0x8000 | attr_type, value)


def build_ikev1_main_mode(icookie):
    """First Main Mode message: ISAKMP header + SA (DOI IPsec, SIT_IDENTITY_ONLY) with one
    ISAKMP proposal offering AES-128 and 3DES, SHA-1, MODP-1024, with certificate, pre-shared
    key and Kerberos (Windows) authentication."""
    suites = []
    for auth in (3, 1, 65001):              # RSA signature, pre-shared key, Kerberos (Windows GSS)
        suites.append((7, 128, auth))       # AES-CBC 128
        suites.append((5, None, auth))      # 3DES-CBC
    transforms = b""
    for number, (cipher, keylen, auth) in enumerate(suites, 1):
        attrs = _v1_attr(1, cipher)
        if keylen:
            attrs += _v1_attr(14, keylen)
        attrs += _v1_attr(2, 2) + _v1_attr(3, auth) + _v1_attr(4, 2) + _v1_attr(11, 1) + _v1_attr(12, 28800)
        next_payload = 3 if number < len(suites) else 0
        body = struct.pack("!BBH", number, 1, 0) + attrs          # transform #, KEY_IKE, reserved
        transforms += struct.pack("!BBH", next_payload, 0, 4 + len(body)) + body
    proposal_body = struct.pack("!BBBB", 1, 1, 0, len(suites)) + transforms   # #1, PROTO_ISAKMP, no SPI
    proposal = struct.pack("!BBH", 0, 0, 4 + len(proposal_body)) + proposal_body
    sa_body = struct.pack("!II", 1, 1) + proposal                              # DOI IPsec, SIT_IDENTITY_ONLY
    sa = struct.pack("!BBH", 0, 0, 4 + len(sa_body)) + sa_body
    header = _ISAKMP.pack(icookie, b"\0" * 8, 1, 0x10, 2, 0, 0, _ISAKMP.size + len(sa))
    return header + sa


def _v2_transform(last, ttype, tid, keylen=None):
    attrs = struct.pack("!HH", 0x800E, keylen) if keylen else b""
    return struct.pack("!BBHBBH", 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs


def build_ikev2_sa_init(spi, nonce=None, ke_data=None, dh_group=14):
    """IKE_SA_INIT request: SA (AES-CBC-128/256, HMAC-SHA1/SHA2-256, MODP-2048/1024), KE, Nonce.

    The KE payload carries random bytes of the right size: enough to make a responder
    answer (with its own SA_INIT, INVALID_KE_PAYLOAD or NO_PROPOSAL_CHOSEN).
    """
    if nonce is None:
        nonce = _rand(32)
    if ke_data is None:
        size = {14: 256, 2: 128}[dh_group]
        ke_data = b"\x7f" + _rand(size - 1)
    items = [(1, 12, 128), (1, 12, 256), (2, 2, None), (2, 5, None), (3, 2, None), (3, 12, None),
             (4, 14, None), (4, 2, None)]
    transforms = b""
    for i, (ttype, tid, keylen) in enumerate(items):
        transforms += _v2_transform(i == len(items) - 1, ttype, tid, keylen)
    proposal_body = struct.pack("!BBBB", 1, 1, 0, len(items)) + transforms     # #1, IKE, no SPI
    proposal = struct.pack("!BBH", 0, 0, 4 + len(proposal_body)) + proposal_body
    sa = struct.pack("!BBH", 34, 0, 4 + len(proposal)) + proposal              # next: KE
    ke_body = struct.pack("!HH", dh_group, 0) + ke_data
    ke = struct.pack("!BBH", 40, 0, 4 + len(ke_body)) + ke_body                  # next: Nonce
    nonce_payload = struct.pack("!BBH", 0, 0, 4 + len(nonce)) + nonce
    body = sa + ke + nonce_payload
    header = _ISAKMP.pack(spi, b"\0" * 8, 33, 0x20, 34, 0x08, 0, _ISAKMP.size + len(body))
    return header + body


def parse_isakmp(data, natt=False):
    """ISAKMP/IKE header and payload chain -> dict.  Raises ValueError when it is not ISAKMP."""
    if natt:
        if data[:4] != NATT_MARKER:
            raise ValueError("no non-ESP marker on a NAT-T packet")
        data = data[4:]
    if len(data) < _ISAKMP.size:
        raise ValueError("too short for ISAKMP (%d bytes)" % len(data))
    icookie, rcookie, next_payload, version, exchange, flags, message_id, length = _ISAKMP.unpack(
        data[:_ISAKMP.size])
    major = version >> 4
    if major not in (1, 2):
        raise ValueError("ISAKMP major version %d" % major)
    if length < _ISAKMP.size or length > len(data):
        raise ValueError("ISAKMP length %d does not fit the %d bytes received" % (length, len(data)))
    payloads = []
    notifies = []
    i = _ISAKMP.size
    ptype = next_payload
    while ptype and i + 4 <= length:
        nxt, _critical, plen = struct.unpack("!BBH", data[i:i + 4])
        if plen < 4 or i + plen > length:
            raise ValueError("ISAKMP payload %d has a bad length %d" % (ptype, plen))
        body = data[i + 4:i + plen]
        payloads.append(ptype)
        if major == 1 and ptype == 11 and len(body) >= 8:
            notifies.append(struct.unpack("!H", body[6:8])[0])
        elif major == 2 and ptype == 41 and len(body) >= 4:
            notifies.append(struct.unpack("!H", body[2:4])[0])
        if ptype == 46:             # IKEv2 Encrypted: the rest is inside
            break
        ptype = nxt
        i += plen
    return {"icookie": icookie, "rcookie": rcookie, "next_payload": next_payload, "major": major,
            "minor": version & 0x0F, "exchange": exchange,
            "exchange_name": IKE_EXCHANGES.get(exchange, "exchange %d" % exchange), "flags": flags,
            "message_id": message_id, "length": length, "payloads": payloads, "notifies": notifies}


def describe_isakmp(parsed):
    names = IKEV1_NOTIFY if parsed["major"] == 1 else IKEV2_NOTIFY
    text = "IKEv%d %s reply" % (parsed["major"], parsed["exchange_name"])
    if parsed["notifies"]:
        text += " (notify %s)" % ", ".join(names.get(n, str(n)) for n in parsed["notifies"])
    return text


# ===========================================================================
# DNS (RFC 1035)
# ===========================================================================
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
DNS_TYPES = {"A": 1, "NS": 2, "SOA": 6, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33}


def encode_dns_name(name):
    name = str(name).strip()
    if name in ("", "."):
        return b"\0"
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise ValueError("bad DNS label %r in %r" % (label, name))
        out += struct.pack("!B", len(raw)) + raw
    if len(out) + 1 > 255:
        raise ValueError("DNS name %r is too long" % name)
    return out + b"\0"


def build_dns_query(qid, name=".", qtype="SOA", recursion_desired=False):
    """A standard query; RD is off by default so the server never recurses on our behalf."""
    qtype_num = DNS_TYPES[qtype] if isinstance(qtype, str) else int(qtype)
    flags = 0x0100 if recursion_desired else 0
    return struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + encode_dns_name(name) + struct.pack("!HH", qtype_num, 1)


DNS_NAME_MAX = 255          # octets of a name on the wire, RFC 1035 section 3.1
DNS_POINTER_HOPS = 64


def _dns_name(data, offset, cache=None):
    """The (possibly compressed) name at ``offset`` -> (name, offset after it).  Raises ValueError.

    A name is at most 255 octets and follows at most 64 compression pointers.  ``cache``, a dict
    kept for one message (pointer target -> labels, their octets, their total), decodes each
    target once: a datagram made of pointers to one long name costs time in proportion to its size.
    """
    labels = []
    sizes = []
    total = 1                   # the root's zero octet
    targets = []
    jumped_end = None
    while True:
        if offset >= len(data):
            raise ValueError("DNS name runs past the packet")
        length = bytearray(data[offset:offset + 1])[0]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise ValueError("DNS compression pointer truncated")
            pointer = struct.unpack("!H", data[offset:offset + 2])[0] & 0x3FFF
            if jumped_end is None:
                jumped_end = offset + 2
            if cache is not None and pointer in cache:
                tail, tail_sizes, tail_total = cache[pointer]
                labels.extend(tail)
                sizes.extend(tail_sizes)
                total += tail_total
                if total > DNS_NAME_MAX:
                    raise ValueError("DNS name longer than %d octets" % DNS_NAME_MAX)
                break
            if len(targets) >= DNS_POINTER_HOPS or pointer >= len(data):
                raise ValueError("DNS compression loop")
            targets.append((pointer, len(labels)))
            offset = pointer
            continue
        if length & 0xC0:
            raise ValueError("unsupported DNS label type")
        offset += 1
        if length == 0:
            break
        sizes.append(1 + length)
        total += 1 + length
        if total > DNS_NAME_MAX:
            raise ValueError("DNS name longer than %d octets" % DNS_NAME_MAX)
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length
    if cache is not None:
        for pointer, first in targets:
            cache[pointer] = (labels[first:], sizes[first:], sum(sizes[first:]))
    return ".".join(labels) + ".", (jumped_end if jumped_end is not None else offset)


def parse_dns(data):
    """DNS message -> dict(id, qr, opcode, aa, tc, rd, ra, rcode, rcode_name, questions, answers)."""
    if len(data) < 12:
        raise ValueError("too short for DNS (%d bytes)" % len(data))
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
    out = {"id": qid, "qr": bool(flags & 0x8000), "opcode": (flags >> 11) & 0xF, "aa": bool(flags & 0x0400),
           "tc": bool(flags & 0x0200), "rd": bool(flags & 0x0100), "ra": bool(flags & 0x0080),
           "rcode": flags & 0xF, "rcode_name": DNS_RCODES.get(flags & 0xF, "RCODE%d" % (flags & 0xF)),
           "counts": [qd, an, ns, ar], "questions": [], "answers": []}
    offset = 12
    names = {}
    for _i in range(qd):
        name, offset = _dns_name(data, offset, names)
        if offset + 4 > len(data):
            raise ValueError("DNS question truncated")
        qtype, qclass = struct.unpack("!HH", data[offset:offset + 4])
        offset += 4
        out["questions"].append({"name": name, "type": qtype, "class": qclass})
    if not out["tc"]:
        for _i in range(an):
            name, offset = _dns_name(data, offset, names)
            if offset + 10 > len(data):
                raise ValueError("DNS record truncated")
            rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", data[offset:offset + 10])
            offset += 10
            rdata = data[offset:offset + rdlen]
            if len(rdata) != rdlen:
                raise ValueError("DNS record data truncated")
            offset += rdlen
            record = {"name": name, "type": rtype, "class": rclass, "ttl": ttl}
            if rtype == 1 and rdlen == 4:
                record["data"] = socket.inet_ntoa(rdata)
            elif rtype == 28 and rdlen == 16:
                record["data"] = str(ipaddress.IPv6Address(rdata))
            out["answers"].append(record)
    return out


# ===========================================================================
# CLDAP: LDAPv3 messages over UDP 389 (RFC 4511 BER, as AD's DC locator uses them)
# ===========================================================================
def ber_length(n):
    if n < 0x80:
        return struct.pack("!B", n)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return struct.pack("!B", 0x80 | len(raw)) + raw


def ber_tlv(tag, content):
    return struct.pack("!B", tag) + ber_length(len(content)) + content


def ber_integer(value, tag=0x02):
    length = max(1, (value.bit_length() + 8) // 8)
    return ber_tlv(tag, value.to_bytes(length, "big", signed=True))


def ber_octets(value, tag=0x04):
    return ber_tlv(tag, _to_bytes(value))


def ber_read(data, offset=0):
    """One TLV at offset -> (tag, content bytes, next offset).  Single-byte tags only."""
    if offset + 2 > len(data):
        raise ValueError("BER element truncated at %d" % offset)
    tag = bytearray(data[offset:offset + 1])[0]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte BER tags are not supported")
    first = bytearray(data[offset + 1:offset + 2])[0]
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise ValueError("bad BER length")
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise ValueError("BER content truncated (tag 0x%02x, length %d)" % (tag, length))
    return tag, data[offset:offset + length], offset + length


def ber_sequence_items(content):
    items = []
    offset = 0
    while offset < len(content):
        tag, value, offset = ber_read(content, offset)
        items.append((tag, value))
    return items


def ber_int_value(content):
    return int.from_bytes(content, "big", signed=True) if content else 0


CLDAP_ATTRIBUTES = ("dnsHostName", "defaultNamingContext", "currentTime", "supportedLDAPVersion")
LDAP_RESULTS = {0: "success", 1: "operationsError", 2: "protocolError", 32: "noSuchObject",
                49: "invalidCredentials", 50: "insufficientAccessRights", 53: "unwillingToPerform"}


def build_cldap_search(message_id, attributes=CLDAP_ATTRIBUTES, base=""):
    """searchRequest: base "" (rootDSE), scope baseObject, filter (objectClass=*), the given attributes."""
    request = (ber_octets(base) + ber_integer(0, 0x0A) + ber_integer(0, 0x0A) + ber_integer(0) + ber_integer(0)
               + ber_tlv(0x01, b"\x00") + ber_octets(b"objectClass", 0x87)
               + ber_tlv(0x30, b"".join(ber_octets(a) for a in attributes)))
    return ber_tlv(0x30, ber_integer(message_id) + ber_tlv(0x63, request))


def parse_cldap(data):
    """One datagram (one or more LDAPMessages) -> list of dicts: message_id, op and its fields."""
    messages = []
    offset = 0
    while offset < len(data):
        tag, content, offset = ber_read(data, offset)
        if tag != 0x30:
            raise ValueError("LDAPMessage is not a SEQUENCE (tag 0x%02x)" % tag)
        items = ber_sequence_items(content)
        if len(items) < 2 or items[0][0] != 0x02:
            raise ValueError("LDAPMessage without messageID")
        message = {"message_id": ber_int_value(items[0][1])}
        op_tag, op = items[1]
        if op_tag == 0x64:
            fields = ber_sequence_items(op)
            if len(fields) < 2 or fields[0][0] != 0x04 or fields[1][0] != 0x30:
                raise ValueError("malformed searchResEntry")
            attributes = {}
            for atag, attr in ber_sequence_items(fields[1][1]):
                parts = ber_sequence_items(attr)
                if atag != 0x30 or len(parts) != 2:
                    raise ValueError("malformed attribute in searchResEntry")
                values = [v.decode("utf-8", "replace") for _t, v in ber_sequence_items(parts[1][1])]
                attributes[parts[0][1].decode("utf-8", "replace")] = values
            message.update(op="searchResEntry", dn=fields[0][1].decode("utf-8", "replace"), attributes=attributes)
        elif op_tag == 0x65:
            fields = ber_sequence_items(op)
            if len(fields) < 3 or fields[0][0] != 0x0A:
                raise ValueError("malformed searchResDone")
            code = ber_int_value(fields[0][1])
            message.update(op="searchResDone", result_code=code, result=LDAP_RESULTS.get(code, str(code)),
                           matched_dn=fields[1][1].decode("utf-8", "replace"),
                           diagnostic=fields[2][1].decode("utf-8", "replace"))
        elif op_tag == 0x63:
            message.update(op="searchRequest")
        else:
            message.update(op="application %d" % (op_tag & 0x1F))
        messages.append(message)
    return messages


# ===========================================================================
# NTP (RFC 5905): client request, reply must echo our transmit timestamp
# ===========================================================================
def build_ntp_request(transmit):
    """48 bytes: LI 0, version 4, mode 3 (client); ``transmit`` is 8 bytes."""
    return struct.pack("!BBbb", 0x23, 0, 0, 0) + b"\0" * 36 + transmit


def parse_ntp(data):
    if len(data) < 48:
        raise ValueError("too short for NTP (%d bytes)" % len(data))
    first, stratum = bytearray(data[:2])
    return {"leap": first >> 6, "version": (first >> 3) & 7, "mode": first & 7, "stratum": stratum,
            "origin": bytes(data[24:32]), "transmit": bytes(data[40:48])}


# ===========================================================================
# Targets
# ===========================================================================
_TARGET_KEYS = ("name", "host", "address", "port", "protocol", "kind", "expect", "secret", "timeout",
                "radius_request", "user", "password", "dhcp_message", "mac", "ike_version", "dns_name")
_AUTO_UDP = {53: "dns", 67: "dhcp", 123: "ntp", 389: "cldap", 500: "ike", 4500: "ike",
             1812: "radius", 1813: "radius", 1645: "radius", 1646: "radius"}


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


def parse_timeout(value, where="timeout", allow_auto=True):
    """A positive number of seconds, or "auto" -> float or "auto"."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        if allow_auto:
            return "auto"
        raise ProbeError("%s: 'auto' is not allowed here; give seconds, e.g. 0.5" % where)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ProbeError("%s: %r is not a number of seconds%s" % (where, value, " or 'auto'" if allow_auto else ""))
    if math.isnan(seconds) or seconds <= 0 or seconds > 3600:
        raise ProbeError("%s: %r must be more than 0 and at most 3600 seconds" % (where, value))
    return seconds


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
        kind = protocol if protocol == "tcp" else _AUTO_UDP.get(port, "udp")
        if kind == "radius" and not raw.get("secret"):
            kind = "udp"
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
        options.update(secret=_to_bytes(raw.get("secret")), radius_request=request,
                       user=str(raw.get("user") or "configmgr-nap-probe"),
                       password=_to_bytes(raw.get("password")) if raw.get("password") else _rand(12).hex().encode())
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
# Round-trip estimation for timeout: auto (RFC 6298 smoothing, as nmap does)
# ===========================================================================
class RttEstimator:
    def __init__(self):
        self.srtt = None
        self.rttvar = None
        self.samples = 0

    def add(self, rtt):
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2.0
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.samples += 1

    def timeout(self, floor, ceiling):
        if self.srtt is None:
            return ceiling
        return min(max(self.srtt + 4.0 * self.rttvar, floor), ceiling)

    def as_dict(self):
        if self.srtt is None:
            return {"samples": 0}
        return {"samples": self.samples, "srtt_ms": round(self.srtt * 1000.0, 3),
                "rttvar_ms": round(self.rttvar * 1000.0, 3)}


class TimeoutPolicy:
    """How long a probe waits for an answer: fixed, or derived from measured round trips."""

    def __init__(self, timeout=DEFAULT_TIMEOUT, max_timeout=DEFAULT_MAX_TIMEOUT, min_timeout=DEFAULT_MIN_TIMEOUT):
        self.mode = parse_timeout(timeout) or DEFAULT_TIMEOUT
        self.max_timeout = parse_timeout(max_timeout, "max_timeout", allow_auto=False) or DEFAULT_MAX_TIMEOUT
        self.min_timeout = parse_timeout(min_timeout, "min_timeout", allow_auto=False) or DEFAULT_MIN_TIMEOUT
        if self.min_timeout > self.max_timeout:
            raise ProbeError("min_timeout (%s) is above max_timeout (%s)" % (self.min_timeout, self.max_timeout))
        self.overall = RttEstimator()
        self.per_address = {}

    def sample(self, address, rtt):
        self.overall.add(rtt)
        self.per_address.setdefault(address, RttEstimator()).add(rtt)

    def wait_for(self, target):
        if target.timeout is not None:
            return target.timeout
        if self.mode != "auto":
            return self.mode
        est = self.per_address.get(target.address)
        if est is None or est.samples == 0:
            est = self.overall
        if est.samples == 0:
            return self.max_timeout
        base = est.timeout(self.min_timeout, self.max_timeout)
        return min(base + SERVICE_ALLOWANCE.get(target.kind, 0.0), self.max_timeout)

    def longest(self, targets):
        fixed = [t.timeout for t in targets if t.timeout is not None]
        base = self.max_timeout if self.mode == "auto" else self.mode
        return max([base] + fixed)


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
        return "open", "a %d-byte datagram came back" % len(data), {"bytes": len(data)}

    def _prepare(self, sock):
        self._bind_source(sock, self.local_port)

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
        self.xid = _rand_int(32)
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
        listener = self._socket()
        self.extra.append(listener)
        self._bind(listener, "0.0.0.0")

    def requests(self, local_address):
        opts = self.target.options
        mtype = DHCPINFORM if opts["dhcp_message"] == "inform" else DHCPDISCOVER
        ciaddr = local_address if mtype == DHCPINFORM else "0.0.0.0"
        giaddr = local_address if self.relay else "0.0.0.0"
        return [build_dhcp(mtype, self.xid, opts["mac"], ciaddr=ciaddr, giaddr=giaddr,
                           broadcast=not self.relay and mtype == DHCPDISCOVER, hops=1 if self.relay else 0)]

    def check(self, data):
        try:
            reply = parse_dhcp(data)
        except ValueError:
            return None
        if reply["op"] != 2 or reply["xid"] != self.xid:
            return None
        if reply["message_type"] not in (DHCPOFFER, DHCPACK, DHCPNAK):
            return "unexpected", "a DHCP %s answered the probe" % reply["message_type_name"], {}
        answer = dict((k, reply[k]) for k in ("message_type_name", "yiaddr", "server_id", "lease_time",
                                              "subnet_mask", "routers", "dns_servers") if k in reply)
        detail = reply["message_type_name"]
        if reply["message_type"] == DHCPOFFER:
            detail += " of %s" % reply["yiaddr"]
        if reply.get("server_id"):
            detail += " from server %s" % reply["server_id"]
        return "open", detail, answer


class DhcpRelayProbe(DhcpProbe):
    relay = True


class RadiusProbe(UdpProbe):
    silence = ("no RADIUS answer within %.0f ms: the server does not know this vantage as a RADIUS client (NPS "
               "ignores unknown clients), does not implement the request, or a firewall drops it")

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.identifier = _rand_int(8)
        self.authenticator = _rand(16)
        self.packet = None

    def requests(self, local_address):
        opts = self.target.options
        if opts["radius_request"] == "access_request":
            self.packet = build_access_request(self.identifier, opts["secret"], opts["user"], opts["password"],
                                               self.authenticator, nas_ip_address=local_address)
        else:
            self.packet = build_status_server(self.identifier, opts["secret"], self.authenticator)
        return [self.packet]

    def check(self, data):
        try:
            reply = parse_radius(data)
        except ValueError:
            return None
        if reply["identifier"] != self.identifier:
            return None
        code = bytearray(self.packet)[0]
        answer = {"code": reply["code_name"]}
        messages = [v.decode("utf-8", "replace") for t, v in reply["attributes"] if t == ATTR_REPLY_MESSAGE]
        if messages:
            answer["reply_message"] = " ".join(messages)
        if reply["code"] not in RADIUS_REPLIES[code]:
            return "unexpected", "a RADIUS %s is not a reply to %s" % (reply["code_name"], RADIUS_CODES[code]), answer
        ok, reason = verify_radius_response(data, self.authenticator, self.target.options["secret"])
        if not ok:
            return "unexpected", "RADIUS %s that fails authentication: %s" % (reply["code_name"], reason), answer
        return "open", "RADIUS %s, authenticated with the shared secret" % reply["code_name"], answer


class IkeProbe(UdpProbe):
    silence = "no ISAKMP answer within %.0f ms: no IKE responder, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.natt = target.port == 4500
        self.spis = {}
        self.sent = set()

    def requests(self, local_address):
        version = self.target.options["ike_version"]
        out = []
        if version in ("ikev1", "both"):
            spi = _rand(8)
            self.spis[spi] = 1
            out.append(build_ikev1_main_mode(spi))
        if version in ("ikev2", "both"):
            spi = _rand(8)
            self.spis[spi] = 2
            out.append(build_ikev2_sa_init(spi))
        if self.natt:
            out = [NATT_MARKER + p for p in out]
        self.sent = set(out)
        return out

    def check(self, data):
        if data in self.sent:
            return "unexpected", "the probe came back unchanged (an echo, not an IKE responder)", {}
        try:
            reply = parse_isakmp(data, self.natt)
        except ValueError:
            return None
        if reply["icookie"] not in self.spis:
            return None
        if reply["major"] == 2 and (reply["flags"] & 0x20) == 0:
            return "unexpected", "an IKEv2 message with our SPI but not marked as a response", {}
        answer = {"version": reply["major"], "exchange": reply["exchange_name"],
                  "notifies": list(reply["notifies"])}
        return "open", describe_isakmp(reply), answer


class DnsProbe(UdpProbe):
    silence = "no DNS answer within %.0f ms: no DNS server, or a firewall that drops the query"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.qid = _rand_int(16)

    def requests(self, local_address):
        return [build_dns_query(self.qid, self.target.options["dns_name"], "SOA")]

    def check(self, data):
        try:
            reply = parse_dns(data)
        except ValueError:
            return None
        if reply["id"] != self.qid:
            return None
        if not reply["qr"]:
            return "unexpected", "a DNS query came back instead of a response (an echo?)", {}
        return "open", "DNS response %s, %d answer(s)" % (reply["rcode_name"], reply["counts"][1]), {
            "rcode": reply["rcode_name"], "answers": reply["counts"][1], "authoritative": reply["aa"]}


class CldapProbe(UdpProbe):
    silence = "no CLDAP answer within %.0f ms: no domain controller, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.message_id = 1 + _rand_int(16) % 32000

    def requests(self, local_address):
        return [build_cldap_search(self.message_id)]

    def check(self, data):
        try:
            messages = parse_cldap(data)
        except ValueError:
            return None
        ours = [m for m in messages if m["message_id"] == self.message_id]
        if not ours:
            return None
        if all(m["op"] == "searchRequest" for m in ours):
            return "unexpected", "the CLDAP search came back as a request (an echo?)", {}
        answer = {}
        detail = []
        for m in ours:
            if m["op"] == "searchResEntry":
                answer["attributes"] = m["attributes"]
                detail.append("rootDSE entry" + (" of %s" % m["attributes"]["dnsHostName"][0]
                                                 if m["attributes"].get("dnsHostName") else ""))
            elif m["op"] == "searchResDone":
                answer["result"] = m["result"]
                detail.append("searchResDone %s" % m["result"])
        if not detail:
            return "unexpected", "an LDAP %s is not a search answer" % ours[0]["op"], {}
        return "open", "CLDAP " + ", ".join(detail), answer


class NtpProbe(UdpProbe):
    silence = "no NTP answer within %.0f ms: no time server, or a firewall that drops it"

    def __init__(self, target, source_address=None):
        UdpProbe.__init__(self, target, source_address)
        self.transmit = _rand(8)

    def requests(self, local_address):
        return [build_ntp_request(self.transmit)]

    def check(self, data):
        try:
            reply = parse_ntp(data)
        except ValueError:
            return None
        if reply["origin"] != self.transmit:
            return None
        if reply["mode"] != 4:
            return "unexpected", "an NTP packet in mode %d, not a server reply" % reply["mode"], {}
        return "open", "NTP reply, stratum %d" % reply["stratum"], {"stratum": reply["stratum"]}


PROBES = {"tcp": TcpProbe, "udp": UdpProbe, "dhcp": DhcpProbe, "dhcp_relay": DhcpRelayProbe,
          "radius": RadiusProbe, "ike": IkeProbe, "dns": DnsProbe, "cldap": CldapProbe, "ntp": NtpProbe}


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
    probes = [PROBES[t.kind](t, source_address) for t in parsed]
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
                    probe.on_event(key.fileobj, mask, clock())
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
