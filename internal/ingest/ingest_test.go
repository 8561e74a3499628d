package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/spool"
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

// gate holds commits to the real store until opened: a store that has
// fallen behind.
type gate struct {
	*duckdb.Store
	open chan struct{}
}

func (g *gate) Commit(ctx context.Context, id store.StreamID, b store.Batch) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Commit(ctx, id, b)
}

// lossy stores each batch, then reports failure for the first few: the
// answer of a commit that worked is lost.
type lossy struct {
	*duckdb.Store
	fail int
}

func (l *lossy) Commit(ctx context.Context, id store.StreamID, b store.Batch) error {
	if err := l.Store.Commit(ctx, id, b); err != nil {
		return err
	}
	if l.fail > 0 {
		l.fail--
		return errors.New("connection reset")
	}
	return nil
}

// full refuses every commit, as a store on a full disk does.
type full struct{ *duckdb.Store }

func (full) Commit(context.Context, store.StreamID, store.Batch) error {
	return errors.New("no space left on device")
}

func openSpool(t *testing.T, dir string, maxBytes int64) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, "spool"), MaxBytes: maxBytes, Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func newPipeline(t *testing.T, cfg Config, sp *spool.Spool, dst Committer, id store.StreamID) *Pipeline {
	t.Helper()
	p, err := New(context.Background(), cfg, sp, dst, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
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

// TestBatching: a MinBatch backlog is committed at once, a smaller one
// only on Flush (or after FlushInterval).
func TestBatching(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	var mu sync.Mutex
	var sizes []int
	p := newPipeline(t, Config{MinBatch: 100, MaxBatch: 100, FlushInterval: time.Hour, OnCommit: func(r []flow.Record) {
		mu.Lock()
		sizes = append(sizes, len(r))
		mu.Unlock()
	}}, openSpool(t, dir, 0), s, stream)
	src := p.Source("file", false)
	if err := src.Write(context.Background(), seq(0, 250)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.Stats().Committed >= 200 })
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

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFlushInterval(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	p := newPipeline(t, Config{MinBatch: 1000, FlushInterval: 20 * time.Millisecond}, openSpool(t, dir, 0), s, stream)
	defer p.Close(context.Background())
	if err := p.Source("live", true).Write(context.Background(), seq(0, 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.Stats().Committed == 10 })
	if n, _ := count(t, s); n != 10 {
		t.Errorf("stored %d, want 10", n)
	}
}

// TestOverload holds the store while live sources write far more than the
// memory budget: the spool takes it all, nothing is dropped, and once the
// store catches up every accepted record is stored once, in batches no
// larger than the budget. A spool too small drops, counted per source.
func TestOverload(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	g := &gate{Store: s, open: make(chan struct{})}
	mem := NewMemory(2000 * RecordBytes) // 2,000 records in memory for all pipelines
	var largest int
	p := newPipeline(t, Config{MinBatch: 500, MaxBatch: 100000, FlushInterval: 10 * time.Millisecond, Memory: mem,
		OnCommit: func(r []flow.Record) { largest = max(largest, len(r)) }}, openSpool(t, dir, 0), g, stream)
	ctx := context.Background()
	a, b := p.Source("collector-a", true), p.Source("collector-b", true)
	for i := 0; i < 50000; i += 1000 {
		if err := a.Write(ctx, seq(i, 500)); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, seq(i+500, 500)); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.Dropped["collector-a"]+st.Dropped["collector-b"] != 0 || st.Queued != 50000 {
		t.Fatalf("while the store is held: %+v, want 50,000 queued and none dropped", st)
	}
	close(g.open)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, d := count(t, s); n != 50000 || d != n {
		t.Errorf("stored %d (%d distinct), want 50,000: every accepted record once", n, d)
	}
	if largest > 2000 {
		t.Errorf("a batch of %d records, over the memory budget of 2,000", largest)
	}

	// A spool of 64 KiB: the live source drops what does not fit, counted;
	// the file import waits; all that was accepted is stored.
	other := store.StreamID{Account: "acct", Stream: "small"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: other}); err != nil {
		t.Fatal(err)
	}
	g2 := &gate{Store: s, open: make(chan struct{})}
	p2 := newPipeline(t, Config{MinBatch: 100, FlushInterval: 10 * time.Millisecond}, openSpool(t, t.TempDir(), 64<<10), g2, other)
	live := p2.Source("collector", true)
	for i := 0; i < 10000; i += 100 {
		live.Write(ctx, seq(100000+i, 100))
	}
	dropped := live.Dropped()
	accepted := p2.Stats().Written
	if dropped == 0 || accepted == 0 || accepted+dropped != 10000 {
		t.Fatalf("accepted %d, dropped %d of 10,000", accepted, dropped)
	}
	imported := make(chan error)
	go func() { imported <- p2.Source("import", false).Write(ctx, seq(200000, 100)) }()
	select {
	case err := <-imported:
		t.Fatalf("file import returned (%v) while the spool was full", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g2.open)
	if err := <-imported; err != nil {
		t.Fatal(err)
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Query(ctx, other, query.Request{Since: storetest.Base.Add(-time.Hour), Until: storetest.Base.Add(2 * time.Hour),
		Aggregates: []query.Aggregate{{Func: "count"}, {Func: "count_distinct", Field: "bytes"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n, d := resp.Rows[0][0].(uint64), resp.Rows[0][1].(uint64); n != accepted+100 || d != n {
		t.Errorf("stored %d (%d distinct), want the %d accepted", n, d, accepted+100)
	}
}

// TestRetry: a commit whose answer is lost is retried, and the records are
// stored once; a store without the stream is retried until it has it.
func TestRetry(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	sp := openSpool(t, dir, 0)
	cfg := Config{MinBatch: 10, FlushInterval: 5 * time.Millisecond, RetryInterval: 5 * time.Millisecond}
	p := newPipeline(t, cfg, sp, &lossy{Store: s, fail: 3}, stream)
	ctx := context.Background()
	for i := 0; i < 100; i += 10 {
		if err := p.Source("f", false).Write(ctx, seq(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil { // retries; Close would give up after a failure
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Failures != 3 || st.Committed < 100 {
		t.Errorf("stats %+v: want 3 failures and 100 committed", st)
	}
	if n, d := count(t, s); n != 100 || d != 100 {
		t.Errorf("stored %d (%d distinct), want 100 once each", n, d)
	}

	other := store.StreamID{Account: "acct", Stream: "later"}
	p = newPipeline(t, cfg, sp, s, other)
	if err := p.Source("f", false).Write(ctx, seq(0, 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.Stats().Failures >= 2 })
	if err := s.CreateStream(ctx, store.Stream{StreamID: other}); err != nil { // the stream appears
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil { // retries; Close would give up after a failure
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Committed != 10 {
		t.Errorf("stats %+v: want 10 committed", st)
	}

	p = newPipeline(t, cfg, sp, full{s}, stream)
	if err := p.Source("f", false).Write(ctx, seq(100, 10)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err == nil { // without a deadline: it must not wait for the store
		t.Error("Close with a failing store: no error, want the records left in the spool")
	}
	p = newPipeline(t, cfg, sp, s, stream)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, d := count(t, s); n != 110 || d != 110 {
		t.Errorf("stored %d (%d distinct), want 110 once each", n, d)
	}
}

// away is the real store behind a network that may not reach it.
type away struct {
	*duckdb.Store
	down atomic.Bool
}

func (a *away) Commit(ctx context.Context, id store.StreamID, b store.Batch) error {
	if a.down.Load() {
		return store.ErrUnreachable
	}
	return a.Store.Commit(ctx, id, b)
}

func (a *away) Committed(ctx context.Context, id store.StreamID) (uint64, error) {
	if a.down.Load() {
		return 0, store.ErrUnreachable
	}
	return a.Store.Committed(ctx, id)
}

// TestStoreAway: a pipeline opened while the store does not answer
// spools, across a restart, and commits nothing until the store tells
// where its records end; then it stores each record once, after those
// the store holds from a spool since lost.
func TestStoreAway(t *testing.T) {
	dir := t.TempDir()
	s := &away{Store: openStore(t, dir)}
	defer s.Close()
	cfg := Config{MinBatch: 10, FlushInterval: 5 * time.Millisecond, RetryInterval: 5 * time.Millisecond}
	ctx := context.Background()
	p := newPipeline(t, cfg, openSpool(t, filepath.Join(dir, "lost"), 0), s, stream)
	if err := p.Source("f", false).Write(ctx, seq(0, 30)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s.down.Store(true)
	sp := openSpool(t, dir, 0)
	p = newPipeline(t, cfg, sp, s, stream)
	if err := p.Source("f", true).Write(ctx, seq(30, 20)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err == nil { // without a deadline: it must not wait for the store
		t.Error("closed with the store away: no error, want the records left in the spool")
	}
	p = newPipeline(t, cfg, sp, s, stream) // a restart, the store still away
	if err := p.Source("f", true).Write(ctx, seq(50, 10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if st := p.Stats(); st.Queued != 30 || st.Committed != 0 || st.Failures == 0 {
		t.Errorf("stats %+v with the store away: want 30 queued, none committed, failures", st)
	}
	s.down.Store(false)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, d := count(t, s.Store); n != 60 || d != 60 {
		t.Errorf("stored %d (%d distinct), want 60 once each", n, d)
	}
}

const childEnv = "FLOWLOG_INGEST_KILL_CHILD"

// TestKill9 spools records as fast as a child process can while its store
// commits them, kills it with SIGKILL while the spool holds records the
// store does not have, and resumes: every record the child saw spooled is
// then stored, and none twice.
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
	var spooled, committed uint64
	sc := bufio.NewScanner(out)
	killed := false
	start := time.Now()
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "spooled %d committed %d", &spooled, &committed); err != nil {
			continue
		}
		if !killed && ((committed > 0 && spooled-committed >= 50000) || time.Since(start) > 10*time.Second) {
			cmd.Process.Signal(syscall.SIGKILL) // the child never stops writing
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child was not killed as planned (spooled %d): %v", spooled, err)
	}
	if committed == 0 || spooled-committed < 50000 {
		t.Fatalf("killed with %d spooled, %d committed: want records waiting in the spool", spooled, committed)
	}
	s, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	p := newPipeline(t, Config{}, openSpool(t, dir, 0), s, stream)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, distinct := count(t, s)
	resp, err := s.Query(context.Background(), stream, query.Request{
		Since: storetest.Base.Add(-time.Hour), Until: storetest.Base.Add(2 * time.Hour),
		Where: "bytes < " + strconv.FormatUint(spooled, 10), Aggregates: []query.Aggregate{{Func: "count_distinct", Field: "bytes"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d spooled and %d committed; %d stored after resuming", spooled, committed, n)
	if got := resp.Rows[0][0].(uint64); got != spooled {
		t.Errorf("%d of the %d spooled records are stored", got, spooled)
	}
	if n != distinct {
		t.Errorf("%d records stored, %d distinct: duplicates", n, distinct)
	}
}

// runChild spools numbered records as fast as it can from a live source,
// printing after each write how many are spooled and committed, until it
// is killed.
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
	sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, "spool"), Reserve: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p, err := New(ctx, Config{MinBatch: 20000, FlushInterval: 50 * time.Millisecond}, sp, s, stream)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	src := p.Source("collector", true)
	base := storetest.Records(5000, time.Hour, 9)
	for next := 0; ; next += len(base) {
		for i := range base {
			base[i].Bytes = uint64(next + i)
		}
		src.Write(ctx, base)
		st := p.Stats()
		if st.Dropped["collector"] > 0 {
			fmt.Fprintln(os.Stderr, "dropped records")
			os.Exit(2)
		}
		// os.Stdout is unbuffered: the line leaves before the next write.
		fmt.Printf("spooled %d committed %d\n", st.Written, st.Committed)
	}
}
