# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Creating a new file safely: the one exclusive-create loop of the controller (reports, Windows backups)
and of the targets (nft backups)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible.module_utils.common.text.converters import to_bytes

EXCLUSIVE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def create_new(candidates, data, mode=0o600, exhausted="every candidate name exists"):
    """Write ``data`` to the first path of ``candidates`` that does not exist yet and return that path.

    Each file is created with O_CREAT|O_EXCL|O_NOFOLLOW and ``mode``: never through a symlink, never over an
    existing file (an existing name moves on to the next candidate). A failed write removes the file.
    """
    for path in candidates:
        try:
            fd = os.open(path, EXCLUSIVE_FLAGS, mode)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                continue
            raise
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(to_bytes(data))
        except BaseException:
            os.unlink(path)
            raise
        return path
    raise OSError(errno.EEXIST, exhausted)


def numbered(path, limit=1000):
    """``path``, then ``<root>.1<ext>``, ``<root>.2<ext>`` ... (``limit`` names in all)."""
    root, ext = os.path.splitext(path)
    for count in range(limit):
        yield "%s.%d%s" % (root, count, ext) if count else path


__all__ = ["create_new", "numbered"]
