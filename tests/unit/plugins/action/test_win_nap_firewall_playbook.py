# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The integration target tests/integration/targets/win_nap_firewall through real ansible-playbook.

No Windows host: the stand-in ``ansible.windows.win_powershell`` of tests/fake_windows (ahead of the
real one on the collections path) answers with the fake Windows host of fake_windows.py, whose
rule store persists in a JSON file between tasks. This checks the target's tasks and assertions
(idempotence, call counts, check mode) with the real action plugin, module_defaults and templating.
The target's drift task (a COM script of its own) is understood by the stand-in through two regexes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, *[os.pardir] * 4))
FIXTURE = os.path.join(HERE, "fixtures", "windows", "synthetic-2008r2-sp1.json")

FAKE_COLLECTIONS = os.path.join(ROOT, "tests", "fake_windows")

PLAYBOOK = """- hosts: localhost
  gather_facts: false
  roles:
    - win_nap_firewall
"""


def test_integration_target_runs_against_the_fake_host(tmp_path):
    state = tmp_path / "host.json"
    with open(FIXTURE) as handle:
        state.write_text(handle.read())
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([FAKE_COLLECTIONS,
                                                       os.path.join(ROOT, "build", "pytest")])
    env["ANSIBLE_ROLES_PATH"] = os.path.join(ROOT, "tests", "integration", "targets")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    env["FAKE_WINDOWS_STATE"] = str(state)
    env["PYTHONPATH"] = os.pathsep.join([HERE, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook)]
    run = subprocess.run(cmd, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, check=False)
    assert run.returncode == 0, run.stdout[-6000:]
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0\s+skipped=(\d+)", run.stdout)
    assert recap and int(recap.group(1)) >= 30 and recap.group(3) == "7", run.stdout[-2000:]
    assert run.stdout.count("TASK [win_nap_firewall : Assert") >= 15, run.stdout
    doc = json.loads(state.read_text())
    assert [r for r in doc["rules"] if r["Grouping"] == "configmgr.nap integration test"] == []
    with open(FIXTURE) as handle:
        original = json.load(handle)["rules"]
    assert [r for r in doc["rules"] if r["Grouping"] != "configmgr.nap integration test"] == [
        dict(fake_windows.FakeRule(**r).record()) for r in original]


sys.path.insert(0, HERE)
import fake_windows  # noqa: E402  pylint: disable=wrong-import-position
