package netflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow/netflowtest"
	"flowlog/internal/testutil"
)

// vendorCase is one corpus file to check and the template files of the
// same device that must be fed before it.
type vendorCase struct {
	name      string
	templates []string
}

// stem is a corpus file's device name: what comes before _data/_tpl/_opttpl.
func stem(name string) string {
	name = strings.TrimSuffix(name, ".dat")
	for _, m := range []string{"_data", "_tpl", "_opttpl"} {
		if i := strings.Index(name, m); i > 0 {
			return name[:i]
		}
	}
	return name
}

func isTemplateOnly(name string) bool {
	return (strings.Contains(name, "_tpl") || strings.Contains(name, "_opttpl")) && !strings.Contains(name, "data")
}

// vendorCases lists every valid corpus file with its device's templates.
func vendorCases(t *testing.T, dir string) []vendorCase {
	files, err := filepath.Glob(filepath.Join(dir, "*.dat"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", dir, err)
	}
	tpls := map[string][]string{}
	for _, f := range files {
		if b := filepath.Base(f); isTemplateOnly(b) {
			tpls[stem(b)] = append(tpls[stem(b)], b)
		}
	}
	var cases []vendorCase
	for _, f := range files {
		b := filepath.Base(f)
		if strings.Contains(b, "invalid") {
			continue
		}
		c := vendorCase{name: b}
		if !isTemplateOnly(b) {
			c.templates = tpls[stem(b)]
		}
		cases = append(cases, c)
	}
	return cases
}

// TestVendorCorpusMatchesTshark decodes every valid file of the
// netflow-vendors corpus (after its device's template files) and compares
// the flows with what tshark decodes from the same packets.
func TestVendorCorpusMatchesTshark(t *testing.T) {
	tshark := testutil.Peer(t, "tshark")
	dir := filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors")
	cases := vendorCases(t, dir)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// One capture for all: each case comes from its own source address and
	// port, so tshark keeps its templates apart; ours are fed to a fresh
	// Session per case.
	var dgrams []netflowtest.Datagram
	var ours [][]flow.Record
	var errs []error
	target := make([]int, len(cases)) // packet index of each case's file
	now := time.Now()
	for i, c := range cases {
		s := NewSession(SessionConfig{})
		src, port := byte(10+i%200), uint16(20000+i)
		for _, tpl := range c.templates {
			p := read(tpl)
			dgrams = append(dgrams, netflowtest.Datagram{Src: src, SrcPort: port, Payload: p})
			if _, _, err := s.Decode(p, now, nil); err != nil {
				t.Errorf("%s: template file %s: %v", c.name, tpl, err)
			}
		}
		p := read(c.name)
		target[i] = len(dgrams)
		dgrams = append(dgrams, netflowtest.Datagram{Src: src, SrcPort: port, Payload: p})
		recs, _, err := s.Decode(p, now, nil)
		ours = append(ours, recs)
		errs = append(errs, err)
	}
	path := filepath.Join(t.TempDir(), "corpus.pcap")
	if err := netflowtest.WriteDatagrams(path, dgrams, 2055); err != nil {
		t.Fatal(err)
	}
	pkts := netflowtest.Tshark(t, tshark, path, 2055)
	if len(pkts) != len(dgrams) {
		t.Fatalf("tshark shows %d packets, wrote %d", len(pkts), len(dgrams))
	}
	total, timed := 0, 0
	for i, c := range cases {
		if errs[i] != nil {
			t.Errorf("%s: %v", c.name, errs[i])
			continue
		}
		want := tsharkFlows(pkts[target[i]])
		got := recordFlows(ours[i], want)
		total += len(got)
		for _, w := range want {
			if w.start != "" || w.end != "" {
				timed++
			}
		}
		if pkts[target[i]].Malformed {
			// tshark stopped part way (e.g. an H3C field it expects to be
			// an address has another length): what it did decode must be
			// among ours.
			if missing := subtract(keys(want), got); len(missing) > 0 {
				t.Errorf("%s: tshark flows missing from ours: %q", c.name, missing)
			}
			t.Logf("%s: tshark marks the packet malformed after %d of our %d flows", c.name, len(want), len(got))
			continue
		}
		if strings.Join(got, "\n") != strings.Join(keys(want), "\n") {
			t.Errorf("%s: %d flows, tshark %d; first difference:\n%s", c.name, len(got), len(want), diff(got, keys(want)))
		}
	}
	t.Logf("%d files, %d flows with addresses compared, %d of them with absolute times", len(cases), total, timed)
}

// tflow is a tshark flow reduced to what is compared.
type tflow struct {
	key          string // addresses, ports, protocol
	octets, pkts string // "" when tshark shows no such field
	in, out      string
	start, end   string // Unix ms, from absolute time fields only
}

func tsharkFlows(p netflowtest.Packet) []tflow {
	var out []tflow
	for _, f := range p.Flows {
		src, dst := f.Get("cflow.srcaddr"), f.Get("cflow.dstaddr")
		if src == "" || src == "0.0.0.0" && f.Get("cflow.srcaddrv6") != "" {
			src, dst = f.Get("cflow.srcaddrv6"), f.Get("cflow.dstaddrv6")
		}
		if src == "" || dst == "" {
			continue
		}
		n := func(k string) string {
			if v := f.Get(k); v != "" {
				return v
			}
			return "0"
		}
		out = append(out, tflow{
			key:    fmt.Sprintf("%s>%s %s>%s p%s", src, dst, n("cflow.srcport"), n("cflow.dstport"), n("cflow.protocol")),
			octets: f.Get("cflow.octets"), pkts: f.Get("cflow.packets"),
			in: f.Get("cflow.inputint"), out: f.Get("cflow.outputint"),
			start: absMs(f.Get("cflow.abstimestart")), end: absMs(f.Get("cflow.abstimeend"))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].render() < out[j].render() })
	return out
}

func (f tflow) render() string {
	return f.key + " b=" + f.octets + " n=" + f.pkts + " if=" + f.in + "/" + f.out + " t=" + f.start + "-" + f.end
}

// absMs turns tshark's absolute time text into Unix ms, or "" when there
// is none or it is before 2000: tshark shows 1970 for a time field of 0
// (which we read as "not set" and replace by the end or export time) and
// for flowStart/EndSysUpTime whose systemInitTimeMilliseconds came in
// options data (which it does not apply; we do).
func absMs(s string) string {
	if s == "" {
		return ""
	}
	tm, err := time.Parse("Jan _2, 2006 15:04:05.000000000 MST", s)
	if err != nil {
		return "bad time " + s
	}
	if tm.Year() < 2000 {
		return ""
	}
	return strconv.FormatInt(tm.UnixMilli(), 10)
}

func keys(fs []tflow) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.render()
	}
	return out
}

// recordFlows renders our records like tsharkFlows, showing counters only
// where tshark shows them for a flow of the same key.
func recordFlows(recs []flow.Record, want []tflow) []string {
	shown := map[string][6]bool{}
	for _, w := range want {
		shown[w.key] = [6]bool{w.octets != "", w.pkts != "", w.in != "", w.out != "", w.start != "", w.end != ""}
	}
	var out []string
	for _, r := range recs {
		if !r.SrcAddr.IsValid() || !r.DstAddr.IsValid() {
			continue
		}
		k := fmt.Sprintf("%v>%v %d>%d p%d", r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Protocol)
		f := tflow{key: k}
		if s := shown[k]; s[0] {
			f.octets = strconv.FormatUint(r.Bytes, 10)
		}
		if s := shown[k]; s[1] {
			f.pkts = strconv.FormatUint(r.Packets, 10)
		}
		if s := shown[k]; s[2] {
			f.in = strconv.FormatUint(uint64(r.InputIfIndex), 10)
		}
		if s := shown[k]; s[3] {
			f.out = strconv.FormatUint(uint64(r.OutputIfIndex), 10)
		}
		if s := shown[k]; s[4] {
			f.start = strconv.FormatInt(r.Start, 10)
		}
		if s := shown[k]; s[5] {
			f.end = strconv.FormatInt(r.End, 10)
		}
		out = append(out, f.render())
	}
	sort.Strings(out)
	return out
}

func diff(got, want []string) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf(" got %q\nwant %q", g, w)
		}
	}
	return ""
}

// TestVendorCorpusInvalid: every *_invalid* file is rejected with an
// error, and the same session decodes a valid packet afterwards.
func TestVendorCorpusInvalid(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors")
	files, _ := filepath.Glob(filepath.Join(dir, "*invalid*.dat"))
	if len(files) == 0 {
		t.Fatal("no invalid files in the corpus")
	}
	valid, err := os.ReadFile(filepath.Join(dir, "netflow9_test_valid01.dat"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSession(SessionConfig{})
	for _, f := range files {
		p, _ := os.ReadFile(f)
		if recs, _, err := s.Decode(p, time.Now(), nil); err == nil {
			t.Errorf("%s: accepted, %d records", filepath.Base(f), len(recs))
		} else {
			t.Logf("%s: %v", filepath.Base(f), err)
		}
		recs, _, err := s.Decode(valid, time.Now(), nil)
		if err != nil || len(recs) == 0 {
			t.Errorf("after %s: valid packet gives %d records, %v", filepath.Base(f), len(recs), err)
		}
	}
}

// TestV9CountBelowFlowsets pins down what is wrong with the corpus's
// invalid v9 file: its header count (2) covers only its flow records, not
// its 6 flowsets (two templates, an options template, options data and two
// data flowsets), so tshark stops after the two templates and shows no
// flows. With the count set to 6 and nothing else changed, tshark decodes
// every flowset, and we accept it and give the same flows; the original
// we reject unless told to accept softflowd's convention.
func TestV9CountBelowFlowsets(t *testing.T) {
	tshark := testutil.Peer(t, "tshark")
	orig, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors", "netflow9_test_invalid01.dat"))
	if err != nil {
		t.Fatal(err)
	}
	fixed := append([]byte(nil), orig...)
	binary.BigEndian.PutUint16(fixed[2:], uint16(flowsets(orig[20:])))
	if n := flowsets(orig[20:]); n != 6 {
		t.Fatalf("%d flowsets, want 6", n)
	}
	path := filepath.Join(t.TempDir(), "count.pcap")
	if err := netflowtest.WritePcap(path, [][]byte{orig, fixed}, 2055); err != nil {
		t.Fatal(err)
	}
	pkts := netflowtest.Tshark(t, tshark, path, 2055)
	if len(pkts) != 2 {
		t.Fatalf("tshark shows %d packets", len(pkts))
	}
	if f := tsharkFlows(pkts[0]); len(f) != 0 {
		t.Errorf("tshark shows %d flows of the original", len(f))
	}
	want := tsharkFlows(pkts[1])
	if len(want) != 2 || pkts[1].Malformed {
		t.Fatalf("tshark shows %d flows of the fixed packet (malformed %v)", len(want), pkts[1].Malformed)
	}
	now := time.Now()
	if recs, _, err := NewSession(SessionConfig{}).Decode(orig, now, nil); !errors.Is(err, ErrCount) || len(recs) != 0 {
		t.Errorf("original: %d records, error %v; want none and ErrCount", len(recs), err)
	}
	for _, c := range []struct {
		name string
		cfg  SessionConfig
		pkt  []byte
	}{{"fixed", SessionConfig{}, fixed}, {"original, V9FlowCount", SessionConfig{V9FlowCount: true}, orig}} {
		recs, _, err := NewSession(c.cfg).Decode(c.pkt, now, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := recordFlows(recs, want); strings.Join(got, "\n") != strings.Join(keys(want), "\n") {
			t.Errorf("%s: first difference from tshark:\n%s", c.name, diff(got, keys(want)))
		}
	}
}

// subtract returns the elements of a not in b (as multisets).
func subtract(a, b []string) []string {
	n := map[string]int{}
	for _, s := range b {
		n[s]++
	}
	var out []string
	for _, s := range a {
		if n[s] > 0 {
			n[s]--
			continue
		}
		out = append(out, s)
	}
	return out
}
