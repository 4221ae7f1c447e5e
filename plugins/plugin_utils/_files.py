# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side file writing shared by the action plugins (reports, exports)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes


def write_tree(files, directory, check_mode):
    """Write {relative path: text} under directory; return (all paths, changed paths)."""
    paths, changed = [], []
    for name, text in files.items():
        path = os.path.join(directory, *name.split("/"))
        paths.append(path)
        data = to_bytes(text)
        try:
            with open(path, "rb") as handle:
                if handle.read() == data:
                    continue
        except (IOError, OSError):
            pass
        changed.append(path)
        if check_mode:
            continue
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".%s." % os.path.basename(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    return paths, changed
