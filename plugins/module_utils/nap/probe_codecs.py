# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Packet codecs of the reachability probes: request builders, reply parsers and, for every kind,
the classifier that tells whether a datagram answers the probe.  Pure functions on bytes, no
sockets; probe_engine.py sends and receives.

Pure Python, standard library only, Python 3.8 syntax: this file runs on the vantage host
inside the ``nap_port_probe`` module.

A datagram from the target port answers the probe (``open``) when it is a DHCP offer/ack/nak with
our xid, a RADIUS reply that passes the authenticator checks with the shared secret, an ISAKMP
reply carrying our initiator cookie/SPI, a DNS response with our id, a CLDAP searchResEntry or
searchResDone with our message id, an NTP reply with our timestamp; for plain ``udp``: any
datagram.  A datagram with our id that is no valid answer (an echo of the request, a RADIUS reply
that fails authentication) is ``unexpected``; one with another id, or of another protocol, is
no answer at all: the probe keeps waiting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import ipaddress
import os
import socket
import struct

# Every kind of probe, and the kinds that probe over UDP (the others: tcp, and auto, which picks one).
KINDS = ("auto", "tcp", "udp", "dhcp", "dhcp_relay", "radius", "ike", "dns", "cldap", "ntp", "kerberos")
UDP_KINDS = ("udp", "dhcp", "dhcp_relay", "radius", "ike", "dns", "cldap", "ntp")
# Kinds that exchange a request and its answer over either protocol (Kerberos: UDP, or TCP with a length prefix).
BOTH_KINDS = ("kerberos",)
# The protocol-aware probe of a well-known UDP port.  DHCP is not in it: its probe binds a privileged
# port (68, or 67 as a relay) and suits only a vantage on the server's segment or a relay, so the
# caller decides (kind auto takes dhcp for DHCP_SERVER_PORT, see auto_udp_kind).
UDP_PORT_KINDS = {53: "dns", 88: "kerberos", 123: "ntp", 389: "cldap", 500: "ike", 4500: "ike",
                  1812: "radius", 1813: "radius", 1645: "radius", 1646: "radius"}
DHCP_SERVER_PORT = 67
RADIUS_REQUESTS = ("status_server", "access_request")
DHCP_MESSAGES = ("discover", "inform")
IKE_VERSIONS = ("ikev1", "ikev2", "both")


def auto_udp_kind(port):
    """The kind ``auto`` probes a UDP port with: dhcp on 67, the UDP_PORT_KINDS service, else plain udp."""
    if port == DHCP_SERVER_PORT:
        return "dhcp"
    return UDP_PORT_KINDS.get(port, "udp")


def random_bytes(n):
    return os.urandom(n)


def random_int(bits):
    return int.from_bytes(os.urandom(bits // 8), "big")


def as_bytes(value):
    """None -> b"", bytes as they are, anything else as UTF-8 text."""
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
    raw = bytearray(random_bytes(6))
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
        value = as_bytes(value)
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
    value = as_bytes(value)
    if len(value) > 253:
        raise ValueError("RADIUS attribute %d is longer than 253 bytes" % attr_type)
    return struct.pack("!BB", attr_type, len(value) + 2) + value


def hide_password(password, secret, authenticator):
    """User-Password hiding of RFC 2865 section 5.2 (up to 128 bytes)."""
    password = as_bytes(password)
    secret = as_bytes(secret)
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
    secret = as_bytes(secret)
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
    return hmac.new(as_bytes(secret), packet, hashlib.md5).digest()


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
        authenticator = random_bytes(16)
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
        authenticator = random_bytes(16)
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
    return hashlib.md5(packet[:4] + request_authenticator + packet[20:length] + as_bytes(secret)).digest()


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
    auth = hashlib.md5(header + req_auth + body + as_bytes(secret)).digest()
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
        nonce = random_bytes(32)
    if ke_data is None:
        size = {14: 256, 2: 128}[dh_group]
        ke_data = b"\x7f" + random_bytes(size - 1)
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
    return ber_tlv(tag, as_bytes(value))


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
# Kerberos (RFC 4120): an AS-REQ for krbtgt without pre-authentication; a KDC answers it with a
# KRB-ERROR (PREAUTH_REQUIRED, C_PRINCIPAL_UNKNOWN, WRONG_REALM, ...) or, rarely, an AS-REP.
# Over TCP every message is preceded by its length (4 bytes, network order; RFC 4120 section 7.2.2).
# ===========================================================================
KRB_ERRORS = {6: "KDC_ERR_C_PRINCIPAL_UNKNOWN", 7: "KDC_ERR_S_PRINCIPAL_UNKNOWN", 14: "KDC_ERR_ETYPE_NOSUPP",
              18: "KDC_ERR_CLIENT_REVOKED", 24: "KDC_ERR_PREAUTH_FAILED", 25: "KDC_ERR_PREAUTH_REQUIRED",
              37: "KRB_AP_ERR_SKEW", 52: "KRB_ERR_RESPONSE_TOO_BIG", 60: "KRB_ERR_GENERIC", 68: "KDC_ERR_WRONG_REALM"}
KERBEROS_USER = "configmgr-nap-probe"


def _krb_string(text):
    return ber_tlv(0x1B, as_bytes(text))             # GeneralString (KerberosString)


def _krb_ctx(n, content):
    return ber_tlv(0xA0 + n, content)


def _krb_principal(name_type, *names):
    return ber_tlv(0x30, _krb_ctx(0, ber_integer(name_type)) + _krb_ctx(1, ber_tlv(0x30, b"".join(
        _krb_string(n) for n in names))))


def build_kerberos_as_req(nonce, realm, user=KERBEROS_USER, tcp=False):
    """AS-REQ (APPLICATION 10) of ``user``@``realm`` for krbtgt/``realm``: forwardable, renewable, no
    pre-authentication, etypes AES256, AES128, RC4; with ``tcp`` behind its 4-byte length."""
    realm = str(realm).upper()
    body = ber_tlv(0x30, _krb_ctx(0, ber_tlv(0x03, b"\x00\x50\x80\x00\x00")) + _krb_ctx(1, _krb_principal(1, user))
                   + _krb_ctx(2, _krb_string(realm)) + _krb_ctx(3, _krb_principal(2, "krbtgt", realm))
                   + _krb_ctx(5, ber_tlv(0x18, b"20370913024805Z")) + _krb_ctx(7, ber_integer(nonce & 0x7FFFFFFF))
                   + _krb_ctx(8, ber_tlv(0x30, ber_integer(18) + ber_integer(17) + ber_integer(23))))
    packet = ber_tlv(0x6A, ber_tlv(0x30, _krb_ctx(1, ber_integer(5)) + _krb_ctx(2, ber_integer(10)) + _krb_ctx(4, body)))
    if tcp:
        packet = struct.pack("!I", len(packet)) + packet
    return packet


def parse_kerberos(data, tcp=False):
    """A KDC reply -> {"type": "KRB-ERROR"|"AS-REP"|"AS-REQ"|..., "error_code", "error", "realm", "e_text"}."""
    if tcp:
        if len(data) < 4:
            raise ValueError("a Kerberos TCP message needs its 4-byte length")
        length = struct.unpack("!I", data[:4])[0]
        data = data[4:]
        if length & 0x80000000 or length > len(data):
            raise ValueError("Kerberos TCP length %d does not match the %d bytes received" % (length, len(data)))
        data = data[:length]
    tag, content, _end = ber_read(data)
    names = {0x6A: "AS-REQ", 0x6B: "AS-REP", 0x6C: "TGS-REQ", 0x6D: "TGS-REP", 0x7E: "KRB-ERROR"}
    if tag not in names:
        raise ValueError("not a Kerberos message (tag 0x%02x)" % tag)
    out = {"type": names[tag]}
    seq_tag, seq, _end = ber_read(content)
    if seq_tag != 0x30:
        raise ValueError("Kerberos message is not a SEQUENCE")
    fields = dict((t, v) for t, v in ber_sequence_items(seq))
    if tag == 0x7E:
        if 0xA6 not in fields:
            raise ValueError("KRB-ERROR without error-code")
        code = ber_int_value(ber_read(fields[0xA6])[1])
        out.update(error_code=code, error=KRB_ERRORS.get(code, "error %d" % code))
        if 0xA9 in fields:
            out["realm"] = ber_read(fields[0xA9])[1].decode("utf-8", "replace")
        if 0xAB in fields:
            out["e_text"] = ber_read(fields[0xAB])[1].decode("utf-8", "replace")
    return out


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
# Each kind's request and its judgement of a datagram from the target port.  A classifier returns
# (state, detail, answer) when the datagram settles the probe, None when it is no answer to this
# probe (another id, another protocol): the probe keeps waiting.  Parsers raise only ValueError,
# which a classifier takes as "no answer".
# ===========================================================================
def classify_datagram(data):
    """Plain udp: any datagram back is an answer."""
    return "open", "a %d-byte datagram came back" % len(data), {"bytes": len(data)}


def dhcp_request(message, xid, mac, local_address, relay=False):
    """DISCOVER or INFORM (``message``) as a client, or with ``relay`` as a relay at ``local_address``."""
    mtype = DHCPINFORM if message == "inform" else DHCPDISCOVER
    ciaddr = local_address if mtype == DHCPINFORM else "0.0.0.0"
    giaddr = local_address if relay else "0.0.0.0"
    return build_dhcp(mtype, xid, mac, ciaddr=ciaddr, giaddr=giaddr,
                      broadcast=not relay and mtype == DHCPDISCOVER, hops=1 if relay else 0)


def classify_dhcp(data, xid):
    try:
        reply = parse_dhcp(data)
    except ValueError:
        return None
    if reply["op"] != 2 or reply["xid"] != xid:
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


def radius_request(request, identifier, secret, authenticator, user=None, password=None, local_address=None):
    """A Status-Server, or (``request`` access_request) an Access-Request of ``user`` from ``local_address``."""
    if request == "access_request":
        return build_access_request(identifier, secret, user, password, authenticator, nas_ip_address=local_address)
    return build_status_server(identifier, secret, authenticator)


def classify_radius(data, request, secret):
    """``request``: the packet sent (its code, Identifier and Request Authenticator)."""
    try:
        reply = parse_radius(data)
    except ValueError:
        return None
    if reply["identifier"] != bytearray(request)[1]:
        return None
    code = bytearray(request)[0]
    answer = {"code": reply["code_name"]}
    messages = [v.decode("utf-8", "replace") for t, v in reply["attributes"] if t == ATTR_REPLY_MESSAGE]
    if messages:
        answer["reply_message"] = " ".join(messages)
    if reply["code"] not in RADIUS_REPLIES[code]:
        return "unexpected", "a RADIUS %s is not a reply to %s" % (reply["code_name"], RADIUS_CODES[code]), answer
    ok, reason = verify_radius_response(data, bytes(request[4:20]), secret)
    if not ok:
        return "unexpected", "RADIUS %s that fails authentication: %s" % (reply["code_name"], reason), answer
    return "open", "RADIUS %s, authenticated with the shared secret" % reply["code_name"], answer


def ike_requests(version, natt=False):
    """IKEv1 Main Mode and/or IKEv2 IKE_SA_INIT (``version`` ikev1, ikev2 or both), each with a random
    initiator SPI; with ``natt`` (port 4500) behind the non-ESP marker.  -> (packets, {spi: major version})."""
    packets = []
    spis = {}
    if version in ("ikev1", "both"):
        spi = random_bytes(8)
        spis[spi] = 1
        packets.append(build_ikev1_main_mode(spi))
    if version in ("ikev2", "both"):
        spi = random_bytes(8)
        spis[spi] = 2
        packets.append(build_ikev2_sa_init(spi))
    if natt:
        packets = [NATT_MARKER + p for p in packets]
    return packets, spis


def classify_ike(data, spis, sent, natt=False):
    """``spis``: our initiator SPIs; ``sent``: the packets sent (one coming back is an echo)."""
    if data in sent:
        return "unexpected", "the probe came back unchanged (an echo, not an IKE responder)", {}
    try:
        reply = parse_isakmp(data, natt)
    except ValueError:
        return None
    if reply["icookie"] not in spis:
        return None
    if reply["major"] == 2 and (reply["flags"] & 0x20) == 0:
        return "unexpected", "an IKEv2 message with our SPI but not marked as a response", {}
    answer = {"version": reply["major"], "exchange": reply["exchange_name"], "notifies": list(reply["notifies"])}
    return "open", describe_isakmp(reply), answer


def classify_dns(data, qid):
    try:
        reply = parse_dns(data)
    except ValueError:
        return None
    if reply["id"] != qid:
        return None
    if not reply["qr"]:
        return "unexpected", "a DNS query came back instead of a response (an echo?)", {}
    return "open", "DNS response %s, %d answer(s)" % (reply["rcode_name"], reply["counts"][1]), {
        "rcode": reply["rcode_name"], "answers": reply["counts"][1], "authoritative": reply["aa"]}


def classify_cldap(data, message_id):
    try:
        messages = parse_cldap(data)
    except ValueError:
        return None
    ours = [m for m in messages if m["message_id"] == message_id]
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


def classify_kerberos(data, sent, tcp=False):
    """Any KRB-ERROR or AS-REP is the KDC answering; our own AS-REQ coming back is an echo."""
    if data == sent:
        return "unexpected", "the AS-REQ came back unchanged (an echo, not a KDC)", {}
    try:
        reply = parse_kerberos(data, tcp)
    except ValueError:
        return None
    if reply["type"] == "KRB-ERROR":
        detail = "Kerberos KRB-ERROR %s" % reply["error"]
        if reply.get("realm"):
            detail += " (realm %s)" % reply["realm"]
        return "open", detail, dict((k, reply[k]) for k in ("type", "error", "error_code", "realm") if k in reply)
    if reply["type"] == "AS-REP":
        return "open", "Kerberos AS-REP", {"type": "AS-REP"}
    return "unexpected", "a Kerberos %s is not an answer to an AS-REQ" % reply["type"], {"type": reply["type"]}


def classify_ntp(data, transmit):
    """``transmit``: the 8-byte transmit timestamp of our request, which a reply echoes as its origin."""
    try:
        reply = parse_ntp(data)
    except ValueError:
        return None
    if reply["origin"] != transmit:
        return None
    if reply["mode"] != 4:
        return "unexpected", "an NTP packet in mode %d, not a server reply" % reply["mode"], {}
    return "open", "NTP reply, stratum %d" % reply["stratum"], {"stratum": reply["stratum"]}
