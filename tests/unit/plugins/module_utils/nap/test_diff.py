# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared diff: add, remove, update by name; duplicates; Ansible --diff text."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import diff_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, Rule


def r(name, port, src="192.0.2.10"):
    return Rule.from_dict({"name": name, "protocol": "tcp", "direction": "in", "dst_ports": [port],
                           "src_addresses": [src]})


def test_no_change():
    d = diff_rules([r("A", 445)], [r("A", 445)])
    assert not d.changed and d.commands() == [] and [x.name for x in d.unchanged] == ["A"]


def test_add_remove_update_named():
    d = diff_rules([r("A", 445), r("B", 135), r("C", 389, "192.0.2.11")], [r("A", 445), r("C", 389), r("X", 22)])
    assert d.summary() == {"missing": ["B"], "extra": ["X"], "changed": ["C"]}
    assert d.commands() == [{"op": "remove", "name": "X"}, {"op": "update", "name": "C", "fields": ["src_addresses"]},
                            {"op": "add", "name": "B"}]
    text = d.ansible_diff("dc01")
    assert "C in allow tcp from 192.0.2.10/32 to any port 389" in text["before"]
    assert "C in allow tcp from 192.0.2.11/32 to any port 389" in text["after"]
    assert "X in allow tcp" in text["before"] and "B in allow tcp" in text["after"]
    assert text["before_header"] == "rules before (dc01)"


def test_duplicate_present_rule_is_removed():
    d = diff_rules([r("A", 445)], [r("A", 445), r("A", 445)])
    assert [x.name for x in d.remove] == ["A"] and [x.name for x in d.unchanged] == ["A"]


def test_duplicate_wanted_rule_is_an_error():
    with pytest.raises(NapError, match="duplicate rule name 'A'"):
        diff_rules([r("A", 445), r("A", 135)], [])


def test_icmp_type_is_compared_and_a_missing_field_is_none():
    """icmp_type is in DEFAULT_COMPARE; to_dict() leaves it out when unset, and changed_fields takes that as None."""
    from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import DEFAULT_COMPARE, changed_fields
    any_type = Rule(name="PING", flow_id="PING", direction="in", protocol="icmp", src_addresses=("192.0.2.10",))
    echo = Rule(name="PING", flow_id="PING", direction="in", protocol="icmp", src_addresses=("192.0.2.10",),
                icmp_type="echo-request")
    assert "icmp_type" in DEFAULT_COMPARE and "icmp_type" not in any_type.to_dict()
    assert changed_fields(any_type, echo) == ["icmp_type"]
    assert changed_fields(any_type, any_type) == []
    rdiff = diff_rules([echo], [any_type])
    assert [(old.icmp_type, new.icmp_type) for old, new in rdiff.update] == [(None, "echo-request")]
    assert diff_rules([echo], [echo]).changed is False
