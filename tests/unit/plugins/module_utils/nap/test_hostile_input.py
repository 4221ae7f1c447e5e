# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property test (issue 12, item 6): hostile identifiers through the planner and every renderer.

Hypothesis draws hostile strings for every identifier a user controls (zone, host and device names,
rule names, flow ids, descriptions, sources, ports, ACL / object-group / interface names, the Windows
group and name prefix, the nft table, the Aerleon filter name and targets) and feeds each through the
entry point where it really enters: the inventory given to ``planner.plan``, the ``rules`` option and
the other options of the modules and filters.  For every drawn value and every backend exactly one of
these must hold:

refused clearly
    ``NapError`` (or the module / filter failure that wraps it) with a message that names the variable
    (``nap_zones``, ``nap_perimeter_zones``, ``acl_name``, ``dst_ports``, ...; see ``HostileCase.expect``) and,
    for values of the inventory, the host they belong to: nap_plan runs once for the whole inventory, so
    Ansible does not name the host for it.  Module and filter options run per host and Ansible names the
    host in the failure, so there the variable is enough.
rendered safely
    the artefact parses back to exactly what was planned:

    * plan: JSON round trip, the JSON Schema of flows.json, the value kept as given;
    * report (flows.csv / flows.md / topology.mmd): CSV read back with the csv module gives the flows'
      values; Markdown and Mermaid have the line structure of the same plan with a benign value;
    * PowerShell (the COM and NetSecurity scripts of ``state: rendered``): printable ASCII only (no character
      outside it reaches the file raw); the tree-sitter tree has no error and the same node structure as with
      a benign value (string literals, single- or double-quoted, are leaves; comment contents elided); every
      single-quoted literal ends where PowerShell's own rules end it (PowerShell also takes
      U+2018/U+2019/U+201A/U+201B as single quotes, which tree-sitter does not); every double-quoted literal
      of the data block holds no expansion but ``$([char]0xNNNN)`` and no escape but `` `` ` `` ``, `` `$ `` and
      `` `" `` (decoded by render_interpreter.ps_value), and those of the templates are the templates' text;
      outside the literals the file has the lines it has with the benign value, no comment holds a line break
      of any kind (``str.splitlines``: also U+2028, U+0085, VT, FF, ...), the shared part and the steps are
      exactly render_common.ps1 and render_<form>.ps1, ``$group`` and ``$namePrefix`` read back as given, and
      the Add-NapRule calls read back (``fw_to_rule``, as the module reads a host) to exactly the planned
      rules, with render_interpreter.parse_powershell reading the same names;
    * netsh (.cmd): every line is a fixed line of the renderer, a ``rem`` line, ``netsh advfirewall firewall
      show rule name=...`` or the ``if errorlevel 1 (... add rule ...) else (... set rule name=... new ...)``
      line (render_interpreter._IFELSE; outside its quoted values nothing but that structure and plain
      values); no delete line; no control character or character outside ASCII; no cmd metacharacter
      (``& | < > ^ %``) outside double quotes but the fixed ones, ``%`` doubled inside them and in ``rem``
      lines, no ``rem`` line ending in ``^``; the ``add rule`` and the ``set rule ... new`` arguments of each
      rule read back to the planned rule and the show / set selector name it.  Names or descriptions outside
      ASCII make the renderer's five-line refusal file instead (checked as such: its message is the renderer's,
      free of cmd metacharacters, and names the rule and field);
    * Cisco ASA / IOS: the resource modules' ``rendered`` commands (cisco.asa / cisco.ios in process, no
      ansible-playbook) are single lines without ``?`` (a help request on the CLI) that start with the
      expected command and name the expected objects; the running configuration they make, parsed back
      with the modules' ``parsed`` state, holds exactly the owned ACL / object groups / interfaces and gives
      back the planned rules (descriptions and remarks may be cut at the documented lengths, never
      changed); the ASA block commands read back with no change to make;
    * Aerleon: ``nap_export`` (check mode) writes only the expected files inside ``dest``, and
      ``yaml.safe_load`` of the export gives back exactly the names and values that went in;
    * nft: see tests/lab/test_hostile_nft.py (loads the script in a network namespace of its own);
    * ports and port ranges besides: an accepted value means what its ASCII digits say (U+00B2 is no 2).

Anything else is a failure: a refusal whose message does not name the variable (``refused unclearly``),
or ``through``: an artefact that does not parse back, or any other exception (TypeError, ValueError,
KeyError, ...).  Each test is one identifier and one backend, so Hypothesis shrinks each failure to its
own minimal example.  The counts (tried / refused clearly / rendered safely / refused unclearly /
through) are printed at the end of the run; ``hack/hostile_report.py`` runs the same generators outside
pytest, without stopping at the first failure, and prints the figures of docs/security.md.

Run: ``PYTHONPATH=build/collections:.cache/collections .venv/bin/python -m pytest
tests/unit/plugins/module_utils/nap/test_hostile_input.py -q -p no:cacheprovider``;
``NAP_HOSTILE_SCALE=4`` multiplies the number of examples, ``NAP_HOSTILE_SHRINK_SECONDS`` bounds the time
Hypothesis spends shrinking one failure (4 s).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import copy
import csv
import io
import json
import os
import re
import sys
import tempfile
from collections import OrderedDict
from unittest.mock import MagicMock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ansible_collections.configmgr.nap.plugins.module_utils.nap import model, planner, report
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import aerleon
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import cisco
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import nftables
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import nftables_compare
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_render

NapError = model.NapError
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, *[os.pardir] * 5))
BACKENDS_DIR = os.path.join(HERE, "backends")
ACTION_TESTS = os.path.join(ROOT, "tests", "unit", "plugins", "action")
if ACTION_TESTS not in sys.path:
    sys.path.insert(0, ACTION_TESTS)
# the model of the rendered scripts: its decoder of the renderer's PowerShell literals (ps_value), its reading of
# the data block (parse_powershell) and its grammar of the netsh if/else line (_IFELSE)
import render_interpreter  # noqa: E402  pylint: disable=wrong-import-position,import-error
SCALE = float(os.environ.get("NAP_HOSTILE_SCALE") or 1)
SHRINK_SECONDS = float(os.environ.get("NAP_HOSTILE_SHRINK_SECONDS") or 4)

try:
    import jsonschema
    with open(os.path.join(ROOT, "docs", "flows.schema.json")) as _handle:
        SCHEMA = jsonschema.Draft202012Validator(json.load(_handle))
except (ImportError, IOError):  # pragma: no cover
    SCHEMA = None

try:
    import tree_sitter
    import tree_sitter_powershell
    PS_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
except ImportError:  # pragma: no cover
    PS_PARSER = None
NO_TREE_SITTER = ("the tree-sitter PowerShell grammar is not installed (requirements-dev.txt: tree-sitter, "
                  "tree-sitter-powershell)")


# ---------------------------------------------------------------------------
# Outcomes and the tally
# ---------------------------------------------------------------------------
REFUSED, SAFE, UNCLEAR, THROUGH = "refused clearly", "rendered safely", "refused unclearly", "through"
KINDS = (REFUSED, SAFE, UNCLEAR, THROUGH)
FAILING = (UNCLEAR, THROUGH)


class Outcome:
    __slots__ = ("kind", "detail")

    def __init__(self, kind, detail=""):
        self.kind = kind
        self.detail = detail

    def __repr__(self):
        return "%s: %s" % (self.kind, self.detail) if self.detail else self.kind


class Tally:
    """Per (identifier, backend): counts of each outcome and the shortest failing example seen."""

    def __init__(self):
        self.counts = OrderedDict()
        self.failures = OrderedDict()

    def add(self, ident, backend, value, outcome):
        key = (ident, backend)
        counts = self.counts.setdefault(key, dict((k, 0) for k in KINDS))
        counts[outcome.kind] += 1
        if outcome.kind in FAILING:
            best = self.failures.get(key)
            if best is None or (len(value), value) < (len(best[0]), best[0]):
                self.failures[key] = (value, outcome)

    def rows(self):
        for (ident, backend), counts in self.counts.items():
            yield ident, backend, sum(counts.values()), counts

    def table(self):
        """The figures as a Markdown table (one row per identifier and backend, then the totals)."""
        lines = ["| identifier | backend | tried | refused clearly | rendered safely | refused unclearly | through |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        total = dict((k, 0) for k in KINDS)
        for ident, backend, tried, counts in self.rows():
            lines.append("| %s | %s | %d | %d | %d | %d | %d |" % (
                ident, backend, tried, counts[REFUSED], counts[SAFE], counts[UNCLEAR], counts[THROUGH]))
            for k in KINDS:
                total[k] += counts[k]
        lines.append("| **all** | | %d | %d | %d | %d | %d |" % (sum(total.values()), total[REFUSED], total[SAFE],
                                                                 total[UNCLEAR], total[THROUGH]))
        return "\n".join(lines)

    def failure_lines(self):
        out = []
        for (ident, backend), (value, outcome) in self.failures.items():
            out.append("%s / %s: %r -> %s" % (ident, backend, value, _short(repr(outcome), 400)))
        return out


TALLY = Tally()


def _short(text, limit=300):
    text = " ".join(str(text).split()) if "\n" in str(text) else str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def rules_diff(have, want):
    """The first difference between two lists of rule dicts, readably."""
    if len(have) != len(want):
        return "%d rules read back for %d planned: %s" % (len(have), len(want), _short([r.get("name") for r in have]))
    for got, rule in zip(have, want):
        diff = dict((k, (got.get(k), v)) for k, v in rule.items() if got.get(k) != v)
        if diff:
            return "rule %r reads back with %s (read back, planned)" % (rule.get("name"), _short(diff, 300))
    return ""


class HostileFailure(AssertionError):
    """A value that is neither refused clearly nor rendered safely."""


# ---------------------------------------------------------------------------
# Messages: a refusal is clear when it names the variable (and the host, where Ansible does not)
# ---------------------------------------------------------------------------
VALUE = object()       # in HostileCase.expect: the host is the drawn value itself (host and device names)


def mentions(message, text):
    """The message shows ``text`` as is, or as repr() shows it (escaped), or its first 40 characters so."""
    if text in message:
        return True
    for shown in (repr(text)[1:-1], ascii(text)[1:-1], repr(text), json.dumps(text)[1:-1]):
        if shown in message or (len(shown) > 40 and shown[:40] in message):
            return True
    return False


def names_variable(message, expect, value):
    """True when the message names one of the variables of ``expect`` and, for it, the host.

    ``expect`` is a list of (aliases, host): aliases of the variable (any one, case-insensitive) and the
    host that must be named too (None: no host; VALUE: the drawn value is the host name).
    """
    low = message.lower()
    for aliases, host in expect:
        if not any(alias.lower() in low for alias in aliases):
            continue
        if host is None:
            return True
        if mentions(message, value if host is VALUE else host):
            return True
    return False


def refusal(case, value, message):
    if names_variable(message, case.expect, value):
        return Outcome(REFUSED, message)
    return Outcome(UNCLEAR, "the message does not name %s: %s" % (case.expected_text(), message))


def classify_exception(case, value, exc):
    """NapError (and the Ansible errors that wrap it) are refusals; any other exception went through."""
    try:
        from ansible.errors import AnsibleError
    except ImportError:  # pragma: no cover
        AnsibleError = NapError
    if isinstance(exc, (NapError, AnsibleError)):
        return refusal(case, value, str(exc))
    return Outcome(THROUGH, "%s escaped: %s" % (type(exc).__name__, _short(exc)))


# ---------------------------------------------------------------------------
# Strategies: Hypothesis text() mixed with known-bad fragments spliced into valid names
# ---------------------------------------------------------------------------
FRAGMENTS = (
    "'", '"', "`", u"\u2019", u"\u2018", u"\u201a", u"\u201b", u"\u201c", u"\u201d", u"\u201e",
    ";", "{", "}", "|", "$", "(", ")", "$(", "@(", "${", "[", "]", "<", ">", "&", "^", "%", "%PATH%", "%~", "!",
    "#", "<#", "#>", "*", "?", "=", ",", ":", "/", "\\", "../", "..\\", "..", "~", "{{", "}}", "{%",
    "\n", "\r", "\r\n", "\x00", "\t", "\x0b", "\x0c", "\x1b", "\x7f", u"\u0085", u"\u2028", u"\u2029",
    u"\u200b", u"\u202e", u"\ufeff", u"\u00a0",
    " ", "  ", "-", "--", "_", ".", "+", "@", u"\u00b2", u"\u0663", u"\uff11", u"\u00e9", u"\u0130", u"\U0001f600",
    "\\n", "rem ", "::", "&& calc", "exit", "remark ", " permit ip any any", "[flow X]", ") (",
)
KNOWN_ALL = ("", " ", "\n", "x" * 300)
# what names are usually made of: most such values are valid somewhere, so the renderers see them too
PLAUSIBLE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-:/ "


def splice(base, inserts):
    out = base
    for position, fragment in sorted(inserts, key=lambda item: -item[0]):
        position = min(position, len(out))
        out = out[:position] + fragment + out[position:]
    return out


def hostile(valid, known=()):
    """Hostile variants of a valid value: arbitrary text, valid names with bad fragments, long ones, known vectors."""
    fragment = st.sampled_from(FRAGMENTS)
    return st.one_of(
        st.text(max_size=16),
        st.text(alphabet=PLAUSIBLE, min_size=1, max_size=24),
        st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,40}\Z", fullmatch=True),
        st.builds(splice, st.just(valid), st.lists(st.tuples(st.integers(0, len(valid)), fragment),
                                                   min_size=1, max_size=3)),
        st.lists(fragment, min_size=1, max_size=4).map("".join),
        st.builds(lambda a, b: a + valid + b, st.sampled_from(["", " ", "-", "#", "!", "0", "'", "../", "\t"]),
                  st.sampled_from(["", " ", "\n", "\r\n", "\t", "'", '"', "|", "\x00"])),
        st.integers(2, 30).map(lambda n: (valid + "-") * n),
        st.sampled_from(tuple(known) + KNOWN_ALL),
    )


# ---------------------------------------------------------------------------
# The estate every inventory case starts from (documentation ranges; small so that the Cisco round trip
# stays fast): dc01 in zone servers, the management sources in zone mgmt, rtr01 joining both.
# ---------------------------------------------------------------------------
BASE = {"zone": "servers", "host": "dc01", "device": "rtr01"}


def inventory(zone="servers", host="dc01", device="rtr01", platform="nftables", rpc_global=None, rpc_host=None):
    groups = {"nap_domain_controllers": [host], "nap_perimeter": [device]}
    hostvars = {
        host: {"ansible_host": "192.0.2.5"},
        device: {"nap_address": ["192.0.2.1", "198.51.100.1"], "nap_perimeter_platform": platform,
                 "nap_perimeter_zones": [zone, "mgmt"]},
    }
    settings_ = {"nap_zones": {zone: ["192.0.2.0/24"], "mgmt": ["198.51.100.0/24"]},
                 "nap_management_sources": ["198.51.100.10/32"]}
    if rpc_global is not None or rpc_host is not None:
        # an RPC flow across rtr01 (site server -> SHV point), so that the range reaches the artefacts
        groups.update({"nap_global_catalogs": [host], "nap_site_servers": ["cm01"], "nap_shv_points": ["nps01"]})
        hostvars["cm01"] = {"ansible_host": "198.51.100.20"}
        hostvars["nps01"] = {"ansible_host": "192.0.2.20"}
        settings_["nap_include_ad_dependencies"] = False
        settings_["nap_gc_mode"] = "gc_ssl"
        if rpc_global is not None:
            settings_["nap_rpc_dynamic_range"] = rpc_global
        if rpc_host is not None:
            hostvars["nps01"]["nap_rpc_dynamic_range"] = rpc_host
    return groups, hostvars, settings_


def base_rule(direction, name=None):
    suffix = {"in": "IN", "out": "OUT", "forward": "FWD"}[direction]
    rule = OrderedDict([
        ("name", name or "NAP-TEST-TCP-" + suffix), ("flow_id", "NAP-TEST"), ("direction", direction),
        ("protocol", "tcp"), ("src_addresses", ["198.51.100.10/32"]),
        ("dst_addresses", [] if direction == "in" else ["192.0.2.5/32"]),
        ("src_ports", []), ("dst_ports", [5986]), ("description", "a test rule"), ("source", "configmgr.nap"),
    ])
    if direction == "out":
        rule["src_addresses"], rule["dst_addresses"] = [], ["192.0.2.5/32"]
    return rule


def second_rule(direction):
    """A benign UDP rule beside the one that carries the value (a second line in every artefact)."""
    rule = base_rule(direction, "NAP-OTHER-UDP-" + {"in": "IN", "out": "OUT", "forward": "FWD"}[direction])
    rule.update(flow_id="NAP-OTHER", protocol="udp", dst_ports=[1812, "49152-65535"], description="another rule")
    return rule


def ascii_port(text):
    """What a port string means with ASCII digits only: an int, "low-high", a keyword, or None (not a port)."""
    text = str(text).strip().lower()
    if text in model.PORT_KEYWORDS:
        return text
    match = re.match(r"\A([0-9]+)\Z", text)
    if match and 1 <= int(text) <= 65535:
        return int(text)
    match = re.match(r"\A([0-9]+)-([0-9]+)\Z", text)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if 1 <= low <= high <= 65535:
            return low if low == high else "%d-%d" % (low, high)
    return None


def ascii_range(text):
    match = re.match(r"\A\s*([0-9]+)\s*-\s*([0-9]+)\s*\Z", str(text))
    if match and 1024 <= int(match.group(1)) <= int(match.group(2)) <= 65535:
        return "%d-%d" % (int(match.group(1)), int(match.group(2)))
    return None


# ---------------------------------------------------------------------------
# Cases: one identifier at one entry point, the backends it reaches and how a refusal must name it
# ---------------------------------------------------------------------------
PLANNER_BACKENDS = ("planner", "report", "powershell", "netsh", "asa", "ios", "aerleon", "nft")


class HostileCase:
    def __init__(self, key, ident, entry, valid, benign, backends, expect, known=(), oracle=None, longest=None):
        self.key = key              # the test id: test_<key>__<backend>
        self.ident = ident          # the identifier, as the figures name it
        self.entry = entry          # inv.<what> / rule.<field> / opt.<option>
        self.valid = valid          # a valid value: the base of the spliced variants
        self.benign = benign        # a valid, unique value: the reference rendering
        self.backends = backends
        self.expect = expect        # [(variable aliases, host)] (see names_variable)
        self.known = tuple(known)   # the security review's vectors, always tried first
        if longest:                 # a valid value as long as names.py allows, and one character more
            self.known += (valid[0] * longest, valid[0] * (longest + 1))
        self.oracle = oracle        # for numbers: value -> canonical meaning, or None when it is no valid value

    @property
    def strategy(self):
        return hostile(self.valid, self.known)

    def expected_text(self):
        parts = []
        for aliases, host in self.expect:
            text = " or ".join(repr(a) for a in aliases)
            if host is VALUE:
                text += " with the value"
            elif host:
                text += " with host %s" % host
            parts.append("(%s)" % text)
        return " or ".join(parts)

    def benign_for(self, value):
        """The reference value: the benign marker, or for numbers the value's canonical meaning."""
        if self.oracle is not None:
            meaning = self.oracle(value)
            return meaning if meaning is not None else self.benign
        return self.benign


def _rule_cases():
    out = []
    rule_backends = ("powershell", "netsh", "asa", "ios", "aerleon", "nft")
    for field, ident, valid, benign, known in (
            ("name", "rule name", "NAP-TEST-TCP-IN", "ZQBENIGNRULE",
             ('x" & calc & "', "x'; Remove-NetFirewallRule -All; '", u"x\u2019; Write-Output pwned; \u2019",
              "NAP|X", "x\n 10 permit ip any any", "x\r\nnetsh advfirewall reset", "x y")),
            ("flow_id", "flow id", "NAP-TEST", "ZQBENIGNFLOW", ("F|x", "F) evil", "F]; source x", "x\ny")),
            ("description", "rule description", "a test rule", "zqbenigndesc",
             ("a\naccess-list CONFIGMGR-NAP extended permit ip any any", "x\n 10 permit ip any any",
              "x [flow EVIL]", "' + $(calc) + '", "%PATH%", "x\r\ncalc.exe", "x" * 250)),
            ("source", "rule source", "configmgr.nap", "zqbenignsrc", ("x]", "x\ny", "%~", "x; source y"))):
        out.append(HostileCase("rule_" + field, ident, "rule." + field, valid, benign, rule_backends,
                               [((field, field.replace("_", " ")), None)], known,
                               longest={"name": 100, "flow_id": 64, "description": 1024, "source": 200}[field]))
    for field in ("dst_ports", "src_ports"):
        out.append(HostileCase("rule_" + field, "port (rules %s)" % field, "rule." + field, "5986", 8080,
                               ("powershell", "netsh", "asa", "ios", "aerleon", "nft"), [((field,), None)],
                               (u"\u00b2", u"\u0663", u"\uff18\uff10", "80\n", " 80", "0x50", "1e3", "80-", "-80", "65536",
                                "0", "80-79", "80 - 90", "+80", u"\u0968\u0966"), oracle=ascii_port))
    return out


CASES = [
    HostileCase("inv_zone", "zone name", "inv.zone", "servers", "zqbenignzone",
                ("planner", "report", "asa", "ios", "aerleon", "nft"),
                [(("nap_zones",), None), (("nap_perimeter_zones",), "rtr01")],
                ('zz";};chain pwn{type filter hook input priority -10;policy drop;};set s_p{type ipv4_addr;comment "',
                 "servers\n", "a b", "zone|x"), longest=32),
    HostileCase("inv_host", "host name", "inv.host", "dc01", "zqbenignhost",
                ("planner", "report", "powershell", "netsh", "asa", "ios", "aerleon", "nft"),
                [(("nap_domain_controllers", "host"), VALUE)],
                ("dc01\nWrite-Output pwned", "dc01\r\ncalc.exe", "dc01 & calc", "dc01%PATH%", "dc01^", u"dc01\u2028x"), longest=253),
    HostileCase("inv_device", "device name", "inv.device", "rtr01", "zqbenigndev",
                ("planner", "report", "asa", "ios", "aerleon", "nft"),
                [(("nap_perimeter", "host", "perimeter device"), VALUE)],
                ("../../etc/cron.d/x", "rtr01\n", "a/b", "..", "rtr01\r\nrem"), longest=253),
    HostileCase("inv_rpc_global", "port range (nap_rpc_dynamic_range)", "inv.rpc_global", "49152-65535", "49152-65535",
                ("planner", "asa", "ios", "nft"), [(("nap_rpc_dynamic_range",), None)],
                (u"\u00b2\u00b2\u00b2\u00b2-65535", u"49152-6553\u0665", "49152-65535\n", "1024 - 2048"), oracle=ascii_range),
    HostileCase("inv_rpc_host", "port range (nap_rpc_dynamic_range, per host)", "inv.rpc_host", "49152-65535", "49152-65535",
                ("planner", "asa", "ios", "nft"), [(("nap_rpc_dynamic_range",), "nps01")],
                (u"\u00b2\u00b2\u00b2\u00b2-65535", "5000-5100\n"), oracle=ascii_range),
] + _rule_cases() + [
    HostileCase("opt_acl_name", "ACL name (acl_name)", "opt.acl_name", "CONFIGMGR-NAP", "ZQBENIGNACL",
                ("asa", "asa_block", "ios", "ios_interfaces"), [(("acl_name", "ACL name", "nap_perimeter_acl_name"), None)],
                ("OUTSIDE_IN\n", "OUTSIDE_IN\naccess-list X permit ip any any", "123", "A B", "-x", "True", "None",
                 "1e3", "0x1F", "1_0"), longest=64),
    HostileCase("opt_prefix", "object-group prefix (prefix)", "opt.prefix", "CONFIGMGR-NAP-", "ZQBENIGNPFX-",
                ("asa",), [(("prefix",), None)], ("X\n", "X Y-", "OG-\nobject-group network EVIL"), longest=40),
    HostileCase("opt_block_acl", "block ACL (nap_perimeter_asa_block_acl)", "opt.block_acl", "OUTSIDE-IN", "ZQBENIGNBLK",
                ("asa_block",), [(("block_acl", "nap_perimeter_asa_block_acl", "ACL name"), None)],
                ("OUTSIDE_IN\n", "OUTSIDE IN", "A\nno access-list B", "00", "None"), longest=64),
    HostileCase("opt_interface", "interface name (nap_perimeter_interfaces)", "opt.interface", "GigabitEthernet0/1",
                "GigabitEthernet0/9", ("ios_interfaces",), [(("interfaces", "interface", "nap_perimeter_interfaces"), None)],
                ("Gi0/0\n ip access-group EVIL in", "Gi0/0 ", "Gi 0/0", "Gi0/0\ninterface Gi0/1", "True", "1"), longest=64),
    HostileCase("opt_group", "Windows rule group (group)", "opt.group", "ConfigMgr NAP", "Zqbenign Group",
                ("powershell", "netsh"), [(("group",), None)],
                ("ConfigMgr NAP'; Remove-NetFirewallRule -All; '", u"x\u2019; Write-Output pwned; \u2019", "x%PATH%",
                 "x\r\ncalc.exe", "x^"), longest=100),
    HostileCase("opt_name_prefix", "Windows name prefix (name_prefix)", "opt.name_prefix", "configmgr.nap ", "zqbenignpfx ",
                ("powershell", "netsh"), [(("name_prefix",), None)],
                (u"x\u2019; Write-Output pwned; \u2019", 'x" & calc & "', "%~", "x\r\ncalc.exe "), longest=40),
    HostileCase("opt_win_host", "host name (win_nap_firewall host)", "opt.win_host", "nps01", "zqbenignwinhost",
                ("powershell", "netsh"), [(("host",), None)],
                ("nps01\nWrite-Output pwned", "nps01\r\ncalc.exe", "nps01 %~ ^", "nps01\u0085Write-Output x"), longest=253),
    HostileCase("opt_table", "nft table (table)", "opt.table", "configmgr_nap", "zqbenigntable", ("nft",),
                [(("table",), None)], ("configmgr_nap\n", "t; flush ruleset", "t\ntable inet x { }", "inet"), longest=64),
    HostileCase("opt_nft_zone", "zone name (nft_nap_policy zones)", "opt.nft_zone", "servers", "zqbenignzone", ("nft",),
                [(("zones",), None)],
                ('zz";};chain pwn{type filter hook input priority -10;policy drop;};set s_p{type ipv4_addr;comment "',), longest=32),
    HostileCase("opt_nft_rpc", "port range (nft_nap_policy rpc_dynamic_range)", "opt.nft_rpc", "49152-65535", "49152-65535",
                ("nft",), [(("rpc_dynamic_range",), None)], (u"\u00b2\u00b2\u00b2\u00b2-65535", "5000-5100\n"),
                oracle=ascii_range),
    HostileCase("opt_filter_name", "Aerleon filter name (filter_name)", "opt.filter_name", "CONFIGMGR-NAP", "ZQBENIGNFLT",
                ("aerleon",), [(("filter_name", "filter name"), None)], ("X\ntargets:", "X: y", "X #"), longest=64),
    HostileCase("opt_target", "Aerleon target (targets)", "opt.target", "juniper", "zqbenigntarget", ("aerleon",),
                [(("targets", "target"), None)], ("juniper\nnetworks:", "juniper: x", "#", "- x", "'", '"')),
]
CASE_BY_KEY = dict((c.key, c) for c in CASES)


# what the filters and modules put in place of an empty option (``acl_name or DEFAULT_ACL_NAME``, ...)
DEFAULTS = {"acl_name": cisco.DEFAULT_ACL_NAME, "filter_name": aerleon.DEFAULT_FILTER, "table": nftables.DEFAULT_TABLE,
            "nft_rpc": None}


class Params:
    """The full set of inputs of one run, defaults everywhere but the case's entry, which holds the value."""

    def __init__(self, case, value):
        self.case = case
        self.value = value
        kind, _dot, what = case.entry.partition(".")
        self.kind, self.what = kind, what
        self.inv = dict(BASE)
        self.rule_field = None
        self.opts = {"acl_name": cisco.DEFAULT_ACL_NAME, "prefix": None, "block_acl": "OUTSIDE-IN",
                     "interface": "GigabitEthernet0/1", "group": windows.DEFAULT_GROUP, "name_prefix": windows.DEFAULT_PREFIX,
                     "win_host": "nps01", "table": nftables.DEFAULT_TABLE, "nft_zone": "servers", "nft_rpc": None,
                     "filter_name": aerleon.DEFAULT_FILTER, "target": None}
        if kind == "inv":
            self.inv[what] = value
        elif kind == "rule":
            self.rule_field = what
        else:
            self.opts[what] = value

    def eff(self, option):
        """An option as the module or filter takes it: an empty value means its default (``x or default``)."""
        return self.opts[option] or DEFAULTS.get(option, self.opts[option])

    # -- inventory and plan --------------------------------------------------
    @property
    def device(self):
        return self.inv["device"] if self.kind == "inv" and self.what == "device" else "rtr01"

    @property
    def windows_host(self):
        return self.inv["host"] if self.kind == "inv" and self.what == "host" else "dc01"

    def inventory(self, platform="nftables"):
        args = dict(zone=self.inv["zone"], host=self.inv["host"], device=self.inv["device"], platform=platform)
        if self.kind == "inv" and self.what in ("rpc_global", "rpc_host"):
            args[self.what] = self.value
        return inventory(**args)

    def plan(self, platform="nftables"):
        return planner.plan(*self.inventory(platform))

    # -- rules ---------------------------------------------------------------
    def rules(self, direction):
        """The rules option: the rule carrying the value (for rule cases) and a benign one."""
        first = base_rule(direction)
        if self.rule_field in ("dst_ports", "src_ports"):
            first[self.rule_field] = [self.value]
            if self.rule_field == "src_ports":
                first["dst_ports"] = []
        elif self.rule_field:
            first[self.rule_field] = self.value
        return [first, second_rule(direction)]


def hostile_plan(params, platform):
    """A plan for a rule case: the base plan with the rules option in place of rtr01's forward rules."""
    plan = copy.deepcopy(_base_plan(platform))
    plan["perimeter"]["rtr01"]["forward"] = params.rules("forward")
    return plan


_PLANS = {}


def _base_plan(platform):
    if platform not in _PLANS:
        _PLANS[platform] = planner.plan(*inventory(platform=platform))
    return _PLANS[platform]


def params_plan(params, platform):
    """(plan, outcome): the plan the backend takes for this case; outcome set when the planner refused."""
    if params.kind == "inv":
        try:
            return params.plan(platform), None
        except Exception as exc:  # pylint: disable=broad-except
            return None, classify_exception(params.case, params.value, exc)
    if params.kind == "rule":
        return hostile_plan(params, platform), None
    return copy.deepcopy(_base_plan(platform)), None


# ---------------------------------------------------------------------------
# Backend: the plan itself (flows.json)
# ---------------------------------------------------------------------------
def run_planner(params):
    plan, outcome = params_plan(params, "nftables")
    if outcome:
        return outcome
    problems = []
    if json.loads(json.dumps(plan)) != plan:
        problems.append("the plan does not survive a JSON round trip")
    if SCHEMA is not None:
        errors = sorted(SCHEMA.iter_errors(json.loads(json.dumps(plan))), key=lambda e: list(e.path))
        if errors:
            problems.append("flows.schema.json refuses the plan: %s at %s" % (
                errors[0].message, "/".join(map(str, errors[0].path))))
    what, value = params.what, params.value
    if what == "zone":
        if value not in plan["settings"]["nap_zones"] or value not in plan["perimeter"][params.device]["zones"]:
            problems.append("zone %r is not kept as given in the plan (zones %s)"
                            % (value, list(plan["settings"]["nap_zones"])))
    elif what == "host":
        if value not in plan["hosts"]:
            problems.append("host %r is not kept as given (hosts %s)" % (value, list(plan["hosts"])))
    elif what == "device":
        if value not in plan["perimeter"]:
            problems.append("device %r is not kept as given (perimeter %s)" % (value, list(plan["perimeter"])))
    elif what in ("rpc_global", "rpc_host"):
        want = ascii_range(value)
        have = plan["hosts"]["nps01"]["rpc_dynamic_range"]
        if want is None or have != want:
            problems.append("nap_rpc_dynamic_range %r was accepted as %r (ASCII digits say %r)" % (value, have, want))
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


# ---------------------------------------------------------------------------
# Backend: the report (flows.csv, flows.md, topology.mmd)
# ---------------------------------------------------------------------------
_MERMAID_LINE = re.compile(
    r'\A(?:flowchart LR'
    r'|    subgraph n_\w+\["[^"\r\n]*"\]'
    r'|(?:    |        )n_\w+\["[^"\r\n]*"\]'
    r'|    end'
    r'|    n_\w+\{\{"[^"\r\n]*"\}\}'
    r'|    n_\w+ --- n_\w+'
    r'|    n_\w+ -->\|"[^"\r\n]*"\| n_\w+)\Z')


def _unescaped_pipes(line):
    """Table cell separators: pipes after an even number of backslashes."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def run_report(params):
    plan, outcome = params_plan(params, "nftables")
    if outcome:
        return outcome
    benign = Params(params.case, params.case.benign_for(params.value)).plan("nftables")
    try:
        files, ref = report.render_all(plan), report.render_all(benign)
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(params.case, params.value, exc)
    problems = []
    rows = list(csv.reader(io.StringIO(files["flows.csv"])))
    if rows[0] != list(report.CSV_COLUMNS) or len(rows) != len(plan["flows"]) + 1:
        problems.append("flows.csv: %d rows for %d flows" % (len(rows) - 1, len(plan["flows"])))
    else:
        for row, flow in zip(rows[1:], plan["flows"]):
            for col in ("src_host", "dst_host", "src_zone", "dst_zone", "perimeter"):
                want = flow.get(col)
                want = " ".join(map(str, want)) if isinstance(want, list) else ("" if want is None else str(want))
                if row[report.CSV_COLUMNS.index(col)] != want:
                    problems.append("flows.csv: column %s reads back %r, not %r" % (
                        col, row[report.CSV_COLUMNS.index(col)], want))
                    break
    md, md_ref = files["flows.md"].splitlines(), ref["flows.md"].splitlines()
    if len(md) != len(md_ref):
        problems.append("flows.md: %d lines, %d with a benign value" % (len(md), len(md_ref)))
    else:
        for i, (line, line_ref) in enumerate(zip(md, md_ref)):
            if line[:1] != line_ref[:1] or _unescaped_pipes(line) != _unescaped_pipes(line_ref) or \
                    line.startswith("#") != line_ref.startswith("#"):
                problems.append("flows.md line %d changed shape: %r" % (i + 1, _short(line, 120)))
                break
    mm, mm_ref = files["topology.mmd"].splitlines(), ref["topology.mmd"].splitlines()
    if len(mm) != len(mm_ref):
        problems.append("topology.mmd: %d lines, %d with a benign value" % (len(mm), len(mm_ref)))
    bad = [line for line in mm if not _MERMAID_LINE.match(line)]
    if bad:
        problems.append("topology.mmd: a line that is no Mermaid statement of the report: %r" % _short(bad[0], 120))
    ids = set(re.findall(r"\bn_\w+", files["topology.mmd"]))
    ids_ref = set(re.findall(r"\bn_\w+", ref["topology.mmd"]))
    if len(ids) != len(ids_ref):
        problems.append("topology.mmd: %d node ids, %d with a benign value (two names made one id)"
                        % (len(ids), len(ids_ref)))
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


# ---------------------------------------------------------------------------
# Backend: Windows (state: rendered of the real win_nap_firewall action plugin)
# ---------------------------------------------------------------------------
def win_args(params):
    """(action args, inventory_hostname, plan or None) for the Windows runs."""
    args = {"state": "rendered", "group": params.opts["group"], "name_prefix": params.opts["name_prefix"]}
    if params.kind == "inv":
        return None
    if params.kind == "opt" and params.what == "win_host":
        args["host"] = params.value
    args["rules"] = params.rules("in")[:1] + [second_rule("out")]
    return args, args.get("host") or "nps01"


def run_win_action(args, hostname):
    from ansible.playbook.play_context import PlayContext
    from ansible.playbook.task import Task
    from ansible_collections.configmgr.nap.plugins.action.win_nap_firewall import ActionModule

    task = Task()
    task.action = "configmgr.nap.win_nap_firewall"
    task.args = args
    task.check_mode = False
    task.diff = False
    action = ActionModule(task, MagicMock(), PlayContext(), loader=MagicMock(), templar=MagicMock(),
                          shared_loader_obj=MagicMock())

    def no_remote(**_kw):
        raise AssertionError("state: rendered contacted the host")

    action._execute_module = no_remote
    return action.run(task_vars={"inventory_hostname": hostname})


def win_render(params):
    """(rendered dict, wanted model rules, group, prefix) or an Outcome (refused / through)."""
    case, value = params.case, params.value
    if params.kind == "inv":
        plan, outcome = params_plan(params, "nftables")
        if outcome:
            return outcome
        hostname = params.windows_host
        args = {"state": "rendered", "plan": plan, "host": hostname, "group": windows.DEFAULT_GROUP,
                "name_prefix": windows.DEFAULT_PREFIX}
    else:
        args, hostname = win_args(params)
    try:
        result = run_win_action(copy.deepcopy(args), hostname)
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(case, value, exc)
    if result.get("failed"):
        return refusal(case, value, str(result.get("msg")))
    try:
        if "plan" in args:
            items = windows.rules_from_plan(args["plan"], args["host"])
        else:
            items = args["rules"]
        rules = windows.rules_from_input(items)
    except Exception as exc:  # pylint: disable=broad-except
        return Outcome(THROUGH, "the action rendered rules that the backend then refuses: %s" % exc)
    # rendered scripts come back as a list of lines per form: check them as the file an admin saves
    # (the .cmd with CRLF line ends, as cmd reads it)
    scripts = dict((form, (("\r\n" if form == "netsh" else "\n").join(lines) + ("\r\n" if form == "netsh" else "\n"))
                    if isinstance(lines, list) else lines)
                   for form, lines in result["rendered"].items())
    return scripts, rules, args["group"], args["name_prefix"]


def win_benign(params):
    ref = win_render(Params(params.case, params.case.benign_for(params.value)))
    if isinstance(ref, Outcome):
        raise AssertionError("the benign value %r is not rendered: %s" % (params.case.benign, ref))
    return ref


def _expected_model(rules, prefix):
    return [r.to_dict() for r in windows.full_rules(rules, prefix)]


# -- PowerShell ----------------------------------------------------------------
PS_SINGLE_QUOTES = u"'\u2018\u2019\u201a\u201b"


def ps_literal_end(text):
    """Length of the single-quoted literal at the start of ``text`` by PowerShell's rules, or None.

    PowerShell takes ' and U+2018, U+2019, U+201A, U+201B as single quotes; two in a row are one quote
    character inside the literal (the second one is kept).
    """
    if not text or text[0] not in PS_SINGLE_QUOTES:
        return None
    i = 1
    while i < len(text):
        if text[i] in PS_SINGLE_QUOTES:
            if i + 1 < len(text) and text[i + 1] in PS_SINGLE_QUOTES:
                i += 2
                continue
            return i + 1
        i += 1
    return None


def ps_unquote(literal):
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        if body[i] in PS_SINGLE_QUOTES and i + 1 < len(body) and body[i + 1] in PS_SINGLE_QUOTES:
            out.append(body[i + 1])
            i += 2
            continue
        out.append(body[i])
        i += 1
    return "".join(out)


# A double-quoted literal as windows_render.ps_text writes it: printable ASCII, a backtick only before ` $ or ",
# and no expansion but $([char]0xNNNN) (about_Quoting_Rules, https://learn.microsoft.com/en-us/powershell/module/
# microsoft.powershell.core/about/about_quoting_rules: `n, `0, `a ... are control characters, $x and $(...) run code).
PS_DOUBLE_QUOTED = re.compile(r'\A"(?:[\x20\x21\x23\x25-\x5F\x61-\x7E]|`[`$"]|\$\(\[char\]0x[0-9A-F]{4}\))*"\Z')
PS_DOUBLE_QUOTES = u'"\u201c\u201d\u201e'
DATA_START = "# ---- data: the owned rule set and the management rule the guard requires"
DATA_END = "# ---- steps"


def ps_double_quoted(literal):
    """(value, problem) of a double-quoted literal of the data block, decoded by render_interpreter.ps_value."""
    if not PS_DOUBLE_QUOTED.match(literal):
        return None, ("the double-quoted literal %r holds an expansion other than $([char]0xNNNN), an escape other "
                      "than `` `$ `\", or a character outside printable ASCII" % _short(literal, 80))
    try:
        value, rest = render_interpreter.ps_value(literal)
    except (AssertionError, ValueError, IndexError, UnicodeDecodeError) as exc:
        return None, "the double-quoted literal %r does not decode: %s" % (_short(literal, 80), _short(exc, 80))
    if rest:
        return None, "the double-quoted literal %r ends before %r" % (_short(literal, 80), _short(rest, 40))
    return value, ""


class PsTree:
    """The tree-sitter tree of a script: errors, structure (contents elided), literals, commands.

    Single- and double-quoted strings are leaves; the double-quoted ones are kept with their byte offset, so
    that those of the data block (values) and those of the templates (fixed text) are checked apart."""

    def __init__(self, text):
        self.text = text
        self.data = text.encode("utf-8")
        self.tree = PS_PARSER.parse(self.data)
        self.errors, self.shape, self.literals, self.comments, self.commands = [], [], [], [], []
        self.expandables = []   # (start byte, text) of each double-quoted string
        self.spans = []
        self._walk(self.tree.root_node, 0)

    def data_block(self):
        """(start, end) byte offsets of the rendered data block (values), or None when it is not there once."""
        lines = self.text.split("\n")
        if lines.count(DATA_START) != 1 or lines.count(DATA_END) != 1:
            return None
        start = self.text.index("\n" + DATA_START + "\n")
        end = self.text.index("\n" + DATA_END + "\n")
        return (len(self.text[:start].encode("utf-8")), len(self.text[:end].encode("utf-8"))) if start < end else None

    def outside_literals(self):
        """The script with every string literal emptied (its line breaks are characters of the value)."""
        out, last = [], 0
        for start, end in sorted(self.spans):
            out.append(self.data[last:start] + b"''")
            last = end
        out.append(self.data[last:])
        return b"".join(out).decode("utf-8")

    def node_text(self, node):
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def _walk(self, node, depth):
        if node.type == "ERROR" or node.is_missing:
            self.errors.append("%s at line %d: %r" % ("missing " + node.type if node.is_missing else "syntax error",
                                                      node.start_point[0] + 1, _short(self.node_text(node), 60)))
        if node.type == "string_literal" and self.node_text(node)[:1] in PS_SINGLE_QUOTES:
            self.shape.append((depth, "string_literal"))
            self.literals.append(self.node_text(node))
            self.spans.append((node.start_byte, node.end_byte))
            return
        if node.type == "string_literal" and self.node_text(node)[:1] in PS_DOUBLE_QUOTES:
            # one value like a single-quoted literal (ps_text quotes non-ASCII text so): the same node of the shape
            self.shape.append((depth, "string_literal"))
            self.expandables.append((node.start_byte, self.node_text(node)))
            self.spans.append((node.start_byte, node.end_byte))
            return
        if node.type == "comment":
            self.shape.append((depth, "comment"))
            self.comments.append(self.node_text(node))
            return
        leaf = node.child_count == 0
        self.shape.append((depth, node.type, self.node_text(node) if leaf and node.type not in (
            "verbatim_string_characters",) else None))
        if node.type == "command":
            self.commands.append(node)
        for child in node.children:
            self._walk(child, depth + 1)

    def arguments(self, command):
        """(name, [(parameter, value)]) of a command: literals unquoted, integers as int, the rest as text."""
        name, args, current = None, [], None
        for child in command.children:
            if child.type == "command_name":
                name = self.node_text(child)
            elif child.type == "command_elements":
                for element in child.children:
                    if element.type == "command_parameter":
                        current = self.node_text(element)
                        args.append([current, []])
                    elif element.type != "command_argument_sep" and args:
                        args[-1][1].extend(self._values(element))
        return name, [(p, v[0] if len(v) == 1 else v) for p, v in args]

    def _values(self, node):
        if node.type == "string_literal" and self.node_text(node)[:1] in PS_DOUBLE_QUOTES:
            return [ps_double_quoted(self.node_text(node))[0]]
        if node.type == "string_literal":
            return [ps_unquote(self.node_text(node))]
        if node.type == "decimal_integer_literal":
            return [int(self.node_text(node))]
        if node.type in ("generic_token", "variable"):
            return [self.node_text(node)]
        out = []
        for child in node.children:
            if child.type != ",":
                out.extend(self._values(child))
        return out


def _ps_problems(label, text, ref_text):
    bad = re.search(u"[^\x20-\x7e\n]", text)
    if bad:
        return ["%s: the character U+%04X reaches the script raw at offset %d (rendered scripts are ASCII only: "
                "PowerShell 2.0 and 5.1 read a .ps1 without a BOM in the ANSI code page)" % (
                    label, ord(bad.group(0)), bad.start())]
    tree, ref = PsTree(text), PsTree(ref_text)
    if tree.errors:
        return ["%s: tree-sitter: %s" % (label, tree.errors[0])]
    code, ref_code = tree.outside_literals(), ref.outside_literals()
    if len(code.splitlines()) != len(ref_code.splitlines()) or code.count("\n") != ref_code.count("\n"):
        return ["%s: outside its string literals the script has %d lines (str.splitlines), %d with a benign value"
                % (label, len(code.splitlines()), len(ref_code.splitlines()))]
    if tree.shape != ref.shape:
        for i, (a, b) in enumerate(zip(tree.shape, ref.shape)):
            if a != b:
                return ["%s: the tree differs from the benign one at node %d: %r instead of %r" % (label, i, a, b)]
        return ["%s: the tree has %d nodes, %d with a benign value" % (label, len(tree.shape), len(ref.shape))]
    for literal in tree.literals:
        if ps_literal_end(literal) != len(literal):
            return ["%s: PowerShell ends the literal %r elsewhere than tree-sitter does (a single quote character "
                    "that is not doubled)" % (label, _short(literal, 80))]
    block = tree.data_block()
    if block is None:
        return ["%s: the data block (%r ... %r) is not there exactly once" % (label, DATA_START, DATA_END)]
    for start, literal in tree.expandables:
        problem = ps_double_quoted(literal)[1] if block[0] <= start < block[1] else ""
        if problem:
            return ["%s: %s" % (label, problem)]
    # the templates' own double-quoted strings (with $name expansions) are fixed text
    ref_block = ref.data_block()
    fixed = [literal for start, literal in tree.expandables if not block[0] <= start < block[1]]
    ref_fixed = [literal for start, literal in ref.expandables if not ref_block[0] <= start < ref_block[1]]
    if fixed != ref_fixed:
        return ["%s: the double-quoted strings outside the data block are %s, not the templates' %s" % (
            label, _short(fixed, 150), _short(ref_fixed, 150))]
    for comment in tree.comments:
        if len(comment.splitlines()) > 1 or re.search(u"[\r\n]", comment):
            return ["%s: a line break inside the comment %r" % (label, _short(comment, 80))]
    return _template_problems(label, text)


def _template_problems(label, text):
    """The steps after the data block and the shared part before it are exactly the templates."""
    lines = text.split("\n")
    start, end = lines.index(DATA_START), lines.index(DATA_END)
    steps = windows_render._template("render_%s.ps1" % label)
    common = windows_render._template("render_common.ps1")
    if lines[end + 1:] != steps + [""]:
        return ["%s: the lines after %r are not render_%s.ps1" % (label, DATA_END, label)]
    if lines[start - len(common):start] != common:
        return ["%s: the lines before the data block are not render_common.ps1" % label]
    for line in lines[start + 1:end]:
        if not re.match(r"\A(?:\$(?:group|namePrefix|managementPort|managementSources|guardRules|guardProblem) = "
                        r"|Add-NapRule -Name )", line):
            return ["%s: the data block holds a line that is no assignment of the renderer nor Add-NapRule: %r"
                    % (label, _short(line, 100))]
    return []


def _assigned_problems(label, text, variable, value):
    """``$variable = <literal>`` is there once and its literal reads back as ``value``."""
    starts = [m.end() for m in re.finditer(r"(?m)^\$%s = " % re.escape(variable), text)]
    if len(starts) != 1:
        return ["%s: $%s is assigned %d times" % (label, variable, len(starts))]
    rest = text[starts[0]:]
    if rest[:1] == '"':
        end = rest.find("\n")
        have, problem = ps_double_quoted(rest[:end])
        if problem:
            return ["%s: $%s: %s" % (label, variable, problem)]
    else:
        end = ps_literal_end(rest)
        have = ps_unquote(rest[:end]) if end is not None else None
    if have != value or rest[end:end + 1] not in ("\n", ""):
        return ["%s: $%s is not assigned %r" % (label, variable, value)]
    return []


def _add_nap_rules(label, text, group, prefix, rules):
    """The Add-NapRule calls of a PowerShell script (COM or NetSecurity: the same data block), read back with
    tree-sitter like the module reads a host (fw_to_rule), and again with render_interpreter.parse_powershell."""
    tree = PsTree(text)
    problems = _assigned_problems(label, text, "group", group) + _assigned_problems(label, text, "namePrefix", prefix)
    have, names = [], []
    for command in tree.commands:
        name, args = tree.arguments(command)
        if name != "Add-NapRule":
            continue
        values = dict(args)
        names.append(values.get("-Name"))
        if len(values) != len(args) or set(values) != set(
                "-Name -Description -Direction -Protocol -LocalPorts -RemotePorts -LocalAddresses -RemoteAddresses "
                "-Profiles".split()):
            problems.append("%s: Add-NapRule %r has other parameters than the renderer writes: %s" % (
                label, values.get("-Name"), [p for p, _v in args]))
        fw = {"Name": values.get("-Name"), "Description": values.get("-Description"), "Grouping": group,
              "Direction": values.get("-Direction"), "Action": windows.ACTION_ALLOW, "Protocol": values.get("-Protocol"),
              "LocalPorts": values.get("-LocalPorts"), "RemotePorts": values.get("-RemotePorts"),
              "LocalAddresses": values.get("-LocalAddresses"), "RemoteAddresses": values.get("-RemoteAddresses"),
              "Profiles": values.get("-Profiles"), "Enabled": True}
        have.append(windows.fw_to_rule(fw, prefix).to_dict())
    want = _expected_model(rules, prefix)
    if have != want:
        problems.append("%s: Add-NapRule: %s" % (label, rules_diff(have, want)))
    try:
        data = render_interpreter.parse_powershell(text)
    except (AssertionError, ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
        return problems + ["%s: render_interpreter cannot read the script: %s" % (label, _short(exc, 120))]
    if (data.form, data.group, data.prefix) != (label, group, prefix) or [w["Name"] for w in data.wanted] != names:
        problems.append("%s: render_interpreter reads form %r, group %r, prefix %r and rules %s, tree-sitter %r, %r, "
                        "%r and %s" % (label, data.form, data.group, data.prefix,
                                       _short([w["Name"] for w in data.wanted], 120), label, group, prefix,
                                       _short(names, 120)))
    return problems


def _netsecurity_rules(text, group, prefix, rules):
    """The NetSecurity script's Add-NapRule calls (its steps are render_netsecurity.ps1, checked as such)."""
    return _add_nap_rules("netsecurity", text, group, prefix, rules)


def _com_rules(text, group, prefix, rules):
    """The COM script's Add-NapRule calls (its steps are render_com.ps1, checked as such)."""
    return _add_nap_rules("com", text, group, prefix, rules)


def run_powershell(params):
    if PS_PARSER is None:
        pytest.skip(NO_TREE_SITTER)
    got = win_render(params)
    if isinstance(got, Outcome):
        return got
    rendered, rules, group, prefix = got
    ref = win_benign(params)[0]
    problems = []
    for label in ("com", "netsecurity"):
        problems += _ps_problems(label, rendered[label], ref[label])
    if not problems:
        problems += _com_rules(rendered["com"], group, prefix, rules)
        problems += _netsecurity_rules(rendered["netsecurity"], group, prefix, rules)
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


# -- netsh ---------------------------------------------------------------------
CMD_META = re.compile(r"[&|<>^%]")
NETSH_KEYS = ("name", "dir", "action", "protocol", "localport", "remoteport", "localip", "remoteip", "profile",
              "enable", "description")
_UNQUOTED_VALUE = re.compile(r"\A[A-Za-z0-9.,:/*-]+\Z")


def cmd_tokens(line):
    """Tokens of a cmd line split at spaces outside double quotes; None when a quote is left open."""
    tokens, current, quoted = [], "", False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == " " and not quoted:
            if current:
                tokens.append(current)
            current = ""
            continue
        current += char
    if quoted:
        return None
    if current:
        tokens.append(current)
    return tokens


def _outside_quotes(token):
    return re.sub(r'"[^"]*"', "", token)


def _quoted_parts(token):
    return re.findall(r'"([^"]*)"', token)


def _cmd_value(text):
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1].replace("%%", "%")
    return text


def _netsh_arg_problems(i, tokens, what):
    """Why the ``key=value`` arguments of an add or set-new argument list are not what the renderer writes."""
    seen = set()
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or key not in NETSH_KEYS or key in seen:
            return ["line %d: unexpected netsh argument %r in the %s" % (i, _short(token, 80), what)]
        seen.add(key)
        if CMD_META.search(_outside_quotes(token)):
            return ["line %d: a cmd metacharacter outside quotes in %r" % (i, _short(token, 80))]
        for part in _quoted_parts(token):
            if "%" in part.replace("%%", ""):
                return ["line %d: a single %% inside quotes in %r (cmd expands it)" % (i, _short(token, 80))]
        if not (value.startswith('"') and value.endswith('"') and len(value) >= 2 and '"' not in value[1:-1]) \
                and not _UNQUOTED_VALUE.match(value):
            return ["line %d: the value of %s is neither quoted nor a plain value: %r" % (i, key, _short(value, 80))]
    if not tokens or not tokens[0].startswith("name="):
        return ["line %d: the %s does not start with name=" % (i, what)]
    return []


# The lines of the .cmd that carry no value (windows_render.render_netsh): exactly these.
NETSH_FIXED = (
    r"@echo off", r"setlocal", r"net session >nul 2>&1", r"set NAP_FAILED=0", r"if errorlevel 1 set /a NAP_FAILED\+=1",
    r"exit /b 0", r"if errorlevel 1 \(echo configmgr\.nap: [A-Za-z ,;.]+& exit /b 3\)",
    r'if not "%NAP_FAILED%"=="0" \(echo configmgr\.nap: %NAP_FAILED% rule command\[s\] failed; [A-Za-z ,;.]+& exit /b 1\)',
    r"echo configmgr\.nap: \d+ rule\(s\) added or updated, nothing deleted",
)
NETSH_SHOW = re.compile(r'\Anetsh advfirewall firewall show rule (name="[^"]*") >nul 2>&1\Z')
# the if/else line with its quoted values emptied: nothing but the structure and plain values outside quotes
_NETSH_IFELSE_SHAPE = re.compile(r'\Aif errorlevel 1 \(netsh advfirewall firewall add rule(?: [A-Za-z0-9.,:/*=-]+)+\) '
                                 r'else \(netsh advfirewall firewall set rule name= new(?: [A-Za-z0-9.,:/*=-]+)+\)\Z')


def _netsh_line_problems(i, line):
    """Why this line of the .cmd is not exactly one the renderer means to write (or []): a fixed line, a rem
    line, ``netsh ... show rule name=...``, or render_interpreter._IFELSE (add rule ... else set rule ... new ...).
    A delete line is none of these: the file deletes nothing."""
    if line == "" or any(re.match(r"\A%s\Z" % pattern, line) for pattern in NETSH_FIXED):
        return []
    if line.startswith("rem ") or line == "rem":
        if "%" in line.replace("%%", ""):
            return ["line %d: a single %% in a rem line (cmd expands %%...%% even there): %r" % (i, _short(line, 100))]
        if line.endswith("^"):
            return ["line %d: a rem line ending in ^ continues onto the next line: %r" % (i, _short(line, 100))]
        return []
    tokens = cmd_tokens(line)
    if tokens is None:
        return ["line %d: a double quote is left open: %r" % (i, _short(line, 100))]
    if tokens[3:5] == ["delete", "rule"]:
        return ["line %d: a delete command (the netsh file deletes nothing): %r" % (i, _short(line, 100))]
    match = NETSH_SHOW.match(line)
    if match:
        return _netsh_arg_problems(i, [match.group(1)], "show rule")
    match = render_interpreter._IFELSE.match(line)
    if not match:
        return ["line %d: not a line the netsh file is made of (fixed, rem, show rule, add/set rule): %r"
                % (i, _short(line, 100))]
    if not _NETSH_IFELSE_SHAPE.match(_outside_quotes(line)):
        return ["line %d: outside its quoted values the if/else line is not add rule ... else set rule ... new ...: %r"
                % (i, _short(_outside_quotes(line), 100))]
    add, new = cmd_tokens(match.group(1)), cmd_tokens(match.group(3))
    if add is None or new is None:
        return ["line %d: a double quote is left open in the add or set arguments: %r" % (i, _short(line, 100))]
    return (_netsh_arg_problems(i, ["name=" + match.group(2)], "set rule selector") or
            _netsh_arg_problems(i, add, "add rule arguments") or _netsh_arg_problems(i, new, "set rule new arguments"))


_NETSH_PROTOCOLS = {"tcp": 6, "udp": 17, "icmpv4": 1}


def _netsh_fw(args, update):
    """INetFwRule-like properties of netsh arguments (``update``: set rule ... new, where any means any)."""
    profile = args.get("profile")

    def value(key, default):
        got = args.get(key, default)
        return default if update and got == "any" else got

    return {"Name": args.get("name"), "Description": args.get("description", ""),
            "Direction": {"in": windows.DIR_IN, "out": windows.DIR_OUT}.get(args.get("dir")),
            "Action": windows.ACTION_ALLOW if args.get("action") == "allow" else None,
            "Protocol": _NETSH_PROTOCOLS.get(args.get("protocol"), args.get("protocol")),
            "LocalPorts": value("localport", None), "RemotePorts": value("remoteport", None),
            "LocalAddresses": value("localip", "*"), "RemoteAddresses": value("remoteip", "*"),
            "Profiles": windows.PROFILES_ALL if profile == "any" else windows.profiles_mask(profile),
            "Enabled": args.get("enable") == "yes"}


def _netsh_rules(text, prefix, rules):
    """Each rule's show / add / set-new commands read back (fw_to_rule) to the planned rule, by the same name."""
    added, updated, shown, selected, problems = [], [], [], [], []
    for line in text.split("\r\n"):
        if (cmd_tokens(line) or [])[3:5] == ["delete", "rule"]:
            problems.append("netsh: a delete command: %r" % _short(line, 100))
        match = NETSH_SHOW.match(line)
        if match:
            shown.append(_cmd_value(match.group(1).partition("=")[2]))
        match = render_interpreter._IFELSE.match(line)
        if not match:
            continue
        selected.append(_cmd_value(match.group(2)))
        for group, out, update in ((1, added, False), (3, updated, True)):
            args = dict((t.partition("=")[0], _cmd_value(t.partition("=")[2])) for t in cmd_tokens(match.group(group)))
            out.append(windows.fw_to_rule(_netsh_fw(args, update), prefix).to_dict())
    want = _expected_model(rules, prefix)
    if added != want:
        problems.append("netsh: add rule: %s" % rules_diff(added, want))
    if updated != want:
        problems.append("netsh: set rule ... new: %s" % rules_diff(updated, want))
    names = [w["name"] for w in want]     # full_rules: the Windows names
    if shown != names or selected != names:
        problems.append("netsh: show rule names %r and set rule selects %r, not %r" % (shown, selected, names))
    return problems


NETSH_REFUSED_HEAD = "rem configmgr.nap win_nap_firewall, state: rendered (netsh advfirewall): REFUSED"


def _netsh_refusal(params, text, rules, group, prefix):
    """The .cmd that windows_render.netsh_refusal writes for names or descriptions outside ASCII: exactly its five
    lines, the message free of cmd metacharacters, and the renderer's own refusal of these rules (the PowerShell
    forms carry them).  Clear when the message names the variable, or the rule that carries the value."""
    lines = text.split("\r\n")
    message = lines[2][len("rem "):] if len(lines) > 2 and lines[2].startswith("rem ") else None
    if message is None or lines != ["@echo off", NETSH_REFUSED_HEAD, "rem " + message,
                                    "echo configmgr.nap: netsh file not rendered: " + message, "exit /b 1", ""]:
        return Outcome(THROUGH, "netsh: a refusal file that is not the five lines of netsh_refusal: %r" % _short(text, 200))
    if re.search(r'[^\x20-\x7e]|[<>|&^%()"]', message):
        return Outcome(THROUGH, "netsh: the refusal message holds a cmd metacharacter or a character outside printable "
                       "ASCII: %r" % _short(message, 120))
    try:
        windows_render.render_netsh(rules, group, prefix)
        return Outcome(THROUGH, "netsh: refused although the rules render as a netsh file")
    except NapError as exc:
        if not str(exc).startswith(windows_render.NETSH_ASCII_REFUSAL):
            return Outcome(THROUGH, "netsh: refused although render_netsh says %s" % _short(exc, 120))
        own = re.sub(r'[<>|&^%()"]', "_", windows_render.ascii_comment(str(exc)[len(windows_render.NETSH_ASCII_REFUSAL):]))
    if message != own:
        return Outcome(THROUGH, "netsh: the refusal says %r, render_netsh %r" % (_short(message, 100), _short(own, 100)))
    outcome = refusal(params.case, params.value, message)
    # render_netsh names the rule and its Windows field (the description carries flow id and source)
    if outcome.kind == UNCLEAR and re.match(r"rule .+: the (name|description) holds U\+[0-9A-F]{4,}, which the netsh "
                                            r"\.cmd file cannot carry", message):
        outcome = Outcome(REFUSED, message)
    return outcome


def run_netsh(params):
    got = win_render(params)
    if isinstance(got, Outcome):
        return got
    rendered, rules, group, prefix = got
    text, ref = rendered["netsh"], win_benign(params)[0]["netsh"]
    if text.split("\r\n")[1:2] == [NETSH_REFUSED_HEAD]:
        return _netsh_refusal(params, text, rules, group, prefix)
    problems = []
    lines, ref_lines = text.split("\r\n"), ref.split("\r\n")
    if len(lines) != len(ref_lines) or len(text.splitlines()) != len(ref.splitlines()):
        problems.append("netsh: %d CRLF lines and %d by str.splitlines, %d and %d with a benign value" % (
            len(lines), len(text.splitlines()), len(ref_lines), len(ref.splitlines())))
    for i, line in enumerate(lines, 1):
        if "\n" in line or "\r" in line:
            problems.append("line %d: a bare line break %r" % (i, _short(line, 100)))
        elif re.search(u"[\x00-\x1f\x7f]", line):
            problems.append("line %d: a control character in %r (cmd may read ^Z as the end of the file, NUL "
                            "ends the line)" % (i, _short(line, 100)))
        elif re.search(u"[^\x00-\x7f]", line):
            problems.append("line %d: the character U+%04X reaches the .cmd raw (cmd reads a batch file in the OEM "
                            "code page): %r" % (i, ord(re.search(u"[^\x00-\x7f]", line).group(0)), _short(line, 100)))
        problems += _netsh_line_problems(i, line)
        if problems:
            break
    if not problems:
        for i, (line, ref_line) in enumerate(zip(lines, ref_lines), 1):
            shape = (line.split(" ", 1)[0], 0 if line.startswith("rem") else len(cmd_tokens(line) or []))
            ref_shape = (ref_line.split(" ", 1)[0], 0 if ref_line.startswith("rem") else len(cmd_tokens(ref_line) or []))
            if shape != ref_shape:
                problems.append("line %d: %r is not the command of the benign rendering %r" % (
                    i, _short(line, 100), _short(ref_line, 100)))
                break
    if not problems:
        problems += _netsh_rules(text, prefix, rules)
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


# ---------------------------------------------------------------------------
# Backend: Cisco ASA / IOS (the filters, then the resource modules' rendered and parsed states in process)
# ---------------------------------------------------------------------------
class VendorFail(Exception):
    pass


class _FakeHostileModule(object):
    def __init__(self, params):
        self.params = params
        self.check_mode = True

    def fail_json(self, **kwargs):
        raise VendorFail(kwargs.get("msg") or kwargs)


_TEMPLATES = {}


@contextlib.contextmanager
def fast_templates():
    """Compile each Jinja template of the network resource parsers once (they compile them on every line)."""
    from ansible_collections.ansible.netcommon.plugins.module_utils.network.common import utils as nc_utils

    original = nc_utils.Template.__init__

    def init(self):
        original(self)
        compile_ = self.env.from_string

        def cached(source, *args, **kwargs):
            if args or kwargs:
                return compile_(source, *args, **kwargs)
            template = _TEMPLATES.get(source)
            if template is None:
                template = _TEMPLATES[source] = compile_(source)
            return template

        self.env.from_string = cached

    nc_utils.Template.__init__ = init
    try:
        yield
    finally:
        nc_utils.Template.__init__ = original


def vendor_missing():
    try:
        # pylint: disable=unused-import
        import ansible_collections.cisco.asa.plugins.module_utils.network.asa.config.acls.acls  # noqa: F401
        import ansible_collections.cisco.ios.plugins.module_utils.network.ios.config.acls.acls  # noqa: F401
        return None
    except ImportError:
        pass
    sys.path.insert(0, BACKENDS_DIR)
    try:
        from vendor_collections import MISSING, vendor_path  # pylint: disable=import-error
    finally:
        sys.path.remove(BACKENDS_DIR)
    path = vendor_path()
    if path is None:
        return MISSING
    sys.path.append(path)
    return None


def _vendor(resource):
    if resource == "asa_ogs":
        from ansible_collections.cisco.asa.plugins.module_utils.network.asa.argspec.ogs.ogs import OGsArgs
        from ansible_collections.cisco.asa.plugins.module_utils.network.asa.config.ogs.ogs import OGs
        return OGs, OGsArgs.argument_spec
    if resource == "asa_acls":
        from ansible_collections.cisco.asa.plugins.module_utils.network.asa.argspec.acls.acls import AclsArgs
        from ansible_collections.cisco.asa.plugins.module_utils.network.asa.config.acls.acls import Acls
        return Acls, AclsArgs.argument_spec
    if resource == "ios_acls":
        from ansible_collections.cisco.ios.plugins.module_utils.network.ios.argspec.acls.acls import AclsArgs
        from ansible_collections.cisco.ios.plugins.module_utils.network.ios.config.acls.acls import Acls
        return Acls, AclsArgs.argument_spec
    from ansible_collections.cisco.ios.plugins.module_utils.network.ios.argspec.acl_interfaces.acl_interfaces import (
        Acl_interfacesArgs)
    from ansible_collections.cisco.ios.plugins.module_utils.network.ios.config.acl_interfaces.acl_interfaces import (
        Acl_interfaces)
    return Acl_interfaces, Acl_interfacesArgs.argument_spec


def vendor_run(resource, state, config=None, running=None):
    """The resource module's result for ``rendered`` (config) or ``parsed`` (running), without a device."""
    from ansible_collections.ansible.netcommon.plugins.module_utils.network.common.utils import validate_config
    cls, spec = _vendor(resource)
    try:
        params = validate_config(spec, {"config": config, "state": state, "running_config": running})
    except Exception as exc:  # pylint: disable=broad-except
        raise VendorFail("argument validation: %s" % exc)
    with fast_templates():
        return cls(_FakeHostileModule(params)).execute_module()[state]


def as_running(resource, commands):
    """Rendered commands -> the running configuration (sub-commands indented, as the device shows them)."""
    top = {"asa_ogs": ("object-group ",), "asa_acls": ("access-list ",), "ios_acls": ("ip ", "ipv6 "),
           "ios_acl_interfaces": ("interface ",)}[resource]
    return "\n".join(c if c.startswith(top) else " " + c for c in commands) + "\n"


def _line_problems(resource, commands, want):
    """Each command must be one line that starts with its command and names the expected object."""
    for command in commands:
        if not isinstance(command, str):
            return ["%s: a command is %r, not text" % (resource, command)]
        if len(command.splitlines()) != 1 or "\n" in command or "\r" in command:
            return ["%s: a command holds a line break: %r" % (resource, _short(command, 120))]
        if "?" in command:
            return ["%s: %r holds '?', which the IOS/ASA CLI takes as a help request (the device would not store "
                    "what was rendered)" % (resource, _short(command, 120))]
        if not any(re.match(pattern, command) for pattern in want):
            return ["%s: %r is not one of the commands the backend renders" % (resource, _short(command, 120))]
    return []


def _cmp_rules(label, have, want, limit, kind):
    """Parsed rules against planned ones: equal, but a description cut at the documented length."""
    have = dict((r.name, r.to_dict()) for r in have)
    want = dict((r.name, r.to_dict()) for r in want)
    if sorted(have) != sorted(want):
        return ["%s: the rules parse back as %s, not %s" % (label, sorted(have), sorted(want))]
    for name, rule in want.items():
        got = dict(have[name])
        for data in (got, rule):
            data.pop("source", None)
        full = ("%s%s (%s) %s" % (kind, rule["name"], rule["flow_id"], rule["description"])).strip()
        if len(full) > limit and rule["description"].startswith(got["description"]):
            got["description"] = rule["description"]
        if got != rule:
            diff = dict((k, (got.get(k), v)) for k, v in rule.items() if got.get(k) != v)
            return ["%s: rule %r parses back with %s (parsed, planned)" % (label, name, _short(diff, 300))]
    return []


def _cisco_inputs(params, platform):
    """(data, device) the filters take: a plan, or for rule cases the rules option (a list of rule dicts)."""
    if params.kind == "rule":
        return params.rules("forward"), None
    plan, outcome = params_plan(params, platform)
    if outcome:
        return outcome, None
    return plan, params.device


def _filters():
    from ansible_collections.configmgr.nap.plugins.filter import perimeter_vendors as pv
    return pv


def _forward_expected(data, device):
    entry = data if isinstance(data, list) else data["perimeter"][device]["forward"]
    return [model.Rule.from_dict(r) for r in entry]


def run_asa(params):
    missing = vendor_missing()
    if missing:
        pytest.skip(missing)
    case, value = params.case, params.value
    data, device = _cisco_inputs(params, "cisco_asa")
    if isinstance(data, Outcome):
        return data
    pv = _filters()
    acl, prefix = params.eff("acl_name"), params.opts["prefix"]
    try:
        ogs = pv.to_asa_ogs(data, device, params.opts["acl_name"], prefix)
        acls = pv.to_asa_acls(data, device, params.opts["acl_name"], prefix)
        want = _forward_expected(data, device)
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(case, value, exc)
    try:
        r_ogs = vendor_run("asa_ogs", "rendered", ogs)
        r_acls = vendor_run("asa_acls", "rendered", acls)
    except VendorFail as exc:
        return Outcome(UNCLEAR, "cisco.asa refused the configuration the filters made: %s" % _short(exc))
    except Exception as exc:  # pylint: disable=broad-except
        return Outcome(THROUGH, "cisco.asa rendered state raised %s: %s" % (type(exc).__name__, _short(exc)))
    names = set(g["name"] for block in ogs for g in block["object_groups"])
    problems = _line_problems("asa_ogs", r_ogs, [
        r"object-group (network|service) (?P<n>\S+)\Z", r"description \S", r"network-object (host )?\S+( \S+)?\Z",
        r"service-object (tcp|udp|esp|ah|gre|icmp)( |\Z)"])
    problems += _line_problems("asa_acls", r_acls, [r"access-list %s extended permit object-group " % re.escape(acl)])
    for command in r_ogs:
        match = re.match(r"object-group (network|service) (\S+)\Z", command)
        if match and match.group(2) not in names:
            problems.append("asa_ogs: %r names a group the configuration does not hold" % command)
    if problems:
        return Outcome(THROUGH, "; ".join(problems))
    try:
        p_ogs = vendor_run("asa_ogs", "parsed", running=as_running("asa_ogs", r_ogs))
        p_acls = vendor_run("asa_acls", "parsed", running=as_running("asa_acls", r_acls))
        parsed_names = set(g.get("name") for block in p_ogs or [] for g in block.get("object_groups") or [])
        acl_names = [a.get("name") for a in (p_acls or {}).get("acls") or []]
        if parsed_names != names:
            problems.append("asa_ogs parsed back as groups %s, not %s" % (sorted(map(str, parsed_names)), sorted(names)))
        if acl_names != [acl]:
            problems.append("asa_acls parsed back as ACLs %r, not [%r]" % (acl_names, acl))
        if not problems:
            have = cisco.asa_rules_from_parsed(p_acls, p_ogs, acl, prefix)
            problems += _cmp_rules("asa", have, want, cisco.DESCRIPTION_MAX, "")
    except Exception as exc:  # pylint: disable=broad-except
        problems.append("parsing back raised %s: %s" % (type(exc).__name__, _short(exc)))
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


def run_asa_block(params):
    missing = vendor_missing()
    if missing:
        pytest.skip(missing)
    case, value = params.case, params.value
    data, device = _cisco_inputs(params, "cisco_asa")
    if isinstance(data, Outcome):
        return data
    pv = _filters()
    block = params.opts["block_acl"]
    try:
        lines = pv.to_asa_acl_block(data, "", block, device, params.opts["acl_name"])
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(case, value, exc)
    want = _forward_expected(data, device)
    problems = _line_problems("asa_config", lines, [r"access-list %s line \d+ (remark|extended permit) "
                                                    % re.escape(block)])
    if problems:
        return Outcome(THROUGH, "; ".join(problems))
    running = "\n".join(re.sub(r"^(access-list \S+ )line \d+ ", r"\1", line) for line in lines) + "\n"
    try:
        again = pv.to_asa_acl_block(data, running, block, device, params.opts["acl_name"])
        if again:
            problems.append("the block does not read back from the running config: %s" % _short(again, 200))
        parsed = vendor_run("asa_acls", "parsed", running=running)
        acls = (parsed or {}).get("acls") or []
        if [a.get("name") for a in acls] != [block]:
            problems.append("the block parses back as ACLs %r, not [%r]" % ([a.get("name") for a in acls], block))
        else:
            aces = [a for a in acls[0].get("aces") or [] if a.get("grant")]
            if len(aces) != len(want):
                problems.append("the block parses back with %d entries for %d rules" % (len(aces), len(want)))
    except Exception as exc:  # pylint: disable=broad-except
        problems.append("parsing back raised %s: %s" % (type(exc).__name__, _short(exc)))
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


def run_ios(params):
    missing = vendor_missing()
    if missing:
        pytest.skip(missing)
    case, value = params.case, params.value
    data, device = _cisco_inputs(params, "cisco_ios")
    if isinstance(data, Outcome):
        return data
    pv = _filters()
    acl = params.eff("acl_name")
    try:
        config = pv.to_ios_acls(data, device, params.opts["acl_name"])
        want = _forward_expected(data, device)
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(case, value, exc)
    try:
        rendered = vendor_run("ios_acls", "rendered", config)
    except VendorFail as exc:
        return Outcome(UNCLEAR, "cisco.ios refused the configuration the filter made: %s" % _short(exc))
    except Exception as exc:  # pylint: disable=broad-except
        return Outcome(THROUGH, "cisco.ios rendered state raised %s: %s" % (type(exc).__name__, _short(exc)))
    problems = _line_problems("ios_acls", rendered, [
        r"ip access-list extended %s\Z" % re.escape(acl), r"ipv6 access-list %s\Z" % re.escape(acl),
        r"\d+ remark (FWD|IN|RET) \S", r"\d+ permit (tcp|udp|esp|ahp|gre|icmp|ipv6|ip) "])
    if problems:
        return Outcome(THROUGH, "; ".join(problems))
    try:
        parsed = vendor_run("ios_acls", "parsed", running=as_running("ios_acls", rendered))
        names = [(b.get("afi"), a.get("name")) for b in parsed or [] for a in b.get("acls") or []]
        if sorted(set(n for _afi, n in names), key=str) != [acl] or len(names) != len(config):
            problems.append("ios_acls parsed back as ACLs %r, not %r" % (names, acl))
        else:
            back = cisco.ios_rules_from_parsed(parsed, acl)
            problems += _cmp_rules("ios", back["forward"], want, cisco.REMARK_MAX, "FWD ")
            if not problems and not set(back["return"]) >= set(r.name for r in want):
                problems.append("ios: return entries of %s are missing" % sorted(
                    set(r.name for r in want) - set(back["return"])))
            if not problems and not isinstance(data, list):
                inbound = sorted(r["name"] for r in (data["hosts"].get(device) or {}).get("inbound") or [])
                if sorted(r.name for r in back["inbound"]) != inbound:
                    problems.append("ios: the router's inbound rules parse back as %s, not %s" % (
                        sorted(r.name for r in back["inbound"]), inbound))
    except Exception as exc:  # pylint: disable=broad-except
        problems.append("parsing back raised %s: %s" % (type(exc).__name__, _short(exc)))
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


def run_ios_interfaces(params):
    missing = vendor_missing()
    if missing:
        pytest.skip(missing)
    case, value = params.case, params.value
    pv = _filters()
    acl, interface = params.eff("acl_name"), params.opts["interface"]
    interfaces = [interface, "GigabitEthernet0/0"] if interface != "GigabitEthernet0/0" else [interface]
    plan = copy.deepcopy(_base_plan("cisco_ios"))
    try:
        config = pv.to_ios_acl_interfaces(plan, "rtr01", interfaces, params.opts["acl_name"])
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(case, value, exc)
    try:
        rendered = vendor_run("ios_acl_interfaces", "rendered", config)
    except VendorFail as exc:
        return Outcome(UNCLEAR, "cisco.ios refused the configuration the filter made: %s" % _short(exc))
    except Exception as exc:  # pylint: disable=broad-except
        return Outcome(THROUGH, "cisco.ios rendered state raised %s: %s" % (type(exc).__name__, _short(exc)))
    problems = _line_problems("ios_acl_interfaces", rendered, [
        r"interface \S+\Z", r"ip access-group %s in\Z" % re.escape(acl), r"ipv6 traffic-filter %s in\Z" % re.escape(acl)])
    heads = [c[len("interface "):] for c in rendered if c.startswith("interface ")]
    if not problems and heads != interfaces:
        problems.append("ios_acl_interfaces: the interfaces rendered are %r, not %r" % (heads, interfaces))
    if problems:
        return Outcome(THROUGH, "; ".join(problems))
    try:
        parsed = vendor_run("ios_acl_interfaces", "parsed", running=as_running("ios_acl_interfaces", rendered))
        got = sorted(((p.get("name"), p.get("access_groups")) for p in parsed or []), key=repr)
        want = sorted(((name, [{"afi": "ipv4", "acls": [{"name": acl, "direction": "in"}]}]) for name in interfaces),
                      key=repr)
        if got != want:
            problems.append("ios_acl_interfaces parsed back as %s, not %s" % (_short(got, 200), _short(want, 200)))
    except Exception as exc:  # pylint: disable=broad-except
        problems.append("parsing back raised %s: %s" % (type(exc).__name__, _short(exc)))
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


# ---------------------------------------------------------------------------
# Backend: Aerleon (nap_export in check mode for the files, the export's YAML read back)
# ---------------------------------------------------------------------------
def run_export_action(args):
    from ansible.playbook.play_context import PlayContext
    from ansible.playbook.task import Task
    from ansible_collections.configmgr.nap.plugins.action.nap_export import ActionModule

    task = Task()
    task.action = "configmgr.nap.nap_export"
    task.args = args
    task.check_mode = True
    task.diff = False
    action = ActionModule(task, MagicMock(), PlayContext(), loader=MagicMock(), templar=MagicMock(),
                          shared_loader_obj=MagicMock())
    return action.run(task_vars={"inventory_hostname": "localhost"})


def _aerleon_expected_targets(targets, filter_name, mixed):
    out = OrderedDict()
    for target in targets:
        key = str(target).strip().lower()
        options = aerleon.TARGET_OPTIONS.get(key, ("", ""))
        out[key] = "" if options is None else ("%s %s" % (filter_name, options[1] if mixed else options[0])).strip()
    return out


def run_aerleon(params):
    case, value = params.case, params.value
    if params.kind == "rule":
        plan, outcome = hostile_plan(params, "nftables"), None
    else:
        plan, outcome = params_plan(params, "nftables")
    if outcome:
        return outcome
    targets = ["juniper", "cisco"] if params.opts["target"] is None else [params.opts["target"], "juniper"]
    filter_name = params.eff("filter_name")
    dest = tempfile.mkdtemp(prefix="nap-hostile-export-")
    try:
        try:
            result = run_export_action({"plan": plan, "dest": dest, "targets": targets,
                                        "filter_name": params.opts["filter_name"]})
        except Exception as exc:  # pylint: disable=broad-except
            return classify_exception(case, value, exc)
        if result.get("failed"):
            return refusal(case, value, str(result.get("msg")))
        problems = []
        real = os.path.realpath(dest)
        for path in result.get("files") or []:
            if os.path.commonpath([os.path.realpath(path), real]) != real:
                problems.append("nap_export would write %r outside dest" % path)
        if os.listdir(dest):
            problems.append("nap_export wrote files in check mode: %s" % os.listdir(dest))
    finally:
        for base, dirs, files in os.walk(dest, topdown=False):
            for name in files:
                os.unlink(os.path.join(base, name))
            for name in dirs:
                os.rmdir(os.path.join(base, name))
        os.rmdir(dest)
    try:
        files = aerleon.export(plan, None, targets, filter_name)
    except Exception as exc:  # pylint: disable=broad-except
        return Outcome(THROUGH, "nap_export accepted what aerleon.export then fails on: %s: %s" % (
            type(exc).__name__, _short(exc)))
    devices = list(plan["perimeter"])
    expected_files = ["policies/pol/%s.yaml" % d for d in devices] + ["def/networks.yaml", "def/services.yaml",
                                                                      "README.txt"]
    if sorted(files) != sorted(expected_files):
        problems.append("the export holds %s, not %s" % (sorted(files), sorted(expected_files)))
    for device in devices:
        if "/" in device or device in (".", ".."):
            problems.append("device %r makes the path %r, not one file in policies/pol" % (
                device, "policies/pol/%s.yaml" % device))
    docs = {}
    for name, text in files.items():
        if name.endswith(".yaml"):
            try:
                docs[name] = yaml.safe_load(text)
            except Exception as exc:  # pylint: disable=broad-except
                problems.append("%s is not YAML: %s" % (name, _short(exc, 200)))
    if problems:
        return Outcome(THROUGH, "; ".join(problems))
    networks = (docs["def/networks.yaml"] or {}).get("networks") or {}
    services = (docs["def/services.yaml"] or {}).get("services") or {}
    if set(docs["def/networks.yaml"] or {}) != set(["networks"]) or set(docs["def/services.yaml"] or {}) != set(
            ["services"]):
        problems.append("the definitions hold other keys than networks / services")
    for device in devices:
        rules = [model.Rule.from_dict(r) for r in plan["perimeter"][device]["forward"]]
        doc = docs["policies/pol/%s.yaml" % device]
        if not isinstance(doc, dict) or list(doc) != ["filters"] or len(doc["filters"]) != 1:
            problems.append("policy of %r: not one filter: %s" % (device, _short(doc, 200)))
            continue
        filt = doc["filters"][0]
        header = filt.get("header") or {}
        mixed = any(":" in a for r in rules for a in r.src_addresses + r.dst_addresses)
        want_header = {"comment": "configmgr.nap: NAP forward rules of perimeter device %s (generated, do not edit)"
                                  % device, "targets": dict(_aerleon_expected_targets(targets, filter_name, mixed))}
        if header != want_header:
            problems.append("policy of %r: the header reads back as %s, not %s" % (
                device, _short(header, 200), _short(want_header, 200)))
        terms = filt.get("terms") or []
        if len(terms) != len(rules):
            problems.append("policy of %r: %d terms for %d rules" % (device, len(terms), len(rules)))
            continue
        for term, rule in zip(terms, rules):
            want = {"name": rule.name.lower(), "comment": "%s (%s) %s" % (rule.name, rule.flow_id, rule.description),
                    "protocol": rule.protocol, "action": "accept"}
            got = dict((k, term.get(k)) for k in want)
            if got != want:
                problems.append("term of rule %r reads back as %s, not %s" % (
                    rule.name, _short(got, 200), _short(want, 200)))
                break
            for side, addresses in (("source-address", rule.src_addresses), ("destination-address",
                                                                             rule.dst_addresses)):
                token = term.get(side)
                values = [v.get("address") for v in (networks.get(token) or {}).get("values") or []] if token else []
                if values != list(addresses):
                    problems.append("term %r: %s reads back as %r, not %r" % (rule.name, side, values, addresses))
            for side, ports in (("source-port", rule.src_ports), ("destination-port", rule.dst_ports)):
                token = term.get(side)
                values = [(v.get("port"), v.get("protocol")) for v in services.get(token) or []] if token else []
                want_ports = [(str(p), rule.protocol) for p in ports]
                if values != want_ports:
                    problems.append("term %r: %s reads back as %r, not %r" % (rule.name, side, values, want_ports))
    return Outcome(THROUGH, "; ".join(problems[:3])) if problems else Outcome(SAFE)


# ---------------------------------------------------------------------------
# Backend: nft (the script and its checks; tests/lab/test_hostile_nft.py loads it in a namespace)
# ---------------------------------------------------------------------------
def nft_policy(params):
    """(Policy, warnings) as nft_nap_policy builds it (policy_from_params), or an Outcome."""
    from ansible_collections.configmgr.nap.plugins.modules.nft_nap_policy import policy_from_params

    case, value = params.case, params.value
    module_params = {"family": "inet", "table": params.opts["table"], "allow_lockout": False}
    if params.kind == "inv":
        plan, outcome = params_plan(params, "nftables")
        if outcome:
            return outcome
        module_params.update(plan=plan, host=params.device)
    else:
        # the forward rules carry the value, a benign inbound rule fills the input chain
        module_params.update(rules=params.rules("forward") + [base_rule("in", "NAP-BASE-TCP-IN")],
                             zones={params.opts["nft_zone"]: ["192.0.2.0/24"], "mgmt": ["198.51.100.0/24"]},
                             management_sources=["198.51.100.10/32"], rpc_dynamic_range=params.opts["nft_rpc"])
    try:
        return policy_from_params(module_params, environ={})
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(case, value, exc)


def nft_script(params):
    got = nft_policy(params)
    if isinstance(got, Outcome):
        return got
    policy = got[0]
    try:
        return policy, nftables.desired_state(policy).script()
    except Exception as exc:  # pylint: disable=broad-except
        return classify_exception(params.case, params.value, exc)


def _nft_skeleton(script, family, table):
    """The script with quoted strings emptied, zone set names and the table reference made generic."""
    text = script.replace("%s %s" % (family, table), "FAMILY TABLE")
    text = re.sub(r'"[^"\n]*"', '""', text)
    text = re.sub(r"\bzone_[a-z0-9_]+_v([46])\b", r"zone_X_v\1", text)
    return sorted(text.split("\n"))     # rules are sorted by name: the value may move its rule


def nft_outcome(params, nft):
    """Render, load with ``nft -f`` and read back with ``nft -j list ruleset``; ``nft(args, stdin)`` -> (rc, out, err)."""
    got = nft_script(params)
    if isinstance(got, Outcome):
        return got
    policy, script = got
    nft(["flush", "ruleset"], None)
    rc, _out, err = nft(["-f", "-"], script)
    if rc != 0:
        ref = nft_script(Params(params.case, params.case.benign_for(params.value)))
        if isinstance(ref, Outcome):
            raise AssertionError("the benign value %r is not rendered: %s" % (params.case.benign, ref))
        ref_policy, ref_script = ref
        skeleton = _nft_skeleton(script, policy.family, policy.table)
        if skeleton != _nft_skeleton(ref_script, ref_policy.family, ref_policy.table):
            return Outcome(THROUGH, "the value changed the script's structure and nft rejected it: %s"
                           % _short(err.strip(), 200))
        return Outcome(UNCLEAR, "nft -f rejected the script (the module would fail without naming %s): %s"
                       % (params.case.expected_text(), _short(err.strip(), 200)))
    rc, out, err = nft(["-j", "list", "ruleset"], None)
    nft(["flush", "ruleset"], None)
    if rc != 0:
        return Outcome(THROUGH, "nft -j list ruleset failed: %s" % err)
    problems = nft_problems(policy, out)
    return Outcome(THROUGH, "; ".join(problems)) if problems else Outcome(SAFE)


def nft_problems(policy, listing):
    """What in ``nft -j list ruleset`` is not exactly the owned table the policy renders to."""
    doc = json.loads(listing)
    want = nftables.desired_state(policy)
    problems = []
    tables, objects = [], []
    for item in doc.get("nftables", []):
        (kind, data), = item.items()
        if kind == "metainfo":
            continue
        if kind == "table":
            tables.append((data.get("family"), data.get("name")))
        elif (data.get("family"), data.get("table")) != (policy.family, policy.table):
            objects.append("%s %s in table %s %s" % (kind, data.get("name"), data.get("family"), data.get("table")))
        elif kind not in ("chain", "set", "rule"):
            objects.append("%s %s" % (kind, data.get("name")))
    if tables != [(policy.family, policy.table)]:
        problems.append("the ruleset holds tables %s, not only %s %s" % (tables, policy.family, policy.table))
    if objects:
        problems.append("objects outside the owned table's sets, chains and rules: %s" % objects[:3])
    have = nftables.parse_table(doc, policy.family, policy.table)
    if have is None:
        return problems + ["the owned table is not there"]
    chains = dict((n, (c.type, c.hook, c.policy)) for n, c in have.chains.items())
    want_chains = dict((n, (c.type, c.hook, c.policy)) for n, c in want.chains.items())
    if chains != want_chains:
        problems.append("chains %s, not %s" % (chains, want_chains))
    sets = dict((n, s.comment) for n, s in have.sets.items())
    want_sets = dict((n, s.comment) for n, s in want.sets.items())
    if sets != want_sets:
        problems.append("sets %s, not %s" % (_short(sets, 200), _short(want_sets, 200)))
    parsed = nftables.parse_rules(have, policy.families, policy.rpc_dynamic_range, policy.rules)
    rules = sorted((r.to_dict() for r in parsed), key=lambda r: r["name"])
    want_rules = sorted((r.to_dict() for r in policy.rules), key=lambda r: r["name"])
    if rules != want_rules:
        problems.append("nft rules: %s" % rules_diff(rules, want_rules))
    zones = dict((z, sorted(c)) for z, c in nftables.parse_zones(have).items())
    want_zones = dict((z, sorted(c)) for z, c in nftables.parse_zones(want).items())
    if zones != want_zones or set(want_zones) != set(z for z, f in policy.zones.items() if f[4] or f[6]):
        problems.append("zones read back as %s, not %s" % (_short(zones, 200), sorted(policy.zones)))
    if not problems and nftables_compare.compare(policy, have).changed:
        problems.append("nft_nap_policy would see a change on its next run: %s" % _short(
            nftables_compare.compare(policy, have).commands(), 300))
    return problems


# ---------------------------------------------------------------------------
# Running one value through one backend
# ---------------------------------------------------------------------------
RUNNERS = {"planner": run_planner, "report": run_report, "powershell": run_powershell, "netsh": run_netsh,
           "asa": run_asa, "asa_block": run_asa_block, "ios": run_ios, "ios_interfaces": run_ios_interfaces,
           "aerleon": run_aerleon}
# examples per test (times NAP_HOSTILE_SCALE): the Cisco round trip costs ~0.1 s an example, the rest ~10 ms
EXAMPLES = {"planner": 60, "report": 40, "powershell": 50, "netsh": 60, "asa": 15, "asa_block": 25, "ios": 12,
            "ios_interfaces": 25, "aerleon": 40, "nft": 40}


def meaning_problem(params):
    """For numbers: a value that was accepted must mean what its ASCII digits say (a superscript two is no 2)."""
    case, value = params.case, params.value
    if case.oracle is None:
        return None
    want = case.oracle(value)
    if params.kind == "rule":
        try:
            rule = model.Rule.from_dict(params.rules("in")[0])
        except NapError:
            return None
        have = getattr(rule, params.rule_field)
        if have != (want,):
            return "%s %r was accepted as %r (ASCII digits say %r)" % (params.rule_field, value, have, want)
        return None
    if params.kind == "opt":     # nft_nap_policy rpc_dynamic_range: empty is the default
        want = want or (None if value else nftables.DEFAULT_RPC_RANGE)
        try:
            have = nftables.Policy([], {}, (), value or nftables.DEFAULT_RPC_RANGE).rpc_dynamic_range
        except NapError:
            return None
    else:
        try:
            have = params.plan()["hosts"]["nps01"]["rpc_dynamic_range"]
        except NapError:
            return None
    if have != want:
        return "%r was accepted as %r (ASCII digits say %r)" % (value, have, want)
    return None


def outcome_of(case, backend, value, runner=None):
    params = Params(case, value)
    try:
        outcome = (runner or RUNNERS[backend])(params)
        if outcome.kind == SAFE and meaning_problem(params):
            outcome = Outcome(THROUGH, meaning_problem(params))
    except pytest.skip.Exception:
        raise
    except AssertionError:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        outcome = Outcome(THROUGH, "the harness caught %s: %s" % (type(exc).__name__, _short(exc)))
    return outcome


def check(case, backend, value, runner=None, tally=TALLY):
    """Run, tally, and raise HostileFailure for a value that is neither refused clearly nor rendered safely."""
    outcome = outcome_of(case, backend, value, runner)
    tally.add(case.ident, backend, value, outcome)
    if outcome.kind in FAILING:
        raise HostileFailure("%s / %s: %r is %s" % (case.ident, backend, value, outcome))
    return outcome


def hypothesis_settings(backend, **extra):
    base = dict(max_examples=max(1, int(EXAMPLES.get(backend, 30) * SCALE)), deadline=None, database=None,
                derandomize=True, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
    base.update(extra)
    return settings(**base)


def make_test(case, backend, runner=None):
    """A Hypothesis test of one identifier through one backend (the known vectors first)."""

    def test(value):
        check(case, backend, value, runner)

    test = given(value=case.strategy)(test)
    for value in reversed(tuple(case.known)):
        test = example(value=value)(test)
    test = hypothesis_settings(backend)(test)
    test.__name__ = "test_%s__%s" % (case.key, backend)
    test.__doc__ = "%s through %s: refused clearly or rendered safely." % (case.ident, backend)
    return test


@contextlib.contextmanager
def shrink_budget(seconds=SHRINK_SECONDS):
    """Bound the time Hypothesis spends shrinking a failure (its default is five minutes)."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover
        yield
        return
    before = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if before is not None:
        engine.MAX_SHRINKING_SECONDS = seconds
    try:
        yield
    finally:
        if before is not None:
            engine.MAX_SHRINKING_SECONDS = before


class _Summary(object):
    """Prints the figures and the shortest failing value of each pair at the end of the session."""

    def pytest_terminal_summary(self, terminalreporter):
        if not TALLY.counts:
            return
        terminalreporter.section("hostile input figures")
        for line in TALLY.table().splitlines():
            terminalreporter.write_line(line)
        if TALLY.failures:
            terminalreporter.write_line("shortest failing value seen per identifier and backend:")
            for line in TALLY.failure_lines():
                terminalreporter.write_line("  " + line)


SUMMARY = _Summary()


@pytest.fixture(scope="module", autouse=True)
def _figures(request):
    """Bound shrinking; the figures go to the terminal summary."""
    if not request.config.pluginmanager.is_registered(SUMMARY):
        request.config.pluginmanager.register(SUMMARY, "nap-hostile-summary")
    with shrink_budget():
        yield


for _case in CASES:
    for _backend in _case.backends:
        if _backend in RUNNERS:
            _test = make_test(_case, _backend)
            globals()[_test.__name__] = _test
del _case, _backend, _test


# ---------------------------------------------------------------------------
# The harness itself: a benign value renders safely everywhere, the checks see the known vectors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("key,backend", [(c.key, b) for c in CASES for b in c.backends if b in RUNNERS],
                         ids=["%s-%s" % (c.key, b) for c in CASES for b in c.backends if b in RUNNERS])
def test_benign_values_render_safely(key, backend):
    case = CASE_BY_KEY[key]
    for value in (case.valid, case.benign):
        outcome = outcome_of(case, backend, value)
        assert outcome.kind == SAFE, "%s / %s: the valid value %r is %s" % (case.ident, backend, value, outcome)


def test_message_helper():
    expect = [(("nap_zones",), None), (("nap_perimeter_zones",), "rtr01")]
    assert names_variable("nap_zones: zone name 'a\\nb' is not valid", expect, "a\nb")
    assert names_variable("host rtr01: nap_perimeter_zones names x", expect, "x")
    assert not names_variable("host r2: nap_perimeter_zones names x", expect, "x")
    assert not names_variable("zone 'x' is not valid", expect, "x")
    host = [(("nap_domain_controllers", "host"), VALUE)]
    assert names_variable("group nap_domain_controllers: host name 'dc\\n01' is not valid", host, "dc\n01")
    assert not names_variable("group nap_domain_controllers: a host name is not valid", host, "dc\n01")


def test_checks_catch_the_known_vectors():
    """The PowerShell, netsh and nft checks flag what the security review found (on hand-made artefacts)."""
    assert ps_literal_end(u"'a\u2019b'") == 3 and ps_literal_end(u"'a\u2019\u2019b'") == 6
    assert ps_unquote(u"'it''s \u2019\u2019x'") == u"it's \u2019x"
    assert _netsh_line_problems(1, "rem host: a %~ b")
    assert _netsh_line_problems(1, "rem host: a ^")
    assert _netsh_line_problems(1, 'netsh advfirewall firewall add rule name="a" & calc & ""')
    # the netsh file: show rule, then add rule ... else set rule ... new ...; nothing is deleted
    assert not _netsh_line_problems(1, 'netsh advfirewall firewall show rule name="a %%x" >nul 2>&1')
    assert _netsh_line_problems(1, 'netsh advfirewall firewall show rule name="a %x" >nul 2>&1')
    assert _netsh_line_problems(1, 'netsh advfirewall firewall delete rule name="a %%x" >nul 2>&1')
    ifelse = ('if errorlevel 1 (netsh advfirewall firewall add rule name="a" dir=in action=allow protocol=tcp '
              'localport=5986 profile=any enable=yes description="%s") else (netsh advfirewall firewall set rule '
              'name="a" new name="a" dir=in action=allow protocol=tcp localport=5986 remoteport=any localip=any '
              'remoteip=any profile=any enable=yes description="d")')
    assert not _netsh_line_problems(1, ifelse % "d")
    for bad in ('d") else (netsh advfirewall reset) & ("', "d%PATH%", 'd" & calc & "', "d\" dir=\"out"):
        assert _netsh_line_problems(1, ifelse % bad), bad
    assert _netsh_line_problems(1, "if errorlevel 1 (echo configmgr.nap: x& calc& exit /b 3)")
    # PowerShell double-quoted literals: only `` `$ `" escapes and $([char]0xNNNN) expansions
    assert ps_double_quoted(u'"a`$b`"c$([char]0x2019)"') == (u'a$b"c\u2019', "")
    for bad in ('"a$b"', '"a$(calc)"', '"a`nb"', '"a${x}"', u'"a\u00e9"', '"a$([char]0x41) $x"'):
        assert ps_double_quoted(bad)[1], bad
    if PS_PARSER is not None:
        ref = windows_render.render_com(windows.rules_from_input([base_rule("in")]), host="h")
        assign = "$group = 'ConfigMgr NAP'\n"
        assert ref.count(assign) == 1 and not _ps_problems("com", ref, ref)
        for bad in (assign + "Write-Output pwned\n", u"$group = 'g\u2019; calc; \u2019'\n", '$group = "g$(calc)"\n',
                    '$group = "g`ncalc"\n', "$group = 'g'; calc\n"):
            assert _ps_problems("com", ref.replace(assign, bad), ref), bad
        assert not _ps_problems("com", ref.replace(assign, '$group = "g$([char]0x2019)x`$"\n'), ref)
        assert _assigned_problems("com", ref.replace(assign, '$group = "g$([char]0x2019)"\n'), "group", "ConfigMgr NAP")
        assert not _assigned_problems("com", ref.replace(assign, '$group = "g$([char]0x2019)"\n'), "group", u"g\u2019")
        steps = windows_render._template("render_com.ps1")[-1]
        assert _ps_problems("com", ref.replace(steps, steps + "\nWrite-Output pwned"), ref)
    nft_zone = CASE_BY_KEY["inv_zone"].known[0]
    policy_script = nft_script(Params(CASE_BY_KEY["inv_zone"], nft_zone))
    if not isinstance(policy_script, Outcome):
        benign = nft_script(Params(CASE_BY_KEY["inv_zone"], "zqbenignzone"))
        assert _nft_skeleton(policy_script[1], "inet", "x") != _nft_skeleton(benign[1], "inet", "x")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))


def _bad_character_by_category(text):
    """The reference: the first character of a refused Unicode category, looked up one by one."""
    import unicodedata  # pylint: disable=import-outside-toplevel
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import names  # pylint: disable=import-outside-toplevel
    for char in text:
        if unicodedata.category(char) in names._REFUSED_CATEGORIES:  # pylint: disable=protected-access
            return char
    return None


@pytest.mark.parametrize("code", list(range(0, 0x100)) + [0x2028, 0x2029, 0x200B, 0x202E, 0xFEFF, 0xE000, 0x378])
def test_bad_character_fast_path_agrees_with_the_categories(code):
    """names.bad_character answers printable ASCII without the per-character look-up: every character of Latin-1
    and the known invisible or separator characters, alone and inside printable ASCII, give the reference's answer."""
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import names  # pylint: disable=import-outside-toplevel
    char = chr(code)
    for text in (char, "ab" + char, char + "yz", "a b~" + char + "\x7e"):
        assert names.bad_character(text) == _bad_character_by_category(text), (code, text)


@given(st.text(max_size=40))
@settings(max_examples=400, deadline=None)
def test_bad_character_agrees_with_the_categories_on_any_text(text):
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import names  # pylint: disable=import-outside-toplevel
    assert names.bad_character(text) == _bad_character_by_category(text)
