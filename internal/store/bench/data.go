// Package bench holds the log store benchmarks (go test -bench): DuckDB
// ingest and top-N query, with ClickHouse and nfdump/nfcapd answering the
// same question over the same flows as peers.
package bench

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"flowlog/internal/flow"
)

// Start is the beginning of the benchmark hour.
var Start = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

// Chunk generates chunk i of the data set: n IPv4 flows ending within the
// hour after Start, identical for every backend. Counters fit NetFlow v5's
// 32 bits. Sources follow a skewed distribution over 65536 addresses so
// the top 10 is well defined.
func Chunk(i, n int) []flow.Record {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	zipf := rand.NewZipf(rng, 1.2, 4, 65535)
	recs := make([]flow.Record, n)
	for j := range recs {
		r := &recs[j]
		src := uint32(zipf.Uint64())
		r.Version, r.IPVersion = flow.RecordVersion, 4
		r.AccountID, r.FlowLogID, r.GatewayID, r.InterfaceID = "bench", "fl-bench", "gw-1", "eth0"
		r.SrcAddr = netip.AddrFrom4([4]byte{10, byte(src >> 16), byte(src >> 8), byte(src)})
		r.DstAddr = netip.AddrFrom4([4]byte{192, 168, byte(rng.IntN(256)), byte(rng.IntN(256))})
		r.SrcPort, r.DstPort = uint16(1024+rng.IntN(60000)), []uint16{53, 80, 443, 8080}[rng.IntN(4)]
		r.Protocol = []uint8{6, 17}[rng.IntN(2)]
		r.Packets = uint64(1 + rng.IntN(100))
		r.Bytes = r.Packets * uint64(40+rng.IntN(1400))
		r.End = Start.UnixMilli() + rng.Int64N(3600_000)
		r.Start = max(Start.UnixMilli(), r.End-rng.Int64N(30000))
		r.Action, r.LogStatus = flow.ActionAccept, flow.StatusOK
		r.TCPFlags = uint16(rng.IntN(64))
		r.FlowDirection = flow.Ingress
		r.EndReason = flow.EndIdle
	}
	return recs
}
