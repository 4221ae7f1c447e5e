# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the steps of a ``state: rendered`` script against the fake Windows host (fake_windows.py).

SYNTHETIC, like the fake: this is a Python model of what the rendered scripts do, not PowerShell or cmd.
It reads the RENDERED TEXT - the data block of the PowerShell scripts (``$group``, ``$guardRules``, the
``Add-NapRule`` lines) and every line of the netsh .cmd file - and carries out the steps of the script's
template (plugins/module_utils/nap/backends/powershell/render_*.ps1) on the fake's rule store, step for
step: read, collision refusal, add and update, the lockout guard, remove.  It refuses a script whose step
part is not exactly the template it models (so a changed template fails here until this model follows), and
a netsh line it does not know.

Each run returns ``RunResult(exit_code, output, steps)``; ``steps`` lists ``(kind, name)`` in the order the
script writes: ``add``, ``update``, ``guard`` (passed), ``guard-stop``, ``remove``.

Modelled Windows behaviour (see docs/windows.md, assumptions): a rule obtained from the collection is live
(setting a property changes the stored rule); a rule created by New-NetFirewallRule or ``netsh add rule``
reads back through the COM API as one built with HNetCfg.FWRule from the same values; Get-NetFirewallRule
-Group and ``netsh ... name=`` match names and groups without regard to case; ``netsh set rule name=X new``
changes every rule named X in any group and leaves program/service as they are.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

import fake_windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_render

RunResult = collections.namedtuple("RunResult", "exit_code output steps")
PROPS = ("Name", "Grouping", "Description", "Direction", "Protocol", "LocalPorts", "RemotePorts", "LocalAddresses",
         "RemoteAddresses", "Profiles", "Action", "Enabled", "ApplicationName", "ServiceName", "EdgeTraversal",
         "InterfaceTypes", "IcmpTypesAndCodes")


class Stop(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code


# ---------------------------------------------------------------------------
# PowerShell literals as the renderer writes them
# ---------------------------------------------------------------------------
_CHAR_RE = re.compile(r"\$\(\[char\]0x([0-9A-Fa-f]{4})\)")


def ps_value(text):
    """(value, rest) of the literal or integer at the start of ``text``."""
    if text.startswith("'"):
        out, i = [], 1
        while True:
            j = text.index("'", i)
            out.append(text[i:j])
            if text[j + 1:j + 2] == "'":
                out.append("'")
                i = j + 2
                continue
            return "".join(out), text[j + 1:]
    if text.startswith('"'):
        units, i = [], 1
        while True:
            char = text[i]
            if char == '"':
                data = b"".join(u.to_bytes(2, "little") for u in units)
                return data.decode("utf-16-le"), text[i + 1:]
            if char == "`":
                units.append(ord(text[i + 1]))
                i += 2
                continue
            if char == "$":
                match = _CHAR_RE.match(text, i)
                if not match:
                    raise AssertionError("an expansion other than $([char]0xNNNN) in %r" % text)
                units.append(int(match.group(1), 16))
                i = match.end()
                continue
            if not 0x20 <= ord(char) <= 0x7E:
                raise AssertionError("a character outside printable ASCII in %r" % text)
            units.append(ord(char))
            i += 1
    match = re.match(r"-?\d+", text)
    return int(match.group(0)), text[match.end():]


def ps_list(text):
    assert text.startswith("@(") and text.endswith(")"), text
    body, out = text[2:-1], []
    while body:
        value, body = ps_value(body)
        out.append(value)
        body = body[2:] if body.startswith(", ") else body
    return out


def ps_arguments(text):
    out = collections.OrderedDict()
    while text:
        match = re.match(r" ?-(\w+) ", text)
        assert match, text
        value, text = ps_value(text[match.end():])
        out[match.group(1)] = value
    return out


Data = collections.namedtuple("Data", "form group prefix port sources guard_rules guard_problem wanted")


def parse_powershell(text):
    """The data block and form of a rendered PowerShell script; asserts its steps are the modelled template."""
    lines = text.split("\n")
    assert lines[-1] == "", "the script ends with a line ending"
    form = {"#Requires -Version 2.0": "com", "#Requires -Version 3.0": "netsecurity"}[lines[0]]
    start = lines.index("# ---- data: the owned rule set and the management rule the guard requires")
    end = lines.index("# ---- steps")
    assert lines[end + 1:-1] == windows_render._template("render_%s.ps1" % form), "steps differ from the template"
    common = windows_render._template("render_common.ps1")
    assert lines[start - len(common):start] == common, "the shared part differs from the template"
    values, wanted = {}, []
    for line in lines[start + 1:end]:
        if line.startswith("Add-NapRule "):
            wanted.append(ps_arguments(line[len("Add-NapRule"):]))
            continue
        name, _eq, value = line.partition(" = ")
        values[name] = ps_list(value) if value.startswith("@(") else ps_value(value)[0]
    return Data(form, values["$group"], values["$namePrefix"], values["$managementPort"], values["$managementSources"],
                values["$guardRules"], values["$guardProblem"], wanted)


# ---------------------------------------------------------------------------
# The steps of render_common.ps1 + render_com.ps1 / render_netsecurity.ps1
# ---------------------------------------------------------------------------
def _s(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def fresh_rule(spec, group):
    """New-NapComRule: a rule object with the wanted values, not in the store."""
    rule = fake_windows.FakeRule()
    for key in ("Name", "Description"):
        setattr(rule, key, spec[key])
    rule.Grouping = group
    rule.Direction = spec["Direction"]
    rule.Protocol = spec["Protocol"]
    if spec.get("IcmpTypesAndCodes"):
        rule.IcmpTypesAndCodes = spec["IcmpTypesAndCodes"]
    for key in ("LocalPorts", "RemotePorts", "LocalAddresses", "RemoteAddresses"):
        if spec[key] != "*":
            setattr(rule, key, spec[key])
    rule.Profiles = spec["Profiles"]
    rule.Action = 1
    rule.Enabled = True
    return rule


def differences(have, want):
    out = []
    for prop in PROPS:
        a, b = getattr(have, prop), getattr(want, prop)
        if prop in ("Name", "Description"):
            differ = _s(a) != _s(b)
        elif prop == "Profiles":
            differ = (int(a) & 7) != (int(b) & 7)
        else:
            differ = _s(a).lower() != _s(b).lower()
        if differ:
            out.append(prop)
    return out


def _item(fake, name):
    try:
        return fake.item(name)
    except fake_windows.ComError:
        return None


def _read(fake, data):
    names = dict((spec["Name"].lower(), spec["Name"]) for spec in data.wanted)
    owned, order, outside = {}, [], []
    for rule in list(fake.store):
        name, grouping = rule.Name, rule.Grouping or ""
        adopt = grouping == "" and names.get(name.lower()) == name
        if grouping.lower() == data.group.lower() or adopt:
            if name.lower() not in owned:
                owned[name.lower()] = []
                order.append(name)
            owned[name.lower()].append(rule)
        elif name.lower() in names or name.lower().startswith(data.prefix.lower()):
            outside.append(rule)
    collisions = ["'%s' (group '%s')" % (r.Name, r.Grouping) for r in outside
                  if r.Name.lower() in names or r.Name.lower() in owned]
    return names, owned, order, collisions


def _guard(fake, data):
    if data.guard_problem:
        return data.guard_problem
    for name in data.guard_rules:
        spec = [s for s in data.wanted if s["Name"].lower() == name.lower()]
        have = _item(fake, name)
        if have is None or not spec:
            return "the rule '%s' that admits TCP %s from %s is not on the host" % (
                name, data.port, ", ".join(data.sources))
        diff = differences(have, fresh_rule(spec[-1], data.group))
        if diff:
            return "the rule '%s' that admits TCP %s from %s is not in place (differs in %s)" % (
                name, data.port, ", ".join(data.sources), ", ".join(diff))
    return ""


def _add(fake, spec, group):
    if spec["Name"] in fake.fail_add:
        raise fake_windows.ComError(fake.fail_add[spec["Name"]])
    fake.store.append(fresh_rule(spec, group))


def _update_com(have, want, diff):
    if "Protocol" in diff and int(have.Protocol) in (6, 17):
        have.LocalPorts = "*"
        have.RemotePorts = "*"
    for prop in PROPS:
        if prop in diff:
            setattr(have, prop, getattr(want, prop))


def _set_netsecurity(rule, want, diff):
    """Set-NetFirewallRule -Name <id> -NewDisplayName ... -Program Any -Service Any -InterfaceType Any
    -EdgeTraversalPolicy Block @parameters (every wanted value; the group is not a parameter of Set)."""
    if "Protocol" in diff and int(rule.Protocol) in (6, 17):
        rule.LocalPorts = "*"
        rule.RemotePorts = "*"
    for prop in PROPS:
        if prop != "Grouping":
            setattr(rule, prop, getattr(want, prop))


def run_powershell(fake, text, skip_guard=False):
    data = parse_powershell(text)
    output, steps = [], []
    try:
        names, owned, order, collisions = _read(fake, data)
        if collisions:
            raise Stop(5, "configmgr.nap: STOPPED: rule(s) outside the group %s carry owned name(s): %s"
                       % (data.group, ", ".join(collisions)))
        removals = []
        try:
            ids = {}
            if data.form == "netsecurity":
                for name in order:
                    for have in owned[name.lower()]:
                        if (have.Grouping or "") == "":
                            have.Grouping = data.group
                for rule in fake.store:
                    if (rule.Grouping or "").lower() == data.group.lower():
                        ids.setdefault(rule.Name.lower(), []).append(rule)
            for spec in data.wanted:
                copies = owned.get(spec["Name"].lower())
                if not copies:
                    _add(fake, spec, data.group)
                    steps.append(("add", spec["Name"]))
                    continue
                want = fresh_rule(spec, data.group)
                if data.form == "com":
                    for have in copies:
                        diff = differences(have, want)
                        if diff:
                            _update_com(have, want, diff)
                            steps.append(("update", spec["Name"]))
                    continue
                diff = []
                for have in copies:
                    diff += [p for p in differences(have, want) if p not in diff]
                if diff:
                    for rule in ids.get(spec["Name"].lower(), []):
                        _set_netsecurity(rule, want, diff)
                        steps.append(("update", spec["Name"]))
            for name in order:
                keep = 1 if name.lower() in names else 0
                if data.form == "com":
                    removals += [name] * (len(owned[name.lower()]) - keep)
                else:
                    removals += ids.get(name.lower(), [])[keep:]
        except fake_windows.ComError as exc:
            raise Stop(1, "configmgr.nap: STOPPED after %d added and %d updated: %s; nothing was removed" % (
                len([s for s in steps if s[0] == "add"]), len([s for s in steps if s[0] == "update"]), exc))
        if removals and not skip_guard:
            problem = _guard(fake, data)
            if problem:
                steps.append(("guard-stop", problem))
                raise Stop(4, "configmgr.nap: STOPPED before removing %d rule(s): %s. Nothing was removed"
                           % (len(removals), problem))
            steps.append(("guard", ""))
        for item in removals:
            if data.form == "com":
                have = _item(fake, item)
                if have is not None and (have.Grouping or "").lower() == data.group.lower():
                    fake.remove(item)
                    steps.append(("remove", item))
            else:
                fake.store.remove(item)
                steps.append(("remove", item.Name))
    except Stop as exc:
        output.append(str(exc))
        return RunResult(exc.code, output, steps)
    output.append("configmgr.nap: done")
    return RunResult(0, output, steps)


# ---------------------------------------------------------------------------
# netsh .cmd
# ---------------------------------------------------------------------------
def cmd_tokens(text):
    tokens, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == " " and not quoted:
            if current:
                tokens.append(current)
            current = ""
            continue
        current += char
    assert not quoted, text
    return tokens + ([current] if current else [])


def _cmd_value(text):
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace("%%", "%")
    return text


_NETSH_PROTOCOLS = {"tcp": 6, "udp": 17, "icmpv4": 1, "icmpv6": 58}
_NETSH_FIELDS = (("localport", "LocalPorts"), ("remoteport", "RemotePorts"), ("localip", "LocalAddresses"),
                 ("remoteip", "RemoteAddresses"))


def _netsh_apply(rule, args):
    rule.Name = args["name"]
    if "description" in args:
        rule.Description = args["description"]
    rule.Direction = {"in": 1, "out": 2}[args["dir"]]
    if "protocol" in args:
        name, _colon, icmp = args["protocol"].partition(":")      # icmpv4:8,any (type, code)
        proto = _NETSH_PROTOCOLS.get(name) or int(name)
        if int(rule.Protocol) in (6, 17) and proto not in (6, 17):
            rule.LocalPorts = "*"
            rule.RemotePorts = "*"
        rule.Protocol = proto
        rule.IcmpTypesAndCodes = "%s:*" % icmp.split(",")[0] if icmp else ""
    for key, prop in _NETSH_FIELDS:
        if key in args:
            setattr(rule, prop, "*" if args[key] == "any" else args[key])
    profile = args["profile"]
    rule.Profiles = windows.PROFILES_ALL if profile == "any" else windows.profiles_mask(profile)
    rule.Action = 1 if args["action"] == "allow" else 0
    rule.Enabled = args["enable"] == "yes"


_IFELSE = re.compile(r'^if errorlevel 1 \(netsh advfirewall firewall add rule (.*)\) else '
                     r'\(netsh advfirewall firewall set rule name=("[^"]*") new (.*)\)$')


def run_netsh(fake, text, admin=True):
    lines = text.split("\r\n")
    assert lines[-1] == "", "the file ends with CRLF"
    errorlevel, failed, steps, output = 0, 0, [], []
    for line in lines[:-1]:
        if line in ("@echo off", "setlocal", "set NAP_FAILED=0") or line.startswith(("rem ", "echo ")):
            continue
        if line == "net session >nul 2>&1":
            errorlevel = 0 if admin else 2
            continue
        if line.startswith("if errorlevel 1 (echo configmgr.nap: run this file as an administrator"):
            if errorlevel:
                return RunResult(3, ["configmgr.nap: run this file as an administrator"], steps)
            continue
        match = re.match(r'^netsh advfirewall firewall show rule name=("[^"]*") >nul 2>&1$', line)
        if match:
            errorlevel = 0 if fake.find(_cmd_value(match.group(1))) else 1
            continue
        match = _IFELSE.match(line)
        if match:
            try:
                if errorlevel:
                    args = dict((t.partition("=")[0], _cmd_value(t.partition("=")[2]))
                                for t in cmd_tokens(match.group(1)))
                    rule = fake_windows.FakeRule(Name=args["name"], Grouping="")
                    _netsh_apply(rule, args)
                    fake.store.append(rule)
                    steps.append(("add", args["name"]))
                else:
                    name = _cmd_value(match.group(2))
                    args = dict((t.partition("=")[0], _cmd_value(t.partition("=")[2]))
                                for t in cmd_tokens(match.group(3)))
                    for rule in fake.find(name):
                        _netsh_apply(rule, args)
                        steps.append(("update", rule.Name))
                errorlevel = 0
            except (fake_windows.ComError, ValueError, KeyError):
                errorlevel = 1
            continue
        if line == "if errorlevel 1 set /a NAP_FAILED+=1":
            failed += 1 if errorlevel else 0
            continue
        if line.startswith('if not "%NAP_FAILED%"=="0" ('):
            if failed:
                return RunResult(1, ["configmgr.nap: %d rule command(s) failed" % failed], steps)
            continue
        match = re.match(r"^exit /b (\d+)$", line)
        if match:
            return RunResult(int(match.group(1)), output, steps)
        raise AssertionError("a netsh line the interpreter does not know: %r" % line)
    raise AssertionError("the netsh file ends without exit /b")
