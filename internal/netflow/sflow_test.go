package netflow

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	gfsflow "github.com/netsampler/goflow2/v2/decoders/sflow"

	"flowlog/internal/flow"
)

// xdrBuf builds sFlow datagrams for tests.
type xdrBuf struct{ b []byte }

func (x *xdrBuf) u32(vs ...uint32) *xdrBuf {
	for _, v := range vs {
		x.b = binary.BigEndian.AppendUint32(x.b, v)
	}
	return x
}

func (x *xdrBuf) opaque(p []byte) *xdrBuf {
	x.b = append(x.b, p...)
	for len(x.b)%4 != 0 {
		x.b = append(x.b, 0)
	}
	return x
}

// tagged appends tag, length and body.
func (x *xdrBuf) tagged(tag uint32, body []byte) *xdrBuf {
	return x.u32(tag, uint32(len(body))).opaque(body)
}

// frames used in samples: Ethernet + 802.1Q + IPv4 + TCP, and Ethernet +
// IPv6 + UDP, with the values the test expects written in by hand.
func tcpFrame() []byte {
	f := []byte{
		2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00, // eth, vlan 100
		0x45, 0x10, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0, // IPv4 len 1500, TOS 0x10, TCP
		10, 0, 0, 1, 10, 0, 0, 2,
		0x30, 0x39, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, // 12345 → 443, PSH|ACK
	}
	return f
}

func udp6Frame() []byte {
	f := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd,
		0x60, 0, 0, 0, 0, 0x30, 17, 64} // payload 48, UDP
	f = append(f, netip.MustParseAddr("2001:db8::1").AsSlice()...)
	f = append(f, netip.MustParseAddr("2001:db8::2").AsSlice()...)
	return append(f, 0x13, 0x88, 0x00, 0x35, 0, 0x30, 0, 0) // 5000 → 53
}

// sflowDatagram has a flow sample, an expanded flow sample and a counter
// sample.
func sflowDatagram() []byte {
	raw := func(frame []byte) []byte {
		var r xdrBuf
		r.u32(1, uint32(len(frame))+4, 4, uint32(len(frame))).opaque(frame)
		return r.b
	}
	var fs xdrBuf // flow sample: seq, source, rate, pool, drops, in, out, n
	fs.u32(1, 3, 512, 1000, 0, 7, 9, 1).tagged(1, raw(tcpFrame()))
	var efs xdrBuf // expanded: seq, src type, src index, rate, pool, drops, in fmt, in, out fmt, out, n
	efs.u32(2, 0, 3, 2048, 5000, 0, 0, 70000, 0, 80000, 1).tagged(1, raw(udp6Frame()))
	var cs xdrBuf
	cs.u32(1, 3, 0)
	var d xdrBuf
	d.u32(5, 1).opaque([]byte{192, 0, 2, 77}).u32(0, 42, 123456, 3)
	d.tagged(1, fs.b).tagged(3, efs.b).tagged(2, cs.b)
	return d.b
}

func sflowSeeds() [][]byte {
	d := sflowDatagram()
	return [][]byte{d, d[:60], {0, 0, 0, 5}}
}

// TestSFlowDecode: flow samples become records of what was counted (one
// packet, its IP length) carrying their rate, with the 5-tuple of the
// sampled frame (the collector scales them); counter samples are counted; goflow2's
// sFlow decoder sees the same samples, rates and interfaces.
func TestSFlowDecode(t *testing.T) {
	d := sflowDatagram()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	recs, res, err := DecodeSFlow(d, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Agent != netip.MustParseAddr("192.0.2.77") || res.Sequence != 42 || res.FlowSamples != 2 || res.CounterSamples != 1 || len(recs) != 2 {
		t.Fatalf("result %+v, %d records", res, len(recs))
	}
	ms := now.UnixMilli()
	want := []flow.Record{
		{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"), SrcPort: 12345, DstPort: 443,
			Protocol: 6, Packets: 1, Bytes: 1500, Start: ms, End: ms, TCPFlags: 0x18, IPVersion: 4, VLANID: 100,
			TOS: 0x10, SamplingInterval: 512, InputIfIndex: 7, OutputIfIndex: 9},
		{SrcAddr: netip.MustParseAddr("2001:db8::1"), DstAddr: netip.MustParseAddr("2001:db8::2"), SrcPort: 5000, DstPort: 53,
			Protocol: 17, Packets: 1, Bytes: 88, Start: ms, End: ms, IPVersion: 6,
			SamplingInterval: 2048, InputIfIndex: 70000, OutputIfIndex: 80000},
	}
	for i := range want {
		if recs[i] != want[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, recs[i], want[i])
		}
	}

	var p gfsflow.Packet
	if err := gfsflow.DecodeMessageVersion(bytes.NewBuffer(d), &p); err != nil {
		t.Fatalf("goflow2: %v", err)
	}
	if len(p.Samples) != 3 {
		t.Fatalf("goflow2 sees %d samples", len(p.Samples))
	}
	fs, ok1 := p.Samples[0].(gfsflow.FlowSample)
	efs, ok2 := p.Samples[1].(gfsflow.ExpandedFlowSample)
	if !ok1 || !ok2 || fs.SamplingRate != recs[0].SamplingInterval || fs.Input != recs[0].InputIfIndex ||
		efs.SamplingRate != recs[1].SamplingInterval || efs.InputIfValue != recs[1].InputIfIndex || efs.OutputIfValue != recs[1].OutputIfIndex {
		t.Fatalf("goflow2 samples differ: %+v %+v", p.Samples[0], p.Samples[1])
	}
}

// TestSFlowErrors: truncations and bad versions are errors, not panics.
func TestSFlowErrors(t *testing.T) {
	d := sflowDatagram()
	for n := 0; n < len(d); n += 7 {
		if _, _, err := DecodeSFlow(d[:n], time.Now(), nil); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	bad := append([]byte(nil), d...)
	bad[3] = 4
	if _, _, err := DecodeSFlow(bad, time.Now(), nil); err == nil {
		t.Error("sFlow v4 accepted")
	}
}
