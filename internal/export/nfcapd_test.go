package export

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// TestNfcapdReceivesExport: nfdump reports the flows, packets, bytes and
// times we export, for each version. For sampled records (1:10) sent as
// v5, the packets and bytes it stores are our estimates: it scales what we
// count by the header's interval, once. nfdump 1.7.1 applies no v9/IPFIX
// rate (not softflowd's options data either, see
// collect.TestSoftflowdSampledMatchesNfcapd), so there it stores what we
// counted, never scaled twice; TestTsharkDecodesExport checks the interval
// each record carries.
func TestNfcapdReceivesExport(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	for _, tc := range []struct {
		version int
		rate    uint32
	}{{netflow.V5, 0}, {netflow.V9, 0}, {netflow.IPFIX, 0}, {netflow.V5, 10}, {netflow.V9, 10}, {netflow.IPFIX, 10}} {
		t.Run(fmt.Sprintf("v%d_rate%d", tc.version, tc.rate), func(t *testing.T) {
			port, stop := testutil.StartNfcapd(t)
			recs := testRecords(300, base)
			for i := range recs {
				recs[i].Scale(tc.rate)
			}
			e, err := New(Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: tc.version, Domain: 3})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Export(recs); err != nil {
				t.Fatal(err)
			}
			e.Close()
			flows, info := stop()
			// nfdump checks sequence numbers per exporter and domain.
			if !strings.Contains(info, "Sequence failures: 0") {
				t.Errorf("nfdump reports sequence failures:\n%s", info)
			}
			var want, got []string
			for _, r := range recs {
				if tc.version == netflow.V5 && r.IPVersion == 6 {
					continue
				}
				ports := fmt.Sprintf("%d>%d", r.SrcPort, r.DstPort)
				if r.Protocol == 1 || r.Protocol == 58 {
					ports = fmt.Sprintf("icmp=%d/%d", r.ICMPType, r.ICMPCode)
				}
				packets, bytes := r.Packets, r.Bytes
				if tc.version != netflow.V5 {
					packets, bytes = r.Counted()
				}
				want = append(want, fmt.Sprintf("%v %v %s p%d %d %d %s %s", r.SrcAddr, r.DstAddr, ports, r.Protocol,
					packets, bytes, nfdumpTime(r.Start), nfdumpTime(r.End)))
			}
			for _, f := range flows {
				src, dst := f.Src4, f.Dst4
				if src == "" {
					src, dst = f.Src6, f.Dst6
				}
				ports := fmt.Sprintf("%d>%d", f.SrcPort, f.DstPort)
				if f.Proto == 1 || f.Proto == 58 {
					ports = fmt.Sprintf("icmp=%d/%d", f.ICMPType, f.ICMPCode)
				}
				got = append(got, fmt.Sprintf("%s %s %s p%d %d %d %s %s", src, dst, ports, f.Proto, f.Packets, f.Bytes, f.First, f.Last))
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("nfdump reports %d flows, want %d; first difference:\n%s", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

func nfdumpTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000")
}
