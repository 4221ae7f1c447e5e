#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nap_port_probe
short_description: Probe many TCP and UDP destinations at once, protocol-aware, and check expectations
version_added: 0.1.0
description:
  - Probes every target from the host the task runs on (the vantage point) and reports, per target,
    whether the path and the service are C(open), C(closed), C(filtered), C(open|filtered), C(unexpected) or C(error).
  - "TCP: C(open) after a completed handshake, C(closed) on a reset, C(filtered) when nothing answers within the
    timeout or an ICMP error (host unreachable, administratively prohibited) comes back. The connection is closed with a
    reset right away; no application data is sent."
  - "Plain UDP: an ICMP port unreachable means C(closed), silence means C(open|filtered) (a service that ignores
    an empty datagram and a firewall that drops it look the same), any datagram back means C(open)."
  - "Protocol-aware UDP: the probe sends a real request and C(open) means the service answered it correctly:
    DHCP (DISCOVER or INFORM, as a client from UDP 68 or as a relay agent from UDP 67 with giaddr set; an OFFER,
    ACK or NAK with our xid), RADIUS (Status-Server per RFC 5997 or an Access-Request, with Message-Authenticator;
    the reply must pass the Response Authenticator and Message-Authenticator checks with the shared secret),
    IKE (an IKEv1 Main Mode proposal and an IKEv2 IKE_SA_INIT; any ISAKMP reply carrying our initiator cookie or SPI,
    as Windows Server 2008 speaks IKEv1 and AuthIP), DNS (a non-recursive SOA query), CLDAP (an LDAP rootDSE
    search over UDP 389, as the AD DC locator uses it), NTP (a client request) and Kerberos (an AS-REQ for krbtgt
    without pre-authentication over UDP, or over TCP behind its 4-byte length; a KDC answers it with a KRB-ERROR)."
  - "A datagram from the target port that is not a valid answer (an echo, another protocol, a RADIUS reply that
    fails authentication because the shared secret differs) is C(unexpected)."
  - All probes of one task run concurrently in one event loop (up to O(concurrency) sockets at once), so the task
    takes about as long as the longest wait, not the sum of them.
  - With O(timeout=auto) the wait for silent targets is derived from the round-trip times measured on the targets that
    answer (smoothed RTT plus four times its variation, as nmap and TCP do), between O(min_timeout) and O(max_timeout),
    so a scan of a LAN or lab finishes in a fraction of a second.
  - Each target may carry an expectation (O(targets[].expect)); the task fails when any expectation is broken or a
    probe could not be made, and its message lists every broken one. Input errors (no targets, port 0, an unknown
    protocol or kind, a RADIUS probe without a secret, a name that does not resolve) fail the task before anything
    is sent.
author:
  - configmgr.nap maintainers (@configmgr-nap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  targets:
    description:
      - The destinations to probe.
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
          - C(dhcp) probes as a client on the server's segment (source port 68, needs root); C(dhcp_relay) as a relay
            agent (source port 67 with giaddr set to the vantage's address, needs root).
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
      - Seconds to wait for an answer, or C(auto) to derive the wait from measured round-trip times (see above).
        Before any answer arrives, C(auto) waits up to O(max_timeout).
      - Protocol-aware probes get a service allowance on top of the measured round trip in C(auto) mode
        (DNS, CLDAP, IKE 0.3 s; NTP 0.1 s; Kerberos, RADIUS, DHCP 0.5 s), still capped at O(max_timeout).
    type: raw
    default: auto
  max_timeout:
    description:
      - Upper bound of the wait in C(auto) mode.
    type: float
    default: 3.0
  min_timeout:
    description:
      - Lower bound of the wait in C(auto) mode.
    type: float
    default: 0.05
  concurrency:
    description:
      - How many probes may be in flight at once.
      - The sockets they hold (two for a DHCP probe, one for the others) are also kept under the open-files limit
        (C(ulimit -n)) less the descriptors the task already holds and some headroom; at a low limit the probes take
        turns and finish later, they do not fail for lack of file descriptors.
    type: int
    default: 256
  deadline:
    description:
      - Hard limit in seconds for the whole task; probes still running or waiting then are reported as C(error).
      - By default the longest wait times the number of turns the probes take plus one, plus 5 seconds. A turn is a
        batch bounded by O(concurrency) and by the sockets the open-files limit allows; DHCP probes of one server run
        one after the other.
    type: float
  source_address:
    description:
      - Local address to send from, on a multi-homed vantage host.
    type: str
attributes:
  check_mode:
    support: full
    details: Probes only send requests and read answers, they change nothing, so they run in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Linux, with the host's Python 3.8 or later; DHCP probes need root to bind UDP 67 or 68.
notes:
  - Run the task on the vantage host whose view you want, for example the source host of a flow, or a host in the
    source zone (C(delegate_to)). In the project's lab each vantage is a network namespace.
  - A DHCP DISCOVER makes a server offer (and briefly reserve) an address; prefer O(targets[].dhcp_message=inform)
    where the server answers INFORM.
  - Every probe goes only to the given targets; DNS queries ask for no recursion.
seealso:
  - name: UDP scan (Nmap Network Scanning)
    description: Why a silent UDP port reads open|filtered, as a plain udp probe does (every outcome, the UDP
      semantics, timeout auto and vantage points are in docs/verify.md in the collection).
    link: https://nmap.org/book/scan-methods-udp-scan.html
"""

EXAMPLES = r"""
- name: The seed's flows from the site server, with LDAPS chosen
  configmgr.nap.nap_port_probe:
    targets:
      - {name: NAP-AD-WRITE, host: 192.0.2.10, port: 636, expect: open}
      - {name: NAP-AD-WRITE unchosen LDAP, host: 192.0.2.10, port: 389, expect: blocked}
      - {name: NAP-SHV-INSTALL, host: 192.0.2.20, port: 445, expect: open}
      - {name: AD-CLDAP, host: 192.0.2.10, port: 389, protocol: udp, expect: open}
      - {name: AD-DNS, host: 192.0.2.10, port: 53, kind: dns, expect: open}

- name: RADIUS from an 802.1X switch's subnet (the vantage is a registered RADIUS client)
  configmgr.nap.nap_port_probe:
    targets:
      - name: 8021X-RADIUS
        host: 192.0.2.20
        port: 1812
        kind: radius
        secret: "{{ nap_radius_secret }}"
        expect: open
      - name: 8021X-RADIUS accounting
        host: 192.0.2.20
        port: 1813
        kind: radius
        secret: "{{ nap_radius_secret }}"
        expect: open

- name: DHCP relay path and IPsec negotiation, fixed one-second timeout
  configmgr.nap.nap_port_probe:
    timeout: 1
    targets:
      - {name: DHCP-RELAY, host: 198.51.100.5, port: 67, kind: dhcp_relay, dhcp_message: inform, expect: open}
      - {name: IPSEC-IKE, host: 198.51.100.7, port: 500, kind: ike, expect: open}
      - {name: IPSEC-IKE NAT-T, host: 198.51.100.7, port: 4500, kind: ike, expect: open}
  register: probes

- name: Show what did not answer
  ansible.builtin.debug:
    msg: "{{ probes.results | rejectattr('state', 'equalto', 'open') | map(attribute='name') | list }}"
"""

RETURN = r"""
results:
  description: One entry per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The target's label (null when none was given).
      type: str
    host:
      description: The host as given.
      type: str
    address:
      description: The address probed.
      type: str
    protocol:
      description: tcp or udp.
      type: str
    port:
      description: Destination port.
      type: int
    kind:
      description: The probe that ran (C(auto) resolved).
      type: str
    state:
      description: open, closed, filtered, open|filtered, unexpected or error.
      type: str
    time_ms:
      description: Milliseconds until the answer, or waited before giving up.
      type: float
    detail:
      description: What was seen, for example C(RADIUS Access-Accept, authenticated with the shared secret).
      type: str
    answer:
      description: Parsed fields of the answer (DHCP offer address and server, RADIUS code, IKE notifies, DNS rcode, ...).
      type: dict
    expected:
      description: The expectation (null when none).
      type: str
    ok:
      description: Whether the expectation held (always false for C(error)).
      type: bool
  sample:
    - name: NAP-AD-WRITE
      host: 192.0.2.10
      address: 192.0.2.10
      protocol: tcp
      port: 636
      kind: tcp
      state: open
      time_ms: 0.41
      detail: TCP handshake completed
      answer: {}
      expected: open
      ok: true
summary:
  description: Counts of targets, targets whose expectation held or broke, and targets per state.
  returned: always
  type: dict
  sample:
    total: 5
    ok: 4
    failed: 1
    states: {open: 3, closed: 0, filtered: 1, "open|filtered": 1, unexpected: 0, error: 0}
failures:
  description: One line per broken expectation or failed probe (also joined into C(msg)).
  returned: always
  type: list
  elements: str
elapsed:
  description: Wall time of all probes, in seconds.
  returned: always
  type: float
rtt:
  description: Round-trip estimate over all answers (samples, srtt_ms, rttvar_ms) that drove C(timeout=auto).
  returned: always
  type: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.configmgr.nap.plugins.module_utils.nap.probe_engine import TARGET_SPEC, ProbeError, probe_many


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type="list", elements="dict", required=True, options=TARGET_SPEC),
            timeout=dict(type="raw", default="auto"),
            max_timeout=dict(type="float", default=3.0),
            min_timeout=dict(type="float", default=0.05),
            concurrency=dict(type="int", default=256),
            deadline=dict(type="float"),
            source_address=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        results, summary, info, failures = probe_many(
            params["targets"], timeout=params["timeout"], max_timeout=params["max_timeout"],
            min_timeout=params["min_timeout"], concurrency=params["concurrency"], deadline=params["deadline"],
            source_address=params["source_address"])
    except ProbeError as exc:
        module.fail_json(msg="configmgr.nap.nap_port_probe: %s (nothing was sent)" % exc, results=[], failures=[])
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="configmgr.nap.nap_port_probe: probing failed: %s" % exc,
                         exception=traceback.format_exc())
    out = dict(changed=False, results=results, summary=summary, failures=failures, elapsed=info["elapsed"],
               rtt=info["rtt"])
    if failures:
        module.fail_json(msg="%d of %d probes broke their expectation: %s" % (
            len(failures), summary["total"], "; ".join(failures)), **out)
    module.exit_json(msg="%d probes, all as expected (%.2f s)" % (summary["total"], info["elapsed"]), **out)


if __name__ == "__main__":
    main()
