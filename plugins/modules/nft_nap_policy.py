#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nft_nap_policy
short_description: Make a Linux router or host enforce exactly the NAP plan with one owned nftables table
version_added: 0.1.0
description:
  - Converges one nftables table that the collection owns (default C(inet configmgr_nap)) to the rules of
    the NAP plan for this host or perimeter device, and touches nothing else. Other tables are never
    flushed, changed or deleted.
  - The table has one named set per zone and address family, a C(forward) chain (hook forward, policy
    accept) that accepts established and related traffic, the management flows, the planned forward rules,
    and then drops unplanned traffic between two different zones it owns; traffic between zones it does not
    own passes untouched. An C(input) chain does the same for the host's own inbound rules, dropping only
    unplanned traffic that comes from an owned zone (loopback and IPv6 neighbour discovery stay open). An
    C(output) chain is added only when outbound rules are planned.
  - Every planned rule carries the comment C(<name>|<flow_id>), which is how the module reads the table back.
  - The module reads the table once (C(nft -j list table)), compares it with the wanted rules through the
    collection's shared rule diff, and when something differs replaces the whole owned table in one atomic
    C(nft -f) transaction, validated first with C(nft -c). When nothing differs, nothing is written.
  - Drift (a rule deleted, edited or added by hand inside the owned table, or the table deleted) is reported
    in check mode and repaired by the next run.
  - See the collection's C(docs/nftables.md) for how the owned table composes with another table that has a
    drop policy.
author:
  - configmgr.nap maintainers (@configmgr-nap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  rules:
    description:
      - The wanted rules, in the collection's canonical rule model (as in the plan's C(inbound), C(outbound)
        and C(forward) lists). C(in) rules go to the input chain, C(forward) rules to the forward chain and
        C(out) rules to an output chain.
      - Mutually exclusive with O(plan).
    type: list
    elements: dict
  plan:
    description:
      - The plan of M(configmgr.nap.nap_plan) - its handle (the registered result or its
        RV(configmgr.nap.nap_plan#module:plan_file)), or the plan itself (C(flows.json)). The action plugin reads
        it on the controller and sends the host only what it needs - the rules of O(host) (inbound, outbound and,
        for a perimeter device, forward), the owned zones with their networks, the management sources and
        ports, and the host's dynamic RPC range, all as the planner decided them.
      - A perimeter device owns the zones it joins plus the zones that the plan's other perimeter devices join
        to them (devices in series), so that each device on the path drops unplanned traffic. A host owns every
        zone of C(nap_zones).
      - Mutually exclusive with O(rules).
    type: raw
  host:
    description:
      - The name of this host or perimeter device in O(plan).
      - Defaults to C(inventory_hostname).
    type: str
  management_ports:
    description:
      - The TCP ports the anti-lockout rules keep open from O(management_sources).
      - With O(plan), the management ports the planner decided (each host's C(ansible_port), else its
        connection's default); a perimeter device keeps those of every host of the plan open across it.
      - Without a plan, SSH (22) and WinRM (5985, 5986).
    type: list
    elements: int
  zones:
    description:
      - The zones the table owns, as zone name -> list of CIDRs. Overrides the zones taken from O(plan).
      - Zone networks may nest; the most specific zone wins, as in the planner.
    type: dict
  management_sources:
    description:
      - The addresses Ansible manages hosts from. SSH (TCP 22) and WinRM (TCP 5985, 5986) from them stay open on
        the input chain and across the forward chain, whatever the plan says, unless O(allow_lockout=true).
      - Defaults to the plan's C(nap_management_sources); without a plan, to the client address of the SSH
        connection the module runs through (C(SSH_CONNECTION)), when there is one.
    type: list
    elements: str
  allow_lockout:
    description:
      - Leave out the management anti-lockout rules, so that only the planned rules decide.
      - With C(true) a plan without the C(MGMT-*) flows can cut the connection Ansible uses.
    type: bool
    default: false
  rpc_dynamic_range:
    description:
      - The dynamic RPC port range that the C(rpc-dynamic) keyword of inbound rules stands for (C(low-high)).
      - Defaults to the plan's value for O(host), else C(49152-65535).
    type: str
  table:
    description:
      - Name of the owned table.
    type: str
    default: configmgr_nap
  family:
    description:
      - Family of the owned table. With C(ip) or C(ip6), the addresses of the other family are left out (with a
        warning).
    type: str
    choices: [inet, ip, ip6]
    default: inet
  state:
    description:
      - C(present) makes the owned table hold exactly the wanted rules and nothing else - the resource modules'
        C(overridden) (as in M(cisco.asa.asa_acls)), scoped to what the collection owns. Missing rules are added,
        changed ones replaced, and every rule of the owned table that is not wanted (a rule added by hand
        included) is removed; nothing outside the owned table is read for change or removed. There is no
        C(merged) or C(replaced), since the table is the collection's, whole.
      - C(absent) deletes the owned table (and nothing else).
      - C(gathered) reads the owned table and returns its rules in the canonical model (RV(gathered), a list,
        valid as O(rules) input) and the options they go with (RV(gathered_options)); nothing is changed. The
        same shape as M(configmgr.nap.win_nap_firewall).
      - C(rendered) returns the nft transaction that C(present) would apply as a list of lines (RV(rendered))
        without reading or changing the host; C(nft) need not be installed.
    type: str
    choices: [present, absent, gathered, rendered]
    default: present
  backup:
    description:
      - Before changing or deleting the owned table, save its current content as an C(nft -f) script that
        restores the table exactly as it was. The script is returned (RV(backup_content)) and written to a new
        file on the target (the table lives there), whose name is returned in RV(backup_path); see
        O(backup_options). M(configmgr.nap.win_nap_firewall) takes the same options and writes its backup on
        the controller.
      - The script first deletes the owned table (C(table <family> <table>), a no-op when the table exists, then
        C(delete table <family> <table>)) and then declares it from the C(nft list table) text, all in one
        transaction, so C(nft -f <backup>) replaces the table instead of merging the saved rules into the
        current ones, and works whether or not the table exists at that time.
      - No backup is made when nothing changes (or in check mode).
    type: bool
    default: false
  backup_options:
    description:
      - Where the backup of O(backup=true) is written on the target, as C(backup_options) of the
        C(ansible.netcommon) resource modules. Ignored without O(backup=true).
      - The file is created new with mode C(0600) and never through a symlink; an existing file is never
        overwritten, a counter is added to the name instead (C(<name>.1.nft), C(<name>.2.nft), ...;
        RV(backup_path) is the name used).
    type: dict
    suboptions:
      dir_path:
        description:
          - Directory on the target for the backup file, created with mode C(0700) when missing.
          - Defaults to C(/var/backups/configmgr_nap).
        type: path
      filename:
        description:
          - Name of the backup file in O(backup_options.dir_path); a plain file name (no C(/)).
          - Defaults to C(<family>-<table>-<timestamp>.nft).
        type: str
  backup_path:
    description:
      - Deprecated, use O(backup_options) instead; removed in release 1.0.0. Still works and warns.
      - A directory (one that exists, or a path ending in C(/)) is taken as O(backup_options.dir_path); any
        other path as O(backup_options.dir_path) plus O(backup_options.filename).
      - Mutually exclusive with O(backup_options).
    type: path
attributes:
  check_mode:
    support: full
    details: Reports the per-rule changes and the predicted RV(after) without writing anything.
  diff_mode:
    support: full
    details: >-
      One line per rule that is added, removed or changed, plus changed sets, chains and the table's own
      rules, in table order (the sets, then each chain from its top), each rule line naming its chain
      (C(chain forward: <rule>)).
  platform:
    support: full
    platforms: posix
requirements:
  - nftables (the C(nft) command; Debian package C(nftables)) and a kernel with nf_tables.
  - root (use C(become)).
notes:
  - The table is always rendered whole and applied as C(table ...; delete table ...; table ... { ... }) in
    one transaction, so a packet never sees a half-applied policy. RV(commands) lists the same change per
    rule in nft syntax, for review.
  - Rule descriptions are not stored in nft (comments hold at most 128 bytes); RV(before) shows the wanted
    description for rules that are exactly as planned.
  - A drop in another table is final. If the host has another table with a drop policy on the same hook, the
    planned flows must be accepted there too; the module warns when it sees such a chain.
seealso:
  - module: configmgr.nap.nap_plan
"""

EXAMPLES = r"""
- name: Converge a perimeter router to the plan
  configmgr.nap.nft_nap_policy:
    plan: "{{ hostvars.localhost.nap }}"     # registered result of configmgr.nap.nap_plan: the plan's handle
  become: true

- name: Report drift only (check mode, per-rule diff)
  configmgr.nap.nft_nap_policy:
    plan: nap-report/flows.json         # a plan file written by configmgr.nap.nap_plan (report_dir)
    host: "{{ inventory_hostname }}"
  check_mode: true
  diff: true
  register: __nap_drift

- name: Explicit rules and zones, with a backup of the previous table on the target
  configmgr.nap.nft_nap_policy:
    zones:
      servers: [192.0.2.0/24]
      clients: [198.51.100.0/24]
    management_sources: [203.0.113.10]
    rules:
      - name: IPSEC-HRA-TCP-FWD
        flow_id: IPSEC-HRA
        direction: forward
        protocol: tcp
        src_addresses: [198.51.100.0/24]
        dst_addresses: [192.0.2.30]
        dst_ports: [443]
    backup: true
    backup_options:
      dir_path: /var/backups/configmgr_nap
      filename: "{{ inventory_hostname }}-before-nap.nft"

- name: Read the owned table back as rules
  configmgr.nap.nft_nap_policy:
    state: gathered
  register: __nap_gathered

- name: Feed them back (a list of rules, as configmgr.nap.win_nap_firewall returns)
  configmgr.nap.nft_nap_policy:
    rules: "{{ __nap_gathered.gathered }}"
    zones: "{{ __nap_gathered.gathered_options.zones }}"
    management_sources: "{{ __nap_gathered.gathered_options.management_sources }}"
    rpc_dynamic_range: "{{ __nap_gathered.gathered_options.rpc_dynamic_range }}"
  check_mode: true

- name: Show the nft transaction without touching the host
  configmgr.nap.nft_nap_policy:
    plan: "{{ hostvars.localhost.nap }}"     # registered result of configmgr.nap.nap_plan: the plan's handle
    host: rtr01
    state: rendered
  register: __nap_rendered

- name: Save it as a file to run with nft -f
  ansible.builtin.copy:
    content: "{{ __nap_rendered.rendered | join('\\n') }}\n"
    dest: ./rtr01.nft
    mode: "0600"
  delegate_to: localhost

- name: Remove the owned table
  configmgr.nap.nft_nap_policy:
    state: absent
"""

RETURN = r"""
before:
  description:
    - The owned table before the run, as C(present), C(table), C(zones), C(management_sources) and
      C(rules) (canonical rule dicts).
    - When O(state=present) and nothing changes, returned only in diff mode (C(--diff), or C(diff=true) on the task), so
      that a no-op run carries no copy of the table; RV(drift) and RV(rule_changes) are always returned.
  returned: state is absent; state is present and something changed; state is present, nothing changed and diff
    mode is on
  type: dict
after:
  description:
    - The owned table after the run, in the same form as RV(before). In check mode, the predicted table.
    - When O(state=present) and nothing changes, returned only in diff mode, as RV(before).
  returned: state is absent; state is present and something changed; state is present, nothing changed and diff
    mode is on
  type: dict
commands:
  description: The per-rule (and per set or chain) changes in nft syntax, for review. The module applies them
    as one rewrite of the owned table (RV(script)).
  returned: always
  type: list
  elements: str
  sample:
    - delete rule inet configmgr_nap forward handle 12  # IPSEC-HRA-TCP-FWD
    - add rule inet configmgr_nap forward ip saddr 198.51.100.0/24 ip daddr 192.0.2.30/32 tcp dport 443 counter
      accept comment "IPSEC-HRA-TCP-FWD|IPSEC-HRA"
rule_changes:
  description: The rule diff of the shared diff module (C(op) add, remove or update, C(name), C(fields)).
  returned: state is present
  type: list
  elements: dict
drift:
  description: Rule names C(missing), C(extra) and C(changed) in the owned table compared to the wanted rules.
  returned: state is present
  type: dict
script:
  description: The nft transaction that was (or, in check mode, would be) applied.
  returned: when changed, and state is present or absent
  type: str
gathered:
  description:
    - The rules of the owned table in the canonical model, in table order (the input chain, then forward, then
      output), valid as O(rules). An empty list when the table does not exist.
    - The same shape as RV(configmgr.nap.win_nap_firewall#module:gathered).
  returned: state is gathered
  type: list
  elements: dict
gathered_options:
  description:
    - The options RV(gathered) goes with, so that O(rules=gathered) with these options gives C(changed=false).
      M(configmgr.nap.win_nap_firewall) returns the same key with its own options.
  returned: state is gathered
  type: dict
  contains:
    table:
      description: O(table).
      type: str
    family:
      description: O(family).
      type: str
    zones:
      description: The owned zones, the effective, disjoint networks of the zone sets (zone -> CIDRs).
      type: dict
    management_sources:
      description: The sources of the table's anti-lockout rules.
      type: list
      elements: str
    rpc_dynamic_range:
      description: The dynamic RPC range of the C(rpc-dynamic) rules (C(low-high)), or null when there is none.
      type: str
rendered:
  description:
    - The nft transaction for the wanted rules (what RV(script) would be), as a list of lines without line
      endings; C(join("\n")) plus a final newline gives the C(nft -f) file.
  returned: state is rendered
  type: list
  elements: str
  sample:
    - "#!/usr/sbin/nft -f"
    - "# configmgr.nap: owned table inet configmgr_nap, rendered whole (one transaction)"
    - table inet configmgr_nap
    - delete table inet configmgr_nap
    - table inet configmgr_nap {
backup_content:
  description:
    - The owned table as it was before the change, as an C(nft -f) script that restores it (the table is deleted,
      then declared from the C(nft list table) text, in one transaction).
  returned: backup is true and the table was changed or deleted
  type: str
backup_path:
  description: Where the backup was written on the target (a new file, mode C(0600)).
  returned: backup is true and the table was changed or deleted
  type: str
  sample: /var/backups/configmgr_nap/inet-configmgr_nap-20260102T030405.nft
backup_file:
  description:
    - Deprecated, use RV(backup_path) (the same value); returned until release 1.0.0.
  returned: backup is true and the table was changed or deleted
  type: str
"""

import importlib
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import nftables
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import nftables_compare
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import NapError

NFT_MISSING = ("the nft command (nftables) was not found on this host: install the Debian package nftables "
               "(apt-get install nftables; RHEL/Fedora: dnf install nftables)")
NO_KERNEL = ("the kernel of this host has no nf_tables support (nft says: %s); load the module "
             "(modprobe nf_tables) or use a kernel built with CONFIG_NF_TABLES")
NOT_ROOT = "nft needs root to read and change the ruleset (nft says: %s); run the task with become: true"
DEFAULT_BACKUP_DIR = "/var/backups/configmgr_nap"
DEPRECATED_BACKUP_PATH = ("nft_nap_policy: the option backup_path is deprecated, use backup_options: {dir_path: <directory>} "
                          "(and filename: <name> for a file name of your own) instead")
DEPRECATED_IN = dict(version="1.0.0", collection_name="configmgr.nap")


def argument_spec():
    return dict(
        rules=dict(type="list", elements="dict"),
        plan=dict(type="raw"),
        host=dict(type="str"),
        management_ports=dict(type="list", elements="int"),
        zones=dict(type="dict"),
        management_sources=dict(type="list", elements="str"),
        allow_lockout=dict(type="bool", default=False),
        rpc_dynamic_range=dict(type="str"),
        table=dict(type="str", default=nftables.DEFAULT_TABLE),
        family=dict(type="str", default=nftables.DEFAULT_FAMILY, choices=["inet", "ip", "ip6"]),
        state=dict(type="str", default="present", choices=["present", "absent", "gathered", "rendered"]),
        backup=dict(type="bool", default=False),
        backup_options=dict(type="dict", options=dict(
            dir_path=dict(type="path"),
            filename=dict(type="str"),
        )),
        backup_path=dict(type="path"),     # deprecated (1.0.0): backup_options; mapped in backup_target()
    )


MUTUALLY_EXCLUSIVE = [("rules", "plan"), ("backup_path", "backup_options")]


def _plandoc():
    """plandoc, imported by name: the action plugin resolves the plan on the controller and sends only the host's
    share, so the module's payload does not carry plandoc and the catalogue it pulls in (issue 22); direct callers
    of policy_from_params with a plan (tests, the lab) run where the collection is installed."""
    return importlib.import_module("ansible_collections.configmgr.nap.plugins.module_utils.nap.plandoc")


def policy_from_params(params, environ=None):
    """(Policy, warnings) from the module parameters (plan + host, or rules + zones)."""
    environ = os.environ if environ is None else environ
    warnings = []
    params = dict(params)
    if params.get("plan") is not None:     # the action plugin resolves the plan; this path serves direct callers
        params = _plandoc().nft_arguments(params, params.get("host"))
    rules = params.get("rules")
    management_ports = params.get("management_ports")
    zones = params.get("zones")
    mgmt = params.get("management_sources")
    rpc = params.get("rpc_dynamic_range")
    if rules is None:
        rules = []
    if mgmt is None:
        conn = (environ.get("SSH_CONNECTION") or "").split()
        if conn:
            mgmt = [conn[0]]
            warnings.append("management_sources is not set: keeping SSH/WinRM open from %s, the client of this SSH "
                            "connection" % conn[0])
        else:
            mgmt = []
    if not mgmt and not params.get("allow_lockout") and zones:
        warnings.append("no management_sources known: no anti-lockout rule is rendered; management from an owned "
                        "zone needs a planned MGMT-* flow")
    policy = nftables.Policy(rules, zones or {}, mgmt, rpc or nftables.DEFAULT_RPC_RANGE, params.get("family") or "inet",
                             params.get("table") or nftables.DEFAULT_TABLE, params.get("allow_lockout"),
                             management_ports=management_ports)
    return policy, warnings + policy.warnings


class Nft:
    """The nft command on this host; every error becomes a message fit to show."""

    def __init__(self, module):
        self.module = module
        self.path = module.get_bin_path("nft")
        if not self.path:
            module.fail_json(msg=NFT_MISSING)

    def run(self, args, data=None):
        return self.module.run_command([self.path] + args, data=data, binary_data=True)

    def fail_on(self, err, what):
        text = (err or "").strip()
        if "Operation not permitted" in text or "Permission denied" in text:
            self.module.fail_json(msg=NOT_ROOT % text)
        if ("Protocol not supported" in text or "Operation not supported" in text
                or "cache initialization failed" in text or "Address family not supported" in text):
            self.module.fail_json(msg=NO_KERNEL % text)
        self.module.fail_json(msg="%s failed: %s" % (what, text))

    def read(self, family, table):
        rc, out, err = self.run(["-j", "list", "table", family, table])
        if rc != 0:
            if "No such file or directory" in err:
                return None
            self.fail_on(err, "nft -j list table %s %s" % (family, table))
        try:
            return nftables.parse_table(out, family, table)
        except ValueError as exc:
            self.module.fail_json(msg="cannot read the JSON of nft -j list table %s %s: %s" % (family, table, exc))

    def text(self, family, table):
        rc, out, err = self.run(["list", "table", family, table])
        if rc != 0:
            self.fail_on(err, "nft list table %s %s" % (family, table))
        return out

    def foreign_drop_chains(self, family, table):
        """Base chains of other tables on input/forward with policy drop (they must accept the flows too)."""
        rc, out, err = self.run(["-j", "list", "chains"])
        if rc != 0:
            return []
        try:
            items = json.loads(out).get("nftables", [])
        except ValueError:
            return []
        hits = []
        families = {"inet": ("inet", "ip", "ip6"), "ip": ("inet", "ip"), "ip6": ("inet", "ip6")}[family]
        for item in items:
            chain = item.get("chain") if isinstance(item, dict) else None
            if not chain or (chain.get("family") == family and chain.get("table") == table):
                continue
            if chain.get("family") in families and chain.get("hook") in ("input", "forward", "output") \
                    and chain.get("policy") == "drop":
                hits.append("%s %s chain %s (hook %s)" % (
                    chain.get("family"), chain.get("table"), chain.get("name"), chain.get("hook")))
        return hits

    def apply(self, script):
        rc, out, err = self.run(["-c", "-f", "-"], data=script)
        if rc != 0:
            system = ("Operation not permitted", "Protocol not supported", "Operation not supported")
            if any(text in err for text in system):
                self.fail_on(err, "nft -c -f -")
            self.module.fail_json(msg="nft -c rejected the transaction, nothing was changed: %s"
                                  % nftables_compare.nft_error(err, script), script=script)
        rc, out, err = self.run(["-f", "-"], data=script)
        if rc != 0:
            self.module.fail_json(msg="nft -f failed, the transaction was not applied: %s" % nftables_compare.nft_error(err, script),
                                  script=script)


def backup_script(family, table, listing):
    """The backup content: an nft -f script that restores the owned table exactly as ``listing`` shows it.

    ``nft -f`` of the bare listing would MERGE the saved rules into the current table; so the script first deletes
    the table (``table`` is an empty add, a no-op when it exists, so that ``delete table`` never fails when it
    does not), then declares it from the listing, all in one transaction."""
    ref = "%s %s" % (family, table)
    text = listing if listing.endswith("\n") else listing + "\n"
    return "table %s\ndelete table %s\n%s" % (ref, ref, text)


def _create_new(path, content):
    """Create ``path`` (or ``<root>.<n><ext>`` when it exists) with mode 0600; return the path written."""
    # imported here: only a backup writes a file, and the module's every run pays for what it imports (issue 22)
    from ansible_collections.configmgr.nap.plugins.module_utils.nap.files import create_new, numbered
    return create_new(numbered(path), content, 0o600, "%s and 999 numbered variants exist" % path)


def filename_problem(name):
    """Why ``name`` is not a plain file name (backup_options.filename), or None."""
    if name is None:
        return None
    if not name or name in (".", "..") or "/" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "backup_options.filename %r is not a plain file name (no / nor control character, not . or ..)" % (
            name,)
    return None


def backup_target(params):
    """(directory, file name or None) of the backup on the target, from backup_options or the deprecated
    backup_path: an existing directory or a path ending in / is the directory, any other path directory + name."""
    legacy = params.get("backup_path")
    if legacy:
        if os.path.isdir(legacy) or legacy.endswith("/"):
            return legacy, None
        return os.path.dirname(legacy), os.path.basename(legacy)
    options = params.get("backup_options") or {}
    return options.get("dir_path") or DEFAULT_BACKUP_DIR, options.get("filename")


def write_backup(module, content, family, table):
    """Write the backup as a new file on the target (see backup_target) and return its path."""
    directory, name = backup_target(module.params)
    path = os.path.join(directory, name or "%s-%s-%s.nft" % (family, table, time.strftime("%Y%m%dT%H%M%S")))
    try:
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        return _create_new(path, content)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write the backup of the owned table %s %s to %s: %s (nothing was changed)"
                         % (family, table, path, to_native(exc)))
    return None


def save_backup(module, nft, result, family, table):
    """backup: true - the restore script in backup_content, written on the target: backup_path (and, deprecated,
    backup_file)."""
    result["backup_content"] = backup_script(family, table, nft.text(family, table))
    path = write_backup(module, result["backup_content"], family, table)
    if path:
        result["backup_path"] = result["backup_file"] = path


def run_module(module):
    params = module.params
    state = params["state"]
    family, table = params["family"], params["table"]
    result = dict(changed=False, commands=[])
    warnings = []

    if params.get("backup_path") is not None:
        module.deprecate(DEPRECATED_BACKUP_PATH, **DEPRECATED_IN)
    problem = filename_problem((params.get("backup_options") or {}).get("filename"))
    if problem and params.get("backup"):
        module.fail_json(msg="configmgr.nap nft: %s (nothing was changed)" % problem)

    if state == "rendered":
        try:
            policy, warnings = policy_from_params(params)
        except NapError as exc:
            module.fail_json(msg="configmgr.nap nft: %s" % to_native(exc))
        result["rendered"] = nftables.desired_state(policy).script_lines()
        if warnings:
            result["warnings"] = warnings
        return result

    policy = None
    if state == "present":
        try:
            policy, warnings = policy_from_params(params)
        except NapError as exc:
            module.fail_json(msg="configmgr.nap nft: %s (nothing was changed)" % to_native(exc))
    else:
        try:
            nftables.Policy([], {}, (), nftables.DEFAULT_RPC_RANGE, family, table)
        except NapError as exc:
            module.fail_json(msg="configmgr.nap nft: %s" % to_native(exc))

    nft = Nft(module)
    have = nft.read(family, table)

    if state == "gathered":
        doc = nftables_compare.describe(have)
        result["gathered"] = doc["rules"]
        result["gathered_options"] = dict(table=table, family=family, zones=doc["zones"],
                                          management_sources=doc["management_sources"],
                                          rpc_dynamic_range=nftables_compare.gathered_range(have))
        return result

    if state == "absent":
        result["before"] = nftables_compare.describe(have)
        result["after"] = nftables_compare.describe(None)
        if have is None:
            return result
        ref = "%s %s" % (family, table)
        result["changed"] = True
        result["commands"] = ["delete table %s" % ref]
        result["script"] = "table %s\ndelete table %s\n" % (ref, ref)
        if module._diff:
            result["diff"] = dict(before_header="nft table %s" % ref, after_header="nft table %s" % ref,
                                  before=nft.text(family, table), after="")
        if module.check_mode:
            return result
        if params["backup"]:
            save_backup(module, nft, result, family, table)
        nft.apply(result["script"])
        return result

    # present
    for chain in nft.foreign_drop_chains(family, table):
        warnings.append("%s has policy drop: a drop in any table is final, so the flows this table accepts must "
                        "be accepted there too (see docs/nftables.md)" % chain)
    change = nftables_compare.compare(policy, have)
    result["rule_changes"] = change.rule_diff.commands()
    result["drift"] = change.rule_diff.summary()
    if not change.changed:
        # a no-op returns the table only in diff mode: the whole table in every run's result is most of what
        # Ansible handles for a no-op (issue 22)
        if module._diff:
            result["before"] = nftables_compare.describe(have, policy, change.have_rules if have is not None else None)
            result["after"] = result["before"]
        if warnings:
            result["warnings"] = warnings
        return result
    result["before"] = nftables_compare.describe(have, policy, change.have_rules if have is not None else None)

    result["changed"] = True
    result["commands"] = change.commands()
    result["script"] = change.want_state.script()
    result["after"] = nftables_compare.describe(change.want_state, policy, policy.rules)
    if module._diff:
        result["diff"] = change.ansible_diff()
    if warnings:
        result["warnings"] = warnings
    if module.check_mode:
        return result
    if params["backup"] and have is not None:
        save_backup(module, nft, result, family, table)
    nft.apply(result["script"])
    now = nft.read(family, table)
    again = nftables_compare.compare(policy, now)
    if again.changed:
        module.fail_json(msg="nft applied the transaction but the owned table %s %s still differs from the plan "
                             "(another writer, or an nft version that lists rules differently): %s"
                             % (family, table, "; ".join(again.commands())), **result)
    result["after"] = nftables_compare.describe(now, policy, again.have_rules)
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
        required_by={"plan": ("host",)},
        supports_check_mode=True,
    )
    module.exit_json(**run_module(module))


if __name__ == "__main__":
    main()
