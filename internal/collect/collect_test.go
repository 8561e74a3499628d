package collect

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// sink gathers what a Collector hands over.
type sink struct {
	mu   sync.Mutex
	recs []flow.Record
}

func (s *sink) handle(recs []flow.Record) {
	s.mu.Lock()
	s.recs = append(s.recs, recs...)
	s.mu.Unlock()
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// wait returns the records once n have arrived or none arrived for 500 ms.
func (s *sink) wait(n int) []flow.Record {
	last, since := -1, time.Now()
	for {
		l := s.len()
		if l >= n && n > 0 {
			break
		}
		if l != last {
			last, since = l, time.Now()
		} else if time.Since(since) > 500*time.Millisecond {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flow.Record(nil), s.recs...)
}

func start(t *testing.T, cfg Config) (*Collector, *sink) {
	t.Helper()
	if cfg.Listen == "" && cfg.SFlowListen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s := &sink{}
	c, err := New(cfg, s.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, s
}

func testRecords(n int, base int64) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		r := &recs[i]
		if i%4 == 3 {
			r.SrcAddr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
			r.DstAddr = netip.MustParseAddr("2001:db8::99")
			r.IPVersion = 6
		} else {
			r.SrcAddr = netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})
			r.DstAddr = netip.MustParseAddr("203.0.113.9")
			r.IPVersion = 4
		}
		r.Protocol, r.SrcPort, r.DstPort = 17, uint16(2000+i), 53
		r.Packets, r.Bytes = uint64(i+1), uint64(100*(i+1))
		r.Start = base + int64(i)
		r.End = r.Start + 2000
		r.InputIfIndex, r.OutputIfIndex = uint32(i%7+1), 20
	}
	return recs
}

func summary(recs []flow.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%v>%v %d>%d p%d %d/%d t=%d-%d if=%d/%d", r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort,
			r.Protocol, r.Packets, r.Bytes, r.Start, r.End, r.InputIfIndex, r.OutputIfIndex)
	}
	sort.Strings(out)
	return out
}

// TestCollectorAutoDetectsVersions: v5, v9 and IPFIX exports to one port
// all arrive, with the exporter's address and interfaces set, and the
// per-exporter counters add up.
func TestCollectorAutoDetectsVersions(t *testing.T) {
	c, s := start(t, Config{Workers: 2})
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	recs := testRecords(400, base)
	var want []flow.Record
	for i, v := range []int{netflow.V5, netflow.V9, netflow.IPFIX} {
		e, err := export.New(export.Config{Collector: c.Addrs()[0].String(), Version: v, Domain: uint32(i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Export(recs); err != nil {
			t.Fatal(err)
		}
		e.Close()
		for _, r := range recs {
			if v != netflow.V5 || r.IPVersion == 4 {
				want = append(want, r)
			}
		}
	}
	got := s.wait(len(want))
	for _, r := range got {
		if r.ExporterAddr != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("exporter address %v", r.ExporterAddr)
		}
	}
	g, w := summary(got), summary(want)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Fatalf("got %d records, want %d", len(g), len(w))
	}
	st := c.Stats()
	if len(st) != 1 || st[0].Records != uint64(len(want)) || st[0].DecodeErrors != 0 || st[0].SequenceLost != 0 {
		t.Fatalf("counters %+v", st)
	}
}

// TestTemplatesPersistAndDataWaits: data that arrives before its template
// is held and decoded when the template comes; templates saved in the data
// dir decode data after a restart.
func TestTemplatesPersistAndDataWaits(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	recs := testRecords(10, base)
	b, _ := netflow.NewBuilder(netflow.IPFIX)
	clock := netflow.Clock{BootMs: base - 1000, ExportMs: base + 5000}
	b.Reset(nil, clock)
	b.AppendTemplates(false)
	tpl := append([]byte(nil), b.Finish(netflow.MessageHeader{Domain: 5})...)
	b.Reset(nil, clock)
	for i := range recs {
		b.AppendRecord(&recs[i])
	}
	data := append([]byte(nil), b.Finish(netflow.MessageHeader{Domain: 5})...)

	dir := t.TempDir()
	src := netip.MustParseAddr("192.0.2.44")
	c1, err := New(Config{Listen: "127.0.0.1:0", DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c1.Decode(src, data, false)
	if err != nil || len(out) != 0 {
		t.Fatalf("data before template: %d records, %v", len(out), err)
	}
	out, err = c1.Decode(src, tpl, false)
	if err != nil || len(out) != len(recs) {
		t.Fatalf("template releases %d held records, want %d (%v)", len(out), len(recs), err)
	}
	// Families alternate v4 v4 v4 v6 v4 v4 v4 v6 v4 v4: five data sets.
	if st := c1.Stats()[0]; st.UnknownTemplates != 5 || st.Records != uint64(len(recs)) {
		t.Fatalf("counters %+v", st)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, templatesDir, src.String()+".json")); err != nil {
		t.Fatal(err)
	}
	c2, err := New(Config{Listen: "127.0.0.1:0", DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	out, err = c2.Decode(src, data, false)
	if err != nil || len(out) != len(recs) {
		t.Fatalf("after restart: %d records, want %d (%v)", len(out), len(recs), err)
	}
	// Another exporter (or domain) does not see these templates.
	if out, _ := c2.Decode(netip.MustParseAddr("192.0.2.45"), data, false); len(out) != 0 {
		t.Fatalf("templates leaked to another exporter")
	}
}

// TestSequenceLoss: a v9 packet that never arrives is counted as lost.
func TestSequenceLoss(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	c, err := New(Config{Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := netflow.NewBuilder(netflow.V9)
	recs := testRecords(3, base)
	src := netip.MustParseAddr("192.0.2.9")
	for _, seq := range []uint32{0, 1, 2, 5, 6} {
		b.Reset(nil, netflow.Clock{BootMs: base - 1000, ExportMs: base + 5000})
		b.AppendTemplates(false)
		for i := range recs {
			b.AppendRecord(&recs[i])
		}
		if _, err := c.Decode(src, b.Finish(netflow.MessageHeader{Sequence: seq}), false); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats()[0]; st.SequenceLost != 2 || st.Packets != 5 {
		t.Fatalf("counters %+v, want 2 lost of 5 packets", st)
	}
}

// TestInvalidPacketsCounted: the corpus's invalid packets, sent over UDP,
// are counted as decode errors and the collector goes on decoding.
func TestInvalidPacketsCounted(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors")
	invalid, _ := filepath.Glob(filepath.Join(dir, "*invalid*.dat"))
	valid, err := os.ReadFile(filepath.Join(dir, "netflow5.dat"))
	if err != nil || len(invalid) == 0 {
		t.Fatal(err)
	}
	c, s := start(t, Config{Workers: 1})
	conn, err := net.Dial("udp", c.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, f := range invalid {
		p, _ := os.ReadFile(f)
		conn.Write(p)
		conn.Write(valid)
	}
	conn.Write([]byte{0, 9, 0}) // garbage
	per := int(valid[3])
	got := s.wait(per * len(invalid))
	if len(got) != per*len(invalid) {
		t.Fatalf("%d records, want %d", len(got), per*len(invalid))
	}
	time.Sleep(100 * time.Millisecond)
	if st := c.Stats()[0]; st.DecodeErrors != uint64(len(invalid)+1) {
		t.Fatalf("decode errors %d, want %d", st.DecodeErrors, len(invalid)+1)
	}
}

// TestSFlowPort: sFlow datagrams on the sFlow port become records with the
// exporter's address; counter samples are counted.
func TestSFlowPort(t *testing.T) {
	c, s := start(t, Config{Listen: "127.0.0.1:0", SFlowListen: "127.0.0.1:0", Workers: 1})
	// One flow sample: rate 100, in 3, out 4, a raw IPv4/UDP header.
	frame := []byte{0x45, 0, 0, 100, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 0x04, 0xd2, 0x00, 0x35, 0, 80, 0, 0}
	be := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		}
		return b
	}
	rec := append(be(11, 100, 0, uint32(len(frame))), frame...)
	sample := append(be(1, 1, 100, 100, 0, 3, 4, 1, 1, uint32(len(rec))), rec...)
	dgram := append(be(5, 1), 127, 0, 0, 1)
	dgram = append(dgram, be(0, 1, 0, 2, 1, uint32(len(sample)))...)
	dgram = append(dgram, sample...)
	dgram = append(dgram, be(2, 12, 1, 1, 0)...) // a counter sample with no records
	conn, err := net.Dial("udp", c.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(dgram)
	got := s.wait(1)
	if len(got) != 1 {
		t.Fatalf("%d records", len(got))
	}
	r := got[0]
	// One sampled packet of 100 bytes at 1:100: scaled once, here.
	if r.SrcAddr != netip.MustParseAddr("192.0.2.1") || r.DstPort != 53 || r.Packets != 100 || r.Bytes != 100*100 ||
		r.SamplingInterval != 100 ||
		r.InputIfIndex != 3 || r.OutputIfIndex != 4 || r.ExporterAddr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("record %+v", r)
	}
	if st := c.Stats()[0]; st.CounterSamples != 1 || st.Records != 1 {
		t.Fatalf("counters %+v", st)
	}
}

// TestIPv6Listener: exports over IPv6 loopback arrive with the exporter's
// IPv6 address.
func TestIPv6Listener(t *testing.T) {
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	c, s := start(t, Config{Listen: "[::1]:0", Workers: 2})
	e, err := export.New(export.Config{Collector: c.Addrs()[0].String(), Version: netflow.V9})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	recs := testRecords(40, time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli())
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	got := s.wait(len(recs))
	if len(got) != len(recs) || got[0].ExporterAddr != netip.IPv6Loopback() {
		t.Fatalf("%d records, exporter %v", len(got), got[0].ExporterAddr)
	}
}

// TestTemplateFloodIsolated: an exporter announcing more templates than
// its limit gets errors counted, and another exporter is unaffected.
func TestTemplateFloodIsolated(t *testing.T) {
	c, err := New(Config{Listen: "127.0.0.1:0", Session: netflow.SessionConfig{MaxTemplates: 100}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flooder, good := netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("192.0.2.67")
	// IPFIX packets each announcing 50 new one-field templates.
	for p := 0; p < 10; p++ {
		pkt := []byte{0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0}
		for i := 0; i < 50; i++ {
			id := uint16(256 + p*50 + i)
			pkt = append(pkt, byte(id>>8), byte(id), 0, 1, 0, 8, 0, 4)
		}
		binary.BigEndian.PutUint16(pkt[18:], uint16(len(pkt)-16))
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		c.Decode(flooder, pkt, false)
	}
	st := c.Stats()[0]
	if st.DecodeErrors != 8 {
		t.Fatalf("flooder counters %+v, want 8 packets refused", st)
	}
	e := testRecords(10, time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli())
	b, _ := netflow.NewBuilder(netflow.IPFIX)
	b.Reset(nil, netflow.Clock{ExportMs: time.Now().UnixMilli()})
	b.AppendTemplates(false)
	for i := range e {
		b.AppendRecord(&e[i])
	}
	if out, err := c.Decode(good, b.Finish(netflow.MessageHeader{Domain: 1}), false); err != nil || len(out) != len(e) {
		t.Fatalf("other exporter: %d records, %v", len(out), err)
	}
}

// TestSessionsIgnoreSourcePort: a template sent from one source port
// decodes data sent from another port of the same exporter (NAT or a
// restarted exporter process changes ports; templates must survive it).
func TestSessionsIgnoreSourcePort(t *testing.T) {
	c, s := start(t, Config{Workers: 2})
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	recs := testRecords(5, base)
	b, _ := netflow.NewBuilder(netflow.V9)
	clock := netflow.Clock{BootMs: base - 1000, ExportMs: base + 5000}
	b.Reset(nil, clock)
	b.AppendTemplates(false)
	tpl := append([]byte(nil), b.Finish(netflow.MessageHeader{Domain: 9})...)
	b.Reset(nil, clock)
	for i := range recs {
		b.AppendRecord(&recs[i])
	}
	data := append([]byte(nil), b.Finish(netflow.MessageHeader{Sequence: 1, Domain: 9})...)
	for _, p := range [][]byte{tpl, data} {
		conn, err := net.Dial("udp", c.Addrs()[0].String()) // a new source port each time
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(p)
		conn.Close()
		time.Sleep(50 * time.Millisecond)
	}
	if got := s.wait(len(recs)); len(got) != len(recs) {
		t.Fatalf("%d records, want %d; counters %+v", len(got), len(recs), c.Stats())
	}
}

// TestInterfaceNamesFromOptions: a Cisco ASR 9000's v9 options data names
// its interfaces (IF_DESC keyed by INPUT_SNMP; the data comes before its
// options template); the collector answers for that exporter only.
func TestInterfaceNamesFromOptions(t *testing.T) {
	c, _ := start(t, Config{})
	src, other := netip.MustParseAddr("192.0.2.60"), netip.MustParseAddr("192.0.2.61")
	for _, f := range []string{"netflow9_test_cisco_asr9k_data256.dat", "netflow9_test_cisco_asr9k_opttpl256.dat"} {
		b, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decode(src, b, false); err != nil {
			t.Fatal(err)
		}
	}
	for idx, want := range map[uint32]string{54: "GigabitEthernet0_0_0_0", 74: "TenGigE0_0_1_0", 162: "Bundle-Ether2"} {
		if n, ok := c.Interface(src, idx); !ok || n.Label() != want {
			t.Errorf("ifIndex %d: %+v %v, want %q", idx, n, ok, want)
		}
	}
	if _, ok := c.Interface(src, 57); ok {
		t.Error("ifIndex 57, not named, has a name")
	}
	if _, ok := c.Interface(other, 54); ok {
		t.Error("another exporter sees the names")
	}
}
