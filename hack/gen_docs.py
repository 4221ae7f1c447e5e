#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate docs/flows.md and the roles' meta/argument_specs.yml from the catalogue; --check: fail if stale."""

from __future__ import absolute_import, division, print_function

import argparse
import difflib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "docs", "flows.md")

# Options of the roles besides the catalogue's settings: name -> (type, default, description[, extra]).
FIREWALL_OPTIONS = [
    ("nap_firewall_state", "str", "present", "present: the host's firewall holds exactly the planned NAP rules "
     "(owned rules no longer planned are removed); absent: every rule the collection owns is removed.",
     {"choices": ["present", "absent"]}),
    ("nap_allow_lockout", "bool", False, "Allow a converge that would cut the management channel (WinRM or SSH "
     "from nap_management_sources)."),
    ("nap_firewall_backup", "bool", False, "Save the owned rules before a change (the modules' backup: true). "
     "Windows: a file in nap_firewall_backup_dir on the controller; nftables: a file on the host, in "
     "/var/backups/configmgr_nap."),
    ("nap_firewall_backup_dir", "path", "{{ nap_report_dir | default('', true) or ('nap-report' | "
     "ansible.builtin.realpath) }}/backup", "Windows: directory on the controller for the backups "
     "(backup_options.dir_path of configmgr.nap.win_nap_firewall): the backup directory in nap_report_dir or, "
     "without nap_report_dir, nap-report/backup in the working directory of ansible-playbook (absolute; never "
     "inside the installed collection). "
     "AWX / Automation Platform: set nap_report_dir to a directory mounted into the execution environment, or the "
     "backups go with the job's container; each backup's path is published with set_stats (nap_backups)."),
    ("nap_windows_rule_group", "str", "ConfigMgr NAP", "Windows Firewall rule group the collection owns."),
    ("nap_windows_rule_prefix", "str", "configmgr.nap ", "Prefix of the names of the rules the collection owns."),
    ("nap_windows_predefined", "str", "report", "Windows: the predefined rules (NPS, DHCP Server, RRAS, IIS ...) that "
     "admit more than the plan: ignore, report (returned and in the drift report) or disable (turned off after the "
     "owned rules are in place and only when the controller stays admitted; state absent re-enables exactly those; "
     "refused for Active Directory Domain Services, DNS and Kerberos).", {"choices": ["ignore", "report", "disable"]}),
    ("nap_nft_table", "str", "configmgr_nap", "nftables table (family inet) the collection owns."),
]
PLAN_OPTIONS = [
    ("nap_report_dir", "str", "", "Directory on the controller for flows.json, flows.csv, flows.md and "
     "topology.mmd. Empty: the plan made inside the converge, verify and drift runs writes no files (it is kept in "
     "the run's private temporary directory), and playbooks/plan.yml writes to nap-report in the working "
     "directory of ansible-playbook (absolute). Use a directory that outlives the run (AWX: one mounted into the "
     "execution environment). The summary and the report paths are published with set_stats (nap_plan)."),
    ("nap_report_formats", "list", ["json", "csv", "md", "mermaid"], "Report files to write.",
     {"elements": "str", "choices": ["json", "csv", "md", "mermaid"]}),
]
PERIMETER_OPTIONS = [
    ("nap_perimeter_state", "str", "present", "present: the device holds exactly the planned forward rules; "
     "absent: what the collection owns (table, ACL, object groups) is removed.", {"choices": ["present", "absent"]}),
    ("nap_perimeter_acl_name", "str", "CONFIGMGR-NAP", "Cisco: the access list the collection owns; its object "
     "groups are named after it."),
    ("nap_perimeter_asa_binding", "str", "global", "Cisco ASA: global (access-group <acl> global), block (a "
     "remark-delimited block inside nap_perimeter_asa_block_acl) or none.",
     {"choices": ["global", "block", "none"]}),
    ("nap_perimeter_asa_block_acl", "str", "", "Cisco ASA: the interface ACL that holds the block (binding block)."),
    ("nap_perimeter_interfaces", "raw", [], "Cisco IOS: interfaces to bind the owned ACL to (a list, or a mapping "
     "interface -> zone)."),
    ("nap_perimeter_ios_direction", "str", "in", "Cisco IOS: binding direction.", {"choices": ["in", "out"]}),
    ("nap_allow_lockout", "bool", False, "Allow a converge that would cut the management channel."),
    ("nap_firewall_backup", "bool", False, "Save what the collection owns before a change."),
]
VERIFY_OPTIONS = [
    ("nap_report_dir", "str", "{{ 'nap-report' | ansible.builtin.realpath }}", "Directory on the controller for "
     "verify.md, verify.json and verify.html; the default is nap-report in the working directory of "
     "ansible-playbook (absolute). Use a directory that outlives the run (AWX: one mounted into the execution "
     "environment). The verdict counts, broken flows and report paths are published with set_stats (nap_verify)."),
    ("nap_probe_vantage", "dict", {}, "Zone name -> inventory host that probes for that zone: the flows from "
     "networks (client networks, management sources) and from hosts that cannot run the probe."),
    ("nap_probe_controller_zones", "list", [], "Zones the controller sits in; it probes for them when no "
     "vantage is named.", {"elements": "str"}),
    ("nap_verify_negative", "bool", True, "Probe across the perimeter devices the collection owns and expect "
     "blocked: the unchosen side of each \"X or Y\" and unplanned ports."),
    ("nap_verify_unplanned_ports", "list", [{"protocol": "tcp", "port": 135}, {"protocol": "tcp", "port": 445},
                                            {"protocol": "tcp", "port": 3389}],
     "Ports probed as unplanned (expect blocked) from each zone vantage, besides the destination's expected "
     "listeners.", {"elements": "dict"}),
    ("nap_verify_listeners", "bool", True, "Compare each host's expected listeners with what it listens on "
     "(listen_ports_facts, win_listen_ports_facts, or netstat -ano per nap_listener_method)."),
    ("nap_verify_timeout", "raw", "auto", "Probe timeout in seconds, or auto (derived from measured round trips)."),
    ("nap_verify_max_timeout", "float", 3.0, "Upper bound of the probe timeout in auto mode."),
    ("nap_probe_dns_name", "str", ".", "Name the DNS probes ask for (SOA, recursion not desired)."),
    ("nap_verify_fail", "bool", True, "Fail the play when a check is broken (after writing the report)."),
    ("nap_radius_secret", "str", None, "RADIUS shared secret of the vantages (a host variable per vantage, or one "
     "for all); RADIUS flows are not probed without it.", {"no_log": True}),
    ("nap_verify_unprobed", "str", "fail", "Checks that could have been made and were not (no vantage, no secret, an "
     "unreachable vantage): fail the run (fail) or only list them (warn). Unprobeable checks (ESP, GRE, port ranges, "
     "traffic inside IPsec) never fail it.", {"choices": ["fail", "warn"]}),
    ("nap_probe_kerberos_realm", "str", "", "Realm of the Kerberos AS-REQ probes (TCP/UDP 88); empty: "
     "nap_probe_dns_name upper-cased (a KDC of another realm still answers, with KDC_ERR_WRONG_REALM)."),
    ("nap_verify_controller", "str", "localhost", "The inventory name of the controller (probes for "
     "nap_probe_controller_zones run there)."),
    ("nap_verify_plan_only", "bool", False, "Only work out and show the probe plan (vantage and runner per check, "
     "what has no vantage), write nap_report_dir/verify-plan.json, and contact no host."),
]
ROLES = [
    ("plan", "Plan the NAP flows of the whole inventory once per play (controller only)", PLAN_OPTIONS),
    ("host_firewall", "Converge one host's firewall to its planned NAP rules (internal; used by the profile roles)",
     FIREWALL_OPTIONS),
    ("site_server", "Open exactly the NAP flows of a ConfigMgr 2007 site server on its firewall", FIREWALL_OPTIONS),
    ("shv_point", "Open exactly the NAP flows of a System Health Validator point (NPS) on its firewall",
     FIREWALL_OPTIONS),
    ("enforcement_point", "Open exactly the NAP flows of an enforcement point (DHCP server, HRA, VPN server, "
     "TS Gateway, DHCP relay) on its firewall", FIREWALL_OPTIONS),
    ("nap_client", "Open the NAP flows of individual NAP clients (outbound rules where outbound is blocked)",
     FIREWALL_OPTIONS),
    ("perimeter", "Converge a perimeter device (nftables, Cisco ASA, Cisco IOS) to its planned forward rules",
     PERIMETER_OPTIONS),
    ("verify", "Probe every planned flow with real packets, probe negatively across the owned perimeters, check "
     "the listeners, and report", VERIFY_OPTIONS),
]


def _import_catalogue():
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import conftest  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue  # pylint: disable=import-outside-toplevel
    return catalogue


def _cell(text):
    return str(text).replace("|", "\\|")


def render(cat):
    lines = [
        "# NAP flow catalogue",
        "",
        "<!-- Generated by hack/gen_docs.py from plugins/module_utils/nap/catalogue.py; do not edit. -->",
        "",
        "Every flow configmgr.nap knows. Sources: **seed** is \"Ports used by Network Access Protection in",
        "Configuration Manager 2007\" (March 2008); **NAP** the Windows Server 2008 NAP / NPS documentation;",
        "**AD** the Active Directory port requirements; **CM07** \"Ports used by Configuration Manager 2007\".",
        "Where ports read \"X (a) or Y (b)\", one setting chooses exactly one of them. The last column names the",
        "Windows predefined rule groups that cover each flow on its destination, by the resource string Windows matches",
        "on any language (English name shown) and the Names of the rules; catalogue.py says where each comes from.",
        "",
    ]
    for category, title in cat.CATEGORIES:
        lines += ["## " + title, "", "| id | from | to | protocol/ports | when | purpose | source | Windows predefined "
                  "group (resource string): rules |", "|---|---|---|---|---|---|---|---|"]
        for flow in cat.FLOWS:
            if flow.category != category:
                continue
            when = "; ".join(cat._condition_text(c) for c in flow.when) or "always"  # pylint: disable=protected-access
            ports = flow.describe_ports() or "per nap_remediation_roles"
            purpose = flow.purpose + (" (%s)" % flow.note if flow.note else "")
            lines.append("| %s |" % " | ".join(_cell(x) for x in (
                flow.id, flow.doc_from, flow.doc_to, ports, when, purpose, flow.source, flow.describe_groups())))
        lines.append("")
    lines += ["## Settings", "", "| setting | values | default | what it changes |", "|---|---|---|---|"]
    for spec in cat.SETTINGS:
        default = spec.default
        if isinstance(default, list):
            default = "[" + ", ".join(default) + "]"
        elif isinstance(default, bool):
            default = str(default).lower()
        lines.append("| %s |" % " | ".join(_cell(x) for x in (
            "`%s`" % spec.name, spec.expected(), "see text" if default is None else default, spec.text)))
    lines += ["", "## Inventory groups", "", "| group | role |", "|---|---|"]
    for role, group, text in cat.ROLE_GROUPS:
        lines.append("| `%s` | %s (`%s`) |" % (group, text, role))
    lines += ["", "## Remediation roles (`nap_remediation_roles`)", "", "| value | ConfigMgr flow |", "|---|---|"]
    for role, flow_id in cat.REMEDIATION_ROLES.items():
        lines.append("| `%s` | %s (%s) |" % (role, flow_id, cat.CM_BY_ID[flow_id].describe_ports()))
    lines += ["", "## Listeners expected per role", "", "| role | must listen on |", "|---|---|"]
    for role, text in cat.LISTENERS.items():
        lines.append("| %s | %s |" % (role, text))
    return "\n".join(lines) + "\n"


def _setting_spec(spec):
    """A catalogue setting as a role option: typed, with its values in the text.

    The values themselves are checked by the planner, whose one-line message names the host that set a wrong
    value (Ansible's argument-spec failure would dump the whole spec instead).
    """
    option = {"description": ["%s. One of the collection's settings (docs/flows.md#settings); %s, checked by the "
                              "planner." % (spec.text[0].upper() + spec.text[1:], spec.expected())]}
    if spec.kind == "choice":
        option.update(type="str")
    elif spec.kind == "bool":
        option.update(type="raw")
    elif spec.kind == "list_choice":
        option.update(type="list", elements="str")
    elif spec.kind == "cidrs":
        option.update(type="list", elements="str")
    else:
        option.update(type="str")
    return option


def render_argument_specs(cat, options):
    specs = {}
    for name, kind, default, text, *extra in options:
        option = {"description": [text], "type": kind, "default": default}
        for more in extra:
            option.update(more)
        specs[name] = option
    for spec in cat.SETTINGS:
        specs[spec.name] = _setting_spec(spec)
    specs["nap_zones"] = {"type": "dict", "description": [
        "Zone name -> list of CIDRs; perimeter devices join zones (docs/inventory.md)."]}
    return specs


# Example plays of the role READMEs (roles with a hand-written README are not listed).
ROLE_EXAMPLES = {
    "site_server": ("nap_site_servers", "Converge the site servers' firewalls", {}),
    "shv_point": ("nap_shv_points", "Converge the SHV points' firewalls", {"nap_firewall_backup": True}),
    "enforcement_point": ("nap_dhcp_servers:nap_hras:nap_vpn_servers:nap_ts_gateways:nap_dhcp_relays",
                          "Converge the enforcement points' firewalls", {}),
    "nap_client": ("nap_clients", "Converge the NAP clients that block outbound traffic", {}),
    "perimeter": ("nap_perimeter", "Converge the perimeter devices", {"nap_perimeter_asa_binding": "global"}),
    "host_firewall": ("nap_domain_controllers", "Converge any NAP host (internal role, used by the profiles)", {}),
    "plan": ("localhost", "Plan the estate and write the reports", {"nap_report_dir": "/var/lib/nap-reports"}),
}
ROLE_NOTES = {
    "perimeter": "Dispatches by `nap_perimeter_platform`: `nftables` (the owned table, through "
                 "configmgr.nap.host_firewall), `cisco_asa` and `cisco_ios` (the owned ACL and object groups through "
                 "the cisco.asa / cisco.ios resource modules, never `overridden`; see docs/perimeter-vendors.md), "
                 "`other` (export the plan with `-e nap_export=aerleon`). Tasks are tagged `perimeter` (the plan "
                 "`always`), also those of the nftables platform's configmgr.nap.host_firewall.",
    "plan": "Runs on the controller, once per play (`run_once`, delegated to localhost), and keeps the plan's "
            "handle as `__nap_plan` on every host of the play (the registered result of configmgr.nap.nap_plan, "
            "which every module and filter of the collection takes as the plan). Contacts no managed host; `--limit` does not narrow the plan. "
            "Its tasks are tagged `always`, so `--tags firewall`, `perimeter`, `verify` or `drift` still plan. "
            "Publishes `nap_plan` as a custom statistic, as `set_stats` does (the job's artifacts in AWX; "
            "`publish_stats` of configmgr.nap.nap_plan): the summary's totals, `counts`, "
            "`report_dir`, `files` and `plan_file` (null and `[]` when no report was written: no `nap_report_dir`, "
            "or check mode), never the plan itself.",
}


def role_readme(role, text, options):
    hosts, title, example_vars = ROLE_EXAMPLES[role]
    lines = ["# configmgr.nap.%s" % role, "", "<!-- Generated by hack/gen_docs.py; do not edit. -->", "",
             text + ".", ""]
    if role in ROLE_NOTES:
        lines += [ROLE_NOTES[role], ""]
    elif role not in ("plan",):
        lines += ["The plan of the whole inventory is made once per play on the controller (configmgr.nap.plan); "
                  "each host then gets its merged rule set, for every NAP role it holds, in one module call "
                  "(configmgr.nap.win_nap_firewall on Windows, configmgr.nap.nft_nap_policy on Linux). Supports "
                  "`--check` and `--diff`; a rerun reports no change. The result is in `nap_firewall_result` "
                  "(`drift`: missing, extra and changed rule names). Tasks are tagged `firewall` (the plan "
                  "`always`); a backup's path is published with `set_stats` as `nap_backups` (host -> path).", ""]
    lines += ["## Example", "", "```yaml", "- name: %s" % title, "  hosts: %s" % hosts, "  gather_facts: false",
              "  roles:", "    - role: configmgr.nap.%s" % role]
    if example_vars:
        lines.append("      vars:")
        for key, value in example_vars.items():
            lines.append("        %s: %s" % (key, str(value).lower() if isinstance(value, bool) else value))
    lines += ["```", "", "## Variables", "", "| variable | type | default | description |", "|---|---|---|---|"]
    for name, kind, default, desc, *extra in options:
        del extra
        lines.append("| `%s` | %s | `%s` | %s |" % (name, kind, _cell(default), _cell(desc)))
    lines += ["", "The collection's settings (`nap_ad_ldap_mode`, `nap_enforcement_methods`, `nap_zones`, ...) are "
              "inventory variables read by the planner: see docs/inventory.md and docs/flows.md#settings, and "
              "`ansible-doc -t role configmgr.nap.%s` for the full argument spec." % role, ""]
    return "\n".join(lines)


def role_files(cat):
    import yaml  # pylint: disable=import-outside-toplevel

    class Dumper(yaml.SafeDumper):  # pylint: disable=too-many-ancestors
        """Indent sequences under their key, as yamllint wants."""

        def increase_indent(self, flow=False, indentless=False):
            return super(Dumper, self).increase_indent(flow, False)

    out = {}
    for role, text, options in ROLES:
        doc = {"argument_specs": {"main": {
            "short_description": text,
            "description": [text + "."],
            "author": ["configmgr.nap maintainers"],
            "options": render_argument_specs(cat, options),
        }}}
        body = yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=110)
        out[os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")] = (
            "---\n# Generated by hack/gen_docs.py from its option tables and the catalogue's settings (one source for\n"
            "# every role); do not edit: change hack/gen_docs.py and run make docs.\n" + body)
        if role in ROLE_EXAMPLES:
            out[os.path.join(ROOT, "roles", role, "README.md")] = role_readme(role, text, options)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when docs/flows.md is not current")
    args = parser.parse_args()
    cat = _import_catalogue()
    files = {TARGET: render(cat)}
    files.update(role_files(cat))
    stale = []
    for path, text in sorted(files.items()):
        try:
            with open(path) as handle:
                current = handle.read()
        except IOError:
            current = ""
        if current == text:
            continue
        stale.append(path)
        rel = os.path.relpath(path, ROOT)
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       rel + " (committed)", rel + " (generated)"))
        else:
            with open(path, "w") as handle:
                handle.write(text)
            print("wrote %s" % rel)
    if args.check and stale:
        print("not current: %s; run `make docs` (hack/gen_docs.py) and commit" % ", ".join(
            os.path.relpath(p, ROOT) for p in stale), file=sys.stderr)
        return 1
    if args.check:
        print("generated docs are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
