# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings: the one parser of every nap_* setting's value (booleans, choices, lists, CIDRs, ranges)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, normalize_addresses

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_bool(value, what):
    """true/false, yes/no, on/off, 1/0 (as YAML and -e give them); NapError naming ``what`` otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise NapError("%s is %r; expected true or false" % (what, value))


def _list_value(value):
    """A list setting given as text (-e name=a,b or -e "name=['a', 'b']") becomes a list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item.strip().strip("'\"") for item in text.replace(",", " ").split() if item.strip().strip("'\"")]


def validate_setting(name, value, where):
    """Return the canonical value of a setting or raise NapError naming ``where``."""
    spec = catalogue.SETTINGS_BY_NAME[name]
    prefix = "%s: %s" % (where, name) if where else name
    if value is None and spec.default is None:
        return None
    if spec.kind == "choice":
        text = str(value).strip().lower()
        if text not in spec.choices:
            raise NapError("%s is %r; expected %s" % (prefix, value, spec.expected()))
        return text
    if spec.kind == "bool":
        return parse_bool(value, prefix)
    if spec.kind == "list_choice":
        value = _list_value(value)
        if not isinstance(value, (list, tuple)):
            raise NapError("%s is %r; expected %s" % (prefix, value, spec.expected()))
        out = []
        for item in value:
            text = str(item).strip().lower()
            if text not in spec.choices:
                raise NapError("%s has %r; expected %s" % (prefix, item, spec.expected()))
            if text not in out:
                out.append(text)
        return out
    if spec.kind == "cidrs":
        value = _list_value(value)
        if not isinstance(value, (list, tuple)):
            raise NapError("%s is %r; expected %s" % (prefix, value, spec.expected()))
        for item in value:
            if "%" in str(item):
                raise NapError("%s has %r, which has a scope id (%%...); expected %s without it"
                               % (prefix, item, spec.expected()))
            try:
                ipaddress.ip_network(str(item).strip(), strict=False)
            except ValueError:
                raise NapError("%s has %r, which is not an IPv4/IPv6 CIDR; expected %s"
                               % (prefix, item, spec.expected()))
        return list(normalize_addresses(value, collapse=False))
    if spec.kind == "range":
        match = catalogue._RANGE_RE.fullmatch(str(value))
        if not match:
            raise NapError("%s is %r; expected %s" % (prefix, value, spec.expected()))
        low, high = int(match.group(1)), int(match.group(2))
        if not (1024 <= low <= high <= 65535):
            raise NapError("%s is %r: ports must satisfy 1024 <= low <= high <= 65535 (e.g. \"49152-65535\")"
                           % (prefix, value))
        return "%d-%d" % (low, high)
    raise NapError("%s: unknown setting kind" % prefix)  # pragma: no cover


__all__ = ["parse_bool", "validate_setting"]
