# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One diff for every backend: (want, have) rule lists -> add / remove / update.

Rules are matched by name.  ``have`` must already be limited to what the collection
owns (the Windows rule group, the nft table, the owned ACL): nothing outside it is ever
listed for removal.  A backend that cannot change a rule in place applies an update as
remove + add; the diff still reports it as one update.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError

# icmp_type is compared: a backend that uses DEFAULT_COMPARE must read it back (Windows: IcmpTypesAndCodes).  The
# nftables backend compares with its own COMPARE and checks the ICMP type itself (nftables.py); the Cisco backend and
# the Aerleon export render icmp_type but use no rule diff.  A rule without icmp_type has no such key in to_dict():
# changed_fields takes a missing field as None.
DEFAULT_COMPARE = ("direction", "action", "protocol", "src_addresses", "dst_addresses", "src_ports", "dst_ports",
                   "description", "icmp_type")


class RuleDiff:
    """Result of comparing wanted and present rules."""

    def __init__(self, add, remove, update, unchanged):
        self.add = add              # [Rule] wanted, absent
        self.remove = remove        # [Rule] present, unwanted
        self.update = update        # [(present Rule, wanted Rule)]
        self.unchanged = unchanged  # [Rule]

    @property
    def changed(self):
        return bool(self.add or self.remove or self.update)

    def commands(self):
        """Abstract operations, removals first (what changes, in the order applied)."""
        out = []
        for rule in self.remove:
            out.append({"op": "remove", "name": rule.name})
        for old, new in self.update:
            out.append({"op": "update", "name": new.name, "fields": changed_fields(old, new)})
        for rule in self.add:
            out.append({"op": "add", "name": rule.name})
        return out

    def summary(self):
        """{missing, extra, changed}: rule names, as drift reports show them."""
        return {
            "missing": [r.name for r in self.add],
            "extra": [r.name for r in self.remove],
            "changed": [n.name for _old, n in self.update],
        }

    def ansible_diff(self, target=""):
        """A dict for Ansible's --diff: one line per rule, changed rules side by side."""
        before = [r.summary() for r in self.remove] + [o.summary() for o, _new in self.update]
        after = [r.summary() for r in self.add] + [n.summary() for _old, n in self.update]
        header = " (%s)" % target if target else ""
        return {
            "before_header": "rules before" + header,
            "after_header": "rules after" + header,
            "before": "".join(line + "\n" for line in sorted(before)),
            "after": "".join(line + "\n" for line in sorted(after)),
        }


def changed_fields(old, new, compare=DEFAULT_COMPARE):
    a, b = old.to_dict(), new.to_dict()
    return [f for f in compare if a.get(f) != b.get(f)]


def check_unique(rules, where="rules"):
    seen = set()
    for rule in rules:
        if rule.name in seen:
            raise NapError("%s: duplicate rule name %r (each rule needs its own name)" % (where, rule.name))
        seen.add(rule.name)


def diff_rules(want, have, compare=DEFAULT_COMPARE):
    """Compare wanted rules with the owned rules present; both are lists of Rule."""
    check_unique(want, "wanted rules")
    have_by_name = OrderedDict()
    duplicates = []
    for rule in have:
        if rule.name in have_by_name:
            duplicates.append(rule)   # a second rule of one name (e.g. made by hand): remove it
        else:
            have_by_name[rule.name] = rule
    add, update, unchanged = [], [], []
    for rule in want:
        old = have_by_name.pop(rule.name, None)
        if old is None:
            add.append(rule)
        elif changed_fields(old, rule, compare):
            update.append((old, rule))
        else:
            unchanged.append(rule)
    remove = list(have_by_name.values()) + duplicates
    return RuleDiff(add, remove, update, unchanged)
