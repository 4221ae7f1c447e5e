# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter nap_expected_listeners and module_utils/nap/listeners.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.configmgr.nap.plugins.filter.nap_expected_listeners import FilterModule, nap_expected_listeners
from ansible_collections.configmgr.nap.plugins.module_utils.nap import catalogue, listeners

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "module_utils", "nap"))
from test_report import example_plan  # noqa: E402  pylint: disable=wrong-import-position


def ports(entries):
    return [(e["protocol"], e["port"]) for e in entries]


def test_registered_under_its_name():
    assert FilterModule().filters() == {"nap_expected_listeners": nap_expected_listeners}


def test_every_role_of_the_table_has_a_rule():
    assert set(catalogue.LISTENERS) <= set(listeners.ROLE_LISTENERS)


@pytest.mark.parametrize("roles,settings,expected", [
    (["domain_controller"], {}, [("tcp", 53), ("tcp", 88), ("tcp", 135), ("tcp", 389), ("tcp", 445), ("udp", 53)]),
    (["domain_controller"], {"nap_ad_ldap_mode": "ldaps", "nap_dc_serves_dns": False},
     [("tcp", 88), ("tcp", 135), ("tcp", 389), ("tcp", 445), ("tcp", 636)]),
    (["global_catalog"], {}, [("tcp", 3268)]),
    (["global_catalog"], {"nap_gc_mode": "gc_ssl"}, [("tcp", 3268), ("tcp", 3269)]),
    (["site_server"], {}, [("tcp", 135), ("tcp", 445)]),
    # NPS listens on 1812, 1813, 1645 and 1646 whether or not the legacy pair is chosen (NPS Ports)
    (["shv_point"], {}, [("tcp", 135), ("tcp", 445), ("udp", 1645), ("udp", 1646), ("udp", 1812), ("udp", 1813)]),
    (["shv_point"], {"nap_radius_legacy_ports": "yes"},
     [("tcp", 135), ("tcp", 445), ("udp", 1645), ("udp", 1646), ("udp", 1812), ("udp", 1813)]),
    (["radius_proxy"], {}, [("udp", 1645), ("udp", 1646), ("udp", 1812), ("udp", 1813)]),
    (["hra"], {}, [("tcp", 443)]),
    (["hra"], {"nap_hra_transport": "http"}, [("tcp", 80)]),
    (["dhcp_server"], {}, [("udp", 67)]),
    (["vpn_server"], {}, [("tcp", 443)]),
    (["vpn_server"], {"nap_vpn_protocols": ["pptp", "l2tp"]}, [("tcp", 1723), ("udp", 500), ("udp", 4500)]),
    (["vpn_server"], {"nap_vpn_protocols": "pptp,sstp"}, [("tcp", 443), ("tcp", 1723)]),
    (["vpn_server"], {"nap_vpn_protocols": ["ikev2"]}, [("udp", 500), ("udp", 4500)]),
    (["ts_gateway"], {}, [("tcp", 443)]),
    (["certification_authority"], {}, [("tcp", 135)]),
    (["dns_server"], {}, [("tcp", 53), ("udp", 53)]),
    (["client", "rdp_host", "perimeter", "remediation_server"], {}, []),
])
def test_listener_table(roles, settings, expected):
    assert ports(nap_expected_listeners(roles, **settings)) == expected


def test_shared_ports_are_listed_once_with_every_role():
    entries = nap_expected_listeners(["shv_point", "site_server", "nap_domain_controllers"])
    smb = [e for e in entries if e["port"] == 445]
    assert smb == [{"protocol": "tcp", "port": 445, "role": "site_server",
                    "roles": ["site_server", "shv_point", "domain_controller"], "service": "smb"}]
    assert len(entries) == len(set(ports(entries)))


def test_plan_host_entry_and_whole_plan():
    plan = example_plan()              # nap_ad_ldap_mode ldaps, nap_gc_mode gc_ssl in the example inventory
    dc01 = nap_expected_listeners(plan, host="dc01")
    assert ("tcp", 636) in ports(dc01) and ("tcp", 3269) in ports(dc01)
    assert nap_expected_listeners({"plan": plan}, host="dc01") == dc01
    # a host entry alone knows no plan settings: the defaults apply, unless given
    entry = plan["hosts"]["dc01"]
    assert ("tcp", 636) not in ports(nap_expected_listeners(entry))
    assert ("tcp", 636) in ports(nap_expected_listeners(entry, settings=plan["settings"]))
    # later wins: keyword over settings over the plan
    assert ("tcp", 636) not in ports(nap_expected_listeners(plan, host="dc01", nap_ad_ldap_mode="ldap"))
    assert ("tcp", 636) not in ports(nap_expected_listeners(plan, host="dc01", settings={"nap_ad_ldap_mode": "ldap"}))
    hra = nap_expected_listeners(plan, host="hra01")
    assert ports(hra) == [("tcp", 443)] and hra[0]["role"] == "hra"


def test_host_variables_with_roles_count_as_settings():
    entry = {"roles": ["domain_controller"], "nap_dc_serves_dns": "false", "ansible_host": "198.18.1.10"}
    assert ("udp", 53) not in ports(nap_expected_listeners(entry))


@pytest.mark.parametrize("data,kwargs,match", [
    (["domain_controller"], {"nap_ad_ldap_mode": "starttls"}, "nap_ad_ldap_mode is 'starttls'"),
    (["domain_controller"], {"nap_dc_serves_dns": "maybe"}, "nap_dc_serves_dns is 'maybe'"),
    (["domain_controler"], {}, "unknown role 'domain_controler'"),
    (["hra"], {"nap_colour": "red"}, "unknown setting"),
    ({"hosts": {}}, {}, "name the host"),
    ({"hosts": {"a": {"roles": []}}}, {"host": "b"}, "host 'b' is not in the plan"),
    (["hra"], {"host": "hra01"}, "needs a plan"),
    ({"platform": "windows"}, {}, "needs 'roles'"),
    (42, {}, "expected a host entry"),
    (["hra"], {"settings": ["nap_hra_transport"]}, "settings must be a mapping"),
])
def test_errors_are_clear(data, kwargs, match):
    with pytest.raises(AnsibleFilterError, match="nap_expected_listeners: .*" + match):
        nap_expected_listeners(data, **kwargs)
