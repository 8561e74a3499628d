package ingest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

var stream = store.StreamID{Account: "acct", Stream: "ls"}

func openStore(t *testing.T, dir string) *duckdb.Store {
	t.Helper()
	s, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateStream(context.Background(), store.Stream{StreamID: stream}); err != nil {
		t.Fatal(err)
	}
	return s
}

// gate holds appends to the real store until opened, to fill the queue.
type gate struct {
	*duckdb.Store
	open chan struct{}
}

func (g *gate) Append(ctx context.Context, id store.StreamID, recs []flow.Record) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Append(ctx, id, recs)
}

// seq numbers records through Bytes, so loss and duplicates can be counted.
func seq(from, n int) []flow.Record {
	recs := storetest.Records(n, time.Hour, uint64(from))
	for i := range recs {
		recs[i].Bytes = uint64(from + i)
	}
	return recs
}

// count returns the number of records and of distinct Bytes values stored.
func count(t *testing.T, s store.Store) (n, distinct uint64) {
	t.Helper()
	resp, err := s.Query(context.Background(), stream, query.Request{
		Since: storetest.Base.Add(-time.Hour), Until: storetest.Base.Add(2 * time.Hour),
		Aggregates: []query.Aggregate{{Func: "count"}, {Func: "count_distinct", Field: "bytes"}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Rows[0][0].(uint64), resp.Rows[0][1].(uint64)
}

func TestBatching(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	var mu sync.Mutex
	var sizes []int
	p := New(Config{BatchSize: 100, FlushInterval: time.Hour, OnCommit: func(r []flow.Record) {
		mu.Lock()
		sizes = append(sizes, len(r))
		mu.Unlock()
	}}, s, stream)
	src := p.Source("file", false)
	if err := src.Write(context.Background(), seq(0, 250)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Committed < 200 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	got := fmt.Sprint(sizes)
	mu.Unlock()
	if got != "[100 100]" {
		t.Errorf("batches before flush = %s, want [100 100] (full batches only)", got)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[100 100 50]" {
		t.Errorf("batches = %v, want [100 100 50]", sizes)
	}
	if n, d := count(t, s); n != 250 || d != 250 {
		t.Errorf("stored %d records (%d distinct), want 250", n, d)
	}
	if err := src.Write(context.Background(), seq(0, 1)); err != ErrClosed {
		t.Errorf("write after close: %v, want ErrClosed", err)
	}
}

func TestFlushInterval(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	p := New(Config{BatchSize: 1000, FlushInterval: 20 * time.Millisecond}, s, stream)
	defer p.Close(context.Background())
	if err := p.Source("live", true).Write(context.Background(), seq(0, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Committed < 10 {
		if time.Now().After(deadline) {
			t.Fatal("a partial batch was not written after the flush interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, _ := count(t, s); n != 10 {
		t.Errorf("stored %d, want 10", n)
	}
}

// TestBackpressure fills the queue while the store is held: live sources
// drop and count per source, a file import waits and loses nothing.
func TestBackpressure(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := &gate{Store: s, open: make(chan struct{})}
	p := New(Config{BatchSize: 50, QueueSize: 100, FlushInterval: 10 * time.Millisecond}, g, stream)
	ctx := context.Background()
	a, b := p.Source("collector-a", true), p.Source("collector-b", true)
	if err := a.Write(ctx, seq(0, 70)); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, seq(70, 50)); err != nil {
		t.Fatal(err)
	}
	if a.Dropped() != 0 || b.Dropped() != 20 {
		t.Errorf("dropped a=%d b=%d, want 0 and 20", a.Dropped(), b.Dropped())
	}
	if err := a.Write(ctx, seq(1000, 5)); err != nil || a.Dropped() != 5 {
		t.Errorf("write to full queue: %v, dropped %d, want 5", err, a.Dropped())
	}
	imported := make(chan error)
	go func() { imported <- p.Source("import", false).Write(ctx, seq(2000, 130)) }()
	select {
	case err := <-imported:
		t.Fatalf("file import returned (%v) while the queue was full", err)
	case <-time.After(100 * time.Millisecond):
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	if err := p.Source("import2", false).Write(short, seq(3000, 1)); err == nil {
		t.Error("a file write with an expiring context succeeded on a full queue")
	}
	cancel()
	close(g.open)
	if err := <-imported; err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Dropped["collector-a"] != 5 || st.Dropped["collector-b"] != 20 || len(st.Dropped) != 2 {
		t.Errorf("Stats.Dropped = %v", st.Dropped)
	}
	if n, d := count(t, s); n != 100+130 || d != n {
		t.Errorf("stored %d (%d distinct), want 230: every accepted record once", n, d)
	}
}

// TestRetry: a failing store is retried until it takes the batch.
func TestRetry(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	other := store.StreamID{Account: "acct", Stream: "later"}
	p := New(Config{BatchSize: 10, FlushInterval: 5 * time.Millisecond, RetryInterval: 5 * time.Millisecond}, s, other)
	ctx := context.Background()
	if err := p.Source("f", false).Write(ctx, seq(0, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Failures < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.CreateStream(ctx, store.Stream{StreamID: other}); err != nil { // the stream appears
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Failures < 2 || st.Committed != 10 {
		t.Errorf("stats %+v: want ≥2 failures then 10 committed", st)
	}
}

const childEnv = "FLOWLOG_INGEST_KILL_CHILD"

// TestKill9 runs heavy ingest in a child process, kills it with SIGKILL,
// and checks that every record the child saw acknowledged is in the store
// after reopening, and that nothing is stored twice.
func TestKill9(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		runChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked uint64
	sc := bufio.NewScanner(out)
	killed := false
	start := time.Now()
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "acked ")
		if !ok {
			continue
		}
		if acked, err = strconv.ParseUint(n, 10, 64); err != nil {
			t.Fatal(err)
		}
		if !killed && (acked >= 300000 || time.Since(start) > 5*time.Second) {
			cmd.Process.Signal(syscall.SIGKILL) // mid-batch: the child never stops writing
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child was not killed as planned (acked %d): %v", acked, err)
	}
	if acked == 0 {
		t.Fatal("child acknowledged nothing before the kill")
	}
	s, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	n, distinct := count(t, s)
	resp, err := s.Query(context.Background(), stream, query.Request{
		Since: storetest.Base.Add(-time.Hour), Until: storetest.Base.Add(2 * time.Hour),
		Where: "bytes < " + strconv.FormatUint(acked, 10), Aggregates: []query.Aggregate{{Func: "count_distinct", Field: "bytes"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged %d, stored %d after kill -9", acked, n)
	if got := resp.Rows[0][0].(uint64); got != acked {
		t.Errorf("%d of the %d acknowledged records are stored", got, acked)
	}
	if n != distinct {
		t.Errorf("%d records stored, %d distinct: duplicates", n, distinct)
	}
}

// runChild ingests numbered records as fast as it can, printing the
// acknowledged count after each commit, until it is killed.
func runChild(dir string) {
	s, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	if err := s.CreateStream(ctx, store.Stream{StreamID: stream}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var acked uint64
	p := New(Config{BatchSize: 20000, FlushInterval: 50 * time.Millisecond, OnCommit: func(r []flow.Record) {
		acked += uint64(len(r))
		fmt.Printf("acked %d\n", acked) // os.Stdout is unbuffered: the line leaves before the next batch
	}}, s, stream)
	src := p.Source("import", false)
	base := storetest.Records(5000, time.Hour, 9)
	for next := 0; ; next += len(base) {
		for i := range base {
			base[i].Bytes = uint64(next + i)
		}
		if err := src.Write(ctx, base); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
}
