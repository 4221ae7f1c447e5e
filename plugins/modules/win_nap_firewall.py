#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_nap_firewall
short_description: Make a Windows host's firewall hold exactly the NAP rules of the plan
version_added: 0.1.0
description:
  - Converges the Windows Firewall rules that the collection owns on a Windows host to the wanted rules,
    the rules of one rule group (O(group), default C(ConfigMgr NAP)) whose names carry a unique prefix
    (O(name_prefix), default C(configmgr.nap )). Rules outside the group are never changed or removed.
  - Runs as an action plugin. It validates every input on the controller before contacting the host,
    reads the host once (one C(ansible.windows.win_powershell) call that makes one pass over the
    C(HNetCfg.FwPolicy2) rule collection), computes the difference on the controller with the
    collection's shared rule diff and sends all changes in one more call, which also reads the owned group
    back. When nothing differs, nothing is sent.
  - The apply can never cut the controller off. Owned rules are updated in place (only the changed properties
    are set on the existing rule, C(Protocol) before the ports), missing rules are added, and extra rules are
    removed only after every addition and update succeeded; rules of management flows (C(MGMT-*)) go first.
    The first failing change stops the apply; the result then reports the rules as read back (RV(after)) and
    what is left (RV(left)). A rule is removed under a unique temporary name, so that a foreign rule of the
    same name can never be hit.
  - Values Windows refuses (C(|) in a rule name or description, ports that are not valid for the protocol and
    direction, protocol numbers above 256) fail before any remote call, naming the host, the rule and the value.
    Prefixes with host bits (C(10.0.0.2/8)) are written as their network (C(10.0.0.0/8)).
  - A rule with an empty group whose name is exactly a planned owned name (what C(netsh advfirewall firewall
    add rule) makes, as netsh cannot set a group) is adopted into the group instead of being refused.
  - A rule name used by a rule outside the group is refused (the COM API removes rules by name).
  - Refuses a run that would leave, at any point of the apply or after it, no enabled inbound rule admitting
    the management port (the plan's, else C(ansible_port), else the connection's default, 5986 for
    winrm/psrp over https) from O(management_sources), unless O(allow_lockout=true). It is judged as Windows
    decides it, on every enabled inbound rule (rules of other groups and Group Policy rules included), on the
    effective profile state (Group Policy values under C(HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall)
    first, local rules only where policy merge is allowed), and an allow rule narrowed by interfaces, interface
    types, local addresses, remote ports, edge traversal, security flags or authorised users/computers does not
    count. Narrowing an owned rule by hand is drift.
  - Checks the host's Windows and PowerShell versions first. Windows Server 2008 R2 SP1 with WMF 5.1 and
    newer are managed; older hosts fail with a message naming the host and pointing to O(state=rendered).
  - When Group Policy keeps local rules from taking effect (C(LocalPolicyModifyState)), fails, or warns
    with O(local_policy_override=warn).
  - O(state=rendered) contacts no host and returns three scripts that build the rule set from scratch, each
    as a list of lines, a PowerShell 2.0 script over the C(HNetCfg.FwPolicy2) COM API (Windows Server 2008
    and later; sets the rule group), C(New-NetFirewallRule) commands (2012 and later) and
    C(netsh advfirewall firewall) commands (netsh cannot set a group, so there ownership is the name prefix).
  - See the collection's C(docs/windows.md) for the support matrix, the call counts and the COM facts.
author:
  - configmgr.nap contributors (@configmgr-nap)
options:
  rules:
    description:
      - The wanted rules in the collection's canonical rule model (C(name), C(flow_id), C(direction) C(in)
        or C(out), C(action) C(allow), C(protocol), C(src_addresses), C(dst_addresses), C(src_ports),
        C(dst_ports), C(description), C(source)).
      - For an C(in) rule C(src_addresses) are the remote addresses and C(dst_ports) the local ports; for an
        C(out) rule C(dst_addresses) are remote and C(dst_ports) the remote ports. An empty address list
        means any address. Addresses may be IPv4/IPv6 addresses, CIDRs or C(first-last) ranges.
      - The port keywords C(rpc-epmap) and C(rpc-dynamic) stand alone on an inbound TCP rule and are
        written as Windows spells them (C(RPC-EPMap)/C(RPC) in COM and netsh, C(RPCEPMap)/C(RPC) in
        PowerShell).
      - Names are given without O(name_prefix); the module adds it.
      - Mutually exclusive with O(plan).
    type: list
    elements: dict
  plan:
    description:
      - The plan of M(configmgr.nap.nap_plan) - its handle (the registered result or its
        RV(configmgr.nap.nap_plan#module:plan_file)), or the plan itself (C(flows.json)). It is read on the
        controller; the host gets only its own rules.
      - The module takes the C(inbound) and C(outbound) rules of O(host) from it, its C(nap_management_sources)
        when O(management_sources) is not set, and the host's management port (the anti-lockout check).
    type: raw
  host:
    description:
      - The name of this host in O(plan). Defaults to C(inventory_hostname).
    type: str
  group:
    description:
      - The Windows Firewall rule group (C(Grouping)) the collection owns on the host.
    type: str
    default: ConfigMgr NAP
  name_prefix:
    description:
      - The prefix of every owned rule name on the host, which keeps the names unique (the COM API and
        netsh remove rules by name). Must not be empty.
    type: str
    default: 'configmgr.nap '
  profiles:
    description:
      - The firewall profiles the owned rules apply to.
    type: list
    elements: str
    choices: [all, domain, private, public]
    default: [all]
  state:
    description:
      - C(present) makes the owned group hold exactly the wanted rules and nothing else - the resource modules'
        C(overridden) (as in M(cisco.asa.asa_acls)), scoped to what the collection owns. Missing rules are added,
        changed ones replaced (remove and add), and every rule of the group that is not wanted (a rule added to
        the group by hand included) is removed; rules outside the group are never changed or removed. There is
        no C(merged) or C(replaced), since the group is the collection's, whole.
      - C(absent) removes every owned rule.
      - C(gathered) returns the owned rules in the canonical model (RV(gathered), a list, valid as O(rules))
        and the options they go with (RV(gathered_options)); nothing is changed. The same shape as
        M(configmgr.nap.nft_nap_policy).
      - C(rendered) returns the three scripts of RV(rendered), each a list of lines, without contacting the
        host.
    type: str
    choices: [present, absent, gathered, rendered]
    default: present
  management_sources:
    description:
      - The addresses (CIDRs) Ansible manages the host from, for the anti-lockout check.
      - Defaults to the plan's C(nap_management_sources), then to the C(nap_management_sources) variable.
        When none is known, WinRM must stay open from every address of the connection's family.
    type: list
    elements: str
  allow_lockout:
    description:
      - Apply even when no enabled inbound rule would admit the management port from O(management_sources)
        afterwards or at some point of the apply, and skip that check on the rules read back after the apply.
    type: bool
    default: false
  local_policy_override:
    description:
      - What to do when the host reports that locally added rules do not take effect
        (C(LocalPolicyModifyState) C(GP_OVERRIDE) or C(INBOUND_BLOCKED)) and O(state=present).
      - C(fail) stops before any change; C(warn) writes the rules and returns a warning.
      - With O(state=absent) or O(state=gathered) the module only warns.
    type: str
    choices: [fail, warn]
    default: fail
  predefined:
    description:
      - What to do with the Windows predefined rules (e.g. C(NPS-NPSSvc-In-UDP-1812), installed and enabled from any
        address by the Network Policy Server role) of the groups the catalogue names for the host's planned inbound
        flows, when they admit more than the plan for the same port (remote address Any where the plan has sources,
        or a wider port set). Groups are matched by their resource string (C(@FirewallAPI.dll,-28502)), the groups
        without one (Network Policy Server, the IIS groups) by their rules' names; the read is the same single pass.
      - C(ignore) does not read them (O(state=absent) still re-enables what an earlier C(disable) recorded).
      - C(report) returns them (RV(predefined), RV(gathered_predefined) with O(state=gathered)), lists their names in
        RV(drift) (C(predefined)) and warns; nothing is changed for them.
      - C(disable) turns them off AFTER the owned rules are in place, in the same apply call and covered by the
        anti-lockout check of every step (turning off the Windows Remote Management rule that admits the controller
        is refused like any other step that would cut it). What it disabled is returned (RV(predefined)), kept in the
        backup, and recorded on the host in a disabled marker rule of the owned group (C(<name_prefix>predefined-disabled),
        its description lists the rules); the predefined rules themselves are not edited otherwise. O(state=absent)
        re-enables exactly the rules the marker lists and removes it. Rules already disabled stay so when the option
        changes back to C(report).
      - C(disable) is refused, naming the group and nothing changed, for the groups that serve the whole domain on a
        domain controller (Active Directory Domain Services, DNS Service, Kerberos Key Distribution Center).
    type: str
    choices: [ignore, report, disable]
    default: report
  backup:
    description:
      - Before a change, save the owned rules as read from the host (Windows properties and canonical model)
        to a new JSON file on the controller, whose name is returned in RV(backup_path); see O(backup_options).
        M(configmgr.nap.nft_nap_policy) takes the same options and writes its backup on the target.
      - No backup is made when nothing changes (or in check mode).
    type: bool
    default: false
  backup_options:
    description:
      - Where the backup of O(backup=true) is written on the controller, as C(backup_options) of the
        C(ansible.netcommon) resource modules. Ignored without O(backup=true).
      - The file is created new with mode C(0600) and never through a symlink; an existing file is never
        overwritten, a counter is added to the name instead (C(<stem>.1.json), ...; RV(backup_path) is the name
        used).
    type: dict
    suboptions:
      dir_path:
        description:
          - Directory on the controller for the backup file, created with mode C(0700) when missing.
          - Defaults to C(backup/) beside the playbook.
        type: path
      filename:
        description:
          - Name of the backup file in O(backup_options.dir_path); a plain file name (no C(/)).
          - Defaults to C(<host>_win_nap_firewall.<date>@<time>.json), the host name made safe for a file
            name.
        type: str
  backup_dir:
    description:
      - Deprecated, use O(backup_options.dir_path) instead; removed in release 1.0.0. Still works and warns.
      - Mutually exclusive with O(backup_options).
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The host is read (the read script declares C(SupportsShouldProcess)); nothing is written.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: >-
      One line per rule added, removed or changed, inbound rules first, then outbound, in the order of the
      rules on the host (before) and of the wanted rules (after), each line naming its rule list
      (C(inbound: <rule>), as M(configmgr.nap.nft_nap_policy) names the chain).
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: windows
requirements:
  - The C(ansible.windows) collection (C(ansible.windows.win_powershell)) on the controller.
  - Windows Server 2008 R2 SP1 with WMF 5.1, or newer, on the host (older hosts - O(state=rendered)).
notes:
  - Changed rules are applied as remove and add in the same call; an apply error is reported with the rule
    it concerns, the other changes are still made, and the next run completes the rest.
  - RV(commands) lists the changes in netsh syntax for review; the module applies them through the COM API.
  - Only the firewall rules are managed. Turn the profiles on and set their default inbound action with
    M(ansible.windows.win_firewall).
seealso:
  - module: configmgr.nap.nap_plan
  - module: ansible.windows.win_firewall
  - module: ansible.windows.win_powershell
"""

EXAMPLES = r"""
- name: Converge the host's NAP rules to the plan
  configmgr.nap.win_nap_firewall:
    plan: "{{ hostvars.localhost.nap }}"     # registered result of configmgr.nap.nap_plan: the plan's handle

- name: Report drift only (check mode, per-rule diff)
  configmgr.nap.win_nap_firewall:
    plan: nap-report/flows.json         # a plan file written by configmgr.nap.nap_plan (report_dir)
  check_mode: true
  diff: true
  register: __nap_drift

- name: Explicit rules, domain profile only, with a backup of the owned rules before a change
  configmgr.nap.win_nap_firewall:
    management_sources: [203.0.113.10/32]
    profiles: [domain]
    backup: true
    backup_options:
      dir_path: /var/lib/nap-reports/backup      # a directory that outlives the run (see the user guide, AWX)
    rules:
      - name: MGMT-WINRM-TCP-IN
        flow_id: MGMT-WINRM
        direction: in
        protocol: tcp
        src_addresses: [203.0.113.10/32]
        dst_ports: [5985, 5986]
      - name: NAP-SHV-CONFIG-TCP-IN-EPMAP
        flow_id: NAP-SHV-CONFIG
        direction: in
        protocol: tcp
        src_addresses: [192.0.2.10]
        dst_ports: [rpc-epmap]

- name: Scripts for a Windows Server 2008 host that Ansible cannot manage
  configmgr.nap.win_nap_firewall:
    plan: "{{ hostvars.localhost.nap }}"     # registered result of configmgr.nap.nap_plan: the plan's handle
    host: nps01
    state: rendered
  delegate_to: localhost
  register: __nap_scripts

- name: Save the netsh form as a .cmd file (CRLF line endings)
  ansible.builtin.copy:
    content: "{{ __nap_scripts.rendered.netsh | join('\r\n') }}\r\n"
    dest: ./nps01-nap.cmd
    mode: "0600"
  delegate_to: localhost

- name: Read the owned rules back in the model
  configmgr.nap.win_nap_firewall:
    state: gathered
  register: __nap_gathered

- name: Remove every rule the collection owns
  configmgr.nap.win_nap_firewall:
    state: absent

- name: NPS host - the plan's scoped RADIUS rules only; turn off the NPS rules that admit RADIUS from any address
  configmgr.nap.win_nap_firewall:
    plan: "{{ nap_plan_result }}"
    predefined: disable
"""

RETURN = r"""
before:
  description: The owned rules before the run, in the canonical model (names without the prefix).
  returned: state is present or absent
  type: list
  elements: dict
after:
  description:
    - The owned rules after the run. After an apply, as read back from the host in the same call (also after a
      partial apply); in check mode and when nothing changes, the wanted rules.
  returned: state is present or absent
  type: list
  elements: dict
commands:
  description: The changes, in netsh syntax for review (applied through the COM API).
  returned: state is present or absent
  type: list
  elements: str
  sample:
    - set rule name="configmgr.nap MGMT-WINRM-TCP-IN" new RemoteAddresses=203.0.113.10/32
    - add rule name="configmgr.nap NAP-SHV-INSTALL-TCP-IN" dir=in action=allow protocol=tcp localport=445
      remoteip=192.0.2.10/32 profile=any enable=yes
    - delete rule name="configmgr.nap OLD-RULE"
rule_changes:
  description: The rule diff of the shared diff module (C(op) add, remove or update, C(name), C(fields)).
  returned: state is present or absent
  type: list
  elements: dict
drift:
  description:
    - Rule names C(missing), C(extra) and C(changed) in the owned group compared to the wanted rules.
    - C(predefined) lists the enabled predefined rules wider than the plan (O(predefined=report)).
  returned: state is present or absent
  type: dict
gathered:
  description:
    - The rules of the owned group in the canonical model (names without the prefix), in the order the host
      lists them, valid as O(rules). An empty list when the group has no rule.
    - The same shape as RV(configmgr.nap.nft_nap_policy#module:gathered).
  returned: state is gathered
  type: list
  elements: dict
gathered_options:
  description:
    - The options RV(gathered) goes with, so that O(rules=gathered) with these options gives C(changed=false).
      M(configmgr.nap.nft_nap_policy) returns the same key with its own options.
  returned: state is gathered
  type: dict
  contains:
    group:
      description: O(group).
      type: str
    name_prefix:
      description: O(name_prefix).
      type: str
    profiles:
      description: The profiles of the owned rules when they all have the same, else O(profiles).
      type: list
      elements: str
rendered:
  description:
    - Three scripts that build the rule set from scratch, each a list of lines without line endings.
    - Join C(com) and C(netsecurity) with C(\n), C(netsh) with C(\r\n) (a C(.cmd) file), each plus a final
      line ending, to get the script files.
  returned: state is rendered
  type: dict
  contains:
    com:
      description: PowerShell 2.0 script over C(HNetCfg.FwPolicy2) (Windows Server 2008 and later).
      type: list
      elements: str
    netsecurity:
      description: C(New-NetFirewallRule) commands (Windows Server 2012 and later).
      type: list
      elements: str
    netsh:
      description: C(netsh advfirewall firewall) commands, as the lines of a C(.cmd) batch file.
      type: list
      elements: str
host_info:
  description: What the read returned about the host.
  returned: when the host was read
  type: dict
  contains:
    os_version:
      description: Windows version (C([Environment]::OSVersion.Version)).
      type: str
    ps_version:
      description: PowerShell version.
      type: str
    local_policy_modify_state:
      description: C(INetFwPolicy2.LocalPolicyModifyState) (0 OK, 1 GP_OVERRIDE, 2 INBOUND_BLOCKED).
      type: int
    rule_count:
      description: How many rules the host has (the read walks them once).
      type: int
remote_calls:
  description: How many remote calls the run made (1 to read, 1 more when changes are applied and read back).
  returned: when the host was read
  type: int
apply_results:
  description:
    - Per-op results of the apply call, in the order applied (C(op) add, update or remove, C(name), C(ok),
      C(error), C(set) the properties set, C(removed) the rules removed, C(skipped) when an earlier op failed).
  returned: when changes were applied
  type: list
  elements: dict
left:
  description:
    - What the apply left undone, compared on the rules read back from the host (C(missing), C(extra),
      C(changed) rule names; only the non-empty lists). An empty dict when the host holds the wanted rules.
  returned: when changes were applied
  type: dict
predefined:
  description:
    - The enabled predefined inbound rules wider than the plan (O(predefined=report) or C(disable)); with
      O(predefined=disable), C(disabled) the rules turned off by this run and C(recorded) every rule the marker
      lists; with O(state=absent), C(enabled) the rules re-enabled.
  returned: state is present and predefined is not ignore, or state is absent
  type: dict
  contains:
    wider:
      description:
        - One dict per rule - C(name), C(grouping) (as Windows holds it), C(group) (the English group name),
          C(resource), C(protocol), C(local_ports), C(remote_addresses), C(why) (what it admits beyond the plan).
      type: list
      elements: dict
    disabled:
      description: C([name, grouping]) of each rule this run disabled.
      type: list
      elements: list
    recorded:
      description: C([name, grouping]) of every rule the marker lists after the run.
      type: list
      elements: list
    enabled:
      description: C([name, grouping]) of each rule O(state=absent) re-enabled.
      type: list
      elements: list
gathered_predefined:
  description: The enabled predefined inbound rules wider than the planned rules (as RV(predefined) C(wider)).
  returned: state is gathered and predefined is not ignore
  type: list
  elements: dict
backup_path:
  description: The backup file written on the controller (a new file, mode C(0600)).
  returned: backup is true and the owned rules changed
  type: str
  sample: /home/user/playbooks/backup/nps01_win_nap_firewall.2026-01-02@03:04:05.json
"""

from ansible.module_utils.basic import AnsibleModule


def argument_spec():
    return dict(
        rules=dict(type="list", elements="dict"),
        plan=dict(type="raw"),
        host=dict(type="str"),
        group=dict(type="str", default="ConfigMgr NAP"),
        name_prefix=dict(type="str", default="configmgr.nap "),
        profiles=dict(type="list", elements="str", choices=["all", "domain", "private", "public"], default=["all"]),
        state=dict(type="str", default="present", choices=["present", "absent", "gathered", "rendered"]),
        management_sources=dict(type="list", elements="str"),
        allow_lockout=dict(type="bool", default=False),
        local_policy_override=dict(type="str", default="fail", choices=["fail", "warn"]),
        predefined=dict(type="str", default="report", choices=["ignore", "report", "disable"]),
        backup=dict(type="bool", default=False),
        backup_options=dict(type="dict", options=dict(
            dir_path=dict(type="path"),
            filename=dict(type="str"),
        )),
        backup_dir=dict(type="path"),      # deprecated (1.0.0): backup_options.dir_path; mapped in the action
    )


MUTUALLY_EXCLUSIVE = [["rules", "plan"], ["backup_dir", "backup_options"]]


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    module.fail_json(msg="configmgr.nap.win_nap_firewall runs as an action plugin on the controller; "
                         "it cannot run on a host")


if __name__ == "__main__":
    main()
