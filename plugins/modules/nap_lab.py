#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nap_lab
short_description: Build or remove a NAP site in Linux network namespaces (test lab)
version_added: 0.1.0
description:
  - Builds, on the machine it runs on (as root), a NAP site made of Linux network namespaces, from a lab
    definition (zones, routers, hosts), with one namespace per host and router, one switch namespace per zone
    (a bridge that the zone's hosts and routers are plugged into with veth pairs), addresses from the
    benchmarking range 198.18.0.0/15, and routes between the lab zones through the routers.
  - The machine's own network namespace is never changed. No veth reaches it and no namespace has a route out
    of the lab. IP forwarding is enabled inside router namespaces only.
  - Writes, under O(lab_dir), an interpreter wrapper per namespace (C(bin/<host>-python), which runs
    C(ip netns exec <namespace> <python>) with absolute paths), a tiny TCP listener started in each host that
    has C(listen) ports (pid files under C(run/)), and an Ansible inventory of the lab (C(inventory.yml)) in
    which every lab host uses C(ansible_connection=local) and its wrapper as C(ansible_python_interpreter).
  - Starts the real daemons named in a host's C(services) inside its namespace, each with its own configuration,
    pid, socket, log and state paths under C(<lab_dir>/srv/<host>/<service>/) (nothing is read from or written to
    the machine's own daemon paths, and nothing listens in the machine's own namespace) -
    C(samba_dc) (C(samba-tool domain provision) once per lab, then C(samba)),
    C(smbd) (smbd and samba-dcerpcd), C(rpc) (samba-dcerpcd alone), C(freeradius) (a copy of Debian's
    configuration, the lab's enforcement points as RADIUS clients with the secret C(vars.nap_radius_secret)),
    C(nginx) (self-signed certificate), C(dhcp_server) and C(dhcp_relay) (dnsmasq), C(charon) (strongSwan, with
    its own C(strongswan.conf)) and C(ntp) (an NTP responder in the lab listener). See C(docs/lab.md).
  - Creating twice is a no-op (a daemon whose configuration changed is restarted). O(state=absent) removes every
    namespace (with its veths and bridges) and every process the lab made, also after a create that stopped half
    way, using the state file it writes first.
  - O(prefix) and O(base_subnet) let two labs (for example parallel Molecule scenarios) run side by side.
author:
  - configmgr.nap maintainers (@configmgr-nap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  state:
    description:
      - C(present) builds the lab (missing parts only); C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  definition:
    description:
      - Path of the lab definition file (YAML, see C(examples/lab/lab.yml)).
      - Mutually exclusive with O(lab).
    type: path
  lab:
    description:
      - The lab definition as a mapping, instead of O(definition).
    type: dict
  prefix:
    description:
      - Prefix of every namespace name (C(<prefix>-<host>), C(<prefix>-sw-<zone>)).
      - Letters, digits and C(-), at most 16 characters.
    type: str
    default: nap
  base_subnet:
    description:
      - The subnet the lab's zones are cut from (zone C(i) is the C(i)-th subnet of the zone size). Must lie in
        198.18.0.0/15. Overrides the definition's C(base_subnet).
    type: str
  lab_dir:
    description:
      - Directory for the wrappers, pid files, state file and inventory. Defaults to C(build/lab/<prefix>)
        under the current directory.
    type: path
  windows_vantages:
    description:
      - "Make the lab's Windows-platform hosts probe through the Windows path of C(verify.yml)
        (M(configmgr.nap.win_nap_port_probe)): the inventory leaves C(nap_probe_capable) off on them (and reads their
        listeners with C(listen_ports_facts)); the routers and Linux hosts keep M(configmgr.nap.nap_port_probe)."
      - The lab's hosts are Linux namespaces, so C(ansible.windows.win_powershell) must then be the stand-in of
        C(tests/fake_windows) (through C(tests/fake_windows/overlay.py)), which makes the sender's exchanges inside
        the namespace; see C(docs/lab.md).
    type: bool
    default: false
  python:
    description:
      - Absolute path of the Python interpreter the wrappers run. Defaults to the interpreter running this
        module.
    type: path
  listeners:
    description:
      - Start the TCP listeners of the hosts that have C(listen) ports.
    type: bool
    default: true
  services:
    description:
      - Start the daemons named in the hosts' C(services).
    type: bool
    default: true
notes:
  - Needs root, C(ip) (iproute2) and a kernel with network namespaces, veth and bridge support.
  - The services need Debian's samba, samba-ad-provision, freeradius, nginx-light, dnsmasq-base, strongswan-charon,
    openssl and util-linux (C(unshare)); a missing one fails the create with the package to install.
  - "Runs on the controller (C(hosts: localhost)); it changes nothing outside the namespaces it creates."
attributes:
  check_mode:
    support: full
    details: Reports whether the lab would be created or removed.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Build the lab
  configmgr.nap.nap_lab:
    definition: "{{ playbook_dir }}/../examples/lab/lab.yml"
    lab_dir: "{{ playbook_dir }}/../build/lab/nap"
  become: true

- name: A second lab beside the first
  configmgr.nap.nap_lab:
    definition: examples/lab/lab.yml
    prefix: nap2
    base_subnet: 198.19.16.0/20

- name: Remove the lab
  configmgr.nap.nap_lab:
    definition: examples/lab/lab.yml
    state: absent
"""

RETURN = r"""
namespaces:
  description: The lab's namespaces.
  returned: always
  type: list
  elements: str
hosts:
  description: Per lab host (and router) its namespace, addresses, zone(s), interpreter wrapper, listener ports and
    services.
  returned: always
  type: dict
inventory:
  description: Path of the generated inventory of the lab.
  returned: always
  type: str
lab_dir:
  description: The lab directory.
  returned: always
  type: str
zones:
  description: Zone name -> CIDR of the lab.
  returned: always
  type: dict
actions:
  description: What the run did (or would do in check mode), one line each.
  returned: always
  type: list
  elements: str
"""

import os
import sys
from collections import OrderedDict

from ansible.module_utils.basic import AnsibleModule

# The lab's code: topology.py (the definition, addresses, the inventory), services.py (the daemons),
# supervision.py (namespaces and processes), scripts.py (the listener and spawn scripts it writes out).
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.supervision import LabSupervisor
from ansible_collections.configmgr.nap.plugins.module_utils.nap.lab.topology import LabError, LabTopology, load_definition, services_of

SECRET_KEYS = ("secret", "nap_radius_secret", "password")


def _secrets_in(node):
    """Every value of a secret-named key in a lab definition (RADIUS shared secrets, passwords)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and isinstance(value, (str, int)) and str(value):
                yield str(value)
            else:
                yield from _secrets_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secrets_in(item)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            definition=dict(type="path"),
            lab=dict(type="dict"),
            prefix=dict(type="str", default="nap"),
            base_subnet=dict(type="str"),
            lab_dir=dict(type="path"),
            python=dict(type="path"),
            listeners=dict(type="bool", default=True),
            services=dict(type="bool", default=True),
            windows_vantages=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("definition", "lab")],
        required_one_of=[("definition", "lab")],
        supports_check_mode=True,
    )
    params = module.params
    for secret in _secrets_in(params.get("lab")):     # an inline definition's secrets stay out of -vvv output
        module.no_log_values.add(secret)
    if os.geteuid() != 0:
        module.fail_json(msg="nap_lab creates network namespaces and must run as root (become: true)")
    try:
        topo = LabTopology(load_definition(params["definition"], params["lab"]), params["prefix"], params["base_subnet"],
                           windows_vantages=params["windows_vantages"])
    except (LabError, IOError, OSError, ValueError) as exc:
        module.fail_json(msg="nap_lab: %s" % exc)
    lab_dir = os.path.abspath(params["lab_dir"] or os.path.join("build", "lab", params["prefix"]))
    python = params["python"] or sys.executable
    if not os.path.isabs(python):
        module.fail_json(msg="python must be an absolute path, got %s" % python)
    lab = LabSupervisor(module, topo, lab_dir, python)
    try:
        if params["state"] == "present":
            lab.create()
        else:
            lab.destroy()
    except LabError as exc:
        module.fail_json(msg="nap_lab: %s" % exc, actions=lab.actions)
    hosts = OrderedDict()
    for node, spec in topo.nodes.items():
        hosts[node] = dict(netns=topo.netns(node), zones=spec["zones"],
                           addresses=[str(topo.address(node, z)) for z in spec["zones"]],
                           interpreter=lab.path("bin", "%s-python" % node),
                           router=node in topo.routers, listen=[int(p) for p in spec.get("listen") or []],
                           services=list(services_of(spec)))
    module.exit_json(changed=bool(lab.actions), actions=lab.actions, namespaces=topo.namespaces(), hosts=hosts,
                     inventory=lab.path("inventory.yml"), lab_dir=lab_dir,
                     zones=dict((z, str(n)) for z, n in topo.zones.items()))


if __name__ == "__main__":
    main()
