#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test stand-in for ansible.windows.win_powershell: answers with the fake Windows host (SYNTHETIC)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_powershell
short_description: Test stand-in for ansible.windows.win_powershell (fake Windows host)
description:
  - Answers the scripts of configmgr.nap.win_nap_firewall with the fake Windows host of the tests.
  - See tests/fake_windows/README.md.
author:
  - configmgr.nap maintainers (@configmgr-nap)
options:
  script:
    description: The script.
    type: str
    required: true
  parameters:
    description: The script's parameters.
    type: dict
"""

import json
import os
import re
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows  # noqa: F401 (bundled)

HERE = os.path.dirname(os.path.abspath(__file__))


def state_path():
    if os.environ.get("FAKE_WINDOWS_STATE"):
        return os.environ["FAKE_WINDOWS_STATE"]
    directory = os.environ["FAKE_WINDOWS_STATE_DIR"]
    try:
        name = subprocess.run(["ip", "netns", "identify", str(os.getpid())], stdout=subprocess.PIPE,
                              universal_newlines=True, check=False).stdout.strip()
    except OSError:
        name = ""
    return os.path.join(directory, (name or "localhost") + ".json")


def load(path, fake_windows):
    if not os.path.exists(path):
        seed = os.environ.get("FAKE_WINDOWS_SEED") or os.path.join(
            os.path.dirname(fake_windows.__file__), "fixtures", "windows", "synthetic-2008r2-sp1.json")
        with open(seed) as handle:
            doc = json.load(handle)
        with open(path, "w") as handle:
            json.dump(doc, handle)
    with open(path) as handle:
        return json.load(handle)


def main():
    module = AnsibleModule(argument_spec=dict(script=dict(type="str", required=True), parameters=dict(type="dict")),
                           supports_check_mode=True)
    import fake_windows  # pylint: disable=import-outside-toplevel,import-error
    path = state_path()
    doc = load(path, fake_windows)
    host = fake_windows.FakeWindowsHost.from_dump(doc)
    script = module.params["script"]
    params = module.params["parameters"] or {}
    if script in (windows.READ_PS1, windows.APPLY_PS1):
        result = host.execute_module(module_name="ansible.windows.win_powershell",
                                     module_args={"script": script, "parameters": params},
                                     check_mode=module.check_mode)
    else:
        # a drift script of the integration target (COM calls), understood through two patterns
        if module.check_mode:
            module.exit_json(changed=True, msg="skipped, running in check mode", result={})
        prefix = params.get("Prefix", "")
        for name in re.findall(r"\.Remove\(\$Prefix \+ '([^']+)'\)", script):
            host.remove(prefix + name)
        for name in re.findall(r"\.Item\(\$Prefix \+ '([^']+)'\)\.Enabled = \$false", script):
            host.edit(prefix + name, Enabled=False)
        result = {"changed": True, "result": {}}
    doc["rules"] = [r.record() for r in host.store]
    doc["calls"] = doc.get("calls", 0) + 1
    with open(path, "w") as handle:
        json.dump(doc, handle)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
