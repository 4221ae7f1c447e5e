# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings: the one parser of every nap_* setting's value (booleans, choices, lists, CIDRs, ranges)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, normalize_addresses, parse_port
from ansible_collections.configmgr.nap.plugins.module_utils.nap.names import ascii_digits

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
            text = spec.normalize(item) if spec.normalize else str(item).strip().lower()
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


def parse_windows_version(value, where):
    """A host's nap_windows_version as its catalogue key (catalogue.WINDOWS_VERSIONS); NapError naming ``where``."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, tuple, dict)):
        key = None
    else:
        key = catalogue.windows_version_key(value)
    if key not in catalogue.WINDOWS_VERSIONS:
        raise NapError("%s is %r; expected one of %s (as written: 2003, \"2008 R2\", \"Windows Server 2012 R2\", "
                       "XP ...)" % (where, value, ", ".join(catalogue.WINDOWS_VERSIONS)))
    return key


_PORT_ITEM = re.compile(r"(tcp|udp)\s*/\s*([0-9]+(?:\s*-\s*[0-9]+)?)")


def parse_protected_services(value, where):
    """nap_ipsec_protected_services: [(name or None, protocol, ports)], in the order given, duplicates dropped.

    An item is a catalogue service name (catalogue.PROTECTED_SERVICES), a TCP port (8080), or a protocol and port or
    range ("tcp/8080", "udp/514", "tcp/5000-5100").  Named services keep their name (the rule's via), ports have none.
    """
    value = _list_value(value)
    if not isinstance(value, (list, tuple)):
        raise NapError("%s is %r; expected a list of service names (%s) or ports such as 8080 or \"udp/514\""
                       % (where, value, ", ".join(catalogue.PROTECTED_SERVICES)))
    out = []
    for item in value:
        text = "" if isinstance(item, bool) else str(item).strip().lower()
        if text in catalogue.PROTECTED_SERVICES:
            entry = (text, None, None)
        else:
            match = _PORT_ITEM.fullmatch(text)
            protocol, port = (match.group(1), match.group(2)) if match else ("tcp", text)
            try:
                spec = parse_port(int(port) if ascii_digits(port) else port.replace(" ", ""), where)
            except (NapError, ValueError):
                raise NapError("%s has %r; expected a service name (%s), a TCP port 1-65535, or \"tcp/N\", \"udp/N\", "
                               "\"tcp/LOW-HIGH\"" % (where, item, ", ".join(catalogue.PROTECTED_SERVICES)))
            entry = (None, protocol, spec)
        if entry not in out:
            out.append(entry)
    return out


__all__ = ["parse_bool", "validate_setting", "parse_windows_version", "parse_protected_services"]
