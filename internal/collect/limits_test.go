package collect

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
)

// ipfixExport is one IPFIX message with flowlog's templates and recs.
func ipfixExport(t *testing.T, recs []flow.Record) []byte {
	t.Helper()
	b, err := netflow.NewBuilder(netflow.IPFIX)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset(nil, netflow.Clock{ExportMs: time.Now().UnixMilli()})
	b.AppendTemplates(false)
	for i := range recs {
		if err := b.AppendRecord(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return append([]byte(nil), b.Finish(netflow.MessageHeader{Domain: 1})...)
}

// TestUnclaimedSourcesGetNoState: with a Claimed function, other sources'
// datagrams are refused and counted, and leave no state or counters.
func TestUnclaimedSourcesGetNoState(t *testing.T) {
	router := netip.MustParseAddr("192.0.2.1")
	c, _ := start(t, Config{Claimed: func(a netip.Addr) (Claim, bool) { return Claim{}, a == router }})
	pkt := ipfixExport(t, testRecords(3, time.Now().Add(-time.Minute).UnixMilli()))
	for i := range 100 {
		if _, err := c.Decode(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), pkt, false); !errors.Is(err, ErrUnclaimed) {
			t.Fatalf("unclaimed source: %v", err)
		}
	}
	if out, err := c.Decode(router, pkt, false); err != nil || len(out) != 3 {
		t.Fatalf("claimed source: %d records, %v", len(out), err)
	}
	if st := c.Stats(); c.Unclaimed() != 100 || len(st) != 1 || st[0].Exporter != router {
		t.Fatalf("unclaimed %d, stats %+v", c.Unclaimed(), st)
	}
}

// TestIdleSourcesGiveWay: when MaxExporters sources have state, a new one
// takes the place of idle ones; while none is idle it is refused and
// counted, and the busy sources keep their templates.
func TestIdleSourcesGiveWay(t *testing.T) {
	now := time.Now()
	c, _ := start(t, Config{MaxExporters: 2, IdleEvict: time.Minute, Now: func() time.Time { return now }})
	recs := testRecords(2, now.Add(-time.Minute).UnixMilli())
	pkt := ipfixExport(t, recs)
	a, b, x := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	c.Decode(a, pkt, false)
	c.Decode(b, pkt, false)
	if _, err := c.Decode(x, pkt, false); !errors.Is(err, netflow.ErrLimit) || c.Refused() != 1 {
		t.Fatalf("third source with none idle: %v, refused %d", err, c.Refused())
	}
	now = now.Add(40 * time.Second)
	c.Decode(a, pkt, false) // a stays busy
	now = now.Add(30 * time.Second)
	if out, err := c.Decode(x, pkt, false); err != nil || len(out) != len(recs) {
		t.Fatalf("third source after b idled: %d records, %v", len(out), err)
	}
	var got []netip.Addr
	for _, s := range c.Stats() {
		got = append(got, s.Exporter)
	}
	if len(got) != 2 || got[0] != a || got[1] != x {
		t.Fatalf("sources with state %v, want a and x", got)
	}
}

// TestClampRule: the one rule for router times, case by case.
func TestClampRule(t *testing.T) {
	w := TimeWindow{Past: 24 * time.Hour, Ahead: 5 * time.Minute}
	now := int64(1_772_366_400_000)
	day := int64(86_400_000)
	cases := []struct {
		name               string
		start, end         int64
		wantStart, wantEnd int64
		wantChanged        bool
	}{
		{"in the window", now - 5000, now - 1000, now - 5000, now - 1000, false},
		{"a few minutes ahead", now + 1000, now + 60_000, now + 1000, now + 60_000, false},
		{"years ahead, sane duration", now + 400*day, now + 400*day + 3000, now - 3000, now, true},
		{"1970", 0, 0, now, now, true},
		{"older than the past, duration kept", now - 3*day - 500, now - 3*day, now - 500, now, true},
		{"negative", -5 * day, -4 * day, now - day, now, true},
		{"extremes", math.MinInt64, math.MaxInt64, now, now, true},
		{"reversed extremes", math.MaxInt64, math.MinInt64, now, now, true},
		{"start before the window", now - 2*day, now - 1000, now - day, now - 1000, true},
		{"start after end", now, now - 1000, now - 1000, now - 1000, true},
	}
	for _, tc := range cases {
		r := flow.Record{Start: tc.start, End: tc.end}
		changed := w.clamp(&r, now)
		if changed != tc.wantChanged || r.Start != tc.wantStart || r.End != tc.wantEnd {
			t.Errorf("%s: changed %v, %d..%d; want %v, %d..%d", tc.name, changed, r.Start-now, r.End-now,
				tc.wantChanged, tc.wantStart-now, tc.wantEnd-now)
		}
	}
}

// TestClampedAndCounted: records of a claimed source are clamped to the
// claim's age and counted; the CLI default window applies without claims.
func TestClampedAndCounted(t *testing.T) {
	now := time.Now()
	recs := testRecords(4, now.Add(-3*time.Hour).UnixMilli()) // 3 h old
	pkt := ipfixExport(t, recs)
	src := netip.MustParseAddr("192.0.2.9")
	c, _ := start(t, Config{Claimed: func(netip.Addr) (Claim, bool) { return Claim{MaxAge: time.Hour}, true }})
	out, err := c.Decode(src, pkt, false)
	if err != nil || len(out) != 4 || c.Stats()[0].Clamped != 4 {
		t.Fatalf("%d records, %v, %+v", len(out), err, c.Stats())
	}
	for _, r := range out {
		if d := time.Since(time.UnixMilli(r.End)); d < 0 || d > time.Minute || r.End-r.Start != 2000 {
			t.Fatalf("clamped record %d..%d, %v ago", r.Start, r.End, d)
		}
	}
	cli, _ := start(t, Config{})
	if out, _ := cli.Decode(src, pkt, false); len(out) != 4 || cli.Stats()[0].Clamped != 0 || out[0].End != recs[0].End {
		t.Fatalf("default window clamped a 3 h old record: %+v", cli.Stats())
	}
}

// TestTemplatesWrittenIncrementally: only exporters whose templates changed
// are written; an evicted exporter's file goes with it; the old single
// file is removed.
func TestTemplatesWrittenIncrementally(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, legacyTemplates), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c, _ := start(t, Config{DataDir: dir, MaxExporters: 2, Now: func() time.Time { return now }})
	if _, err := os.Stat(filepath.Join(dir, legacyTemplates)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("legacy templates file kept: %v", err)
	}
	pkt := ipfixExport(t, testRecords(1, now.Add(-time.Minute).UnixMilli()))
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	c.Decode(a, pkt, false)
	c.Decode(b, pkt, false)
	c.maintain(now)
	fa, fb := c.templatePath(a), c.templatePath(b)
	for _, f := range []string{fa, fb} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	// Unchanged (only re-announced) templates are not written again.
	os.Remove(fb)
	now = now.Add(10 * time.Second)
	c.Decode(b, pkt, false)
	c.maintain(now)
	if _, err := os.Stat(fb); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unchanged exporter rewritten: %v", err)
	}
	// An evicted exporter's file is removed.
	now = now.Add(2 * time.Minute)
	c.Decode(b, pkt, false)
	c.Decode(netip.MustParseAddr("192.0.2.3"), pkt, false) // a was idle: evicted
	if _, err := os.Stat(fa); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("evicted exporter's file kept: %v", err)
	}
}
