package netflow

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/testutil"
)

// seedPackets returns the vendor corpus and our own exports.
func seedPackets(f *testing.F) [][]byte {
	var seeds [][]byte
	// Without the corpora (a user's clone) the fuzzer starts from our own
	// exports only; CI has them.
	shared, ok := testutil.FoundSharedDir()
	if !ok && os.Getenv("CI") == "true" {
		f.Fatalf("the test corpora are required in CI but not found at %s", shared)
	}
	files, _ := filepath.Glob(filepath.Join(shared, "testdata", "netflow-vendors", "*.dat"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			seeds = append(seeds, b)
		}
	}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	clock := Clock{BootMs: base - 1000, ExportMs: base + 5000}
	for _, v := range []int{V9, IPFIX} {
		seeds = append(seeds, exportPackets(f, v, sampleRecords(40, base), clock)...)
	}
	v4 := sampleRecords(2, base)
	if p, err := AppendV5(nil, V5Header{Clock: clock}, v4); err == nil {
		seeds = append(seeds, p)
	}
	return seeds
}

// FuzzSessionDecode feeds arbitrary packets to a session that already
// knows templates from the corpus: no panic, and its state stays within
// its limits.
func FuzzSessionDecode(f *testing.F) {
	seeds := seedPackets(f)
	for _, s := range seeds {
		f.Add(s)
	}
	cfg := SessionConfig{MaxTemplates: 64, MaxDomains: 8, MaxPendingBytes: 4096}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s := NewSession(cfg)
		for _, p := range seeds[:min(len(seeds), 8)] {
			s.Decode(p, now, nil)
		}
		held := s.pendingBytes
		recs, res, _ := s.Decode(pkt, now, nil)
		if res.Records != len(recs) {
			t.Fatalf("%d records counted, %d returned", res.Records, len(recs))
		}
		// Every record takes at least a byte of this packet or of a held set.
		if len(recs) > len(pkt)+held {
			t.Fatalf("%d records from %d bytes", len(recs), len(pkt)+held)
		}
		if s.templates > cfg.MaxTemplates || len(s.domains) > cfg.MaxDomains || s.pendingBytes > cfg.MaxPendingBytes {
			t.Fatalf("state over limits: %d templates, %d domains, %d pending bytes", s.templates, len(s.domains), s.pendingBytes)
		}
	})
}

// FuzzSFlow feeds arbitrary datagrams to the sFlow decoder.
func FuzzSFlow(f *testing.F) {
	for _, s := range sflowSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		recs, res, _ := DecodeSFlow(pkt, time.Unix(0, 0), nil)
		if len(recs) > res.FlowSamples {
			t.Fatalf("%d records from %d flow samples", len(recs), res.FlowSamples)
		}
	})
}

// FuzzSampledHeader feeds arbitrary frames to the sampled-header decoder.
func FuzzSampledHeader(f *testing.F) {
	f.Add(uint32(hdrEthernet), tcpFrame())
	f.Add(uint32(hdrEthernet), udp6Frame())
	f.Add(uint32(hdrIPv4), tcpFrame()[18:])
	f.Fuzz(func(t *testing.T, proto uint32, b []byte) {
		var r flow.Record
		if _, err := decodeSampledHeader(proto, b, &r); err == nil && !r.SrcAddr.IsValid() {
			t.Fatal("accepted a frame without addresses")
		}
	})
}
