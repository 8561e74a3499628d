package netflow

import (
	"net/netip"
	"testing"
	"time"

	"flowlog/internal/flow"
)

// sampleRecords returns IPv4 and IPv6 records with every exported field set.
func sampleRecords(n int, base int64) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		r := &recs[i]
		if i%3 == 2 {
			r.SrcAddr = netip.MustParseAddr("2001:db8::1")
			r.DstAddr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			r.IPVersion = 6
		} else {
			r.SrcAddr = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			r.DstAddr = netip.MustParseAddr("192.0.2.7")
			r.IPVersion = 4
		}
		r.SrcPort, r.DstPort = uint16(1000+i), 443
		r.Protocol = 6
		if i%5 == 4 {
			r.Protocol, r.SrcPort, r.DstPort = 1, 0, 0
			if r.IPVersion == 6 {
				r.Protocol = 58
			}
			r.ICMPType, r.ICMPCode = 8, 0
		}
		r.Packets = uint64(i + 1)
		r.Bytes = uint64(40*(i+1) + i)
		r.Start = base + int64(i)*10
		r.End = base + int64(i)*10 + 5000
		r.TCPFlags = 0x1b
		r.TOS = 0x10
		r.InputIfIndex, r.OutputIfIndex = 3, 7
		r.VLANID = uint16(i % 4000)
		r.FlowDirection = flow.Ingress
		r.EndReason = flow.EndIdle
	}
	return recs
}

func TestBuilderRoundTrip(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	clock := Clock{BootMs: base - 3_600_000, ExportMs: base + 60_000}
	for _, v := range []int{V9, IPFIX} {
		recs := sampleRecords(20, base)
		b, err := NewBuilder(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Reset(nil, clock)
		b.AppendTemplates(true)
		b.AppendSampling(42, 100)
		for i := range recs {
			if err := b.AppendRecord(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		pkt := b.Finish(MessageHeader{Sequence: 1, Domain: 42})
		s := NewSession(SessionConfig{})
		got, res, err := s.Decode(pkt, time.UnixMilli(clock.ExportMs), nil)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if res.Records != len(recs) || len(got) != len(recs) || res.Domain != 42 {
			t.Fatalf("v%d: %d records (%+v), want %d", v, len(got), res, len(recs))
		}
		for i := range recs {
			want := recs[i]
			want.SamplingInterval = 100
			if got[i] != want {
				t.Errorf("v%d record %d:\n got %+v\nwant %+v", v, i, got[i], want)
			}
		}
	}
}

func TestV5RoundTripAndWrap(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	recs := sampleRecords(30, base)
	var v4 []flow.Record
	for _, r := range recs {
		if r.SrcAddr.Is4() {
			r.VLANID, r.FlowDirection, r.EndReason = 0, 0, 0
			r.TCPFlags &= 0xff
			if r.Protocol == 1 {
				r.DstPort = uint16(r.ICMPType)<<8 | uint16(r.ICMPCode)
			}
			v4 = append(v4, r)
		}
	}
	// The uptime counter wraps between the flows' start and the export.
	clock := Clock{BootMs: base - (1<<32 - 2000), ExportMs: base + 60_000}
	pkt, err := AppendV5(nil, V5Header{Clock: clock, Sequence: 7}, v4)
	if err != nil {
		t.Fatal(err)
	}
	got, res, err := NewSession(SessionConfig{}).Decode(pkt, time.Now(), nil)
	if err != nil || res.Records != len(v4) {
		t.Fatalf("%v %+v", err, res)
	}
	for i := range v4 {
		if got[i] != v4[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], v4[i])
		}
	}
}

// TestSequenceSemantics: v5 counts flows, v9 packets, IPFIX data records
// (options data included); a missing packet shows as that many lost.
func TestSequenceSemantics(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	clock := Clock{BootMs: base - 1000, ExportMs: base + 5000}
	recs := sampleRecords(10, base)
	var v4 []flow.Record
	for _, r := range recs {
		if r.SrcAddr.Is4() {
			v4 = append(v4, r)
		}
	}
	ipfix := func(seq uint32, withOptions bool) []byte {
		b, _ := NewBuilder(IPFIX)
		b.Reset(nil, clock)
		b.AppendTemplates(withOptions)
		if withOptions {
			b.AppendSampling(1, 10)
		}
		for i := range recs {
			b.AppendRecord(&recs[i])
		}
		return b.Finish(MessageHeader{Sequence: seq, Domain: 1})
	}
	v9 := func(seq uint32) []byte {
		b, _ := NewBuilder(V9)
		b.Reset(nil, clock)
		b.AppendTemplates(false)
		b.AppendRecord(&recs[0])
		return b.Finish(MessageHeader{Sequence: seq, Domain: 1})
	}
	v5 := func(seq uint32) []byte {
		p, _ := AppendV5(nil, V5Header{Clock: clock, Sequence: seq}, v4)
		return p
	}
	n := uint32(len(v4))
	cases := []struct {
		name string
		pkts [][]byte
		lost uint64
	}{
		{"ipfix in order, options counted", [][]byte{ipfix(0, true), ipfix(11, false), ipfix(21, false)}, 0},
		{"ipfix one message lost", [][]byte{ipfix(0, false), ipfix(10, false), ipfix(30, false)}, 10},
		{"v9 two packets lost", [][]byte{v9(5), v9(6), v9(9)}, 2},
		{"v5 one packet lost", [][]byte{v5(0), v5(n), v5(3 * n)}, uint64(n)},
		{"v9 reordering: the gap counts, the late packet does not", [][]byte{v9(5), v9(7), v9(6)}, 1},
	}
	for _, c := range cases {
		s := NewSession(SessionConfig{})
		var lost uint64
		for _, p := range c.pkts {
			_, res, err := s.Decode(p, time.Now(), nil)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			lost += res.Lost
		}
		if lost != c.lost {
			t.Errorf("%s: lost %d, want %d", c.name, lost, c.lost)
		}
	}
}
