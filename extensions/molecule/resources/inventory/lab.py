#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory script of the Molecule scenarios: the inventory the scenario's lab wrote.

The lab (prefix NAP_LAB_PREFIX) writes build/lab/<prefix>/inventory.yml when the scenario's create step
runs; before that this script answers an empty inventory. Molecule checks its inventory links before
create, which is why the scenarios link this script rather than the generated file.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import sys

import yaml


def lab_inventory():
    root = os.path.dirname(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or os.getcwd())
    path = os.path.join(root, "build", "lab", os.environ.get("NAP_LAB_PREFIX", "nap"), "inventory.yml")
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def to_script_format(doc):
    """A YAML inventory (all: hosts/vars/children) in the JSON form of inventory scripts."""
    out = {"_meta": {"hostvars": {}}}

    def walk(name, node):
        node = node or {}
        group = out.setdefault(name, {"hosts": [], "vars": {}, "children": []})
        group["vars"].update(node.get("vars") or {})
        for host, hvars in (node.get("hosts") or {}).items():
            if host not in group["hosts"]:
                group["hosts"].append(host)
            out["_meta"]["hostvars"].setdefault(host, {}).update(hvars or {})
        for child, cnode in (node.get("children") or {}).items():
            if child not in group["children"]:
                group["children"].append(child)
            walk(child, cnode)

    for name, node in doc.items():
        walk(name, node)
    return out


def main():
    if "--host" in sys.argv:
        print("{}")
        return 0
    print(json.dumps(to_script_format(lab_inventory())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
