# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nft backup restores the owned table as it was, with the real nft (issue 12, item 4).

The backup used to be the bare ``nft list table`` text, and ``nft -f backup`` MERGED the saved rules into the
current table. Here nft_nap_policy's own code (run_module, with nft run inside a network namespace this test
creates and removes) converges a table to rules A, then to rules B with backup: true; a rule is added by hand;
``nft -f <backup>`` must give back exactly table A (``nft -j list table``, handles aside), also when the table is
gone. Needs root, ip and nft; nothing touches the machine's own namespace; addresses from 198.18.0.0/15.
The backup goes where backup_options says (issue 13, item 4), always under the test's tmp_path; the deprecated
backup_path still works for one release.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import stat
import subprocess

import pytest

from labkit import needs_root_and_tools, remove_namespaces, sh

from ansible_collections.configmgr.nap.plugins.modules import nft_nap_policy as mod

pytestmark = needs_root_and_tools

PREFIX = "napbk%d" % (os.getpid() % 100000)
NETNS = PREFIX + "-nft"
FAMILY, TABLE = "inet", "configmgr_nap"

ZONES = {"servers": ["198.18.1.0/24"], "clients": ["198.18.2.0/24"], "management": ["198.18.9.0/24"]}
MGMT = ["198.18.9.10"]
RULES_A = [
    {"name": "HRA-HTTPS-FWD", "flow_id": "IPSEC-HRA", "direction": "forward", "protocol": "tcp",
     "src_addresses": ["198.18.2.0/24"], "dst_addresses": ["198.18.1.30"], "dst_ports": [443]},
    {"name": "RADIUS-UDP-IN", "flow_id": "DHCP-RADIUS", "direction": "in", "protocol": "udp",
     "src_addresses": ["198.18.1.40"], "dst_ports": [1812, 1813]},
    {"name": "PING-IN", "flow_id": "TEST", "direction": "in", "protocol": "icmp"},
]
RULES_B = [
    {"name": "HRA-HTTPS-FWD", "flow_id": "IPSEC-HRA", "direction": "forward", "protocol": "tcp",
     "src_addresses": ["198.18.2.0/24", "198.18.3.0/24"], "dst_addresses": ["198.18.1.30"], "dst_ports": [80, 443]},
    {"name": "SMB-TCP-FWD", "flow_id": "TEST", "direction": "forward", "protocol": "tcp",
     "src_addresses": ["198.18.2.0/24"], "dst_addresses": ["198.18.1.10"], "dst_ports": [445]},
]


def nft_in_ns(*args, **kw):
    return subprocess.run(["ip", "netns", "exec", NETNS, shutil.which("nft")] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False, **kw)


class NftBackupModuleFailed(Exception):
    pass


class NamespaceModule:
    """What nft_nap_policy.run_module needs of AnsibleModule; its nft runs inside the test's namespace."""

    def __init__(self, **params):
        spec = mod.argument_spec()
        self.params = dict((k, v.get("default")) for k, v in spec.items())
        self.params.update(zones=ZONES, management_sources=MGMT, family=FAMILY, table=TABLE)
        self.params.update(params)
        self.check_mode = False
        self._diff = False
        self.deprecations = []

    def get_bin_path(self, name, required=False):
        return shutil.which(name)

    def run_command(self, args, data=None, binary_data=False):
        out = subprocess.run(["ip", "netns", "exec", NETNS] + list(args), input=data, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, check=False)
        return out.returncode, out.stdout, out.stderr

    def fail_json(self, **kw):
        raise NftBackupModuleFailed(kw["msg"])

    def deprecate(self, msg, version=None, date=None, collection_name=None):
        self.deprecations.append(dict(msg=msg, version=version, collection_name=collection_name))


def table_json():
    """The owned table as nft -j lists it, without what a reload renumbers (handles) or nft's own metainfo."""
    out = nft_in_ns("-j", "list", "table", FAMILY, TABLE)
    assert out.returncode == 0, out.stderr

    def strip(value):
        if isinstance(value, dict):
            return dict((k, strip(v)) for k, v in value.items() if k != "handle")
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return [strip(item) for item in json.loads(out.stdout)["nftables"] if "metainfo" not in item]


@pytest.fixture
def netns():
    remove_namespaces(PREFIX)
    out = sh("ip", "netns", "add", NETNS)
    assert out.returncode == 0, out.stderr
    try:
        yield NETNS
    finally:
        remove_namespaces(PREFIX)
        assert NETNS not in sh("ip", "netns", "list").stdout


def test_backup_restores_the_table_exactly(netns, tmp_path):
    first = mod.run_module(NamespaceModule(rules=RULES_A))
    assert first["changed"] is True
    table_a = table_json()
    assert any("RADIUS-UDP-IN" in json.dumps(item) for item in table_a)

    backups = tmp_path / "backups"
    module = NamespaceModule(rules=RULES_B, backup=True, backup_options=dict(dir_path=str(backups)))
    second = mod.run_module(module)
    assert second["changed"] is True and module.deprecations == []
    content, path = second["backup_content"], second["backup_path"]
    assert os.path.dirname(path) == str(backups) and second["backup_file"] == path
    ref = "%s %s" % (FAMILY, TABLE)
    assert content.startswith("table %s\ndelete table %s\ntable %s {\n" % (ref, ref, ref)), content[:200]
    with open(path) as handle:
        assert handle.read() == content
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(str(backups)).st_mode) == 0o700

    # table B plus a rule added by hand: the old backup (bare listing) would have merged A into this
    extra = nft_in_ns("add", "rule", FAMILY, TABLE, "input", "tcp", "dport", "9999", "counter", "accept",
                      "comment", '"added by hand"')
    assert extra.returncode == 0, extra.stderr
    changed = table_json()
    assert changed != table_a and "added by hand" in json.dumps(changed)

    restore = nft_in_ns("-f", path)
    assert restore.returncode == 0, restore.stderr
    assert table_json() == table_a

    # the same backup restores the table when it no longer exists
    assert nft_in_ns("delete", "table", FAMILY, TABLE).returncode == 0
    restore = nft_in_ns("-f", path)
    assert restore.returncode == 0, restore.stderr
    assert table_json() == table_a
    # and nft_nap_policy sees the plan A again: nothing to change
    assert mod.run_module(NamespaceModule(rules=RULES_A))["changed"] is False


def test_backup_of_state_absent_restores_the_table(netns, tmp_path):
    mod.run_module(NamespaceModule(rules=RULES_A))
    table_a = table_json()
    target = tmp_path / "absent.nft"
    options = dict(dir_path=str(tmp_path), filename="absent.nft")
    gone = mod.run_module(NamespaceModule(state="absent", backup=True, backup_options=options))
    assert gone["changed"] is True and gone["backup_path"] == str(target) == gone["backup_file"]
    assert nft_in_ns("list", "table", FAMILY, TABLE).returncode != 0
    restore = nft_in_ns("-f", str(target))
    assert restore.returncode == 0, restore.stderr
    assert table_json() == table_a
    # a second backup to the same file name never overwrites the first
    again = mod.run_module(NamespaceModule(state="absent", backup=True, backup_options=options))
    assert again["backup_path"] == str(tmp_path / "absent.1.nft")
    with open(str(target)) as handle:
        assert handle.read() == gone["backup_content"]


def test_deprecated_backup_path_still_writes_a_backup_that_restores(netns, tmp_path):
    mod.run_module(NamespaceModule(rules=RULES_A))
    table_a = table_json()
    target = tmp_path / "old" / "table.nft"
    module = NamespaceModule(rules=RULES_B, backup=True, backup_path=str(target))
    result = mod.run_module(module)
    assert result["changed"] is True and result["backup_path"] == str(target) == result["backup_file"]
    assert [d["version"] for d in module.deprecations] == ["1.0.0"]
    assert "backup_options" in module.deprecations[0]["msg"]
    restore = nft_in_ns("-f", str(target))
    assert restore.returncode == 0, restore.stderr
    assert table_json() == table_a
