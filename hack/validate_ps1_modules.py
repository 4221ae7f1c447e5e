#!/usr/bin/env python
"""Run ansible-test's validate-modules on PowerShell modules without pwsh.

validate-modules asks pwsh (PowerShell) for the argument spec of every ``*.ps1``
module that uses Ansible.Basic, and aborts when pwsh is missing. PowerShell
cannot be installed on our build machines, so hack/sanity.sh runs the regular
validate-modules over every other plugin file and then this wrapper over the
``*.ps1`` modules: the same validator with only the argument-spec
introspection disabled. Every other check still runs (``#!powershell``
interpreter line, GPLv3 header, module_util requires, documentation sidecar).

It must run with the Python of ansible-test's validate-modules sanity venv,
with ansible-test's validate-modules directory on PYTHONPATH, from the
collection root.

Usage: validate_ps1_modules.py IGNORE_FILE VALIDATE_MODULES_ARGS... MODULE.ps1...
Entries ``path validate-modules:code`` in IGNORE_FILE are honoured.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from validate_modules import main as vm  # pylint: disable=import-error


def load_ignores(path: str) -> set[tuple[str, str]]:
    """Return the (path, code) pairs ignored for validate-modules in an ansible-test ignore file."""
    ignores = set()

    if not os.path.exists(path):
        return ignores

    with open(path, encoding='utf-8') as ignore_file:
        for line in ignore_file:
            fields = line.split(' # ', 1)[0].split()

            if len(fields) == 2 and fields[1].startswith('validate-modules:'):
                ignores.add((fields[0], fields[1].split(':', 1)[1]))

    return ignores


def skip_ps_argument_spec(original):
    """Wrap ModuleValidator._validate_ansible_module_call so it does nothing for PowerShell modules."""

    def _validate_ansible_module_call(self, docs):
        if self._powershell_module():  # pylint: disable=protected-access
            return None

        return original(self, docs)

    return _validate_ansible_module_call


def main() -> int:
    """Validate the given PowerShell modules and print the errors not ignored."""
    ignores = load_ignores(sys.argv[1])
    vm.ModuleValidator._validate_ansible_module_call = skip_ps_argument_spec(  # pylint: disable=protected-access
        vm.ModuleValidator._validate_ansible_module_call)  # pylint: disable=protected-access

    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, 'report.json')
        sys.argv = ['validate-modules', '--format', 'json', '--output', output] + sys.argv[2:]

        try:
            vm.run()
        except SystemExit as ex:
            if ex.code not in (0, 3, None):
                raise

        with open(output, encoding='utf-8') as report_file:
            report = json.load(report_file)

    errors = 0

    for path, result in sorted(report.items()):
        for trace in result.get('traces', []):
            print('TRACE: %s\n%s' % (path, trace))

        for error in result.get('errors', []):
            if (path, error['code']) in ignores:
                continue

            errors += 1
            print('ERROR: %s:%d:%d: %s: %s' % (path, error['line'], error['column'], error['code'], error['msg']))

    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
