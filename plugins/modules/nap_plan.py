#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nap_plan
short_description: Turn a NAP inventory into the flow matrix and per-host rules
version_added: 0.1.0
description:
  - Plans every network flow that Network Access Protection (NAP) in Configuration Manager 2007 needs,
    from the inventory groups C(nap_*) and the C(nap_*) settings, and resolves it to inbound and outbound
    rules per host and forward rules per perimeter device, in the collection's canonical rule model.
  - Runs on the controller only (an action plugin) and contacts no host.
  - Optionally writes the report files C(flows.json), C(flows.csv), C(flows.md) and C(topology.mmd).
  - Returns a small result, the B(handle) of the plan (RV(plan_file)) with the summary and the report paths;
    the plan itself stays on the controller, out of what Ansible templates, registers and prints. Every
    module and filter of the collection that takes a plan accepts the handle (the registered result or
    RV(plan_file)), the plan (C(flows.json)) or, for older playbooks, a result with the plan inline.
  - Every error in the input (an unknown setting value, a malformed CIDR, a host without an address,
    a missing peer such as an SHV point with no global catalog, an ambiguous zone) fails the task before
    anything is written, with one message that names the host, group or variable at fault.
  - See the collection's C(docs/inventory.md) for the inventory contract and C(docs/flows-json.md) for
    the format of the plan.
author:
  - configmgr.nap maintainers (@configmgr-nap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
options:
  report_dir:
    description:
      - Directory on the controller to write the report files to. Created when missing.
      - When not set, nothing is written and the plan is only returned.
    type: path
  formats:
    description:
      - Which report files to write.
    type: list
    elements: str
    choices: [json, csv, md, mermaid]
    default: [json, csv, md, mermaid]
  settings:
    description:
      - Settings that override the C(nap_*) variables the task sees, for example
        C(nap_ad_ldap_mode=ldaps). Per-host values in the inventory still win for the host that
        decides the setting (the site server for C(nap_ad_ldap_mode), the HRA for C(nap_hra_transport), ...).
    type: dict
  groups:
    description:
      - Inventory groups to plan from (group name -> list of host names) instead of the task's inventory.
      - Use with O(hostvars); meant for tests and generated inventories.
    type: dict
  hostvars:
    description:
      - Host variables to plan from (host name -> mapping) instead of the task's inventory.
    type: dict
  controller_addresses:
    description:
      - Addresses of the controller, used as C(nap_management_sources) when that setting is not set.
    type: list
    elements: str
  learn_controller_addresses:
    description:
      - When C(nap_management_sources) is not set and O(controller_addresses) is not given, learn the controller's
        addresses by running M(ansible.builtin.setup) (C(gather_subset=network)) where the task runs, and take
        C(ansible_default_ipv4) and C(ansible_default_ipv6).
      - Delegate the task to C(localhost), as the C(configmgr.nap.plan) role does, so that these are the
        controller's addresses. Nothing is gathered when C(nap_management_sources) is set.
    type: bool
    default: false
  publish_stats:
    description:
      - Publish the summary (its lines without the per-host ones), RV(counts) and, when the reports were written
        (not in check mode), RV(report_dir), RV(files) and RV(plan_file) as the custom statistic C(nap_plan), as
        M(ansible.builtin.set_stats) does (C(per_host=false)). In AWX / Automation Platform these are the job's
        artifacts, which a workflow passes to its next nodes.
    type: bool
    default: false
  return_plan:
    description:
      - Also return the whole plan as RV(plan). Costs time and memory on large estates (Ansible copies and
        prints what a task returns); the handle is enough for every consumer.
    type: bool
    default: false
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: In check mode the report files are not written; C(changed) says whether they would change.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The planner is a pure function in C(plugins/module_utils/nap/planner.py); this action only reads the
    inventory and writes files.
seealso:
  - name: Ports used by NAP in Configuration Manager 2007
    description: The Microsoft table the catalogue's seed flows come from (every flow and its source is listed in
      docs/flows.md in the collection).
    link: https://learn.microsoft.com/en-us/previous-versions/system-center/configuration-manager-2007/bb694170(v=technet.10)
"""

EXAMPLES = r"""
- name: Plan the flows of the inventory and write the reports
  configmgr.nap.nap_plan:
    report_dir: ./nap-report
  register: nap

- name: Show the summary
  ansible.builtin.debug:
    msg: "{{ nap.summary }}"

- name: The flows of one host, read through the handle
  ansible.builtin.debug:
    msg: "{{ nap | configmgr.nap.nap_flows(dst_host='nps01') }}"

- name: Plan with LDAPS whatever the inventory says, without writing files
  configmgr.nap.nap_plan:
    settings:
      nap_ad_ldap_mode: ldaps
  register: nap_ldaps
"""

RETURN = r"""
plan_file:
  description:
    - The handle of the plan, a path on the controller to its C(flows.json) (see docs/flows-json.md).
    - It is O(report_dir)/flows.json when the JSON report is written; otherwise a file in the run's private
      temporary directory (mode 0600), removed when the run ends.
    - Pass it, or the whole registered result, as the C(plan) of M(configmgr.nap.win_nap_firewall) and
      M(configmgr.nap.nft_nap_policy) and as the input of the collection's filters.
  returned: success
  type: str
  sample: /home/admin/nap-report/flows.json
counts:
  description: Hosts, perimeter devices, flows and warnings of the plan.
  returned: success
  type: dict
  sample: {"hosts": 9, "perimeter_devices": 1, "flows": 55, "warnings": 0}
plan:
  description:
    - The plan document, the content of C(flows.json) (see docs/flows-json.md).
    - Keys C(format_version), C(settings), C(flows), C(hosts), C(perimeter) and C(warnings).
  returned: when return_plan is true
  type: dict
summary:
  description:
    - Lines of text, hosts, flows and rules per host and device, then warnings.
    - At most 40 per-host and per-device lines, followed by one line that counts the others, so that the
      registered result and the printed summary do not grow with the estate; every host is in the report files.
  returned: success
  type: list
  elements: str
  sample:
    - "9 hosts, 1 perimeter devices, 55 flows (19 catalogue ids)"
files:
  description: Paths of the report files (written, or that would be written in check mode).
  returned: when report_dir is set
  type: list
  elements: str
report_dir:
  description: Absolute path of the report directory.
  returned: when report_dir is set
  type: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            report_dir=dict(type="path"),
            formats=dict(type="list", elements="str", choices=["json", "csv", "md", "mermaid"],
                         default=["json", "csv", "md", "mermaid"]),
            settings=dict(type="dict"),
            groups=dict(type="dict"),
            hostvars=dict(type="dict"),
            controller_addresses=dict(type="list", elements="str"),
            learn_controller_addresses=dict(type="bool", default=False),
            publish_stats=dict(type="bool", default=False),
            return_plan=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.fail_json(msg="configmgr.nap.nap_plan runs as an action plugin on the controller; it cannot run on a host")


if __name__ == "__main__":
    main()
