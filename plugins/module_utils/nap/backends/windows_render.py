# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Firewall rendering: the reviewable netsh-style line of each operation the module applies, and
``state: rendered``'s three scripts for hosts Ansible cannot manage (PowerShell 2.0 with the COM API,
New-NetFirewallRule for 2012 and later, netsh advfirewall).  The rule model lives in windows.py, the host
state and the apply logic in windows_changes.py; this file only writes text.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import ipaddress
import os
import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import names
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.windows import (
    DEFAULT_GROUP, DEFAULT_PREFIX, DIR_IN, PROFILES_ALL, PROTOCOL_NAMES, check_group, check_prefix, has_prefix,
    parse_address_item, profiles_names, rule_to_fw, win_name,
)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError, port_in


def op_command(op):
    """One op as a reviewable netsh-style line (the module applies it through the COM API)."""
    if op["op"] == "remove":
        return 'delete rule name="%s"' % op["name"]
    return "add rule " + " ".join(_netsh_args(op["rule"], strict=False))


# ---------------------------------------------------------------------------
# Rendering (state: rendered): three scripts that converge the owned rule set (add and update, then remove)
# ---------------------------------------------------------------------------
_PS_QUOTE_RE = re.compile(u"(['\u2018\u2019\u201a\u201b])")


def ps_quote(text):
    """A PowerShell single-quoted literal (every kind of single quote doubled)."""
    return "'" + _PS_QUOTE_RE.sub(r"\1\1", text or "") + "'"


def _cmd_quote(text, what, strict=True):
    if '"' in text or names.bad_character(text) is not None:
        if strict:
            raise NapError("%s %r: netsh cannot quote a double quote or a line break" % (what, text))
        text = text.replace('"', "'").replace("\r", " ").replace("\n", " ")
    return '"' + text.replace("%", "%%") + '"'


_HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_DIR = os.path.join(_HERE, "powershell")
DEFAULT_MANAGEMENT_PORT = 5985


def _template(name):
    """The lines of a .ps1 template beside this file (ASCII only, checked)."""
    with io.open(os.path.join(TEMPLATE_DIR, name), encoding="ascii") as handle:
        return handle.read().splitlines()


def _printable_ascii(char):
    return 0x20 <= ord(char) <= 0x7E


def _utf16_units(char):
    code = ord(char)
    if code < 0x10000:
        return [code]
    code -= 0x10000
    return [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]


def ps_text(text):
    """A PowerShell string literal in ASCII only.

    Windows PowerShell 2.0 and 5.1 read a .ps1 without a byte-order mark in the ANSI code page, where the
    UTF-8 bytes of some characters become quote characters (about_Character_Encoding,
    https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/about/about_character_encoding).
    Printable ASCII text is single-quoted (``'`` doubled); other text is double-quoted with `` ` ``, ``$`` and
    ``"`` escaped by a backtick and every other character written as ``$([char]0xNNNN)`` (UTF-16 units)
    (about_Quoting_Rules,
    https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/about/about_quoting_rules).
    """
    text = text or ""
    if all(_printable_ascii(c) for c in text):
        return "'" + text.replace("'", "''") + "'"
    out = []
    for char in text:
        if _printable_ascii(char):
            out.append("`" + char if char in '`$"' else char)
        else:
            out.extend("$([char]0x%04X)" % unit for unit in _utf16_units(char))
    return '"' + "".join(out) + '"'


def ascii_comment(text):
    """Text for a comment or rem line: characters outside printable ASCII shown as <U+NNNN>."""
    return "".join(c if _printable_ascii(c) else "<U+%04X>" % ord(c) for c in text or "")


def _header(comment, host, group, prefix, count, form, usage):
    if host:
        names.check("host", host, "host")
    check_group(group)
    check_prefix(prefix)
    return [
        "%s configmgr.nap win_nap_firewall, state: rendered (%s)" % (comment, form),
        "%s host: %s; rule group: %s; name prefix: %s; %d rule(s)" % (
            comment, ascii_comment(host or "-"), ascii_comment(group), ascii_comment(prefix.strip()), count),
        "%s Usage: %s" % (comment, usage),
    ]


def _source_networks(sources):
    out = []
    for item in sources or ():
        try:
            out.extend(parse_address_item(str(item)))
        except ValueError:
            raise NapError("management_sources: %r is not an IPv4/IPv6 address, CIDR or range" % (item,))
    return out


def _rule_networks(rule):
    if not rule.src_addresses:
        return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    return [ipaddress.ip_network(a, strict=False) for a in rule.src_addresses]


def _uncovered(net, nets):
    remaining = [net]
    for other in nets:
        left = []
        for have in remaining:
            if have.version != other.version or not have.overlaps(other):
                left.append(have)
            elif not have.subnet_of(other):
                left.extend(have.address_exclude(other))
        remaining = left
    return remaining


def guard_rules(rules, prefix, management_sources=None, management_port=None):
    """(names, problem): the rules of the plan (Windows names) that admit every management source on TCP
    ``management_port``, which the rendered scripts require in place before they remove anything, or
    ([], why not) when the plan has no such rule.  Without sources, any rule admitting the port counts."""
    port = int(management_port or DEFAULT_MANAGEMENT_PORT)
    candidates = [r for r in rules if r.direction == "in" and r.protocol == "tcp"
                  and (not r.dst_ports or port_in(port, r.dst_ports))]
    nets = _source_networks(management_sources)
    names_out, missing = [], []
    if not nets:
        names_out = [win_name(candidates[0].name, prefix)] if candidates else []
        if not candidates:
            missing.append("any address")
    for net in nets:
        whole = [r for r in candidates if not _uncovered(net, _rule_networks(r))]
        if whole:
            chosen = whole[:1]
        else:
            chosen = [r for r in candidates if any(net.overlaps(n) for n in _rule_networks(r)
                                                   if n.version == net.version)]
            if _uncovered(net, [n for r in chosen for n in _rule_networks(r)]):
                missing.append(str(net))
                continue
        for rule in chosen:
            if win_name(rule.name, prefix) not in names_out:
                names_out.append(win_name(rule.name, prefix))
    if missing:
        return [], ("no rule of this script admits TCP %d from %s (the management port and sources it was rendered "
                    "for), so it removes nothing" % (port, ", ".join(missing)))
    return names_out, ""


def _ps_data(rules, group, prefix, mask, management_sources, management_port):
    guard, problem = guard_rules(rules, prefix, management_sources, management_port)
    sources = [str(n) for n in _source_networks(management_sources)] or ["any"]
    lines = [
        "# ---- data: the owned rule set and the management rule the guard requires",
        "$group = %s" % ps_text(group),
        "$namePrefix = %s" % ps_text(prefix),
        "$managementPort = %d" % int(management_port or DEFAULT_MANAGEMENT_PORT),
        "$managementSources = @(%s)" % ", ".join(ps_text(s) for s in sources),
        "$guardRules = @(%s)" % ", ".join(ps_text(n) for n in guard),
        "$guardProblem = %s" % ps_text(problem),
    ]
    for rule in rules:
        fw = rule_to_fw(rule, group, prefix, mask)
        icmp = " -IcmpTypesAndCodes %s" % ps_text(fw["IcmpTypesAndCodes"]) if fw.get("IcmpTypesAndCodes") else ""
        lines.append("Add-NapRule -Name %s -Description %s -Direction %d -Protocol %d -LocalPorts %s "
                     "-RemotePorts %s -LocalAddresses %s -RemoteAddresses %s -Profiles %d%s" % (
                         ps_text(fw["Name"]), ps_text(fw["Description"]), fw["Direction"], fw["Protocol"],
                         ps_text(fw["LocalPorts"] or "*"), ps_text(fw["RemotePorts"] or "*"),
                         ps_text(fw["LocalAddresses"]), ps_text(fw["RemoteAddresses"]), fw["Profiles"], icmp))
    lines.append("# ---- steps")
    return lines


def _script_name(host, suffix):
    return "%s-nap-%s" % (re.sub(r"[^A-Za-z0-9._-]", "_", host or "host"), suffix)


def _finish(lines, newline):
    text = newline.join(lines) + newline
    bad = [c for c in text if ord(c) > 0x7E or (ord(c) < 0x20 and c not in "\r\n")]
    if bad:   # the renderer escapes or refuses every such character: this is a bug, not bad input
        raise NapError("rendered script holds the character U+%04X; rendered scripts are ASCII only" % ord(bad[0]))
    return text


def _ps_script(head, steps, rules, group, prefix, mask, management_sources, management_port):
    """A rendered PowerShell script: its own requirement lines (``head``), the part both scripts share, the rule
    data, then its steps template."""
    lines = head + _template("render_common.ps1")
    lines += _ps_data(rules, group, prefix, mask, management_sources, management_port)
    lines += _template(steps)
    return _finish(lines, "\n")


def render_com(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None,
               management_sources=None, management_port=None):
    """PowerShell 2.0 script over HNetCfg.FwPolicy2 (Windows Server 2008 / 2008 R2 and later).

    It adds and updates first, then checks that the management rule is in place, then removes; it refuses
    to run on names that rules outside the group carry, and adopts rules with an empty group and exactly an
    owned name (netsh cannot set a group)."""
    usage = ("powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\\%s [-SkipLockoutGuard] "
             "(as an administrator)" % _script_name(host, "com.ps1"))
    lines = ["#Requires -Version 2.0"]
    lines += _header("#", host, group, prefix, len(rules), "PowerShell 2.0 + HNetCfg.FwPolicy2, 2008 and later",
                     usage)
    lines += [
        "param ([switch]$SkipLockoutGuard)",
        "if ($null -eq $PSVersionTable -or $PSVersionTable.PSVersion.Major -lt 2) {",
        "    Write-Output 'configmgr.nap: this script needs PowerShell 2.0 or later (Windows Server 2008 SP2 ships 1.0: "
        "install Windows Management Framework 2.0, or use the netsh file); nothing was changed'",
        "    exit 2",
        "}",
    ]
    return _ps_script(lines, "render_com.ps1", rules, group, prefix, mask, management_sources, management_port)


def render_netsecurity(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None,
                       management_sources=None, management_port=None):
    """New-NetFirewallRule / Set-NetFirewallRule / Remove-NetFirewallRule (NetSecurity, Windows Server 2012 and
    later), in the same order as the COM script: add and update, the lockout guard, then remove."""
    usage = ("powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\\%s [-SkipLockoutGuard] "
             "(as an administrator)" % _script_name(host, "netsecurity.ps1"))
    lines = ["#Requires -Version 3.0"]
    lines += _header("#", host, group, prefix, len(rules), "NetSecurity New-NetFirewallRule, 2012 and later", usage)
    lines += [
        "param ([switch]$SkipLockoutGuard)",
        "if ($null -eq (Get-Module -ListAvailable -Name NetSecurity)) {",
        "    Write-Output 'configmgr.nap: this script needs the NetSecurity module (Windows Server 2012 and later); "
        "on Windows Server 2008 and 2008 R2 run the COM script (rendered.com); nothing was changed'",
        "    exit 2",
        "}",
    ]
    return _ps_script(lines, "render_netsecurity.ps1", rules, group, prefix, mask, management_sources,
                      management_port)


_NETSH_PROTOCOL = {"tcp": "tcp", "udp": "udp", "icmp": "icmpv4", "gre": "47", "esp": "50", "ah": "51"}


def _netsh_args(fw, strict=True, update=False):
    """netsh add rule arguments (``update``: the ``new`` part of ``set rule``, every value spelled out; ``name=``
    there sets the name's case).  ``netsh advfirewall firewall set rule /?``: "If multiple rules match the
    criteria, all matching rules will be updated"; the command fails when no rule matches (Netsh AdvFirewall
    Firewall Commands, https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/
    windows-server-2008-R2-and-2008/dd734783(v=ws.10))."""
    proto = PROTOCOL_NAMES.get(fw["Protocol"], str(fw["Protocol"]))
    netsh_proto = _NETSH_PROTOCOL.get(proto, proto)
    if int(fw["Protocol"]) == 58:
        netsh_proto = "icmpv6"
    if fw.get("IcmpTypesAndCodes"):
        # netsh advfirewall firewall add rule /?: protocol=icmpv4|icmpv6[:type,code] ("any" for every code)
        netsh_proto += ":%s,any" % str(fw["IcmpTypesAndCodes"]).split(":", 1)[0]
    args = ["name=%s" % _cmd_quote(fw["Name"], "rule name", strict)]
    args += ["dir=%s" % ("in" if fw["Direction"] == DIR_IN else "out"),
             "action=allow",
             "protocol=%s" % netsh_proto]
    any_value = "any" if update else None
    ported = proto in ("tcp", "udp")
    for key, field in (("localport", "LocalPorts"), ("remoteport", "RemotePorts"),
                       ("localip", "LocalAddresses"), ("remoteip", "RemoteAddresses")):
        value = fw.get(field)
        if value and value != "*":
            args.append("%s=%s" % (key, value))
        elif any_value and (ported or key.endswith("ip")):
            args.append("%s=%s" % (key, any_value))
    mask = int(fw["Profiles"])
    args.append("profile=%s" % ("any" if mask & 7 == 7 else ",".join(profiles_names(mask))))
    args.append("enable=yes")
    if fw.get("Description") or update:
        what = "description of rule %s" % fw["Name"]
        args.append("description=%s" % _cmd_quote(fw.get("Description") or "", what, strict))
    return args


# render_netsh's refusal of a character outside printable ASCII starts with this (render_all turns it into a
# .cmd file that says so, keeping the PowerShell forms).
NETSH_ASCII_REFUSAL = "netsh: "


def _netsh_ascii(fw):
    for field in ("Name", "Description"):
        bad = [c for c in fw.get(field) or "" if not _printable_ascii(c)]
        if bad:
            raise NapError("%srule %r: the %s holds %s, which the netsh .cmd file cannot carry (cmd reads a batch "
                           "file in the OEM code page); use the COM or NetSecurity script, or ASCII text" % (
                               NETSH_ASCII_REFUSAL, str(fw["Name"]), field.lower(), "U+%04X" % ord(bad[0])))


def render_netsh(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None,
                 management_sources=None, management_port=None):
    """netsh advfirewall firewall commands as a .cmd batch file.

    netsh cannot set a group: ownership is the name prefix.  Each rule is updated in place when a rule of its
    name exists (``set rule name=... new ...``) and added otherwise, so the file deletes nothing and is safe to
    run twice; the next managed run or the COM script adopts the rules into the group.  Names and
    descriptions must be ASCII (refused naming the rule).  The management arguments are accepted for a
    uniform signature; the file removes nothing, so it needs no lockout guard."""
    del management_sources, management_port
    usage = "from an elevated command prompt: %s" % _script_name(host, "netsh.cmd")
    lines = ["@echo off", "setlocal"]
    lines += _header("rem", host, group, prefix, len(rules), "netsh advfirewall, 2008 and later", usage)
    lines += [
        "rem netsh cannot set a rule group: every rule carries the name prefix. A rule of an owned name is updated",
        "rem in place, any other is added; nothing is deleted (the COM script or a managed run adopts the rules",
        "rem into the group and removes the ones no longer planned).",
        "net session >nul 2>&1",
        "if errorlevel 1 (echo configmgr.nap: run this file as an administrator, from an elevated command prompt; "
        "nothing was changed& exit /b 3)",
        "set NAP_FAILED=0",
    ]
    for rule in rules:
        fw = rule_to_fw(rule, group, prefix, mask)
        _netsh_ascii(fw)
        if not has_prefix(fw["Name"], prefix):
            raise NapError("rule %r: netsh rules are owned by their name prefix %r" % (fw["Name"], prefix))
        name = _cmd_quote(fw["Name"], "rule name")
        lines.append("netsh advfirewall firewall show rule name=%s >nul 2>&1" % name)
        lines.append("if errorlevel 1 (netsh advfirewall firewall add rule %s) else (netsh advfirewall firewall set "
                     "rule name=%s new %s)" % (" ".join(_netsh_args(fw)), name, " ".join(_netsh_args(fw, update=True))))
        lines.append("if errorlevel 1 set /a NAP_FAILED+=1")
    lines += [
        "if not \"%NAP_FAILED%\"==\"0\" (echo configmgr.nap: %NAP_FAILED% rule command[s] failed; run the file again "
        "after fixing the cause& exit /b 1)",
        "echo configmgr.nap: %d rule(s) added or updated, nothing deleted" % len(rules),
        "exit /b 0",
    ]
    return _finish(lines, "\r\n")


def render_all(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None,
               management_sources=None, management_port=None):
    """{form: script text}; ``management_sources`` (CIDRs) and ``management_port`` (the plan's per-host
    ``management_port``) name the rule the COM and NetSecurity scripts require in place before any removal."""
    extra = dict(management_sources=management_sources, management_port=management_port)
    try:
        netsh = render_netsh(rules, group, prefix, mask, host, **extra)
    except NapError as exc:
        if not str(exc).startswith(NETSH_ASCII_REFUSAL):
            raise
        netsh = netsh_refusal(str(exc)[len(NETSH_ASCII_REFUSAL):])
    return OrderedDict((
        ("com", render_com(rules, group, prefix, mask, host, **extra)),
        ("netsecurity", render_netsecurity(rules, group, prefix, mask, host, **extra)),
        ("netsh", netsh),
    ))


def netsh_refusal(message):
    """The .cmd file for a rule set netsh cannot carry: it names the rule and changes nothing, so that the two
    PowerShell forms of the same render stay usable (cmd metacharacters of the message replaced)."""
    text = re.sub(r"[<>|&^%()\"]", "_", ascii_comment(message))
    return _finish(["@echo off", "rem configmgr.nap win_nap_firewall, state: rendered (netsh advfirewall): REFUSED",
                    "rem " + text, "echo configmgr.nap: netsh file not rendered: " + text, "exit /b 1"], "\r\n")


# The line ending each rendered form is joined with: the PowerShell scripts use LF, the netsh .cmd file CRLF.
RENDERED_NEWLINES = OrderedDict((("com", "\n"), ("netsecurity", "\n"), ("netsh", "\r\n")))


def render_all_lines(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None,
                     management_sources=None, management_port=None):
    """``state: rendered``: {form: [lines]} for com, netsecurity and netsh.

    Each form is split on the line ending it was joined with (RENDERED_NEWLINES) and nothing else, so no line is
    ever cut inside; ``newline.join(lines) + newline`` gives back exactly the text of :func:`render_all`."""
    texts = render_all(rules, group, prefix, mask, host, management_sources, management_port)
    return OrderedDict((form, text.split(RENDERED_NEWLINES[form])[:-1]) for form, text in texts.items())
