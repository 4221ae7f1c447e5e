#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nap_export
short_description: Export a NAP plan's perimeter rules for other firewall platforms
version_added: 0.1.0
description:
  - Writes the forward rules of the perimeter devices of a plan (from M(configmgr.nap.nap_plan)) as an
    Aerleon policy tree, so that every platform Aerleon generates for (Juniper, Palo Alto, Arista, Cisco,
    GCP, ...) gets the same rules.
  - The tree holds C(def/networks.yaml) (one network token per address set), C(def/services.yaml) (one
    service token per rule), C(policies/pol/<device>.yaml) (one filter per device, one accept term per
    rule) and C(README.txt). Run C(aclgen --base_directory policies --definitions_directory def
    --output_directory out) in O(dest) to generate the ACLs.
  - Runs on the controller only (an action plugin) and contacts no host. Aerleon itself is not needed
    to export.
  - Input errors (not a plan, an unknown device, a device whose zones do not match C(nap_zones)) fail
    the task before anything is written.
author:
  - configmgr.nap maintainers (@configmgr-nap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
options:
  plan:
    description:
      - The plan, the registered result of M(configmgr.nap.nap_plan) or its C(plan) key, or the content
        of C(flows.json).
    type: raw
    required: true
  format:
    description:
      - Export format.
    type: str
    choices: [aerleon]
    default: aerleon
  dest:
    description:
      - Directory on the controller to write the export to. Created when missing. Files of an earlier
        export that are no longer produced are not removed.
    type: path
    required: true
  devices:
    description:
      - Perimeter devices to export. All perimeter devices of the plan when not set.
    type: list
    elements: str
  targets:
    description:
      - Aerleon targets (generator names) to put in each filter header, for example C(juniper),
        C(cisco), C(arista), C(ciscoxr), C(cisconx), C(paloalto).
      - The filter name and the usual options are filled in for the targets the collection knows;
        others get the filter name only and may need editing.
    type: list
    elements: str
    default: [juniper, cisco]
  filter_name:
    description:
      - Name of the generated filters / ACLs.
    type: str
    default: CONFIGMGR-NAP
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: In check mode nothing is written; C(changed) says whether a file would change.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The export is a pure function in C(plugins/module_utils/nap/backends/aerleon.py).
  - Aerleon is an optional tool of the user's (it is a development requirement of the collection,
    whose tests generate from an export); see C(docs/perimeter-vendors.md).
seealso:
  - module: configmgr.nap.nap_plan
  - name: Aerleon
    description: Aerleon, the multi-platform ACL generator.
    link: https://github.com/aerleon/aerleon
"""

EXAMPLES = r"""
- name: Plan the flows
  configmgr.nap.nap_plan:
  register: nap

- name: Export the perimeter rules as an Aerleon policy
  configmgr.nap.nap_export:
    plan: "{{ nap.plan }}"
    format: aerleon
    dest: ./nap-report/aerleon
    targets: [juniper, arista]
"""

RETURN = r"""
dest:
  description: Absolute path of the export directory.
  returned: success
  type: str
files:
  description: Paths of the files written (or that would be written in check mode).
  returned: success
  type: list
  elements: str
changed_files:
  description: Paths of the files whose content changed.
  returned: success
  type: list
  elements: str
command:
  description: The aclgen command that generates the ACLs from the export, run in RV(dest).
  returned: success
  type: str
  sample: aclgen --base_directory policies --definitions_directory def --output_directory out
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            plan=dict(type="raw", required=True),
            format=dict(type="str", choices=["aerleon"], default="aerleon"),
            dest=dict(type="path", required=True),
            devices=dict(type="list", elements="str"),
            targets=dict(type="list", elements="str", default=["juniper", "cisco"]),
            filter_name=dict(type="str", default="CONFIGMGR-NAP"),
        ),
        supports_check_mode=True,
    )
    module.fail_json(msg="configmgr.nap.nap_export runs as an action plugin on the controller; it cannot run on a host")


if __name__ == "__main__":
    main()
