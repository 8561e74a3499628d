#!/usr/bin/env bash
# The test suite, as CI runs it: set-up, formatting and vet, every test with
# the real peers required (a missing peer fails instead of skipping), the
# race detector on the concurrent packages, and short fuzz runs.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
./scripts/setup.sh

# Bursts of UDP from the peers need room in socket buffers.
sysctl -qw net.core.rmem_max=33554432 net.core.rmem_default=4194304 2>/dev/null || true

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
# The console: type-check, lint, and rebuild from the lockfile; the
# embedded build must be what the sources give.
(cd web && npm ci --no-audit --no-fund && npm run typecheck && npm run lint && npm run build)
if [ -n "$(git status --porcelain -- internal/web/dist)" ]; then
  echo "internal/web/dist differs from a build of web/: run npm run build in web/ and commit it" >&2
  git status --porcelain -- internal/web/dist >&2
  exit 1
fi

go vet ./...
if ! go mod tidy -diff >/dev/null 2>&1; then
  echo "go.mod/go.sum are not tidy: run go mod tidy" >&2
  exit 1
fi

export FLOWLOG_REQUIRE_PEERS=1
go test -count=1 -timeout 20m ./...
go test -count=1 -race -timeout 20m ./internal/control/... ./internal/api/ ./internal/api/auth/ ./internal/api/front/ ./internal/ingest/ ./internal/capture/ \
  ./internal/meter/ ./internal/collect/ ./internal/export/ ./internal/store/duckdb/ ./internal/dataplane/ \
  ./internal/spool/ ./internal/api/console/ ./internal/agent/ ./internal/enrich/ ./internal/snmp/ \
  ./internal/awsformat/... ./internal/store/backend/

# Every decoder and parser of untrusted input gets a short fuzz run.
for target in ./internal/netflow:FuzzSessionDecode ./internal/netflow:FuzzSFlow \
    ./internal/netflow:FuzzSampledHeader ./internal/packet:FuzzDecode ./internal/capture:FuzzFile \
    ./internal/meter:FuzzFeed ./internal/store/query:FuzzFilter ./internal/spool:FuzzRecords; do
  pkg=${target%%:*} name=${target#*:}
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime 10s "$pkg"; then
    # A finding is written under testdata/fuzz and fails the run; the fuzz
    # engine giving up on a stalled machine ("context deadline exceeded")
    # gets one more try.
    if [ -n "$(git status --porcelain -- "$pkg/testdata/fuzz")" ]; then
      exit 1
    fi
    go test -run '^$' -fuzz "^${name}\$" -fuzztime 10s "$pkg"
  fi
done
