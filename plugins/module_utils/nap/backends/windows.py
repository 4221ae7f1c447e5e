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
* the two PowerShell scripts the action runs through ``ansible.windows.win_powershell``, loaded from
  ``powershell/read.ps1`` and ``powershell/apply.ps1`` (:data:`READ_PS1`: one pass over the rule store;
  :data:`APPLY_PS1`: every change in one call, then the owned group read back), with the parameter names
  they take;
* the guards: version (:func:`check_versions`), Group Policy (:func:`local_policy_problem`), values
  Windows refuses (:func:`check_windows_values`), anti-lockout as Windows decides it
  (:func:`admission_problems`: the one management port, the effective profile state with Group Policy,
  narrowed rules not counted; :func:`apply_lockout_problems`: every point of the apply), name collisions;
* the apply itself (:func:`plan_changes`): in-place updates and additions first (management flows before
  the others), removals last and under a unique temporary name; :func:`apply_outcome` reads what the apply
  really did (per-op results, the read-back, what is left, the lockout check on the read-back).

The ``state: rendered`` forms live in windows_render.py.

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
* INetFwRule::IcmpTypesAndCodes: "a list of ICMP types and codes separated by semicolon. "*" indicates all ICMP
  types and codes." (https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-get_icmptypesandcodes);
  an ICMP rule is protocol 1 (ICMPv4) or 58 (ICMPv6), so IPv6 addresses need a rule of their own.
* INetFwRule::Grouping of a predefined rule is its resource string (``@FirewallAPI.dll,-28502``), the same on
  every language of Windows (INetFwRule::get_Grouping,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-get_grouping).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import io
import ipaddress
import json
import os
import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue, names, plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import check_unique, diff_rules
from ansible_collections.configmgr.nap.plugins.module_utils.nap.model import (
    ICMP_TYPES, PORT_KEYWORDS, PORT_PROTOCOLS, PROTOCOL_NUMBERS, NapError, Rule, normalize_addresses, normalize_ports,
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
PROTOCOL_ICMPV6 = 58
PROTOCOL_NAMES[PROTOCOL_ICMPV6] = "icmp"        # read back: ICMPv6 is the model's icmp on IPv6 addresses
# icmp_type as IcmpTypesAndCodes: (ICMPv4 value, ICMPv6 value) for each type the model knows (model.ICMP_TYPES)
ICMP_TYPE_CODES = dict((name, ("%d:*" % v4, "%d:*" % v6)) for name, (v4, v6, _code) in ICMP_TYPES.items())
ICMPV6_SUFFIX = "-ICMPV6"
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


def _family(addresses, version):
    return tuple(a for a in addresses if ipaddress.ip_network(a, strict=False).version == version)


def split_icmp_families(rules):
    """An ICMP rule with IPv4 and IPv6 addresses becomes two: ``name`` (ICMPv4, protocol 1) and ``name-ICMPV6``
    (ICMPv6, protocol 58), as a Windows rule has one protocol.  A rule with IPv6 addresses only stays one rule
    (ICMPv6); a rule without addresses stays one ICMPv4 rule (docs/windows.md)."""
    out = []
    for rule in rules:
        addresses = rule.src_addresses + rule.dst_addresses
        if rule.protocol != "icmp" or not addresses:
            out.append(rule)
            continue
        versions = set(ipaddress.ip_network(a, strict=False).version for a in addresses)
        if versions != set((4, 6)):
            out.append(rule)
            continue
        data = rule.to_dict()
        v4 = dict(data, src_addresses=_family(rule.src_addresses, 4), dst_addresses=_family(rule.dst_addresses, 4))
        v6 = dict(data, name=rule.name + ICMPV6_SUFFIX, src_addresses=_family(rule.src_addresses, 6),
                  dst_addresses=_family(rule.dst_addresses, 6))
        out.extend((Rule(**v4), Rule(**v6)))
    return out


def icmp_protocol(rule):
    """1 (ICMPv4) or 58 (ICMPv6, a rule whose addresses are all IPv6)."""
    addresses = rule.src_addresses + rule.dst_addresses
    if addresses and all(ipaddress.ip_network(a, strict=False).version == 6 for a in addresses):
        return PROTOCOL_ICMPV6
    return PROTOCOL_NUMBERS["icmp"]


def rules_from_input(items, where="rules"):
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise NapError("%s: expected a list of rules, got %r" % (where, items))
    rules = split_icmp_families([rule_from_input(item, "%s[%d]" % (where, i)) for i, item in enumerate(items)])
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
    fw["Protocol"] = icmp_protocol(rule) if rule.protocol == "icmp" else PROTOCOL_NUMBERS[rule.protocol]
    if rule.protocol == "icmp" and rule.icmp_type:
        fw["IcmpTypesAndCodes"] = ICMP_TYPE_CODES[rule.icmp_type][0 if fw["Protocol"] == 1 else 1]
    fw["LocalPorts"] = format_ports(local_ports, "com") if rule.protocol in PORT_PROTOCOLS else None
    fw["RemotePorts"] = format_ports(remote_ports, "com") if rule.protocol in PORT_PROTOCOLS else None
    fw["LocalAddresses"] = format_addresses(local_addr)
    fw["RemoteAddresses"] = format_addresses(remote_addr)
    fw["Profiles"] = mask
    fw["Enabled"] = True
    return fw


def _is_blank(value, also=()):
    return value is None or str(value).strip() == "" or str(value).strip() in also


def fw_to_rule(fw, prefix, mask=PROFILES_ALL, group=None):
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
    icmp_type, icmp_problem = read_icmp_type(proto_num, fw.get("IcmpTypesAndCodes"))
    if icmp_problem:
        problems.append(icmp_problem)
    for field, ok in (("InterfaceTypes", ("All",)), ("ApplicationName", ()), ("ServiceName", ()),
                      ("Interfaces", ())):
        if not _is_blank(fw.get(field), ok):
            problems.append("%s=%s" % (field, fw.get(field)))
    if fw.get("EdgeTraversal"):
        problems.append("EdgeTraversal=True")
    for field in ("RemoteMachineAuthorizedList", "RemoteUserAuthorizedList", "LocalUserAuthorizedList"):
        if not _is_blank(fw.get(field)):
            problems.append("%s=%s" % (field, fw.get(field)))
    if fw.get("SecureFlags"):
        problems.append("SecureFlags=%s" % fw.get("SecureFlags"))
    if group is not None and str(fw.get("Grouping") or "") != group:
        problems.append("Grouping=%s" % (fw.get("Grouping") or "(none)"))
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
                description=description, source=source, icmp_type=icmp_type)


def read_icmp_type(protocol, text):
    """(icmp_type or None, problem or None) of an IcmpTypesAndCodes value read back on a rule of ``protocol``."""
    if _is_blank(text, ("*",)):
        return None, None
    try:
        column = {1: 0, PROTOCOL_ICMPV6: 1}[int(protocol)]
    except (KeyError, TypeError, ValueError):
        return None, "IcmpTypesAndCodes=%s" % text
    value = str(text).strip().replace(" ", "")
    for name, codes in ICMP_TYPE_CODES.items():
        if value == codes[column]:
            return name, None
    return None, "IcmpTypesAndCodes=%s" % text


# ---------------------------------------------------------------------------
# The PowerShell run through ansible.windows.win_powershell (plugins/module_utils/nap/backends/powershell/)
# ---------------------------------------------------------------------------
# Both scripts declare [CmdletBinding(SupportsShouldProcess)] (else win_powershell skips them in check
# mode), set $Ansible.Changed explicitly (it defaults to true) and return ONE JSON string in
# $Ansible.Result (win_powershell serialises objects only to `depth`, 2 by default).  They target Windows
# PowerShell 5.1 (WMF 5.1, the managed path's minimum); the line '#include common.ps1' is replaced by the
# text of common.ps1, so that the read and the read-back after an apply are the same code.
SCRIPT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "powershell")
_INCLUDE_RE = re.compile(r"^#include ([A-Za-z0-9_.-]+\.ps1)[ \t]*$", re.M)


def _script_file(directory, name):
    with io.open(os.path.join(directory, name), encoding="utf-8") as handle:
        return handle.read()


def load_script(name, directory=None):
    """The text of powershell/<name>.ps1 with its ``#include`` lines expanded."""
    directory = directory or SCRIPT_DIR
    return _INCLUDE_RE.sub(lambda m: _script_file(directory, m.group(1)).rstrip("\n"),
                           _script_file(directory, name + ".ps1"))


def _load_or_none(name):
    try:
        return load_script(name)
    except (IOError, OSError):
        return None     # imported inside a module payload: AnsiballZ ships the .py files of module_utils only


READ_PARAMETERS = ("Group", "NamePrefix", "ManagementPorts", "MinOsVersion", "MinPsVersion", "PredefinedGroups",
                   "PredefinedNames")
APPLY_PARAMETERS = ("Group", "NamePrefix", "ManagementPorts", "OpsJson", "PredefinedGroups", "PredefinedNames")
READ_PS1 = _load_or_none("read")
APPLY_PS1 = _load_or_none("apply")


def _scope_parameters(out, scope):
    """PredefinedGroups / PredefinedNames (the predefined groups to read, by resource string and rule name), only when
    there are any (the read of predefined: ignore sends neither)."""
    resources, rule_names = scope or ((), ())
    if resources:
        out["PredefinedGroups"] = list(resources)
    if rule_names:
        out["PredefinedNames"] = list(rule_names)
    return out


def read_parameters(group, prefix, ports=MANAGEMENT_PORTS, scope=None):
    return _scope_parameters(OrderedDict((
        ("Group", group), ("NamePrefix", prefix), ("ManagementPorts", [int(p) for p in ports]),
        ("MinOsVersion", MIN_OS_VERSION), ("MinPsVersion", MIN_PS_VERSION))), scope)


def apply_parameters(group, ops, prefix=DEFAULT_PREFIX, ports=MANAGEMENT_PORTS, scope=None):
    return _scope_parameters(OrderedDict((
        ("Group", group), ("NamePrefix", prefix), ("ManagementPorts", [int(p) for p in ports]),
        ("OpsJson", json.dumps(ops, sort_keys=True)))), scope)


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


# ---------------------------------------------------------------------------
# Values Windows refuses (checked before any remote call)
# ---------------------------------------------------------------------------
def _port_item_problem(item, protocol, direction, field):
    low = item.strip().lower()
    if low in KEYWORD_READ:
        if protocol != 6 or direction != DIR_IN or field != "LocalPorts":
            return "the RPC keywords are valid only in LocalPorts of an inbound TCP rule"
        return None
    match = re.match(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$", low)
    if not match:
        return "not a port, a range low-high or a keyword Windows knows"
    low_port = int(match.group(1))
    high_port = int(match.group(2)) if match.group(2) else low_port
    if high_port > 65535 or low_port > high_port:
        return "not a port range Windows can parse (0-65535, low <= high)"
    return None


def fw_value_problems(fw):
    """[(field, value, why)] for INetFwRule properties Windows would refuse (E_INVALIDARG)."""
    out = []
    for field in ("Name", "Description"):
        if "|" in str(fw.get(field) or ""):
            out.append((field, fw.get(field), "Windows Firewall refuses '|' in a rule name or description"))
    try:
        protocol = int(fw.get("Protocol"))
    except (TypeError, ValueError):
        protocol = -1
    if not 0 <= protocol <= PROTOCOL_ANY:
        out.append(("Protocol", fw.get("Protocol"), "protocol numbers run from 0 to 256 (256 = any)"))
    direction = int(fw.get("Direction") or DIR_IN)
    for field in ("LocalPorts", "RemotePorts"):
        text = fw.get(field)
        if text in (None, "", "*"):
            continue
        if protocol not in (6, 17):
            out.append((field, text, "ports are valid only on TCP and UDP rules"))
            continue
        for item in str(text).split(","):
            why = _port_item_problem(item, protocol, direction, field)
            if why:
                out.append((field, item, why))
    return out


def check_windows_values(rules, host, group, prefix, mask=PROFILES_ALL):
    """NapError naming host, rule and value when Windows would refuse a rule as the module writes it."""
    for rule in rules:
        fw = rule_to_fw(rule, group, prefix, mask)
        for field, value, why in fw_value_problems(fw):
            raise NapError("host %s: rule %r: %s %r: %s" % (host, rule.name, field, value, why))


def is_management(rule):
    """Whether a rule carries the management connection (the catalogue trait ``management_channel``)."""
    return catalogue.has_trait(rule.flow_id, "management_channel")


# ---------------------------------------------------------------------------
# Anti-lockout as Windows decides it
# ---------------------------------------------------------------------------
# The effective profile state: Group Policy wins over the local settings where it sets a value (MS-GPFAS
# 2.2.3, e.g. "Allow Local Firewall Rule Policy Merge",
# https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-gpfas/2c979624-900a-4b6e-b4ef-09b387cd62ab).
# GP_PROFILE_KEYS names the registry values of HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\<Profile>.
GP_PROFILE_KEYS = ("EnableFirewall", "DefaultInboundAction", "DoNotAllowExceptions", "AllowLocalPolicyMerge")
NARROWING_BLANK = ("Interfaces", "RemoteMachineAuthorizedList", "RemoteUserAuthorizedList", "LocalUserAuthorizedList")


def effective_profile(doc, pname):
    """{enabled, block_all, default_allow, local_rules} of one profile, Group Policy first."""
    local = (doc.get("profiles") or {}).get(pname) or {}
    gp = (((doc.get("group_policy") or {}).get("profiles") or {}).get(pname)) or {}
    enabled = bool(gp["EnableFirewall"]) if gp.get("EnableFirewall") is not None else local.get("enabled") is not False
    if gp.get("DoNotAllowExceptions") is not None:
        block_all = bool(gp["DoNotAllowExceptions"])
    else:
        block_all = bool(local.get("block_all_inbound"))
    if gp.get("DefaultInboundAction") is not None:      # registry: 1 = block, 0 = allow (assumption, docs/windows.md)
        default_allow = int(gp["DefaultInboundAction"]) == 0
    else:
        default_allow = local.get("default_inbound_action") == ACTION_ALLOW
    local_rules = gp.get("AllowLocalPolicyMerge") is None or int(gp["AllowLocalPolicyMerge"]) != 0
    return {"enabled": enabled, "block_all": block_all, "default_allow": default_allow, "local_rules": local_rules}


_GP_FIELDS = {"LPort": "LocalPorts", "RPort": "RemotePorts", "RA4": "RemoteAddresses", "RA6": "RemoteAddresses",
              "LA4": "LocalAddresses", "LA6": "LocalAddresses", "IF": "Interfaces", "IFType": "InterfaceTypes",
              "App": "ApplicationName", "Svc": "ServiceName", "RMAuth": "RemoteMachineAuthorizedList",
              "RUAuth": "RemoteUserAuthorizedList", "LUAuth": "LocalUserAuthorizedList", "Name": "Name"}


def parse_gp_rule(text):
    """An INetFwRule-shaped dict from a Group Policy rule string (``v2.10|Action=Allow|Active=TRUE|Dir=In|...``).

    MS-GPFAS 2.2.2.10 gives the grammar; what is not understood makes the rule narrowed (it never counts as
    admitting the controller), so a misread can only make the check stricter.
    """
    fw = {"Enabled": False, "Direction": 0, "Action": ACTION_BLOCK, "Protocol": PROTOCOL_ANY, "Profiles": PROFILES_ALL,
          "Grouping": "(Group Policy)"}
    lists, profiles = {}, 0
    for part in str(text or "").split("|")[1:]:
        if "=" not in part:
            continue
        key, value = part.split("=", 1)
        if key == "Action":
            fw["Action"] = ACTION_ALLOW if value.lower() == "allow" else ACTION_BLOCK
        elif key == "Active":
            fw["Enabled"] = value.upper() == "TRUE"
        elif key == "Dir":
            fw["Direction"] = DIR_IN if value.lower() == "in" else DIR_OUT
        elif key == "Protocol":
            fw["Protocol"] = int(value) if value.isdigit() else -1
        elif key == "Profile":
            profiles |= PROFILE_BITS.get(value.lower(), 0)
        elif key == "Edge":
            fw["EdgeTraversal"] = value.upper() == "TRUE"
        elif key == "Security":
            fw["SecureFlags"] = 1
        elif key in _GP_FIELDS:
            lists.setdefault(_GP_FIELDS[key], []).append(value)
    for field, values in lists.items():
        fw[field] = ",".join(values)
    if profiles:
        fw["Profiles"] = profiles
    return fw


def narrowed(fw):
    """Why an allow rule may not match the controller's connection (None when it is not narrowed)."""
    for field in NARROWING_BLANK:
        if not _is_blank(fw.get(field)):
            return "%s=%s" % (field, fw.get(field))
    if not _is_blank(fw.get("InterfaceTypes"), ("All", "all")):
        return "InterfaceTypes=%s" % fw.get("InterfaceTypes")
    for field in ("LocalAddresses", "RemotePorts"):
        if not _is_blank(fw.get(field), ("*",)):
            return "%s=%s" % (field, fw.get(field))
    if fw.get("EdgeTraversal"):
        return "EdgeTraversal"
    if fw.get("SecureFlags"):
        return "SecureFlags=%s" % fw.get("SecureFlags")
    if not _app_neutral(fw):
        return "ApplicationName/ServiceName"
    return None


def admission_problems(sources, ports, doc, local_rules):
    """Why no enabled inbound rule would admit every management source on the management port.

    ``local_rules``: every rule of the local store that may matter (INetFwRule-shaped dicts: the owned ones
    and the foreign ones of the read); the Group Policy rules and profile state come from ``doc``.  An empty
    list means the controller is admitted in every current profile.
    """
    nets = [ipaddress.ip_network(s, strict=False) for s in sources]
    gp_rules = [parse_gp_rule(t) for t in (doc.get("group_policy") or {}).get("rules") or []]
    current = int(doc.get("current_profile_types") or 0) or PROFILES_ALL
    problems = []
    for pname, bit in PROFILE_BITS.items():
        if not current & bit:
            continue
        state = effective_profile(doc, pname)
        if not state["enabled"]:
            continue
        if state["block_all"]:
            problems.append("profile %s blocks all inbound traffic (BlockAllInboundTraffic or Group Policy "
                            "DoNotAllowExceptions)" % pname)
            continue
        rules = gp_rules + (list(local_rules) if state["local_rules"] else [])
        best = None
        for port in ports:
            allow, block = [], []
            for fw in rules:
                if not fw.get("Enabled") or int(fw.get("Direction") or 0) != DIR_IN:
                    continue
                if int(fw.get("Protocol") if fw.get("Protocol") is not None else -1) not in (6, PROTOCOL_ANY):
                    continue
                if not int(fw.get("Profiles") or 0) & bit or not ports_cover(fw.get("LocalPorts"), port):
                    continue
                addr, unknown = address_networks(fw.get("RemoteAddresses"))
                if fw.get("Action") == ACTION_ALLOW:
                    if narrowed(fw) is None:
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
                if state["default_allow"]:
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


def foreign_rules(doc, group):
    """The rules of the read outside the owned group (management-port rules and prefix-named ones)."""
    out = list(doc.get("management_rules") or [])
    out += [fw for fw in doc.get("rules") or [] if str(fw.get("Grouping") or "").lower() != group.lower()]
    return out


def lockout_problems(sources, ports, read, group, owned_after, mask):
    """Why the policy after the run would cut management (empty list: it would not).

    ``sources``: CIDRs Ansible connects from; ``ports``: the management port (a tuple of one); ``read``:
    the read document; ``group``: the owned group; ``owned_after``: model rules (Windows names) the owned
    group holds after the run; ``mask``: their profiles.
    """
    fws = foreign_rules(read, group) + [rule_to_fw(r, group, "", mask, named=True) for r in owned_after]
    return admission_problems(sources, ports, read, fws)


# ---------------------------------------------------------------------------
# Reading and diffing
# ---------------------------------------------------------------------------
class HostState:
    """The read document, split into owned rules (as model Rules, Windows names) and collisions.

    ``adopt``: Windows names of planned rules; a rule with an EMPTY Grouping whose name is exactly one of
    them (what ``netsh advfirewall firewall add rule`` makes: netsh cannot set a group) is adopted as owned
    and gets the group on the next apply, instead of being refused as a collision.
    """

    def __init__(self, doc, group, prefix, mask=PROFILES_ALL, adopt=()):
        self.doc = doc
        self.group = group
        self.prefix = prefix
        self.mask = mask
        adopt = set(adopt)
        self.owned_fw = []
        self.adopted_fw = []
        self.outside_fw = []       # prefix-named rules outside the group
        self.marker_fw = None      # the owned marker of predefined: disable (not a planned rule)
        marker = marker_name(prefix).lower()
        for fw in doc.get("rules") or []:
            grouping = str(fw.get("Grouping") or "")
            if grouping.lower() == group.lower() and str(fw.get("Name") or "").lower() == marker:
                self.marker_fw = self.marker_fw or fw
            elif grouping.lower() == group.lower():
                self.owned_fw.append(fw)
            elif grouping == "" and str(fw.get("Name") or "") in adopt:
                self.owned_fw.append(fw)
                self.adopted_fw.append(fw)
            else:
                self.outside_fw.append(fw)
        self.owned = [fw_to_rule(fw, prefix, mask, group) for fw in self.owned_fw]

    def name_counts(self):
        counts = {}
        for rule in self.owned:
            counts[rule.name.lower()] = counts.get(rule.name.lower(), 0) + 1
        return counts

    def collisions(self, names):
        """Rules outside the group whose names the run would add or remove (case-insensitive)."""
        wanted = set(n.lower() for n in names)
        return [fw for fw in self.outside_fw if str(fw.get("Name") or "").lower() in wanted]


# The order in which an in-place update sets properties: Protocol before the ports (INetFwRule::put_Protocol),
# the rule's reach (addresses, profiles, narrowing) before Action and Enabled.
UPDATE_ORDER = ("Name", "Grouping", "Description", "Direction", "Protocol", "LocalPorts", "RemotePorts",
                "LocalAddresses", "RemoteAddresses", "Profiles", "InterfaceTypes", "Interfaces", "EdgeTraversal",
                "SecureFlags", "RemoteMachineAuthorizedList", "RemoteUserAuthorizedList", "LocalUserAuthorizedList",
                "ApplicationName", "ServiceName", "IcmpTypesAndCodes", "Action", "Enabled")
# What a rule the module writes holds in the properties the rule model has no field for.
NEUTRAL = OrderedDict((("InterfaceTypes", "All"), ("Interfaces", ""), ("EdgeTraversal", False), ("SecureFlags", 0),
                       ("RemoteMachineAuthorizedList", ""), ("RemoteUserAuthorizedList", ""),
                       ("LocalUserAuthorizedList", ""), ("ApplicationName", ""), ("ServiceName", ""),
                       ("IcmpTypesAndCodes", "")))


def _same_value(field, have, want):
    if field in ("LocalPorts", "RemotePorts"):
        hp, hbad = parse_ports(have)
        wp, _wbad = parse_ports(want)
        return not hbad and hp == wp
    if field in ("LocalAddresses", "RemoteAddresses"):
        ha, hbad = parse_addresses(have)
        wa, _wbad = parse_addresses(want)
        return not hbad and ha == wa
    if field == "Profiles":
        try:
            return same_profiles(have, want)
        except (TypeError, ValueError):
            return False
    if field == "InterfaceTypes":
        return _is_blank(have, ("All", "all"))
    if field == "IcmpTypesAndCodes":
        if _is_blank(want, ("*",)):
            return _is_blank(have, ("*",))
        return str(have or "").strip().replace(" ", "") == str(want).strip()
    if field == "SecureFlags":
        return have is None or not int(have)
    if field in ("EdgeTraversal", "Enabled"):
        return bool(have) == bool(want)
    if field in NARROWING_BLANK + ("ApplicationName", "ServiceName"):
        return _is_blank(have)
    if field in ("Direction", "Action", "Protocol"):
        try:
            return int(have) == int(want)
        except (TypeError, ValueError):
            return False
    return str(have if have is not None else "") == str(want if want is not None else "")


def update_set(have, want):
    """[[property, value]] that turn the rule ``have`` into ``want`` in place (only what differs, in
    UPDATE_ORDER; ports reset to ``*`` before a protocol change, as Windows takes ports only on TCP/UDP)."""
    full = dict(NEUTRAL)
    full.update(want)
    out = []
    proto_change = not _same_value("Protocol", have.get("Protocol"), full["Protocol"])
    if proto_change:
        for field in ("LocalPorts", "RemotePorts", "IcmpTypesAndCodes"):
            if not _is_blank(have.get(field), ("*",)):
                out.append([field, "" if field == "IcmpTypesAndCodes" else "*"])
    for field in UPDATE_ORDER:
        value = full.get(field)
        if field in ("LocalPorts", "RemotePorts"):
            value = value if value not in (None, "") else "*"
            if proto_change:
                if value != "*":
                    out.append([field, value])
                continue
        if field == "Name":
            if str(have.get("Name")) != str(value):
                out.append([field, value])
            continue
        if field == "SecureFlags" and have.get("SecureFlags") is None:
            continue      # no INetFwRule3 on this OS
        if not _same_value(field, have.get(field), value):
            out.append([field, value])
    return out


def add_set(fw):
    """[[property, value]] that build a new rule (Protocol before the ports; '*' left at the default)."""
    out = []
    for field in ("Name", "Description", "Grouping", "Direction", "Protocol", "IcmpTypesAndCodes", "LocalPorts",
                  "RemotePorts", "LocalAddresses", "RemoteAddresses", "Profiles", "Action", "Enabled"):
        value = fw.get(field)
        if field == "IcmpTypesAndCodes" and not value:
            continue
        if field in ("LocalPorts", "RemotePorts", "LocalAddresses", "RemoteAddresses") and value in (None, "", "*"):
            continue
        out.append([field, value])
    return out


def full_set(fw, secure_flags=False):
    """[[property, value]] that turn ANY rule into ``fw`` in place (for a copy of a duplicated name)."""
    full = dict(NEUTRAL)
    full.update(fw)
    out = [["LocalPorts", "*"], ["RemotePorts", "*"]]     # before the protocol: Windows takes ports only on TCP/UDP
    for field in UPDATE_ORDER:
        value = full.get(field)
        if field == "SecureFlags" and not secure_flags:
            continue
        if field in ("LocalPorts", "RemotePorts", "LocalAddresses", "RemoteAddresses"):
            value = value if value not in (None, "") else "*"
            if field in ("LocalPorts", "RemotePorts") and value == "*":
                continue
        out.append([field, value])
    return out


def _same_rule(have, want):
    return (have is not None and have.name == want.name and have.key() == want.key()
            and have.description == want.description and have.flow_id == want.flow_id and have.source == want.source)


def _token():
    return binascii.hexlify(os.urandom(4)).decode("ascii")


def temp_name(name, token, index):
    """A unique temporary name for a rule about to be renamed away (and removed, or renamed back)."""
    return "%s ~%s.%d" % (name, token, index)


def plan_changes(want, state, token=None):
    """(RuleDiff, ops) for wanted rules (Windows names) against the owned rules of a HostState.

    The ops: ``add`` and in-place ``update`` first (management flows before the others), ``remove`` last.
    A name held by several owned rules is renamed copy by copy to unique temporary names; the first copy is
    updated back to the wanted rule, the others are removed by their unique names.  Removal also renames
    first, so that INetFwRules::Remove can never hit another rule that shares the name.
    """
    token = token or _token()
    rdiff = diff_rules(want, state.owned)
    have_by_name = OrderedDict()
    for fw in state.owned_fw:
        have_by_name.setdefault(str(fw.get("Name") or "").lower(), []).append(fw)
    adopted = set(id(fw) for fw in state.adopted_fw)
    read_as = dict((id(fw), rule) for fw, rule in zip(state.owned_fw, state.owned))
    first, second, removes = [], [], []
    counter = [0]

    def temps(count):
        out = []
        for _i in range(count):
            counter[0] += 1
            out.append(temp_name(state.prefix.strip() or "nap", token, counter[0]))
        return out

    for rule in want:
        copies = have_by_name.pop(rule.name.lower(), [])
        if len(copies) == 1 and _same_rule(read_as.get(id(copies[0])), rule):
            continue            # read back exactly as wanted (no hand edit, same name and group): nothing to set
        fw = rule_to_fw(rule, state.group, state.prefix, state.mask, named=True)
        bucket = first if is_management(rule) else second
        adopt = any(id(c) in adopted for c in copies)
        if not copies:
            bucket.append({"op": "add", "name": rule.name, "set": add_set(fw)})
        elif len(copies) == 1:
            changes = update_set(copies[0], fw)
            if changes:
                op = {"op": "update", "name": str(copies[0].get("Name")), "set": changes}
                if adopt:
                    op["adopt"] = True
                bucket.append(op)
        else:
            names_ = temps(len(copies))
            full = full_set(fw, any(c.get("SecureFlags") is not None for c in copies))
            op = {"op": "update", "name": rule.name, "temp": names_, "set": full}
            if adopt:
                op["adopt"] = True
            bucket.append(op)
            for extra in names_[1:]:
                removes.append({"op": "remove", "name": extra, "temp": [extra]})
    for _key, copies in have_by_name.items():
        name = str(copies[0].get("Name"))
        removes.append({"op": "remove", "name": name, "temp": temps(len(copies))})
    return rdiff, first + second + removes


# ---------------------------------------------------------------------------
# Every point of an apply, simulated: the controller must stay admitted at each
# ---------------------------------------------------------------------------
def _relevant(fw, ports):
    if not fw.get("Enabled") or int(fw.get("Direction") or 0) != DIR_IN:
        return False
    return any(ports_cover(fw.get("LocalPorts"), p) for p in ports)


def simulate(ops, state, ports):
    """Yield (op index, step label, rules) after every step of the ops that could narrow access.

    ``rules``: every local rule that may matter at that point (the foreign ones of the read and the owned
    group as it stands).  A step is a Remove, or a property set on a rule that admitted the management port
    before it; additions only widen access (the module adds allow rules only).
    """
    owned = OrderedDict()
    for i, fw in enumerate(state.owned_fw):
        owned[i] = dict(fw)
    foreign = [dict(fw) for fw in foreign_rules(state.doc, state.group)]
    index_by_name = {}
    for key, fw in owned.items():
        index_by_name.setdefault(str(fw.get("Name")).lower(), []).append(key)
    next_key = [len(owned)]

    def rules():
        return foreign + list(owned.values())

    def take(name):
        keys = index_by_name.get(name.lower()) or []
        return keys.pop(0) if keys else None

    for index, op in enumerate(ops):
        if op["op"] == "add":
            fw = dict(op["set"])
            owned[next_key[0]] = fw
            index_by_name.setdefault(str(fw.get("Name")).lower(), []).append(next_key[0])
            next_key[0] += 1
        elif op["op"] == "update":
            if op.get("temp"):
                keys = [take(op["name"]) for _t in op["temp"]]
                for key, temp in zip(keys[1:], op["temp"][1:]):
                    if key is not None:
                        owned[key]["Name"] = temp
                        index_by_name.setdefault(temp.lower(), []).append(key)
                key = keys[0]
            else:
                key = take(op["name"])
            if key is None:
                continue
            fw = owned[key]
            for field, value in op["set"]:
                before = _relevant(fw, ports)
                fw[field] = value
                if before:
                    yield index, "%s %s: %s" % (op["op"], op["name"], field), rules()
            index_by_name.setdefault(str(fw.get("Name")).lower(), []).append(key)
        elif op["op"] == "remove":
            for _temp in op["temp"]:
                key = take(op["name"])
                if key is None:
                    continue
                fw = owned.pop(key)
                if _relevant(fw, ports):
                    yield index, "remove %s" % op["name"], rules()
        elif op["op"] == "disable":
            # a predefined rule turned off: it may be the one that admits the controller (the WinRM group)
            for fw in foreign:
                if (str(fw.get("Name") or "").lower() == op["name"].lower()
                        and str(fw.get("Grouping") or "") == op["grouping"]):
                    before = _relevant(fw, ports)
                    fw["Enabled"] = False
                    if before:
                        yield index, "disable %s" % op["name"], rules()


def apply_lockout_problems(sources, ports, state, ops):
    """Why some point of the apply would cut the controller off: [(op index, step, problems)]."""
    found = []
    for index, label, rules in simulate(ops, state, ports):
        problems = admission_problems(sources, ports, state.doc, rules)
        if problems:
            found.append((index, label, problems))
            break
    return found


# ---------------------------------------------------------------------------
# What an apply did
# ---------------------------------------------------------------------------
def apply_outcome(reply, ops, want, state, sources, ports, check_lockout=True):
    """Read the apply script's answer: per-op results, the owned group read back, what is left, lockout.

    Returns a dict: ``results`` (one per op), ``failed`` (the results that failed), ``skipped`` (op names not
    run because an earlier op failed), ``after_state`` (HostState of the read-back), ``left`` (RuleDiff of
    the wanted rules against what is really there) and ``lockout`` (problems on the read-back, [] when the
    controller is admitted or the check is off).
    """
    results = reply.get("results") or []
    if isinstance(results, dict):
        results = [results]
    failed = [r for r in results if not r.get("ok") and not r.get("skipped") and not r.get("whatif")]
    if len(results) != len(ops):
        failed.append({"op": "?", "name": "?", "error": "the apply script answered %d of %d ops" % (len(results), len(ops))})
    skipped = [r.get("name") for r in results if r.get("skipped")]
    readback = reply.get("readback")
    after_state = None
    left = None
    lockout = []
    if isinstance(readback, dict):
        doc = dict(state.doc)
        doc.update(readback)
        after_state = HostState(doc, state.group, state.prefix, state.mask, adopt=[r.name for r in want])
        left = diff_rules(want, after_state.owned)
        if check_lockout:
            lockout = admission_problems(sources, ports, doc, foreign_rules(doc, state.group) + after_state.owned_fw)
    return {"results": results, "failed": failed, "skipped": skipped, "after_state": after_state, "left": left,
            "lockout": lockout}


# ---------------------------------------------------------------------------
# Windows predefined rule groups (issue #17): the wider predefined rules beside the owned ones
# ---------------------------------------------------------------------------
# Installing a role enables its predefined inbound rules from any address: "NPS and Firewalls" / Configure Firewalls
# for RADIUS Traffic (https://learn.microsoft.com/en-us/windows-server/networking/technologies/nps/nps-firewalls-configure)
# says the NPS exceptions are configured automatically during installation; the same holds for DHCP Server, Routing
# and Remote Access and IIS (docs/windows.md, assumptions).  The read returns the inbound rules of the groups the
# catalogue names for the host's planned flows (by resource string, else by rule name); the controller decides which
# of the enabled ones admit more than the plan.
PREDEFINED_MODES = ("ignore", "report", "disable")
# The groups that serve the whole domain on a domain controller: predefined: disable is refused for them.
DOMAIN_GROUPS = (catalogue.GROUP_ADDS, catalogue.GROUP_DNS, catalogue.GROUP_KDC)
MARKER_NAME = "predefined-disabled"     # model name of the owned marker rule (disabled) that records what was disabled
MARKER_TEXT = "configmgr.nap disabled these predefined rules; state: absent re-enables them: "


def predefined_groups(rules, plan=None, host=None):
    """[{name, resource, rules}] of the predefined groups that cover the host's planned inbound flows: the plan's
    ``windows_group`` of every flow whose destination is the host, else the catalogue's groups of each inbound rule's
    flow (every choice of a GroupChoice)."""
    found = []
    if plan is not None:
        for flow in plan.get("flows") or []:
            if host and flow.get("dst_host") == host:
                found.extend(flow.get("windows_group") or [])
    else:
        for rule in rules:
            flow = catalogue.FLOWS_BY_ID.get(rule.flow_id) or catalogue.VIA_BY_ID.get(rule.flow_id)
            if rule.direction == "in" and flow is not None:
                found.extend(catalogue.group_data(flow.groups()))
    merged = OrderedDict()
    for group in found:
        key = (group.get("name"), group.get("resource"))
        entry = merged.setdefault(key, {"name": group.get("name"), "resource": group.get("resource"), "rules": []})
        entry["rules"].extend(r for r in group.get("rules") or [] if r not in entry["rules"])
    return list(merged.values())


def predefined_scope(groups):
    """(resource strings, rule names) the read script matches: a group by its resource string, its listed rules by
    Name (the only way for the groups without a known resource string: NPS, IIS)."""
    resources, rule_names = [], []
    for group in groups:
        if group.get("resource") and group["resource"] not in resources:
            resources.append(group["resource"])
        rule_names.extend(r for r in group.get("rules") or [] if r not in rule_names)
    return resources, rule_names


def _group_of(fw, groups):
    """The catalogue group (dict) a predefined rule belongs to: by resource string, else by a listed rule name."""
    grouping = str(fw.get("Grouping") or "").lower()
    name = str(fw.get("Name") or "")
    for group in groups:
        if group.get("resource") and group["resource"].lower() == grouping:
            return group
    for group in groups:
        if name in (group.get("rules") or []):
            return group
    return None


def _port_items(text):
    """LocalPorts items of a predefined rule (None for any)."""
    if text is None or str(text).strip() in ("", "*"):
        return None
    out = []
    for item in str(text).split(","):
        low = item.strip().lower()
        if low:
            out.append(KEYWORD_READ.get(low, low))
    return out


def _item_range(item):
    if item in PORT_KEYWORDS:
        return None
    low, _dash, high = str(item).partition("-")
    return int(low), int(high or low)


def _item_covered(item, planned_ports):
    """Whether one port item (a port, a range or an RPC keyword) lies within the planned ports."""
    if item in PORT_KEYWORDS:
        return item in planned_ports
    low, high = _item_range(item)
    for port in planned_ports:
        if port in PORT_KEYWORDS:
            continue
        plow, phigh = _item_range(str(port))
        if plow <= low and high <= phigh:
            return True
    return False


def _item_overlaps(item, planned_ports):
    if item in PORT_KEYWORDS:
        return item in planned_ports
    low, high = _item_range(item)
    for port in planned_ports:
        if port in PORT_KEYWORDS:
            continue
        plow, phigh = _item_range(str(port))
        if plow <= high and low <= phigh:
            return True
    return False


def _planned_protocol(rule):
    if rule.protocol == "icmp":
        return icmp_protocol(rule)
    return PROTOCOL_NUMBERS[rule.protocol]


def _covered_networks(nets, allowed):
    remaining = list(nets)
    for net in allowed:
        remaining = _subtract(remaining, net)
    return not remaining


def wider_predefined(doc, want, groups):
    """The enabled predefined inbound allow rules of the read (``predefined_rules``) that admit more than the plan.

    A rule counts when the catalogue lists it by name for a planned flow, or when it overlaps a planned inbound port
    of its protocol (matched by its group's resource string); it is wider when it admits a port the plan does not open
    (or every port), or remote addresses beyond the planned sources of those ports (Any where the plan has sources).
    Returns [{name, grouping, group, resource, protocol, local_ports, remote_addresses, why}].
    """
    inbound = [r for r in want if r.direction == "in"]
    out = []
    for fw in doc.get("predefined_rules") or []:
        if not fw.get("Enabled") or int(fw.get("Direction") or 0) != DIR_IN or fw.get("Action") != ACTION_ALLOW:
            continue
        group = _group_of(fw, groups)
        if group is None:
            continue
        try:
            protocol = int(fw.get("Protocol"))
        except (TypeError, ValueError):
            continue
        listed = str(fw.get("Name") or "") in (group.get("rules") or [])
        same = [r for r in inbound if protocol == PROTOCOL_ANY or _planned_protocol(r) == protocol]
        why = []
        relevant = same
        if protocol in (6, 17):
            items = _port_items(fw.get("LocalPorts"))
            planned_ports = [p for r in same for p in (r.dst_ports or ())]
            any_port = [r for r in same if not r.dst_ports]
            if items is None:
                if not any_port:
                    why.append("every %s port" % PROTOCOL_NAMES[protocol].upper())
            else:
                if not any_port:
                    extra = [i for i in items if not _item_covered(i, planned_ports)]
                    if extra:
                        why.append("%s %s that the plan does not open" % (PROTOCOL_NAMES[protocol].upper(),
                                                                         ",".join(str(i) for i in extra)))
                    relevant = [r for r in same if not r.dst_ports or any(
                        _item_overlaps(i, list(r.dst_ports)) for i in items)]
                if not listed and not relevant:
                    continue            # a rule of the group on ports no planned flow uses
        elif protocol == PROTOCOL_ANY:
            why.append("every protocol")
        elif not same and not listed:
            continue
        if not relevant and not why:
            why.append("%s that the plan does not open" % PROTOCOL_NAMES.get(protocol, "protocol %s" % protocol))
        nets, unknown = address_networks(fw.get("RemoteAddresses"))
        sources = []
        any_source = any(not r.src_addresses for r in relevant)
        for rule in relevant:
            sources.extend(ipaddress.ip_network(a, strict=False) for a in rule.src_addresses)
        if relevant and not any_source and (unknown or not _covered_networks(nets, sources)):
            remote = str(fw.get("RemoteAddresses") or "*")
            what = "remote address Any" if remote.strip() in ("", "*") else "remote addresses %s" % remote
            why.append("%s where the plan admits %s" % (what, ", ".join(sorted(set(str(s) for s in sources)))))
        if why:
            out.append(OrderedDict((
                ("name", str(fw.get("Name") or "")), ("grouping", str(fw.get("Grouping") or "")),
                ("group", group.get("name")), ("resource", group.get("resource")),
                ("protocol", PROTOCOL_NAMES.get(protocol, str(protocol))),
                ("local_ports", str(fw.get("LocalPorts") or "*")),
                ("remote_addresses", str(fw.get("RemoteAddresses") or "*")), ("why", "; ".join(why)))))
    return out


def domain_group_of(entry):
    """The English name of the domain-wide group (AD DS, DNS, Kerberos KDC) a wider predefined rule belongs to, or
    None."""
    for name, resource in DOMAIN_GROUPS:
        if (resource and entry.get("grouping", "").lower() == resource.lower()) or entry.get("group") == name:
            return name
    return None


def marker_name(prefix):
    return win_name(MARKER_NAME, prefix)


def marker_fw(group, prefix, disabled):
    """The owned marker rule: disabled, admitting nothing that matters (UDP 9 from 127.0.0.1), its Description the
    predefined rules the module disabled as JSON [[Name, Grouping], ...] ('|' is refused there, JSON has none)."""
    fw = OrderedDict()
    fw["Name"] = marker_name(prefix)
    fw["Description"] = MARKER_TEXT + json.dumps([list(x) for x in disabled], separators=(",", ":"))
    fw["Grouping"] = group
    fw["Direction"] = DIR_IN
    fw["Action"] = ACTION_ALLOW
    fw["Protocol"] = 17
    fw["LocalPorts"] = "9"
    fw["RemotePorts"] = None
    fw["LocalAddresses"] = "*"
    fw["RemoteAddresses"] = "127.0.0.1/32"
    fw["Profiles"] = PROFILES_ALL
    fw["Enabled"] = False
    return fw


def marker_disabled(fw):
    """[[Name, Grouping]] recorded in a marker rule ([] when it cannot be read)."""
    text = str((fw or {}).get("Description") or "")
    if not text.startswith(MARKER_TEXT):
        return []
    try:
        data = json.loads(text[len(MARKER_TEXT):])
    except ValueError:
        return []
    return [[str(x[0]), str(x[1])] for x in data if isinstance(x, list) and len(x) == 2]


def predefined_ops(state, wider, mode, group, prefix):
    """(ops, disabled now, recorded) for ``predefined: disable``: the marker first (recording every rule disabled so
    far), then one ``disable`` op per wider rule; NapError naming the group for the domain-wide groups."""
    if mode != "disable" or not wider:
        return [], [], marker_disabled(state.marker_fw)
    refused = sorted(set(g for g in (domain_group_of(w) for w in wider) if g))
    if refused:
        raise NapError("predefined: disable is refused for the group(s) %s: they serve the whole domain on a domain "
                       "controller (rules: %s); use predefined: report, or scope those rules by Group Policy" % (
                           ", ".join(refused), ", ".join(w["name"] for w in wider if domain_group_of(w))))
    recorded = marker_disabled(state.marker_fw)
    now = []
    for entry in wider:
        pair = [entry["name"], entry["grouping"]]
        now.append(pair)
        if pair not in recorded:
            recorded.append(pair)
    fw = marker_fw(group, prefix, recorded)
    if state.marker_fw is None:
        ops = [{"op": "add", "name": fw["Name"], "set": add_set(fw)}]
    else:
        ops = [{"op": "update", "name": str(state.marker_fw.get("Name")),
                "set": update_set(state.marker_fw, fw)}]
    ops += [{"op": "disable", "name": n, "grouping": g, "set": [["Enabled", False]]} for n, g in now]
    return ops, now, recorded


def restore_ops(state):
    """``state: absent``: re-enable exactly the predefined rules the marker records, then remove the marker."""
    recorded = marker_disabled(state.marker_fw)
    if state.marker_fw is None:
        return [], []
    ops = [{"op": "enable", "name": n, "grouping": g, "set": [["Enabled", True]]} for n, g in recorded]
    name = str(state.marker_fw.get("Name"))
    ops.append({"op": "remove", "name": name, "temp": [temp_name(state.prefix.strip() or "nap", _token(), 0)]})
    return ops, recorded
