# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/run.py's timed(): a command's wall time, exit code, output and peak RSS, from the launcher."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "bench"))

import run as bench  # noqa: E402  pylint: disable=wrong-import-position,import-error

ALLOCATE = "b = bytearray(%d * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"


def test_peak_rss_is_the_command_s_not_the_caller_s():
    """A caller of 200 MiB measures a command of 40 MiB as about 40 MiB (forked straight from the caller, Linux
    kept the caller's peak across execve and the command read 200 MiB or more)."""
    ballast = bytearray(200 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    out = bench.timed([sys.executable, "-c", ALLOCATE % 40])
    assert out["rc"] == 0, out["err"]
    assert 40 * 1024 <= out["maxrss_kb"] < 120 * 1024, out["maxrss_kb"]
    del ballast


def test_exit_code_output_and_stdin_pass_through():
    out = bench.timed(["/bin/sh", "-c", "cat; echo to-err >&2; exit 3"], stdin_text="from stdin\n")
    assert (out["rc"], out["out"], out["err"]) == (3, "from stdin\n", "to-err\n")
    assert 0 < out["wall"] < 60


def test_a_command_that_cannot_start_is_named():
    out = bench.timed(["/nonexistent/configmgr-nap-bench"])
    assert out["rc"] == 127
    assert "cannot run /nonexistent/configmgr-nap-bench" in out["err"]


def test_timeout_ends_the_command_too(tmp_path):
    """On its timeout the bench ends the launcher, and the launcher the command: nothing is left running."""
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    out = bench.timed(["/bin/sh", "-c", "echo $$ > %s; exec sleep 60" % pid_file], timeout=1)
    assert time.monotonic() - started < 20
    assert out["rc"] != 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the command %d outlived its timeout" % pid
