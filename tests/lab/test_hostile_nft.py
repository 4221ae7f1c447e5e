# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property test (issue 12, item 6), nft part: hostile identifiers through nft_nap_policy into a real nft.

The identifiers, strategies and checks are those of
tests/unit/plugins/module_utils/nap/test_hostile_input.py.  Every value that is not refused clearly is
rendered the way nft_nap_policy renders it (``policy_from_params`` -> ``desired_state().script()``),
loaded with ``nft -f`` and read back with ``nft -j list ruleset``: only the owned table may exist, its
chains and sets are exactly those of the desired state, the planned rules parse back exactly
(``parse_rules``), the zones come back from the set comments, and the module would see no change on its
next run.  A script that nft rejects is a failure too: ``through`` when the value changed the script's
structure (it left its quotes), ``refused unclearly`` otherwise (the module would fail without naming the
variable).

Every nft command runs inside ONE network namespace that this module creates (``nap-hostile-<pid>``) and
deletes at the end, also on failure; the ruleset of the namespace is flushed between examples.  Nothing
here touches this machine's own firewall.  Needs root, ip and nft (skipped otherwise).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import pytest

from labkit import needs_root_and_tools

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "unit", "plugins", "module_utils", "nap"))
import test_hostile_input as hostile  # noqa: E402  pylint: disable=import-error,wrong-import-position

pytestmark = needs_root_and_tools
NETNS = "nap-hostile-%d" % os.getpid()


def _run(args, stdin=None):
    proc = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


class Namespace:
    """nft inside one network namespace of our own; refuses to run before the namespace is proven separate."""

    def __init__(self, name):
        self.name = name
        self.ready = False

    def create(self):
        if self.name in _run(["ip", "netns", "list"])[1].split():
            _run(["ip", "netns", "del", self.name])
        rc, _out, err = _run(["ip", "netns", "add", self.name])
        if rc != 0:
            pytest.skip("cannot create network namespace %s: %s" % (self.name, err.strip()))
        own = os.readlink("/proc/self/ns/net")
        rc, inside, err = _run(["ip", "netns", "exec", self.name, "readlink", "/proc/self/ns/net"])
        if rc != 0 or not inside.strip() or inside.strip() == own:
            self.delete()
            pytest.skip("network namespace %s is not separate from this one (%s)" % (self.name, err.strip()))
        self.ready = True

    def delete(self):
        self.ready = False
        _run(["ip", "netns", "del", self.name])

    def nft(self, args, stdin=None):
        assert self.ready, "nft outside the test's own network namespace"
        return _run(["ip", "netns", "exec", self.name, "nft"] + list(args), stdin)


NS = Namespace(NETNS)


@pytest.fixture(scope="module", autouse=True)
def namespace(request):
    """The namespace for the whole module (deleted at the end, also on failure), the figures, bounded shrinking."""
    if not request.config.pluginmanager.is_registered(hostile.SUMMARY):
        request.config.pluginmanager.register(hostile.SUMMARY, "nap-hostile-summary")
    NS.create()
    try:
        with hostile.shrink_budget():
            yield NS
    finally:
        NS.delete()


def run_nft(params):
    return hostile.nft_outcome(params, NS.nft)


for _case in hostile.CASES:
    if "nft" in _case.backends:
        _test = hostile.make_test(_case, "nft", run_nft)
        globals()[_test.__name__] = _test
del _case, _test


@pytest.mark.parametrize("key", [c.key for c in hostile.CASES if "nft" in c.backends])
def test_benign_values_load_exactly(key):
    case = hostile.CASE_BY_KEY[key]
    for value in (case.valid, case.benign):
        outcome = hostile.outcome_of(case, "nft", value, run_nft)
        assert outcome.kind == hostile.SAFE, "%s / nft: the valid value %r is %s" % (case.ident, value, outcome)


def test_the_check_sees_an_injected_chain():
    """A table with a chain the policy did not ask for is not the planned table."""
    params = hostile.Params(hostile.CASE_BY_KEY["opt_nft_zone"], "servers")
    policy, script = hostile.nft_script(params)
    injected = script.rstrip("\n")[:-1] + "\tchain pwn {\n\t\ttype filter hook input priority -10; policy drop;\n\t}\n}\n"
    NS.nft(["flush", "ruleset"])
    rc, _out, err = NS.nft(["-f", "-"], injected)
    assert rc == 0, err
    rc, listing, err = NS.nft(["-j", "list", "ruleset"])
    NS.nft(["flush", "ruleset"])
    assert rc == 0, err
    assert any("chains" in p for p in hostile.nft_problems(policy, listing))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
