#!/bin/sh
# Query benchmark: top 10 sources by bytes over an hour (10M records) and a
# day's series per minute (100M records), asked of a running `flowlog
# serve` through its query API, of ClickHouse 18.16 and of nfdump over
# nfcapd's files, over the same records (softflowd's IPFIX export of the
# 5M-packet capture, replayed). Prints a markdown table at the end.
# Needs nfcapd/nfdump and clickhouse-server; root if the recording must be
# made (softflowd). Sizes and runs, e.g. for a quick look:
#   FLOWLOG_BENCH_TOP_RECORDS=1000000 FLOWLOG_BENCH_SERIES_RECORDS=10000000 scripts/bench-query.sh
# It also times the console's 24 h Explore view (POST /v1/explore) of the
# day's records.
# Temporary files (about 25 GB at 100M) go to TMPDIR and are removed.
set -eu
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
exec go test ./internal/store/bench/ -run '^$' -bench 'ServeQuery' -benchtime 1x -timeout 3h -v "$@"
