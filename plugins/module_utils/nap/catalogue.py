# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every flow NAP in Configuration Manager 2007 needs, as data.

Nothing here knows a platform.  Sources cited per flow:

* ``seed``: "Ports used by Network Access Protection in Configuration Manager 2007" (March 2008),
  its table rows and its paragraph on enforcement clients;
* ``NAP``: the Windows Server 2008 NAP / NPS documentation;
* ``AD``: the Active Directory port requirements around every LDAP or GC bind;
* ``CM07``: "Ports used by Configuration Manager 2007".

The flows beyond the seed and the per-version facts (HRA to a global catalog, domain members, RPC ranges per
Windows version, NPS listeners, IKE exemptions, ...) quote their Microsoft document in their note (CITE_*).

A flow's ports may depend on one setting (``Choice``); which host's value counts is
named by ``decider`` (``src`` or ``dst``): e.g. the LDAP mode is the site server's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

# ---------------------------------------------------------------------------
# Roles: inventory group -> role id.  Every role but "perimeter" is a host role.
# ---------------------------------------------------------------------------
ROLE_GROUPS = (
    ("site_server", "nap_site_servers", "ConfigMgr 2007 site server"),
    ("shv_point", "nap_shv_points", "System Health Validator point (on a Network Policy Server)"),
    ("domain_controller", "nap_domain_controllers", "Active Directory domain controller"),
    ("global_catalog", "nap_global_catalogs", "global catalog server"),
    ("hra", "nap_hras", "Health Registration Authority (IIS)"),
    ("certification_authority", "nap_certification_authorities", "certification authority issuing health certificates"),
    ("dhcp_server", "nap_dhcp_servers", "DHCP server (NAP DHCP enforcement)"),
    ("vpn_server", "nap_vpn_servers", "VPN server (RRAS)"),
    ("ts_gateway", "nap_ts_gateways", "Terminal Services Gateway"),
    ("rdp_host", "nap_rdp_hosts", "RDP host reached through the TS Gateway"),
    ("radius_client", "nap_radius_clients", "802.1X switch or access point (RADIUS client)"),
    ("radius_proxy", "nap_radius_proxies", "RADIUS proxy (NPS forwarding RADIUS clients' requests to the SHV point)"),
    ("ipsec_protected", "nap_ipsec_protected", "server reached over NAP IPsec"),
    ("remediation_server", "nap_remediation_servers", "remediation server reachable from restricted networks"),
    ("client", "nap_clients", "NAP client (individual host)"),
    ("dhcp_relay", "nap_dhcp_relays", "DHCP relay agent"),
    ("dns_server", "nap_dns_servers", "DNS server"),
    ("site_system", "nap_site_systems", "ConfigMgr 2007 site system"),
    ("site_database", "nap_site_database_servers", "ConfigMgr 2007 site database server (SQL Server)"),
    ("console_host", "nap_console_hosts", "ConfigMgr console host"),
    ("perimeter", "nap_perimeter", "perimeter device (router or firewall) between zones"),
)
ROLE_BY_GROUP = dict((group, role) for role, group, _text in ROLE_GROUPS)
GROUP_BY_ROLE = dict((role, group) for role, group, _text in ROLE_GROUPS)

# Roles a remediation server may hold -> the flow whose ports REMEDIATION uses: the ConfigMgr site-system
# roles (CM07 flows) and the infrastructure servers restricted clients need (INFRA-* flows).
REMEDIATION_ROLES = {
    "management_point": "CM-MP",
    "software_update_point": "CM-SUP",
    "distribution_point": "CM-DP",
    "fallback_status_point": "CM-FSP",
    "server_locator_point": "CM-SLP",
    "global_catalog": "CM-GC",
    "dns": "CM-DNS",
    "domain_controller": "INFRA-DC",
    "wins": "INFRA-WINS",
}
# Roles whose Windows hosts are members of the domain unless nap_domain_member says otherwise: the servers of
# the NAP path (NPS authenticates users and computers against AD DS; HRA, VPN, TS Gateway, DHCP servers and the
# CA are members too) and the ConfigMgr site systems.  Domain controllers and global catalogs are the domain.
DOMAIN_MEMBER_ROLES = ("site_server", "shv_point", "hra", "certification_authority", "dhcp_server", "vpn_server",
                       "ts_gateway", "remediation_server", "site_system", "site_database", "console_host")
DOMAIN_CONTROLLER_ROLES = ("domain_controller", "global_catalog")

ENFORCEMENT_METHODS = ("dhcp", "ipsec", "8021x", "vpn", "tsg")
VPN_PROTOCOLS = ("pptp", "l2tp", "sstp", "ikev2")
PERIMETER_PLATFORMS = ("nftables", "cisco_asa", "cisco_ios", "other")
HOST_PLATFORMS = ("windows", "linux", "none")
# Roles whose hosts are network gear Ansible does not manage here (platform "none" by default).
UNMANAGED_ROLES = ("radius_client",)

# ---------------------------------------------------------------------------
# Citations: the Microsoft documents behind the flows and facts beyond the seed (quoted where they say it).
# ---------------------------------------------------------------------------
CITE_NPS_PORTS = ("NPS Ports (Windows Server 2008): \"By default, NPS listens for RADIUS traffic on ports 1812, 1813, "
                  "1645, and 1646\", "
                  "https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2008-r2-and-2008"
                  "/dd197605(v=ws.10)")
CITE_HRA_GC = ("Remote Request Processing (HRA): \"In a domain environment, HRA also requires a connection to the "
               "Active Directory global catalog for authentication of client credentials\", "
               "https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2008-R2-and-2008/"
               "cc735489(v=ws.10)")
CITE_NPS_DC = ("Network Policy Server (NPS) managed entity: \"If NPS cannot contact domain controllers, it cannot "
               "perform authentication and authorization, and network access authentication will fail\", "
               "https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2008-R2-and-2008/"
               "cc735378(v=ws.10)")
CITE_KB832017 = ("KB 832017 \"Service overview and network port requirements for Windows\", "
                 "https://learn.microsoft.com/en-us/troubleshoot/windows-server/networking/"
                 "service-overview-and-network-port-requirements")
CITE_AD_PORTS = ("Active Directory and Active Directory Domain Services Port Requirements (TechNet), "
                 "https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2008-r2-and-2008/"
                 "dd772723(v=ws.10); KB 179442 \"How to configure a firewall for domains and trusts\", "
                 "https://support.microsoft.com/help/179442; " + CITE_KB832017)
CITE_RPC_RANGE = ("KB 929851 \"The default dynamic port range for TCP/IP has changed in Windows Vista and in Windows "
                  "Server 2008\": 49152-65535 from Vista and 2008 on, 1025-5000 before, "
                  "https://support.microsoft.com/kb/929851")
CITE_FWPOLICY2 = ("INetFwPolicy2 (Windows Firewall with Advanced Security API, HNetCfg.FwPolicy2; netsh "
                  "advfirewall): Windows Vista and Windows Server 2008 on; Windows XP SP2 and Server 2003 SP1 have "
                  "only the older INetFwPolicy API, "
                  "https://learn.microsoft.com/en-us/windows/win32/api/netfw/nn-netfw-inetfwpolicy2")
CITE_IKE_EXEMPT = ("IKE/AuthIP Exemptions (Windows Filtering Platform): the Base Filtering Engine permits IKE and "
                   "AuthIP (UDP 500, 4500) itself, https://learn.microsoft.com/en-us/windows/win32/fwp/ike-exemptions")
CITE_REMEDIATION_GROUP = ("New-NpsRemediationServerGroup: \"A remediation server group usually includes "
                          "infrastructure servers such as Domain Name Service (DNS) servers, Windows Internet Naming "
                          "Service (WINS) servers, and domain controllers\", "
                          "https://learn.microsoft.com/en-us/previous-versions/windows/powershell-scripting/jj872747("
                          "v=wps.620)")
CITE_WINS = (CITE_KB832017 + ": WINS clients resolve names on UDP 137 (NetBIOS name service); TCP/UDP 42 is WINS "
             "replication between WINS servers")
CITE_L2TP = (CITE_KB832017 + ": Routing and Remote Access, L2TP UDP 1701 with IPsec ISAKMP UDP 500 and NAT-T UDP 4500 "
             "(L2TP/IPsec carries L2TP inside ESP)")
CITE_DHCP_V4 = ("NAP DHCP enforcement (Windows Server 2008): \"DHCP servers and NPS can enforce health policy when a "
                "computer attempts to lease or renew an IP version 4 (IPv4) address\"")
CITE_IKEV2 = ("IKEV2_CONFIG_PARAMS (mprapi.h): RRAS accepts IKEv2 connections from Windows Server 2008 R2 on, "
              "https://learn.microsoft.com/en-us/windows/win32/api/mprapi/ns-mprapi-ikev2_config_params")
CITE_NPS_PROXY = ("Remote RADIUS Server Groups (Windows Server 2008 NPS): \"When you configure Network Policy Server "
                  "(NPS) as a RADIUS proxy, you use NPS to forward connection requests to RADIUS servers\", "
                  "https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2008-R2-and-2008/"
                  "dd197533(v=ws.10)")
CITE_PUSH_ICMP = ("Ports Used by Configuration Manager 2007, client push installation: the site server checks with "
                  "an ICMP echo request that the client is on the network before it connects")

# Windows predefined firewall rule groups: (English name, the group's resource string as the predefined rules carry it
# in Group / EmbedCtxt, the Names of the predefined rules of the group that cover the flow).  Groups are matched by
# the resource string (the English name differs on localised Windows); None: no resource string was found.
# Where each resource string comes from:
# * the DisplayGroup;Group table of MartinGC94/UnattendXmlBuilder, ArgumentCompleters.ps1 at commit 725f194e
#   (https://github.com/MartinGC94/UnattendXmlBuilder/blob/725f194effea125be416ce0a482b5298c84d0044/
#   ArgumentCompleters.ps1): DHCP Server -50209, DNS Service -53012, File and Printer Sharing -28502, Remote Desktop
#   -28752, Routing and Remote Access -33752, Secure Socket Tunneling Protocol @sstpsvc.dll,-35001, Windows Remote
#   Management -30267;
# * a Windows Server domain controller's predefined rules exported as New-NetFirewallRule calls,
#   MichaelGrafnetter/active-directory-firewall, ADDS/GPO/Set-ADDSFirewallPolicy.ps1 at commit 9b595394
#   (https://github.com/MichaelGrafnetter/active-directory-firewall/blob/9b595394bc3d331412f016ee0a1371319a0d59b8/ADDS/
#   GPO/Set-ADDSFirewallPolicy.ps1): Active Directory Domain Services -37601, Kerberos Key Distribution Center
#   @kdcsvc.dll,-1008, DNS Service, File and Printer Sharing, Windows Remote Management, Remote Desktop, with the rule
#   Names used below (ADDS-LDAP-TCP-In, ADDS-RPCEPMAP-TCP-In, FPS-SMB-In-TCP, ...);
# * values of HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules as public
#   repositories export or write them (found by searching for the rule Names): "RemoteAdmin-RPCSS-In-TCP" =
#   "...LPort=RPC-EPMap...EmbedCtxt=@FirewallAPI.dll,-29752" (Remote Administration, Vista / Server 2008 and 2008 R2),
#   "RRAS-L2TP-In-UDP" = "...Protocol=17|LPort=1701...EmbedCtxt=@FirewallAPI.dll,-33752", and the File and Printer
#   Sharing echo request rules (FPS-ICMP4-ERQ-In, IcmpType 8; FPS-ICMP6-ERQ-In, IcmpType 128; group -28502);
# * Network Policy Server and the IIS groups (World Wide Web Services (HTTP), Secure World Wide Web Services (HTTPS)):
#   no resource string in any table or export searched (the table above lists neither); the DC Firewall tool names the
#   NPS group and its rules (NPS-NPSSvc-In-UDP-1812, ...) in English only (MichaelGrafnetter/active-directory-firewall,
#   ADDS/DCFWTool/Set-ADDSFirewallPolicy.ps1), and the IIS rules are known by Name (IIS-WebServerRole-HTTP-In-TCP,
#   IIS-WebServerRole-HTTPS-In-TCP): match those groups by their rules' Names.
GROUP_ADDS = ("Active Directory Domain Services", "@FirewallAPI.dll,-37601")
GROUP_KDC = ("Kerberos Key Distribution Center", "@kdcsvc.dll,-1008")
GROUP_DNS = ("DNS Service", "@firewallapi.dll,-53012")
GROUP_FPS = ("File and Printer Sharing", "@FirewallAPI.dll,-28502")
GROUP_NPS = ("Network Policy Server", None)
GROUP_REMOTE_ADMIN = ("Remote Administration", "@FirewallAPI.dll,-29752")
GROUP_DHCP = ("DHCP Server", "@FirewallAPI.dll,-50209")
GROUP_RRAS = ("Routing and Remote Access", "@FirewallAPI.dll,-33752")
GROUP_SSTP = ("Secure Socket Tunneling Protocol", "@sstpsvc.dll,-35001")
GROUP_HTTP = ("World Wide Web Services (HTTP)", None)
GROUP_HTTPS = ("Secure World Wide Web Services (HTTPS)", None)
GROUP_RDP = ("Remote Desktop", "@FirewallAPI.dll,-28752")
GROUP_WINRM = ("Windows Remote Management", "@FirewallAPI.dll,-30267")
NPS_RULES = ("NPS-NPSSvc-In-UDP-1812", "NPS-NPSSvc-In-UDP-1813", "NPS-NPSSvc-In-UDP-1645", "NPS-NPSSvc-In-UDP-1646")


def win_group(group, *rules):
    """(English name, resource string, rule Names) of a predefined group with the rules that cover a flow."""
    return (group[0], group[1], tuple(rules))


class GroupChoice:
    """Windows predefined groups chosen by one setting's value, as Choice chooses ports (e.g. the HRA's HTTP or
    HTTPS group per nap_hra_transport); the value is the deciding host's, as for the flow's ports."""

    def __init__(self, setting, options):
        self.setting = setting
        self.options = options


WG_FPS_SMB = win_group(GROUP_FPS, "FPS-SMB-In-TCP")
WG_REMOTE_ADMIN = win_group(GROUP_REMOTE_ADMIN, "RemoteAdmin-RPCSS-In-TCP", "RemoteAdmin-In-TCP")
WG_NPS = win_group(GROUP_NPS, *NPS_RULES)
WG_HTTP = win_group(GROUP_HTTP, "IIS-WebServerRole-HTTP-In-TCP")
WG_HTTPS = win_group(GROUP_HTTPS, "IIS-WebServerRole-HTTPS-In-TCP")
WG_DNS = win_group(GROUP_DNS, "DNSSrv-DNS-UDP-In", "DNSSrv-DNS-TCP-In")
WG_RDP = win_group(GROUP_RDP, "RemoteDesktop-UserMode-In-TCP")
NO_GROUP_CM = "no Windows predefined rule group covers this ConfigMgr 2007 port"


# ---------------------------------------------------------------------------
# Windows versions (host variable nap_windows_version, setting nap_client_windows_versions).
# ---------------------------------------------------------------------------
RPC_RANGE_LEGACY = "1025-5000"       # Windows 2000, XP, Server 2003 (KB 929851)
RPC_RANGE_MODERN = "49152-65535"     # Windows Vista, Server 2008 and later


class WindowsVersion:
    """One Windows release: its default dynamic RPC range and whether it has the host firewall the collection
    writes (Windows Firewall with Advanced Security: the HNetCfg.FwPolicy2 COM API and netsh advfirewall)."""

    def __init__(self, name, label, rank, rpc_range, host_firewall):
        self.name = name
        self.label = label
        self.rank = rank              # orders releases of one generation (2008 R2 and 7 share theirs)
        self.rpc_range = rpc_range
        self.host_firewall = host_firewall


WINDOWS_VERSIONS = OrderedDict((v.name, v) for v in (
    WindowsVersion("xp", "Windows XP (SP3: the oldest NAP client)", 51, RPC_RANGE_LEGACY, False),
    WindowsVersion("2003", "Windows Server 2003", 52, RPC_RANGE_LEGACY, False),
    WindowsVersion("2003r2", "Windows Server 2003 R2", 52, RPC_RANGE_LEGACY, False),
    WindowsVersion("vista", "Windows Vista", 60, RPC_RANGE_MODERN, True),
    WindowsVersion("2008", "Windows Server 2008", 60, RPC_RANGE_MODERN, True),
    WindowsVersion("7", "Windows 7", 61, RPC_RANGE_MODERN, True),
    WindowsVersion("2008r2", "Windows Server 2008 R2", 61, RPC_RANGE_MODERN, True),
    WindowsVersion("8", "Windows 8", 62, RPC_RANGE_MODERN, True),
    WindowsVersion("2012", "Windows Server 2012", 62, RPC_RANGE_MODERN, True),
    WindowsVersion("8.1", "Windows 8.1", 63, RPC_RANGE_MODERN, True),
    WindowsVersion("2012r2", "Windows Server 2012 R2", 63, RPC_RANGE_MODERN, True),
    WindowsVersion("10", "Windows 10", 100, RPC_RANGE_MODERN, True),
    WindowsVersion("2016", "Windows Server 2016", 100, RPC_RANGE_MODERN, True),
    WindowsVersion("2019", "Windows Server 2019", 100, RPC_RANGE_MODERN, True),
    WindowsVersion("2022", "Windows Server 2022", 100, RPC_RANGE_MODERN, True),
    WindowsVersion("11", "Windows 11", 100, RPC_RANGE_MODERN, True),
    WindowsVersion("2025", "Windows Server 2025", 100, RPC_RANGE_MODERN, True),
))
_VERSION_NOISE = re.compile(r"microsoft|windows|server|[\s_-]+")
_SERVICE_PACK = re.compile(r"sp[0-9]+$")


def windows_version_key(value):
    """The WINDOWS_VERSIONS key of a version as people write it ("2008 R2", "Windows Server 2003 SP2", 2012, "XP
    SP3"), or the cleaned text when it is none of them (the caller says what it expected)."""
    text = _VERSION_NOISE.sub("", str(value).strip().lower())
    text = _SERVICE_PACK.sub("", text)
    return text


def rpc_range_of(version):
    """The default dynamic RPC range of a WINDOWS_VERSIONS key (None: the range of 2008 and later)."""
    return WINDOWS_VERSIONS[version].rpc_range if version in WINDOWS_VERSIONS else RPC_RANGE_MODERN


# ---------------------------------------------------------------------------
# Settings: one choice each, with their defaults (../shared/nap-flows.md).
# ---------------------------------------------------------------------------
_RANGE_RE = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*")  # used with fullmatch: ASCII digits only


class Setting:
    def __init__(self, name, kind, default, choices=None, text="", normalize=None):
        self.name = name
        self.kind = kind          # choice | bool | list_choice | cidrs | range
        self.default = default
        self.choices = choices
        self.text = text
        self.normalize = normalize    # list_choice: maps an item as written to its choice key

    def expected(self):
        if self.kind == "choice":
            return "one of %s" % ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "list_choice":
            return "a list of %s" % ", ".join(self.choices)
        if self.kind == "cidrs":
            return "a list of IPv4/IPv6 CIDRs, e.g. [192.0.2.0/24]"
        if self.kind == "range":
            return "\"low-high\" with 1024 <= low <= high <= 65535, e.g. \"49152-65535\""
        return "?"


SETTINGS = (
    Setting("nap_ad_ldap_mode", "choice", "ldap", ("ldap", "ldaps"), "NAP-AD-WRITE: TCP 389 or 636"),
    Setting("nap_gc_mode", "choice", "gc", ("gc", "gc_ssl"), "NAP-GC-READ: TCP 3268 or 3269"),
    Setting("nap_hra_transport", "choice", "https", ("http", "https"), "IPSEC-HRA: TCP 80 or 443"),
    Setting("nap_enforcement_methods", "list_choice", [], ENFORCEMENT_METHODS, "which enforcement flows exist"),
    Setting("nap_vpn_protocols", "list_choice", ["sstp"], VPN_PROTOCOLS, "VPN flows"),
    Setting("nap_rpc_dynamic_range", "range", "49152-65535", None,
            "perimeter side of every RPC flow; when set, wins over the range of the destination's "
            "nap_windows_version (49152-65535, or 1025-5000 on XP and 2003)"),
    Setting("nap_client_windows_versions", "list_choice", None, tuple(WINDOWS_VERSIONS),
            "Windows versions on the client networks: their dynamic RPC range (CM-PUSH), both ranges when they mix "
            "(default: undeclared, 49152-65535)", normalize=windows_version_key),
    Setting("nap_radius_legacy_ports", "bool", False, None,
            "adds UDP 1645/1646 to RADIUS flows (NPS listens on them either way)"),
    Setting("nap_include_ad_dependencies", "bool", True, None,
            "AD-* flows from every domain member (nap_domain_member) to the domain controllers"),
    Setting("nap_include_configmgr_base", "bool", False, None, "adds the CM07 base flows"),
    Setting("nap_cm_site_mode", "choice", "mixed", ("mixed", "native"), "CM-MP, CM-DP, CM-SUP: HTTP or HTTPS ports"),
    Setting("nap_sup_ports", "choice", "default", ("default", "custom"), "CM-SUP: 80/443 or 8530/8531"),
    Setting("nap_client_networks", "cidrs", [], None, "source of client flows"),
    Setting("nap_restricted_networks", "cidrs", None, None,
            "source of REMEDIATION flows (default: nap_client_networks)"),
    Setting("nap_management_sources", "cidrs", None, None,
            "the management channel kept open (default: the controller's address)"),
    Setting("nap_windows_outbound_policy", "choice", "allow", ("allow", "block"),
            "whether hosts get outbound rules"),
)
SETTINGS_BY_NAME = dict((s.name, s) for s in SETTINGS)


# ---------------------------------------------------------------------------
# Flow definitions.
# ---------------------------------------------------------------------------
class Choice:
    """Ports chosen by one setting's value, e.g. LDAP 389 or LDAPS 636."""

    def __init__(self, setting, options):
        self.setting = setting
        self.options = options

    def describe(self):
        return " or ".join("%s (%s)" % (_ports_doc(p), k) for k, p in self.options.items())


def _ports_doc(ports):
    return "/".join(str(p) for p in ports)


class Service:
    """One protocol of a flow: destination and source ports, or a Choice of them."""

    def __init__(self, protocol, dst_ports=(), src_ports=(), rpc_dynamic=False, icmp_type=None):
        self.protocol = protocol
        self.dst_ports = dst_ports
        self.src_ports = src_ports
        self.rpc_dynamic = rpc_dynamic
        self.icmp_type = icmp_type      # a model.ICMP_TYPES name (protocol icmp only), None: every ICMP type

    def describe(self):
        if isinstance(self.dst_ports, (Choice, ManagementPort)):
            ports = self.dst_ports.describe()
        else:
            ports = _ports_doc(self.dst_ports)
        text = self.protocol.upper()
        if ports:
            text += " " + ports
        if self.src_ports:
            text += " (from %s)" % _ports_doc(self.src_ports)
        if self.rpc_dynamic:
            text += " + dynamic RPC"
        if self.icmp_type:
            text += " " + self.icmp_type
        if self.protocol in ("esp", "ah", "gre"):
            text = "IP protocol %s (%s)" % ({"esp": 50, "ah": 51, "gre": 47}[self.protocol], self.protocol.upper())
        return text


class ManagementPort:
    """The port Ansible reaches a managed host on, decided per host by the planner (one place for every
    backend): the host's ``ansible_port`` when set, else the connection's default (22 for ssh, 5986 for
    winrm and psrp, 5985 only where the scheme or protocol says http)."""

    def describe(self):
        return "the host's management port (ansible_port; else 22 for ssh, 5986 for winrm/psrp, 5985 over http)"


MANAGEMENT_PORT = ManagementPort()
MANAGEMENT_DEFAULT_PORTS = {"ssh": 22, "winrm": 5986, "psrp": 5986, "winrm_http": 5985, "psrp_http": 5985}


RADIUS = Choice("nap_radius_legacy_ports", {False: (1812, 1813), True: (1812, 1813, 1645, 1646)})


# What a flow may need beyond the general rules (FlowDef.traits).
TRAITS = {
    "unaddressed_source": "its clients have no address yet: requests leave from 0.0.0.0 to the broadcast "
                          "address (DHCPDISCOVER), so host rules admit 0.0.0.0 and routers the broadcast",
    "relay_takes_replies": "the relay also takes the server's replies (UDP 67 both ways), and verify probes "
                           "it as a relay (giaddr set)",
    "ports_per_remediation_role": "its ports come from each destination's nap_remediation_roles",
    "host_endpoints_only": "planned only where the source or the destination is a managed host, never "
                           "between two networks",
    "windows_exempt": "no host rule on a Windows destination: Windows permits IKE/AuthIP (UDP 500, 4500) itself and "
                      "ESP is its IPsec driver's; perimeter devices still carry the flow",
    "ports_per_protected_service": "its ports come from each destination's nap_ipsec_protected_services",
    "inside_ipsec": "carried inside IPsec (ESP) between the client and the server: host rules only, no perimeter "
                    "rule (IPSEC-IKE opens IKE and ESP there)",
    "ipv4_only": "IPv4 only (DHCPv4): an IPv6 client network gets a warning, not a rule",
    "radius_via_proxy": "sent to the RADIUS proxies (nap_radius_proxies) when the inventory has any, else to the SHV "
                        "points",
    "management_channel": "carries the management connection (Ansible's WinRM/PSRP or SSH): its rules are applied "
                          "before the others and never cut",
}


class FlowDef:
    """A catalogue entry.

    ``src`` and ``dst`` name roles (see ROLE_GROUPS) or network endpoints.  ``when`` lists
    conditions that must all hold: ``("method", m)``, ``("vpn_protocol", p)`` (decided by the
    destination VPN server), ``("setting", name)`` for a true boolean setting.  ``pairing``:
    ``all`` (every source to every destination), ``distinct`` (skip a host talking to itself:
    the RADIUS flow of an enforcement server that holds the SHV point itself), ``dhcp_client``
    (only client networks in the DHCP server's zone), ``dhcp_relay`` (relays for the others).
    ``deciders`` maps a setting to ``src`` or ``dst``: whose value chooses the ports.
    ``traits`` name what a flow needs beyond the general rules, so that no code compares flow ids:
    see TRAITS.  ``windows_group``: the Windows predefined firewall rule group(s) of the flow on its
    destination, as (English name, resource string or None) or a tuple of them.  ``dst_min_windows``: the
    oldest Windows version (a WINDOWS_VERSIONS key) the destination may declare for this flow.
    """

    def __init__(self, id, purpose, source, src, dst, services, category, when=(), pairing="all",
                 deciders=None, doc_from=None, doc_to=None, note="", traits=(), windows_group=None,
                 dst_min_windows=None, ports_text="", no_group=""):
        self.id = id
        self.purpose = purpose
        self.source = source
        self.src = src
        self.dst = dst
        self.services = services
        self.category = category
        self.when = when
        self.pairing = pairing
        self.deciders = deciders or {}
        self.doc_from = doc_from or _label(src)
        self.doc_to = doc_to or _label(dst)
        self.note = note
        unknown = set(traits) - set(TRAITS)
        if unknown:
            raise ValueError("flow %s: unknown trait(s) %s" % (id, ", ".join(sorted(unknown))))
        self.traits = frozenset(traits)
        if isinstance(windows_group, GroupChoice):
            self.windows_group = ()
            self.group_choice = windows_group
        else:
            if windows_group and isinstance(windows_group[0], str):
                windows_group = (windows_group,)
            self.windows_group = tuple(_full_group(g) for g in windows_group or ())
            self.group_choice = None
        self.no_group = no_group          # why no predefined group covers the flow (with no windows_group)

        if dst_min_windows is not None and dst_min_windows not in WINDOWS_VERSIONS:
            raise ValueError("flow %s: unknown Windows version %r" % (id, dst_min_windows))
        self.dst_min_windows = dst_min_windows
        self.ports_text = ports_text      # what the ports are where they come from each destination

    def settings(self):
        names = set(self.deciders)
        for service in self.services:
            if isinstance(service.dst_ports, Choice):
                names.add(service.dst_ports.setting)
        for kind, value in self.when:
            if kind == "setting":
                names.add(value)
            elif kind == "method":
                names.add("nap_enforcement_methods")
            elif kind == "vpn_protocol":
                names.update(("nap_enforcement_methods", "nap_vpn_protocols"))
        if any(s.rpc_dynamic for s in self.services):
            names.add("nap_rpc_dynamic_range")
        return names

    def describe_ports(self):
        return ", ".join(s.describe() for s in self.services) or self.ports_text

    def groups(self, value=None):
        """The flow's predefined groups; with a GroupChoice, those of ``value`` (None: of every value)."""
        if self.group_choice is None:
            return self.windows_group
        if value is not None:
            return tuple(_full_group(g) for g in self.group_choice.options.get(value, ()))
        out = []
        for groups in self.group_choice.options.values():
            out.extend(g for g in (_full_group(x) for x in groups) if g not in out)
        return tuple(out)

    def describe_groups(self):
        """One line for the docs: the groups (with their resource strings and rules), or why there is none."""
        if self.group_choice is not None:
            return " or ".join("%s (%s)" % (group_text(self.group_choice.options[k]) or "none", k)
                               for k in self.group_choice.options)
        return group_text(self.windows_group) or "none: " + self.no_group


def _full_group(group):
    return tuple(group) if len(group) == 3 else (group[0], group[1], ())


def group_text(groups):
    out = []
    for name, resource, rules in (_full_group(g) for g in groups):
        text = "%s (%s)" % (name, resource or "no resource string found")
        if rules:
            text += ": " + ", ".join(rules)
        out.append(text)
    return "; ".join(out)


def group_data(groups):
    """Plain data of groups: [{name, resource, rules}]."""
    return [{"name": name, "resource": resource, "rules": list(rules)}
            for name, resource, rules in (_full_group(g) for g in groups)]


_ACRONYMS = ("shv", "hra", "ts", "rdp", "dhcp", "vpn", "dns", "ca")


def _label(role):
    """'shv_point' -> 'SHV point'."""
    return " ".join(w.upper() if w in _ACRONYMS else w for w in role.split("_"))


def _tcp(*ports, **kw):
    return Service("tcp", ports, **kw)


def _udp(*ports, **kw):
    return Service("udp", ports, **kw)


_RPC = Service("tcp", (135,), rpc_dynamic=True)
_AD = ("setting", "nap_include_ad_dependencies")
_BASE = ("setting", "nap_include_configmgr_base")
_HTTP_MODE = Choice("nap_cm_site_mode", {"mixed": (80,), "native": (443,)})

CM_FLOWS = (
    FlowDef("CM-MP", "clients reach the management point", "CM07", "client_endpoints", "management_point",
            (Service("tcp", _HTTP_MODE),), "configmgr", when=(_BASE,), deciders={"nap_cm_site_mode": "dst"},
            doc_from="clients"),
    FlowDef("CM-SUP", "clients reach the software update point (WSUS)", "CM07", "client_endpoints",
            "software_update_point",
            (Service("tcp", Choice("nap_sup_ports", {"default": (80, 443), "custom": (8530, 8531)})),),
            "configmgr", when=(_BASE,), deciders={"nap_sup_ports": "dst"}, doc_from="clients"),
    FlowDef("CM-DP", "clients download content from the distribution point (BITS, SMB)", "CM07",
            "client_endpoints", "distribution_point", (Service("tcp", _HTTP_MODE), _tcp(445)), "configmgr",
            when=(_BASE,), deciders={"nap_cm_site_mode": "dst"}, doc_from="clients"),
    FlowDef("CM-FSP", "clients send state messages to the fallback status point", "CM07", "client_endpoints",
            "fallback_status_point", (_tcp(80),), "configmgr", when=(_BASE,), doc_from="clients"),
    FlowDef("CM-SLP", "clients locate their site through the server locator point", "CM07", "client_endpoints",
            "server_locator_point", (_tcp(80),), "configmgr", when=(_BASE,), doc_from="clients"),
    FlowDef("CM-GC", "clients look up the site in the global catalog", "CM07", "client_endpoints",
            "global_catalog", (_tcp(3268),), "configmgr", when=(_BASE,), doc_from="clients"),
    FlowDef("CM-DNS", "clients resolve names", "CM07", "client_endpoints", "dns",
            (_udp(53), _tcp(53)), "configmgr", when=(_BASE,), doc_from="clients", doc_to="DNS server"),
    FlowDef("CM-PUSH", "site server pushes the client (SMB, RPC)", "CM07", "site_server", "client_endpoints",
            (_tcp(445), _RPC), "configmgr", when=(_BASE,), doc_to="clients"),
    FlowDef("CM-PUSH-ICMP", "site server pings a client before client push", "CM07",
            "site_server", "client_endpoints", (Service("icmp", icmp_type="echo-request"),), "configmgr",
            when=(_BASE,), doc_to="clients",
            note=CITE_PUSH_ICMP + "; echo request only (ICMP type 8, ICMPv6 type 128 towards IPv6 clients)"),
    FlowDef("CM-SITESYS", "site server installs and configures site systems", "CM07", "site_server",
            "site_systems", (_tcp(445), _RPC), "configmgr", when=(_BASE,), pairing="distinct",
            doc_to="site systems"),
    FlowDef("CM-SQL", "site server reaches the site database", "CM07", "site_server", "site_database",
            (_tcp(1433),), "configmgr", when=(_BASE,), pairing="distinct"),
    FlowDef("CM-S2S", "site-to-site replication between site servers", "CM07", "site_server", "site_server",
            (_tcp(445),), "configmgr", when=(_BASE,), pairing="distinct", doc_to="parent/child site server"),
    FlowDef("CM-RC", "console hosts remote-control clients", "CM07", "console_host", "client_endpoints",
            (_tcp(2701, 2702, 3389),), "configmgr", when=(_BASE,), doc_from="ConfigMgr console hosts",
            doc_to="clients"),
    FlowDef("CM-WOL", "site server sends wake-on-LAN packets", "CM07", "site_server", "client_endpoints",
            (_udp(9),), "configmgr", when=(_BASE,), doc_to="clients"),
)
_REMEDIATION_ONLY = "remediation_role"
INFRA_FLOWS = (
    FlowDef("INFRA-DC", "restricted clients authenticate and get Group Policy at a DC", "NAP, AD",
            "restricted_networks", "domain_controller",
            (_tcp(88), _udp(88), _tcp(389), _udp(389), _tcp(445), _RPC, _udp(123)), "remediation",
            when=((_REMEDIATION_ONLY, "domain_controller"),), doc_from="restricted networks",
            note="Kerberos, LDAP and the DC locator, SMB (SYSVOL), RPC (Netlogon), time; " + CITE_REMEDIATION_GROUP),
    FlowDef("INFRA-WINS", "restricted clients resolve NetBIOS names at a WINS server", "NAP",
            "restricted_networks", "wins_server", (_udp(137),), "remediation",
            when=((_REMEDIATION_ONLY, "wins"),), doc_from="restricted networks", doc_to="WINS server",
            note="clients use UDP 137 only (TCP 42 is replication between WINS servers); " + CITE_WINS + "; "
                 + CITE_REMEDIATION_GROUP),
)
# Every flow a REMEDIATION flow may go via (nap_remediation_roles): the ConfigMgr flows and the INFRA-* flows.
VIA_BY_ID = dict((f.id, f) for f in CM_FLOWS + INFRA_FLOWS)
CM_BY_ID = VIA_BY_ID          # (the name before the INFRA-* flows; verify and the docs generator use it)

FLOWS = (
    # --- seed rows -------------------------------------------------------
    FlowDef("NAP-AD-WRITE", "publish the ConfigMgr health state reference to AD DS", "seed row 1",
            "site_server", "domain_controller",
            (Service("tcp", Choice("nap_ad_ldap_mode", {"ldap": (389,), "ldaps": (636,)})),), "seed",
            deciders={"nap_ad_ldap_mode": "src"}),
    FlowDef("NAP-GC-READ", "read the ConfigMgr health state reference from a global catalog", "seed row 2",
            "shv_point", "global_catalog",
            (Service("tcp", Choice("nap_gc_mode", {"gc": (3268,), "gc_ssl": (3269,)})),), "seed",
            deciders={"nap_gc_mode": "src"}),
    FlowDef("NAP-SHV-INSTALL", "SMB: install the System Health Validator point", "seed row 3",
            "site_server", "shv_point", (_tcp(445),), "seed", pairing="distinct"),
    FlowDef("NAP-SHV-CONFIG", "RPC: ongoing configuration of the System Health Validator point", "seed row 3",
            "site_server", "shv_point", (_RPC,), "seed", pairing="distinct"),
    FlowDef("NAP-SHV-STATUS", "SMB: status messages from the System Health Validator point", "seed row 4",
            "shv_point", "site_server", (_tcp(445),), "seed", pairing="distinct"),
    # --- AD dependencies --------------------------------------------------
    FlowDef("AD-KERBEROS", "authenticate the LDAP / GC bind (Kerberos)", "AD", "domain_members", "ad_servers",
            (_tcp(88), _udp(88)), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="domain controllers"),
    FlowDef("AD-DNS", "locate domain controllers (DNS)", "AD", "domain_members", "dns",
            (_tcp(53), _udp(53)), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="DCs serving DNS, or nap_dns_servers"),
    FlowDef("AD-CLDAP", "DC locator ping (CLDAP)", "AD", "domain_members", "ad_servers",
            (_udp(389),), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="domain controllers"),
    FlowDef("AD-TIME", "time sync that Kerberos needs", "AD", "domain_members", "ad_servers",
            (_udp(123),), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="domain controllers"),
    FlowDef("AD-LDAP", "LDAP of a domain member: DC locator, Group Policy, lookups", "AD",
            "domain_members", "ad_servers", (_tcp(389),), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="domain controllers",
            note="LDAPS does not replace it for domain membership (nap_ad_ldap_mode chooses NAP-AD-WRITE only); "
                 + CITE_AD_PORTS + "; " + CITE_NPS_DC),
    FlowDef("AD-SMB", "SMB of a domain member: SYSVOL, Group Policy, SAM/LSA pipes", "AD",
            "domain_members", "ad_servers", (_tcp(445),), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="domain controllers", note=CITE_AD_PORTS),
    FlowDef("AD-RPC", "RPC of a domain member: Netlogon secure channel, LSA, SAM", "AD",
            "domain_members", "ad_servers", (_RPC,), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="domain controllers",
            note="the dynamic range is the DC's (nap_windows_version: " + CITE_RPC_RANGE + "); " + CITE_AD_PORTS),
    FlowDef("AD-KPASSWD", "Kerberos password change (machine account)", "AD",
            "domain_members", "ad_servers", (_tcp(464), _udp(464)), "ad", when=(_AD,), pairing="distinct",
            doc_from="domain members", doc_to="domain controllers", note=CITE_AD_PORTS),
    # --- enforcement -------------------------------------------------------
    FlowDef("DHCP-CLIENT", "DHCP requests from NAP clients on the server's segment", "seed, NAP",
            "client_networks", "dhcp_server", (Service("udp", (67,), (68,)),), "enforcement",
            when=(("method", "dhcp"),), pairing="dhcp_client", doc_from="client networks",
            note="a DHCPDISCOVER comes from 0.0.0.0: host rules add it to the sources; IPv4 client networks only ("
                 + CITE_DHCP_V4 + ")",
            traits=("unaddressed_source", "ipv4_only")),
    FlowDef("DHCP-RELAY", "DHCP relay agent forwards client requests to the server", "NAP",
            "dhcp_relay_agents", "dhcp_server", (Service("udp", (67,), (67,)),), "enforcement",
            when=(("method", "dhcp"),), pairing="dhcp_relay", doc_from="DHCP relay",
            traits=("relay_takes_replies", "ipv4_only"),
            note="for DHCP servers behind a router; relay <-> server on UDP 67 both ways"),
    FlowDef("DHCP-RADIUS", "DHCP server's NPS proxy sends RADIUS to the SHV point", "NAP",
            "dhcp_server", "shv_point", (Service("udp", RADIUS),), "enforcement",
            when=(("method", "dhcp"),), pairing="distinct", deciders={"nap_radius_legacy_ports": "dst"},
            note="only where the SHV point is a different host"),
    FlowDef("IPSEC-HRA", "clients request health certificates from the HRA", "seed, NAP",
            "client_networks", "hra",
            (Service("tcp", Choice("nap_hra_transport", {"http": (80,), "https": (443,)})),), "enforcement",
            when=(("method", "ipsec"),), deciders={"nap_hra_transport": "dst"}, doc_from="client networks"),
    FlowDef("IPSEC-HRA-RADIUS", "HRA's NPS proxy sends RADIUS to the SHV point", "NAP",
            "hra", "shv_point", (Service("udp", RADIUS),), "enforcement",
            when=(("method", "ipsec"),), pairing="distinct", deciders={"nap_radius_legacy_ports": "dst"},
            note="only where the SHV point is a different host"),
    FlowDef("IPSEC-HRA-CA", "HRA requests health certificates from the CA (DCOM)", "NAP",
            "hra", "certification_authority", (_RPC,), "enforcement", when=(("method", "ipsec"),),
            pairing="distinct"),
    FlowDef("IPSEC-HRA-GC", "HRA checks client credentials at a global catalog", "NAP",
            "hra", "global_catalog",
            (Service("tcp", Choice("nap_gc_mode", {"gc": (3268,), "gc_ssl": (3269,)})),), "enforcement",
            when=(("method", "ipsec"),), pairing="distinct", deciders={"nap_gc_mode": "src"},
            note=CITE_HRA_GC),
    FlowDef("IPSEC-IKE", "IPsec negotiation and protected traffic (IKEv1/AuthIP, NAT-T, ESP)",
            "seed, NAP", "client_networks", "ipsec_protected",
            (_udp(500, 4500), Service("esp")), "enforcement", when=(("method", "ipsec"),),
            doc_from="client networks", traits=("windows_exempt",),
            note="no host rule on Windows destinations: " + CITE_IKE_EXEMPT + "; perimeter devices carry it"),
    FlowDef("IPSEC-PROTECTED", "clients reach a service that IPsec protects", "NAP", "client_networks",
            "ipsec_protected", (), "enforcement",
            when=(("method", "ipsec"),), doc_from="client networks", ports_text="per nap_ipsec_protected_services",
            traits=("ports_per_protected_service", "inside_ipsec"),
            note="a connection security rule still needs the firewall rule of the service it protects; ports per "
                 "nap_ipsec_protected_services (service names such as smb, http, rdp, or ports such as tcp/8080); "
                 "inbound host rules only, the traffic crosses perimeters inside ESP; the Windows group is the "
                 "protected service's own"),
    FlowDef("8021X-RADIUS", "802.1X switches and access points send RADIUS to the SHV point", "NAP",
            "radius_client", "shv_point", (Service("udp", RADIUS),), "enforcement",
            when=(("method", "8021x"),), pairing="distinct", deciders={"nap_radius_legacy_ports": "dst"},
            doc_to="SHV point, or nap_radius_proxies", traits=("radius_via_proxy",)),
    FlowDef("VPN-PPTP", "PPTP VPN (control channel and GRE)", "NAP", "client_networks", "vpn_server",
            (_tcp(1723), Service("gre")), "enforcement", when=(("vpn_protocol", "pptp"),),
            doc_from="client networks"),
    FlowDef("VPN-L2TP", "L2TP/IPsec VPN (IKE, NAT-T, ESP)", "NAP", "client_networks", "vpn_server",
            (_udp(500, 4500), Service("esp")), "enforcement", when=(("vpn_protocol", "l2tp"),),
            doc_from="client networks", traits=("windows_exempt",),
            note="the IPsec of L2TP/IPsec; " + CITE_L2TP + "; no host rule on a Windows VPN server (" + CITE_IKE_EXEMPT
                 + "), perimeter devices carry it; L2TP itself is VPN-L2TP-1701"),
    FlowDef("VPN-L2TP-1701", "L2TP inside IPsec reaches the VPN server", "NAP", "client_networks", "vpn_server",
            (_udp(1701),), "enforcement", when=(("vpn_protocol", "l2tp"),), doc_from="client networks",
            traits=("inside_ipsec",),
            note=CITE_L2TP + ("; the VPN server's host rule (Routing and Remote Access (L2TP-In)); it crosses "
                              "perimeters inside ESP (VPN-L2TP), so no perimeter rule")),
    FlowDef("VPN-SSTP", "SSTP VPN (HTTPS)", "NAP", "client_networks", "vpn_server",
            (_tcp(443),), "enforcement", when=(("vpn_protocol", "sstp"),), doc_from="client networks"),
    FlowDef("VPN-IKEV2", "IKEv2 VPN (IKE, NAT-T, ESP)", "NAP", "client_networks", "vpn_server",
            (_udp(500, 4500), Service("esp")), "enforcement", when=(("vpn_protocol", "ikev2"),),
            doc_from="client networks", traits=("windows_exempt",), dst_min_windows="2008r2",
            note="RRAS from Windows Server 2008 R2: " + CITE_IKEV2 + "; no host rule on Windows (" + CITE_IKE_EXEMPT
                 + "), so no predefined group applies"),
    FlowDef("VPN-RADIUS", "VPN server sends RADIUS to the SHV point", "NAP", "vpn_server", "shv_point",
            (Service("udp", RADIUS),), "enforcement", when=(("method", "vpn"),), pairing="distinct",
            deciders={"nap_radius_legacy_ports": "dst"}, note="only where the SHV point is a different host",
            doc_to="SHV point, or nap_radius_proxies", traits=("radius_via_proxy",)),
    FlowDef("TSG-CLIENT", "clients connect to the TS Gateway (HTTPS)", "NAP", "client_networks", "ts_gateway",
            (_tcp(443),), "enforcement", when=(("method", "tsg"),), doc_from="client networks"),
    FlowDef("TSG-RADIUS", "TS Gateway sends RADIUS to the SHV point", "NAP", "ts_gateway", "shv_point",
            (Service("udp", RADIUS),), "enforcement", when=(("method", "tsg"),), pairing="distinct",
            deciders={"nap_radius_legacy_ports": "dst"}, note="only where the SHV point is a different host",
            doc_to="SHV point, or nap_radius_proxies", traits=("radius_via_proxy",)),
    FlowDef("TSG-RDP", "TS Gateway connects to RDP hosts", "NAP", "ts_gateway", "rdp_host",
            (_tcp(3389),), "enforcement", when=(("method", "tsg"),), pairing="distinct"),
    FlowDef("RADIUS-PROXY", "RADIUS proxy forwards RADIUS to the SHV point (NPS)", "NAP",
            "radius_proxy", "shv_point", (Service("udp", RADIUS),), "enforcement", when=(("any_method", None),),
            pairing="distinct", deciders={"nap_radius_legacy_ports": "dst"}, doc_from="RADIUS proxy",
            note="802.1X switches, VPN servers and TS Gateways send RADIUS to the proxies when nap_radius_proxies has "
                 "hosts; " + CITE_NPS_PROXY + "; " + CITE_NPS_PORTS + ""),
    FlowDef("REMEDIATION", "restricted clients reach remediation servers", "NAP, CM07",
            "restricted_networks", "remediation_server", (), "enforcement", when=(("any_method", None),),
            doc_from="restricted networks", traits=("ports_per_remediation_role",),
            ports_text="per nap_remediation_roles",
            note="ports per nap_remediation_roles: " + ", ".join(
                "%s -> %s" % (k, v) for k, v in REMEDIATION_ROLES.items())),
    FlowDef("CLIENT-DNS", "clients find the HRA and remediation servers by name (DNS)", "NAP",
            "client_and_restricted_networks", "dns", (_udp(53), _tcp(53)), "enforcement",
            when=(("any_method", None),), doc_from="client and restricted networks",
            doc_to="DNS servers (nap_dns_servers, else the DCs serving DNS)", note=CITE_REMEDIATION_GROUP),
    # --- management channel -------------------------------------------------
    FlowDef("MGMT-WINRM", "Ansible manages Windows hosts (WinRM / PSRP)", "configmgr.nap",
            "management_sources", "windows_hosts", (Service("tcp", MANAGEMENT_PORT),), "management",
            doc_from="nap_management_sources", doc_to="every managed Windows host", traits=("host_endpoints_only", "management_channel")),
    FlowDef("MGMT-SSH", "Ansible manages Linux hosts and perimeter devices (SSH)", "configmgr.nap",
            "management_sources", "ssh_hosts", (Service("tcp", MANAGEMENT_PORT),), "management",
            doc_from="nap_management_sources", doc_to="every managed Linux host and perimeter device",
            traits=("host_endpoints_only", "management_channel")),
) + CM_FLOWS + INFRA_FLOWS

FLOWS_BY_ID = dict((f.id, f) for f in FLOWS)

# The Windows predefined groups of every flow on its destination (the predefined-groups issue): groups with the rules
# that cover the flow, a GroupChoice, or the reason no predefined group applies (a text).
_ADDS = GROUP_ADDS
FLOW_GROUPS = {
    "NAP-AD-WRITE": (win_group(_ADDS, "ADDS-LDAP-TCP-In", "ADDS-LDAPSEC-TCP-In"),),
    "NAP-GC-READ": (win_group(_ADDS, "ADDS-LDAPGC-TCP-In", "ADDS-LDAPGCSEC-TCP-In"),),
    "NAP-SHV-INSTALL": (WG_FPS_SMB,),
    "NAP-SHV-CONFIG": (WG_REMOTE_ADMIN,),
    "NAP-SHV-STATUS": (WG_FPS_SMB,),
    "AD-KERBEROS": (win_group(GROUP_KDC, "ADDS-Kerberos-TCP-In", "ADDS-Kerberos-UDP-In"),),
    "AD-DNS": (WG_DNS,),
    "AD-CLDAP": (win_group(_ADDS, "ADDS-LDAP-UDP-In"),),
    "AD-TIME": (win_group(_ADDS, "W32Time-NTP-UDP-In"),),
    "AD-LDAP": (win_group(_ADDS, "ADDS-LDAP-TCP-In"),),
    "AD-SMB": (win_group(_ADDS, "ADDS-NP-TCP-In"),),
    "AD-RPC": (win_group(_ADDS, "ADDS-RPCEPMAP-TCP-In", "ADDS-RPC-TCP-In"),),
    "AD-KPASSWD": (win_group(GROUP_KDC, "ADDS-Kerberos-Password-TCP-In", "ADDS-Kerberos-Password-UDP-In"),),
    "DHCP-CLIENT": (win_group(GROUP_DHCP),),
    "DHCP-RELAY": (win_group(GROUP_DHCP),),
    "DHCP-RADIUS": (WG_NPS,),
    "IPSEC-HRA": GroupChoice("nap_hra_transport", {"http": (WG_HTTP,), "https": (WG_HTTPS,)}),
    "IPSEC-HRA-RADIUS": (WG_NPS,),
    "IPSEC-HRA-CA": "no predefined group was found for the CA's DCOM interface (the CA opens its own rules)",
    "IPSEC-HRA-GC": (win_group(_ADDS, "ADDS-LDAPGC-TCP-In", "ADDS-LDAPGCSEC-TCP-In"),),
    "IPSEC-IKE": "no host rule on Windows: Windows permits IKE and AuthIP itself (IKE/AuthIP exemptions)",
    "IPSEC-PROTECTED": "the protected service's own group (see each plan flow's via)",
    "8021X-RADIUS": (WG_NPS,),
    "VPN-PPTP": (win_group(GROUP_RRAS, "RRAS-PPTP-In-TCP", "RRAS-GRE-In"),),
    "VPN-L2TP": "no host rule on Windows: Windows permits IKE itself (IKE/AuthIP exemptions) and ESP is its IPsec "
                "driver's",
    "VPN-L2TP-1701": (win_group(GROUP_RRAS, "RRAS-L2TP-In-UDP"),),
    "VPN-SSTP": (win_group(GROUP_SSTP),),
    "VPN-IKEV2": "no host rule on Windows: Windows permits IKE itself (IKE/AuthIP exemptions)",
    "VPN-RADIUS": (WG_NPS,),
    "TSG-CLIENT": "no predefined group with a resource string was found for the TS Gateway (HTTPS)",
    "TSG-RADIUS": (WG_NPS,),
    "TSG-RDP": (WG_RDP,),
    "RADIUS-PROXY": (WG_NPS,),
    "REMEDIATION": "the group of the flow it goes via (nap_remediation_roles; each plan flow names it)",
    "CLIENT-DNS": (WG_DNS,),
    "MGMT-WINRM": (win_group(GROUP_WINRM, "WINRM-HTTP-In-TCP", "WINRM-HTTP-In-TCP-PUBLIC", "WINRM-HTTPS-In-TCP-PUBLIC"),),
    "MGMT-SSH": "no Windows destination: Linux hosts and perimeter devices",
    "CM-MP": GroupChoice("nap_cm_site_mode", {"mixed": (WG_HTTP,), "native": (WG_HTTPS,)}),
    "CM-SUP": GroupChoice("nap_sup_ports", {"default": (WG_HTTP, WG_HTTPS), "custom": ()}),
    "CM-DP": GroupChoice("nap_cm_site_mode", {"mixed": (WG_HTTP, WG_FPS_SMB), "native": (WG_HTTPS, WG_FPS_SMB)}),
    "CM-FSP": (WG_HTTP,),
    "CM-SLP": (WG_HTTP,),
    "CM-GC": (win_group(_ADDS, "ADDS-LDAPGC-TCP-In"),),
    "CM-DNS": (WG_DNS,),
    "CM-PUSH": (WG_FPS_SMB, WG_REMOTE_ADMIN),
    "CM-PUSH-ICMP": (win_group(GROUP_FPS, "FPS-ICMP4-ERQ-In", "FPS-ICMP6-ERQ-In"),),
    "CM-SITESYS": (WG_FPS_SMB, WG_REMOTE_ADMIN),
    "CM-SQL": NO_GROUP_CM + " (SQL Server's TCP 1433)",
    "CM-S2S": (WG_FPS_SMB,),
    "CM-RC": (WG_RDP,),
    "CM-WOL": NO_GROUP_CM + " (wake-on-LAN reaches the network adapter, not Windows)",
    "INFRA-DC": (win_group(GROUP_KDC, "ADDS-Kerberos-TCP-In", "ADDS-Kerberos-UDP-In"),
                 win_group(_ADDS, "ADDS-LDAP-TCP-In", "ADDS-LDAP-UDP-In", "ADDS-NP-TCP-In", "ADDS-RPCEPMAP-TCP-In",
                           "ADDS-RPC-TCP-In", "W32Time-NTP-UDP-In")),
    "INFRA-WINS": (win_group(GROUP_FPS, "FPS-NB_Name-In-UDP"),),
}
# Groups of the services nap_ipsec_protected_services names (IPSEC-PROTECTED via).
PROTECTED_SERVICE_GROUPS = {
    "http": (WG_HTTP,), "https": (WG_HTTPS,), "smb": (WG_FPS_SMB,), "rpc": (WG_REMOTE_ADMIN,), "rdp": (WG_RDP,),
    "dns": (WG_DNS,), "ldap": (win_group(_ADDS, "ADDS-LDAP-TCP-In"),),
    "ldaps": (win_group(_ADDS, "ADDS-LDAPSEC-TCP-In"),),
    "kerberos": (win_group(GROUP_KDC, "ADDS-Kerberos-TCP-In", "ADDS-Kerberos-UDP-In"),),
}


def _set_groups():
    unknown = set(FLOW_GROUPS) - set(FLOWS_BY_ID)
    missing = set(FLOWS_BY_ID) - set(FLOW_GROUPS)
    if unknown or missing:
        raise ValueError("FLOW_GROUPS: unknown flow(s) %s, flow(s) without groups %s"
                         % (", ".join(sorted(unknown)) or "none", ", ".join(sorted(missing)) or "none"))
    for flow in FLOWS:      # (the CM-* and INFRA-* flows are in FLOWS too)
        value = FLOW_GROUPS[flow.id]
        flow.windows_group, flow.group_choice, flow.no_group = (), None, ""
        if isinstance(value, GroupChoice):
            flow.group_choice = value
        elif isinstance(value, str):
            flow.no_group = value
        else:
            flow.windows_group = tuple(_full_group(g) for g in value)


_set_groups()


def plan_groups(flow_id, via=None, value=None):
    """(groups, note) of a plan flow: its via's groups (REMEDIATION, IPSEC-PROTECTED), the groups of the deciding
    host's value of a GroupChoice, or its own; note says why there is none."""
    if flow_id == "IPSEC-PROTECTED":
        groups = PROTECTED_SERVICE_GROUPS.get(str(via).lower(), ())
        return groups, "" if groups else "no predefined group is known for this protected service"
    flow = VIA_BY_ID.get(via) if via else None
    flow = flow or FLOWS_BY_ID[flow_id]
    groups = flow.groups(value) if flow.group_choice is not None else flow.windows_group
    note = flow.no_group or ("" if groups else "no predefined group covers this choice")
    return groups, note


# Services a host may name in nap_ipsec_protected_services (ports also work: 8080, "tcp/8080", "udp/514").
PROTECTED_SERVICES = OrderedDict((
    ("http", (_tcp(80),)),
    ("https", (_tcp(443),)),
    ("smb", (_tcp(445),)),
    ("rpc", (_RPC,)),
    ("rdp", (_tcp(3389),)),
    ("sql", (_tcp(1433),)),
    ("wsus", (_tcp(8530, 8531),)),
    ("dns", (_udp(53), _tcp(53))),
    ("ldap", (_tcp(389),)),
    ("ldaps", (_tcp(636),)),
    ("kerberos", (_tcp(88), _udp(88))),
))


def has_trait(flow_id, trait):
    """Whether the catalogue flow ``flow_id`` (a plan flow's ``id``) has ``trait`` (see TRAITS)."""
    if trait not in TRAITS:
        raise ValueError("unknown trait %r" % trait)
    flow = FLOWS_BY_ID.get(flow_id) or VIA_BY_ID.get(flow_id)
    return bool(flow is not None and trait in flow.traits)


CATEGORIES = (
    ("seed", "Seed flows (Ports used by NAP in Configuration Manager 2007)"),
    ("ad", "AD dependencies (nap_include_ad_dependencies)"),
    ("enforcement", "Enforcement flows"),
    ("management", "Management channel (never cut)"),
    ("configmgr", "ConfigMgr 2007 base flows (nap_include_configmgr_base; also remediation ports)"),
    ("remediation", "Infrastructure remediation servers (nap_remediation_roles; planned through REMEDIATION)"),
)

# Listeners expected per role (for verification).
LISTENERS = {
    "domain_controller": "TCP 389 (and 636 when ldaps), TCP 88, TCP 445, TCP 135, TCP/UDP 53 where it serves DNS",
    "global_catalog": "TCP 3268 (and 3269 when gc_ssl)",
    "site_server": "TCP 445, TCP 135",
    "shv_point": "UDP 1812, 1813, 1645 and 1646 (NPS listens on all four whatever nap_radius_legacy_ports), "
                 "TCP 445, TCP 135",
    "radius_proxy": "UDP 1812, 1813, 1645 and 1646 (NPS)",
    "hra": "TCP 80 or 443 (per nap_hra_transport)",
    "dhcp_server": "UDP 67",
    "vpn_server": "TCP 1723 (pptp) / UDP 500, 4500 (l2tp, ikev2) / TCP 443 (sstp), per nap_vpn_protocols",
    "ts_gateway": "TCP 443",
    "certification_authority": "TCP 135",
    "dns_server": "TCP/UDP 53",
}


def catalogue_entries():
    """The catalogue as plain data (what the nap_flows filter returns without a plan)."""
    out = []
    for flow in FLOWS:
        out.append({
            "id": flow.id,
            "purpose": flow.purpose,
            "source": flow.source,
            "category": flow.category,
            "src_role": flow.src,
            "dst_role": flow.dst,
            "from": flow.doc_from,
            "to": flow.doc_to,
            "services": [_service_data(s) for s in flow.services],
            "ports": flow.describe_ports(),
            "conditions": [_condition_text(c) for c in flow.when],
            "settings": sorted(flow.settings()),
            "note": flow.note,
            "windows_group": group_data(flow.groups()),
        })
        if flow.group_choice is not None:
            out[-1]["windows_group_choice"] = {
                "setting": flow.group_choice.setting,
                "options": dict((str(k).lower(), group_data(v)) for k, v in flow.group_choice.options.items())}
        if flow.no_group:
            out[-1]["windows_group_note"] = flow.no_group
    return out


def _service_data(service):
    data = {"protocol": service.protocol, "src_ports": list(service.src_ports),
            "rpc_dynamic": service.rpc_dynamic}
    if service.icmp_type:
        data["icmp_type"] = service.icmp_type
    if isinstance(service.dst_ports, Choice):
        data["dst_ports"] = None
        data["choice"] = {"setting": service.dst_ports.setting,
                          "options": dict((str(k).lower(), list(v)) for k, v in service.dst_ports.options.items())}
    elif isinstance(service.dst_ports, ManagementPort):
        data["dst_ports"] = None
        data["management_port"] = service.dst_ports.describe()
    else:
        data["dst_ports"] = list(service.dst_ports)
    return data


def _condition_text(cond):
    kind, value = cond
    if kind == "method":
        return "%s in nap_enforcement_methods" % value
    if kind == "vpn_protocol":
        return "vpn in nap_enforcement_methods and %s in nap_vpn_protocols" % value
    if kind == "setting":
        return "%s is true" % value
    if kind == "any_method":
        return "any enforcement method"
    if kind == _REMEDIATION_ONLY:
        return "through REMEDIATION, where %s is in a server's nap_remediation_roles" % value
    return "%s=%s" % cond
