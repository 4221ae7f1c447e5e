# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake Windows host for the win_nap_firewall action: a Python INetFwRules store as strict as the API.

SYNTHETIC. Nothing here was recorded on a real host. It takes the same messages the action sends
to ``ansible.windows.win_powershell`` (``script`` = the read or apply script of the backend,
``parameters`` = the names of the script's ``param()`` block) and answers as the scripts do (one
JSON string in ``result``).  Real dumps from ``hack/windows/dump-firewall.ps1`` load with
:meth:`FakeWindowsHost.from_dump`.

Public API (also for tests that interpret rendered scripts step by step)
-----------------------------------------------------------------------
``FakeWindowsHost(os_version, ps_version, rules, local_policy_modify_state, current_profile_types, profiles,
group_policy, controller, duplicate_names)``
    ``rules``: INetFwRule-shaped dicts (loaded as they are, like a dump); ``group_policy``:
    ``{"profiles": {"domain": {"EnableFirewall": 1, "DefaultInboundAction": 1, "DoNotAllowExceptions": 0,
    "AllowLocalPolicyMerge": 1}, ...}, "rules": ["v2.10|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=5986|"]}``
    (the registry values under HKLM\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall); ``controller``:
    ``("198.18.0.10", 5986)``, the source address and management port of the Ansible controller: with it
    set, the host DROPS THE CONNECTION (``unreachable`` becomes true and stays true, every later call
    answers ``unreachable``) the moment no enabled rule admits that source on that port;
    ``duplicate_names``: ``"first"`` (Item and Remove take the first rule of a name, store order) or
    ``"split"`` (Item takes the first, Remove the LAST: the two hit different rules of a shared name).
COM operations, each one counted as a step (``steps``) and each one a point where ``fail_at`` (a step
number, 1-based) injects a COM error:
    ``new_rule()`` -> FakeRule (``New-Object -ComObject HNetCfg.FWRule``; not a step);
    ``set_property(rule, name, value)`` (``$rule.Name = value``: validated as INetFwRule validates, see
    below; on a rule in the store it changes the store);
    ``rules_add(rule)`` (``INetFwRules::Add``); ``item(name)`` (``INetFwRules::Item``: raises ComError when
    no rule has the name; a lookup, not a step); ``remove(name)`` (``INetFwRules::Remove``).
The read and the apply's read-back also return ``predefined_rules``: the inbound rules whose Grouping is one of the
``PredefinedGroups`` or whose Name is one of the ``PredefinedNames`` (case-insensitive), enabled or not; the apply
takes ``disable`` / ``enable`` ops (a set of ``Enabled`` on the rule ``item(name)`` returns, refused when its
Grouping is not the op's).  ``role_rules(*roles)`` / ``role_host(roles, rules, **kw)`` build a store holding the
predefined rules each role installs (``ROLE_RULES``: nps, dhcp_server, rras, iis, adds, dns, winrm,
file_and_printer_sharing; sources at ROLE_RULES).  ``IcmpTypesAndCodes`` is validated as Windows documents it
(:func:`check_icmp`).
By hand (the console; no step, no validation): ``add(**props)``, ``edit(name, **props)``, ``delete(name)``,
``find(name)``; state: ``store`` (FakeRule list), ``owned(group)`` (records), ``admits()`` (is the
controller admitted now), ``unreachable``, ``calls`` ([(kind, params)]), ``walks`` (full passes over the
store), ``lookups`` (Item/Remove by name), ``steps``, ``step_log`` ([(step, label)]), ``fail_add``
({name: error} on Add).

Quirks it reproduces, with where they come from:

* Protocol before ports: "The Protocol property must be set before the LocalPorts or RemotePorts
  properties or an error will be returned." (INetFwRule::put_Protocol,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_protocol).
  Setting ports while the protocol is not TCP/UDP raises E_INVALIDARG here, and so does a protocol
  change to one without ports while ports are set (assumption, docs/windows.md).
* Values: ``|`` in Name or Description, a protocol outside 0-256, a port string that is not ``*``, a
  port 0-65535 or a range low-high, the RPC keywords outside LocalPorts of an inbound TCP rule, and an
  address token outside the documented list raise E_INVALIDARG (put_RemoteAddresses lists ``*`` (alone),
  Defaultgateway, DHCP, DNS, WINS, LocalSubnet, subnets, addresses and ranges,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_remoteaddresses;
  put_LocalAddresses the same without DNS,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_localaddresses; so
  ``any`` and ``DNS`` in LocalAddresses are refused).  The ``|`` rule and the port rules are assumptions
  (docs/windows.md).
* Removal by name: INetFwRules::Remove takes a name and "If a rule specified by the name parameter
  does not exist in the collection, the Remove method has no effect."
  (https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-remove).  Which of
  several same-named rules goes is not documented: ``duplicate_names`` chooses.
* INetFwRules::Add does not refuse a second rule of the same name (names are not rule ids;
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-add).
* Item(name) fails with HRESULT 0x80070002 when no rule has that name (INetFwRules::Item,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-item).
* Addresses come back with a dotted mask (``192.0.2.10/255.255.255.255``) and the network address
  (``10.0.0.2/8`` reads back as ``10.0.0.0/255.0.0.0``; assumption), ranges as ``a-b``; IPv6 in prefix form.
* Profiles: NET_FW_PROFILE2_ALL = 0x7FFFFFFF (NET_FW_PROFILE_TYPE2,
  https://learn.microsoft.com/en-us/windows/win32/api/icftypes/ne-icftypes-net_fw_profile_type2).
* LocalPolicyModifyState: 0 OK, 1 GP_OVERRIDE, 2 INBOUND_BLOCKED (NET_FW_MODIFY_STATE,
  https://learn.microsoft.com/en-us/windows/win32/api/icftypes/ne-icftypes-net_fw_modify_state).
* Who is admitted (``admits``): per current profile, Group Policy values win over local ones; local rules
  count only while AllowLocalPolicyMerge is not 0; a block rule matching the source and port wins; an allow
  rule counts only when it is not narrowed (Interfaces, InterfaceTypes, LocalAddresses, RemotePorts,
  EdgeTraversal, SecureFlags, authorised lists, a program or service other than System): the fake
  assumes the controller's connection matches none of those narrowings (docs/windows.md).
* win_powershell (ansible.windows, plugins/modules/win_powershell.ps1): in check mode a script whose
  param block lacks ``[CmdletBinding(SupportsShouldProcess)]`` is skipped ("skipped, running in check
  mode", changed true); ``$Ansible.Changed`` defaults to true; ``result`` is ``$Ansible.Result``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import ipaddress
import json
import os
import re

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_lockout

if windows.READ_PS1 is None:
    # windows.py was imported from a module payload (tests/fake_windows' win_powershell), which carries no .ps1:
    # take the scripts from the checkout this file lives in.
    _DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), *([os.pardir] * 4 + [
        "plugins", "module_utils", "nap", "backends", "powershell"]))
    windows.READ_PS1 = windows.load_script("read", _DIR)
    windows.APPLY_PS1 = windows.load_script("apply", _DIR)

E_INVALIDARG = "The parameter is incorrect. (Exception from HRESULT: 0x80070057 (E_INVALIDARG))"
E_NOTFOUND = "The system cannot find the file specified. (Exception from HRESULT: 0x80070002)"
UNREACHABLE = "Failed to connect to the host via winrm: connection timed out (the fake host dropped the connection)"

RULE_DEFAULTS = {
    "Description": "", "Grouping": "", "Direction": 1, "Action": 1, "Protocol": 256,
    "LocalPorts": "*", "RemotePorts": "*", "LocalAddresses": "*", "RemoteAddresses": "*",
    "Profiles": windows.PROFILES_ALL, "Enabled": False, "InterfaceTypes": "All", "Interfaces": "",
    "EdgeTraversal": False, "ApplicationName": "", "ServiceName": "", "IcmpTypesAndCodes": "",
    "SecureFlags": None, "RemoteMachineAuthorizedList": "", "RemoteUserAuthorizedList": "",
    "LocalUserAuthorizedList": "",
}
REMOTE_KEYWORDS = ("defaultgateway", "dhcp", "dns", "wins", "localsubnet")
LOCAL_KEYWORDS = ("defaultgateway", "dhcp", "wins", "localsubnet")
RPC_KEYWORDS = ("rpc", "rpc-epmap")


class ComError(Exception):
    pass


class Dropped(Exception):
    """The connection to the host is gone."""


def windows_addresses(text, keywords=REMOTE_KEYWORDS):
    """Addresses as the COM API takes and returns them; ComError(E_INVALIDARG) for what it refuses."""
    if text is None or str(text).strip() == "":
        return "*"
    items = [i.strip() for i in str(text).split(",")]
    if "*" in items:
        if len(items) != 1:
            raise ComError(E_INVALIDARG)     # "*" must be the only token
        return "*"
    out = []
    for item in items:
        if item.lower() in keywords:
            out.append(item)
            continue
        try:
            if "-" in item and "/" not in item:
                low, high = [ipaddress.ip_address(p) for p in item.split("-", 1)]
                if low.version != high.version or low > high:
                    raise ValueError(item)
                out.append(item)
                continue
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ComError(E_INVALIDARG)
        if net.version == 4:
            out.append("%s/%s" % (net.network_address, net.netmask))
        else:
            out.append(str(net))
    return ",".join(out)


def check_ports(value, protocol, direction, field):
    """A LocalPorts/RemotePorts string as Windows takes it, else ComError(E_INVALIDARG)."""
    if value in (None, "", "*"):
        return "*"
    if int(protocol) not in (6, 17):
        raise ComError(E_INVALIDARG)
    for item in str(value).split(","):
        low = item.strip().lower()
        if low in RPC_KEYWORDS:
            if int(protocol) != 6 or int(direction) != 1 or field != "LocalPorts":
                raise ComError(E_INVALIDARG)
            continue
        match = re.match(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$", low)
        if not match:
            raise ComError(E_INVALIDARG)
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if last > 65535 or first > last:
            raise ComError(E_INVALIDARG)
    return str(value)


def check_icmp(value, protocol):
    """IcmpTypesAndCodes as Windows takes it: "type:code" items separated by ';' ("*" for every code), "*" for all,
    only on an ICMPv4 (1) or ICMPv6 (58) rule (INetFwRule::IcmpTypesAndCodes, "a list of ICMP types and codes
    separated by semicolon. "*" indicates all ICMP types and codes.",
    https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-get_icmptypesandcodes); else
    ComError(E_INVALIDARG) (the protocol condition is an assumption, docs/windows.md)."""
    if value is None or str(value).strip() == "":
        return ""
    text = str(value).strip()
    if text == "*":
        return text
    if int(protocol) not in (1, 58):
        raise ComError(E_INVALIDARG)
    for item in text.split(";"):
        match = re.match(r"^([0-9]{1,3}):(\*|[0-9]{1,3})$", item.strip())
        if not match or int(match.group(1)) > 255 or (match.group(2) != "*" and int(match.group(2)) > 255):
            raise ComError(E_INVALIDARG)
    return text


class FakeRule:
    """An INetFwRule: property sets are checked as the COM object checks them."""

    def __init__(self, **props):
        self.__dict__["props"] = dict(RULE_DEFAULTS)
        self.__dict__["props"].update(props)      # as loaded (a dump, or a rule made by hand)

    def __getattr__(self, key):
        try:
            return self.__dict__["props"][key]
        except KeyError:
            raise AttributeError(key)

    def __setattr__(self, key, value):
        props = self.__dict__["props"]
        if key in ("Name", "Description"):
            if value is not None and "|" in str(value):
                raise ComError(E_INVALIDARG)
            value = "" if value is None else str(value)
        elif key in ("LocalPorts", "RemotePorts"):
            value = check_ports(value, props["Protocol"], props["Direction"], key)
        elif key == "LocalAddresses":
            value = windows_addresses(value, LOCAL_KEYWORDS)
        elif key == "RemoteAddresses":
            value = windows_addresses(value, REMOTE_KEYWORDS)
        elif key == "Protocol":
            value = int(value)
            if not 0 <= value <= 256:
                raise ComError(E_INVALIDARG)
            if value not in (6, 17) and (props["LocalPorts"] != "*" or props["RemotePorts"] != "*"):
                raise ComError(E_INVALIDARG)
            for field in ("LocalPorts", "RemotePorts"):     # keywords and ranges must stay valid
                check_ports(props[field], value, props["Direction"], field)
        elif key == "Direction":
            value = int(value)
            if value not in (1, 2):
                raise ComError(E_INVALIDARG)
            check_ports(props["LocalPorts"], props["Protocol"], value, "LocalPorts")
        elif key == "IcmpTypesAndCodes":
            value = check_icmp(value, props["Protocol"])
        elif key in ("Action", "Profiles"):
            value = int(value)
        elif key in ("Enabled", "EdgeTraversal"):
            value = bool(value)
        elif key == "SecureFlags":
            if props.get("SecureFlags") is None:
                raise ComError("Exception setting \"SecureFlags\": no INetFwRule3 on this OS")
            value = int(value)
        elif key == "Interfaces":
            value = "" if not value else value
        elif key in props:
            value = "" if value is None else value
        props[key] = value

    def record(self):
        return dict(self.__dict__["props"])


def _networks(text):
    """ip_networks of an address string ('*' = all); keywords give none (the controller is not on them)."""
    if text is None or str(text).strip() in ("", "*"):
        return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    out = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            if "-" in item and "/" not in item:
                low, high = [ipaddress.ip_address(p) for p in item.split("-", 1)]
                out.extend(ipaddress.summarize_address_range(low, high))
            else:
                out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return out


def _port_matches(text, port):
    if text is None or str(text).strip() in ("", "*"):
        return True
    for item in str(text).split(","):
        item = item.strip()
        if re.match(r"^\d+$", item) and int(item) == port:
            return True
        match = re.match(r"^(\d+)-(\d+)$", item)
        if match and int(match.group(1)) <= port <= int(match.group(2)):
            return True
    return False


def _is_narrowed(rec):
    for field in ("Interfaces", "RemoteMachineAuthorizedList", "RemoteUserAuthorizedList", "LocalUserAuthorizedList"):
        if rec.get(field):
            return True
    if str(rec.get("InterfaceTypes") or "All").lower() != "all":
        return True
    if str(rec.get("LocalAddresses") or "*") != "*" or str(rec.get("RemotePorts") or "*") != "*":
        return True
    if rec.get("EdgeTraversal") or rec.get("SecureFlags"):
        return True
    if str(rec.get("ApplicationName") or "").lower() not in ("", "system"):
        return True
    return str(rec.get("ServiceName") or "") not in ("", "*")


class FakeWindowsHost:
    """A rule store plus the policy state of one synthetic Windows host."""

    def __init__(self, os_version="6.1.7601.65536", ps_version="5.1.14409.1005", rules=(),
                 local_policy_modify_state=0, current_profile_types=1, profiles=None, group_policy=None,
                 controller=None, duplicate_names="first"):
        self.os_version = os_version
        self.ps_version = ps_version
        self.local_policy_modify_state = local_policy_modify_state
        self.current_profile_types = current_profile_types
        self.profiles = profiles or dict((p, {"enabled": True, "default_inbound_action": 0, "block_all_inbound": False})
                                         for p in windows.PROFILE_BITS)
        self.group_policy = group_policy or {"profiles": dict((p, {}) for p in windows.PROFILE_BITS), "rules": []}
        self.store = [FakeRule(**r) for r in rules]
        self.controller = controller
        self.duplicate_names = duplicate_names
        self.unreachable = False
        self.calls = []          # (script kind, parameters)
        self.walks = 0           # full passes over the rule collection
        self.lookups = 0         # Item/Remove by name
        self.steps = 0           # COM operations that change something (property sets, Add, Remove)
        self.step_log = []       # (step, label)
        self.fail_at = None      # inject a COM error at this step (1-based)
        self.fail_add = {}       # rule name -> error text (inject a COM error on Add)
        self.admitted_log = []   # admits() after every step that changed the store

    # -- fixtures ----------------------------------------------------------
    @classmethod
    def from_dump(cls, path_or_doc):
        """Load a dump of hack/windows/dump-firewall.ps1 (or a synthetic fixture of that shape)."""
        if isinstance(path_or_doc, dict):
            doc = path_or_doc
        else:
            with open(path_or_doc) as handle:
                doc = json.load(handle)
        return cls(os_version=doc.get("os_version", "10.0.17763.0"), ps_version=doc.get("ps_version", "5.1"),
                   rules=doc.get("rules") or [], local_policy_modify_state=doc.get("local_policy_modify_state", 0),
                   current_profile_types=doc.get("current_profile_types", 1), profiles=doc.get("profiles"),
                   group_policy=doc.get("group_policy"))

    # -- by hand (drift) ---------------------------------------------------
    def find(self, name):
        return [r for r in self.store if r.Name.lower() == name.lower()]

    def edit(self, name, **props):
        rule = self.find(name)[0]
        for key, value in props.items():
            setattr(rule, key, value)

    def delete(self, name):
        rule = self.find(name)[0]
        self.store.remove(rule)

    def add(self, **props):
        self.store.append(FakeRule(**props))

    def owned(self, group=windows.DEFAULT_GROUP):
        return [r.record() for r in self.store if r.Grouping == group]

    # -- who is admitted ---------------------------------------------------
    def admits(self):
        """Whether an enabled rule admits the controller's source on the management port now."""
        if not self.controller:
            return True
        source, port = ipaddress.ip_address(self.controller[0]), int(self.controller[1])
        gp = self.group_policy or {}
        gp_rules = [windows_lockout.parse_gp_rule(t) for t in gp.get("rules") or []]
        for pname, bit in windows.PROFILE_BITS.items():
            if not int(self.current_profile_types) & bit:
                continue
            local = self.profiles.get(pname) or {}
            pol = (gp.get("profiles") or {}).get(pname) or {}
            enabled = bool(pol["EnableFirewall"]) if pol.get("EnableFirewall") is not None else local.get("enabled", True)
            if not enabled:
                continue
            block_all = pol.get("DoNotAllowExceptions") if pol.get("DoNotAllowExceptions") is not None \
                else local.get("block_all_inbound")
            if block_all:
                return False
            if pol.get("DefaultInboundAction") is not None:
                default_allow = int(pol["DefaultInboundAction"]) == 0
            else:
                default_allow = local.get("default_inbound_action") == 1
            rules = list(gp_rules)
            if pol.get("AllowLocalPolicyMerge") is None or int(pol["AllowLocalPolicyMerge"]) != 0:
                rules += [r.record() for r in self.store]
            allowed = False
            for rec in rules:
                if not rec.get("Enabled") or int(rec.get("Direction") or 0) != 1:
                    continue
                if int(rec.get("Protocol") if rec.get("Protocol") is not None else -1) not in (6, 256):
                    continue
                if not int(rec.get("Profiles") or 0) & bit or not _port_matches(rec.get("LocalPorts"), port):
                    continue
                if not any(source in net for net in _networks(rec.get("RemoteAddresses")) if net.version == source.version):
                    continue
                if int(rec.get("Action") or 0) != 1:
                    return False
                if not _is_narrowed(rec):
                    allowed = True
            if not allowed and not default_allow:
                return False
        return True

    def _step(self, label):
        self.steps += 1
        self.step_log.append((self.steps, label))
        if self.fail_at is not None and self.steps == self.fail_at:
            raise ComError("injected failure at step %d (%s)" % (self.steps, label))

    def _changed(self):
        ok = self.admits()
        self.admitted_log.append(ok)
        if not ok:
            self.unreachable = True
            raise Dropped(UNREACHABLE)

    # -- INetFwRule / INetFwRules ------------------------------------------
    def new_rule(self):
        return FakeRule()

    def set_property(self, rule, name, value):
        self._step("set %s on %s" % (name, rule.props.get("Name")))
        setattr(rule, name, value)
        if any(r is rule for r in self.store):
            self._changed()

    def rules_add(self, rule):
        self._step("Add %s" % rule.Name)
        if rule.Name in self.fail_add:
            raise ComError(self.fail_add[rule.Name])
        self.store.append(rule)
        self._changed()

    def item(self, name):
        self.lookups += 1
        for rule in self.store:
            if rule.Name.lower() == name.lower():
                return rule
        raise ComError(E_NOTFOUND)

    def remove(self, name):
        self.lookups += 1
        self._step("Remove %s" % name)
        matches = [r for r in self.store if r.Name.lower() == name.lower()]
        if not matches:
            return
        victim = matches[-1] if self.duplicate_names == "split" else matches[0]
        self.store.remove(victim)
        self._changed()

    # -- the transport -----------------------------------------------------
    def execute_module(self, module_name=None, module_args=None, task_vars=None, check_mode=False, **_kw):
        assert module_name == "ansible.windows.win_powershell", module_name
        if self.unreachable:
            return {"unreachable": True, "msg": UNREACHABLE}
        script = module_args["script"]
        params = dict(module_args.get("parameters") or {})
        declared = _param_names(script)
        unknown = set(params) - set(declared)
        assert not unknown, "parameters %s are not in the script's param block %s" % (unknown, declared)
        if check_mode and "[CmdletBinding(SupportsShouldProcess)]" not in script.split("param", 1)[0]:
            return {"changed": True, "msg": "skipped, running in check mode", "result": {}, "output": []}
        if script == windows.READ_PS1:
            kind, (changed, doc) = "read", self._read(params)
        elif script == windows.APPLY_PS1:
            kind = "apply"
            try:
                changed, doc = self._apply(params, whatif=check_mode)
            except Dropped:
                self.calls.append((kind, params))
                return {"unreachable": True, "msg": UNREACHABLE}
        else:
            raise AssertionError("the fake knows only the backend's read and apply scripts")
        self.calls.append((kind, params))
        return {"changed": changed, "failed": False, "result": json.dumps(doc), "output": [], "error": [],
                "host_out": "", "host_err": ""}

    def _state(self, params):
        """Get-FirewallState of common.ps1: one pass over the store."""
        group, prefix = params["Group"], params["NamePrefix"]
        ports = params.get("ManagementPorts") or [5986]
        groups = [g.lower() for g in params.get("PredefinedGroups") or []]
        names = [n.lower() for n in params.get("PredefinedNames") or []]
        owned, management, predefined = [], [], []
        self.walks += 1
        for rule in self.store:
            if rule.Grouping.lower() == group.lower() or rule.Name.lower().startswith(prefix.lower()):
                owned.append(rule.record())
                continue
            if (rule.Enabled and rule.Direction == 1 and rule.Protocol in (6, 256)
                    and any(_port_matches(rule.LocalPorts, int(p)) for p in ports)):
                management.append(rule.record())
            if rule.Direction == 1 and (rule.Grouping.lower() in groups or rule.Name.lower() in names):
                predefined.append(rule.record())
        return {"walks": 1, "local_policy_modify_state": self.local_policy_modify_state,
                "current_profile_types": self.current_profile_types, "profiles": copy.deepcopy(self.profiles),
                "group_policy": copy.deepcopy(self.group_policy), "rule_count": len(self.store), "rules": owned,
                "management_rules": management, "predefined_rules": predefined}

    def _read(self, params):
        out = {"format": 2, "os_version": self.os_version, "ps_version": self.ps_version, "supported": False,
               "walks": 0, "rule_count": 0, "rules": [], "management_rules": [], "predefined_rules": [], "profiles": {}}
        if not windows.version_ok(self.os_version, self.ps_version):
            return False, out
        out["supported"] = True
        out.update(self._state(params))
        return False, out

    def _owned_rule(self, name, group, adopt):
        try:
            found = self.item(name)
        except ComError:
            raise ComError("no rule named '%s' was found" % name)
        if found.Grouping != group and not (adopt and found.Grouping == ""):
            raise ComError("the rule named '%s' that Windows returned is in the group '%s', not '%s'; it was not "
                           "touched" % (name, found.Grouping, group))
        return found

    def _apply(self, params, whatif=False):
        """apply.ps1, op by op: the first failing op stops the run; then the read-back."""
        group = params["Group"]
        ops = json.loads(params["OpsJson"])
        results, applied, failed, stopped = [], 0, 0, False
        for op in ops:
            rec = {"op": op["op"], "name": op["name"], "ok": False, "error": None, "set": [], "removed": 0}
            if stopped:
                rec["skipped"] = True
                results.append(rec)
                continue
            try:
                if whatif:
                    rec["whatif"] = True
                elif op["op"] == "add":
                    exists = True
                    try:
                        self.item(op["name"])
                    except ComError:
                        exists = False
                    if exists:
                        raise ComError("a rule named '%s' already exists; it was not added twice" % op["name"])
                    new = self.new_rule()
                    for key, value in op["set"]:
                        self.set_property(new, key, value)
                        rec["set"].append(key)
                    self.rules_add(new)
                    rec["ok"] = True
                elif op["op"] == "update":
                    target = None
                    if op.get("temp"):
                        for temp in op["temp"]:
                            copy_ = self._owned_rule(op["name"], group, op.get("adopt"))
                            self.set_property(copy_, "Name", temp)
                            target = target or copy_
                    else:
                        target = self._owned_rule(op["name"], group, op.get("adopt"))
                    for key, value in op["set"]:
                        self.set_property(target, key, value)
                        rec["set"].append(key)
                    rec["ok"] = True
                elif op["op"] == "remove":
                    for temp in op["temp"]:
                        victim = self._owned_rule(op["name"], group, False)
                        if temp != op["name"]:
                            self.set_property(victim, "Name", temp)
                        self.remove(temp)
                        rec["removed"] += 1
                    rec["ok"] = True
                elif op["op"] in ("disable", "enable"):
                    try:
                        target = self.item(op["name"])
                    except ComError:
                        target = None
                    if target is not None and target.Grouping != op["grouping"]:
                        raise ComError("the rule named '%s' that Windows returned is in the group '%s', not '%s'; it "
                                       "was not touched" % (op["name"], target.Grouping, op["grouping"]))
                    if target is None:
                        if op["op"] == "disable":
                            raise ComError("no rule named '%s' was found" % op["name"])
                        rec["missing"] = True
                    else:
                        self.set_property(target, "Enabled", op["op"] == "enable")
                        rec["set"].append("Enabled")
                    rec["ok"] = True
                else:
                    raise ComError("unknown op '%s'" % op["op"])
            except ComError as exc:
                rec["error"] = str(exc)
                stopped = True
            if rec["ok"]:
                applied += 1
            elif not rec.get("whatif"):
                failed += 1
            results.append(rec)
        return applied > 0, {"results": results, "applied": applied, "failed": failed,
                             "readback": self._state(params)}


def _param_names(script):
    block = script.split("param (", 1)[1].split("\n)\n", 1)[0]
    return re.findall(r"\]\$(\w+)", block)


# ---------------------------------------------------------------------------
# The predefined rules each role's installation puts in the store (issue #17 item 4)
# ---------------------------------------------------------------------------
# SYNTHETIC, from the sources the catalogue cites (plugins/module_utils/nap/catalogue.py, the comment above GROUP_ADDS):
# the Grouping resource strings and rule Names of catalogue.FLOW_GROUPS, the ports of each rule's service (NPS Ports,
# https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2008-r2-and-2008/dd197605(v=ws.10):
# "NPS listens for RADIUS traffic on ports 1812, 1813, 1645, and 1646"; Configure Firewalls for RADIUS Traffic / NPS and
# Firewalls, https://learn.microsoft.com/en-us/windows-server/networking/technologies/nps/nps-firewalls-configure: the
# NPS exceptions are configured automatically during installation), remote address Any and every profile, enabled as the
# role installs them.  What no source gave is an assumption (docs/windows.md): the Grouping of the NPS and IIS rules
# (their English group name: no resource string was found), the Names of the DHCP Server and SSTP rules, the
# ServiceName of the NPS rules (ias), and that DHCP, RRAS and IIS enable their rules on installation as NPS does.
def _pre(name, grouping, protocol, local_ports="*", direction=1, enabled=True, remote="*", profiles=None, icmp="",
         service=""):
    return {"Name": name, "Grouping": grouping, "Direction": direction, "Action": 1, "Protocol": protocol,
            "LocalPorts": local_ports, "RemotePorts": "*", "LocalAddresses": "*", "RemoteAddresses": remote,
            "Profiles": profiles or windows.PROFILES_ALL, "Enabled": enabled, "IcmpTypesAndCodes": icmp,
            "ServiceName": service, "Description": ""}


_ADDS, _KDC, _DNS = "@FirewallAPI.dll,-37601", "@kdcsvc.dll,-1008", "@firewallapi.dll,-53012"
_FPS, _RRAS, _DHCP = "@FirewallAPI.dll,-28502", "@FirewallAPI.dll,-33752", "@FirewallAPI.dll,-50209"
_WINRM, _SSTP = "@FirewallAPI.dll,-30267", "@sstpsvc.dll,-35001"
ROLE_RULES = {
    "nps": [_pre("NPS-NPSSvc-In-UDP-%d" % p, "Network Policy Server", 17, str(p), service="ias")
            for p in (1812, 1813, 1645, 1646)]
    + [_pre("NPS-NPSSvc-Out-UDP-%d" % p, "Network Policy Server", 17, str(p), direction=2, service="ias")
       for p in (1812, 1813, 1645, 1646)],
    "dhcp_server": [_pre("Microsoft-Windows-DHCP-ServerV4-UDP-In", _DHCP, 17, "67"),
                    _pre("Microsoft-Windows-DHCP-ServerV6-UDP-In", _DHCP, 17, "547"),
                    _pre("Microsoft-Windows-DHCP-Failover-TCP-In", _DHCP, 6, "647"),
                    _pre("Microsoft-Windows-DHCP-RPCSS-TCP-In", _DHCP, 6, "RPC-EPMap"),
                    _pre("Microsoft-Windows-DHCP-RPC-TCP-In", _DHCP, 6, "RPC")],
    "rras": [_pre("RRAS-PPTP-In-TCP", _RRAS, 6, "1723"), _pre("RRAS-GRE-In", _RRAS, 47),
             _pre("RRAS-L2TP-In-UDP", _RRAS, 17, "1701"), _pre("SSTP-IN-TCP", _SSTP, 6, "443")],
    "iis": [_pre("IIS-WebServerRole-HTTP-In-TCP", "World Wide Web Services (HTTP)", 6, "80"),
            _pre("IIS-WebServerRole-HTTPS-In-TCP", "Secure World Wide Web Services (HTTPS)", 6, "443")],
    "adds": [_pre("ADDS-LDAP-TCP-In", _ADDS, 6, "389"), _pre("ADDS-LDAP-UDP-In", _ADDS, 17, "389"),
             _pre("ADDS-LDAPSEC-TCP-In", _ADDS, 6, "636"), _pre("ADDS-LDAPGC-TCP-In", _ADDS, 6, "3268"),
             _pre("ADDS-LDAPGCSEC-TCP-In", _ADDS, 6, "3269"), _pre("ADDS-NP-TCP-In", _ADDS, 6, "445"),
             _pre("ADDS-RPCEPMAP-TCP-In", _ADDS, 6, "RPC-EPMap"), _pre("ADDS-RPC-TCP-In", _ADDS, 6, "RPC"),
             _pre("W32Time-NTP-UDP-In", _ADDS, 17, "123"),
             _pre("ADDS-Kerberos-TCP-In", _KDC, 6, "88"), _pre("ADDS-Kerberos-UDP-In", _KDC, 17, "88"),
             _pre("ADDS-Kerberos-Password-TCP-In", _KDC, 6, "464"),
             _pre("ADDS-Kerberos-Password-UDP-In", _KDC, 17, "464")],
    "dns": [_pre("DNSSrv-DNS-UDP-In", _DNS, 17, "53"), _pre("DNSSrv-DNS-TCP-In", _DNS, 6, "53")],
    # Windows Remote Management: the domain/private rule from any address, the public one from the local subnet
    "winrm": [_pre("WINRM-HTTP-In-TCP", _WINRM, 6, "5985", profiles=3),
              _pre("WINRM-HTTP-In-TCP-PUBLIC", _WINRM, 6, "5985", profiles=4, remote="LocalSubnet")],
    "file_and_printer_sharing": [_pre("FPS-SMB-In-TCP", _FPS, 6, "445"), _pre("FPS-NB_Name-In-UDP", _FPS, 17, "137"),
                                 _pre("FPS-ICMP4-ERQ-In", _FPS, 1, icmp="8:*"),
                                 _pre("FPS-ICMP6-ERQ-In", _FPS, 58, icmp="128:*")],
}


def role_rules(*roles):
    """The predefined rules of these roles (ROLE_RULES keys) as a fresh list of INetFwRule-shaped dicts."""
    out = []
    for role in roles:
        out.extend(copy.deepcopy(ROLE_RULES[role]))
    return out


def role_host(roles, rules=(), **kwargs):
    """A FakeWindowsHost whose store holds the predefined rules of ``roles`` as installed, then ``rules``."""
    return FakeWindowsHost(rules=role_rules(*roles) + list(rules), **kwargs)
