# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Firewall backend: canonical rules <-> INetFwRule-shaped dicts (pure Python).

The collection owns the rules of one rule group (``Grouping``, default ``ConfigMgr NAP``) whose
names carry a unique prefix (default ``configmgr.nap ``).  The prefix makes the names unique on
the host, which matters because the COM API removes rules by name (``INetFwRules::Remove``) and
because ``netsh advfirewall firewall add rule`` cannot set a group at all.

What lives here:

* translation: :func:`rule_to_fw` (model -> ``INetFwRule`` properties) and :func:`fw_to_rule`
  (what ``HNetCfg.FwPolicy2`` returns -> model, with anything the model cannot hold reported as
  a hand edit so that the shared diff sees it);
* the two PowerShell scripts the action runs through ``ansible.windows.win_powershell``
  (:data:`READ_PS1`, one pass over the rule store, and :data:`APPLY_PS1`, every change in one
  call), with the parameter names they take;
* the guards: version (:func:`check_versions`), Group Policy (:func:`local_policy_problem`),
  anti-lockout (:func:`lockout_problems`), name collisions;
* the op list (:func:`build_ops`) and the three ``state: rendered`` forms
  (:func:`render_com`, :func:`render_netsecurity`, :func:`render_netsh`).

Facts used (Microsoft documentation):

* INetFwRule::put_Protocol: "The Protocol property must be set before the LocalPorts or
  RemotePorts properties or an error will be returned."
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_protocol
* INetFwRules::Remove takes a rule *name*; "If a rule specified by the name parameter does not
  exist in the collection, the Remove method has no effect."
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-remove
* NET_FW_MODIFY_STATE (INetFwPolicy2::LocalPolicyModifyState): 0 OK, 1 GP_OVERRIDE (rules added
  locally do not take effect, Group Policy controls the profile), 2 INBOUND_BLOCKED.
  https://learn.microsoft.com/en-us/windows/win32/api/icftypes/ne-icftypes-net_fw_modify_state
* NET_FW_PROFILE2_ALL = 0x7FFFFFFF, DOMAIN 1, PRIVATE 2, PUBLIC 4; NET_FW_RULE_DIR_IN 1, OUT 2;
  NET_FW_ACTION_BLOCK 0, ALLOW 1; protocol 256 = any (icftypes.h).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import names, plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import check_unique, diff_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import (
    PORT_KEYWORDS, PORT_PROTOCOLS, PROTOCOL_NUMBERS, NapError, Rule, normalize_addresses, normalize_ports,
    port_in,
)

DEFAULT_GROUP = "ConfigMgr NAP"
DEFAULT_PREFIX = "configmgr.nap "
PROFILE_BITS = OrderedDict((("domain", 1), ("private", 2), ("public", 4)))
PROFILES_ALL = 0x7FFFFFFF
PROTOCOL_ANY = 256
DIR_IN, DIR_OUT = 1, 2
ACTION_BLOCK, ACTION_ALLOW = 0, 1
PROTOCOL_NAMES = dict((v, k) for k, v in PROTOCOL_NUMBERS.items())
MODIFY_STATE = {0: "OK", 1: "GP_OVERRIDE", 2: "INBOUND_BLOCKED"}
MANAGEMENT_PORTS = (5985, 5986)
MIN_OS_VERSION = "6.1.7601"     # Windows Server 2008 R2 SP1
MIN_PS_VERSION = "5.1"          # WMF 5.1
TAMPERED = "edited by hand on Windows: "
FLOW_TAG_RE = re.compile(r"^(.*?)(?: ?\[flow ([^\];]+)(?:; source ([^\]]+))?\])?$", re.S)
# Address keywords Windows Firewall accepts in LocalAddresses/RemoteAddresses (netsh help).
ADDRESS_KEYWORDS = ("localsubnet", "dns", "dhcp", "wins", "defaultgateway", "internet", "intranet",
                    "intranetremoteaccess", "playtodevice", "any")
# How each backend spells the abstract port keywords (docs/windows.md, nap-flows.md).
KEYWORD_SPELLING = {
    "com": {"rpc-epmap": "RPC-EPMap", "rpc-dynamic": "RPC"},
    "netsh": {"rpc-epmap": "RPC-EPMap", "rpc-dynamic": "RPC"},
    "ps": {"rpc-epmap": "RPCEPMap", "rpc-dynamic": "RPC"},
}
KEYWORD_READ = {"rpc-epmap": "rpc-epmap", "rpcepmap": "rpc-epmap", "rpc": "rpc-dynamic"}


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------
def profiles_mask(profiles):
    """NET_FW_PROFILE2 bit mask for a list of profile names (``all`` or empty = 0x7FFFFFFF)."""
    if profiles is None or profiles == [] or profiles == "all":
        return PROFILES_ALL
    if isinstance(profiles, str):
        profiles = [p for p in re.split(r"[,\s]+", profiles) if p]
    mask = 0
    for name in profiles:
        key = str(name).strip().lower()
        if key == "all":
            return PROFILES_ALL
        if key not in PROFILE_BITS:
            raise NapError("profiles: %r is not one of domain, private, public, all" % (name,))
        mask |= PROFILE_BITS[key]
    return PROFILES_ALL if mask == 7 else mask


def profiles_names(mask):
    mask = int(mask)
    if mask & 7 == 7:
        return ["all"]
    return [n for n, b in PROFILE_BITS.items() if mask & b]


def same_profiles(a, b):
    """Two NET_FW_PROFILE2 masks select the same profiles (0x7FFFFFFF and 7 both mean all three)."""
    return (int(a) & 7) == (int(b) & 7)


def format_ports(ports, style="com"):
    """Comma-joined port list as Windows takes it; ``*`` for any."""
    if not ports:
        return "*"
    spelled = KEYWORD_SPELLING[style]
    return ",".join(spelled.get(p, str(p)) if isinstance(p, str) else str(p) for p in ports)


def parse_ports(text):
    """(ports, problems) from a LocalPorts/RemotePorts string."""
    if text is None:
        return (), []
    text = str(text).strip()
    if text in ("", "*", "Any", "any"):
        return (), []
    items, problems = [], []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        low = item.lower()
        if low in KEYWORD_READ:
            items.append(KEYWORD_READ[low])
            continue
        if re.fullmatch(r"[0-9]+(?:-[0-9]+)?", low):
            items.append(low)
            continue
        problems.append(item)
    try:
        return normalize_ports(items, allow_keywords=True), problems
    except NapError:
        return (), problems + items


def format_addresses(addresses):
    return ",".join(addresses) if addresses else "*"


def _range_networks(text):
    low, high = [ipaddress.ip_address(p.strip()) for p in text.split("-", 1)]
    if low.version != high.version or low > high:
        raise ValueError(text)
    return list(ipaddress.summarize_address_range(low, high))


def parse_address_item(item):
    """ip_networks for one Windows address item (``a/mask``, ``a/len``, ``a``, ``a-b``); ValueError else."""
    item = item.strip()
    if "-" in item and "/" not in item:
        return _range_networks(item)
    return [ipaddress.ip_network(item, strict=False)]


def parse_addresses(text):
    """(CIDR tuple, problems) from a LocalAddresses/RemoteAddresses string.

    Windows returns what it was given in its own form: ``*`` for any, hosts and subnets with a
    dotted mask (``192.0.2.10/255.255.255.255``), ranges as ``a-b``, keywords by name.
    """
    if text is None:
        return (), []
    text = str(text).strip()
    if text in ("", "*"):
        return (), []
    nets, problems = [], []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower() in ADDRESS_KEYWORDS:
            problems.append(item)
            continue
        try:
            nets.extend(parse_address_item(item))
        except ValueError:
            problems.append(item)
    return normalize_addresses([str(n) for n in nets]), problems


def address_networks(text):
    """ip_networks of an address string for coverage checks: ``*`` -> everything; None for keywords."""
    if text is None or str(text).strip() in ("", "*"):
        return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")], []
    nets, unknown = [], []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower() == "any":
            nets += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        try:
            nets.extend(parse_address_item(item))
        except ValueError:
            unknown.append(item)
    return nets, unknown


def ports_cover(text, port):
    """Does a LocalPorts string admit this TCP port (``*`` and empty do)?"""
    if text is None or str(text).strip() in ("", "*"):
        return True
    return port_in(port, str(text).split(","))


def encode_description(rule, model_name):
    """Windows Description: the rule's description, then ``[flow <flow_id>; source <source>]``.

    The tag carries what the model has and Windows has not, so that gathered rules round-trip; it is
    left out when the flow id is the name and there is no source.
    """
    text = rule.description or ""
    source = rule.source if rule.source and "]" not in rule.source else ""
    flow_id = rule.flow_id if rule.flow_id and not re.search(r"[\];]", rule.flow_id) else model_name
    if flow_id != model_name or source:
        tag = "[flow %s%s]" % (flow_id, "; source %s" % source if source else "")
        text = "%s %s" % (text, tag) if text else tag
    return text


def decode_description(text):
    """(description, flow_id or None, source) from a Windows Description."""
    match = FLOW_TAG_RE.match(text or "")
    return match.group(1), match.group(2), match.group(3) or ""


# ---------------------------------------------------------------------------
# Names and input
# ---------------------------------------------------------------------------
def check_prefix(prefix):
    if not prefix or not prefix.strip():
        raise NapError("name_prefix must not be empty: the COM API and netsh remove rules by name, so the "
                       "collection's rule names must be unique on the host (default %r)" % DEFAULT_PREFIX)
    names.check("name_prefix", prefix, "name_prefix")


def check_group(group):
    if not group or not group.strip():
        raise NapError("group must not be empty: it is how the module knows which rules it owns")
    names.check("windows_group", group, "group")


def win_name(model_name, prefix):
    return prefix + model_name


def model_name(name, prefix):
    """Rule name in the model: the Windows name without the prefix (kept whole when it has none)."""
    if prefix and name.lower().startswith(prefix.lower()):
        return name[len(prefix):]
    return name


def has_prefix(name, prefix):
    return bool(prefix) and (name or "").lower().startswith(prefix.lower())


def _prepare_addresses(values, where):
    """Expand ``a-b`` ranges to CIDRs; refuse Windows keywords the model cannot hold yet."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise NapError("%s: expected a list of addresses, got %r" % (where, values))
    out = []
    for value in values:
        text = str(value).strip()
        if text.lower() in ADDRESS_KEYWORDS:
            raise NapError("%s: %r is a Windows address keyword; the rule model takes IP addresses, CIDRs and "
                           "ranges only (list the networks instead)" % (where, value))
        if "-" in text and "/" not in text:
            try:
                out.extend(str(n) for n in _range_networks(text))
            except ValueError:
                raise NapError("%s: %r is not an IPv4/IPv6 address, CIDR or range (e.g. 192.0.2.10, "
                               "192.0.2.0/24 or 192.0.2.10-192.0.2.20)" % (where, value))
            continue
        out.append(value)
    return out


def rule_from_input(data, where="rule"):
    """Validate one rule dict of user or plan input for Windows; errors name the rule and field."""
    if isinstance(data, dict) and data.get("name"):
        where = "rule %r" % data.get("name")
        data = dict(data)
        for field in ("src_addresses", "dst_addresses"):
            if field in data:
                data[field] = _prepare_addresses(data[field], "%s: %s" % (where, field))
    rule = Rule.from_dict(data, where)
    if rule.direction == "forward":
        raise NapError("%s: direction forward is for perimeter devices; a Windows host takes in and out rules"
                       % where)
    return rule


def rules_from_input(items, where="rules"):
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise NapError("%s: expected a list of rules, got %r" % (where, items))
    rules = [rule_from_input(item, "%s[%d]" % (where, i)) for i, item in enumerate(items)]
    check_unique(rules, where)
    lowered = {}
    for rule in rules:
        key = rule.name.lower()
        if key in lowered:
            raise NapError("%s: rule names %r and %r differ only in case; Windows matches rule names without "
                           "regard to case" % (where, lowered[key], rule.name))
        lowered[key] = rule.name
    return rules


def rules_from_plan(plan, host):
    """The Windows host's inbound and outbound rules (model dicts) from a plan in any accepted form."""
    plan = plandoc.load(plan)
    if not host:
        raise NapError("plan is given but host is not: name this host as in the plan "
                       "(host: \"{{ inventory_hostname }}\")")
    hosts = plan["hosts"]
    if host not in hosts:
        perimeter = plan.get("perimeter") or {}
        if host in perimeter:
            raise NapError("host %r is a perimeter device in the plan, not a Windows host" % host)
        raise NapError("host %r is not in the plan (hosts: %s)" % (host, ", ".join(sorted(hosts)) or "none"))
    entry = hosts[host]
    platform = entry.get("platform", "windows")
    if platform != "windows":
        raise NapError("host %r has nap_platform %s in the plan; win_nap_firewall manages Windows hosts"
                       % (host, platform))
    return list(entry.get("inbound") or []) + list(entry.get("outbound") or [])


def full_rules(rules, prefix):
    """Copies of model rules named as on Windows (prefix + name)."""
    out = []
    for rule in rules:
        data = rule.to_dict()
        data["name"] = win_name(rule.name, prefix)
        data["flow_id"] = rule.flow_id
        out.append(Rule(**data))
    return out


def to_model(rule, prefix):
    """Model dict of a rule named as on Windows (the prefix taken off)."""
    data = rule.to_dict()
    data["name"] = model_name(rule.name, prefix)
    return data


# ---------------------------------------------------------------------------
# Model <-> INetFwRule
# ---------------------------------------------------------------------------
def rule_to_fw(rule, group, prefix, mask=PROFILES_ALL, named=False):
    """INetFwRule properties for a model rule (``named``: rule.name already carries the prefix)."""
    name = rule.name if named else win_name(rule.name, prefix)
    mname = model_name(name, prefix)
    if rule.direction == "in":
        local_ports, remote_ports = rule.dst_ports, rule.src_ports
        local_addr, remote_addr = rule.dst_addresses, rule.src_addresses
        direction = DIR_IN
    elif rule.direction == "out":
        local_ports, remote_ports = rule.src_ports, rule.dst_ports
        local_addr, remote_addr = rule.src_addresses, rule.dst_addresses
        direction = DIR_OUT
    else:
        raise NapError("rule %r: direction %s cannot be a Windows Firewall rule" % (mname, rule.direction))
    fw = OrderedDict()
    fw["Name"] = name
    fw["Description"] = encode_description(rule, mname)
    fw["Grouping"] = group
    fw["Direction"] = direction
    fw["Action"] = ACTION_ALLOW
    fw["Protocol"] = PROTOCOL_NUMBERS[rule.protocol]
    fw["LocalPorts"] = format_ports(local_ports, "com") if rule.protocol in PORT_PROTOCOLS else None
    fw["RemotePorts"] = format_ports(remote_ports, "com") if rule.protocol in PORT_PROTOCOLS else None
    fw["LocalAddresses"] = format_addresses(local_addr)
    fw["RemoteAddresses"] = format_addresses(remote_addr)
    fw["Profiles"] = mask
    fw["Enabled"] = True
    return fw


def _is_blank(value, also=()):
    return value is None or str(value).strip() == "" or str(value).strip() in also


def fw_to_rule(fw, prefix, mask=PROFILES_ALL):
    """A Rule named as on Windows from INetFwRule properties.

    Whatever the model cannot hold, or a Windows-only property that differs from what the module
    writes (Enabled, Action, Profiles, an address keyword, an application...), is listed in the
    description as a hand edit, so that the shared diff reports the rule as changed.
    """
    name = str(fw.get("Name") or "")
    problems = []
    try:
        direction = {DIR_IN: "in", DIR_OUT: "out"}[int(fw.get("Direction"))]
    except (KeyError, TypeError, ValueError):
        direction = "in"
        problems.append("Direction=%s" % fw.get("Direction"))
    proto_num = fw.get("Protocol")
    try:
        protocol = PROTOCOL_NAMES[int(proto_num)]
    except (KeyError, TypeError, ValueError):
        protocol = "tcp"
        problems.append("Protocol=%s" % proto_num)
    local_ports, p1 = parse_ports(fw.get("LocalPorts"))
    remote_ports, p2 = parse_ports(fw.get("RemotePorts"))
    local_addr, p3 = parse_addresses(fw.get("LocalAddresses"))
    remote_addr, p4 = parse_addresses(fw.get("RemoteAddresses"))
    for field, bad in (("LocalPorts", p1), ("RemotePorts", p2), ("LocalAddresses", p3), ("RemoteAddresses", p4)):
        if bad:
            problems.append("%s=%s" % (field, ",".join(bad)))
    if fw.get("Enabled") is not True:
        problems.append("Enabled=%s" % fw.get("Enabled"))
    if fw.get("Action") != ACTION_ALLOW:
        problems.append("Action=%s" % {0: "Block"}.get(fw.get("Action"), fw.get("Action")))
    try:
        if not same_profiles(fw.get("Profiles"), mask):
            problems.append("Profiles=%s" % ",".join(profiles_names(fw.get("Profiles"))))
    except (TypeError, ValueError):
        problems.append("Profiles=%s" % fw.get("Profiles"))
    for field, ok in (("InterfaceTypes", ("All",)), ("ApplicationName", ()), ("ServiceName", ()),
                      ("IcmpTypesAndCodes", ("*",)), ("Interfaces", ())):
        if not _is_blank(fw.get(field), ok):
            problems.append("%s=%s" % (field, fw.get(field)))
    if fw.get("EdgeTraversal"):
        problems.append("EdgeTraversal=True")
    if direction == "out" and any(p in PORT_KEYWORDS for p in remote_ports + local_ports):
        problems.append("RPC keyword on an outbound rule")
    description, flow_id, source = decode_description(str(fw.get("Description") or ""))
    if problems:
        description = TAMPERED + "; ".join(problems) + (" (description: %s)" % description if description else "")
    if direction == "in":
        src_addr, dst_addr, src_ports, dst_ports = remote_addr, local_addr, remote_ports, local_ports
    else:
        src_addr, dst_addr, src_ports, dst_ports = local_addr, remote_addr, local_ports, remote_ports
    if protocol not in PORT_PROTOCOLS:
        src_ports, dst_ports = (), ()
    return Rule(name=name, flow_id=flow_id or model_name(name, prefix), direction=direction, protocol=protocol,
                src_addresses=src_addr, dst_addresses=dst_addr, src_ports=src_ports, dst_ports=dst_ports,
                description=description, source=source)


# ---------------------------------------------------------------------------
# The PowerShell run through ansible.windows.win_powershell
# ---------------------------------------------------------------------------
# Both scripts declare [CmdletBinding(SupportsShouldProcess)] (else win_powershell skips them in check
# mode), set $Ansible.Changed explicitly (it defaults to true) and return ONE JSON string in
# $Ansible.Result (win_powershell serialises objects only to `depth`, 2 by default).
READ_PARAMETERS = ("Group", "NamePrefix", "ManagementPorts", "MinOsVersion", "MinPsVersion")
READ_PS1 = r"""[CmdletBinding(SupportsShouldProcess)]
param (
    [Parameter(Mandatory = $true)][string]$Group,
    [Parameter(Mandatory = $true)][string]$NamePrefix,
    [int[]]$ManagementPorts = @(5985, 5986),
    [string]$MinOsVersion = '6.1.7601',
    [string]$MinPsVersion = '5.1'
)
# configmgr.nap win_nap_firewall: READ ONLY. One pass over (New-Object -ComObject HNetCfg.FwPolicy2).Rules.
# Returns the rules of the owned group or with the owned name prefix (collisions), the enabled inbound
# TCP rules of other groups that admit a management port (anti-lockout), the profile state,
# LocalPolicyModifyState and the OS and PowerShell versions, as one JSON string.
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false

function Test-PortAdmitted {
    param ([string]$Ports, [int[]]$Wanted)
    if ([string]::IsNullOrEmpty($Ports) -or $Ports -eq '*') { return $true }
    foreach ($item in $Ports.Split(',')) {
        $item = $item.Trim()
        foreach ($port in $Wanted) {
            if ($item -match '^\d+$' -and [int]$item -eq $port) { return $true }
            if ($item -match '^(\d+)-(\d+)$' -and [int]$Matches[1] -le $port -and $port -le [int]$Matches[2]) {
                return $true
            }
        }
    }
    return $false
}

function ConvertTo-RuleRecord {
    param ($Rule)
    @{
        Name = [string]$Rule.Name
        Description = [string]$Rule.Description
        Grouping = [string]$Rule.Grouping
        Direction = [int]$Rule.Direction
        Action = [int]$Rule.Action
        Protocol = [int]$Rule.Protocol
        LocalPorts = [string]$Rule.LocalPorts
        RemotePorts = [string]$Rule.RemotePorts
        LocalAddresses = [string]$Rule.LocalAddresses
        RemoteAddresses = [string]$Rule.RemoteAddresses
        Profiles = [int]$Rule.Profiles
        Enabled = [bool]$Rule.Enabled
        InterfaceTypes = [string]$Rule.InterfaceTypes
        EdgeTraversal = [bool]$Rule.EdgeTraversal
        ApplicationName = [string]$Rule.ApplicationName
        ServiceName = [string]$Rule.ServiceName
        IcmpTypesAndCodes = [string]$Rule.IcmpTypesAndCodes
    }
}

$os = [Environment]::OSVersion.Version
$out = @{
    format = 1
    os_version = $os.ToString()
    ps_version = $PSVersionTable.PSVersion.ToString()
    supported = $false
    walks = 0
    rule_count = 0
    rules = @()
    management_rules = @()
    profiles = @{}
}
if ($os -lt [version]$MinOsVersion -or $PSVersionTable.PSVersion -lt [version]$MinPsVersion) {
    $Ansible.Result = ConvertTo-Json -InputObject $out -Depth 5 -Compress
    return
}
$out.supported = $true

$policy = New-Object -ComObject HNetCfg.FwPolicy2
$out.local_policy_modify_state = [int]$policy.LocalPolicyModifyState
$out.current_profile_types = [int]$policy.CurrentProfileTypes
foreach ($entry in @(@('domain', 1), @('private', 2), @('public', 4))) {
    $out.profiles[$entry[0]] = @{
        enabled = [bool]$policy.FirewallEnabled($entry[1])
        default_inbound_action = [int]$policy.DefaultInboundAction($entry[1])
        block_all_inbound = [bool]$policy.BlockAllInboundTraffic($entry[1])
    }
}

$owned = New-Object -TypeName System.Collections.ArrayList
$management = New-Object -TypeName System.Collections.ArrayList
$count = 0
foreach ($rule in $policy.Rules) {
    $count++
    $name = [string]$rule.Name
    if ([string]$rule.Grouping -eq $Group -or $name.StartsWith($NamePrefix, [StringComparison]::OrdinalIgnoreCase)) {
        [void]$owned.Add((ConvertTo-RuleRecord -Rule $rule))
    }
    elseif ($rule.Enabled -and [int]$rule.Direction -eq 1 -and ([int]$rule.Protocol -eq 6 -or [int]$rule.Protocol -eq 256) -and
        (Test-PortAdmitted -Ports ([string]$rule.LocalPorts) -Wanted $ManagementPorts)) {
        [void]$management.Add((ConvertTo-RuleRecord -Rule $rule))
    }
}
$out.walks = 1
$out.rule_count = $count
$out.rules = $owned.ToArray()
$out.management_rules = $management.ToArray()
$Ansible.Result = ConvertTo-Json -InputObject $out -Depth 5 -Compress
"""

APPLY_PARAMETERS = ("Group", "OpsJson")
APPLY_PS1 = r"""[CmdletBinding(SupportsShouldProcess)]
param (
    [Parameter(Mandatory = $true)][string]$Group,
    [Parameter(Mandatory = $true)][string]$OpsJson
)
# configmgr.nap win_nap_firewall: APPLY an op list in one call. Ops: remove (every rule of that name, only
# while it is in the owned group) and add (a new HNetCfg.FWRule, Protocol set before the ports).
# Each op reports its own error with its rule name; the others still run (a partial apply is reported and
# the next run completes it).
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false

$policy = New-Object -ComObject HNetCfg.FwPolicy2
$rules = $policy.Rules
# No @(): Windows PowerShell 5.1 writes a JSON array as ONE object, which @() would wrap again;
# foreach enumerates it either way.
$ops = ConvertFrom-Json -InputObject $OpsJson
$results = New-Object -TypeName System.Collections.ArrayList
$applied = 0
$failed = 0

function Get-RuleByName {
    param ([string]$Name)
    try { $rules.Item($Name) } catch { $null }
}

foreach ($op in $ops) {
    $name = [string]$op.name
    $record = @{ op = [string]$op.op; name = $name; ok = $false; error = $null }
    try {
        if (-not $PSCmdlet.ShouldProcess($name, "$($op.op) firewall rule")) {
            $record.whatif = $true
        }
        elseif ($op.op -eq 'remove') {
            $removed = 0
            while ($true) {
                $existing = Get-RuleByName -Name $name
                if ($null -eq $existing) { break }
                if ([string]$existing.Grouping -ne $Group) {
                    throw "a rule named '$name' outside the group '$Group' exists; it was not removed"
                }
                $rules.Remove($name)
                $removed++
                if ($removed -ge 64) { throw "more than 64 rules are named '$name'" }
            }
            $record.removed = $removed
            $record.ok = $true
        }
        elseif ($op.op -eq 'add') {
            if ($null -ne (Get-RuleByName -Name $name)) {
                throw "a rule named '$name' already exists; it was not added twice"
            }
            $spec = $op.rule
            $new = New-Object -ComObject HNetCfg.FWRule
            $new.Name = [string]$spec.Name
            $new.Description = [string]$spec.Description
            $new.Grouping = [string]$spec.Grouping
            $new.Direction = [int]$spec.Direction
            # INetFwRule: Protocol must be set before LocalPorts/RemotePorts.
            $new.Protocol = [int]$spec.Protocol
            if ($spec.LocalPorts -and $spec.LocalPorts -ne '*') { $new.LocalPorts = [string]$spec.LocalPorts }
            if ($spec.RemotePorts -and $spec.RemotePorts -ne '*') { $new.RemotePorts = [string]$spec.RemotePorts }
            if ($spec.LocalAddresses -ne '*') { $new.LocalAddresses = [string]$spec.LocalAddresses }
            if ($spec.RemoteAddresses -ne '*') { $new.RemoteAddresses = [string]$spec.RemoteAddresses }
            $new.Profiles = [int]$spec.Profiles
            $new.Action = [int]$spec.Action
            $new.Enabled = [bool]$spec.Enabled
            $rules.Add($new)
            $record.ok = $true
        }
        else {
            throw "unknown op '$($op.op)'"
        }
    }
    catch {
        $record.error = $_.Exception.Message
    }
    if ($record.ok) { $applied++ } elseif (-not $record.whatif) { $failed++ }
    [void]$results.Add($record)
}
$Ansible.Changed = ($applied -gt 0)
$Ansible.Result = ConvertTo-Json -InputObject @{ results = $results.ToArray(); applied = $applied; failed = $failed } -Depth 4 -Compress
"""


def read_parameters(group, prefix, ports=MANAGEMENT_PORTS):
    return OrderedDict((("Group", group), ("NamePrefix", prefix), ("ManagementPorts", list(ports)),
                        ("MinOsVersion", MIN_OS_VERSION), ("MinPsVersion", MIN_PS_VERSION)))


def apply_parameters(group, ops):
    return OrderedDict((("Group", group), ("OpsJson", json.dumps(ops, sort_keys=True))))


# ---------------------------------------------------------------------------
# Guards
# ---------------------------------------------------------------------------
def _version_tuple(text):
    parts = re.findall(r"\d+", str(text or ""))
    return tuple(int(p) for p in parts[:4])


def version_ok(os_version, ps_version):
    return (_version_tuple(os_version)[:3] >= _version_tuple(MIN_OS_VERSION)
            and _version_tuple(ps_version)[:2] >= _version_tuple(MIN_PS_VERSION))


def unsupported_message(host, os_version, ps_version):
    return ("host %s runs Windows %s with PowerShell %s: win_nap_firewall manages Windows Server 2008 R2 SP1 "
            "(6.1.7601) with WMF 5.1 and newer. For this host use state: rendered and run the PowerShell 2.0 "
            "COM script (rendered.com) or the netsh commands (rendered.netsh) on it, or put the rules in a GPO; "
            "nothing was changed" % (host, os_version or "?", ps_version or "?"))


def check_versions(host, os_version, ps_version):
    if not version_ok(os_version, ps_version):
        raise NapError(unsupported_message(host, os_version, ps_version))


def facts_versions(task_vars):
    """(os_version, ps_major) from gathered facts, when there are any."""
    facts = task_vars.get("ansible_facts") or {}
    os_version = facts.get("distribution_version") or task_vars.get("ansible_distribution_version")
    ps_version = facts.get("powershell_version") or task_vars.get("ansible_powershell_version")
    return os_version, ps_version


def local_policy_problem(host, state):
    """Message for a LocalPolicyModifyState other than OK, or None."""
    if not state:
        return None
    what = MODIFY_STATE.get(int(state), str(state))
    if int(state) == 1:
        why = "Group Policy controls the firewall profile, so rules added locally do not take effect"
    else:
        why = "unsolicited inbound traffic is blocked in the current profile, so inbound rules do not take effect"
    return ("host %s: LocalPolicyModifyState is %s: %s. Put the rules in the GPO (state: rendered gives the "
            "rules), or set local_policy_override: warn to write them locally anyway" % (host, what, why))


def _subtract(remaining, net):
    out = []
    for have in remaining:
        if have.version != net.version:
            out.append(have)
        elif have.subnet_of(net):
            continue
        elif net.subnet_of(have):
            out.extend(have.address_exclude(net))
        else:
            out.append(have)
    return out


def _app_neutral(fw):
    """A rule limited to a program or service other than System may not admit WinRM traffic."""
    app = str(fw.get("ApplicationName") or "").strip().lower()
    svc = str(fw.get("ServiceName") or "").strip()
    return app in ("", "system") and svc in ("", "*")


def lockout_problems(sources, ports, read, group, owned_after, mask):
    """Why the policy after the run would cut management (empty list: it would not).

    ``sources``: CIDRs Ansible connects from; ``ports``: the WinRM/PSRP ports any one of which must stay
    open from every source; ``read``: the read document (profiles, management_rules of other groups,
    prefix-named rules outside the group); ``group``: the owned group; ``owned_after``: model rules
    (Windows names) the owned group holds after the run; ``mask``: their profiles.
    """
    nets = [ipaddress.ip_network(s, strict=False) for s in sources]
    foreign = list(read.get("management_rules") or [])
    foreign += [fw for fw in read.get("rules") or [] if str(fw.get("Grouping") or "").lower() != group.lower()]
    candidates = []
    for fw in foreign:
        if not fw.get("Enabled") or int(fw.get("Direction") or 0) != DIR_IN:
            continue
        if int(fw.get("Protocol") or 0) not in (6, PROTOCOL_ANY) or not _app_neutral(fw):
            continue
        candidates.append(dict(fw))
    for rule in owned_after:
        if rule.direction == "in" and rule.protocol == "tcp":
            fw = rule_to_fw(rule, "", "", mask, named=True)
            candidates.append(fw)
    profiles = read.get("profiles") or {}
    current = int(read.get("current_profile_types") or 0) or PROFILES_ALL
    problems = []
    for pname, bit in PROFILE_BITS.items():
        if not current & bit:
            continue
        state = profiles.get(pname) or {}
        if state.get("enabled") is False:
            continue
        if state.get("block_all_inbound"):
            problems.append("profile %s blocks all inbound traffic (BlockAllInboundTraffic)" % pname)
            continue
        default_allow = state.get("default_inbound_action") == ACTION_ALLOW
        best = None
        for port in ports:
            allow, block = [], []
            for fw in candidates:
                if not int(fw.get("Profiles") or 0) & bit or not ports_cover(fw.get("LocalPorts"), port):
                    continue
                addr, unknown = address_networks(fw.get("RemoteAddresses"))
                if fw.get("Action") == ACTION_ALLOW:
                    allow.extend(addr)
                else:
                    block.extend(addr)
                    if unknown:   # a keyword in a block rule: assume it may match
                        block += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            missing = []
            for src in nets:
                if any(src.overlaps(b) for b in block if b.version == src.version):
                    missing.append("%s (blocked by a block rule)" % src)
                    continue
                if default_allow:
                    continue
                remaining = [src]
                for net in allow:
                    remaining = _subtract(remaining, net)
                    if not remaining:
                        break
                if remaining:
                    missing.append(str(src))
            if not missing:
                best = None
                break
            if best is None or len(missing) < len(best[1]):
                best = (port, missing)
        if best is not None:
            problems.append("profile %s: no enabled inbound allow rule admits TCP %s from %s"
                            % (pname, "/".join(str(p) for p in ports), ", ".join(best[1])))
    return problems


# ---------------------------------------------------------------------------
# Reading and diffing
# ---------------------------------------------------------------------------
class HostState:
    """The read document, split into owned rules (as model Rules, Windows names) and collisions."""

    def __init__(self, doc, group, prefix, mask=PROFILES_ALL):
        self.doc = doc
        self.group = group
        self.prefix = prefix
        self.mask = mask
        self.owned_fw = []
        self.outside_fw = []       # prefix-named rules outside the group
        for fw in doc.get("rules") or []:
            if str(fw.get("Grouping") or "").lower() == group.lower():
                self.owned_fw.append(fw)
            else:
                self.outside_fw.append(fw)
        self.owned = [fw_to_rule(fw, prefix, mask) for fw in self.owned_fw]

    def name_counts(self):
        counts = {}
        for rule in self.owned:
            counts[rule.name.lower()] = counts.get(rule.name.lower(), 0) + 1
        return counts

    def collisions(self, names):
        """Rules outside the group whose names the run would add or remove (case-insensitive)."""
        wanted = set(n.lower() for n in names)
        return [fw for fw in self.outside_fw if str(fw.get("Name") or "").lower() in wanted]


def plan_changes(want, state):
    """(RuleDiff, ops) for wanted rules (Windows names) against the owned rules of a HostState.

    Updates are applied as remove + add (a name is removed with every copy of it).  A name held by
    several owned rules is removed and, when wanted, added once again.
    """
    rdiff = diff_rules(want, state.owned)
    counts = state.name_counts()
    dup = set(n for n, c in counts.items() if c > 1)
    mask = state.mask
    ops = []
    removed = set()
    for rule in rdiff.remove:
        if rule.name.lower() not in removed:
            ops.append({"op": "remove", "name": rule.name})
            removed.add(rule.name.lower())
    readd = []
    for rule in rdiff.unchanged:
        if rule.name.lower() in dup:
            ops.append({"op": "remove", "name": rule.name})
            removed.add(rule.name.lower())
            readd.append(rule)
    for _old, new in rdiff.update:
        if new.name.lower() not in removed:
            ops.append({"op": "remove", "name": new.name})
            removed.add(new.name.lower())
        fw = rule_to_fw(new, state.group, state.prefix, mask, named=True)
        ops.append({"op": "add", "name": new.name, "rule": fw})
    for rule in rdiff.add + readd:
        fw = rule_to_fw(rule, state.group, state.prefix, mask, named=True)
        ops.append({"op": "add", "name": rule.name, "rule": fw})
    return rdiff, ops
