package export

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
)

// hasTemplates says whether a v9/IPFIX packet starts with a template set.
func hasTemplates(p []byte) bool {
	if binary.BigEndian.Uint16(p) == netflow.V9 {
		return binary.BigEndian.Uint16(p[20:]) == 0
	}
	return binary.BigEndian.Uint16(p[16:]) == 2
}

// TestTemplateRefreshAndSequence: templates go in the first packet, then
// every TemplatePackets packets and whenever TemplateInterval has passed;
// sequence numbers count packets (v9), data records (IPFIX) or flows (v5).
func TestTemplateRefreshAndSequence(t *testing.T) {
	for _, version := range []int{netflow.V5, netflow.V9, netflow.IPFIX} {
		t.Run(fmt.Sprint("v", version), func(t *testing.T) {
			conn, port := listenUDP(t)
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			e, err := New(Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: version,
				TemplatePackets: 3, TemplateInterval: time.Minute, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			recs := testRecords(400, now.Add(-time.Second).UnixMilli())
			var v4 []flow.Record
			for _, r := range recs {
				if r.IPVersion == 4 {
					v4 = append(v4, r)
				}
			}
			e.Export(v4[:10]) // packet 0: templates
			e.Export(v4[:10]) // 1
			e.Export(v4[:10]) // 2
			e.Export(v4[:10]) // 3: 3 packets since templates
			now = now.Add(30 * time.Second)
			e.Export(v4[:10]) // 4
			now = now.Add(31 * time.Second)
			e.Export(v4[:10]) // 5: a minute since templates
			e.Export(v4[:10]) // 6
			pkts := readAll(t, conn)
			if len(pkts) != 7 {
				t.Fatalf("%d packets", len(pkts))
			}
			for i, p := range pkts {
				seq := binary.BigEndian.Uint32(p[16:])
				want := uint32(i * 10) // v5: flows; IPFIX: data records
				switch version {
				case netflow.V5:
					continue // no templates; sequence checked below
				case netflow.V9:
					seq, want = binary.BigEndian.Uint32(p[12:]), uint32(i)
				case netflow.IPFIX:
					seq = binary.BigEndian.Uint32(p[8:])
				}
				if seq != want {
					t.Errorf("packet %d: sequence %d, want %d", i, seq, want)
				}
				if got, want := hasTemplates(p), i == 0 || i == 3 || i == 5; got != want {
					t.Errorf("packet %d: templates %v, want %v", i, got, want)
				}
			}
			if version == netflow.V5 {
				for i, p := range pkts {
					if seq := binary.BigEndian.Uint32(p[16:]); seq != uint32(i*10) {
						t.Errorf("v5 packet %d: sequence %d, want %d", i, seq, i*10)
					}
				}
			}
		})
	}
}

// TestExportIPv6Collector: the exporter reaches a collector over IPv6.
func TestExportIPv6Collector(t *testing.T) {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer c.Close()
	e, err := New(Config{Collector: c.LocalAddr().String(), Version: netflow.IPFIX})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := flow.Record{SrcAddr: netip.MustParseAddr("2001:db8::1"), DstAddr: netip.MustParseAddr("2001:db8::2"), Packets: 1, Bytes: 80}
	if err := e.Export([]flow.Record{r}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := netflow.NewSession(netflow.SessionConfig{}).Decode(buf[:n], time.Now(), nil)
	if err != nil || len(recs) != 1 || recs[0].SrcAddr != r.SrcAddr {
		t.Fatalf("%v %v", recs, err)
	}
}
