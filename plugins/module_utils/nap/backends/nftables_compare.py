# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables backend, comparison: the owned table wanted vs the one on the host, as a per-rule diff (the
shared :func:`diff.diff_rules`) plus structural changes, the commands and the one transaction that
converges it; the gathered view of a table; nft's errors named by rule.  Rendering and parsing live in
nftables.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends.nftables import (
    _ERROR_RE, CHAIN_OF, COMPARE, DIRECTION_OF, FAMILIES, MARK, _multiset, desired_state, parse_comment,
    parse_management, parse_rules, parse_zones, rule_to_nft,
)
from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import diff_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import port_bounds


class Change:
    """want vs have: the rule diff (shared diff.py), structural changes, commands and the script."""

    def __init__(self, policy, want_state, have_state, rule_diff, structure, have_rules):
        self.policy = policy
        self.want_state = want_state
        self.have_state = have_state
        self.rule_diff = rule_diff
        self.structure = structure          # [(op, what, detail)]
        self.have_rules = have_rules
        self._changed = None

    @property
    def changed(self):
        if self._changed is None:      # read by compare() and again by the module: the norms of two whole tables
            self._changed = self.have_state is None or self.want_state.norm() != self.have_state.norm()
        return self._changed

    def commands(self):
        """Per-rule changes in nft syntax (review aid); the module applies them as one table rewrite."""
        ref = self.want_state.ref
        out = []
        if self.have_state is None:
            out.append("add table %s" % ref)
        for op, what, detail in self.structure:
            if op == "reorder":
                out.append("# %s: %s" % (what, detail))
            elif what.startswith("set "):
                name = what[4:]
                if op in ("remove", "update"):
                    out.append("delete set %s %s" % (ref, name))
                if op in ("add", "update"):
                    out.append("add set %s %s { %s }" % (ref, name, self.want_state.sets[name].definition()))
            elif what.startswith("chain "):
                name = what[6:]
                if op in ("remove", "update"):
                    out.append("delete chain %s %s" % (ref, name))
                if op in ("add", "update"):
                    out.append("add chain %s %s { %s }" % (ref, name, self.want_state.chains[name].header()))
            elif what.startswith("rule "):
                for handle in detail.get("handles", []):
                    out.append("delete rule %s %s handle %s  # %s" % (ref, detail["chain"], handle, what[5:]))
                for nrule in detail.get("add", []):
                    out.append("add rule %s %s %s" % (ref, nrule.chain, nrule.body()))
            else:
                out.append("# %s %s" % (op, what))
        have_parts = {}
        if self.have_state is not None:
            for nrule in self.have_state.all_rules():
                parsed = parse_comment(nrule.comment)
                key = parsed[0] if parsed else "handle-%s" % nrule.handle
                have_parts.setdefault(key, []).append(nrule)
        families, rpc = self.policy.families, self.policy.rpc_dynamic_range
        for rule in self.rule_diff.remove:
            for nrule in have_parts.get(rule.name, []):
                out.append("delete rule %s %s handle %s  # %s" % (ref, nrule.chain, nrule.handle, rule.name))
        for old, new in self.rule_diff.update:
            for nrule in have_parts.get(old.name, []):
                out.append("delete rule %s %s handle %s  # %s" % (ref, nrule.chain, nrule.handle, old.name))
            for nrule in rule_to_nft(new, families, rpc):
                out.append("add rule %s %s %s" % (ref, nrule.chain, nrule.body()))
        for rule in self.rule_diff.add:
            for nrule in rule_to_nft(rule, families, rpc):
                out.append("add rule %s %s %s" % (ref, nrule.chain, nrule.body()))
        if self.changed and not out:
            out.append("# rules of table %s are out of order" % ref)
        return out

    def ansible_diff(self):
        """A dict for Ansible's --diff: what changes, one line per rule, set or chain, in table order.

        ``before`` lists what is removed or replaced, in the order of the table as it is; ``after`` what is added
        or replaces it, in the order of the table as it will be. Sets come first (as in the table), then each chain
        from its top, and every rule line names its chain: ``chain <name>: <rule>``. A planned rule is shown
        in the model (``NAME direction action protocol from ... to ...``), a rule of the table's own in nft syntax.
        """
        ref = self.want_state.ref
        before = _diff_lines(self.have_state, self.rule_diff.remove + [o for o, _n in self.rule_diff.update],
                             self.structure, "old", "remove")
        after = _diff_lines(self.want_state, self.rule_diff.add + [n for _o, n in self.rule_diff.update],
                            self.structure, "add", "add")
        if self.have_state is None:
            before.insert(0, "table %s: absent" % ref)
        return {
            "before_header": "rules before (nft table %s)" % ref,
            "after_header": "rules after (nft table %s)" % ref,
            "before": "".join(line + "\n" for line in before),
            "after": "".join(line + "\n" for line in after),
        }


def _rule_chain(rule):
    """The chain a parsed or wanted model rule lives in."""
    if rule.direction in CHAIN_OF:
        return CHAIN_OF[rule.direction]
    return rule.direction[len("chain "):] if rule.direction.startswith("chain ") else rule.direction


def _planned_key(chain, nrule):
    """(name, chain) of the model rule an nft rule belongs to (as parse_rules groups them), or None for the
    table's own rules."""
    if nrule.comment.startswith(MARK):
        return None
    parsed = parse_comment(nrule.comment)
    if parsed is None or chain.name not in DIRECTION_OF:
        return ("handle-%s" % nrule.handle, chain.name)
    return (parsed[0], chain.name)


def _diff_lines(state, rules, structure, side, set_side):
    """The --diff lines of one side (``side`` "old": the table present, "add": the wanted table), in table order.

    ``rules`` are the model rules of that side that change; ``structure`` the changes of sets, chains and the
    table's own rules (see _structure)."""
    changed_sets = set()
    changed_chains = set()
    own = set()
    other = []
    for op, what, detail in structure:
        if what.startswith("set "):
            if op in (set_side, "update"):
                changed_sets.add(what[4:])
        elif what.startswith("chain "):
            if op in (set_side, "update"):
                changed_chains.add(what[6:])
        elif what.startswith("rule "):
            own.update(id(r) for r in detail.get(side, []))
        elif op == set_side or (op == "reorder" and side == "add"):
            other.append("%s: %s" % (what, detail) if op == "reorder" else "%s %s" % (op, what))
    wanted = OrderedDict()
    for rule in rules:
        wanted.setdefault((rule.name, _rule_chain(rule)), rule)
    lines = []
    if state is not None:
        for nset in state.sets.values():
            if nset.name in changed_sets:
                lines.append("set %s: %s" % (nset.name, ", ".join(nset.elements) or "(empty)"))
        for chain in state.chains.values():
            if chain.name in changed_chains:
                lines.append("chain %s: %s" % (chain.name, chain.header() or "(regular chain)"))
            for nrule in chain.rules:
                if id(nrule) in own:
                    lines.append("chain %s: %s" % (chain.name, nrule.body()))
                    continue
                key = _planned_key(chain, nrule)
                if key is not None and key in wanted:
                    lines.append("chain %s: %s" % (chain.name, wanted.pop(key).summary()))
    # what the table walk did not meet (never expected; listed rather than lost)
    lines.extend("chain %s: %s" % (key[1], rule.summary()) for key, rule in wanted.items())
    return lines + other


def _structure(want_state, have_state):
    """Differences outside the planned rules: sets, chains, the table's own rules, foreign objects."""
    out = []
    have_sets = have_state.sets if have_state else {}
    have_chains = have_state.chains if have_state else {}
    for name, nset in want_state.sets.items():
        if name not in have_sets:
            out.append(("add", "set " + name, {}))
        elif have_sets[name].norm() != nset.norm():
            out.append(("update", "set " + name, {}))
    for name in have_sets:
        if name not in want_state.sets:
            out.append(("remove", "set " + name, {}))
    for name, chain in want_state.chains.items():
        if name not in have_chains:
            out.append(("add", "chain " + name, {}))
        elif have_chains[name].header_norm() != chain.header_norm():
            out.append(("update", "chain " + name, {}))
    for name in have_chains:
        if name not in want_state.chains:
            out.append(("remove", "chain " + name, {}))
    for obj in (have_state.extra_objects if have_state else []):
        out.append(("remove", obj, {}))

    def own(state):
        rules = OrderedDict()
        for chain in state.chains.values():
            for rule in chain.rules:
                if rule.comment.startswith(MARK):
                    rules.setdefault((chain.name, rule.comment), []).append(rule)
        return rules

    want_own = own(want_state)
    have_own = own(have_state) if have_state else {}
    for key in list(want_own) + [k for k in have_own if k not in want_own]:
        w, h = want_own.get(key, []), have_own.get(key, [])
        if _multiset(w) != _multiset(h):
            op = "add" if not h else ("remove" if not w else "update")
            out.append((op, "rule %s" % key[1][len(MARK):], {
                "chain": key[0], "handles": [r.handle for r in h], "old": h, "add": w}))
    return out


def compare(policy, have_state):
    """Change from the table present (TableState or None) to the one the policy renders to."""
    want_state = desired_state(policy)
    have_rules = parse_rules(have_state, policy.families, policy.rpc_dynamic_range, policy.rules, want_state.rendered)
    rule_diff = diff_rules(policy.rules, have_rules, COMPARE)
    structure = _structure(want_state, have_state)
    change = Change(policy, want_state, have_state, rule_diff, structure, have_rules)
    if have_state is not None and change.changed and not rule_diff.changed and not structure:
        change.structure.append(("reorder", "order", "rules of the owned chains are out of order"))
    return change


def gathered_range(state):
    """The dynamic RPC range the table's rpc-dynamic rules use (None when it has none)."""
    for rule in (state.all_rules() if state is not None else ()):
        parsed = parse_comment(rule.comment)
        if parsed and parsed[2] == "rpc-dynamic":
            for m in rule.matches:
                if m.key == "tcp dport" and len(m.values) == 1:
                    low, high = port_bounds(m.values[0])
                    return "%d-%d" % (low, high)
    return None


def describe(state, policy=None, rules=None):
    """before/after document of a table: presence, zones, management sources, rules (model dicts).

    Without a policy (gathered state), port keywords named in the comments are trusted.
    """
    if state is None:
        return {"present": False, "zones": {}, "management_sources": [], "rules": []}
    if rules is None:
        rules = parse_rules(state, policy.families if policy else FAMILIES.get(state.family, (4, 6)),
                            policy.rpc_dynamic_range if policy else None,
                            policy.rules if policy else ())
    return {
        "present": True,
        "table": state.ref,
        "zones": dict(parse_zones(state)),
        "management_sources": parse_management(state),
        "rules": [r.to_dict() for r in rules],
    }


def nft_error(stderr, script):
    """A readable message for nft's error output: the rule it rejected, quoted, with nft's message."""
    lines = script.splitlines()
    out = []
    for line in (stderr or "").splitlines():
        match = _ERROR_RE.match(line.strip())
        if not match:
            continue
        number, message = int(match.group(1)), match.group(2)
        text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        comment = re.search(r'comment "([^"]*)"', text)
        name = None
        if comment:
            parsed = parse_comment(comment.group(1))
            name = parsed[0] if parsed else comment.group(1)
        what = ("rule %s" % name) if name else ("line %d" % number)
        out.append("nft rejected %s: %s; the rule: %s" % (what, message, text))
    return "; ".join(out) if out else (stderr or "").strip()


__all__ = ["Change", "compare", "describe", "gathered_range", "nft_error"]
