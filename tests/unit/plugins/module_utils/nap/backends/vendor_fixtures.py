# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the vendor backend tests: inventories -> plans, without Ansible."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os

import yaml

from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
GOLDEN = os.path.join(HERE, "golden")
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", "..", ".."))
VENDOR_INVENTORY = os.path.join(FIXTURES, "vendor-inventory.yml")
EXAMPLE_INVENTORY = os.path.join(REPO, "examples", "inventory.yml")


def load_inventory(path):
    """(groups, hostvars, settings) of a YAML inventory: nap_* groups, host vars, all:vars."""
    with open(path) as handle:
        inv = yaml.safe_load(handle)
    groups, hostvars = {}, {}

    def walk(name, node):
        node = node or {}
        members = []
        for host, hvars in (node.get("hosts") or {}).items():
            hostvars.setdefault(host, {}).update(hvars or {})
            members.append(host)
        for child, cnode in (node.get("children") or {}).items():
            members += walk(child, cnode)
        groups[name] = sorted(set(groups.get(name, []) + members))
        return members

    walk("all", inv["all"])
    return groups, hostvars, dict(inv["all"].get("vars") or {})


def plan_of(path=VENDOR_INVENTORY, platform=None, device=None, **changes):
    groups, hostvars, settings = load_inventory(path)
    if platform:
        hostvars[device]["nap_perimeter_platform"] = platform
    settings.update(changes)
    return planner.plan(groups, hostvars, settings)


def vendor_plan():
    return plan_of()


def example_plan(platform):
    """The example inventory with its router rtr01 turned into ``platform``."""
    return plan_of(EXAMPLE_INVENTORY, platform, "rtr01")


def with_device(plan, device, **changes):
    plan = copy.deepcopy(plan)
    plan["perimeter"][device].update(changes)
    return plan
