#!/usr/bin/env bash
# Installs what flowlog needs to build and test on a fresh Debian machine:
# Go modules, and the real peers the tests compare against. Run as root.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."

peers=(tshark nfdump softflowd pmacct tcpreplay clickhouse-server iproute2 iputils-ping jq
       netcat-openbsd tcpdump curl gcc)
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
