package dataplane

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"flowlog/internal/capture"
	"flowlog/internal/desired"
	"flowlog/internal/flow"
	"flowlog/internal/ingest"
	"flowlog/internal/meter"
	"flowlog/internal/spool"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/testutil"
)

// fixedControl is a control plane whose state never changes.
type fixedControl struct{ st desired.State }

func (c fixedControl) Snapshot(context.Context, string) (desired.State, error) { return c.st, nil }
func (c fixedControl) Watch(ctx context.Context, after uint64) (uint64, error) {
	<-ctx.Done()
	return after, ctx.Err()
}
func (fixedControl) Report(context.Context, desired.Status) error { return nil }
func (fixedControl) ShareTemplates(context.Context, string, []desired.ExporterTemplates) error {
	return nil
}

// recordKey is what a record says of its flow, its ids aside.
func recordKey(r *flow.Record) string {
	return fmt.Sprint(r.SrcAddr, r.SrcPort, r.DstAddr, r.DstPort, r.Protocol, r.Start, r.End, r.Packets, r.Bytes,
		r.EndReason, r.LogStatus)
}

// TestImport: a pcap import (Config.Imported) delivers to the tap exactly
// the records a meter alone makes of the file, at the file's times, though
// the plane's clock ticks through it; its counters and progress say so.
func TestImport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "synthetic.pcap")
	if _, err := testutil.WriteSyntheticPcap(path, 200_000); err != nil {
		t.Fatal(err)
	}
	cfg := meter.Config{ActiveTimeout: time.Hour, InactiveTimeout: time.Hour, MaxFlows: 1 << 20, Sampling: 1}
	want := map[string]int{}
	ref, err := meter.New(cfg, func(recs []flow.Record) {
		for i := range recs {
			want[recordKey(&recs[i])]++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := capture.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.RunBatch(ref.FeedBatch); err != nil {
		t.Fatal(err)
	}
	ref.Flush()

	st := desired.State{Version: 1,
		FlowLogs: []desired.FlowLog{{ID: "fl", Enabled: true, Targets: []desired.Target{{GatewayID: "gw"}}}},
		Gateways: []desired.Gateway{{ID: "gw", Kind: desired.KindPcap, PcapPath: path}}}
	var mu sync.Mutex
	got := map[string]int{}
	done := make(chan error, 1)
	p, err := New(Config{Control: fixedControl{st}, Tick: time.Millisecond, Meter: &cfg, NoNoData: true,
		Tap: func(recs []flow.Record) {
			mu.Lock()
			defer mu.Unlock()
			for i := range recs {
				got[recordKey(&recs[i])]++
			}
		},
		Imported: func(id string, err error) {
			if id != "fl" {
				err = fmt.Errorf("import of flow log %q", id)
			}
			done <- err
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); p.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("import not done")
	}
	if fs := p.FlowStats("fl"); fs.Size == 0 || fs.Read != fs.Size {
		t.Fatalf("progress %d of %d bytes", fs.Read, fs.Size)
	}
	cancel()
	<-ran

	if len(got) != len(want) {
		t.Fatalf("%d distinct records, a meter alone makes %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("record %s: %d, a meter alone makes %d", k, got[k], n)
		}
	}
	fs, rs := p.FlowStats("fl"), ref.Stats()
	if fs.Meter.Packets != rs.Packets || fs.Meter.Records != rs.Records || fs.Meter.ByReason != rs.ByReason {
		t.Fatalf("flow log's meter stats %+v, a meter alone's %+v", fs.Meter, rs)
	}
}

// TestNoResume: a plane with NoResume leaves alone the spool of a log
// stream its state does not name; one without drops it.
func TestNoResume(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, "spool"), Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	other := store.StreamID{Account: store.LocalAccount, Stream: "other"}
	if err := st.CreateStream(ctx, store.Stream{StreamID: other, Group: store.LocalAccount}); err != nil {
		t.Fatal(err)
	}
	pipe, err := ingest.New(ctx, ingest.Config{}, sp, st, other)
	if err != nil {
		t.Fatal(err)
	}
	pipe.Source("x", false).Write(ctx, []flow.Record{{Version: flow.RecordVersion, LogStatus: flow.StatusOK}})
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	pipe.Close(stopped) // what it holds stays spooled
	for _, noResume := range []bool{true, false} {
		p, err := New(Config{Control: fixedControl{desired.State{Version: 1}}, Store: st, Spool: sp, NoResume: noResume})
		if err != nil {
			t.Fatal(err)
		}
		p.Run(stopped) // applies the state once, then stops
		pending, err := sp.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if kept := slices.Contains(pending, other); kept != noResume {
			t.Fatalf("NoResume %v: the other stream's spool kept: %v", noResume, kept)
		}
	}
}
