# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Firewall rendering: the reviewable netsh-style line of each operation the module applies, and
``state: rendered``'s three scripts for hosts Ansible cannot manage (PowerShell 2.0 with the COM API,
New-NetFirewallRule for 2012 and later, netsh advfirewall).  The rule model, the host state and the apply
logic live in windows.py; this file only writes text.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import names
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.windows import (
    DEFAULT_GROUP, DEFAULT_PREFIX, DIR_IN, KEYWORD_SPELLING, PROFILES_ALL, PROTOCOL_NAMES, check_group, check_prefix,
    profiles_names, rule_to_fw,
)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError


def op_command(op):
    """One op as a reviewable netsh-style line (the module applies it through the COM API)."""
    if op["op"] == "remove":
        return 'delete rule name="%s"' % op["name"]
    return "add rule " + " ".join(_netsh_args(op["rule"], strict=False))


# ---------------------------------------------------------------------------
# Rendering (state: rendered): three scripts that build the rule set from scratch
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


def _header(comment, host, group, prefix, count, form):
    if host:
        names.check("host", host, "host")
    check_group(group)
    check_prefix(prefix)
    lines = [
        "%s configmgr.nap win_nap_firewall, state: rendered (%s)" % (comment, form),
        "%s host: %s; rule group: %s; name prefix: %s; %d rule(s)" % (
            comment, host or "-", group, prefix.strip(), count),
        "%s Builds the owned rule set from scratch. Run it as an administrator." % comment,
    ]
    return lines


def render_com(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None):
    """PowerShell 2.0 script over HNetCfg.FwPolicy2 (Windows Server 2008 / 2008 R2 and later)."""
    lines = _header("#", host, group, prefix, len(rules), "PowerShell 2.0 + HNetCfg.FwPolicy2, 2008 and later")
    lines += [
        "$ErrorActionPreference = 'Stop'",
        "$group = %s" % ps_quote(group),
        "$policy = New-Object -ComObject HNetCfg.FwPolicy2",
        "if ($policy.LocalPolicyModifyState -ne 0) {",
        "    Write-Warning ('LocalPolicyModifyState is ' + $policy.LocalPolicyModifyState + "
        "': Group Policy overrides local rules or inbound is blocked; these rules may not take effect')",
        "}",
        "# remove every rule of the group (by name: INetFwRules.Remove takes a name), then add the rule set",
        "$names = @()",
        "foreach ($rule in $policy.Rules) { if ($rule.Grouping -eq $group) { $names += $rule.Name } }",
        "foreach ($name in $names) {",
        "    $existing = $null",
        "    try { $existing = $policy.Rules.Item($name) } catch { $existing = $null }",
        "    while ($existing -ne $null -and $existing.Grouping -eq $group) {",
        "        $policy.Rules.Remove($name)",
        "        try { $existing = $policy.Rules.Item($name) } catch { $existing = $null }",
        "    }",
        "}",
        "function Add-NapRule($Name, $Description, $Direction, $Protocol, $LocalPorts, $RemotePorts, "
        "$LocalAddresses, $RemoteAddresses, $Profiles) {",
        "    $clash = $null",
        "    try { $clash = $policy.Rules.Item($Name) } catch { $clash = $null }",
        "    if ($clash -ne $null) {",
        "        Write-Warning ('a rule named ' + $Name + ' exists outside the group ' + $group + ': not added')",
        "        return",
        "    }",
        "    $rule = New-Object -ComObject HNetCfg.FWRule",
        "    $rule.Name = $Name",
        "    $rule.Description = $Description",
        "    $rule.Grouping = $group",
        "    $rule.Direction = $Direction",
        "    $rule.Protocol = $Protocol  # before the ports (INetFwRule::put_Protocol)",
        "    if ($LocalPorts -ne '*') { $rule.LocalPorts = $LocalPorts }",
        "    if ($RemotePorts -ne '*') { $rule.RemotePorts = $RemotePorts }",
        "    if ($LocalAddresses -ne '*') { $rule.LocalAddresses = $LocalAddresses }",
        "    if ($RemoteAddresses -ne '*') { $rule.RemoteAddresses = $RemoteAddresses }",
        "    $rule.Profiles = $Profiles",
        "    $rule.Action = 1",
        "    $rule.Enabled = $true",
        "    $policy.Rules.Add($rule)",
        "}",
    ]
    for rule in rules:
        fw = rule_to_fw(rule, group, prefix, mask)
        lines.append("Add-NapRule -Name %s -Description %s -Direction %d -Protocol %d -LocalPorts %s "
                     "-RemotePorts %s -LocalAddresses %s -RemoteAddresses %s -Profiles %d" % (
                         ps_quote(fw["Name"]), ps_quote(fw["Description"]), fw["Direction"], fw["Protocol"],
                         ps_quote(fw["LocalPorts"] or "*"), ps_quote(fw["RemotePorts"] or "*"),
                         ps_quote(fw["LocalAddresses"]), ps_quote(fw["RemoteAddresses"]), fw["Profiles"]))
    lines.append("Write-Output ('configmgr.nap: %d rule(s) in group ' + $group)" % len(rules))
    return "\n".join(lines) + "\n"


_PS_PROTOCOL = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMPv4", "gre": "47", "esp": "50", "ah": "51"}


def _ps_list(values):
    return ",".join(ps_quote(str(v)) for v in values)


def _ps_profile(mask):
    if mask & 7 == 7:
        return "Any"
    return ps_quote(", ".join(n.capitalize() for n in profiles_names(mask)))


def render_netsecurity(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None):
    """New-NetFirewallRule commands (NetSecurity module, Windows Server 2012 and later)."""
    lines = _header("#", host, group, prefix, len(rules), "NetSecurity New-NetFirewallRule, 2012 and later")
    lines += [
        "$ErrorActionPreference = 'Stop'",
        "$group = %s" % ps_quote(group),
        "Get-NetFirewallRule -Group $group -ErrorAction SilentlyContinue | Remove-NetFirewallRule",
    ]
    for rule in rules:
        fw = rule_to_fw(rule, group, prefix, mask)
        if rule.direction == "in":
            local_ports, remote_ports = rule.dst_ports, rule.src_ports
            local_addr, remote_addr = rule.dst_addresses, rule.src_addresses
        else:
            local_ports, remote_ports = rule.src_ports, rule.dst_ports
            local_addr, remote_addr = rule.src_addresses, rule.dst_addresses
        parts = ["New-NetFirewallRule", "-Name", ps_quote(fw["Name"]), "-DisplayName", ps_quote(fw["Name"]),
                 "-Description", ps_quote(fw["Description"]), "-Group", "$group",
                 "-Direction", "Inbound" if rule.direction == "in" else "Outbound", "-Action", "Allow",
                 "-Protocol", _PS_PROTOCOL[rule.protocol]]
        spelled = KEYWORD_SPELLING["ps"]
        if local_ports:
            parts += ["-LocalPort", _ps_list(spelled.get(p, p) if isinstance(p, str) else p for p in local_ports)]
        if remote_ports:
            parts += ["-RemotePort", _ps_list(remote_ports)]
        if local_addr:
            parts += ["-LocalAddress", _ps_list(local_addr)]
        if remote_addr:
            parts += ["-RemoteAddress", _ps_list(remote_addr)]
        parts += ["-Profile", _ps_profile(mask), "-Enabled", "True", "|", "Out-Null"]
        lines.append(" ".join(parts))
    lines.append("Write-Output ('configmgr.nap: %d rule(s) in group ' + $group)" % len(rules))
    return "\n".join(lines) + "\n"


_NETSH_PROTOCOL = {"tcp": "tcp", "udp": "udp", "icmp": "icmpv4", "gre": "47", "esp": "50", "ah": "51"}


def _netsh_args(fw, strict=True):
    proto = PROTOCOL_NAMES.get(fw["Protocol"], str(fw["Protocol"]))
    args = ["name=%s" % _cmd_quote(fw["Name"], "rule name", strict),
            "dir=%s" % ("in" if fw["Direction"] == DIR_IN else "out"),
            "action=allow",
            "protocol=%s" % _NETSH_PROTOCOL.get(proto, proto)]
    if fw.get("LocalPorts") and fw["LocalPorts"] != "*":
        args.append("localport=%s" % fw["LocalPorts"])
    if fw.get("RemotePorts") and fw["RemotePorts"] != "*":
        args.append("remoteport=%s" % fw["RemotePorts"])
    if fw.get("LocalAddresses") and fw["LocalAddresses"] != "*":
        args.append("localip=%s" % fw["LocalAddresses"])
    if fw.get("RemoteAddresses") and fw["RemoteAddresses"] != "*":
        args.append("remoteip=%s" % fw["RemoteAddresses"])
    mask = int(fw["Profiles"])
    args.append("profile=%s" % ("any" if mask & 7 == 7 else ",".join(profiles_names(mask))))
    args.append("enable=yes")
    if fw.get("Description"):
        args.append("description=%s" % _cmd_quote(fw["Description"], "description of rule %s" % fw["Name"], strict))
    return args


def render_netsh(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None):
    """netsh advfirewall firewall commands as a .cmd batch file (netsh cannot set a group)."""
    lines = ["@echo off"]
    lines += _header("rem", host, group, prefix, len(rules), "netsh advfirewall, 2008 and later")
    lines += [
        "rem netsh cannot set a rule group: ownership is the name prefix. Only the names below are deleted;",
        "rem rules of other names in the group stay (use the COM script to purge the whole group).",
    ]
    fws = [rule_to_fw(rule, group, prefix, mask) for rule in rules]
    for fw in fws:
        lines.append("netsh advfirewall firewall delete rule name=%s >nul 2>&1" % _cmd_quote(fw["Name"], "rule name"))
    for fw in fws:
        lines.append("netsh advfirewall firewall add rule " + " ".join(_netsh_args(fw)))
    return "\r\n".join(lines) + "\r\n"


def render_all(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None):
    return OrderedDict((
        ("com", render_com(rules, group, prefix, mask, host)),
        ("netsecurity", render_netsecurity(rules, group, prefix, mask, host)),
        ("netsh", render_netsh(rules, group, prefix, mask, host)),
    ))


# The line ending each rendered form is joined with: the PowerShell scripts use LF, the netsh .cmd file CRLF.
RENDERED_NEWLINES = OrderedDict((("com", "\n"), ("netsecurity", "\n"), ("netsh", "\r\n")))


def render_all_lines(rules, group=DEFAULT_GROUP, prefix=DEFAULT_PREFIX, mask=PROFILES_ALL, host=None):
    """``state: rendered``: {form: [lines]} for com, netsecurity and netsh.

    Each form is split on the line ending it was joined with (RENDERED_NEWLINES) and nothing else, so no line is
    ever cut inside; ``newline.join(lines) + newline`` gives back exactly the text of :func:`render_all`."""
    return OrderedDict((form, text.split(RENDERED_NEWLINES[form])[:-1])
                       for form, text in render_all(rules, group, prefix, mask, host).items())
