package netflow

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	gfnetflow "github.com/netsampler/goflow2/v2/decoders/netflow"

	"flowlog/internal/flow"
)

// benchPackets returns full (1400-byte) export packets of mixed IPv4/IPv6
// records, the first carrying the templates, and the number of data
// records in the others.
func benchPackets(b *testing.B, version int) ([][]byte, int) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	pkts := exportPackets(b, version, sampleRecords(2000, base), Clock{BootMs: base - 1000, ExportMs: base + 60_000})
	n := 0
	s := NewSession(SessionConfig{})
	s.Decode(pkts[0], time.Now(), nil)
	for _, p := range pkts[1:] {
		recs, _, _ := s.Decode(p, time.Now(), nil)
		n += len(recs)
	}
	return pkts, n
}

// BenchmarkDecode measures our v9/IPFIX decoding on one core; each op is
// one pass over the data packets.
func BenchmarkDecode(b *testing.B) {
	for _, v := range []int{V9, IPFIX} {
		b.Run(fmt.Sprint("v", v), func(b *testing.B) {
			pkts, n := benchPackets(b, v)
			s := NewSession(SessionConfig{})
			now := time.Now()
			s.Decode(pkts[0], now, nil)
			out := make([]flow.Record, 0, 64)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, p := range pkts[1:] {
					out, _, _ = s.Decode(p, now, out[:0])
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkGoflow2Decode is the peer: goflow2 v2.2.6's decoder on the same
// packets (it stops at raw field values; ours goes on to flow.Records).
func BenchmarkGoflow2Decode(b *testing.B) {
	for _, v := range []int{V9, IPFIX} {
		b.Run(fmt.Sprint("v", v), func(b *testing.B) {
			pkts, n := benchPackets(b, v)
			ts := gfnetflow.CreateTemplateSystem()
			var v9 gfnetflow.NFv9Packet
			var ipfix gfnetflow.IPFIXPacket
			gfnetflow.DecodeMessageVersion(bytes.NewBuffer(pkts[0]), ts, &v9, &ipfix)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, p := range pkts[1:] {
					if err := gfnetflow.DecodeMessageVersion(bytes.NewBuffer(p), ts, &v9, &ipfix); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkEncode measures building 1400-byte messages of records.
func BenchmarkEncode(b *testing.B) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	recs := sampleRecords(2000, base)
	clock := Clock{BootMs: base - 1000, ExportMs: base + 60_000}
	for _, v := range []int{V5, V9, IPFIX} {
		b.Run(fmt.Sprint("v", v), func(b *testing.B) {
			var v4 []flow.Record
			for _, r := range recs {
				if r.SrcAddr.Is4() {
					v4 = append(v4, r)
				}
			}
			buf := make([]byte, 0, 1500)
			bl, _ := NewBuilder(max(v, V9))
			b.ResetTimer()
			n := 0
			for i := 0; i < b.N; i++ {
				if v == V5 {
					for j := 0; j+V5MaxRecords <= len(v4); j += V5MaxRecords {
						buf, _ = AppendV5(buf[:0], V5Header{Clock: clock}, v4[j:j+V5MaxRecords])
						n += V5MaxRecords
					}
					continue
				}
				bl.Reset(buf, clock)
				for j := range recs {
					r := &recs[j]
					if bl.Len()+bl.RecordSize(r) > 1400 {
						buf = bl.Finish(MessageHeader{})
						bl.Reset(buf, clock)
					}
					bl.AppendRecord(r)
				}
				buf = bl.Finish(MessageHeader{})
				n += len(recs)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
