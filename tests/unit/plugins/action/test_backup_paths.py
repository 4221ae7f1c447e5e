# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths built from names never leave their directory; backups are new 0600 files (issue 12, items 2 and 4).

write_tree (reports, the Aerleon export) refuses any name that is not a plain relative path before it writes
anything; the Windows backup names its file from a sanitised host name; backups (Windows on the controller, nft on
the target) are created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, never over an existing file or through a
symlink, in a directory created 0700; a failed write leaves no file behind. The nft backup content deletes the
owned table before declaring it (see tests/lab/test_nft_backup_lab.py for the real nft)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import stat
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task

from ansible_collections.configmgr.nap.plugins.action import nap_export as export_action
from ansible_collections.configmgr.nap.plugins.action import win_nap_firewall as win_action
from ansible_collections.configmgr.nap.plugins.module_utils.nap import planner
from ansible_collections.configmgr.nap.plugins.modules import nft_nap_policy as nft_mod
from ansible_collections.configmgr.nap.plugins.plugin_utils import _files

EVIL = "../../.."


def tree(path):
    """Every entry below path (relative), symlinks not followed."""
    out = []
    for root, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(root, name), str(path)))
    return sorted(out)


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def action(cls, action_name, args, check=False):
    task = Task()
    task.action = action_name
    task.args = args
    task.check_mode = check
    return cls(task, MagicMock(), PlayContext(), loader=MagicMock(), templar=MagicMock(), shared_loader_obj=MagicMock())


# ---------------------------------------------------------------------------
# write_tree
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,reason", [
    ("../outside.txt", "'.' or '..' path component"),
    ("a/../../outside.txt", "'.' or '..' path component"),
    ("policies/pol/" + EVIL + ".yaml", "'.' or '..' path component"),
    ("./a.txt", "'.' or '..' path component"),
    ("/tmp/abs.txt", "absolute path"),
    ("a//b.txt", "empty path component"),
    ("a/", "empty path component"),
    ("", "empty"),
    ("a\\..\\b.txt", "backslash"),
    ("a\x00b.txt", "NUL or control character"),
    ("a\nb.txt", "NUL or control character"),
    ("a\x7fb.txt", "NUL or control character"),
])
def test_write_tree_refuses_unsafe_names_before_writing_anything(tmp_path, name, reason):
    dest = tmp_path / "dest"
    files = {"README.txt": "first\n", name: "evil\n", "z/last.txt": "last\n"}
    with pytest.raises(_files.UnsafePathError) as exc:
        _files.write_tree(files, str(dest), False)
    text = str(exc.value)
    assert repr(name) in text and str(dest) in text and reason in text and "nothing was written" in text
    assert exc.value.name == name and exc.value.directory == str(dest)
    assert tree(tmp_path) == []          # not even the valid names, not even dest


def test_write_tree_refuses_a_parent_that_resolves_outside(tmp_path):
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(str(outside), str(dest / "policies"))
    with pytest.raises(_files.UnsafePathError, match="outside") as exc:
        _files.write_tree({"a.txt": "a\n", "policies/pol/x.yaml": "x\n"}, str(dest), False)
    assert "policies/pol/x.yaml" in str(exc.value) and str(dest) in str(exc.value)
    assert tree(outside) == [] and tree(dest) == ["policies"]


def test_write_tree_allows_a_destination_behind_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(str(real), str(tmp_path / "link"))
    paths, changed = _files.write_tree({"a/b.txt": "b\n", "c...txt": "c\n"}, str(tmp_path / "link"), False)
    assert changed == paths and tree(real) == ["a", "a/b.txt", "c...txt"]
    assert mode_of(real / "a" / "b.txt") == 0o644


def test_write_tree_leaves_no_temporary_file_when_the_rename_fails(tmp_path, monkeypatch):
    def broken(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(_files.os, "rename", broken)
    with pytest.raises(OSError, match="No space left"):
        _files.write_tree({"sub/a.txt": "a\n"}, str(tmp_path), False)
    assert tree(tmp_path) == ["sub"]


def test_write_tree_leaves_no_temporary_file_when_the_write_fails(tmp_path, monkeypatch):
    def broken(path, mode):
        raise OSError(1, "Operation not permitted")
    monkeypatch.setattr(_files.os, "chmod", broken)
    with pytest.raises(OSError, match="not permitted"):
        _files.write_tree({"a.txt": "a\n"}, str(tmp_path), False)
    assert tree(tmp_path) == []


@pytest.mark.parametrize("text", [
    "a\n" * 1500000,                              # ASCII over a chunk: compared and written a megabyte at a time
    u"z\u00f6ne \u2192 h\u00f4te\n" * 200000,     # UTF-8 of more bytes than characters
    b"\x00bytes\n" * 300000,
    "",
])
def test_write_tree_compares_and_writes_a_large_file_by_chunks(tmp_path, monkeypatch, text):
    monkeypatch.setattr(_files, "_CHUNK", 4096 + 3)   # chunk edges inside characters' runs, not on line ends
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    paths, changed = _files.write_tree({"r.txt": text}, str(tmp_path), False)
    assert changed == paths and (tmp_path / "r.txt").read_bytes() == data
    assert _files.write_tree({"r.txt": text}, str(tmp_path), False)[1] == []        # the same: not written
    if data:
        # the same size, one byte different, in the last chunk and in the first
        for at in (len(data) - 2, 0):
            other = bytearray(data)
            other[at] = (other[at] + 1) % 128
            (tmp_path / "r.txt").write_bytes(bytes(other))
            assert _files.write_tree({"r.txt": text}, str(tmp_path), False)[1] == paths
            assert (tmp_path / "r.txt").read_bytes() == data
    (tmp_path / "r.txt").write_bytes(data + b"x")                               # longer: changed
    assert _files.write_tree({"r.txt": text}, str(tmp_path), True)[1] == paths   # check mode: reported, not written
    assert (tmp_path / "r.txt").read_bytes() == data + b"x"


# ---------------------------------------------------------------------------
# nap_export: a perimeter device named ../../..
# ---------------------------------------------------------------------------
def plan_with_device(device):
    """A plan whose perimeter device is ``device``: renamed in the plan document, as a flows.json given to
    nap_export may hold any name (the planner itself may refuse such inventory host names)."""
    plan = json.loads(json.dumps(_plan("rtr01")))
    plan["perimeter"] = dict((device if name == "rtr01" else name, entry) for name, entry in plan["perimeter"].items())
    for flow in plan["flows"]:
        flow["perimeter"] = [device if name == "rtr01" else name for name in flow["perimeter"]]
    return plan


def _plan(device):
    groups = {"nap_site_servers": ["cm01"], "nap_shv_points": ["nps01"], "nap_domain_controllers": ["dc01"],
              "nap_global_catalogs": ["dc01"], "nap_perimeter": [device]}
    hostvars = {"cm01": {"ansible_host": "198.18.1.10"}, "nps01": {"ansible_host": "198.18.2.20"},
                "dc01": {"ansible_host": "198.18.1.5"},
                device: {"nap_address": ["198.18.1.1", "198.18.2.1"], "nap_perimeter_platform": "nftables",
                         "nap_perimeter_zones": ["servers", "nps"]}}
    settings = {"nap_management_sources": ["198.18.9.10"],
                "nap_zones": {"servers": ["198.18.1.0/24"], "nps": ["198.18.2.0/24"]}}
    return planner.plan(groups, hostvars, settings)


@pytest.mark.parametrize("device", [EVIL, "../escape", "a\\b"])
def test_nap_export_refuses_a_device_name_that_leaves_dest(tmp_path, device):
    dest = tmp_path / "a" / "b" / "c" / "export"
    result = action(export_action.ActionModule, "configmgr.nap.nap_export",
                    {"plan": plan_with_device(device), "dest": str(dest)}).run(task_vars={})
    assert result.get("failed") is True, result
    assert repr(device) in result["msg"] and "nothing was written" in result["msg"]
    assert tree(tmp_path) == [] and result["changed"] is False


@pytest.mark.parametrize("device", [EVIL, "../escape", "a\\b"])
def test_nap_export_write_guard_names_device_file_and_dest(tmp_path, monkeypatch, device):
    """Even when the backend let such a name through, write_tree refuses it before writing anything."""
    def export(plan, devices, targets, filter_name):
        return {"README.txt": "r\n", "def/networks.yaml": "n\n", "policies/pol/%s.yaml" % device: "p\n"}
    monkeypatch.setattr(export_action._aerleon(), "export", export)
    dest = tmp_path / "a" / "b" / "c" / "export"
    result = action(export_action.ActionModule, "configmgr.nap.nap_export",
                    {"plan": {"perimeter": {}}, "dest": str(dest)}).run(task_vars={})
    assert result.get("failed") is True, result
    msg = result["msg"]
    assert "perimeter device %r" % device in msg and str(dest) in msg and "nothing was written" in msg
    assert repr("policies/pol/%s.yaml" % device) in msg
    assert tree(tmp_path) == [] and result["changed"] is False


def test_nap_export_still_writes_a_plain_device(tmp_path):
    dest = tmp_path / "export"
    result = action(export_action.ActionModule, "configmgr.nap.nap_export",
                    {"plan": plan_with_device("rtr01"), "dest": str(dest)}).run(task_vars={})
    assert not result.get("failed"), result
    assert "policies/pol/rtr01.yaml" in tree(dest)
    assert not [p for p in tree(dest) if os.path.basename(p).startswith(".")]


# ---------------------------------------------------------------------------
# win_nap_firewall backup
# ---------------------------------------------------------------------------
class HostState:
    doc = {"os_version": "6.1.7601"}
    owned_fw = [{"Name": "configmgr.nap - X", "Grouping": "configmgr.nap"}]
    owned = []


class FixedNow(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 2, 3, 4, 5)


@pytest.fixture
def fixed_clock(monkeypatch):
    monkeypatch.setattr(win_action, "datetime", SimpleNamespace(datetime=FixedNow))
    monkeypatch.setattr(nft_mod, "time", SimpleNamespace(strftime=lambda fmt, *a: "20260102T030405"))
    return "2026-01-02@03:04:05"


def win_backup(directory, host):
    act = action(win_action.ActionModule, "configmgr.nap.win_nap_firewall", {})
    return act._backup({"backup_dir": str(directory)}, {}, host, "configmgr.nap", "configmgr.nap - ", HostState())


@pytest.mark.parametrize("host,stem", [
    (EVIL, "_.._.._win_nap_firewall"),
    ("/etc/passwd", "_etc_passwd_win_nap_firewall"),
    ("..", "__win_nap_firewall"),
    ("2001:db8::10", "2001_db8__10_win_nap_firewall"),
    ("nps01.example.com", "nps01.example.com_win_nap_firewall"),
])
def test_windows_backup_stays_in_backup_dir(tmp_path, fixed_clock, host, stem):
    directory = tmp_path / "deep" / "backup"
    path = win_backup(directory, host)
    assert os.path.dirname(path) == str(directory)
    assert os.path.basename(path) == "%s.%s.json" % (stem, fixed_clock)
    assert tree(tmp_path) == ["deep", "deep/backup", "deep/backup/" + os.path.basename(path)]
    assert mode_of(path) == 0o600 and mode_of(directory) == 0o700
    with open(path) as handle:
        assert '"host": %s' % ('"%s"' % host) in handle.read()


def test_windows_backup_never_overwrites_nor_follows_a_symlink(tmp_path, fixed_clock):
    directory = tmp_path / "backup"
    directory.mkdir(mode=0o755)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    name = "nps01_win_nap_firewall.%s" % fixed_clock
    os.symlink(str(victim), str(directory / (name + ".json")))
    os.symlink(str(tmp_path / "dangling"), str(directory / (name + ".1.json")))
    first = win_backup(directory, "nps01")
    second = win_backup(directory, "nps01")
    assert os.path.basename(first) == name + ".2.json" and os.path.basename(second) == name + ".3.json"
    assert victim.read_text() == "keep\n" and not (tmp_path / "dangling").exists()
    assert mode_of(first) == mode_of(second) == 0o600
    assert mode_of(directory) == 0o755          # an existing directory is left as it is


def test_windows_backup_failure_leaves_no_file(tmp_path, fixed_clock, monkeypatch):
    def broken(fd, mode):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(_files.os, "fchmod", broken)
    with pytest.raises(win_action._Fail) as exc:
        win_backup(tmp_path / "backup", EVIL)
    assert "host %s: cannot write the backup to %s" % (EVIL, tmp_path / "backup") in exc.value.msg
    assert "No space left" in exc.value.msg and "nothing was changed" in exc.value.msg
    assert tree(tmp_path) == ["backup"]


def test_safe_component():
    assert _files.safe_component(EVIL) == "_.._.."
    assert _files.safe_component("...") == "_"
    assert _files.safe_component("") == "_"
    assert _files.safe_component(u"h\u00f6st\x00") == "h_st_"
    with pytest.raises(_files.UnsafePathError):
        _files.write_new("/nonexistent-dir", "a/b", ".json", "x")


# ---------------------------------------------------------------------------
# nft_nap_policy backup
# ---------------------------------------------------------------------------
class BackupModuleFailed(Exception):
    pass


class BackupModule:
    def __init__(self, backup_path):
        self.params = {"backup_path": backup_path}

    def fail_json(self, **kw):
        raise BackupModuleFailed(kw["msg"])


def test_nft_backup_content_deletes_the_table_first():
    listing = "table inet configmgr_nap {\n\tchain input {\n\t}\n}\n"
    script = nft_mod.backup_script("inet", "configmgr_nap", listing)
    assert script == "table inet configmgr_nap\ndelete table inet configmgr_nap\n" + listing
    assert nft_mod.backup_script("ip", "t", "table ip t {\n}").endswith("table ip t {\n}\n")


def test_nft_backup_in_a_new_directory(tmp_path, fixed_clock):
    directory = tmp_path / "backups" / "nap"
    path = nft_mod.write_backup(BackupModule(str(directory) + "/"), "content\n", "inet", "configmgr_nap")
    assert path == str(directory / "inet-configmgr_nap-20260102T030405.nft")
    assert mode_of(path) == 0o600 and mode_of(directory) == 0o700
    again = nft_mod.write_backup(BackupModule(str(directory)), "other\n", "inet", "configmgr_nap")
    assert again == str(directory / "inet-configmgr_nap-20260102T030405.1.nft")
    with open(path) as handle:
        assert handle.read() == "content\n"
    assert mode_of(again) == 0o600


def test_nft_backup_to_a_file_never_overwrites_nor_follows(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    target = tmp_path / "sub" / "table.nft"
    first = nft_mod.write_backup(BackupModule(str(target)), "one\n", "inet", "t")
    assert first == str(target) and mode_of(target.parent) == 0o700 and mode_of(first) == 0o600
    os.symlink(str(victim), str(tmp_path / "sub" / "table.1.nft"))
    second = nft_mod.write_backup(BackupModule(str(target)), "two\n", "inet", "t")
    assert second == str(tmp_path / "sub" / "table.2.nft")
    assert target.read_text() == "one\n" and victim.read_text() == "keep\n"
    assert (tmp_path / "sub" / "table.2.nft").read_text() == "two\n"


def test_nft_backup_failure_fails_cleanly_and_leaves_no_file(tmp_path, monkeypatch):
    def broken(fd, mode):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(nft_mod.os, "fchmod", broken)
    with pytest.raises(BackupModuleFailed, match="cannot write the backup of the owned table inet t to .*No space left.*nothing"):
        nft_mod.write_backup(BackupModule(str(tmp_path / "b.nft")), "x\n", "inet", "t")
    assert tree(tmp_path) == []
