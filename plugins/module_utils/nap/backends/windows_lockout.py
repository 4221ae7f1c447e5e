# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Firewall backend: anti-lockout as Windows decides it (pure Python).

* :func:`admission_problems`: whether an enabled inbound rule admits every management source on the one
  management port in every current profile, with the effective profile state (Group Policy first:
  :func:`effective_profile`, :func:`parse_gp_rule`) and narrowed rules (:func:`narrowed`) not counted;
* :func:`lockout_problems`: the same on the policy after the run;
* :func:`simulate` / :func:`apply_lockout_problems`: every point of an apply, step by step.

The conversions live in windows.py; the ops simulated here come from windows_changes.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.windows import (
    ACTION_ALLOW, ACTION_BLOCK, DIR_IN, DIR_OUT, PROFILE_BITS, PROFILES_ALL, PROTOCOL_ANY, _is_blank, _subtract,
    address_networks, ports_cover, rule_to_fw,
)


# ---------------------------------------------------------------------------
# Anti-lockout as Windows decides it
# ---------------------------------------------------------------------------
# The effective profile state: Group Policy wins over the local settings where it sets a value (MS-GPFAS
# 2.2.3, e.g. "Allow Local Firewall Rule Policy Merge",
# https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-gpfas/2c979624-900a-4b6e-b4ef-09b387cd62ab).
# GP_PROFILE_KEYS names the registry values of HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\<Profile>.
GP_PROFILE_KEYS = ("EnableFirewall", "DefaultInboundAction", "DoNotAllowExceptions", "AllowLocalPolicyMerge")
NARROWING_BLANK = ("Interfaces", "RemoteMachineAuthorizedList", "RemoteUserAuthorizedList", "LocalUserAuthorizedList")


def effective_profile(doc, pname):
    """{enabled, block_all, default_allow, local_rules} of one profile, Group Policy first."""
    local = (doc.get("profiles") or {}).get(pname) or {}
    gp = (((doc.get("group_policy") or {}).get("profiles") or {}).get(pname)) or {}
    enabled = bool(gp["EnableFirewall"]) if gp.get("EnableFirewall") is not None else local.get("enabled") is not False
    if gp.get("DoNotAllowExceptions") is not None:
        block_all = bool(gp["DoNotAllowExceptions"])
    else:
        block_all = bool(local.get("block_all_inbound"))
    if gp.get("DefaultInboundAction") is not None:      # registry: 1 = block, 0 = allow (assumption, docs/windows.md)
        default_allow = int(gp["DefaultInboundAction"]) == 0
    else:
        default_allow = local.get("default_inbound_action") == ACTION_ALLOW
    local_rules = gp.get("AllowLocalPolicyMerge") is None or int(gp["AllowLocalPolicyMerge"]) != 0
    return {"enabled": enabled, "block_all": block_all, "default_allow": default_allow, "local_rules": local_rules}


_GP_FIELDS = {"LPort": "LocalPorts", "RPort": "RemotePorts", "RA4": "RemoteAddresses", "RA6": "RemoteAddresses",
              "LA4": "LocalAddresses", "LA6": "LocalAddresses", "IF": "Interfaces", "IFType": "InterfaceTypes",
              "App": "ApplicationName", "Svc": "ServiceName", "RMAuth": "RemoteMachineAuthorizedList",
              "RUAuth": "RemoteUserAuthorizedList", "LUAuth": "LocalUserAuthorizedList", "Name": "Name"}


def parse_gp_rule(text):
    """An INetFwRule-shaped dict from a Group Policy rule string (``v2.10|Action=Allow|Active=TRUE|Dir=In|...``).

    MS-GPFAS 2.2.2.10 gives the grammar; what is not understood makes the rule narrowed (it never counts as
    admitting the controller), so a misread can only make the check stricter.
    """
    fw = {"Enabled": False, "Direction": 0, "Action": ACTION_BLOCK, "Protocol": PROTOCOL_ANY, "Profiles": PROFILES_ALL,
          "Grouping": "(Group Policy)"}
    lists, profiles = {}, 0
    for part in str(text or "").split("|")[1:]:
        if "=" not in part:
            continue
        key, value = part.split("=", 1)
        if key == "Action":
            fw["Action"] = ACTION_ALLOW if value.lower() == "allow" else ACTION_BLOCK
        elif key == "Active":
            fw["Enabled"] = value.upper() == "TRUE"
        elif key == "Dir":
            fw["Direction"] = DIR_IN if value.lower() == "in" else DIR_OUT
        elif key == "Protocol":
            fw["Protocol"] = int(value) if value.isdigit() else -1
        elif key == "Profile":
            profiles |= PROFILE_BITS.get(value.lower(), 0)
        elif key == "Edge":
            fw["EdgeTraversal"] = value.upper() == "TRUE"
        elif key == "Security":
            fw["SecureFlags"] = 1
        elif key in _GP_FIELDS:
            lists.setdefault(_GP_FIELDS[key], []).append(value)
    for field, values in lists.items():
        fw[field] = ",".join(values)
    if profiles:
        fw["Profiles"] = profiles
    return fw


def _app_neutral(fw):
    """A rule limited to a program or service other than System may not admit WinRM traffic."""
    app = str(fw.get("ApplicationName") or "").strip().lower()
    svc = str(fw.get("ServiceName") or "").strip()
    return app in ("", "system") and svc in ("", "*")


def narrowed(fw):
    """Why an allow rule may not match the controller's connection (None when it is not narrowed)."""
    for field in NARROWING_BLANK:
        if not _is_blank(fw.get(field)):
            return "%s=%s" % (field, fw.get(field))
    if not _is_blank(fw.get("InterfaceTypes"), ("All", "all")):
        return "InterfaceTypes=%s" % fw.get("InterfaceTypes")
    for field in ("LocalAddresses", "RemotePorts"):
        if not _is_blank(fw.get(field), ("*",)):
            return "%s=%s" % (field, fw.get(field))
    if fw.get("EdgeTraversal"):
        return "EdgeTraversal"
    if fw.get("SecureFlags"):
        return "SecureFlags=%s" % fw.get("SecureFlags")
    if not _app_neutral(fw):
        return "ApplicationName/ServiceName"
    return None


def admission_problems(sources, ports, doc, local_rules):
    """Why no enabled inbound rule would admit every management source on the management port.

    ``local_rules``: every rule of the local store that may matter (INetFwRule-shaped dicts: the owned ones
    and the foreign ones of the read); the Group Policy rules and profile state come from ``doc``.  An empty
    list means the controller is admitted in every current profile.
    """
    nets = [ipaddress.ip_network(s, strict=False) for s in sources]
    gp_rules = [parse_gp_rule(t) for t in (doc.get("group_policy") or {}).get("rules") or []]
    current = int(doc.get("current_profile_types") or 0) or PROFILES_ALL
    problems = []
    for pname, bit in PROFILE_BITS.items():
        if not current & bit:
            continue
        state = effective_profile(doc, pname)
        if not state["enabled"]:
            continue
        if state["block_all"]:
            problems.append("profile %s blocks all inbound traffic (BlockAllInboundTraffic or Group Policy "
                            "DoNotAllowExceptions)" % pname)
            continue
        rules = gp_rules + (list(local_rules) if state["local_rules"] else [])
        best = None
        for port in ports:
            allow, block = [], []
            for fw in rules:
                if not fw.get("Enabled") or int(fw.get("Direction") or 0) != DIR_IN:
                    continue
                if int(fw.get("Protocol") if fw.get("Protocol") is not None else -1) not in (6, PROTOCOL_ANY):
                    continue
                if not int(fw.get("Profiles") or 0) & bit or not ports_cover(fw.get("LocalPorts"), port):
                    continue
                addr, unknown = address_networks(fw.get("RemoteAddresses"))
                if fw.get("Action") == ACTION_ALLOW:
                    if narrowed(fw) is None:
                        allow.extend(addr)
                else:
                    block.extend(addr)
                    if unknown:   # a keyword in a block rule: assume it may match
                        block += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            missing = []
            for src in nets:
                if any(src.overlaps(b) for b in block if b.version == src.version):
                    missing.append("%s (blocked by a block rule)" % src)
                    continue
                if state["default_allow"]:
                    continue
                remaining = [src]
                for net in allow:
                    remaining = _subtract(remaining, net)
                    if not remaining:
                        break
                if remaining:
                    missing.append(str(src))
            if not missing:
                best = None
                break
            if best is None or len(missing) < len(best[1]):
                best = (port, missing)
        if best is not None:
            problems.append("profile %s: no enabled inbound allow rule admits TCP %s from %s"
                            % (pname, "/".join(str(p) for p in ports), ", ".join(best[1])))
    return problems


def foreign_rules(doc, group):
    """The rules of the read outside the owned group (management-port rules and prefix-named ones)."""
    out = list(doc.get("management_rules") or [])
    out += [fw for fw in doc.get("rules") or [] if str(fw.get("Grouping") or "").lower() != group.lower()]
    return out


def lockout_problems(sources, ports, read, group, owned_after, mask):
    """Why the policy after the run would cut management (empty list: it would not).

    ``sources``: CIDRs Ansible connects from; ``ports``: the management port (a tuple of one); ``read``:
    the read document; ``group``: the owned group; ``owned_after``: model rules (Windows names) the owned
    group holds after the run; ``mask``: their profiles.
    """
    fws = foreign_rules(read, group) + [rule_to_fw(r, group, "", mask, named=True) for r in owned_after]
    return admission_problems(sources, ports, read, fws)


# ---------------------------------------------------------------------------
# Every point of an apply, simulated: the controller must stay admitted at each
# ---------------------------------------------------------------------------
def _relevant(fw, ports):
    if not fw.get("Enabled") or int(fw.get("Direction") or 0) != DIR_IN:
        return False
    return any(ports_cover(fw.get("LocalPorts"), p) for p in ports)


def simulate(ops, state, ports):
    """Yield (op index, step label, rules) after every step of the ops that could narrow access.

    ``rules``: every local rule that may matter at that point (the foreign ones of the read and the owned
    group as it stands).  A step is a Remove, or a property set on a rule that admitted the management port
    before it; additions only widen access (the module adds allow rules only).
    """
    owned = OrderedDict()
    for i, fw in enumerate(state.owned_fw):
        owned[i] = dict(fw)
    foreign = [dict(fw) for fw in foreign_rules(state.doc, state.group)]
    index_by_name = {}
    for key, fw in owned.items():
        index_by_name.setdefault(str(fw.get("Name")).lower(), []).append(key)
    next_key = [len(owned)]

    def rules():
        return foreign + list(owned.values())

    def take(name):
        keys = index_by_name.get(name.lower()) or []
        return keys.pop(0) if keys else None

    for index, op in enumerate(ops):
        if op["op"] == "add":
            fw = dict(op["set"])
            owned[next_key[0]] = fw
            index_by_name.setdefault(str(fw.get("Name")).lower(), []).append(next_key[0])
            next_key[0] += 1
        elif op["op"] == "update":
            if op.get("temp"):
                keys = [take(op["name"]) for _t in op["temp"]]
                for key, temp in zip(keys[1:], op["temp"][1:]):
                    if key is not None:
                        owned[key]["Name"] = temp
                        index_by_name.setdefault(temp.lower(), []).append(key)
                key = keys[0]
            else:
                key = take(op["name"])
            if key is None:
                continue
            fw = owned[key]
            for field, value in op["set"]:
                before = _relevant(fw, ports)
                fw[field] = value
                if before:
                    yield index, "%s %s: %s" % (op["op"], op["name"], field), rules()
            index_by_name.setdefault(str(fw.get("Name")).lower(), []).append(key)
        elif op["op"] == "remove":
            for _temp in op["temp"]:
                key = take(op["name"])
                if key is None:
                    continue
                fw = owned.pop(key)
                if _relevant(fw, ports):
                    yield index, "remove %s" % op["name"], rules()
        elif op["op"] == "disable":
            # a predefined rule turned off: it may be the one that admits the controller (the WinRM group)
            for fw in foreign:
                if (str(fw.get("Name") or "").lower() == op["name"].lower()
                        and str(fw.get("Grouping") or "") == op["grouping"]):
                    before = _relevant(fw, ports)
                    fw["Enabled"] = False
                    if before:
                        yield index, "disable %s" % op["name"], rules()


def apply_lockout_problems(sources, ports, state, ops):
    """Why some point of the apply would cut the controller off: [(op index, step, problems)]."""
    found = []
    for index, label, rules in simulate(ops, state, ports):
        problems = admission_problems(sources, ports, state.doc, rules)
        if problems:
            found.append((index, label, problems))
            break
    return found
