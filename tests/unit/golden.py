# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one golden-file helper of the tests.

``assert_golden(text, ref)`` compares rendered text with the reference file byte for byte (line ends
included). A mismatch writes ``<ref without .ref>.actual`` beside it and fails, naming both files;
``NAP_UPDATE_GOLDEN=1`` accepts the new output (review the diff of the references before committing).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os

import pytest

UPDATE_VARIABLE = "NAP_UPDATE_GOLDEN"


def assert_golden(text, ref, what=None):
    """Fail unless ``text`` equals the content of the reference file ``ref``."""
    actual = (ref[:-4] if ref.endswith(".ref") else ref) + ".actual"
    if os.environ.get(UPDATE_VARIABLE):
        if not os.path.isdir(os.path.dirname(ref)):
            os.makedirs(os.path.dirname(ref))
        with io.open(ref, "w", newline="", encoding="utf-8") as handle:
            handle.write(text)
    with io.open(ref, newline="", encoding="utf-8") as handle:
        expected = handle.read()
    if text != expected:
        with io.open(actual, "w", newline="", encoding="utf-8") as handle:
            handle.write(text)
        pytest.fail("%s differs from %s (written to %s; %s=1 accepts it)"
                    % (what or os.path.basename(ref), ref, actual, UPDATE_VARIABLE))
    if os.path.exists(actual):
        os.unlink(actual)
