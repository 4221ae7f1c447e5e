# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters: plan -> Cisco ASA / IOS resource-module configuration (thin wrappers over module_utils)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import cisco
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError


def _call(name, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except NapError as exc:
        raise AnsibleFilterError("configmgr.nap.%s: %s" % (name, to_native(exc)))


def _acl(acl_name):
    return acl_name or cisco.DEFAULT_ACL_NAME


def to_asa_ogs(data, device=None, acl_name=None, prefix=None):
    return _call("to_asa_ogs", cisco.asa_ogs_config, data, device, _acl(acl_name), prefix)


def to_asa_acls(data, device=None, acl_name=None, prefix=None):
    return _call("to_asa_acls", cisco.asa_acls_config, data, device, _acl(acl_name), prefix)


def to_asa_ogs_stale(gathered, wanted=None, acl_name=None, prefix=None):
    return _call("to_asa_ogs_stale", cisco.asa_stale_ogs, wanted or [], gathered, _acl(acl_name), prefix)


def to_asa_acl_block(data, running_config, block_acl, device=None, acl_name=None, prefix=None, state="present"):
    return _call("to_asa_acl_block", cisco.asa_block_commands, data, running_config, block_acl, device,
                 _acl(acl_name), prefix, state)


def to_asa_changes(data, device=None, state="present", binding="global", block_acl=None, acl_name=None,
                   access_group=None, block_config=None, gathered=None, prefix=None):
    return _call("to_asa_changes", cisco.asa_changes, data, device, state, binding, block_acl, _acl(acl_name),
                 access_group, block_config, gathered, prefix)


def to_ios_acls(data, device=None, acl_name=None):
    return _call("to_ios_acls", cisco.ios_acls_config, data, device, _acl(acl_name))


def to_ios_acl_interfaces(data, device=None, interfaces=None, acl_name=None, direction="in", current=None,
                          state="present"):
    return _call("to_ios_acl_interfaces", cisco.ios_acl_interfaces_config, data, device, interfaces,
                 _acl(acl_name), direction, current, state)


class FilterModule(object):
    def filters(self):
        return {
            "to_asa_ogs": to_asa_ogs,
            "to_asa_acls": to_asa_acls,
            "to_asa_ogs_stale": to_asa_ogs_stale,
            "to_asa_acl_block": to_asa_acl_block,
            "to_asa_changes": to_asa_changes,
            "to_ios_acls": to_ios_acls,
            "to_ios_acl_interfaces": to_ios_acl_interfaces,
        }
