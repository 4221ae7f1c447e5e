# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Firewall backend: from the read and the wanted rules to the apply's ops, and what an apply did (pure Python).

* :class:`HostState`: the read document split into owned rules (model Rules, Windows names) and collisions;
* :func:`plan_changes`: (RuleDiff, ops): in-place updates and additions first (management flows before the
  others), removals last and under a unique temporary name (:func:`update_set`, :func:`add_set`,
  :func:`full_set`, :func:`temp_name`);
* :func:`apply_outcome`: the apply script's answer read back (per-op results, the read-back, what is left,
  the lockout check on the read-back);
* :func:`predefined_ops` / :func:`restore_ops`: the ops of ``predefined: disable`` and ``state: absent``.

Facts used (Microsoft documentation):

* INetFwRule::put_Protocol: "The Protocol property must be set before the LocalPorts or
  RemotePorts properties or an error will be returned."
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_protocol
* INetFwRules::Remove takes a rule *name*; "If a rule specified by the name parameter does not
  exist in the collection, the Remove method has no effect."
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-remove
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import os
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.windows import (
    PROFILES_ALL, _is_blank, fw_to_rule, is_management, parse_addresses, parse_ports, rule_to_fw, same_profiles,
)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.windows_lockout import NARROWING_BLANK, admission_problems, foreign_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.windows_predefined import domain_group_of, marker_disabled, marker_fw, marker_name
from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import diff_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError


# ---------------------------------------------------------------------------
# Reading and diffing
# ---------------------------------------------------------------------------
class HostState:
    """The read document, split into owned rules (as model Rules, Windows names) and collisions.

    ``adopt``: Windows names of planned rules; a rule with an EMPTY Grouping whose name is exactly one of
    them (what ``netsh advfirewall firewall add rule`` makes: netsh cannot set a group) is adopted as owned
    and gets the group on the next apply, instead of being refused as a collision.
    """

    def __init__(self, doc, group, prefix, mask=PROFILES_ALL, adopt=()):
        self.doc = doc
        self.group = group
        self.prefix = prefix
        self.mask = mask
        adopt = set(adopt)
        self.owned_fw = []
        self.adopted_fw = []
        self.outside_fw = []       # prefix-named rules outside the group
        self.marker_fw = None      # the owned marker of predefined: disable (not a planned rule)
        marker = marker_name(prefix).lower()
        for fw in doc.get("rules") or []:
            grouping = str(fw.get("Grouping") or "")
            if grouping.lower() == group.lower() and str(fw.get("Name") or "").lower() == marker:
                self.marker_fw = self.marker_fw or fw
            elif grouping.lower() == group.lower():
                self.owned_fw.append(fw)
            elif grouping == "" and str(fw.get("Name") or "") in adopt:
                self.owned_fw.append(fw)
                self.adopted_fw.append(fw)
            else:
                self.outside_fw.append(fw)
        self.owned = [fw_to_rule(fw, prefix, mask, group) for fw in self.owned_fw]

    def name_counts(self):
        counts = {}
        for rule in self.owned:
            counts[rule.name.lower()] = counts.get(rule.name.lower(), 0) + 1
        return counts

    def collisions(self, names):
        """Rules outside the group whose names the run would add or remove (case-insensitive)."""
        wanted = set(n.lower() for n in names)
        return [fw for fw in self.outside_fw if str(fw.get("Name") or "").lower() in wanted]


# The order in which an in-place update sets properties: Protocol before the ports (INetFwRule::put_Protocol),
# the rule's reach (addresses, profiles, narrowing) before Action and Enabled.
UPDATE_ORDER = ("Name", "Grouping", "Description", "Direction", "Protocol", "LocalPorts", "RemotePorts",
                "LocalAddresses", "RemoteAddresses", "Profiles", "InterfaceTypes", "Interfaces", "EdgeTraversal",
                "SecureFlags", "RemoteMachineAuthorizedList", "RemoteUserAuthorizedList", "LocalUserAuthorizedList",
                "ApplicationName", "ServiceName", "IcmpTypesAndCodes", "Action", "Enabled")
# What a rule the module writes holds in the properties the rule model has no field for.
NEUTRAL = OrderedDict((("InterfaceTypes", "All"), ("Interfaces", ""), ("EdgeTraversal", False), ("SecureFlags", 0),
                       ("RemoteMachineAuthorizedList", ""), ("RemoteUserAuthorizedList", ""),
                       ("LocalUserAuthorizedList", ""), ("ApplicationName", ""), ("ServiceName", ""),
                       ("IcmpTypesAndCodes", "")))


def _same_value(field, have, want):
    if field in ("LocalPorts", "RemotePorts"):
        hp, hbad = parse_ports(have)
        wp, _wbad = parse_ports(want)
        return not hbad and hp == wp
    if field in ("LocalAddresses", "RemoteAddresses"):
        ha, hbad = parse_addresses(have)
        wa, _wbad = parse_addresses(want)
        return not hbad and ha == wa
    if field == "Profiles":
        try:
            return same_profiles(have, want)
        except (TypeError, ValueError):
            return False
    if field == "InterfaceTypes":
        return _is_blank(have, ("All", "all"))
    if field == "IcmpTypesAndCodes":
        if _is_blank(want, ("*",)):
            return _is_blank(have, ("*",))
        return str(have or "").strip().replace(" ", "") == str(want).strip()
    if field == "SecureFlags":
        return have is None or not int(have)
    if field in ("EdgeTraversal", "Enabled"):
        return bool(have) == bool(want)
    if field in NARROWING_BLANK + ("ApplicationName", "ServiceName"):
        return _is_blank(have)
    if field in ("Direction", "Action", "Protocol"):
        try:
            return int(have) == int(want)
        except (TypeError, ValueError):
            return False
    return str(have if have is not None else "") == str(want if want is not None else "")


def update_set(have, want):
    """[[property, value]] that turn the rule ``have`` into ``want`` in place (only what differs, in
    UPDATE_ORDER; ports reset to ``*`` before a protocol change, as Windows takes ports only on TCP/UDP)."""
    full = dict(NEUTRAL)
    full.update(want)
    out = []
    proto_change = not _same_value("Protocol", have.get("Protocol"), full["Protocol"])
    if proto_change:
        for field in ("LocalPorts", "RemotePorts", "IcmpTypesAndCodes"):
            if not _is_blank(have.get(field), ("*",)):
                out.append([field, "" if field == "IcmpTypesAndCodes" else "*"])
    for field in UPDATE_ORDER:
        value = full.get(field)
        if field in ("LocalPorts", "RemotePorts"):
            value = value if value not in (None, "") else "*"
            if proto_change:
                if value != "*":
                    out.append([field, value])
                continue
        if field == "Name":
            if str(have.get("Name")) != str(value):
                out.append([field, value])
            continue
        if field == "SecureFlags" and have.get("SecureFlags") is None:
            continue      # no INetFwRule3 on this OS
        if not _same_value(field, have.get(field), value):
            out.append([field, value])
    return out


def add_set(fw):
    """[[property, value]] that build a new rule (Protocol before the ports; '*' left at the default)."""
    out = []
    for field in ("Name", "Description", "Grouping", "Direction", "Protocol", "IcmpTypesAndCodes", "LocalPorts",
                  "RemotePorts", "LocalAddresses", "RemoteAddresses", "Profiles", "Action", "Enabled"):
        value = fw.get(field)
        if field == "IcmpTypesAndCodes" and not value:
            continue
        if field in ("LocalPorts", "RemotePorts", "LocalAddresses", "RemoteAddresses") and value in (None, "", "*"):
            continue
        out.append([field, value])
    return out


def full_set(fw, secure_flags=False):
    """[[property, value]] that turn ANY rule into ``fw`` in place (for a copy of a duplicated name)."""
    full = dict(NEUTRAL)
    full.update(fw)
    out = [["LocalPorts", "*"], ["RemotePorts", "*"]]     # before the protocol: Windows takes ports only on TCP/UDP
    for field in UPDATE_ORDER:
        value = full.get(field)
        if field == "SecureFlags" and not secure_flags:
            continue
        if field in ("LocalPorts", "RemotePorts", "LocalAddresses", "RemoteAddresses"):
            value = value if value not in (None, "") else "*"
            if field in ("LocalPorts", "RemotePorts") and value == "*":
                continue
        out.append([field, value])
    return out


def _same_rule(have, want):
    return (have is not None and have.name == want.name and have.key() == want.key()
            and have.description == want.description and have.flow_id == want.flow_id and have.source == want.source)


def _token():
    return binascii.hexlify(os.urandom(4)).decode("ascii")


def temp_name(name, token, index):
    """A unique temporary name for a rule about to be renamed away (and removed, or renamed back)."""
    return "%s ~%s.%d" % (name, token, index)


def plan_changes(want, state, token=None):
    """(RuleDiff, ops) for wanted rules (Windows names) against the owned rules of a HostState.

    The ops: ``add`` and in-place ``update`` first (management flows before the others), ``remove`` last.
    A name held by several owned rules is renamed copy by copy to unique temporary names; the first copy is
    updated back to the wanted rule, the others are removed by their unique names.  Removal also renames
    first, so that INetFwRules::Remove can never hit another rule that shares the name.
    """
    token = token or _token()
    rdiff = diff_rules(want, state.owned)
    have_by_name = OrderedDict()
    for fw in state.owned_fw:
        have_by_name.setdefault(str(fw.get("Name") or "").lower(), []).append(fw)
    adopted = set(id(fw) for fw in state.adopted_fw)
    read_as = dict((id(fw), rule) for fw, rule in zip(state.owned_fw, state.owned))
    first, second, removes = [], [], []
    counter = [0]

    def temps(count):
        out = []
        for _i in range(count):
            counter[0] += 1
            out.append(temp_name(state.prefix.strip() or "nap", token, counter[0]))
        return out

    for rule in want:
        copies = have_by_name.pop(rule.name.lower(), [])
        if len(copies) == 1 and _same_rule(read_as.get(id(copies[0])), rule):
            continue            # read back exactly as wanted (no hand edit, same name and group): nothing to set
        fw = rule_to_fw(rule, state.group, state.prefix, state.mask, named=True)
        bucket = first if is_management(rule) else second
        adopt = any(id(c) in adopted for c in copies)
        if not copies:
            bucket.append({"op": "add", "name": rule.name, "set": add_set(fw)})
        elif len(copies) == 1:
            changes = update_set(copies[0], fw)
            if changes:
                op = {"op": "update", "name": str(copies[0].get("Name")), "set": changes}
                if adopt:
                    op["adopt"] = True
                bucket.append(op)
        else:
            names_ = temps(len(copies))
            full = full_set(fw, any(c.get("SecureFlags") is not None for c in copies))
            op = {"op": "update", "name": rule.name, "temp": names_, "set": full}
            if adopt:
                op["adopt"] = True
            bucket.append(op)
            for extra in names_[1:]:
                removes.append({"op": "remove", "name": extra, "temp": [extra]})
    for _key, copies in have_by_name.items():
        name = str(copies[0].get("Name"))
        removes.append({"op": "remove", "name": name, "temp": temps(len(copies))})
    return rdiff, first + second + removes


# ---------------------------------------------------------------------------
# What an apply did
# ---------------------------------------------------------------------------
def apply_outcome(reply, ops, want, state, sources, ports, check_lockout=True):
    """Read the apply script's answer: per-op results, the owned group read back, what is left, lockout.

    Returns a dict: ``results`` (one per op), ``failed`` (the results that failed), ``skipped`` (op names not
    run because an earlier op failed), ``after_state`` (HostState of the read-back), ``left`` (RuleDiff of
    the wanted rules against what is really there) and ``lockout`` (problems on the read-back, [] when the
    controller is admitted or the check is off).
    """
    results = reply.get("results") or []
    if isinstance(results, dict):
        results = [results]
    failed = [r for r in results if not r.get("ok") and not r.get("skipped") and not r.get("whatif")]
    if len(results) != len(ops):
        failed.append({"op": "?", "name": "?", "error": "the apply script answered %d of %d ops" % (len(results), len(ops))})
    skipped = [r.get("name") for r in results if r.get("skipped")]
    readback = reply.get("readback")
    after_state = None
    left = None
    lockout = []
    if isinstance(readback, dict):
        doc = dict(state.doc)
        doc.update(readback)
        after_state = HostState(doc, state.group, state.prefix, state.mask, adopt=[r.name for r in want])
        left = diff_rules(want, after_state.owned)
        if check_lockout:
            lockout = admission_problems(sources, ports, doc, foreign_rules(doc, state.group) + after_state.owned_fw)
    return {"results": results, "failed": failed, "skipped": skipped, "after_state": after_state, "left": left,
            "lockout": lockout}


# ---------------------------------------------------------------------------
# The ops of predefined: disable and of state: absent (windows_predefined.py finds the rules)
# ---------------------------------------------------------------------------
def predefined_ops(state, wider, mode, group, prefix):
    """(ops, disabled now, recorded) for ``predefined: disable``: the marker first (recording every rule disabled so
    far), then one ``disable`` op per wider rule; NapError naming the group for the domain-wide groups."""
    if mode != "disable" or not wider:
        return [], [], marker_disabled(state.marker_fw)
    refused = sorted(set(g for g in (domain_group_of(w) for w in wider) if g))
    if refused:
        raise NapError("predefined: disable is refused for the group(s) %s: they serve the whole domain on a domain "
                       "controller (rules: %s); use predefined: report, or scope those rules by Group Policy" % (
                           ", ".join(refused), ", ".join(w["name"] for w in wider if domain_group_of(w))))
    recorded = marker_disabled(state.marker_fw)
    now = []
    for entry in wider:
        pair = [entry["name"], entry["grouping"]]
        now.append(pair)
        if pair not in recorded:
            recorded.append(pair)
    fw = marker_fw(group, prefix, recorded)
    if state.marker_fw is None:
        ops = [{"op": "add", "name": fw["Name"], "set": add_set(fw)}]
    else:
        ops = [{"op": "update", "name": str(state.marker_fw.get("Name")),
                "set": update_set(state.marker_fw, fw)}]
    ops += [{"op": "disable", "name": n, "grouping": g, "set": [["Enabled", False]]} for n, g in now]
    return ops, now, recorded


def restore_ops(state):
    """``state: absent``: re-enable exactly the predefined rules the marker records, then remove the marker."""
    recorded = marker_disabled(state.marker_fw)
    if state.marker_fw is None:
        return [], []
    ops = [{"op": "enable", "name": n, "grouping": g, "set": [["Enabled", True]]} for n, g in recorded]
    name = str(state.marker_fw.get("Name"))
    ops.append({"op": "remove", "name": name, "temp": [temp_name(state.prefix.strip() or "nap", _token(), 0)]})
    return ops, recorded
