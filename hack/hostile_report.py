#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The figures of the hostile-input property test (issue 12, item 6) for docs/security.md.

Runs the generators and checks of tests/unit/plugins/module_utils/nap/test_hostile_input.py (and, as root
with nft, those of tests/lab/test_hostile_nft.py, in a network namespace of its own) outside pytest: every
identifier through every backend it reaches, WITHOUT stopping at the first failure, and counts per
identifier and backend the inputs tried, refused clearly, rendered safely, refused unclearly and through.
For each pair that fails, Hypothesis then shrinks a failing value to a minimal one.

Usage: python hack/hostile_report.py [--scale N] [--no-nft] [--random] [--shrink-seconds S] [--out DIR]

Prints the Markdown table and the failures; with --out writes DIR/hostile-figures.md and .json
(default build/hostile/).  Exit 1 when any value was refused unclearly or went through.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import conftest  # noqa: E402,F401  pylint: disable=import-error,wrong-import-position,unused-import
for _extra in (os.path.join(ROOT, ".cache", "collections"),):
    if os.path.isdir(_extra) and _extra not in sys.path:
        sys.path.append(_extra)
sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "plugins", "module_utils", "nap"))

import pytest  # noqa: E402  pylint: disable=wrong-import-position
from hypothesis import HealthCheck, Phase, example, given, settings  # noqa: E402  pylint: disable=wrong-import-position

import test_hostile_input as hostile  # noqa: E402  pylint: disable=import-error,wrong-import-position

SKIPPED = pytest.skip.Exception


def _settings(n, random, phases):
    return settings(max_examples=max(1, n), deadline=None, database=None, derandomize=not random, print_blob=False,
                    phases=phases, suppress_health_check=list(HealthCheck), report_multiple_bugs=False)


def category(outcome):
    """A failure's kind without its values, to tell different failures of one pair apart."""
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "...", outcome.detail)
    text = re.sub(r"\d+", "N", text)
    return "%s: %s" % (outcome.kind, text[:110])


def explore(case, backend, runner, n, random, tally, kinds):
    """Run n generated values (and the known vectors) through one backend, tallying every one."""

    def probe(value):
        outcome = hostile.outcome_of(case, backend, value, runner)
        tally.add(case.ident, backend, value, outcome)
        if outcome.kind in hostile.FAILING:
            cat = category(outcome)
            best = kinds.setdefault((case.ident, backend), OrderedDict()).get(cat)
            if best is None or (len(value), value) < (len(best[0]), best[0]):
                kinds[(case.ident, backend)][cat] = (value, outcome)

    test = given(value=case.strategy)(probe)
    for value in reversed(tuple(case.known)):
        test = example(value=value)(test)
    _settings(n, random, (Phase.explicit, Phase.generate))(test)()


def minimal(case, backend, runner, n, random, seconds):
    """The minimal failing value Hypothesis finds for one pair (generation then shrinking), or None."""
    last = {}

    def probe(value):
        outcome = hostile.outcome_of(case, backend, value, runner)
        if outcome.kind in hostile.FAILING:
            last["value"] = (value, outcome)
            raise hostile.HostileFailure(repr(outcome))

    test = _settings(n, random, (Phase.generate, Phase.shrink))(given(value=case.strategy)(probe))
    with hostile.shrink_budget(seconds):
        try:
            test()
        except hostile.HostileFailure:
            return last.get("value")
        except Exception:  # pylint: disable=broad-except
            return last.get("value")    # (a flaky replay still leaves the last failing value)
    return None


def nft_runner():
    """(runner, namespace) for the nft backend, or (None, reason)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, "not root"
    if shutil.which("nft") is None or shutil.which("ip") is None:
        return None, "nft or ip is missing"
    sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
    import test_hostile_nft  # pylint: disable=import-error,import-outside-toplevel
    ns = test_hostile_nft.Namespace("nap-hostile-%d" % os.getpid())
    try:
        ns.create()
    except SKIPPED as exc:
        return None, str(exc)
    return (lambda params: hostile.nft_outcome(params, ns.nft)), ns


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=float, default=2.0, help="examples per test, times the test's own (2)")
    parser.add_argument("--no-nft", action="store_true", help="leave out the nft backend")
    parser.add_argument("--random", action="store_true",
                        help="random examples (default: derandomized, the same figures on every run)")
    parser.add_argument("--shrink-seconds", type=float, default=20, help="time to shrink each failure (20)")
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "hostile"), help="directory for the figures")
    parser.add_argument("-k", dest="only", default="", help="only identifiers/backends whose key contains this")
    args = parser.parse_args(argv)

    runners = dict(hostile.RUNNERS)
    ns, nft_note = None, "left out (--no-nft)"
    if not args.no_nft:
        runner, ns = nft_runner()
        if runner is None:
            nft_note = "left out (%s)" % ns
            ns = None
        else:
            runners["nft"] = runner
            nft_note = "loaded with nft -f in network namespace %s" % ns.name
    tally = hostile.Tally()
    kinds = OrderedDict()
    skipped = []
    started = time.time()
    try:
        for case in hostile.CASES:
            for backend in case.backends:
                if backend not in runners or args.only not in "%s %s" % (case.key, backend):
                    continue
                n = int(hostile.EXAMPLES.get(backend, 30) * args.scale)
                t0 = time.time()
                try:
                    explore(case, backend, runners[backend], n, args.random, tally, kinds)
                except SKIPPED as exc:
                    skipped.append("%s / %s: %s" % (case.ident, backend, exc))
                    continue
                counts = tally.counts.get((case.ident, backend)) or {}
                sys.stderr.write("%-45s %-15s %4d tried %5.1fs  %s\n" % (
                    case.ident[:45], backend, sum(counts.values()), time.time() - t0,
                    "FAIL" if any(counts.get(k) for k in hostile.FAILING) else "ok"))
        shrunk = OrderedDict()
        for (ident, backend) in kinds:
            case = next(c for c in hostile.CASES if c.ident == ident and backend in c.backends)
            n = int(hostile.EXAMPLES.get(backend, 30) * args.scale)
            shrunk[(ident, backend)] = minimal(case, backend, runners[backend], n, args.random, args.shrink_seconds)
    finally:
        if ns is not None:
            ns.delete()

    lines = ["# Hostile input figures", "",
             "hack/hostile_report.py, %s, %s examples per test (scale %g), %s; nft: %s; %.0f s." % (
                 time.strftime("%Y-%m-%d"), "derandomized" if not args.random else "random", args.scale,
                 "Hypothesis %s" % __import__("hypothesis").__version__, nft_note, time.time() - started), "",
             tally.table(), ""]
    by_ident = OrderedDict()
    for ident, _backend, _tried, counts in tally.rows():
        slot = by_ident.setdefault(ident, dict((k, 0) for k in hostile.KINDS))
        for k in hostile.KINDS:
            slot[k] += counts[k]
    lines += ["Per identifier (all backends):", "",
              "| identifier | tried | refused clearly | rendered safely | refused unclearly | through |",
              "|---|---:|---:|---:|---:|---:|"]
    for ident, counts in by_ident.items():
        lines.append("| %s | %d | %d | %d | %d | %d |" % (
            ident, sum(counts.values()), counts[hostile.REFUSED], counts[hostile.SAFE], counts[hostile.UNCLEAR], counts[hostile.THROUGH]))
    lines.append("")
    if kinds:
        lines += ["## Failures", "",
                  "Per identifier and backend: the minimal failing value Hypothesis shrank to, then the shortest "
                  "value seen for each kind of failure.", ""]
        for (ident, backend), cats in kinds.items():
            lines.append("### %s / %s" % (ident, backend))
            lines.append("")
            small = shrunk.get((ident, backend))
            if small:
                lines.append("- minimal: `%r` -> %s" % (small[0], hostile._short(repr(small[1]), 500)))
            for _cat, (value, outcome) in cats.items():
                lines.append("- `%r` -> %s" % (value, hostile._short(repr(outcome), 500)))
            lines.append("")
    if skipped:
        lines += ["Skipped:", ""] + ["- " + s for s in skipped] + [""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        if not os.path.isdir(args.out):
            os.makedirs(args.out)
        with open(os.path.join(args.out, "hostile-figures.md"), "w") as handle:
            handle.write(text)
        doc = {"rows": [{"identifier": i, "backend": b, "tried": t, "counts": c} for i, b, t, c in tally.rows()],
               "failures": [{"identifier": i, "backend": b, "minimal": repr((shrunk.get((i, b)) or (None,))[0]),
                             "kinds": [{"value": repr(v), "outcome": repr(o)} for v, o in cats.values()]}
                            for (i, b), cats in kinds.items()]}
        with open(os.path.join(args.out, "hostile-figures.json"), "w") as handle:
            json.dump(doc, handle, indent=1, ensure_ascii=False)
        sys.stderr.write("written: %s\n" % os.path.join(args.out, "hostile-figures.{md,json}"))
    return 1 if kinds else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
