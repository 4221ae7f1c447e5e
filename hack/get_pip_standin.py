#!/usr/bin/env python
"""Offline stand-in for the get-pip.py bootstrap script that ansible-test downloads.

ansible-test bootstraps pip in every sanity virtual environment by running
get-pip-<version>.py, fetched from a host these machines cannot reach. It caches
the script as ~/.ansible/test/cache/get_pip_<version>.py and uses that copy when
present; hack/sanity.sh installs this file there.

Like get-pip.py, it takes pip install arguments (e.g. ``pip==24.2
--no-setuptools --no-wheel``): pip is bootstrapped from the interpreter's
bundled ``ensurepip`` wheel and then upgraded or downgraded from the package
index with the given arguments.
"""

from __future__ import annotations

import subprocess
import sys

# get-pip.py options that ``pip install`` does not understand
GET_PIP_ONLY_OPTIONS = {
    '--no-setuptools': 'setuptools',
    '--no-wheel': 'wheel',
}


def main() -> int:
    """Bootstrap pip with ensurepip, then install the requested packages."""
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    unwanted = [name for option, name in GET_PIP_ONLY_OPTIONS.items() if option in sys.argv[1:]]

    subprocess.run([sys.executable, '-m', 'ensurepip', '--default-pip'], check=True, stdout=subprocess.DEVNULL)

    if args:
        subprocess.run([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check'] + args, check=True)

    if unwanted:
        subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '--yes', '--quiet'] + unwanted, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return 0


if __name__ == '__main__':
    sys.exit(main())
