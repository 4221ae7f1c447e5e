# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical rule model: ports, addresses, validation messages."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import (
    NapError, Rule, normalize_addresses, normalize_ports, parse_port,
)


@pytest.mark.parametrize("value,expected", [
    (80, 80), ("443", 443), ("49152-65535", "49152-65535"), ("1812-1812", 1812), (" 53 ", 53),
])
def test_ports_parse(value, expected):
    assert parse_port(value) == expected


@pytest.mark.parametrize("value,message", [
    ("80-", "'80-' is not a port"), ("70000", "port 70000 is outside 1-65535"), (0, "port 0 is outside"),
    ("90-80", "has its low end above its high end"), (True, "is not a port"), ("rpc", "'rpc' is not a port"),
])
def test_bad_ports(value, message):
    with pytest.raises(NapError, match=message):
        parse_port(value, "rule X: dst_ports")


def test_ports_sort_and_dedupe_with_keywords():
    assert normalize_ports(["443", 80, 80, "1000-2000"]) == (80, 443, "1000-2000")
    assert normalize_ports(["rpc-epmap"], allow_keywords=True) == ("rpc-epmap",)


def test_addresses_collapse_unless_told_not_to():
    assert normalize_addresses(["192.0.2.7", "192.0.2.0/24", "2001:db8::1"]) == ("192.0.2.0/24", "2001:db8::1/128")
    assert normalize_addresses(["198.51.100.0/25", "198.51.100.128/25"]) == ("198.51.100.0/24",)
    assert normalize_addresses(["198.51.100.128/25", "198.51.100.0/25"], collapse=False) == (
        "198.51.100.0/25", "198.51.100.128/25")
    with pytest.raises(NapError, match="'dc01' is not an IPv4/IPv6 address or CIDR"):
        normalize_addresses(["dc01"], "rule X: src_addresses")


def rule(**kw):
    data = {"name": "R1", "protocol": "tcp", "direction": "in", "dst_ports": [445]}
    data.update(kw)
    return data


@pytest.mark.parametrize("data,message", [
    (rule(protocol="sctp"), "rule 'R1': protocol 'sctp' is not one of tcp, udp, esp, ah, gre, icmp"),
    (rule(dst_ports=["80-"]), "rule 'R1': dst_ports: '80-' is not a port"),
    (rule(dst_ports=[70000]), "rule 'R1': dst_ports: port 70000 is outside 1-65535"),
    (rule(protocol="esp"), "rule 'R1': protocol esp has no ports, but ports were given"),
    (rule(src_addresses=["192.0.2.300"]), "rule 'R1': src_addresses: '192.0.2.300' is not an IPv4/IPv6"),
    (rule(direction="sideways"), "rule 'R1': direction 'sideways' is not one of in, out, forward"),
    (rule(action="deny"), "rule 'R1': action 'deny' is not supported"),
    (rule(dst_ports=["rpc-dynamic", 135]), "the port keyword rpc-dynamic stands alone on an inbound TCP rule"),
    (rule(colour="red"), "rule 'R1': unknown field(s) colour"),
    ({"protocol": "tcp"}, "'name' is required"),
])
def test_rule_validation_names_rule_and_field(data, message):
    with pytest.raises(NapError) as err:
        Rule.from_dict(data)
    assert message in str(err.value)


def test_rule_round_trip_and_summary():
    r = Rule.from_dict(rule(src_addresses=["192.0.2.10"], description="SMB"))
    assert Rule.from_dict(r.to_dict()) == r
    assert r.summary() == "R1 in allow tcp from 192.0.2.10/32 to any port 445"


def test_icmp_type_narrows_icmp_and_is_validated():
    ping = Rule.from_dict({"name": "PING-IN", "protocol": "icmp", "icmp_type": "Echo-Request"})
    assert ping.icmp_type == "echo-request" and ping.to_dict()["icmp_type"] == "echo-request"
    assert "icmp_type" not in Rule.from_dict({"name": "ANY-IN", "protocol": "icmp"}).to_dict()
    assert ping.key() != Rule.from_dict({"name": "PING-IN", "protocol": "icmp"}).key()
    assert Rule(**ping.to_dict()) == ping and "type echo-request" in ping.summary()
    with pytest.raises(NapError, match=r"rule 'P': icmp_type 'echo' is not one of echo-request"):
        Rule.from_dict({"name": "P", "protocol": "icmp", "icmp_type": "echo"})
    with pytest.raises(NapError, match=r"rule 'P': icmp_type echo-request needs protocol icmp, not tcp"):
        Rule.from_dict({"name": "P", "protocol": "tcp", "icmp_type": "echo-request"})


@pytest.mark.parametrize("values,collapse,expected", [
    # already normal: given back as is
    (["192.0.2.0/24", "198.51.100.7/32"], True, ("192.0.2.0/24", "198.51.100.7/32")),
    (["0.0.0.0/0"], True, ("0.0.0.0/0",)),
    (["192.0.2.0/24", "192.0.2.0/25"], False, ("192.0.2.0/24", "192.0.2.0/25")),
    # look normal but are not: the fast path must leave them to the parser
    (["192.0.2.0/25", "192.0.2.128/25"], True, ("192.0.2.0/24",)),          # two halves join
    (["192.0.2.0/24", "192.0.2.0/25"], True, ("192.0.2.0/24",)),            # covered
    (["198.51.100.0/24", "192.0.2.0/24"], True, ("192.0.2.0/24", "198.51.100.0/24")),   # unsorted
    (["192.0.2.0/25", "192.0.2.0/24"], False, ("192.0.2.0/24", "192.0.2.0/25")),
    (["192.0.2.7"], True, ("192.0.2.7/32",)),                                 # no prefix length
    (["192.0.2.7/24"], True, ("192.0.2.0/24",)),                              # host bits set
    (["192.000.2.7/32"], True, None),                                         # leading zeros: not an address
    (["192.0.2.7/032"], True, ("192.0.2.7/32",)),
    ([" 192.0.2.7/32"], True, ("192.0.2.7/32",)),
    (["192.0.2.4/31", "192.0.2.6/31"], True, ("192.0.2.4/30",)),
    (["192.0.2.2/31", "192.0.2.4/31"], True, ("192.0.2.2/31", "192.0.2.4/31")),   # adjacent, not halves of one
])
def test_addresses_in_normal_form_are_recognised_exactly(values, collapse, expected):
    # a fresh list object each time, so that no cache entry of an earlier test decides
    values = [str(v) for v in values]
    if expected is None:
        with pytest.raises(NapError, match="is not an IPv4/IPv6 address"):
            normalize_addresses(values, "rule X: src_addresses", collapse=collapse)
        return
    assert normalize_addresses(values, collapse=collapse) == expected
    # and a result normalizes to itself
    assert normalize_addresses(list(expected), collapse=collapse) == expected


def test_addresses_come_back_as_plain_str_even_from_a_str_subclass():
    """Ansible hands the module tagged or unsafe text (str subclasses): the result is plain str, which
    yaml.safe_dump and every backend can write."""
    class Tagged(str):
        pass

    result = normalize_addresses([Tagged("192.0.2.64/26")])
    assert result == ("192.0.2.64/26",)
    assert all(type(a) is str for a in result)      # pylint: disable=unidiomatic-typecheck
