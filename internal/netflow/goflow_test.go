package netflow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	gfnetflow "github.com/netsampler/goflow2/v2/decoders/netflow"
	gflegacy "github.com/netsampler/goflow2/v2/decoders/netflowlegacy"

	"flowlog/internal/flow"
)

// exportPackets encodes recs into messages of at most 1400 bytes, the
// first with templates and sampling options (rate 50).
func exportPackets(t testing.TB, version int, recs []flow.Record, clock Clock) [][]byte {
	t.Helper()
	b, err := NewBuilder(version)
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	seq := uint32(0)
	for i := 0; i < len(recs); {
		b.Reset(nil, clock)
		if len(pkts) == 0 {
			b.AppendTemplates(true)
			b.AppendSampling(9, 50)
		}
		for i < len(recs) && b.Len()+b.RecordSize(&recs[i]) <= 1400 {
			if err := b.AppendRecord(&recs[i]); err != nil {
				t.Fatal(err)
			}
			i++
		}
		n := b.Records()
		pkts = append(pkts, append([]byte(nil), b.Finish(MessageHeader{Sequence: seq, Domain: 9})...))
		if version == V9 {
			seq++
		} else {
			seq += uint32(n)
		}
	}
	return pkts
}

// gfRecord renders a goflow2 data record in the form gotRecord uses.
func gfRecord(t *testing.T, fields []gfnetflow.DataField, bootMs int64) string {
	v := map[uint16][]byte{}
	for _, f := range fields {
		b, ok := f.Value.([]byte)
		if !ok {
			t.Fatalf("goflow2 field %d value %T", f.Type, f.Value)
		}
		v[f.Type] = b
	}
	u := func(id uint16) uint64 { return beUint(v[id]) }
	src, dst := v[8], v[12]
	if src == nil {
		src, dst = v[27], v[28]
	}
	sa, _ := netip.AddrFromSlice(src)
	da, _ := netip.AddrFromSlice(dst)
	start, end := int64(u(152)), int64(u(153))
	if _, ok := v[22]; ok {
		start, end = bootMs+int64(u(22)), bootMs+int64(u(21))
	}
	icmp := u(32)
	if _, ok := v[139]; ok {
		icmp = u(139)
	}
	return fmt.Sprintf("%v>%v %d>%d p%d b=%d n=%d t=%d-%d if=%d/%d tos=%d fl=%d vlan=%d icmp=%d dir=%d end=%d",
		sa, da, u(7), u(11), u(4), u(1), u(2), start, end, u(10), u(14), u(5), u(6), u(58), icmp, u(61), u(136))
}

func ourRecord(r *flow.Record, version int) string {
	flags := r.TCPFlags
	if version == V9 {
		flags &= 0xff
	}
	return fmt.Sprintf("%v>%v %d>%d p%d b=%d n=%d t=%d-%d if=%d/%d tos=%d fl=%d vlan=%d icmp=%d dir=%d end=%d",
		r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Protocol, r.Bytes, r.Packets, r.Start, r.End,
		r.InputIfIndex, r.OutputIfIndex, r.TOS, flags, r.VLANID, uint16(r.ICMPType)<<8|uint16(r.ICMPCode),
		direction(r.FlowDirection), r.EndReason)
}

// TestGoflow2AgreesOnExport: goflow2's decoders read our v5, v9 and IPFIX
// exports to the records we encoded, including the sampling option; and
// our decoder reads the same packets to the same records.
func TestGoflow2AgreesOnExport(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	clock := Clock{BootMs: base - 86_400_000, ExportMs: base + 120_000}
	recs := sampleRecords(300, base)
	for _, version := range []int{V9, IPFIX} {
		t.Run(fmt.Sprint("v", version), func(t *testing.T) {
			pkts := exportPackets(t, version, recs, clock)
			ts := gfnetflow.CreateTemplateSystem()
			var got []string
			rate := uint64(0)
			for _, p := range pkts {
				var v9 gfnetflow.NFv9Packet
				var ipfix gfnetflow.IPFIXPacket
				if err := gfnetflow.DecodeMessageVersion(bytes.NewBuffer(p), ts, &v9, &ipfix); err != nil {
					t.Fatalf("goflow2: %v", err)
				}
				sets, bootMs := ipfix.FlowSets, int64(0)
				if version == V9 {
					sets = v9.FlowSets
					bootMs = int64(v9.UnixSeconds)*1000 - int64(v9.SystemUptime)
				}
				for _, s := range sets {
					switch s := s.(type) {
					case gfnetflow.DataFlowSet:
						for _, r := range s.Records {
							got = append(got, gfRecord(t, r.Values, bootMs))
						}
					case gfnetflow.OptionsDataFlowSet:
						for _, r := range s.Records {
							for _, f := range r.OptionsValues {
								if f.Type == ieSamplingInterval {
									rate = beUint(f.Value.([]byte))
								}
							}
						}
					}
				}
			}
			if rate != 50 {
				t.Errorf("goflow2 reads sampling interval %d, want 50", rate)
			}
			s := NewSession(SessionConfig{})
			var ours []flow.Record
			for _, p := range pkts {
				var err error
				if ours, _, err = s.Decode(p, time.Now(), ours); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(recs) || len(ours) != len(recs) {
				t.Fatalf("goflow2 %d records, ours %d, want %d", len(got), len(ours), len(recs))
			}
			for i := range recs {
				want := ourRecord(&recs[i], version)
				if got[i] != want {
					t.Errorf("goflow2 record %d:\n got %s\nwant %s", i, got[i], want)
				}
				if o := ourRecord(&ours[i], version); o != want || ours[i].SamplingInterval != 50 {
					t.Errorf("our record %d (rate %d):\n got %s\nwant %s", i, ours[i].SamplingInterval, o, want)
				}
			}
		})
	}
	t.Run("v5", func(t *testing.T) {
		var v4 []flow.Record
		for _, r := range recs {
			if r.SrcAddr.Is4() && len(v4) < V5MaxRecords {
				v4 = append(v4, r)
			}
		}
		pkt, err := AppendV5(nil, V5Header{Clock: clock, Sequence: 77, SamplingInterval: 1<<14 | 100}, v4)
		if err != nil {
			t.Fatal(err)
		}
		var p gflegacy.PacketNetFlowV5
		if err := gflegacy.DecodeMessageVersion(bytes.NewBuffer(pkt), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != len(v4) || p.FlowSequence != 77 || p.SamplingInterval&0x3FFF != 100 {
			t.Fatalf("goflow2: %d records, seq %d, sampling %#x", len(p.Records), p.FlowSequence, p.SamplingInterval)
		}
		bootMs := int64(p.UnixSecs)*1000 - int64(p.SysUptime)
		for i, g := range p.Records {
			r := &v4[i]
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], uint32(g.SrcAddr))
			gs := fmt.Sprintf("%v %d>%d p%d b=%d n=%d t=%d-%d if=%d/%d tos=%d", netip.AddrFrom4(a), g.SrcPort, g.DstPort,
				g.Proto, g.DOctets, g.DPkts, bootMs+int64(g.First), bootMs+int64(g.Last), g.Input, g.Output, g.Tos)
			ws := fmt.Sprintf("%v %d>%d p%d b=%d n=%d t=%d-%d if=%d/%d tos=%d", r.SrcAddr, r.SrcPort, v5DstPort(r),
				r.Protocol, r.Bytes, r.Packets, r.Start, r.End, r.InputIfIndex, r.OutputIfIndex, r.TOS)
			if gs != ws {
				t.Errorf("record %d:\n got %s\nwant %s", i, gs, ws)
			}
		}
	})
}
