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
  a hand edit so that the shared diff sees it), with the ports, addresses and profiles they use;
* the two PowerShell scripts the action runs through ``ansible.windows.win_powershell``, loaded from
  ``powershell/read.ps1`` and ``powershell/apply.ps1`` (:data:`READ_PS1`: one pass over the rule store;
  :data:`APPLY_PS1`: every change in one call, then the owned group read back), with the parameter names
  they take;
* the guards that need no read: version (:func:`check_versions`), Group Policy (:func:`local_policy_problem`),
  values Windows refuses (:func:`check_windows_values`).

Beside it (each imports this module, never the other way round):

* windows_lockout.py: anti-lockout as Windows decides it (:func:`admission_problems`: the one management port,
  the effective profile state with Group Policy, narrowed rules not counted; :func:`apply_lockout_problems`:
  every point of the apply, simulated);
* windows_predefined.py: the predefined rule groups (:func:`wider_predefined`) and the owned marker rule;
* windows_changes.py: the read split into owned rules (:class:`HostState`), the apply itself
  (:func:`plan_changes`): in-place updates and additions first (management flows before the others),
  removals last and under a unique temporary name; :func:`apply_outcome` reads what the apply really did
  (per-op results, the read-back, what is left, the lockout check on the read-back); the predefined ops;
* windows_render.py: the ``state: rendered`` forms.

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

import io
import ipaddress
import json
import os
import re
from collections import OrderedDict

from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue, names, plandoc
from ansible_collections.configmgr.nap.plugins.module_utils.nap.diff import check_unique
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
        out.extend((rule.replace(src_addresses=_family(rule.src_addresses, 4),
                                 dst_addresses=_family(rule.dst_addresses, 4)),
                    rule.replace(name=rule.name + ICMPV6_SUFFIX, src_addresses=_family(rule.src_addresses, 6),
                                 dst_addresses=_family(rule.dst_addresses, 6))))
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
        out.append(rule.replace(name=win_name(rule.name, prefix)))
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
