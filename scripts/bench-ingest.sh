#!/bin/sh
# End-to-end ingest benchmark: softflowd's IPFIX export of a 5M-packet
# capture, replayed paced to `flowlog serve` (exporter gateway → sls flow
# log → log store) and to nfcapd; prints a markdown table. Needs root (for
# the socket buffers), softflowd, nfcapd and nfdump. Flags go through, e.g.
#   scripts/bench-ingest.sh -rates 200000,500000 -duration 10s
# -agent runs the gateway on a `flowlog agent` writing to the same ClickHouse
# as serve (give -store clickhouse://…) and measures the agent.
# See `go run ./bench/ingest -h`.
set -eu
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
exec go run ./bench/ingest "$@"
