# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake Windows host for the win_nap_firewall action: a Python INetFwRules store.

SYNTHETIC. Nothing here was recorded on a real host. It takes the same messages the action sends
to ``ansible.windows.win_powershell`` (``script`` = the READ or APPLY script of the backend,
``parameters`` = the names of the script's ``param()`` block) and answers as the scripts do (one
JSON string in ``result``).  Real dumps from ``hack/windows/dump-firewall.ps1`` load with
:meth:`FakeWindowsHost.from_dump`.

Quirks it reproduces, with where they come from:

* Protocol before ports: "The Protocol property must be set before the LocalPorts or RemotePorts
  properties or an error will be returned." (INetFwRule::put_Protocol,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_protocol).
  Setting ports while the protocol is any (256) or a portless protocol raises E_INVALIDARG here.
* Removal by name: INetFwRules::Remove takes a name and "If a rule specified by the name parameter
  does not exist in the collection, the Remove method has no effect."
  (https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-remove).  Which of
  several same-named rules goes is not documented; the fake removes the first one in store order.
* INetFwRules::Add does not refuse a second rule of the same name (names are not rule ids;
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-add: only a rule with
  the same rule *identifier* is overwritten).
* Item(name) fails with HRESULT 0x80070002 when no rule has that name (INetFwRules::Item,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-item).
* Port and address lists are comma-joined strings, ``*`` means any; addresses come back with a
  dotted mask (``192.0.2.10/255.255.255.255``) and ranges as ``a-b`` (INetFwRule::put_RemoteAddresses
  lists the accepted forms,
  https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_remoteaddresses;
  the masked read-back form is what the COM API returns for IPv4 and is assumed here, IPv6 stays in
  prefix form).
* Profiles: NET_FW_PROFILE2_ALL = 0x7FFFFFFF (NET_FW_PROFILE_TYPE2,
  https://learn.microsoft.com/en-us/windows/win32/api/icftypes/ne-icftypes-net_fw_profile_type2).
* LocalPolicyModifyState: 0 OK, 1 GP_OVERRIDE, 2 INBOUND_BLOCKED (NET_FW_MODIFY_STATE,
  https://learn.microsoft.com/en-us/windows/win32/api/icftypes/ne-icftypes-net_fw_modify_state).
  With GP_OVERRIDE the fake still stores local rules (they just would not take effect).
* win_powershell (ansible.windows, plugins/modules/win_powershell.ps1): in check mode a script whose
  param block lacks ``[CmdletBinding(SupportsShouldProcess)]`` is skipped ("skipped, running in check
  mode", changed true); ``$Ansible.Changed`` defaults to true; ``result`` is ``$Ansible.Result``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import ipaddress
import json
import re

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows

E_INVALIDARG = "The parameter is incorrect. (Exception from HRESULT: 0x80070057 (E_INVALIDARG))"
E_NOTFOUND = "The system cannot find the file specified. (Exception from HRESULT: 0x80070002)"

RULE_DEFAULTS = {
    "Description": "", "Grouping": "", "Direction": 1, "Action": 1, "Protocol": 256,
    "LocalPorts": "*", "RemotePorts": "*", "LocalAddresses": "*", "RemoteAddresses": "*",
    "Profiles": windows.PROFILES_ALL, "Enabled": False, "InterfaceTypes": "All", "EdgeTraversal": False,
    "ApplicationName": "", "ServiceName": "", "IcmpTypesAndCodes": "",
}
PORTLESS_ERROR = "ports on protocol %s"


class ComError(Exception):
    pass


def windows_addresses(text):
    """Addresses as the COM API returns them: IPv4 with a dotted mask, ranges as a-b, ``*`` for any."""
    if text is None or str(text).strip() in ("", "*"):
        return "*"
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if item.lower() in windows.ADDRESS_KEYWORDS:
            out.append(item)
            continue
        if "-" in item and "/" not in item:
            out.append(item)
            continue
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ComError(E_INVALIDARG)
        if net.version == 4:
            out.append("%s/%s" % (net.network_address, net.netmask))
        else:
            out.append(str(net))
    return ",".join(out)


class FakeRule:
    """An INetFwRule: property sets are checked as the COM object checks them."""

    def __init__(self, **props):
        self.__dict__["props"] = dict(RULE_DEFAULTS)
        for key, value in props.items():
            setattr(self, key, value)

    def __getattr__(self, key):
        try:
            return self.__dict__["props"][key]
        except KeyError:
            raise AttributeError(key)

    def __setattr__(self, key, value):
        props = self.__dict__["props"]
        if key in ("LocalPorts", "RemotePorts"):
            if value not in (None, "", "*") and int(props["Protocol"]) not in (6, 17):
                raise ComError(E_INVALIDARG)      # Protocol must be set (to TCP/UDP) before ports
            value = "*" if value in (None, "") else str(value)
        elif key in ("LocalAddresses", "RemoteAddresses"):
            value = windows_addresses(value)
        elif key == "Protocol":
            value = int(value)
            if value not in (6, 17) and (props["LocalPorts"] != "*" or props["RemotePorts"] != "*"):
                raise ComError(E_INVALIDARG)
        props[key] = value

    def record(self):
        return dict(self.__dict__["props"])


class FakeWindowsHost:
    """A rule store plus the policy state of one synthetic Windows host."""

    def __init__(self, os_version="6.1.7601.65536", ps_version="5.1.14409.1005", rules=(),
                 local_policy_modify_state=0, current_profile_types=1, profiles=None):
        self.os_version = os_version
        self.ps_version = ps_version
        self.local_policy_modify_state = local_policy_modify_state
        self.current_profile_types = current_profile_types
        self.profiles = profiles or dict((p, {"enabled": True, "default_inbound_action": 0, "block_all_inbound": False})
                                         for p in windows.PROFILE_BITS)
        self.store = [FakeRule(**r) for r in rules]
        self.calls = []          # (script kind, parameters)
        self.walks = 0           # full passes over the rule collection
        self.lookups = 0         # Item/Remove by name
        self.fail_add = {}       # rule name -> error text (inject a COM error on Add)

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
                   current_profile_types=doc.get("current_profile_types", 1), profiles=doc.get("profiles"))

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

    # -- INetFwRules -------------------------------------------------------
    def item(self, name):
        self.lookups += 1
        for rule in self.store:
            if rule.Name.lower() == name.lower():
                return rule
        raise ComError(E_NOTFOUND)

    def remove(self, name):
        self.lookups += 1
        for rule in self.store:
            if rule.Name.lower() == name.lower():
                self.store.remove(rule)
                return

    # -- the transport -----------------------------------------------------
    def execute_module(self, module_name=None, module_args=None, task_vars=None, check_mode=False, **_kw):
        assert module_name == "ansible.windows.win_powershell", module_name
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
            kind, (changed, doc) = "apply", self._apply(params, whatif=check_mode)
        else:
            raise AssertionError("the fake knows only the backend's READ_PS1 and APPLY_PS1 scripts")
        self.calls.append((kind, params))
        return {"changed": changed, "failed": False, "result": json.dumps(doc), "output": [], "error": [],
                "host_out": "", "host_err": ""}

    def _read(self, params):
        out = {"format": 1, "os_version": self.os_version, "ps_version": self.ps_version, "supported": False,
               "walks": 0, "rule_count": 0, "rules": [], "management_rules": [], "profiles": {}}
        if not windows.version_ok(self.os_version, self.ps_version):
            return False, out
        out["supported"] = True
        out["local_policy_modify_state"] = self.local_policy_modify_state
        out["current_profile_types"] = self.current_profile_types
        out["profiles"] = copy.deepcopy(self.profiles)
        group, prefix = params["Group"], params["NamePrefix"]
        ports = params.get("ManagementPorts") or [5985, 5986]
        owned, management = [], []
        self.walks += 1
        for rule in self.store:
            if rule.Grouping.lower() == group.lower() or rule.Name.lower().startswith(prefix.lower()):
                owned.append(rule.record())
            elif (rule.Enabled and rule.Direction == 1 and rule.Protocol in (6, 256)
                  and any(windows.ports_cover(rule.LocalPorts, p) for p in ports)):
                management.append(rule.record())
        out.update(walks=1, rule_count=len(self.store), rules=owned, management_rules=management)
        return False, out

    def _apply(self, params, whatif=False):
        group = params["Group"]
        ops = json.loads(params["OpsJson"])
        results, applied, failed = [], 0, 0
        for op in ops:
            rec = {"op": op["op"], "name": op["name"], "ok": False, "error": None}
            try:
                if whatif:
                    rec["whatif"] = True
                elif op["op"] == "remove":
                    removed = 0
                    while True:
                        try:
                            existing = self.item(op["name"])
                        except ComError:
                            break
                        if existing.Grouping != group:
                            raise ComError("a rule named '%s' outside the group '%s' exists; it was not removed"
                                           % (op["name"], group))
                        self.remove(op["name"])
                        removed += 1
                    rec.update(ok=True, removed=removed)
                elif op["op"] == "add":
                    try:
                        self.item(op["name"])
                        raise ComError("a rule named '%s' already exists; it was not added twice" % op["name"])
                    except ComError as exc:
                        if "already exists" in str(exc):
                            raise
                    spec = op["rule"]
                    if op["name"] in self.fail_add:
                        raise ComError(self.fail_add[op["name"]])
                    new = FakeRule()
                    # the order of APPLY_PS1: Protocol before the ports
                    for key in ("Name", "Description", "Grouping", "Direction", "Protocol"):
                        setattr(new, key, spec[key])
                    for key in ("LocalPorts", "RemotePorts"):
                        if spec.get(key) and spec[key] != "*":
                            setattr(new, key, spec[key])
                    for key in ("LocalAddresses", "RemoteAddresses"):
                        if spec[key] != "*":
                            setattr(new, key, spec[key])
                    for key in ("Profiles", "Action", "Enabled"):
                        setattr(new, key, spec[key])
                    self.store.append(new)
                    rec["ok"] = True
                else:
                    raise ComError("unknown op '%s'" % op["op"])
            except ComError as exc:
                rec["error"] = str(exc)
            if rec["ok"]:
                applied += 1
            elif not rec.get("whatif"):
                failed += 1
            results.append(rec)
        return applied > 0, {"results": results, "applied": applied, "failed": failed}


def _param_names(script):
    block = script.split("param (", 1)[1].split("\n)\n", 1)[0]
    return re.findall(r"\]\$(\w+)", block)
