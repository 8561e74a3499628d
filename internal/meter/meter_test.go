package meter_test

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"flowlog/internal/capture"
	"flowlog/internal/flow"
	"flowlog/internal/meter"
	"flowlog/internal/packet"
	"flowlog/internal/testutil"
)

// frame builds an Ethernet/IPv4 frame with gopacket (independently of the
// decoder under test). proto 6 takes TCP flags "S", "F", "R", "A".
func frame(t testing.TB, src, dst string, proto uint8, sport, dport uint16, flags string, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), Protocol: layers.IPProtocol(proto)}
	ls := []gopacket.SerializableLayer{eth, ip}
	switch proto {
	case 6:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Window: 1000}
		for _, c := range flags {
			switch c {
			case 'S':
				tcp.SYN = true
			case 'F':
				tcp.FIN = true
			case 'R':
				tcp.RST = true
			case 'A':
				tcp.ACK = true
			}
		}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, tcp)
	case 17:
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		udp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, udp)
	case 1:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8(sport), uint8(dport))})
	}
	ls = append(ls, gopacket.Payload(make([]byte, payload)))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type collector struct{ recs []flow.Record }

func (c *collector) emit(b []flow.Record) { c.recs = append(c.recs, b...) }

func newMeter(t testing.TB, cfg meter.Config) (*meter.Meter, *collector) {
	t.Helper()
	c := &collector{}
	m, err := meter.New(cfg, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

var t0 = time.Unix(1_700_000_000, 0)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestAging(t *testing.T) {
	udp := func(sport uint16) []byte { return frame(t, "10.0.0.1", "10.0.0.2", 17, sport, 53, "", 10) }
	type pkt struct {
		at    float64
		frame []byte
	}
	type rec struct {
		sport   uint16
		packets uint64
		start   float64
		end     float64
		reason  flow.EndReason
	}
	cases := []struct {
		name    string
		pkts    []pkt
		advance float64 // Advance to this time before Flush, if > 0
		want    []rec
	}{
		{"idle split", []pkt{{0, udp(1)}, {5, udp(1)}, {30, udp(1)}}, 0,
			[]rec{{1, 2, 0, 5, flow.EndIdle}, {1, 1, 30, 30, flow.EndForced}}},
		{"idle by advance", []pkt{{0, udp(1)}, {1, udp(1)}}, 20,
			[]rec{{1, 2, 0, 1, flow.EndIdle}}},
		{"active deltas", []pkt{{0, udp(1)}, {8, udp(1)}, {16, udp(1)}, {24, udp(1)}, {32, udp(1)}}, 0,
			[]rec{{1, 3, 0, 16, flow.EndActive}, {1, 2, 24, 32, flow.EndForced}}},
		{"other flow triggers sweep", []pkt{{0, udp(1)}, {3, udp(2)}, {12, udp(2)}, {21, udp(2)}}, 0,
			[]rec{{1, 1, 0, 0, flow.EndIdle}, {2, 3, 3, 21, flow.EndForced}}},
		{"fin ends flow", []pkt{{0, frame(t, "10.0.0.1", "10.0.0.2", 6, 7, 80, "S", 0)},
			{1, frame(t, "10.0.0.1", "10.0.0.2", 6, 7, 80, "A", 5)},
			{2, frame(t, "10.0.0.1", "10.0.0.2", 6, 7, 80, "FA", 0)},
			{3, frame(t, "10.0.0.1", "10.0.0.2", 6, 7, 80, "A", 0)}}, 0,
			[]rec{{7, 3, 0, 2, flow.EndOfFlow}, {7, 1, 3, 3, flow.EndForced}}},
		{"rst ends flow", []pkt{{0, frame(t, "10.0.0.1", "10.0.0.2", 6, 7, 80, "S", 0)},
			{1, frame(t, "10.0.0.1", "10.0.0.2", 6, 7, 80, "R", 0)}}, 0,
			[]rec{{7, 2, 0, 1, flow.EndOfFlow}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, col := newMeter(t, meter.Config{ActiveTimeout: 20 * time.Second, InactiveTimeout: 10 * time.Second})
			for _, p := range c.pkts {
				m.Feed(at(p.at), packet.LinkEthernet, p.frame)
			}
			if c.advance > 0 {
				m.Advance(at(c.advance))
			}
			m.Flush()
			if len(col.recs) != len(c.want) {
				t.Fatalf("got %d records, want %d: %+v", len(col.recs), len(c.want), col.recs)
			}
			for i, w := range c.want {
				r := col.recs[i]
				if r.SrcPort != w.sport || r.Packets != w.packets || r.Start != at(w.start).UnixMilli() ||
					r.End != at(w.end).UnixMilli() || r.EndReason != w.reason {
					t.Errorf("record %d: got port %d, %d packets, %d–%d, %v; want %+v", i, r.SrcPort, r.Packets,
						r.Start-t0.UnixMilli(), r.End-t0.UnixMilli(), r.EndReason, w)
				}
			}
		})
	}
}

func TestRecordFields(t *testing.T) {
	m, col := newMeter(t, meter.Config{})
	f := frame(t, "192.0.2.1", "198.51.100.7", 6, 40000, 443, "S", 20)
	m.Feed(at(0), packet.LinkEthernet, f)
	m.Feed(at(0.5), packet.LinkEthernet, frame(t, "192.0.2.1", "198.51.100.7", 6, 40000, 443, "A", 100))
	m.Feed(at(1), packet.LinkEthernet, frame(t, "192.0.2.1", "198.51.100.7", 1, 8, 0, "", 56))
	m.Flush()
	if len(col.recs) != 2 {
		t.Fatalf("%d records", len(col.recs))
	}
	tcp, icmp := col.recs[0], col.recs[1]
	if tcp.Protocol != 6 {
		tcp, icmp = icmp, tcp
	}
	want := flow.Record{Version: flow.RecordVersion, SrcAddr: netip.MustParseAddr("192.0.2.1"),
		DstAddr: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, DstPort: 443, Protocol: 6,
		Packets: 2, Bytes: 40 + 20 + 40 + 100, Start: t0.UnixMilli(), End: t0.UnixMilli() + 500,
		Action: "ACCEPT", LogStatus: "OK", TCPFlags: 0x12, IPVersion: 4, EndReason: flow.EndForced, SamplingInterval: 1}
	if tcp != want {
		t.Errorf("tcp record\n got %+v\nwant %+v", tcp, want)
	}
	if icmp.ICMPType != 8 || icmp.ICMPCode != 0 || icmp.Bytes != 20+8+56 || icmp.DstPort != 8<<8 {
		t.Errorf("icmp record %+v", icmp)
	}
}

func TestLackOfResources(t *testing.T) {
	m, col := newMeter(t, meter.Config{MaxFlows: 4})
	for i := range 10 {
		m.Feed(at(float64(i)*0.1), packet.LinkEthernet, frame(t, "10.0.0.1", "10.0.0.2", 17, uint16(1000+i), 53, "", 0))
	}
	st := m.Stats()
	if st.Evicted() != 6 || st.ActiveFlows != 4 {
		t.Fatalf("evicted %d, active %d; want 6 and 4", st.Evicted(), st.ActiveFlows)
	}
	m.Flush()
	var packets uint64
	for _, r := range col.recs {
		packets += r.Packets
	}
	if packets != 10 || len(col.recs) != 10 {
		t.Fatalf("%d records, %d packets; want 10 and 10", len(col.recs), packets)
	}
	for _, r := range col.recs[:6] {
		if r.EndReason != flow.EndLackOfResources {
			t.Errorf("first evictions: %v", r.EndReason)
		}
	}
}

func TestSetTimeoutsWhileRunning(t *testing.T) {
	m, col := newMeter(t, meter.Config{ActiveTimeout: time.Hour, InactiveTimeout: time.Hour})
	f := frame(t, "10.0.0.1", "10.0.0.2", 17, 1, 2, "", 0)
	m.Feed(at(0), packet.LinkEthernet, f)
	m.Feed(at(100), packet.LinkEthernet, f)
	if err := m.SetTimeouts(time.Hour, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	m.Feed(at(110), packet.LinkEthernet, f)
	if len(col.recs) != 0 {
		m.Flush()
	}
	m.Advance(at(200))
	if len(col.recs) != 2 || col.recs[0].Packets != 2 || col.recs[0].EndReason != flow.EndIdle ||
		col.recs[1].Packets != 1 || col.recs[1].EndReason != flow.EndIdle {
		t.Fatalf("records %+v", col.recs)
	}
	if err := m.SetTimeouts(0, time.Second); !errors.Is(err, meter.ErrConfig) {
		t.Fatalf("zero timeout: %v", err)
	}
}

// TestSampling: a 1:N meter picks one packet in N, and its records are
// estimates: each metered packet counts as N (and its bytes N times), with
// sampling_interval N.
func TestSampling(t *testing.T) {
	for _, random := range []bool{false, true} {
		m, col := newMeter(t, meter.Config{Sampling: 10, RandomSampling: random, Seed: 1})
		for i := range 10000 {
			m.Feed(at(float64(i)*0.001), packet.LinkEthernet, frame(t, "10.0.0.1", "10.0.0.2", 17, uint16(i%7), 2, "", 0))
		}
		m.Flush()
		var packets uint64
		for _, r := range col.recs {
			if r.SamplingInterval != 10 || r.Packets%10 != 0 || r.Bytes != r.Packets*28 { // 28: IPv4 + UDP headers, no payload
				t.Fatalf("record %+v: want sampling_interval 10 and counters scaled by it", r)
			}
			packets += r.Packets / 10
		}
		st := m.Stats()
		if packets+st.Sampled != 10000 {
			t.Fatalf("random=%v: %d metered + %d sampled out != 10000", random, packets, st.Sampled)
		}
		if !random && packets != 1000 {
			t.Fatalf("deterministic 1:10 metered %d of 10000", packets)
		}
		if random && (packets < 900 || packets > 1100) {
			t.Fatalf("random 1:10 metered %d of 10000", packets)
		}
	}
}

func TestDropCounters(t *testing.T) {
	m, col := newMeter(t, meter.Config{})
	good := frame(t, "10.0.0.1", "10.0.0.2", 17, 1, 2, "", 0)
	arp := append(append([]byte{}, good[:12]...), 0x08, 0x06, 0, 1, 8, 0, 6, 4)
	bad := append([]byte{}, good...)
	bad[14] = 0x43 // IHL 3
	m.Feed(at(0), packet.LinkEthernet, good)
	m.Feed(at(0), packet.LinkEthernet, good[:30])
	m.Feed(at(0), packet.LinkEthernet, arp)
	m.Feed(at(0), packet.LinkEthernet, bad)
	m.Feed(at(0), packet.LinkType(999), good)
	m.Flush()
	st := m.Stats()
	if st.Packets != 5 || st.Truncated != 1 || st.NonIP != 1 || st.Malformed != 1 || st.Unsupported != 1 {
		t.Fatalf("stats %+v", st)
	}
	if len(col.recs) != 1 || col.recs[0].Packets != 1 {
		t.Fatalf("records %+v", col.recs)
	}
}

func TestFeedAllocs(t *testing.T) {
	m, _ := newMeter(t, meter.Config{BatchSize: 64, InactiveTimeout: time.Second})
	frames := make([][]byte, 256)
	for i := range frames {
		frames[i] = frame(t, "10.0.0.1", "10.0.0.2", 17, uint16(i), 53, "", 10)
	}
	now := 0.0
	feed := func() {
		for _, f := range frames {
			now += 0.01
			m.Feed(at(now), packet.LinkEthernet, f)
		}
	}
	for range 20 { // warm up: table and batch at their working size
		feed()
	}
	if a := testing.AllocsPerRun(50, feed); a != 0 {
		t.Fatalf("%v allocations per %d packets", a, len(frames))
	}
	batch := make([]packet.Frame, len(frames))
	feedBatch := func() {
		for i, f := range frames {
			now += 0.01
			batch[i] = packet.Frame{TS: at(now).UnixNano(), Link: packet.LinkEthernet, Data: f}
		}
		m.FeedBatch(batch)
	}
	if a := testing.AllocsPerRun(50, feedBatch); a != 0 {
		t.Fatalf("FeedBatch: %v allocations per %d packets", a, len(frames))
	}
}

// TestConcurrentUse feeds one meter from several goroutines (as live
// capture on several interfaces does) while the clock advances and the
// timeouts change; no packet may be lost or counted twice.
func TestConcurrentUse(t *testing.T) {
	var mu sync.Mutex
	var packets uint64
	m, err := meter.New(meter.Config{InactiveTimeout: time.Second}, func(b []flow.Record) {
		mu.Lock()
		for _, r := range b {
			packets += r.Packets
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		f := frame(t, "10.0.0.1", "10.0.0.2", 17, uint16(g), 53, "", 0)
		wg.Go(func() {
			for i := range 2000 {
				m.Feed(at(float64(i)*0.01), packet.LinkEthernet, f)
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			m.Advance(at(float64(i) * 0.4))
			m.SetTimeouts(time.Duration(i+1)*time.Second, time.Second)
			_ = m.Stats()
		}
	})
	wg.Wait()
	m.Flush()
	if packets != 8000 || m.Stats().Packets != 8000 {
		t.Fatalf("%d packets in records, %d fed; want 8000", packets, m.Stats().Packets)
	}
}

// TestLongSpan meters one flow for 60 days of packet time, beyond the
// range of the cache's 32-bit millisecond times, and checks every record's
// times.
func TestLongSpan(t *testing.T) {
	m, col := newMeter(t, meter.Config{ActiveTimeout: 20 * 24 * time.Hour, InactiveTimeout: 15 * 24 * time.Hour})
	day := 24 * 3600.0
	f := frame(t, "10.0.0.1", "10.0.0.2", 17, 1, 2, "", 0)
	for d := 0.0; d <= 60; d += 10 {
		m.Feed(at(d*day), packet.LinkEthernet, f)
	}
	m.Flush()
	want := [][2]float64{{0, 10}, {20, 30}, {40, 50}, {60, 60}}
	if len(col.recs) != len(want) {
		t.Fatalf("%d records: %+v", len(col.recs), col.recs)
	}
	for i, w := range want {
		r := col.recs[i]
		if r.Start != at(w[0]*day).UnixMilli() || r.End != at(w[1]*day).UnixMilli() || r.Packets != uint64(1+(w[1]-w[0])/10) {
			t.Errorf("record %d: %d packets %d–%d, want days %v", i, r.Packets, r.Start, r.End, w)
		}
	}
	if err := m.SetTimeouts(30*24*time.Hour, time.Second); !errors.Is(err, meter.ErrConfig) {
		t.Errorf("30-day timeout: %v", err)
	}
}

// FuzzFeed feeds arbitrary frames at arbitrary times: no panic, and every
// packet is either in a record or in a drop counter.
func FuzzFeed(f *testing.F) {
	f.Add(uint16(packet.LinkEthernet), int64(0), frame(f, "10.0.0.1", "10.0.0.2", 6, 1, 2, "F", 3))
	f.Add(uint16(packet.LinkRaw), int64(-5e9), []byte{0x45, 0, 0, 20, 0, 1, 0x20, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, lt uint16, ts int64, data []byte) {
		var packets uint64
		m, _ := meter.New(meter.Config{MaxFlows: 2, InactiveTimeout: time.Second}, func(b []flow.Record) {
			for _, r := range b {
				packets += r.Packets
			}
		})
		for i := range 3 { // the same frame at three times, and a prefix of it
			m.Feed(time.Unix(0, ts+int64(i)*7e8), packet.LinkType(lt), data)
			m.Feed(time.Unix(0, ts-int64(i)*3e9), packet.LinkType(lt), data[:len(data)/2])
		}
		m.Flush()
		s := m.Stats()
		if drops := s.NonIP + s.Truncated + s.Malformed + s.Unsupported; packets+drops != s.Packets {
			t.Fatalf("%d packets in records + %d dropped != %d fed", packets, drops, s.Packets)
		}
	})
}

// TestFeedBatchEqualsFeed meters every corpus capture and the
// differential test's settings both ways: one frame at a time, and in
// batches straight from the read buffer. The records must be identical.
func TestFeedBatchEqualsFeed(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap/*.pcap"))
	for _, p := range files {
		cfg := meter.Config{ActiveTimeout: 2 * time.Second, InactiveTimeout: time.Second, MaxFlows: 8}
		one, _ := runFile(t, p, cfg)
		var batched []flow.Record
		m, _ := meter.New(cfg, func(b []flow.Record) { batched = append(batched, b...) })
		f, err := capture.OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.RunBatch(m.FeedBatch); err != nil {
			t.Fatal(err)
		}
		f.Close()
		m.Flush()
		if !slices.Equal(one, batched) {
			t.Fatalf("%s: %d records one by one, %d batched, or they differ", filepath.Base(p), len(one), len(batched))
		}
	}
}

// TestFeedBatchSamplingEqualsFeed: FeedBatch samples before it decodes;
// with 1:N sampling, deterministic or random, it must still pick the same
// packets as Feed and make the same records and counters.
func TestFeedBatchSamplingEqualsFeed(t *testing.T) {
	frames := make([]packet.Frame, 1000)
	for i := range frames {
		data := frame(t, "10.0.0.1", "10.0.0.2", 17, uint16(i%13), 53, "", i%50)
		if i%97 == 0 {
			data = data[:20] // truncated: a drop when sampled in
		}
		frames[i] = packet.Frame{TS: at(float64(i) * 0.05).UnixNano(), Link: packet.LinkEthernet, Data: data}
	}
	for _, random := range []bool{false, true} {
		cfg := meter.Config{Sampling: 7, RandomSampling: random, Seed: 3, InactiveTimeout: time.Second}
		one, oneCol := newMeter(t, cfg)
		for _, f := range frames {
			one.Feed(time.Unix(0, f.TS), f.Link, f.Data)
		}
		one.Flush()
		batched, batchedCol := newMeter(t, cfg)
		batched.FeedBatch(frames)
		batched.Flush()
		if !slices.Equal(oneCol.recs, batchedCol.recs) || one.Stats() != batched.Stats() {
			t.Fatalf("random=%v: Feed made %d records, %+v; FeedBatch %d, %+v",
				random, len(oneCol.recs), one.Stats(), len(batchedCol.recs), batched.Stats())
		}
		if st := one.Stats(); st.Sampled == 0 || st.Truncated == 0 || len(oneCol.recs) == 0 {
			t.Fatalf("random=%v: the test meters nothing or drops nothing: %+v", random, st)
		}
	}
}
