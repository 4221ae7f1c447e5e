# -*- coding: utf-8 -*-
"""Make ``ansible_collections.configmgr.nap`` importable when the checkout is not under such a path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _collection_root():
    parts = ROOT.split(os.sep)
    if parts[-3:-1] == ["ansible_collections", "configmgr"] and parts[-1] == "nap":
        return os.sep.join(parts[:-3])
    base = os.path.join(ROOT, "build", "pytest")
    link = os.path.join(base, "ansible_collections", "configmgr", "nap")
    if not os.path.islink(link) or os.path.realpath(link) != ROOT:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(ROOT, link)
    return base


sys.path.insert(0, _collection_root())
# Shared test helpers (tests/unit/golden.py, ...) import by their module name.
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
