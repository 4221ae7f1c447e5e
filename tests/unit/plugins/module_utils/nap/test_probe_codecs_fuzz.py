# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fuzz of every reply parser and classifier in probe_codecs.py (Hypothesis), without sockets.

A datagram is random bytes, or a valid reply of the kind mutated: truncated, bits flipped, bytes
set, a length field (of the header, an option, an attribute, a payload, a BER element, a DNS count
or rdlength) changed, random bytes spliced in, appended or cut out.  For each:

* the parser (parse_dhcp, parse_dhcp_options, parse_radius, verify_radius_response, parse_isakmp,
  describe_isakmp, parse_dns, ber_read, parse_cldap, parse_ntp) returns or raises ValueError, never
  anything else;
* the probe's classifier (``check``: probe_codecs.classify_<kind> with the probe's ids) never
  raises and settles nothing or says ``unexpected``, except that a mutation which leaves a
  well-formed answer with our id may still be ``open`` (never for RADIUS, whose answer is
  authenticated: only bytes appended past its Length keep it valid);
* fed through ``on_event`` and ``expire`` like a datagram from the target port, the verdict is
  ``unexpected`` (or ``open`` for such a still-valid answer), never an error or an exception, and
  the answer is JSON.

The generic ``udp`` kind has no parser (any datagram back is ``open``) and is not fuzzed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import hmac
import json
import os
import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_codecs
from ansible_collections.configmgr.nap.plugins.module_utils.nap import probe_engine

SECRET = b"fuzz-secret"
# NAP_FUZZ_SCALE=50 for a deep run; the default keeps the file at a few seconds
SCALE = max(0.1, float(os.environ.get("NAP_FUZZ_SCALE") or 1))


def fuzz(examples):
    return settings(max_examples=int(examples * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def no_dns(*_args, **_kwargs):
    raise AssertionError("no name resolution expected")


def target(**kw):
    raw = {"host": "198.18.0.2"}
    raw.update(kw)
    return probe_engine.normalize_targets([raw], resolver=no_dns)[0]


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
# a valid reply of each kind, and where its length fields are: [(offset, width)]
# ---------------------------------------------------------------------------
def dhcp_reply(p):
    request = p.requests("198.18.2.1")[0]
    mac = p.target.options["mac"]
    options = [(54, socket.inet_aton("198.18.1.10")), (51, struct.pack("!I", 3600)),
               (1, socket.inet_aton("255.255.255.0")), (3, socket.inet_aton("198.18.2.1")),
               (6, socket.inet_aton("198.18.1.10") + socket.inet_aton("198.18.1.11")), (56, b"fuzz")]
    reply = bytearray(probe_codecs.build_dhcp(probe_codecs.DHCPOFFER, p.xid, mac, extra_options=options))
    reply[0] = 2                                                   # BOOTREPLY
    reply[16:20] = socket.inet_aton("198.18.2.50")                 # yiaddr
    assert probe_codecs.parse_dhcp(request)["xid"] == p.xid
    return bytes(reply)


def dhcp_lengths(data):
    out, i = [], 240
    while i + 1 < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        out.append((i + 1, 1))
        i += 2 + data[i + 1]
    return out


def radius_reply(p):
    request = p.requests("198.18.0.1")[0]
    code = probe_codecs.ACCESS_ACCEPT
    return probe_codecs.build_radius_response(code, request, SECRET, [(probe_codecs.ATTR_REPLY_MESSAGE, b"welcome"), (25, b"cls")])


def radius_lengths(data):
    out, i = [(2, 2)], 20
    while i + 1 < len(data):
        out.append((i + 1, 1))
        i += max(2, data[i + 1])
    return out


def ike_reply(p, version):
    spi = [s for s, v in p.spis.items() if v == version][0]
    if version == 1:
        notify = struct.pack("!BBHIBBH", 0, 0, 12, 1, 1, 0, 14)          # NO-PROPOSAL-CHOSEN
        header = spi + b"\xaa" * 8 + bytes([11, 0x10, 5, 0]) + b"\0" * 4 + struct.pack("!I", 28 + len(notify))
    else:
        notify = struct.pack("!BBHBBH", 0, 0, 10, 0, 0, 17) + b"\x00\x0e"  # INVALID_KE_PAYLOAD, group 14
        header = spi + b"\0" * 8 + bytes([41, 0x20, 34, 0x20]) + b"\0" * 4 + struct.pack("!I", 28 + len(notify))
    return (probe_codecs.NATT_MARKER if p.natt else b"") + header + notify


def ike_lengths(data, natt):
    base = 4 if natt else 0
    out, i = [(base + 24, 4)], base + 28
    while i + 4 <= len(data):
        out.append((i + 2, 2))
        i += max(4, struct.unpack("!H", data[i + 2:i + 4])[0])
    return out


def dns_reply(p):
    query = p.requests("198.18.0.1")[0]
    answer = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + socket.inet_aton("198.18.1.10")
              + b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 300, 16) + socket.inet_aton("198.18.1.10") * 4)
    header = struct.pack("!HHHHHH", p.qid, 0x8400, 1, 2, 0, 0)
    return header + query[12:] + answer


def dns_lengths(data):
    out = [(4, 2), (6, 2), (8, 2), (10, 2)]
    i = 12
    while i < len(data) and data[i]:                    # the question name's labels
        out.append((i, 1))
        i += 1 + data[i]
    out += [(len(data) - 16 - 2, 2), (len(data) - 16 - 12 - 4 - 2, 2)]     # the two rdlengths
    return out


def cldap_reply(p):
    attrs = b"".join(tlv(0x30, tlv(0x04, name) + tlv(0x31, b"".join(tlv(0x04, v) for v in values)))
                     for name, values in ((b"dnsHostName", [b"dc01.nap.example"]),
                                          (b"supportedLDAPVersion", [b"3", b"2"]),
                                          (b"description", [b"d" * 140])))
    mid = probe_codecs.ber_integer(p.message_id)
    entry = tlv(0x30, mid + tlv(0x64, tlv(0x04, b"") + tlv(0x30, attrs)))
    done = tlv(0x30, mid + tlv(0x65, bytes.fromhex("0a0100040004 00")))
    return entry + done


def cldap_lengths(data, offset=0, end=None):
    """The length octets of every BER element, descending into SEQUENCE, SET and application ops."""
    end = len(data) if end is None else end
    out = []
    while offset + 2 <= end:
        tag, first = data[offset], data[offset + 1]
        width = 1 if first < 0x80 else 1 + (first & 0x7F)
        out.append((offset + 1, width))
        length = first if first < 0x80 else int.from_bytes(data[offset + 2:offset + 1 + width], "big")
        body = offset + 1 + width
        if tag in (0x30, 0x31, 0x64, 0x65):
            out += cldap_lengths(data, body, body + length)
        offset = body + length
    return out


def ntp_reply(p):
    return bytes([0x24, 2]) + b"\0" * 22 + p.transmit + b"\0" * 16


class Case:
    """One kind: its probe, a valid reply, the probe's own request(s) (an echo is not an answer),
    the length fields and the fields that decide the verdict (message type, flags, mode)."""

    def __init__(self, name, make_probe, make_reply, lengths, parse, fields=(), authenticated=False):
        self.name = name
        self.probe = make_probe()
        self.valid = make_reply(self.probe)
        self.echoes = list(self.probe.requests("198.18.0.1")) if not isinstance(self.probe, probe_engine.IkeProbe) \
            else sorted(self.probe.sent)
        self.lengths = lengths(self.valid)
        self.fields = [f for f in fields if f < len(self.valid)]
        self.parse = parse
        self.authenticated = authenticated

    def __repr__(self):
        return "Case(%s)" % self.name


def _radius(request):
    return lambda: probe_engine.RadiusProbe(target(port=1812, kind="radius", secret=SECRET, radius_request=request))


def _ike(port, version):
    def make():
        p = probe_engine.IkeProbe(target(port=port, kind="ike", ike_version="both"))
        p.requests("198.18.0.1")
        return p
    return make


DHCP_FIELDS = (0, 1, 2, 4, 7, 236, 239, 242)               # op, htype, hlen, xid, magic cookie, message type value
IKE_FIELDS = (0, 7, 16, 17, 18, 19)                          # initiator SPI, next payload, version, exchange, flags
CASES = [
    Case("dhcp", lambda: probe_engine.DhcpProbe(target(port=67, kind="dhcp")), dhcp_reply, dhcp_lengths, probe_codecs.parse_dhcp,
         DHCP_FIELDS),
    Case("dhcp_relay", lambda: probe_engine.DhcpRelayProbe(target(port=67, kind="dhcp_relay", dhcp_message="inform")),
         dhcp_reply, dhcp_lengths, probe_codecs.parse_dhcp, DHCP_FIELDS),
    Case("radius_status_server", _radius("status_server"), radius_reply, radius_lengths, probe_codecs.parse_radius,
         (0, 1, 20, 22), True),
    Case("radius_access_request", _radius("access_request"), radius_reply, radius_lengths, probe_codecs.parse_radius,
         (0, 1, 20, 22), True),
    Case("ikev1", _ike(500, 1), lambda p: ike_reply(p, 1), lambda d: ike_lengths(d, False), probe_codecs.parse_isakmp,
         IKE_FIELDS + (28, 40, 42)),
    Case("ikev2", _ike(500, 2), lambda p: ike_reply(p, 2), lambda d: ike_lengths(d, False), probe_codecs.parse_isakmp,
         IKE_FIELDS + (28, 34)),
    Case("ikev1_natt", _ike(4500, 1), lambda p: ike_reply(p, 1), lambda d: ike_lengths(d, True),
         lambda d: probe_codecs.parse_isakmp(d, natt=True), tuple(4 + f for f in IKE_FIELDS) + (0, 3)),
    Case("ikev2_natt", _ike(4500, 2), lambda p: ike_reply(p, 2), lambda d: ike_lengths(d, True),
         lambda d: probe_codecs.parse_isakmp(d, natt=True), tuple(4 + f for f in IKE_FIELDS) + (0, 3)),
    Case("dns", lambda: probe_engine.DnsProbe(target(port=53, kind="dns", dns_name="nap.example")), dns_reply, dns_lengths,
         probe_codecs.parse_dns, (0, 1, 2, 3)),
    Case("cldap", lambda: probe_engine.CldapProbe(target(port=389, kind="cldap")), cldap_reply, cldap_lengths,
         probe_codecs.parse_cldap, (0, 2, 4, 5, 6)),
    Case("ntp", lambda: probe_engine.NtpProbe(target(port=123, kind="ntp")), ntp_reply, lambda d: [], probe_codecs.parse_ntp,
         (0, 1, 24, 31)),
]
IDS = [c.name for c in CASES]


def test_the_valid_replies_are_open():
    """The fuzz starts from answers the classifiers accept, and knows their length fields."""
    for case in CASES:
        state, detail, answer = case.probe.check(case.valid)
        assert state == "open", (case.name, detail)
        json.dumps(answer)
        assert case.name == "ntp" or case.lengths


# ---------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------
def _set_field(data, offset, width, value):
    value &= (1 << (8 * width)) - 1
    return data[:offset] + value.to_bytes(width, "big") + data[offset + width:]


@st.composite
def mutations(draw, case):
    data = draw(st.sampled_from([case.valid] * 3 + case.echoes))
    for _step in range(draw(st.integers(1, 3))):
        n = len(data)
        how = draw(st.sampled_from(["truncate", "flip", "byte", "field", "length", "length", "splice", "append",
                                    "cut"]))
        if how == "truncate" and n:
            data = data[:draw(st.integers(0, n - 1))]
        elif how == "flip" and n:
            out = bytearray(data)
            for _i in range(draw(st.integers(1, 8))):
                out[draw(st.integers(0, n - 1))] ^= 1 << draw(st.integers(0, 7))
            data = bytes(out)
        elif how in ("byte", "field") and n:
            fields = [f for f in case.fields if f < n]
            i = draw(st.sampled_from(fields)) if how == "field" and fields else draw(st.integers(0, n - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
        elif how == "length":
            fields = [(o, w) for o, w in case.lengths if o + w <= n]
            if fields:
                offset, width = draw(st.sampled_from(fields))
            elif n >= 2:
                offset, width = draw(st.integers(0, n - 2)), 2
            else:
                continue
            old = int.from_bytes(data[offset:offset + width], "big")
            value = draw(st.one_of(st.integers(-8, 8).map(lambda d, old=old: old + d),
                                   st.sampled_from([0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, n, n + 1]),
                                   st.integers(0, (1 << (8 * width)) - 1)))
            data = _set_field(data, offset, width, value)
        elif how == "splice":
            data = data[:draw(st.integers(0, n))] + draw(st.binary(max_size=64))
        elif how == "append":
            data = data + draw(st.binary(min_size=1, max_size=64))
        elif how == "cut" and n:
            i = draw(st.integers(0, n - 1))
            data = data[:i] + data[i + draw(st.integers(1, 16)):]
    return data


def _parses(case, data):
    try:
        case.parse(data)
        return True
    except ValueError:
        return False


def classify(case, data, mutated=True):
    """check() must not raise and must say None, unexpected, or open for a well-formed answer only
    (for a mutated RADIUS answer: only when the mutation appended bytes past its Length)."""
    verdict = case.probe.check(data)
    if verdict is None:
        return None
    state, detail, answer = verdict
    assert isinstance(detail, str) and isinstance(answer, dict)
    json.dumps(answer)
    assert state in ("unexpected", "open"), (case.name, verdict)
    if state == "open":
        assert _parses(case, data), (case.name, data)
        if case.authenticated and mutated:
            assert data[:len(case.valid)] == case.valid, (case.name, data)
    return state


def settle(case, data):
    """The datagram arrives on the probe's connected socket, then the wait ends: the final verdict."""
    p = copy.copy(case.probe)
    p.result, p.ignored, p.started, p.extra = None, 0, 0.0, []

    class FakeSocket:
        queue = [data]

        def recv(self, _size):
            if self.queue:
                return self.queue.pop()
            raise BlockingIOError()

    p.sock = FakeSocket()
    p.on_event(p.sock, 1, 0.01)
    if p.result is None:
        p.expire(0.2, 0.2)
    state, _elapsed, detail, answer = p.result
    json.dumps(answer)
    return state, detail


# ---------------------------------------------------------------------------
# the properties
# ---------------------------------------------------------------------------
@fuzz(120)
@given(data=st.binary(max_size=400))
def test_random_bytes_are_unexpected(data):
    for case in CASES:
        _parses(case, data)                             # ValueError or a result, nothing else
        assert classify(case, data) in (None, "unexpected")
        state, detail = settle(case, data)
        assert state == "unexpected", (case.name, detail)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@fuzz(50)
@given(data=st.data())
def test_mutated_replies_are_unexpected_unless_still_valid(case, data):
    mutated = data.draw(mutations(case))
    well_formed = _parses(case, mutated)
    state = classify(case, mutated)
    final, detail = settle(case, mutated)
    assert final == (state or "unexpected"), (case.name, detail)
    if not well_formed:
        assert final == "unexpected", (case.name, detail)


@fuzz(100)
@given(data=st.binary(max_size=300))
def test_low_level_parsers_raise_only_value_error(data):
    for parse in (probe_codecs.parse_dhcp_options, lambda d: probe_codecs.ber_read(d, 0), probe_codecs.ber_sequence_items):
        try:
            parse(data)
        except ValueError:
            pass
    for natt in (False, True):
        try:
            probe_codecs.describe_isakmp(probe_codecs.parse_isakmp(data, natt))
        except ValueError:
            pass
    request = probe_codecs.build_status_server(7, SECRET, b"\x01" * 16)
    ok, reason = probe_codecs.verify_radius_response(request[:4] + data, request[4:20], SECRET)
    assert ok in (True, False) and isinstance(reason, str)
    ok, reason = probe_codecs.verify_radius_response(data, request[4:20], SECRET)
    assert ok in (True, False) and isinstance(reason, str)


@fuzz(60)
@given(data=st.data())
def test_ber_and_dns_names_deep(data):
    """Random bytes behind a valid prefix reach the inner parsers: BER attribute lists, DNS records."""
    case = data.draw(st.sampled_from([c for c in CASES if c.name in ("cldap", "dns", "dhcp")]))
    cut = data.draw(st.integers(0, len(case.valid)))
    tail = data.draw(st.binary(max_size=200))
    mutated = case.valid[:cut] + tail
    _parses(case, mutated)
    classify(case, mutated)
    assert settle(case, mutated)[0] in ("unexpected", "open")


# ---------------------------------------------------------------------------
# well-framed but wrong: RADIUS replies signed right or wrong, LDAP messages of any shape
# ---------------------------------------------------------------------------
RADIUS_CASES = [c for c in CASES if c.name.startswith("radius")]


@st.composite
def radius_replies(draw):
    """-> (case, datagram, the verdict an independent check of RFC 2865 section 3 and RFC 3579 3.2 expects)."""
    case = draw(st.sampled_from(RADIUS_CASES))
    p = case.probe
    request_code, request_auth = p.packet[0], p.authenticator
    code = draw(st.one_of(st.sampled_from([2, 3, 5, 11]), st.integers(0, 255)))
    identifier = p.identifier if draw(st.integers(0, 5)) else draw(st.integers(0, 255))
    attributes = draw(st.lists(st.tuples(st.one_of(st.sampled_from([18, 25, 26]), st.integers(0, 255)),
                                         st.binary(max_size=40)), max_size=5))
    attributes = [(t, v) for t, v in attributes if t != probe_codecs.ATTR_MESSAGE_AUTHENTICATOR]
    ma = draw(st.sampled_from(["none", "right", "wrong", "short", "long"]))
    ma_value = {"none": None, "right": b"\0" * 16, "wrong": b"\0" * 16, "short": b"\0" * 8, "long": b"\0" * 20}[ma]
    if ma_value is not None:
        attributes.insert(draw(st.integers(0, len(attributes))), (probe_codecs.ATTR_MESSAGE_AUTHENTICATOR, ma_value))
    body = b"".join(bytes([t, 2 + len(v)]) + v for t, v in attributes)
    header = struct.pack("!BBH", code, identifier, 20 + len(body))
    if ma in ("right", "wrong"):
        at = [i for i in _attribute_offsets(body) if body[i] == probe_codecs.ATTR_MESSAGE_AUTHENTICATOR][0]
        mac = hmac.new(SECRET, header + request_auth + body, hashlib.md5).digest()
        if ma == "wrong":
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        body = body[:at + 2] + mac + body[at + 18:]
    signed = draw(st.integers(0, 4)) > 0
    auth = hashlib.md5(header + request_auth + body + SECRET).digest() if signed else draw(st.binary(min_size=16,
                                                                                                     max_size=16))
    data = header + auth + body
    if identifier != p.identifier:
        expected = None
    elif code not in probe_codecs.RADIUS_REPLIES[request_code]:
        expected = "unexpected"
    elif auth != hashlib.md5(header + request_auth + body + SECRET).digest():
        expected = "unexpected"
    elif ma in ("wrong", "short", "long"):
        expected = "unexpected"
    else:
        expected = "open"
    return case, data, expected


def _attribute_offsets(body):
    out, i = [], 0
    while i < len(body):
        out.append(i)
        i += body[i + 1]
    return out


@fuzz(80)
@given(reply=radius_replies())
def test_radius_replies_are_open_only_when_authenticated(reply):
    case, data, expected = reply
    assert classify(case, data, mutated=False) == expected
    assert settle(case, data)[0] == (expected or "unexpected")


def _ber_leaf():
    return st.builds(tlv, st.one_of(st.sampled_from([0x01, 0x02, 0x04, 0x0A, 0x87]), st.integers(0, 0x1E)),
                     st.binary(max_size=24))


BER = st.recursive(_ber_leaf(), lambda kids: st.builds(lambda tag, items: tlv(tag, b"".join(items)),
                                                       st.sampled_from([0x30, 0x31, 0x04]), st.lists(kids, max_size=4)),
                   max_leaves=12)
CLDAP = [c for c in CASES if c.name == "cldap"][0]


@st.composite
def ldap_messages(draw):
    ours = CLDAP.probe.message_id
    message_id = probe_codecs.ber_integer(ours if draw(st.integers(0, 4)) else draw(st.integers(-2 ** 40, 2 ** 40)))
    if not draw(st.integers(0, 9)):
        message_id = draw(_ber_leaf())
    op_tag = draw(st.one_of(st.sampled_from([0x63, 0x64, 0x65, 0x66, 0x78]), st.integers(0, 255)))
    op = tlv(op_tag, b"".join(draw(st.lists(BER, max_size=4))))
    return tlv(0x30, message_id + op) if draw(st.integers(0, 9)) else tlv(0x30, op)


@fuzz(60)
@given(messages=st.lists(ldap_messages(), min_size=1, max_size=3), tail=st.binary(max_size=4))
def test_cldap_messages_of_any_shape(messages, tail):
    data = b"".join(messages) + (tail if len(tail) > 2 else b"")
    try:
        parsed = probe_codecs.parse_cldap(data)
    except ValueError:
        parsed = None
    ours = [m for m in parsed or [] if m["message_id"] == CLDAP.probe.message_id]
    if not ours:
        expected = None
    elif any(m["op"] in ("searchResEntry", "searchResDone") for m in ours):
        expected = "open"
    else:
        expected = "unexpected"
    assert classify(CLDAP, data, mutated=False) == expected
    assert settle(CLDAP, data)[0] == (expected or "unexpected")


# ---------------------------------------------------------------------------
# DNS names: bounded (RFC 1035: 255 octets), and a datagram of pointers costs little
# ---------------------------------------------------------------------------
def test_dns_names_are_bounded_and_pointer_bombs_are_cheap():
    header = struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0)
    with pytest.raises(ValueError, match="longer than 255"):
        probe_codecs.parse_dns(header + b"\x01a" * 128 + b"\0" + struct.pack("!HH", 6, 1))
    assert probe_codecs.parse_dns(header + b"\x01a" * 127 + b"\0" + struct.pack("!HH", 6, 1))["questions"][0]["name"] \
        == "a." * 127
    with pytest.raises(ValueError, match="loop"):
        probe_codecs.parse_dns(header + b"\xc0\x0c" + struct.pack("!HH", 6, 1))
    with pytest.raises(ValueError, match="loop|longer than 255"):            # labels and a pointer back to them
        probe_codecs.parse_dns(header + b"\x01a\xc0\x0c" + struct.pack("!HH", 6, 1))
    # one long name, then as many questions as fit in a datagram, each a pointer to it (or to a chain)
    name = b"\x01a" * 127 + b"\0" + struct.pack("!HH", 6, 1)
    chain = b"\x01b\x00" + struct.pack("!HH", 6, 1)
    offsets = [12 + len(name)]
    for _i in range(60):
        offsets.append(12 + len(name) + len(chain))
        chain += b"\x01b" + struct.pack("!H", 0xC000 | offsets[-2]) + struct.pack("!HH", 6, 1)
    pointers = b"".join(struct.pack("!HHH", 0xC000 | (12 if i % 2 else offsets[i % 61]), 6, 1) for i in range(10000))
    count = 1 + 61 + 10000
    data = struct.pack("!HHHHHH", 1, 0x8000, count, 0, 0, 0) + name + chain + pointers
    start = time.time()
    assert len(probe_codecs.parse_dns(data)["questions"]) == count
    assert time.time() - start < 2.0
    # names longer than 255 octets behind pointers are refused early
    long_name = b"\x3fx" + b"y" * 62
    data = struct.pack("!HHHHHH", 1, 0x8000, 2, 0, 0, 0) + long_name * 3 + b"\0" + struct.pack("!HH", 6, 1) \
        + b"\x3fz" + b"z" * 62 + b"\xc0\x0c" + struct.pack("!HH", 6, 1)
    with pytest.raises(ValueError, match="longer than 255"):
        probe_codecs.parse_dns(data)
