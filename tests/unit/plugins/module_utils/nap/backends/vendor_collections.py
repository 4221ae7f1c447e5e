# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the optional vendor collections (cisco.asa, cisco.ios, ansible.netcommon, ansible.utils) are.

Looked up in $NAP_VENDOR_COLLECTIONS, then each entry of $ANSIBLE_COLLECTIONS_PATH, then
<repo>/.cache/collections (what ``make setup`` installs).  Tests that need them skip with the
reason when they are missing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import sys

from vendor_fixtures import REPO

NEEDED = ("cisco/asa", "cisco/ios", "ansible/netcommon", "ansible/utils")


def _candidates():
    out = []
    for var in ("NAP_VENDOR_COLLECTIONS", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        out += [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    out.append(os.path.join(REPO, ".cache", "collections"))
    return out


def vendor_path():
    """The first directory holding ansible_collections/{cisco/asa,cisco/ios,ansible/netcommon,ansible/utils}."""
    for base in _candidates():
        if all(os.path.isdir(os.path.join(base, "ansible_collections", c)) for c in NEEDED):
            return os.path.abspath(base)
    return None


MISSING = ("the vendor collections cisco.asa, cisco.ios, ansible.netcommon and ansible.utils are not installed "
           "(run `make setup`, or point NAP_VENDOR_COLLECTIONS at a directory holding ansible_collections/)")


def own_path():
    """The directory that holds ansible_collections/configmgr/nap (tests/conftest.py puts it on sys.path)."""
    for entry in sys.path:
        if os.path.isdir(os.path.join(entry, "ansible_collections", "configmgr", "nap")):
            return entry
    raise RuntimeError("configmgr.nap is not importable; tests/conftest.py should have set it up")


def ansible_playbook():
    here = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return here if os.path.exists(here) else shutil.which("ansible-playbook")
