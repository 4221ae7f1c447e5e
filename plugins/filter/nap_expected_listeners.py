# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter nap_expected_listeners (a thin wrapper over module_utils/nap/listeners.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.configmgr.nap.plugins.module_utils.nap import listeners
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError


def nap_expected_listeners(data, host=None, settings=None, **overrides):
    try:
        return listeners.listeners_for(data, host=host, settings=settings, **overrides)
    except NapError as exc:
        raise AnsibleFilterError("configmgr.nap.nap_expected_listeners: %s" % to_native(exc))


class FilterModule(object):
    def filters(self):
        return {"nap_expected_listeners": nap_expected_listeners}
