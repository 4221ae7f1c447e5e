# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue #17 items 2-4: the Windows predefined rules beside the owned ones, on fake hosts whose store holds the
predefined rules of their roles as Windows installs them (fake_windows.ROLE_RULES, synthetic; sources there).

nps01 of examples/inventory.yml plans RADIUS (UDP 1812, 1813) from 192.0.2.30 and 192.0.2.40 only, and WinRM on
5986 from the controller 203.0.113.10; the NPS role enables NPS-NPSSvc-In-UDP-1812/1813/1645/1646 from any address.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import sys

from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows
from ansible_collections.configmgr.nap.plugins.module_utils.nap.backends import windows_predefined

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_windows  # noqa: E402  pylint: disable=wrong-import-position
from test_win_nap_firewall import PLAN, Runner  # noqa: E402  pylint: disable=wrong-import-position

GROUP, PREFIX = windows.DEFAULT_GROUP, windows.DEFAULT_PREFIX
CONTROLLER = ("203.0.113.10", 5986)
NPS_IN = ["NPS-NPSSvc-In-UDP-%d" % p for p in (1812, 1813, 1645, 1646)]
NPS_OUT = ["NPS-NPSSvc-Out-UDP-%d" % p for p in (1812, 1813, 1645, 1646)]


def nps_host(roles=("nps",), **kw):
    kw.setdefault("controller", CONTROLLER)
    return fake_windows.role_host(roles, **kw)


def enabled(fake, name):
    return fake.find(name)[0].Enabled


def radius_admitted_by(fake, port=1812):
    """Names of the enabled inbound rules that admit UDP ``port`` (from anywhere or some sources)."""
    return sorted(r.Name for r in fake.store if r.Enabled and r.Direction == 1 and r.Protocol in (17, 256)
                  and fake_windows._port_matches(r.LocalPorts, port))


def test_the_role_stores_carry_the_catalogue_names_and_resource_strings():
    rules = fake_windows.role_rules(*sorted(fake_windows.ROLE_RULES))
    names = set(r["Name"] for r in rules)
    assert set(NPS_IN) <= names and set(NPS_OUT) <= names
    nps = [r for r in rules if r["Name"] == "NPS-NPSSvc-In-UDP-1812"][0]
    assert (nps["Protocol"], nps["LocalPorts"], nps["RemoteAddresses"], nps["Enabled"]) == (17, "1812", "*", True)
    groupings = set(r["Grouping"] for r in rules)
    from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue
    for grp in (catalogue.GROUP_ADDS, catalogue.GROUP_KDC, catalogue.GROUP_DNS, catalogue.GROUP_FPS,
                catalogue.GROUP_RRAS, catalogue.GROUP_DHCP, catalogue.GROUP_WINRM, catalogue.GROUP_SSTP):
        assert grp[1] in groupings, grp
    # every rule name the catalogue lists for these groups is in a role store
    listed = set(n for groups in catalogue.FLOW_GROUPS.values() if isinstance(groups, tuple)
                 for g in groups for n in g[2])
    missing = listed - names - set(["WINRM-HTTPS-In-TCP-PUBLIC", "RemoteAdmin-RPCSS-In-TCP", "RemoteAdmin-In-TCP",
                                    "RemoteDesktop-UserMode-In-TCP"])
    assert not missing


def test_nps_host_reports_the_predefined_rules_wider_than_the_plan():
    fake = nps_host()
    run = Runner(fake)
    result = run(plan=PLAN)
    assert not result.get("failed"), result.get("msg")
    wider = dict((w["name"], w) for w in result["predefined"]["wider"])
    assert sorted(wider) == sorted(NPS_IN)          # inbound only
    assert wider["NPS-NPSSvc-In-UDP-1812"]["why"] == ("remote address Any where the plan admits 192.0.2.30/32, "
                                                      "192.0.2.40/32")
    assert "UDP 1645 that the plan does not open" in wider["NPS-NPSSvc-In-UDP-1645"]["why"]
    assert wider["NPS-NPSSvc-In-UDP-1812"]["group"] == "Network Policy Server"
    assert result["drift"]["predefined"] == [w["name"] for w in result["predefined"]["wider"]]
    assert any("NPS-NPSSvc-In-UDP-1812 (Network Policy Server)" in w for w in result["warnings"])
    # report changes nothing outside the owned group
    assert all(enabled(fake, n) for n in NPS_IN + NPS_OUT)
    # the no-op: one call, one walk, and the report again
    again = run(plan=PLAN)
    assert again["changed"] is False and again["_calls"] == ["read"] and again["_walks"] == 1
    assert sorted(w["name"] for w in again["predefined"]["wider"]) == sorted(NPS_IN)
    gathered = run(state="gathered", plan=PLAN)
    assert sorted(w["name"] for w in gathered["gathered_predefined"]) == sorted(NPS_IN)
    assert gathered["_calls"] == ["read"] and gathered["_walks"] == 1


def test_smb_from_any_is_wider_than_the_site_server_only():
    fake = nps_host(roles=("nps", "file_and_printer_sharing"))
    fake.add(**fake_windows._pre("FPS-SMB-In-TCP-NoScope", "@FirewallAPI.dll,-28502", 6, "445",
                                 remote="192.0.2.10"))
    result = Runner(fake)(plan=PLAN)
    wider = dict((w["name"], w) for w in result["predefined"]["wider"])
    assert "remote address Any where the plan admits 192.0.2.10/32" in wider["FPS-SMB-In-TCP"]["why"]
    assert "FPS-SMB-In-TCP-NoScope" not in wider          # no wider than the plan: not reported
    assert "FPS-NB_Name-In-UDP" not in wider              # UDP 137: no planned flow uses it, not listed for one


def test_ignore_does_not_read_the_predefined_groups():
    fake = nps_host()
    result = Runner(fake)(plan=PLAN, predefined="ignore")
    assert "predefined" not in result and "predefined" not in result["drift"]
    params = fake.calls[0][1]
    assert "PredefinedGroups" not in params and "PredefinedNames" not in params


def test_disable_leaves_only_the_owned_rules_admitting_radius_and_absent_restores_exactly_them(tmp_path):
    fake = nps_host()
    fake.edit("NPS-NPSSvc-In-UDP-1646", Enabled=False)    # disabled by the admin before: not ours to re-enable
    # WinRM opened by hand for the controller, so that absent keeps it admitted
    fake.add(Name="WinRM HTTPS by hand", Protocol=6, LocalPorts="5986", RemoteAddresses="203.0.113.10", Enabled=True)
    run = Runner(fake)
    result = run(plan=PLAN, predefined="disable", backup=True, backup_options={"dir_path": str(tmp_path)})
    assert not result.get("failed"), result.get("msg")
    assert not fake.unreachable and all(fake.admitted_log)
    disabled = [n for n, _g in result["predefined"]["disabled"]]
    assert sorted(disabled) == sorted(NPS_IN[:3])
    for port in (1812, 1813, 1645, 1646):
        assert all(n.startswith(PREFIX) for n in radius_admitted_by(fake, port)), (port, radius_admitted_by(fake, port))
    assert radius_admitted_by(fake, 1812) == [PREFIX + "DHCP-RADIUS-UDP-IN", PREFIX + "IPSEC-HRA-RADIUS-UDP-IN"]
    assert all(enabled(fake, n) for n in NPS_OUT)          # outbound rules are not in question
    # the disables come last in the one apply call, after the owned rules
    ops = json.loads(fake.calls[1][1]["OpsJson"])
    assert [o["op"] for o in ops][-3:] == ["disable"] * 3 and ops[-4]["name"] == PREFIX + windows_predefined.MARKER_NAME
    # the record: a disabled marker rule in the owned group, and the backup
    marker = fake.find(PREFIX + windows_predefined.MARKER_NAME)[0]
    assert marker.Grouping == GROUP and marker.Enabled is False
    assert windows_predefined.marker_disabled(marker.record()) == [[n, "Network Policy Server"] for n in NPS_IN[:3]]
    with open(result["backup_path"]) as handle:
        backup = json.load(handle)
    assert [n for n, _g in backup["predefined"]["disabled"]] == disabled
    # converged: the next run is one read, nothing wider any more, and the marker is no planned rule to remove
    again = run(plan=PLAN, predefined="disable")
    assert again["changed"] is False and again["_calls"] == ["read"], again.get("commands")
    assert again["predefined"]["wider"] == [] and len(again["predefined"]["recorded"]) == 3
    assert run(state="gathered", plan=PLAN)["gathered"] == run(state="gathered", plan=PLAN)["gathered"]
    assert windows_predefined.MARKER_NAME not in [r["name"] for r in run(state="gathered", plan=PLAN)["gathered"]]
    # absent re-enables exactly what was disabled, and removes the marker
    gone = run(state="absent", management_sources=["203.0.113.10/32"], predefined="ignore")
    assert not gone.get("failed"), gone.get("msg")
    assert sorted(n for n, _g in gone["predefined"]["enabled"]) == sorted(NPS_IN[:3])
    assert [enabled(fake, n) for n in NPS_IN] == [True, True, True, False]
    assert fake.owned() == [] and not fake.find(PREFIX + windows_predefined.MARKER_NAME)
    assert run(state="absent", management_sources=["203.0.113.10/32"])["_calls"] == ["read"]


def test_disable_is_refused_for_the_domain_wide_groups_on_a_domain_controller():
    fake = fake_windows.role_host(["adds", "dns"], controller=CONTROLLER)
    before = copy.deepcopy([r.record() for r in fake.store])
    result = Runner(fake, hostname="dc01")(plan=PLAN, predefined="disable")
    assert result["failed"] and result["_calls"] == ["read"]
    for name in ("Active Directory Domain Services", "DNS Service", "Kerberos Key Distribution Center"):
        assert name in result["msg"]
    assert "nothing was changed" in result["msg"] and "ADDS-LDAP-TCP-In" in result["msg"]
    assert [r.record() for r in fake.store] == before
    # report still works there
    report = Runner(fake, hostname="dc01")(plan=PLAN, check=True)
    assert "ADDS-LDAP-TCP-In" in report["drift"]["predefined"]


def test_disabling_the_predefined_rule_that_admits_the_controller_is_refused():
    """The controller (198.51.100.7) is admitted only by the predefined WinRM rule on 5986 from any address: the plan's
    own WinRM rule admits 203.0.113.10 only, so disabling the predefined one would cut the connection."""
    winrm = fake_windows._pre("WINRM-HTTPS-In-TCP-PUBLIC", "@FirewallAPI.dll,-30267", 6, "5986")
    fake = nps_host(rules=[winrm], controller=("198.51.100.7", 5986))
    result = Runner(fake)(plan=PLAN, predefined="disable", management_sources=["198.51.100.0/24"])
    assert result["failed"] and "disable WINRM-HTTPS-In-TCP-PUBLIC" in result["msg"], result["msg"]
    assert result["_calls"] == ["read"] and not fake.unreachable and enabled(fake, "WINRM-HTTPS-In-TCP-PUBLIC")


def test_icmp_echo_request_on_both_families_is_two_rules_read_back_as_planned():
    rules = [{"name": "PING-IN", "flow_id": "CM-PUSH-ICMP", "direction": "in", "protocol": "icmp",
              "icmp_type": "echo-request", "src_addresses": ["192.0.2.10", "2001:db8::10"]},
             {"name": "MGMT", "flow_id": "MGMT-WINRM", "direction": "in", "protocol": "tcp", "dst_ports": [5986],
              "src_addresses": ["203.0.113.10"]}]
    fake = fake_windows.FakeWindowsHost(controller=CONTROLLER)
    run = Runner(fake)
    result = run(rules=rules, management_sources=["203.0.113.10/32"])
    assert not result.get("failed"), result.get("msg")
    v4, v6 = fake.find(PREFIX + "PING-IN")[0], fake.find(PREFIX + "PING-IN" + windows.ICMPV6_SUFFIX)[0]
    assert (v4.Protocol, v4.IcmpTypesAndCodes, v4.RemoteAddresses) == (1, "8:*", "192.0.2.10/255.255.255.255")
    assert (v6.Protocol, v6.IcmpTypesAndCodes, v6.RemoteAddresses) == (58, "128:*", "2001:db8::10/128")
    again = run(rules=rules, management_sources=["203.0.113.10/32"])
    assert again["changed"] is False and again["_calls"] == ["read"]
    gathered = run(state="gathered")["gathered"]
    assert [r.get("icmp_type") for r in gathered if r["name"].startswith("PING-IN")] == ["echo-request"] * 2
    # another ICMP type set by hand is drift, corrected in place
    fake.edit(PREFIX + "PING-IN", IcmpTypesAndCodes="0:*")
    fixed = run(rules=rules, management_sources=["203.0.113.10/32"])
    assert fixed["drift"]["changed"] == ["PING-IN"] and fake.find(PREFIX + "PING-IN")[0].IcmpTypesAndCodes == "8:*"


def test_the_fake_refuses_icmp_types_on_a_tcp_rule():
    rule = fake_windows.FakeRule()
    rule.Protocol = 6
    try:
        rule.IcmpTypesAndCodes = "8:*"
    except fake_windows.ComError:
        pass
    else:
        raise AssertionError("IcmpTypesAndCodes on a TCP rule was accepted")
    rule.Protocol = 1
    rule.IcmpTypesAndCodes = "8:*;0:*"
    assert rule.IcmpTypesAndCodes == "8:*;0:*"
