# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""probe_codecs.py, byte level: every builder and parser against RFC vectors or hand-built packets.

No socket is opened here; the real-packet tests are in tests/lab/test_probe_lab.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import socket
import struct

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_codecs

SECRET = b"xyzzy5461"   # the shared secret of the RFC 2865 and RFC 5997 examples


def h(text):
    return bytes.fromhex("".join(text.split()))


def tlv(tag, content):
    """Test-local BER encoder (short and long lengths), independent of probe_codecs.ber_tlv."""
    n = len(content)
    if n < 128:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


# ---------------------------------------------------------------------------
# RADIUS
# ---------------------------------------------------------------------------
# RFC 5997 section 6, first example: Status-Server to the authentication port, and its Access-Accept.
RFC5997_STATUS_SERVER = h("0c da 00 26 8a 54 f4 68 6f b3 94 c5 28 66 e3 02 18 5d 06 23"
                          "50 12 5a 66 5e 2e 1e 84 11 f3 e2 43 82 20 97 c8 4f a3")
RFC5997_ACCEPT = h("02 da 00 14 ef 0d 55 2a 4b f2 d6 93 ec 2b 6f e8 b5 41 1d 66")
# RFC 2865 section 7.1: Access-Request for nemo, and the Access-Accept.
RFC2865_REQUEST = h("01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a 01 06 6e 65 6d 6f"
                    "02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03")
RFC2865_ACCEPT = h("02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2 06 06 00 00 00 01"
                   "0f 06 00 00 00 00 0e 06 c0 a8 01 03")


def test_status_server_matches_rfc5997_example():
    packet = probe_codecs.build_status_server(0xDA, SECRET, authenticator=RFC5997_STATUS_SERVER[4:20], nas_identifier=None)
    assert packet == RFC5997_STATUS_SERVER
    assert probe_codecs.verify_radius_request(packet, SECRET)
    assert not probe_codecs.verify_radius_request(packet, b"other")


def test_message_authenticator_is_hmac_md5_over_the_zeroed_packet():
    zeroed = RFC5997_STATUS_SERVER[:22] + b"\0" * 16
    assert probe_codecs.message_authenticator(SECRET, zeroed) == h("5a 66 5e 2e 1e 84 11 f3 e2 43 82 20 97 c8 4f a3")
    assert probe_codecs.message_authenticator(SECRET, zeroed) == hmac.new(SECRET, zeroed, hashlib.md5).digest()


def test_rfc5997_answer_verifies_with_the_secret_only():
    request_auth = RFC5997_STATUS_SERVER[4:20]
    assert probe_codecs.verify_radius_response(RFC5997_ACCEPT, request_auth, SECRET) == (True, "")
    ok, reason = probe_codecs.verify_radius_response(RFC5997_ACCEPT, request_auth, b"xyzzy5462")
    assert not ok and "Response Authenticator" in reason
    ok, reason = probe_codecs.verify_radius_response(RFC5997_ACCEPT, b"\0" * 16, SECRET)
    assert not ok


def test_rfc2865_access_accept_response_authenticator():
    assert probe_codecs.response_authenticator(RFC2865_ACCEPT, RFC2865_REQUEST[4:20], SECRET) == RFC2865_ACCEPT[4:20]
    assert probe_codecs.verify_radius_response(RFC2865_ACCEPT, RFC2865_REQUEST[4:20], SECRET)[0]
    parsed = probe_codecs.parse_radius(RFC2865_ACCEPT)
    assert parsed["code_name"] == "Access-Accept" and parsed["identifier"] == 0
    assert parsed["attributes"] == [(6, h("00000001")), (15, h("00000000")), (14, h("c0a80103"))]


def test_parse_rfc2865_request_attributes():
    parsed = probe_codecs.parse_radius(RFC2865_REQUEST)
    assert parsed["code"] == 1 and parsed["length"] == 56
    assert [t for t, _v in parsed["attributes"]] == [1, 2, 4, 5]
    assert parsed["attributes"][0] == (1, b"nemo")
    assert parsed["attributes"][2] == (4, socket.inet_aton("192.168.1.16"))


def test_password_hiding_vector():
    # RFC 2865 section 7.2 request authenticator, password "challenge", secret xyzzy5461
    # (the vector OpenBSD's radius(3) tests use).
    authenticator = h("f3 a4 7a 1f 6a 6d 76 71 0b 94 7a b9 30 41 a0 39")
    hidden = probe_codecs.hide_password(b"challenge", SECRET, authenticator)
    assert hidden == h("33 65 75 73 77 82 89 b5 70 88 5e 15 08 48 25 c5")
    assert probe_codecs.unhide_password(hidden, SECRET, authenticator) == b"challenge"


@pytest.mark.parametrize("password", [b"", b"x", b"0123456789abcdef", b"0123456789abcdef0", b"p" * 128])
def test_password_hiding_chains_blocks(password):
    authenticator = bytes(range(16))
    hidden = probe_codecs.hide_password(password, b"s3cret", authenticator)
    assert len(hidden) % 16 == 0 and len(hidden) >= 16
    assert probe_codecs.unhide_password(hidden, b"s3cret", authenticator) == password
    if len(password) > 16:
        # block 2 is keyed on block 1 of the cipher text, not on the authenticator
        key2 = hashlib.md5(b"s3cret" + hidden[:16]).digest()
        plain2 = bytes(a ^ b for a, b in zip(hidden[16:32], key2)).rstrip(b"\0")
        assert plain2 == password[16:32]
    with pytest.raises(ValueError):
        probe_codecs.hide_password(b"p" * 129, b"s3cret", authenticator)


def test_access_request_layout():
    authenticator = bytes(range(16))
    packet = probe_codecs.build_access_request(7, b"s3cret", "nemo", b"arctangent", authenticator,
                                               nas_ip_address="198.18.0.1")
    parsed = probe_codecs.parse_radius(packet)
    assert parsed["code"] == 1 and parsed["identifier"] == 7 and parsed["authenticator"] == authenticator
    types = [t for t, _v in parsed["attributes"]]
    assert types == [80, 1, 2, 32, 4]        # Message-Authenticator first
    values = dict(parsed["attributes"])
    assert values[1] == b"nemo"
    assert probe_codecs.unhide_password(values[2], b"s3cret", authenticator) == b"arctangent"
    assert values[4] == socket.inet_aton("198.18.0.1")
    assert values[32] == b"configmgr.nap-probe"
    assert probe_codecs.verify_radius_request(packet, b"s3cret")
    zeroed = packet[:22] + b"\0" * 16 + packet[38:]
    assert values[80] == hmac.new(b"s3cret", zeroed, hashlib.md5).digest()


def test_response_with_message_authenticator_round_trip_and_tampering():
    request = probe_codecs.build_status_server(9, b"s3cret")
    reply = probe_codecs.build_radius_response(probe_codecs.ACCESS_ACCEPT, request, b"s3cret", [(18, b"alive")])
    assert probe_codecs.verify_radius_response(reply, request[4:20], b"s3cret") == (True, "")
    # Message-Authenticator is computed with the Request Authenticator in place (RFC 3579 3.2)
    offset = 20
    zeroed = reply[:4] + request[4:20] + reply[20:offset + 2] + b"\0" * 16 + reply[offset + 18:]
    assert reply[offset + 2:offset + 18] == hmac.new(b"s3cret", zeroed, hashlib.md5).digest()
    # a reply whose Response Authenticator is recomputed but whose Message-Authenticator is stale
    tampered = bytearray(reply)
    tampered[-1] ^= 1
    tampered[4:20] = probe_codecs.response_authenticator(bytes(tampered), request[4:20], b"s3cret")
    ok, reason = probe_codecs.verify_radius_response(bytes(tampered), request[4:20], b"s3cret")
    assert not ok and "Message-Authenticator" in reason


@pytest.mark.parametrize("data", [b"\x02\x00\x00", h("02 00 00 30") + b"\0" * 16, h("02 00 00 16") + b"\0" * 16 + b"\x01\x01"])
def test_parse_radius_rejects_malformed(data):
    with pytest.raises(ValueError):
        probe_codecs.parse_radius(data)


# ---------------------------------------------------------------------------
# DHCP
# ---------------------------------------------------------------------------
MAC = h("02 00 5e 00 00 01")


def test_dhcp_discover_layout():
    packet = probe_codecs.build_dhcp(probe_codecs.DHCPDISCOVER, 0x12345678, MAC)
    assert len(packet) == 300
    assert packet[:4] == h("01 01 06 00")                    # BOOTREQUEST, Ethernet, 6-byte MAC, 0 hops
    assert packet[4:8] == h("12 34 56 78")                   # xid
    assert packet[8:12] == h("00 00 80 00")                  # secs, BROADCAST flag
    assert packet[12:28] == b"\0" * 16                       # ciaddr yiaddr siaddr giaddr
    assert packet[28:44] == MAC + b"\0" * 10                 # chaddr
    assert packet[44:236] == b"\0" * 192                     # sname, file
    assert packet[236:240] == h("63 82 53 63")               # magic cookie
    assert packet[240:243] == h("35 01 01")                  # option 53: DHCPDISCOVER
    assert packet[243:252] == h("3d 07 01") + MAC            # option 61: client id, type Ethernet
    options = probe_codecs.parse_dhcp_options(packet[240:])
    assert options[60] == b"MSFT 5.0"
    assert options[55] == bytes([1, 3, 6, 15, 43, 51, 54])
    end = 240 + sum(2 + len(v) for v in options.values())
    assert packet[end] == 0xFF and set(packet[end + 1:]) <= {0}


def test_dhcp_inform_and_relay_fields():
    inform = probe_codecs.build_dhcp(probe_codecs.DHCPINFORM, 1, MAC, ciaddr="198.18.0.9", broadcast=False)
    assert inform[10:12] == b"\0\0" and inform[12:16] == socket.inet_aton("198.18.0.9")
    assert probe_codecs.parse_dhcp_options(inform[240:])[53] == b"\x08"
    relay = probe_codecs.build_dhcp(probe_codecs.DHCPDISCOVER, 2, MAC, giaddr="198.18.2.1", broadcast=False, hops=1)
    assert relay[3] == 1 and relay[24:28] == socket.inet_aton("198.18.2.1") and relay[10:12] == b"\0\0"


def _offer(xid, mtype=2, extra=b""):
    header = struct.pack("!BBBBIHH", 2, 1, 6, 0, xid, 0, 0x8000)
    header += socket.inet_aton("0.0.0.0") + socket.inet_aton("198.18.2.50") + socket.inet_aton("198.18.1.10")
    header += socket.inet_aton("198.18.2.1") + MAC + b"\0" * 10 + b"\0" * 192
    options = (h("35 01") + bytes([mtype]) + h("36 04 c6 12 01 0a") + h("33 04 00 00 0e 10")
               + h("00 00")                                       # pad
               + h("01 04 ff ff ff 00") + h("03 04 c6 12 02 01")
               + h("06 04 c6 12 01 0a") + h("06 04 c6 12 01 0b")   # option 6 split in two (RFC 3396)
               + extra + h("ff"))
    return header + h("63 82 53 63") + options


def test_parse_dhcp_offer():
    reply = probe_codecs.parse_dhcp(_offer(0xCAFE))
    assert reply["op"] == 2 and reply["xid"] == 0xCAFE
    assert reply["message_type_name"] == "DHCPOFFER"
    assert reply["yiaddr"] == "198.18.2.50" and reply["siaddr"] == "198.18.1.10" and reply["giaddr"] == "198.18.2.1"
    assert reply["chaddr"] == "02:00:5e:00:00:01"
    assert reply["server_id"] == "198.18.1.10" and reply["lease_time"] == 3600
    assert reply["subnet_mask"] == "255.255.255.0" and reply["routers"] == ["198.18.2.1"]
    assert reply["dns_servers"] == ["198.18.1.10", "198.18.1.11"]


def test_parse_dhcp_nak_message_and_errors():
    nak = probe_codecs.parse_dhcp(_offer(1, 6, h("38 05") + b"no ip"))
    assert nak["message_type_name"] == "DHCPNAK" and nak["message"] == "no ip"
    with pytest.raises(ValueError, match="magic"):
        probe_codecs.parse_dhcp(_offer(1)[:236] + b"\0\0\0\0" + b"\xff")
    with pytest.raises(ValueError, match="truncated"):
        probe_codecs.parse_dhcp_options(h("35 05 01"))
    with pytest.raises(ValueError, match="too short"):
        probe_codecs.parse_dhcp(b"\x02" * 100)


def test_mac_helpers():
    assert probe_codecs.parse_mac("02-00-5E-00-00-01") == MAC
    assert probe_codecs.format_mac(MAC) == "02:00:5e:00:00:01"
    mac = probe_codecs.random_mac()
    assert len(mac) == 6 and mac[0] & 0x03 == 0x02         # locally administered, unicast
    with pytest.raises(ValueError):
        probe_codecs.parse_mac("02:00")


# ---------------------------------------------------------------------------
# IKE / ISAKMP
# ---------------------------------------------------------------------------
ICOOKIE = h("01 02 03 04 05 06 07 08")


def test_ikev1_main_mode_header_and_sa():
    packet = probe_codecs.build_ikev1_main_mode(ICOOKIE)
    assert packet[0:8] == ICOOKIE and packet[8:16] == b"\0" * 8
    assert packet[16:20] == h("01 10 02 00")        # next SA, version 1.0, Main Mode (Identity Protection), flags
    assert packet[20:24] == b"\0" * 4                # message id
    assert struct.unpack("!I", packet[24:28])[0] == len(packet)
    sa_next, _r, sa_len = struct.unpack("!BBH", packet[28:32])
    assert sa_next == 0 and 28 + sa_len == len(packet)
    assert packet[32:40] == h("00 00 00 01 00 00 00 01")   # DOI IPsec, SIT_IDENTITY_ONLY
    assert packet[44:48] == h("01 01 00 06")               # proposal 1, PROTO_ISAKMP, no SPI, 6 transforms
    first = packet[48:]
    assert first[0] == 3 and first[4:6] == h("01 01")      # more transforms follow; transform 1, KEY_IKE
    attrs = first[8:struct.unpack("!H", first[2:4])[0]]
    pairs = [struct.unpack("!HH", attrs[i:i + 4]) for i in range(0, len(attrs), 4)]
    assert pairs == [(0x8001, 7), (0x800E, 128), (0x8002, 2), (0x8003, 3), (0x8004, 2), (0x800B, 1),
                     (0x800C, 28800)]
    parsed = probe_codecs.parse_isakmp(packet)
    assert parsed["major"] == 1 and parsed["exchange_name"] == "Main Mode" and parsed["payloads"] == [1]


def test_ikev2_sa_init_layout():
    nonce = b"n" * 32
    packet = probe_codecs.build_ikev2_sa_init(ICOOKIE, nonce=nonce)
    assert packet[16:20] == h("21 20 22 08")        # next SA (33), version 2.0, IKE_SA_INIT (34), Initiator flag
    assert struct.unpack("!I", packet[24:28])[0] == len(packet)
    parsed = probe_codecs.parse_isakmp(packet)
    assert parsed["payloads"] == [33, 34, 40] and parsed["major"] == 2
    assert packet.endswith(h("00 00 00 24") + nonce)
    ke_at = packet.index(h("28 00 01 08 00 0e 00 00"))       # KE: next Nonce, length 264, group 14
    assert len(packet[ke_at + 8:ke_at + 264]) == 256


def test_parse_ikev1_notify_reply():
    notify = struct.pack("!BBHIBBH", 0, 0, 12, 1, 1, 0, 14)       # DOI, PROTO_ISAKMP, no SPI, NO-PROPOSAL-CHOSEN
    header = ICOOKIE + h("aa bb cc dd ee ff 00 11") + h("0b 10 05 00") + b"\0" * 4 + struct.pack("!I", 28 + 12)
    parsed = probe_codecs.parse_isakmp(header + notify)
    assert parsed["icookie"] == ICOOKIE and parsed["exchange_name"] == "Informational"
    assert parsed["notifies"] == [14]
    assert probe_codecs.describe_isakmp(parsed) == "IKEv1 Informational reply (notify NO-PROPOSAL-CHOSEN)"


def test_parse_ikev2_invalid_ke_reply_with_natt_marker():
    notify = struct.pack("!BBHBBH", 0, 0, 10, 0, 0, 17) + h("00 0e")
    header = ICOOKIE + b"\0" * 8 + h("29 20 22 20") + b"\0" * 4 + struct.pack("!I", 28 + 10)
    parsed = probe_codecs.parse_isakmp(probe_codecs.NATT_MARKER + header + notify, natt=True)
    assert parsed["flags"] & 0x20 and parsed["notifies"] == [17]
    assert "INVALID_KE_PAYLOAD" in probe_codecs.describe_isakmp(parsed)
    with pytest.raises(ValueError, match="non-ESP marker"):
        probe_codecs.parse_isakmp(header + notify, natt=True)


@pytest.mark.parametrize("data", [b"short", ICOOKIE * 2 + h("01 30 02 00") + b"\0" * 4 + struct.pack("!I", 28),
                                  ICOOKIE * 2 + h("01 10 02 00") + b"\0" * 4 + struct.pack("!I", 99)])
def test_parse_isakmp_rejects_malformed(data):
    with pytest.raises(ValueError):
        probe_codecs.parse_isakmp(data)


# ---------------------------------------------------------------------------
# DNS
# ---------------------------------------------------------------------------
def test_dns_query_bytes():
    assert probe_codecs.build_dns_query(0x1234, "nap.example", "SOA") == (
        h("12 34 00 00 00 01 00 00 00 00 00 00") + b"\x03nap\x07example\x00" + h("00 06 00 01"))
    assert probe_codecs.build_dns_query(1, ".", "NS", recursion_desired=True) == h("00 01 01 00 00 01 00 00 00 00 00 00 00 00 02 00 01")
    with pytest.raises(ValueError):
        probe_codecs.encode_dns_name("a" * 64 + ".example")


def test_parse_dns_response_with_compression():
    question = b"\x02dc\x03nap\x07example\x00" + h("00 01 00 01")
    answer = h("c0 0c 00 01 00 01 00 00 0e 10 00 04 c6 12 01 0a")     # pointer to the question name
    data = h("ab cd 85 80 00 01 00 01 00 00 00 00") + question + answer
    reply = probe_codecs.parse_dns(data)
    assert reply["id"] == 0xABCD and reply["qr"] and reply["aa"] and reply["rcode_name"] == "NOERROR"
    assert reply["questions"] == [{"name": "dc.nap.example.", "type": 1, "class": 1}]
    assert reply["answers"] == [{"name": "dc.nap.example.", "type": 1, "class": 1, "ttl": 3600, "data": "198.18.1.10"}]
    refused = probe_codecs.parse_dns(h("00 07 80 05 00 00 00 00 00 00 00 00"))
    assert refused["rcode_name"] == "REFUSED"


def test_parse_dns_rejects_loops_and_truncation():
    loop = h("00 01 80 00 00 01 00 00 00 00 00 00 c0 0c 00 01 00 01")
    with pytest.raises(ValueError):
        probe_codecs.parse_dns(loop)
    with pytest.raises(ValueError):
        probe_codecs.parse_dns(h("00 01 80 00 00 01 00 00 00 00 00 00 05 ab"))


# ---------------------------------------------------------------------------
# CLDAP (BER)
# ---------------------------------------------------------------------------
def test_ber_lengths_and_integers():
    assert probe_codecs.ber_length(5) == h("05")
    assert probe_codecs.ber_length(127) == h("7f")
    assert probe_codecs.ber_length(200) == h("81 c8")
    assert probe_codecs.ber_length(300) == h("82 01 2c")
    assert probe_codecs.ber_integer(0) == h("02 01 00")
    assert probe_codecs.ber_integer(127) == h("02 01 7f")
    assert probe_codecs.ber_integer(128) == h("02 02 00 80")
    assert probe_codecs.ber_integer(-1) == h("02 01 ff")
    tag, value, end = probe_codecs.ber_read(h("04 81 c8") + b"x" * 200 + b"tail")
    assert tag == 4 and value == b"x" * 200 and end == 203
    with pytest.raises(ValueError):
        probe_codecs.ber_read(h("04 05 61"))


def test_cldap_rootdse_search_bytes():
    packet = probe_codecs.build_cldap_search(1, attributes=("dnsHostName",))
    request = (h("04 00") + h("0a 01 00") + h("0a 01 00") + h("02 01 00") + h("02 01 00") + h("01 01 00")
               + h("87 0b") + b"objectClass" + h("30 0d 04 0b") + b"dnsHostName")
    assert packet == h("30 32 02 01 01 63 2d") + request
    parsed = probe_codecs.parse_cldap(packet)
    assert parsed == [{"message_id": 1, "op": "searchRequest"}]


def _attr(name, *values):
    return tlv(0x30, tlv(0x04, name) + tlv(0x31, b"".join(tlv(0x04, v) for v in values)))


def test_parse_cldap_entry_and_done_in_one_datagram():
    attributes = _attr(b"dnsHostName", b"dc01.nap.example") + _attr(b"supportedLDAPVersion", b"3", b"2")
    entry = tlv(0x30, tlv(0x02, b"\x2a") + tlv(0x64, tlv(0x04, b"") + tlv(0x30, attributes)))
    done = tlv(0x30, tlv(0x02, b"\x2a") + tlv(0x65, h("0a 01 00 04 00 04 00")))
    messages = probe_codecs.parse_cldap(entry + done)
    assert messages[0] == {"message_id": 42, "op": "searchResEntry", "dn": "",
                           "attributes": {"dnsHostName": ["dc01.nap.example"], "supportedLDAPVersion": ["3", "2"]}}
    assert messages[1]["op"] == "searchResDone" and messages[1]["result"] == "success"


def test_parse_cldap_long_entry_and_errors():
    big = _attr(b"description", b"d" * 300)
    entry = tlv(0x30, tlv(0x02, b"\x01") + tlv(0x64, tlv(0x04, b"") + tlv(0x30, big)))
    assert entry[1] == 0x82                              # long-form length on the outer SEQUENCE
    assert probe_codecs.parse_cldap(entry)[0]["attributes"]["description"] == ["d" * 300]
    with pytest.raises(ValueError):
        probe_codecs.parse_cldap(h("04 00"))
    with pytest.raises(ValueError):
        probe_codecs.parse_cldap(tlv(0x30, tlv(0x64, b"")))
    done = tlv(0x30, tlv(0x02, b"\x05") + tlv(0x65, h("0a 01 35 04 00") + tlv(0x04, b"nope")))
    assert probe_codecs.parse_cldap(done)[0]["result"] == "unwillingToPerform"


# ---------------------------------------------------------------------------
# NTP
# ---------------------------------------------------------------------------
def test_ntp_request_and_reply():
    transmit = h("e9 00 00 00 80 00 00 00")
    request = probe_codecs.build_ntp_request(transmit)
    assert len(request) == 48 and request[0] == 0x23 and request[40:] == transmit
    reply = bytes([0x24, 2]) + b"\0" * 22 + transmit + b"\0" * 16
    parsed = probe_codecs.parse_ntp(reply)
    assert parsed["mode"] == 4 and parsed["stratum"] == 2 and parsed["origin"] == transmit


# ---------------------------------------------------------------------------
# the kinds: which probe over UDP, what auto picks, and each classifier on its own (no probe object)
# ---------------------------------------------------------------------------
def test_udp_kinds_and_auto():
    assert set(probe_codecs.UDP_KINDS) == set(probe_codecs.KINDS) - {"auto", "tcp", "kerberos"}
    assert probe_codecs.BOTH_KINDS == ("kerberos",)
    assert set(probe_codecs.UDP_PORT_KINDS.values()) <= set(probe_codecs.UDP_KINDS) | set(probe_codecs.BOTH_KINDS)
    assert probe_codecs.DHCP_SERVER_PORT not in probe_codecs.UDP_PORT_KINDS
    assert [probe_codecs.auto_udp_kind(port) for port in (53, 67, 88, 123, 389, 500, 4500, 1645, 1812, 68, 9)] == [
        "dns", "dhcp", "kerberos", "ntp", "cldap", "ike", "ike", "radius", "radius", "udp", "udp"]


# A KRB-ERROR as Samba's (Heimdal) KDC sends it for an AS-REQ without pre-authentication (DER by hand):
# pvno 5, msg-type 30, stime, susec, error-code 25 (KDC_ERR_PREAUTH_REQUIRED), realm, sname krbtgt/LAB.NAP.TEST.
def _krb_error(code=25, realm=b"LAB.NAP.TEST"):
    tlv = probe_codecs.ber_tlv
    integer = probe_codecs.ber_integer
    sname = tlv(0x30, tlv(0xA0, integer(2)) + tlv(0xA1, tlv(0x30, tlv(0x1B, b"krbtgt") + tlv(0x1B, realm))))
    body = (tlv(0xA0, integer(5)) + tlv(0xA1, integer(30)) + tlv(0xA4, tlv(0x18, b"20261130120000Z"))
            + tlv(0xA5, integer(1234)) + tlv(0xA6, integer(code)) + tlv(0xA9, tlv(0x1B, realm)) + tlv(0xAA, sname))
    return tlv(0x7E, tlv(0x30, body))


def test_kerberos_as_req_byte_by_byte_and_its_answers():
    req = probe_codecs.build_kerberos_as_req(0x01020304, "lab.nap.test")
    # APPLICATION 10 { SEQUENCE { [1] pvno 5, [2] msg-type 10 (AS-REQ), [4] KDC-REQ-BODY } }
    tag, content, end = probe_codecs.ber_read(req)
    assert (tag, end) == (0x6A, len(req))
    seq_tag, seq, _end = probe_codecs.ber_read(content)
    fields = probe_codecs.ber_sequence_items(seq)
    assert seq_tag == 0x30 and [t for t, _v in fields] == [0xA1, 0xA2, 0xA4]
    assert fields[0][1] == b"\x02\x01\x05" and fields[1][1] == b"\x02\x01\x0a"
    assert b"\x1b\x0cLAB.NAP.TEST" in req and b"\x1b\x06krbtgt" in req and b"\x1b\x13configmgr-nap-probe" in req
    assert b"\xa7\x06\x02\x04\x01\x02\x03\x04" in req                      # nonce
    assert probe_codecs.parse_kerberos(req)["type"] == "AS-REQ"
    tcp = probe_codecs.build_kerberos_as_req(0x01020304, "LAB.NAP.TEST", tcp=True)
    assert tcp[:4] == struct.pack("!I", len(req)) and tcp[4:] == req         # RFC 4120 7.2.2: 4-byte length first
    error = _krb_error()
    state, detail, answer = probe_codecs.classify_kerberos(error, req)
    assert (state, detail) == ("open", "Kerberos KRB-ERROR KDC_ERR_PREAUTH_REQUIRED (realm LAB.NAP.TEST)")
    assert answer["error_code"] == 25
    assert probe_codecs.classify_kerberos(struct.pack("!I", len(error)) + error, tcp, tcp=True)[0] == "open"
    assert probe_codecs.classify_kerberos(struct.pack("!I", len(error) + 9) + error, tcp, tcp=True) is None  # not all in
    assert probe_codecs.classify_kerberos(req, req)[0] == "unexpected"            # an echo
    assert probe_codecs.classify_kerberos(probe_codecs.build_kerberos_as_req(7, "X"), req)[0] == "unexpected"
    assert probe_codecs.classify_kerberos(b"\x30\x03\x02\x01\x01", req) is None     # not Kerberos: keep waiting
    assert probe_codecs.classify_kerberos(_krb_error(68), req)[1].startswith("Kerberos KRB-ERROR KDC_ERR_WRONG_REALM")


def test_classifiers_without_a_probe():
    assert probe_codecs.classify_datagram(b"xy") == ("open", "a 2-byte datagram came back", {"bytes": 2})
    request = probe_codecs.dhcp_request("discover", 7, MAC, "198.18.2.1", relay=True)
    parsed = probe_codecs.parse_dhcp(request)
    assert (parsed["giaddr"], parsed["ciaddr"], parsed["hops"], parsed["flags"]) == ("198.18.2.1", "0.0.0.0", 1, 0)
    assert probe_codecs.classify_dhcp(request, 7) is None                    # our own request: op 1
    assert probe_codecs.classify_dhcp(_offer(7), 7)[:2] == ("open", "DHCPOFFER of 198.18.2.50 from server 198.18.1.10")
    assert probe_codecs.classify_dhcp(_offer(8), 7) is None

    authenticator = bytes(range(16))
    status = probe_codecs.radius_request("status_server", 3, b"s3cret", authenticator)
    assert status[0] == probe_codecs.STATUS_SERVER and status[4:20] == authenticator
    reply = probe_codecs.build_radius_response(probe_codecs.ACCESS_ACCEPT, status, b"s3cret")
    assert probe_codecs.classify_radius(reply, status, b"s3cret")[0] == "open"
    assert probe_codecs.classify_radius(reply, status, b"other")[0] == "unexpected"

    packets, spis = probe_codecs.ike_requests("both", natt=True)
    assert len(packets) == 2 and sorted(spis.values()) == [1, 2]
    assert all(p[:4] == probe_codecs.NATT_MARKER for p in packets)
    assert probe_codecs.classify_ike(packets[0], spis, set(packets), natt=True)[0] == "unexpected"   # an echo

    query = probe_codecs.build_dns_query(9, "nap.example")
    assert probe_codecs.classify_dns(query, 9)[0] == "unexpected" and probe_codecs.classify_dns(query, 10) is None
    search = probe_codecs.build_cldap_search(5)
    assert probe_codecs.classify_cldap(search, 5)[0] == "unexpected" and probe_codecs.classify_cldap(search, 6) is None
    transmit = b"\x01" * 8
    reply = bytes([0x24, 3]) + b"\0" * 22 + transmit + b"\0" * 16
    assert probe_codecs.classify_ntp(reply, transmit) == ("open", "NTP reply, stratum 3", {"stratum": 3})
    assert probe_codecs.classify_ntp(reply, b"\x02" * 8) is None
