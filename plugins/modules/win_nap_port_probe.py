#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_nap_port_probe
short_description: Protocol-aware reachability probes from a Windows host, judged like nap_port_probe
version_added: 0.2.0
description:
  - Probes every target from the Windows host the task runs on and reports the same C(state) per target as
    M(configmgr.nap.nap_port_probe) (C(open), C(closed), C(filtered), C(open|filtered), C(unexpected), C(error)).
  - The payloads are built and the replies judged on the controller by the same Python code as
    M(configmgr.nap.nap_port_probe) (RADIUS, IKEv1/IKEv2, DNS, CLDAP, NTP, Kerberos; TCP open, closed or filtered),
    so both vantage kinds give the same verdict for the same reply.
  - On the host, a thin PowerShell sender (C(plugins/module_utils/nap/powershell/probe_sender.ps1)) run through
    M(ansible.windows.win_powershell) only connects, sends the given bytes and returns the bytes that came back, for
    all targets in one call, at most O(concurrency) at once, each with its own timeout.
  - This is an action plugin; the host needs PowerShell 5.1 (M(ansible.windows.win_powershell) does), that is
    Windows Server 2008 R2 SP1 with WMF 5.1 or later. A host below that fails the task with
    C(cannot run the probe (PowerShell x)).
author:
  - configmgr.nap maintainers (@configmgr-nap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  targets:
    description:
      - The destinations to probe, as for M(configmgr.nap.nap_port_probe).
      - C(dhcp) and C(dhcp_relay) targets are reported as C(error) without being sent, since they bind UDP 68 or 67,
        which the DHCP Client and DHCP Server services hold on Windows; probe DHCP from a Linux vantage in the zone.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - A label for the target in results and messages, for example the flow id C(NAP-AD-WRITE).
        type: str
      host:
        description:
          - Address (IPv4 or IPv6) or name of the destination. Names are resolved once, before probing.
        type: str
        required: true
        aliases: [address]
      port:
        description:
          - Destination port, 1-65535.
        type: int
        required: true
      protocol:
        description:
          - Transport protocol.
          - Defaults to C(udp) for the UDP kinds and C(tcp) otherwise.
        type: str
        choices: [tcp, udp]
      kind:
        description:
          - What to send.
          - C(auto) picks C(tcp) for TCP and, for UDP, the protocol-aware probe of well-known ports (53 C(dns),
            67 C(dhcp), 88 C(kerberos), 123 C(ntp), 389 C(cldap), 500 and 4500 C(ike), 1812/1813/1645/1646 C(radius)
            when O(targets[].secret) is set), else C(udp).
          - C(kerberos) probes over UDP or TCP (give O(targets[].protocol)); over TCP, a completed handshake without a
            Kerberos answer is C(unexpected).
          - C(dhcp) and C(dhcp_relay) are not sent from Windows (see above).
        type: str
        choices: [auto, tcp, udp, dhcp, dhcp_relay, radius, ike, dns, cldap, ntp, kerberos]
        default: auto
      expect:
        description:
          - The state the target must be in. C(blocked) accepts C(closed), C(filtered) and C(open|filtered).
          - Without it the target is only reported (it still fails the task when the probe could not be made).
        type: str
        choices: [open, closed, blocked]
      secret:
        description:
          - RADIUS shared secret of the vantage host as a registered RADIUS client. Required for C(radius) probes.
          - NPS ignores RADIUS packets from clients it has not registered, so silence there is C(open|filtered).
        type: str
      radius_request:
        description:
          - RADIUS request to send. C(status_server) (RFC 5997) is answered without touching any user database
            where the server implements it; C(access_request) is answered by any RADIUS server that knows the client,
            usually with an Access-Reject.
        type: str
        choices: [status_server, access_request]
        default: status_server
      user:
        description:
          - User-Name of an C(access_request) probe.
        type: str
        default: configmgr-nap-probe
      password:
        description:
          - User-Password of an C(access_request) probe (sent hidden per RFC 2865). Random when not set.
        type: str
      dhcp_message:
        description:
          - DHCP message to send. C(inform) (with ciaddr set to the vantage's address) does not reserve a lease;
            C(discover) does what a booting NAP client does.
        type: str
        choices: [discover, inform]
        default: discover
      mac:
        description:
          - Client hardware address of DHCP probes, for example C(02:00:00:00:00:01). Random (locally administered)
            when not set.
        type: str
      ike_version:
        description:
          - IKE versions to offer; with C(both) an IKEv1 Main Mode and an IKEv2 IKE_SA_INIT go out and either reply counts.
        type: str
        choices: [ikev1, ikev2, both]
        default: both
      dns_name:
        description:
          - Name asked for (type SOA, recursion not desired, so the server never resolves on our behalf).
        type: str
        default: "."
      kerberos_realm:
        description:
          - Realm of the C(kerberos) AS-REQ (upper-cased), for example the AD domain C(CORP.EXAMPLE.COM). A KDC of
            another realm still answers, with a KRB-ERROR such as KDC_ERR_WRONG_REALM.
        type: str
        default: NAP-PROBE.INVALID
      timeout:
        description:
          - Seconds to wait for this target, overriding O(timeout).
        type: float
  timeout:
    description:
      - Seconds each target waits for an answer. C(auto) waits O(max_timeout) (the sender does not estimate round
        trips, so a silent target takes the whole wait).
      - Windows retries a SYN that a reset answered for about a second; with a shorter timeout a closed TCP port reads
        C(filtered) instead of C(closed) (both count as blocked).
    type: raw
    default: auto
  max_timeout:
    description:
      - The wait of O(timeout=auto).
    type: float
    default: 3.0
  concurrency:
    description:
      - How many probes the sender keeps in flight at once.
    type: int
    default: 64
  deadline:
    description:
      - Hard limit in seconds for all probes; what is still running then is reported as C(error).
      - By default the longest wait times the number of batches plus one, plus 5 seconds.
    type: float
  source_address:
    description:
      - The host's own address, used as NAS-IP-Address of RADIUS Access-Request probes. The sender itself sends from
        the address Windows picks for each destination.
    type: str
attributes:
  check_mode:
    support: full
    details: Probes only send requests and read answers, they change nothing, so they run in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: windows
    details: PowerShell 5.1 (Windows Server 2008 R2 SP1 with WMF 5.1, and later), through ansible.windows.win_powershell.
notes:
  - Windows Firewall on the vantage itself may block outbound traffic where an outbound policy is set; a probe then
    reads C(filtered) or C(error) from the vantage's side.
seealso:
  - module: configmgr.nap.nap_port_probe
  - module: ansible.windows.win_powershell
"""

EXAMPLES = r"""
- name: The site server's flows, from the site server itself
  configmgr.nap.win_nap_port_probe:
    targets:
      - {name: NAP-AD-WRITE, host: 192.0.2.5, port: 636, expect: open}
      - {name: AD-KERBEROS, host: 192.0.2.5, port: 88, protocol: udp, kind: kerberos, kerberos_realm: CORP.EXAMPLE.COM}
      - {name: AD-CLDAP, host: 192.0.2.5, port: 389, protocol: udp, kind: cldap, expect: open}
  register: probes
"""

RETURN = r"""
results:
  description: One entry per target, in the order given, as M(configmgr.nap.nap_port_probe) returns them.
  returned: always
  type: list
  elements: dict
summary:
  description: Counts of targets, targets whose expectation held or broke, and targets per state.
  returned: always
  type: dict
failures:
  description: One line per broken expectation or failed probe (also joined into C(msg)).
  returned: always
  type: list
  elements: str
elapsed:
  description: Wall time of the sender on the host, in seconds.
  returned: always
  type: float
ps_version:
  description: The host's PowerShell version, as the sender reports it.
  returned: when the sender ran
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.configmgr.nap.plugins.module_utils.nap.probe_engine import TARGET_SPEC


def argument_spec():
    return dict(
        targets=dict(type="list", elements="dict", required=True, options=TARGET_SPEC),
        timeout=dict(type="raw", default="auto"),
        max_timeout=dict(type="float", default=3.0),
        concurrency=dict(type="int", default=64),
        deadline=dict(type="float"),
        source_address=dict(type="str"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.fail_json(msg="configmgr.nap.win_nap_port_probe runs as an action plugin on the controller; "
                         "it cannot run on a host")


if __name__ == "__main__":
    main()
