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

	"flowlog/internal/ingest"
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
)

// faultyProxy stands between the store and ClickHouse and spoils the
// first INSERT of each batch (by query id; without one, every other
// INSERT). For each spoilt INSERT it records how many rows reached the
// table.
type faultyProxy struct {
	target string
	fault  fault
	mu     sync.Mutex
	seen   map[string]bool // query ids of INSERTs
	n      int             // INSERTs without a query id
	landed []int           // rows each spoilt INSERT stored
}

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	insert := strings.HasPrefix(q.Get("query"), "INSERT INTO") && strings.Contains(q.Get("query"), "RowBinary")
	p.mu.Lock()
	var spoil bool
	switch id := q.Get("query_id"); {
	case insert && id != "":
		spoil = !p.seen[id]
		p.seen[id] = true
	case insert:
		spoil = p.n%2 == 0
		p.n++
	}
	p.mu.Unlock()
	if !spoil {
		p.forward(w, q, body)
		return
	}
	table := strings.TrimPrefix(q.Get("query"), "INSERT INTO ")
	table = table[:strings.Index(table, " (")]
	before := p.count(table)
	switch p.fault {
	case loseRequest:
		hangUp(w)
		return
	case cutShort:
		// Blocks of 100 rows, each written as it is read.
		q.Set("max_insert_block_size", "100")
		q.Set("min_insert_block_size_rows", "100")
		q.Set("min_insert_block_size_bytes", "1")
		body = body[:len(body)/2+7]
	}
	p.forward(httptest.NewRecorder(), q, body) // the answer goes nowhere
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

// TestRetryStoresOnce ingests through the pipeline while the first
// attempt of every batch fails after storing all, none or part of it; the
// pipeline retries each, and every record must be stored exactly once.
func TestRetryStoresOnce(t *testing.T) {
	target := chtest.Start(t)
	ctx := context.Background()
	const batchSize = 5000
	recs := storetest.Records(20000, 3*time.Hour, 11) // crosses midnight: two partitions per batch
	for _, f := range []struct {
		name   string
		fault  fault
		landed func(n int) bool
	}{
		{"LostAnswer", loseAnswer, func(n int) bool { return n == batchSize }},
		{"LostRequest", loseRequest, func(n int) bool { return n == 0 }},
		{"CutShort", cutShort, func(n int) bool { return n > 0 && n < batchSize }},
	} {
		t.Run(f.name, func(t *testing.T) {
			proxy := &faultyProxy{target: target, fault: f.fault, seen: map[string]bool{}}
			srv := httptest.NewServer(proxy)
			defer srv.Close()
			s, err := New(ctx, Config{URL: srv.URL, Database: "flowlog_retry", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			id := store.StreamID{Account: "acct", Stream: f.name}
			if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
				t.Fatal(err)
			}
			p := ingest.New(ingest.Config{BatchSize: batchSize, RetryInterval: 10 * time.Millisecond}, s, id)
			if err := p.Source("test", false).Write(ctx, recs); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.Failures != uint64(len(recs)/batchSize) {
				t.Errorf("%d failed appends, want one per batch (%d)", st.Failures, len(recs)/batchSize)
			}
			for _, n := range proxy.landed {
				if !f.landed(n) {
					t.Errorf("a spoilt INSERT stored %d of %d rows: the fault is not the one tested", n, batchSize)
				}
			}
			resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(3 * time.Hour), Limit: query.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			storetest.SameRecords(t, resp.Records, recs)
		})
	}
}

// TestRetryWaitsForEarlierAttempt checks that a retry does not read what
// landed while the earlier attempt may still be writing: it fails, to be
// retried, as long as a query with the batch's id runs on the server.
func TestRetryWaitsForEarlierAttempt(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{URL: chtest.Start(t), Database: "flowlog_retry"})
	if err != nil {
		t.Fatal(err)
	}
	id := store.StreamID{Account: "acct", Stream: "slow"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(100, time.Hour, 12)
	b := encode(s.dataTable(id), tableID(id), recs)
	s.setUncertain(b.queryID, true)
	done := make(chan error, 1)
	go func() { // stands in for the earlier attempt, still running
		_, err := s.c.doWith(ctx, "SELECT sleep(2)", url.Values{"query_id": {b.queryID}}, nil)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if err := s.Append(ctx, id, recs); !errors.Is(err, errStillRunning) {
		t.Fatalf("append while the earlier attempt runs: %v, want errStillRunning", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(time.Hour), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	storetest.SameRecords(t, resp.Records, recs)
}
