package meter_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"flowlog/internal/capture"
	"flowlog/internal/flow"
	"flowlog/internal/meter"
	"flowlog/internal/testutil"
)

// runFile meters a capture file with cfg and returns every record.
func runFile(t testing.TB, path string, cfg meter.Config) ([]flow.Record, meter.Stats) {
	t.Helper()
	var recs []flow.Record
	m, err := meter.New(cfg, func(b []flow.Record) { recs = append(recs, b...) })
	if err != nil {
		t.Fatal(err)
	}
	f, err := capture.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Run(m.Feed); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m.Flush()
	return recs, m.Stats()
}

// annotation is one file of flowtest/validation.
type annotation struct {
	Pcap  string           `yaml:"pcap"`
	Key   []string         `yaml:"key"`
	Flows []map[string]any `yaml:"flows"`
}

// match selects the records of one direction of an annotated flow.
type match struct {
	src, dst   netip.Addr
	proto      int
	sport      int // -1: not part of the key
	dport      int
	icmp       int // type<<8|code, -1: any
	innerFlow  bool
	wantPkts   uint64
	wantBytes  uint64
	ipVersion  int
	tos, vlan  int // -1: not annotated
	tcpFlags   int
	annotation string
}

func num(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case uint64:
		return int(x)
	}
	return -1
}

// directions turns one annotated biflow into its two unidirectional flows.
func directions(t *testing.T, a annotation, fl map[string]any, name string) []match {
	key := a.Key
	if key == nil {
		key = []string{"src_ip", "dst_ip", "protocol", "src_port", "dst_port"}
	}
	get := func(field string, rev bool) any {
		if rev {
			return fl[field+"@rev"]
		}
		return fl[field]
	}
	var out []match
	for _, rev := range []bool{false, true} {
		if rev && fl["packets@rev"] == nil {
			continue
		}
		src, dst := fl["src_ip"].(string), fl["dst_ip"].(string)
		sport, dport := num(fl["src_port"]), num(fl["dst_port"])
		if rev {
			src, dst, sport, dport = dst, src, dport, sport
		}
		m := match{src: netip.MustParseAddr(src), dst: netip.MustParseAddr(dst), proto: num(fl["protocol"]),
			sport: -1, dport: -1, icmp: -1, ipVersion: num(fl["ip_version"]),
			wantPkts: uint64(num(get("packets", rev))), wantBytes: uint64(num(get("bytes", rev))),
			tos: num(get("tos", rev)), vlan: num(fl["vlan_id"]), tcpFlags: num(get("tcp_flags", rev)),
			annotation: name}
		if slices.Contains(key, "src_port") {
			m.sport, m.dport = sport, dport
		}
		if ty := num(get("icmp_type", rev)); ty >= 0 {
			m.icmp = ty<<8 | num(get("icmp_code", rev))
		}
		if b := get("bytes_outer", rev); b != nil {
			// A tunnel: the annotation is about the inner flow, the meter
			// reports the outer one (see TestConformance).
			m.innerFlow, m.wantBytes = true, uint64(num(b))
		}
		out = append(out, m)
	}
	return out
}

func (m match) selects(r *flow.Record) bool {
	return r.SrcAddr == m.src && r.DstAddr == m.dst && int(r.Protocol) == m.proto &&
		(m.sport < 0 || int(r.SrcPort) == m.sport) && (m.dport < 0 || int(r.DstPort) == m.dport) &&
		(m.icmp < 0 || int(r.ICMPType)<<8|int(r.ICMPCode) == m.icmp)
}

// TestConformance meters every capture of the flowtest corpus and checks
// each annotated flow, both directions: packets, IP bytes, IP version, and
// TOS, outer VLAN and TCP flags where annotated.
//
// Annotations checked differently, with the reason:
//   - gre.yml, vxlan.yml: the annotation describes the tunnelled (inner)
//     flow; this meter reports the outer flow, as routers' NetFlow does. We
//     check that an outer flow carries the annotated packets and
//     bytes_outer in each direction.
//   - wireguard.yml (and any file with several entries on one key): the
//     annotation splits one 5-tuple at WireGuard handshakes, which only an
//     application-aware probe sees; entries on the same key are summed.
//
// No capture is left out.
func TestConformance(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "testdata/flowtest")
	ymls, _ := filepath.Glob(filepath.Join(dir, "validation/*.yml"))
	pcaps, _ := filepath.Glob(filepath.Join(dir, "pcap/*.pcap"))
	if len(ymls) < 50 || len(pcaps) < 50 {
		t.Fatalf("corpus incomplete: %d annotations, %d captures", len(ymls), len(pcaps))
	}
	covered := map[string]bool{}
	cfg := meter.Config{ActiveTimeout: time.Hour, InactiveTimeout: time.Hour}
	for _, y := range ymls {
		name := filepath.Base(y)
		raw, err := os.ReadFile(y)
		if err != nil {
			t.Fatal(err)
		}
		var a annotation
		if err := yaml.Unmarshal(raw, &a); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		covered[a.Pcap] = true
		t.Run(name, func(t *testing.T) {
			recs, st := runFile(t, filepath.Join(dir, "pcap", a.Pcap), cfg)
			if st.Truncated+st.Malformed+st.Unsupported != 0 {
				t.Errorf("drops: %+v", st)
			}
			// Sum entries that share a key (one 5-tuple split by the annotator).
			type sums struct{ pkts, bytes uint64 }
			want := map[string]*sums{}
			var ms []match
			for _, fl := range a.Flows {
				for _, m := range directions(t, a, fl, name) {
					k := fmt.Sprint(m.src, m.dst, m.proto, m.sport, m.dport, m.icmp, m.innerFlow)
					if want[k] == nil {
						want[k] = &sums{}
						ms = append(ms, m)
					}
					want[k].pkts += m.wantPkts
					want[k].bytes += m.wantBytes
				}
			}
			for _, m := range ms {
				k := fmt.Sprint(m.src, m.dst, m.proto, m.sport, m.dport, m.icmp, m.innerFlow)
				m.wantPkts, m.wantBytes = want[k].pkts, want[k].bytes
				if m.innerFlow {
					checkOuter(t, recs, m)
					continue
				}
				checkFlow(t, recs, m)
			}
		})
	}
	for _, p := range pcaps {
		if !covered[filepath.Base(p)] {
			t.Errorf("capture %s has no annotation and is not listed as left out", filepath.Base(p))
		}
	}
}

func checkFlow(t *testing.T, recs []flow.Record, m match) {
	t.Helper()
	var pkts, bytes uint64
	var flags uint16
	n := 0
	for i := range recs {
		r := &recs[i]
		if !m.selects(r) {
			continue
		}
		n++
		pkts += r.Packets
		bytes += r.Bytes
		flags |= r.TCPFlags
		if int(r.IPVersion) != m.ipVersion {
			t.Errorf("%v→%v: ip_version %d, want %d", m.src, m.dst, r.IPVersion, m.ipVersion)
		}
		if m.tos >= 0 && int(r.TOS) != m.tos {
			t.Errorf("%v→%v: tos %#x, want %#x", m.src, m.dst, r.TOS, m.tos)
		}
		if m.vlan >= 0 && int(r.VLANID) != m.vlan {
			t.Errorf("%v→%v: vlan_id %d, want %d", m.src, m.dst, r.VLANID, m.vlan)
		}
		if r.Action != flow.ActionAccept || r.LogStatus != flow.StatusOK || r.Version != flow.RecordVersion {
			t.Errorf("%v→%v: action/log_status/version %q/%q/%d", m.src, m.dst, r.Action, r.LogStatus, r.Version)
		}
		if r.Start > r.End || r.Start == 0 {
			t.Errorf("%v→%v: start %d end %d", m.src, m.dst, r.Start, r.End)
		}
	}
	if n == 0 && m.wantPkts == 0 {
		return // annotated as one-way: no reverse flow may appear
	}
	if n == 0 {
		t.Errorf("%v→%v proto %d ports %d/%d icmp %d: no record", m.src, m.dst, m.proto, m.sport, m.dport, m.icmp)
		return
	}
	if pkts != m.wantPkts || bytes != m.wantBytes {
		t.Errorf("%v→%v proto %d: %d packets %d bytes, want %d packets %d bytes",
			m.src, m.dst, m.proto, pkts, bytes, m.wantPkts, m.wantBytes)
	}
	if m.tcpFlags >= 0 && int(flags) != m.tcpFlags {
		t.Errorf("%v→%v: tcp_flags %#x, want %#x", m.src, m.dst, flags, m.tcpFlags)
	}
}

// checkOuter finds an outer (tunnel) flow with the annotated packets and
// outer bytes.
func checkOuter(t *testing.T, recs []flow.Record, m match) {
	t.Helper()
	for k, s := range ourTotals(recs) {
		if s.packets == m.wantPkts && s.bytes == m.wantBytes && (k.proto == 47 || k.proto == 17) {
			return
		}
	}
	t.Errorf("no outer flow with %d packets and %d bytes (inner %v→%v)", m.wantPkts, m.wantBytes, m.src, m.dst)
}
