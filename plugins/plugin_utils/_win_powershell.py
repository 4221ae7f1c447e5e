# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the action plugins that run a script through ansible.windows.win_powershell share."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.text.converters import to_text

POWERSHELL_MODULE = "ansible.windows.win_powershell"


def error_text(res):
    """The most useful message of a failed win_powershell result: msg, the script's error records, else the last line
    of the exception."""
    parts = []
    if res.get("msg"):
        parts.append(to_text(res["msg"]))
    for err in res.get("error") or []:
        if isinstance(err, dict):
            parts.append(to_text(err.get("message") or err.get("exception") or err))
        else:
            parts.append(to_text(err))
    if res.get("exception") and not parts:
        parts.append(to_text(res["exception"]).strip().splitlines()[-1])
    return "; ".join(p for p in parts if p) or "unknown error"
