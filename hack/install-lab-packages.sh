#!/usr/bin/env bash
# Install the Debian packages the project needs: nftables and iproute2 (Linux
# side and lab), shellcheck (sanity), and the daemons the lab runs inside its
# namespaces (Samba AD DC, FreeRADIUS, nginx, dnsmasq, strongSwan charon), and the benchmarks' anchors
# (iptables, nmap; used inside bench namespaces only), and headless Chromium with fonts (chromium,
# fonts-dejavu-core: the unit test that renders verify.html opens it from file://, no network),
# without starting anything in the host's own namespace: during the install a
# policy-rc.d that refuses every start is in place (and removed afterwards if
# this script created it). Only packages that are missing are installed.
set -euo pipefail

PACKAGES=(nftables iproute2 shellcheck samba samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind freeradius freeradius-utils
          nginx-light dnsmasq-base strongswan-charon strongswan-swanctl ldap-utils iptables nmap
          chromium fonts-dejavu-core)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "==> apt: all installed"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "==> apt: NOT root, cannot install: ${missing[*]}" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
created=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# configmgr.nap: refuse service starts while lab packages install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created=1
fi
cleanup() { if ((created)); then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "==> apt: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "==> apt: done"
