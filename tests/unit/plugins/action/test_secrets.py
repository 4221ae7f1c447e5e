# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret reaches a report, a backup, a log line or -vvv output (issue 12, item 4).

The secrets the collection handles: the RADIUS shared secret (``nap_radius_secret``: nap_port_probe's RADIUS
probe, the verify role, the lab's FreeRADIUS and inventory) and connection passwords in the inventory
(``ansible_password``), which the planner must never copy into a plan. Real ansible-playbook runs at -vvv with
a log file; the probe goes to a loopback UDP port where nothing listens."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import stat
import subprocess
import sys

import yaml

from ansible_collections.configmgr.nap.plugins.action.nap_plan import inventory_from_task_vars
from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner, report
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.services import Services
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.supervision import LabSupervisor
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.topology import INVENTORY_MODE, LabTopology
from ansible_collections.configmgr.nap.plugins.modules import nap_port_probe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, *[os.pardir] * 4))
EXAMPLE = os.path.join(ROOT, "examples", "inventory.yml")
LAB = os.path.join(ROOT, "examples", "lab", "lab.yml")

RADIUS_SECRET = "Rad1us-S3cret-q7Zt"
PASSWORD = "S3cretXYZ"
PROBE_PASSWORD = "Pr0be-Passw0rd-k2Wn"
SECRETS = (RADIUS_SECRET, PASSWORD, PROBE_PASSWORD)


def ansible_playbook(tmp_path, *args):
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        [os.path.join(ROOT, "build", "pytest"), env.get("ANSIBLE_COLLECTIONS_PATH", ""),
         os.path.join(ROOT, ".cache", "collections")]).replace(os.pathsep * 2, os.pathsep)
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_LOG_PATH=str(tmp_path / "ansible.log"), ANSIBLE_HOME=str(tmp_path / "home"),
               ANSIBLE_DEPRECATION_WARNINGS="0")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-vvv"] + list(args)
    return subprocess.run(cmd, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)


def leaks(text, secrets=SECRETS):
    return [s for s in secrets if s in text]


def files_below(path):
    out = {}
    for root, _dirs, files in os.walk(str(path)):
        for name in files:
            with open(os.path.join(root, name), errors="replace") as handle:
                out[os.path.join(root, name)] = handle.read()
    return out


def free_udp_port():
    """A loopback UDP port nothing listens on (the probe gets ICMP port unreachable)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------------------
# nap_port_probe: the option spec, then a real -vvv run with the verify role's report filter
# ---------------------------------------------------------------------------
def test_probe_secret_options_are_no_log():
    assert nap_port_probe.TARGET_SPEC["secret"]["no_log"] is True
    assert nap_port_probe.TARGET_SPEC["password"]["no_log"] is True


PROBE_PLAYBOOK = """
- name: RADIUS probes with a secret, to a loopback port where nothing listens
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Access-Request, the secret and the password given as options
      configmgr.nap.nap_port_probe:
        targets:
          - name: radius access
            host: 127.0.0.1
            port: "{{ port }}"
            kind: radius
            secret: "{{ nap_radius_secret }}"
            radius_request: access_request
            user: nap-probe
            password: "{{ probe_password }}"
        timeout: 0.3
      register: direct
      ignore_errors: true

    - name: Status-Server, the secret added by nap_verify_targets at probe time, as the verify role does
      configmgr.nap.nap_port_probe:
        targets: "{{ item.targets | configmgr.nap.nap_verify_targets(nap_radius_secret) }}"
        timeout: 0.3
      loop: "{{ jobs.jobs }}"
      loop_control:
        label: "{{ item.vantage }}"
      register: probes
      failed_when: false

    - name: The verify report of the probes
      ansible.builtin.set_fact:
        verify_report: "{{ jobs | configmgr.nap.nap_verify_report(probes.results, when='T') }}"

    - name: Show everything registered
      ansible.builtin.debug:
        var: item
      loop: [direct, probes, verify_report]
      loop_control:
        label: "{{ item | length }}"

    - name: Write the report and the registered results
      ansible.builtin.copy:
        content: "{{ item.value }}"
        dest: "{{ out }}/{{ item.key }}"
        mode: "0600"
      loop: "{{ {'verify.md': verify_report.markdown, 'verify.json': verify_report.json,
                 'registered.json': {'direct': direct, 'probes': probes} | to_nice_json} | dict2items }}"
      loop_control:
        label: "{{ item.key }}"
"""


def test_radius_secret_appears_nowhere_at_vvv(tmp_path):
    port = free_udp_port()
    out = tmp_path / "out"
    out.mkdir()
    # as verify.probe_jobs builds it: no secret in a loop item (nap_verify_targets adds it in the task's arguments)
    target = {"name": "DHCP-RADIUS #1", "host": "127.0.0.1", "port": port, "protocol": "udp", "kind": "radius"}
    check = {"check": "flow", "flow": "DHCP-RADIUS", "purpose": "RADIUS", "source": "dhcp01", "source_zone": "servers",
             "target": "nps01", "address": "127.0.0.1", "protocol": "udp", "port": port, "expected": "open",
             "via": None, "perimeter": [], "vantage": "localhost", "probe": "radius"}
    jobs = {"jobs": [{"vantage": "localhost", "targets": [target], "checks": [check]}], "not_probed": []}
    (tmp_path / "vars.json").write_text(json.dumps({"jobs": jobs, "port": port, "out": str(out)}))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_python_interpreter": sys.executable}},
        "vars": {"nap_radius_secret": RADIUS_SECRET, "probe_password": PROBE_PASSWORD}}}))
    (tmp_path / "pb.yml").write_text(PROBE_PLAYBOOK)
    run = ansible_playbook(tmp_path, "-i", "inventory.yml", "-e", "@vars.json", "pb.yml")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # the probes ran and answered (closed: ICMP port unreachable), the report judged them
    doc = json.loads((out / "registered.json").read_text())
    assert doc["direct"]["results"][0]["kind"] == "radius" and doc["direct"]["results"][0]["state"] == "closed"
    assert doc["probes"]["results"][0]["results"][0]["state"] == "closed"
    assert "DHCP-RADIUS" in (out / "verify.md").read_text()
    # the secret was sent (masked in the invocation), and is nowhere
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.stdout
    assert leaks(run.stdout) == [] and leaks(run.stderr) == []
    assert leaks((tmp_path / "ansible.log").read_text()) == []
    for path, text in files_below(out).items():
        assert leaks(text) == [], path


# ---------------------------------------------------------------------------
# The planner copies no hostvar but nap_* settings: plan, reports, export, -vvv
# ---------------------------------------------------------------------------
def secret_inventory():
    with open(EXAMPLE) as handle:
        inv = yaml.safe_load(handle)
    inv["all"]["vars"].update(ansible_password=PASSWORD, ansible_user="Administrator",
                              ansible_connection="winrm", nap_radius_secret=RADIUS_SECRET)
    nps = inv["all"]["children"]["nap_shv_points"]["hosts"]["nps01"]
    nps.update(ansible_password=PASSWORD, ansible_become_password=PASSWORD, nap_radius_secret=RADIUS_SECRET)
    return inv


def test_plan_and_reports_hold_no_secret():
    inv = secret_inventory()["all"]
    groups, hostvars = {}, {}

    def walk(name, node):
        node = node or {}
        for host, hvars in (node.get("hosts") or {}).items():
            groups.setdefault(name, []).append(host)
            hostvars.setdefault(host, dict(inv["vars"])).update(hvars or {})
        for child, cnode in (node.get("children") or {}).items():
            walk(child, cnode)

    walk("all", inv)
    # the action plugin's own selection of what the planner sees
    groups, selected = inventory_from_task_vars({"groups": groups, "hostvars": hostvars})
    assert all(k.startswith("nap_") or k in planner.CONNECTION_VARS for hv in selected.values() for k in hv)
    settings = dict((k, v) for k, v in inv["vars"].items() if k.startswith("nap_"))
    for given in (selected, hostvars):          # even if every hostvar were handed to the planner
        plan = planner.plan(groups, given, settings)
        text = json.dumps(plan)
        assert leaks(text) == []
        assert set(plan["settings"]) <= set(s.name for s in planner.catalogue.SETTINGS) | {"nap_zones"}
        for name, rendered in report.render_all(json.loads(text)).items():
            assert leaks(rendered) == [], name


def test_plan_playbook_at_vvv_leaks_no_secret(tmp_path):
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(secret_inventory()))
    out = tmp_path / "out"
    run = ansible_playbook(tmp_path, "-i", "inventory.yml", os.path.join(ROOT, "playbooks", "plan.yml"),
                           "-e", "nap_report_dir=%s" % out, "-e", "nap_export=aerleon",
                           "-e", "ansible_python_interpreter=%s" % sys.executable)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    written = files_below(out)
    assert os.path.join(str(out), "flows.json") in written and os.path.join(str(out), "aerleon", "README.txt") in written
    assert leaks(run.stdout) == [] and leaks(run.stderr) == []
    assert leaks((tmp_path / "ansible.log").read_text()) == []
    for path, text in written.items():
        assert leaks(text) == [], path


# ---------------------------------------------------------------------------
# The lab: its inventory holds nap_radius_secret (0600), FreeRADIUS' clients.conf 0640
# ---------------------------------------------------------------------------
class Anything(dict):
    """An `ip -j` answer in which every interface, address and route already exists and is up."""

    def __contains__(self, key):
        return True

    def get(self, key, default=None):
        return {"flags": ["UP"], "master": "br0"}


class LabModule:
    check_mode = False
    params = {"listeners": False, "services": False}

    def get_bin_path(self, name, required=False):
        return "/usr/sbin/" + name


def existing_lab(tmp_path):
    """A Lab whose namespaces all exist (no ip command runs): create() only (re)writes its files."""
    with open(LAB) as handle:
        topo = LabTopology(yaml.safe_load(handle))
    lab = LabSupervisor(LabModule(), topo, str(tmp_path / "lab"), sys.executable)
    lab.existing = lambda: set(topo.namespaces())
    lab.links_in = lambda ns: Anything()
    lab.addrs_in = lambda ns, dev: Anything()
    lab.routes_in = lambda ns: Anything()
    lab.sysctl = lambda ns, key, value: None
    return lab


def test_lab_inventory_is_written_0600(tmp_path):
    lab = existing_lab(tmp_path)
    lab.create()
    path = tmp_path / "lab" / "inventory.yml"
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600 == INVENTORY_MODE
    assert yaml.safe_load(path.read_text())["all"]["vars"]["nap_radius_secret"] == "nap-lab-radius-secret"
    assert stat.S_IMODE(os.stat(str(tmp_path / "lab" / "state.json")).st_mode) == 0o644
    assert not [n for n in os.listdir(str(tmp_path / "lab")) if n.endswith(".tmp")]
    # an inventory left 0644 by an older version is tightened, without counting as a change
    os.chmod(str(path), 0o644)
    lab.actions = []
    lab.create()
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600 and lab.actions == []


def test_lab_secret_files_are_never_readable_by_others(tmp_path):
    with open(LAB) as handle:
        topo = LabTopology(yaml.safe_load(handle))
    radius = [d for d in Services(topo, "/x").all() if d.service == "freeradius"][0]
    conf = [p for p in radius.files if p.endswith("/clients.conf")][0]
    content, mode = radius.files[conf]
    assert "nap-lab-radius-secret" in content and mode == 0o640
    lab = existing_lab(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    target = tmp_path / "raddb" / "clients.conf"
    target.parent.mkdir()
    os.symlink(str(victim), str(target) + ".tmp")        # a stale or planted temporary name is not followed
    assert lab.write(str(target), content, mode) is True
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o640 and target.read_text() == content
    assert victim.read_text() == "keep\n" and os.listdir(str(target.parent)) == ["clients.conf"]
