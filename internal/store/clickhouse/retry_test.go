package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

// fault is what the proxy does to a spoilt INSERT.
type fault int

const (
	loseAnswer  fault = iota // the server stores the batch; its answer never arrives
	loseRequest              // the batch never reaches the server
	cutShort                 // the server gets half the batch, in small blocks, and fails on the rest
	holdBack                 // the client gets no answer; the request reaches the server when released
)

// faultyProxy stands between the store and ClickHouse. Once armed, it
// spoils the next INSERT it is set to (by default the upload of records
// into a staging table) and records how many rows of it reached the
// table it writes. It also counts the reads of which rows landed.
type faultyProxy struct {
	target string
	fault  fault
	mu     sync.Mutex
	armed  bool
	landed []int                // rows each spoilt INSERT stored
	checks int                  // waits for an earlier INSERT, each before a read of what landed
	held   func() (int, string) // sends the held-back request on; its status and answer
	// spoils picks the requests to spoil; by default INSERTs of records.
	spoils func(query string) bool
}

func (p *faultyProxy) arm() {
	p.mu.Lock()
	p.armed = true
	p.mu.Unlock()
}

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	insert := strings.HasPrefix(q.Get("query"), "INSERT INTO") && strings.Contains(q.Get("query"), "RowBinary")
	if p.spoils != nil {
		insert = p.spoils(q.Get("query"))
	}
	p.mu.Lock()
	spoil := insert && p.armed
	p.armed = p.armed && !spoil
	if bytes.Contains(body, []byte("FROM system.processes")) {
		p.checks++
	}
	p.mu.Unlock()
	if !spoil {
		p.forward(w, q, body)
		return
	}
	if p.fault == holdBack {
		p.hold(q, body)
		hangUp(w)
		return
	}
	table, _, _ := strings.Cut(strings.TrimPrefix(q.Get("query"), "INSERT INTO "), " ")
	before := p.count(table)
	switch {
	case p.fault == cutShort && isMove(q.Get("query")):
		// The server moves half the rows, then the client sees a failure.
		q.Set("query", q.Get("query")+" LIMIT "+strconv.Itoa(p.count(moveSource(q.Get("query")))/2))
		p.forward(httptest.NewRecorder(), q, body)
	case p.fault == cutShort:
		// Blocks of 100 rows, each written as it is read.
		q.Set("max_insert_block_size", "100")
		q.Set("min_insert_block_size_rows", "100")
		q.Set("min_insert_block_size_bytes", "1")
		body = body[:len(body)/2+7]
		p.forward(httptest.NewRecorder(), q, body)
	case p.fault == loseAnswer:
		p.forward(httptest.NewRecorder(), q, body) // the answer goes nowhere
	}
	p.mu.Lock()
	p.landed = append(p.landed, p.count(table)-before)
	p.mu.Unlock()
	hangUp(w)
}

func (p *faultyProxy) forward(w http.ResponseWriter, q url.Values, body []byte) {
	resp, err := http.Post(p.target+"/?"+q.Encode(), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// isMove tells the statement that moves staged rows into a stream's table.
func isMove(query string) bool {
	return strings.HasPrefix(query, "INSERT INTO") && strings.Contains(query, " SELECT * FROM ")
}

// moveSource returns the staging table a move reads.
func moveSource(query string) string {
	_, from, _ := strings.Cut(query, " SELECT * FROM ")
	return from
}

// spoilt are the requests of an attempt the proxy spoils: the upload of
// the records into a staging table, or their move into the stream's.
var spoilt = []struct {
	name   string
	spoils func(query string) bool
}{
	{"Upload", nil},
	{"Move", isMove},
}

// hold keeps a request back until p.held is called.
func (p *faultyProxy) hold(q url.Values, body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = func() (int, string) {
		rec := httptest.NewRecorder()
		p.forward(rec, q, body)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
}

// count returns the rows in table, or -1.
func (p *faultyProxy) count(table string) int {
	rec := httptest.NewRecorder()
	p.forward(rec, url.Values{"query": {"SELECT count() FROM " + table}}, nil)
	n, err := strconv.Atoi(strings.TrimSpace(rec.Body.String()))
	if err != nil {
		return -1
	}
	return n
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

// faults are the ways a spoilt INSERT ends, and the rows of a batch of
// size rows each leaves stored.
var faults = []struct {
	name   string
	fault  fault
	landed func(n, size int) bool
}{
	{"LostAnswer", loseAnswer, func(n, size int) bool { return n == size }},
	{"LostRequest", loseRequest, func(n, _ int) bool { return n == 0 }},
	{"CutShort", cutShort, func(n, size int) bool { return n > 0 && n < size }},
}

// retryRecords cross midnight: two partitions per batch.
func retryRecords() []flow.Record { return storetest.Records(20000, 3*time.Hour, 11) }

// newStore opens a Store (a process's worth of state) on a stream behind
// a faulty proxy, making the stream if needed.
func newStore(t *testing.T, proxyURL string, id store.StreamID) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := New(ctx, Config{URL: proxyURL, Database: "flowlog_retry", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	return s
}

// commitAll commits recs (recs[i] at position i) in batches of size from
// Committed on, as the spool's committer does: after an error it reads
// Committed again and goes on from there. spoil says whether to spoil the
// first attempt of the batch at a position. It returns the failed Commits.
func commitAll(t *testing.T, s *Store, p *faultyProxy, id store.StreamID, recs []flow.Record, size int, spoil func(first uint64) bool) int {
	t.Helper()
	ctx := context.Background()
	tried := map[uint64]bool{}
	failures := 0
	pos, err := s.Committed(ctx, id)
	for err == nil && pos < uint64(len(recs)) {
		b := store.Batch{First: pos, Records: recs[pos:min(pos+uint64(size), uint64(len(recs)))]}
		if !tried[pos] && spoil(pos) {
			p.arm()
		}
		tried[pos] = true
		if err = s.Commit(ctx, id, b); err == nil {
			pos = b.Next()
			continue
		}
		if failures++; failures > 50 {
			break
		}
		time.Sleep(10 * time.Millisecond)
		pos, err = s.Committed(ctx, id)
	}
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return failures
}

// wantOnce fails unless the stream holds recs, each exactly once, its
// position is after the last, no staging table of it is left, and its
// rollups sum each record once.
func wantOnce(t *testing.T, s *Store, id store.StreamID, recs []flow.Record) {
	t.Helper()
	ctx := context.Background()
	resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(3 * time.Hour), Limit: query.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	storetest.SameRecords(t, resp.Records, recs)
	if got, err := s.Committed(ctx, id); err != nil || got != uint64(len(recs)) {
		t.Errorf("Committed = %d, %v; want %d", got, err, len(recs))
	}
	if left, err := s.stagesOn(ctx, s.c, id); err != nil || len(left) > 0 {
		t.Errorf("staging tables left: %v, %v", left, err)
	}
	wantRolledOnce(t, s, id, recs)
}

func (p *faultyProxy) checkLanded(t *testing.T, want func(n, size int) bool, size int) {
	t.Helper()
	for _, n := range p.landed {
		if !want(n, size) {
			t.Errorf("a spoilt INSERT stored %d of %d rows: the fault is not the one tested", n, size)
		}
	}
}

// TestRetryStoresOnce commits through Commit while the first attempt of
// every batch fails after storing all, none or part of it, in the staging
// table or, for a spoilt move, in the stream's; the batch is retried from
// Committed, and every record must be stored exactly once.
// Only the retries read what landed.
func TestRetryStoresOnce(t *testing.T) {
	target := chtest.Start(t)
	const batchSize = 5000
	recs := retryRecords()
	for _, f := range faults {
		for _, sp := range spoilt {
			t.Run(f.name+"/"+sp.name, func(t *testing.T) {
				proxy := &faultyProxy{target: target, fault: f.fault, spoils: sp.spoils}
				srv := httptest.NewServer(proxy)
				defer srv.Close()
				id := store.StreamID{Account: "acct", Stream: f.name + "-" + sp.name}
				s := newStore(t, srv.URL, id)
				failures := commitAll(t, s, proxy, id, recs, batchSize, func(uint64) bool { return true })
				if want := len(recs) / batchSize; failures != want || len(proxy.landed) != want {
					t.Errorf("%d failed commits, %d spoilt INSERTs; want one per batch (%d)", failures, len(proxy.landed), want)
				}
				if proxy.checks != failures {
					t.Errorf("%d reads of what landed, want one per retried batch (%d)", proxy.checks, failures)
				}
				proxy.checkLanded(t, f.landed, batchSize)
				wantOnce(t, s, id, recs)
			})
		}
	}
}

// TestRestartStoresOnce spoils an INSERT of a batch and abandons the
// Store, as a process killed then would. A new Store commits from
// Committed with smaller batches, so what the spoilt INSERT stored spans
// several of them: every record must be stored exactly once.
func TestRestartStoresOnce(t *testing.T) {
	target := chtest.Start(t)
	const batchSize, afterRestart = 5000, 1300
	recs := retryRecords()
	for _, f := range faults {
		for _, sp := range spoilt {
			t.Run(f.name+"/"+sp.name, func(t *testing.T) {
				proxy := &faultyProxy{target: target, fault: f.fault, spoils: sp.spoils}
				srv := httptest.NewServer(proxy)
				defer srv.Close()
				id := store.StreamID{Account: "acct", Stream: "restart-" + f.name + "-" + sp.name}
				s := newStore(t, srv.URL, id)
				ctx := context.Background()
				for _, b := range []store.Batch{{First: 0, Records: recs[:batchSize]}, {First: batchSize, Records: recs[batchSize : 2*batchSize]}} {
					if b.First > 0 {
						proxy.arm()
					}
					if err := s.Commit(ctx, id, b); (err != nil) != (b.First > 0) {
						t.Fatalf("commit %d…%d: %v", b.First, b.Next(), err)
					}
				}
				s = newStore(t, srv.URL, id) // the next process
				if failures := commitAll(t, s, proxy, id, recs, afterRestart, func(uint64) bool { return false }); failures > 0 {
					t.Errorf("%d failed commits after the restart", failures)
				}
				if len(proxy.landed) != 1 {
					t.Fatalf("%d spoilt INSERTs, want 1", len(proxy.landed))
				}
				proxy.checkLanded(t, f.landed, batchSize)
				wantOnce(t, s, id, recs)
			})
		}
	}
}

// TestRetryWaitsForEarlierAttempt checks that a new process does not read
// what landed while an earlier INSERT of the stream may still be writing:
// Commit fails, to be retried, as long as a query with the stream's
// commit query id runs on the server.
func TestRetryWaitsForEarlierAttempt(t *testing.T) {
	ctx := context.Background()
	target := chtest.Start(t)
	id := store.StreamID{Account: "acct", Stream: "slow"}
	recs := storetest.Records(200, time.Hour, 12)
	s := newStore(t, target, id)
	if err := s.Commit(ctx, id, store.Batch{Records: recs[:100]}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { // stands in for an INSERT of the killed process, still running
		_, err := s.c.doWith(ctx, "SELECT sleep(2)", url.Values{"query_id": {commitQueryID(id)}}, nil)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	s = newStore(t, target, id)
	b := store.Batch{First: 100, Records: recs[100:]}
	if err := s.Commit(ctx, id, b); !errors.Is(err, errStillRunning) {
		t.Fatalf("commit while the earlier attempt runs: %v, want errStillRunning", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, id, b); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(time.Hour), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	storetest.SameRecords(t, resp.Records, recs)
}

// TestLateAttemptStoresNothing holds back a request of the first attempt
// of a batch, as a queue on the way to the server might, until the retry
// has stored the batch, and then lets it reach the server: the late
// request must store nothing, whether it carries the records or the
// statement that would move them into the stream's table.
func TestLateAttemptStoresNothing(t *testing.T) {
	target := chtest.Start(t)
	const batchSize = 5000
	recs := retryRecords()
	for _, held := range []struct {
		name   string
		spoils func(query string) bool
	}{
		{"Upload", nil},
		{"Move", func(q string) bool {
			return strings.HasPrefix(q, "INSERT INTO") && strings.Contains(q, " SELECT * FROM ")
		}},
	} {
		t.Run(held.name, func(t *testing.T) {
			proxy := &faultyProxy{target: target, fault: holdBack, spoils: held.spoils}
			srv := httptest.NewServer(proxy)
			defer srv.Close()
			id := store.StreamID{Account: "acct", Stream: "late-" + held.name}
			s := newStore(t, srv.URL, id)
			failures := commitAll(t, s, proxy, id, recs, batchSize, func(first uint64) bool { return first == batchSize })
			if failures != 1 || proxy.held == nil {
				t.Fatalf("%d failed commits, held request %v; want one of each", failures, proxy.held != nil)
			}
			status, answer := proxy.held()
			t.Logf("the late request: %d %s", status, answer)
			if status == http.StatusOK {
				t.Errorf("the server accepted the late request")
			}
			wantOnce(t, s, id, recs)
		})
	}
}

// TestDropWaitsForMove checks the server behaviour the staging relies on:
// DROP TABLE of a staging table returns only after a move reading it has
// finished, so no part of an attempt's move can land after the drop.
func TestDropWaitsForMove(t *testing.T) {
	ctx := context.Background()
	c := newClient(chtest.Start(t), nil, "", "", 0)
	for _, q := range []string{
		"CREATE TABLE default.stage (x UInt64) ENGINE = Memory",
		"INSERT INTO default.stage SELECT number FROM system.numbers LIMIT 20",
		"CREATE TABLE default.moved (x UInt64) ENGINE = MergeTree ORDER BY x",
	} {
		if err := c.exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	moved := make(chan time.Time, 1)
	go func() { // 20 rows, 0.1 s each
		err := c.exec(ctx, "INSERT INTO default.moved SELECT x FROM default.stage WHERE sleepEachRow(0.1) = 0 SETTINGS max_block_size = 1")
		if err != nil {
			t.Error(err)
		}
		moved <- time.Now()
	}()
	time.Sleep(300 * time.Millisecond)
	if err := c.exec(ctx, "DROP TABLE default.stage"); err != nil {
		t.Fatal(err)
	}
	dropped := time.Now()
	if end := <-moved; dropped.Before(end.Add(-100 * time.Millisecond)) {
		t.Errorf("DROP returned %v before the move reading the table finished", end.Sub(dropped))
	}
	rows, err := c.selectTSV(ctx, "SELECT count() FROM default.moved", []query.SQLType{query.SQLUint})
	if err != nil || rows[0][0].(uint64) != 20 {
		t.Errorf("moved rows: %v, %v; want 20", rows, err)
	}
}
