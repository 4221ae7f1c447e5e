#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PowerShell syntax check without pwsh: parse with the tree-sitter PowerShell grammar.

Checks every *.ps1 / *.psm1 file of the repository (git-visible, or a walk when git is missing)
and the PowerShell that Python code renders or sends to hosts:

* plugins/module_utils/nap/backends/powershell/*.ps1 as files, and the read and apply scripts as the
  backend sends them through ansible.windows.win_powershell (windows.READ_PS1 / APPLY_PS1: the
  ``#include common.ps1`` line expanded), and the COM and New-NetFirewallRule scripts of state: rendered,
  for a sample rule set that uses every protocol, both directions, the RPC keywords and quotes.

Fails (exit 1) on any ERROR or MISSING node, printing file:line:column and the text there.

PowerShell 2.0: a script whose first line is ``#Requires -Version 2.0`` (a file, or a rendered script such as
the COM script of state: rendered) must not use what PowerShell 3.0 added and the tree-sitter grammar cannot
tell apart: ``[ordered]``, ``::new(``, the ``-in`` / ``-notin`` operators, ``[pscustomobject]``,
``ConvertTo-Json`` and ``ConvertFrom-Json``.  Such a use fails the check too (file:line:column and the construct).
Exit 2 when the grammar is not installed (pip install -r requirements-dev.txt:
tree-sitter, tree-sitter-powershell).

Usage: python hack/check_ps1.py [-v] [FILE...]
"""

from __future__ import absolute_import, division, print_function

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {".git", ".venv", ".cache", "build", "node_modules", "output"}


def parser():
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError as exc:
        sys.stderr.write("check_ps1: the tree-sitter PowerShell grammar is not installed (%s); install "
                         "requirements-dev.txt (tree-sitter, tree-sitter-powershell)\n" % exc)
        sys.exit(2)
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def errors(ps_parser, text):
    """[(line, column, snippet)] of the ERROR and MISSING nodes (1-based line and column)."""
    data = text.encode("utf-8") if not isinstance(text, bytes) else text
    tree = ps_parser.parse(data)
    out = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            snippet = data[node.start_byte:node.end_byte][:60].decode("utf-8", "replace")
            kind = "missing %s" % node.type if node.is_missing else "syntax error"
            out.append((node.start_point[0] + 1, node.start_point[1] + 1, "%s near %r" % (kind, snippet)))
            continue
        stack.extend(node.children)
    return sorted(out)


PS2_MARK = re.compile(r"\A(?:\ufeff)?#Requires -Version 2(?:\.0)?[ \t]*\r?$", re.I | re.M)
# What PowerShell 3.0+ added that a 2.0 host refuses (about_Operators: -in/-notin are 3.0; [ordered] and
# [pscustomobject] accelerators 3.0; ::new() 5.0; ConvertTo-Json/ConvertFrom-Json 3.0).
PS3_SYNTAX = (
    ("[ordered]", re.compile(r"\[ordered\]", re.I)),
    ("::new(", re.compile(r"::new\s*\(", re.I)),
    ("-in", re.compile(r"(?<![\w-])-in(?![\w-])", re.I)),
    ("-notin", re.compile(r"(?<![\w-])-notin(?![\w-])", re.I)),
    ("[pscustomobject]", re.compile(r"\[pscustomobject\]", re.I)),
    ("ConvertTo-Json", re.compile(r"\bConvertTo-Json\b", re.I)),
    ("ConvertFrom-Json", re.compile(r"\bConvertFrom-Json\b", re.I)),
)


def meant_for_ps2(text):
    """Whether the script's first line is ``#Requires -Version 2.0``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    first = text.split("\n", 1)[0]
    return bool(PS2_MARK.match(first))


def ps3_problems(text):
    """[(line, column, what)] of PowerShell 3+ constructs outside comments (strings are searched too)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    # blank out <# block comments #> (keeping lines and columns), then take each line up to a # comment
    text = re.sub(r"<#.*?#>", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        for what, pattern in PS3_SYNTAX:
            for match in pattern.finditer(code):
                out.append((number, match.start() + 1, "PowerShell 3+ syntax %s in a script meant for 2.0" % what))
    return out


def repo_files():
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                                stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        listed = []
        for base, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            listed += [os.path.relpath(os.path.join(base, f), ROOT) for f in files]
    return sorted(f for f in listed if f.lower().endswith((".ps1", ".psm1"))
                  and not set(f.split(os.sep)[:-1]) & SKIP_DIRS and os.path.isfile(os.path.join(ROOT, f)))


def rendered_sources():
    """(label, text) of the PowerShell the Python code renders or sends."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    # tests/conftest.py makes ansible_collections.configmgr.nap importable from any checkout path
    import conftest  # noqa: F401  pylint: disable=unused-import,import-error
    from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
    from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_render

    sample = windows.rules_from_input([
        {"name": "MGMT-WINRM-TCP-IN", "flow_id": "MGMT-WINRM", "protocol": "tcp", "src_addresses": ["203.0.113.10"],
         "dst_ports": [5985, 5986], "description": "Ansible manages Windows hosts (WinRM / PSRP)", "source": "x"},
        {"name": "RPC-EPMAP", "protocol": "tcp", "src_addresses": ["192.0.2.10"], "dst_ports": ["rpc-epmap"]},
        {"name": "RPC-DYN", "protocol": "tcp", "src_addresses": ["192.0.2.10"], "dst_ports": ["rpc-dynamic"]},
        {"name": "UDP-OUT", "direction": "out", "protocol": "udp", "dst_addresses": ["192.0.2.5", "2001:db8::5"],
         "dst_ports": [53, "49152-65535"], "src_ports": [1024]},
        {"name": "GRE", "protocol": "gre", "description": u"it's a \u2018quoted\u2019 $(text) `n @{x}"},
        {"name": "ESP", "protocol": "esp"}, {"name": "AH", "protocol": "ah"}, {"name": "ICMP", "protocol": "icmp"},
    ])
    out = [("windows.py:READ_PS1 (read.ps1 + common.ps1)", windows.READ_PS1),
           ("windows.py:APPLY_PS1 (apply.ps1 + common.ps1)", windows.APPLY_PS1)]
    for mask in (windows.PROFILES_ALL, 3):
        out.append(("windows_render.py:render_com(profiles=%d)" % mask, windows_render.render_com(sample, mask=mask, host="sample")))
        out.append(("windows_render.py:render_netsecurity(profiles=%d)" % mask,
                    windows_render.render_netsecurity(sample, mask=mask, host="sample")))
    return out


def main(argv):
    verbose = "-v" in argv
    files = [a for a in argv if a != "-v"]
    ps_parser = parser()
    sources = []
    for rel in files or repo_files():
        path = rel if os.path.isabs(rel) else os.path.join(ROOT, rel)
        with open(path, "rb") as handle:
            sources.append((os.path.relpath(path, ROOT), handle.read()))
    if not files:
        sources += rendered_sources()
    failed = 0
    for label, text in sources:
        found = errors(ps_parser, text)
        if meant_for_ps2(text):
            found = sorted(found + ps3_problems(text))
        for line, col, what in found:
            print("%s:%d:%d: %s" % (label, line, col, what))
        failed += bool(found)
        if verbose and not found:
            print("%s: ok" % label)
    print("check_ps1: %d PowerShell source(s) parsed, %d with errors" % (len(sources), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
