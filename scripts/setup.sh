#!/usr/bin/env bash
# Installs what flowlog needs to build and test on a fresh Debian machine:
# Go modules, the real peers the tests compare against, Node.js for the
# console's build, and Chromium for its browser tests. Run as root.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."

peers=(tshark nfdump softflowd pmacct tcpreplay clickhouse-server iproute2 iputils-ping jq
       netcat-openbsd tcpdump curl gcc chromium
       zookeeper default-jre-headless # ZooKeeper of the ClickHouse cluster tests
       snmpd snmp) # the SNMP agent the interface poller is tested against, and its client tools
# Node.js from Debian (18, with npm 9) unless the machine has one already,
# e.g. NodeSource's 20, whose package bundles npm: installing Debian's npm
# beside it would replace it.
command -v node >/dev/null && command -v npm >/dev/null || peers+=(nodejs npm)
missing=()
for p in "${peers[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go mod download
