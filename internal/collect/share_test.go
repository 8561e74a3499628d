package collect

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// hub shares templates between collectors as a control plane would: what
// one shares, the others adopt, and new exporter state is seeded from it.
type hub struct {
	mu    sync.Mutex
	kept  map[netip.Addr][]netflow.SavedTemplate
	peers []*Collector
}

func (h *hub) share(from *Collector) func(context.Context, []Shared) error {
	return func(_ context.Context, ts []Shared) error {
		h.mu.Lock()
		peers := append([]*Collector(nil), h.peers...)
		for _, s := range ts {
			h.kept[s.Exporter] = s.Templates
		}
		h.mu.Unlock()
		for _, p := range peers {
			if p != from {
				for _, s := range ts {
					p.Adopt(s.Exporter, s.Templates)
				}
			}
		}
		return nil
	}
}

func (h *hub) seed(src netip.Addr) []netflow.SavedTemplate {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kept[src]
}

// start adds a collector sharing through h.
func (h *hub) start(t *testing.T) (*Collector, *sink) {
	var c *Collector
	var mu sync.Mutex
	cfg := Config{Workers: 1, Session: netflow.SessionConfig{V9FlowCount: true}, Seed: h.seed, Share: func(ctx context.Context, ts []Shared) error {
		mu.Lock()
		self := c
		mu.Unlock()
		return h.share(self)(ctx, ts)
	}}
	c, s := start(t, cfg)
	mu.Lock()
	h.mu.Lock()
	h.peers = append(h.peers, c)
	h.mu.Unlock()
	mu.Unlock()
	return c, s
}

// TestCollectorsSideBySide: for every device of the netflow-vendors corpus
// whose templates come in datagrams of their own, one collector receives
// the templates and another the data, which it holds until the first one
// shares them; a third, started after that, decodes the data at once. Both
// decode what one collector given everything decodes.
func TestCollectorsSideBySide(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	src := netip.MustParseAddr("192.0.2.7")
	cases := 0
	for data, tpls := range splitCorpus(t, dir) {
		lone, _ := start(t, Config{Listen: "127.0.0.1:0", Session: netflow.SessionConfig{V9FlowCount: true}})
		for _, tpl := range tpls {
			lone.Decode(src, read(tpl), false)
		}
		want, err := lone.Decode(src, read(data), false)
		if err != nil || len(want) == 0 {
			continue // not a case of decodable data
		}
		cases++
		h := &hub{kept: map[netip.Addr][]netflow.SavedTemplate{}}
		a, _ := h.start(t)
		b, sb := h.start(t)
		if recs, _ := b.Decode(src, read(data), false); len(recs) != 0 {
			t.Fatalf("%s decoded before any template", data)
		}
		for _, tpl := range tpls {
			a.Decode(src, read(tpl), false)
		}
		if got := sb.wait(len(want)); !slices.Equal(volumes(got), volumes(want)) {
			t.Errorf("%s held, then decoded with shared templates: %v\nwant %v", data, volumes(got), volumes(want))
		}
		c, _ := h.start(t)
		if got, err := c.Decode(src, read(data), false); err != nil || !slices.Equal(volumes(got), volumes(want)) {
			t.Errorf("%s on a collector started later: %v, %v\nwant %v", data, volumes(got), err, volumes(want))
		}
		if st, _ := b.Exporter(src); st.Dropped != 0 || st.UnknownTemplates == 0 {
			t.Errorf("%s: the holding collector: %+v", data, st)
		}
	}
	t.Logf("%d devices", cases)
	if cases < 10 {
		t.Fatalf("only %d devices with templates of their own", cases)
	}
}

// splitCorpus maps the corpus's data files to their device's template-only
// files.
func splitCorpus(t *testing.T, dir string) map[string][]string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
	device := func(n string) string {
		for _, m := range []string{"_data", "_tpl", "_opttpl"} {
			if i := strings.Index(n, m); i > 0 {
				return n[:i]
			}
		}
		return ""
	}
	tpls := map[string][]string{}
	for _, f := range files {
		if b := filepath.Base(f); !strings.Contains(b, "data") && device(b) != "" {
			tpls[device(b)] = append(tpls[device(b)], b)
		}
	}
	out := map[string][]string{}
	for _, f := range files {
		if b := filepath.Base(f); strings.Contains(b, "_data") && len(tpls[device(b)]) > 0 && !strings.Contains(b, "tpl") {
			out[b] = tpls[device(b)]
		}
	}
	if len(out) == 0 {
		t.Fatalf("no corpus in %s", dir)
	}
	return out
}

// volumes is what records say of traffic, whatever their arrival time.
func volumes(recs []flow.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%v>%v %d>%d p%d %d/%d", r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Protocol, r.Packets, r.Bytes)
	}
	slices.Sort(out)
	return out
}

// TestSamplingRateSideBySide: a Juniper MX240's options data (1:1000)
// reaches one collector; the data records another collector receives are
// scaled by it once shared, as on the first, and so are those of a
// collector started later.
func TestSamplingRateSideBySide(t *testing.T) {
	h := &hub{kept: map[netip.Addr][]netflow.SavedTemplate{}}
	a, _ := h.start(t)
	b, _ := h.start(t)
	pkt := juniperDomainPacket(t)
	want := counted(t, pkt)
	got, err := b.Decode(plainRouter, pkt, false)
	if err != nil {
		t.Fatal(err)
	}
	checkScaled(t, "before any options data", got, want, 1)
	for _, f := range []string{"ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat", "ipfix_test_juniper_mx240_junos151r6s3_data512.dat"} {
		if _, err := a.Decode(plainRouter, corpusFile(t, f), false); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got, err = b.Decode(plainRouter, pkt, false); err != nil || got[0].SamplingInterval != 1 || time.Now().After(deadline) {
			break
		}
	}
	checkScaled(t, "on the second collector, once shared", got, want, 1000)
	c, _ := h.start(t)
	if got, err = c.Decode(plainRouter, pkt, false); err != nil {
		t.Fatal(err)
	}
	checkScaled(t, "on a collector started later", got, want, 1000)
}
