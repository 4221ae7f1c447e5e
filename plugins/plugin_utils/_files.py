# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side file writing shared by the action plugins (reports, exports)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.configmgr.nap.plugins.module_utils.nap.files import create_new


class UnsafePathError(OSError):
    """A relative file name that would not stay inside its directory (nothing was written)."""

    def __init__(self, name, directory, reason):
        self.name = name
        self.directory = directory
        self.reason = reason
        super(UnsafePathError, self).__init__("refusing to write %r under %s: %s (nothing was written)"
                                              % (name, directory, reason))

    def __str__(self):
        return self.args[0]


def _name_problem(name):
    """Why ``name`` is not a plain relative path of '/'-separated file-name components, or None."""
    if not name:
        return "the name is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name contains a NUL or control character"
    if "\\" in name:
        return "the name contains a backslash"
    if name.startswith("/") or os.path.isabs(name):
        return "the name is an absolute path"
    parts = name.split("/")
    if any(p == "" for p in parts):
        return "the name has an empty path component"
    if any(p in (".", "..") for p in parts):
        return "the name has a '.' or '..' path component"
    return None


def is_inside(path, directory):
    """True when ``path`` is ``directory`` or below it (both already resolved)."""
    try:
        return os.path.commonpath([path, directory]) == directory
    except ValueError:
        return False


def safe_paths(names, directory):
    """{name: absolute path} for every name, all checked before any is used; raises UnsafePathError.

    A name must be a relative path of plain components (no '..', '.', empty component, backslash, NUL or control
    character), and the resolved parent of its path (os.path.realpath: symlinks followed) must be inside the
    resolved directory."""
    real_dir = os.path.realpath(directory)
    out = {}
    for name in names:
        text = to_text(name, errors="surrogate_or_strict")
        problem = _name_problem(text)
        if problem:
            raise UnsafePathError(text, directory, problem)
        path = os.path.join(directory, *text.split("/"))
        if not is_inside(os.path.realpath(os.path.dirname(path)), real_dir):
            raise UnsafePathError(text, directory, "its resolved path %s is outside %s"
                                  % (os.path.realpath(os.path.dirname(path)), real_dir))
        out[name] = path
    return out


_CHUNK = 1 << 20


class _Content(object):
    """A file's content (text, written in UTF-8, or bytes) a megabyte at a time: a report of 100 MB is compared
    and written without a copy of it whole (two copies took longer than writing a new file)."""

    def __init__(self, text):
        if not isinstance(text, str) or not text.isascii():
            self.data = to_bytes(text)
            self.size = len(self.data)
        else:
            self.data = text          # ASCII: a character is a byte, and a slice of it encodes on its own
            self.size = len(text)

    def chunks(self):
        data = self.data
        if isinstance(data, bytes):
            view = memoryview(data)
            for start in range(0, len(data), _CHUNK):
                yield view[start:start + _CHUNK]
        else:
            for start in range(0, len(data), _CHUNK):
                yield data[start:start + _CHUNK].encode("ascii")

    def is_in(self, path):
        """Does the file at ``path`` hold exactly this content? (False when it cannot be read.)"""
        try:
            if os.path.getsize(path) != self.size:      # the size first: most changes change it
                return False
            with open(path, "rb") as handle:
                for chunk in self.chunks():
                    if handle.read(len(chunk)) != chunk:
                        return False
                return handle.read(1) == b""
        except (IOError, OSError):
            return False


def write_tree(files, directory, check_mode):
    """Write {relative path: text} under directory; return (all paths, changed paths).

    Every name is checked (safe_paths) before any file is written; a failed write leaves no temporary file."""
    where = safe_paths(list(files), directory)
    paths, changed = [], []
    for name, text in files.items():
        path = where[name]
        paths.append(path)
        content = _Content(text)
        if content.is_in(path):
            continue
        changed.append(path)
        if check_mode:
            continue
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".%s." % os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in content.chunks():
                    handle.write(chunk)
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    return paths, changed


def safe_component(name):
    """``name`` as one plain file-name component: every character outside [A-Za-z0-9_.-] becomes '_', leading dots
    are dropped (no '.', '..' nor hidden file); never empty."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "_", to_text(name, errors="surrogate_or_strict")).lstrip(".")
    return text or "_"


def write_new(directory, stem, suffix, data, mode=0o600):
    """Write ``data`` to a NEW file ``directory/<stem><suffix>`` and return its path.

    The file is created with O_CREAT|O_EXCL|O_NOFOLLOW and ``mode``: never through a symlink, never over an
    existing file (``<stem>.1<suffix>``, ``<stem>.2<suffix>``, ... when the name is taken). The directory is
    created 0700 when missing. The stem must be a plain file-name component (safe_component) and the file must
    resolve inside the directory; a failed write leaves no file behind."""
    if _name_problem(stem + suffix) or "/" in stem + suffix:
        raise UnsafePathError(stem + suffix, directory, "not a plain file-name component")
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    real_dir = os.path.realpath(directory)

    def candidates():
        for count in range(1000):
            path = os.path.join(directory, "%s%s%s" % (stem, ".%d" % count if count else "", suffix))
            if not is_inside(os.path.realpath(os.path.dirname(path)), real_dir):
                raise UnsafePathError(os.path.basename(path), directory, "it resolves outside %s" % real_dir)
            yield path
    return create_new(candidates(), data, mode, "%s%s and 999 numbered variants exist in %s" % (stem, suffix, directory))
