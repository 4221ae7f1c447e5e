# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-in ansible.windows WITHOUT hiding the real one (SYNTHETIC test support).

Ansible takes a whole collection from the first collections path that has it, so the stand-in collection of this
directory, put first on ANSIBLE_COLLECTIONS_PATH, hides every other plugin of the real ansible.windows
(win_listen_ports_facts, win_command, ...) and a playbook that names one stops before it runs.

``build(dest, search)`` makes ``dest/ansible_collections/ansible/windows``: the real collection (found on the
``search`` paths) as symbolic links, except plugins/modules/win_powershell, which is this directory's stand-in.
Put ``dest`` first on ANSIBLE_COLLECTIONS_PATH instead of this directory:

    python tests/fake_windows/overlay.py /tmp/overlay [collections paths...]   # prints the path to use
"""

from __future__ import absolute_import, division, print_function

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STAND_IN = os.path.join(HERE, "ansible_collections", "ansible", "windows")
DEFAULT_SEARCH = (os.path.join(ROOT, ".cache", "collections"), os.path.join(ROOT, "build", "collections"))
REPLACED = ("win_powershell.py", "win_powershell.ps1")


def find_real(search=DEFAULT_SEARCH):
    for base in search:
        path = os.path.join(base, "ansible_collections", "ansible", "windows")
        if os.path.isdir(os.path.join(path, "plugins", "modules")) and os.path.realpath(path) != os.path.realpath(STAND_IN):
            return path
    raise RuntimeError("the real ansible.windows is on none of %s (hack/install-collections.sh installs it)"
                       % ", ".join(search))


def _link(src, dst):
    if os.path.lexists(dst):
        os.remove(dst)
    os.symlink(src, dst)


def build(dest, search=DEFAULT_SEARCH):
    """-> dest (a collections path): the real ansible.windows with the stand-in win_powershell."""
    real = find_real(search)
    top = os.path.join(dest, "ansible_collections", "ansible", "windows")
    modules = os.path.join(top, "plugins", "modules")
    os.makedirs(modules, exist_ok=True)
    for name in os.listdir(real):
        if name != "plugins":
            _link(os.path.join(real, name), os.path.join(top, name))
    for name in os.listdir(os.path.join(real, "plugins")):
        if name != "modules":
            _link(os.path.join(real, "plugins", name), os.path.join(top, "plugins", name))
    for name in os.listdir(os.path.join(real, "plugins", "modules")):
        if name not in REPLACED:
            _link(os.path.join(real, "plugins", "modules", name), os.path.join(modules, name))
    _link(os.path.join(STAND_IN, "plugins", "modules", "win_powershell.py"), os.path.join(modules, "win_powershell.py"))
    stale = os.path.join(modules, "win_powershell.ps1")
    if os.path.lexists(stale):
        os.remove(stale)
    return dest


if __name__ == "__main__":
    print(build(sys.argv[1], sys.argv[2:] or DEFAULT_SEARCH))
