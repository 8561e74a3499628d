package export

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/netflow/netflowtest"
	"flowlog/internal/testutil"
)

// testRecords returns n records: two IPv4 for each IPv6, some ICMP, with
// every exported field set to a distinct value.
func testRecords(n int, base int64) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		r := &recs[i]
		if i%3 == 2 {
			r.SrcAddr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
			r.DstAddr = netip.MustParseAddr("2001:db8:ffff::7")
			r.IPVersion = 6
		} else {
			r.SrcAddr = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			r.DstAddr = netip.MustParseAddr("198.51.100.7")
			r.IPVersion = 4
		}
		r.Protocol, r.SrcPort, r.DstPort = 6, uint16(1024+i), 443
		switch i % 7 {
		case 3:
			r.Protocol, r.SrcPort, r.DstPort = 17, uint16(5000+i), 53
		case 5:
			r.Protocol, r.SrcPort, r.DstPort, r.ICMPType, r.ICMPCode = 1, 0, 0, 8, 0
			if r.IPVersion == 6 {
				r.Protocol, r.ICMPType = 58, 128
			}
		}
		r.Packets = uint64(1 + i*3)
		r.Bytes = uint64(60 + i*1000)
		r.Start = base + int64(i)*37
		r.End = r.Start + int64(i%50)*1000 + 123
		r.TCPFlags = uint16(0x02 | i&0x10)
		r.TOS = uint8(i % 64 << 2)
		r.InputIfIndex, r.OutputIfIndex = uint32(1+i%5), uint32(10+i%3)
		r.FlowDirection = flow.Ingress
		r.EndReason = flow.EndIdle
	}
	return recs
}

// listenUDP returns a socket on a free loopback port and its port.
func listenUDP(t *testing.T) (*net.UDPConn, int) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(8 << 20)
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).Port
}

// readAll reads datagrams until none arrives for 200 ms.
func readAll(t *testing.T, c *net.UDPConn) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 65536)
	for {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

// expected renders what tshark must show for a record, per version.
func expected(r *flow.Record, version int) string {
	dport := r.DstPort
	icmp := fmt.Sprintf(" icmp=%d/%d", r.ICMPType, r.ICMPCode)
	if version == netflow.V5 {
		icmp = ""
		if r.Protocol == 1 {
			dport = uint16(r.ICMPType)<<8 | uint16(r.ICMPCode)
		}
	}
	flags := r.TCPFlags
	if version != netflow.IPFIX {
		flags &= 0xff
	}
	rate := max(r.SamplingInterval, 1)
	if version == netflow.V5 && rate > 0x3FFF {
		rate = 1 // v5 cannot say it: sent as unsampled estimates
	}
	return fmt.Sprintf("%v>%v %d>%d p%d bytes=%d pkts=%d rate=%d if=%d/%d tos=%d flags=%d t=%d-%d%s",
		r.SrcAddr, r.DstAddr, r.SrcPort, dport, r.Protocol, r.Bytes, r.Packets, rate,
		r.InputIfIndex, r.OutputIfIndex, r.TOS, flags, r.Start, r.End, icmp)
}

// fromTshark renders a flow tshark decoded in the same form.
func fromTshark(t *testing.T, f netflowtest.Flow, hdr map[string]string, version int) string {
	src, dst := f.Get("cflow.srcaddr"), f.Get("cflow.dstaddr")
	if src == "" {
		src, dst = f.Get("cflow.srcaddrv6"), f.Get("cflow.dstaddrv6")
	}
	num := func(name string) uint64 {
		s := f.Get(name)
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), map[bool]int{true: 16, false: 10}[strings.HasPrefix(s, "0x")], 64)
		if err != nil {
			t.Errorf("tshark field %s=%q: %v", name, s, err)
		}
		return v
	}
	var start, end int64
	if version == netflow.IPFIX {
		start, end = absTime(t, f.Get("cflow.abstimestart")), absTime(t, f.Get("cflow.abstimeend"))
	} else {
		boot := secsToMs(t, hdr["cflow.unix_secs"]) - secsToMs(t, hdr["cflow.sysuptime"])
		start, end = boot+secsToMs(t, f.Get("cflow.timestart")), boot+secsToMs(t, f.Get("cflow.timeend"))
	}
	icmp := ""
	switch {
	case version == netflow.V5:
	case f.Get("cflow.icmp_type_code_ipv4") != "":
		tc := num("cflow.icmp_type_code_ipv4")
		icmp = fmt.Sprintf(" icmp=%d/%d", tc>>8, tc&0xff)
	default:
		icmp = fmt.Sprintf(" icmp=%d/%d", num("cflow.icmp_ipv6_type"), num("cflow.icmp_ipv6_code"))
	}
	// What a collector that scales by the announced rate stores: the
	// counted values times the interval (the v5 header's, else the
	// record's own).
	rate := hdr["cflow.samplerate"]
	if version != netflow.V5 {
		rate = f.Get("cflow.sampling_interval")
	}
	n, err := strconv.ParseUint(rate, 10, 32)
	if err != nil {
		t.Errorf("tshark sampling interval %q: %v", rate, err)
	}
	n = max(n, 1)
	return fmt.Sprintf("%s>%s %d>%d p%d bytes=%d pkts=%d rate=%d if=%d/%d tos=%d flags=%d t=%d-%d%s",
		src, dst, num("cflow.srcport"), num("cflow.dstport"), num("cflow.protocol"),
		num("cflow.octets")*n, num("cflow.packets")*n, n, num("cflow.inputint"), num("cflow.outputint"),
		num("cflow.tos"), num("cflow.tcpflags"), start, end, icmp)
}

// secsToMs parses tshark's "3600.020000000" seconds exactly into ms.
func secsToMs(t *testing.T, s string) int64 {
	whole, frac, _ := strings.Cut(s, ".")
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		t.Errorf("seconds %q: %v", s, err)
	}
	frac = (frac + "000")[:3]
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*1000 + f
}

func absTime(t *testing.T, s string) int64 {
	tm, err := time.Parse("Jan _2, 2006 15:04:05.000000000 MST", s)
	if err != nil {
		t.Errorf("time %q: %v", s, err)
	}
	return tm.UnixMilli()
}

// TestTsharkDecodesExport: every packet the exporter sends, for each
// version, decodes in tshark with no malformed or error marks, and the
// flows tshark shows equal the records exported: records sampled at
// different rates (unsampled, 1:10, 1:1000, and 1:20000, which v5 cannot
// announce) travel as counted values with their own interval, so that
// counted × interval, as tshark shows them, is our estimate, not scaled
// twice.
func TestTsharkDecodesExport(t *testing.T) {
	tshark := testutil.Peer(t, "tshark")
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	for _, version := range []int{netflow.V5, netflow.V9, netflow.IPFIX} {
		t.Run(fmt.Sprint("v", version), func(t *testing.T) {
			conn, port := listenUDP(t)
			recs := testRecords(200, base)
			for i := range recs {
				recs[i].Scale([]uint32{1, 10, 1000, 20000}[i/50])
			}
			e, err := New(Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: version,
				TemplatePackets: 4, Domain: 7,
				Now: func() time.Time { return time.UnixMilli(base + 600_000) }})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Export(recs[:150]); err != nil {
				t.Fatal(err)
			}
			if err := e.Export(recs[150:]); err != nil {
				t.Fatal(err)
			}
			pkts := readAll(t, conn)
			st := e.Stats()
			if st.Packets != uint64(len(pkts)) {
				t.Fatalf("stats say %d packets, received %d", st.Packets, len(pkts))
			}
			var want []string
			for i := range recs {
				if version == netflow.V5 && recs[i].IPVersion == 6 {
					continue
				}
				want = append(want, expected(&recs[i], version))
			}
			if version == netflow.V5 && st.Skipped != uint64(len(recs)-len(want)) {
				t.Errorf("v5 skipped %d, want %d IPv6 records", st.Skipped, len(recs)-len(want))
			}
			if st.Records != uint64(len(want)) {
				t.Errorf("stats say %d records, want %d", st.Records, len(want))
			}
			for _, p := range pkts {
				if len(p) > DefaultMTU {
					t.Errorf("packet of %d bytes exceeds the MTU", len(p))
				}
			}
			path := filepath.Join(t.TempDir(), "export.pcap")
			if err := netflowtest.WritePcap(path, pkts, 2055); err != nil {
				t.Fatal(err)
			}
			if broken := netflowtest.TsharkBroken(t, tshark, path, 2055); broken != "" {
				t.Fatalf("tshark marks packets broken:\n%s", broken)
			}
			var got []string
			for _, p := range netflowtest.Tshark(t, tshark, path, 2055) {
				for _, f := range p.Flows {
					got = append(got, fromTshark(t, f, p.Header, version))
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("tshark shows %d flows, want %d; first difference:\n%s", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

func firstDiff(got, want []string) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf(" got %s\nwant %s", got[i], want[i])
		}
	}
	return "(one list is a prefix of the other)"
}
