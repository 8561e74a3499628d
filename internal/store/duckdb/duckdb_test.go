package duckdb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, open(t, t.TempDir()))
}

// TestReopen checks that streams and records survive closing the store,
// and that retention removes day tables, not rows.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	id := store.StreamID{Account: "a", Stream: "s"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id, Group: "g", RetentionDays: 1}); err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(1000, 30*time.Hour, 3) // three days
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	if got := tables(t, s); got != 3 {
		t.Fatalf("%d day tables, want 3", got)
	}
	q := query.Request{Since: storetest.Base, Until: storetest.Base.Add(30 * time.Hour), Limit: 5000}
	resp, err := s.Query(ctx, id, q)
	if err != nil {
		t.Fatal(err)
	}
	storetest.SameRecords(t, resp.Records, recs)
	if err := s.Expire(ctx, storetest.Base.Add(26*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := tables(t, s); got != 1 {
		t.Fatalf("%d day tables after expiry, want 1", got)
	}
}

func tables(t *testing.T, s *Store) int {
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'f%\_d%' ESCAPE '\'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrent appends, queries and expires at once (run with -race):
// no query fails because a table went away under it, no append is lost.
func TestConcurrent(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	id := store.StreamID{Account: "a", Stream: "c"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id, RetentionDays: 1}); err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(20000, 30*time.Hour, 4)
	done := make(chan error, 3)
	go func() {
		for i := 0; i < len(recs); i += 2000 {
			if err := s.Append(ctx, id, recs[i:i+2000]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	stop := make(chan struct{})
	go func() {
		q := query.Request{Since: storetest.Base, Until: storetest.Base.Add(30 * time.Hour), GroupBy: []string{"srcaddr"}, Aggregates: []query.Aggregate{{Func: "count"}}}
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := s.Query(ctx, id, q); err != nil {
				done <- err
				return
			}
		}
	}()
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := s.Expire(ctx, storetest.Base.Add(24*time.Hour)); err != nil { // keeps the second day only
				done <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(stop)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Expire(ctx, storetest.Base.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	day2 := storetest.Base.Truncate(24 * time.Hour).Add(24 * time.Hour)
	resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(30 * time.Hour), Limit: query.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	var want []flow.Record
	for _, r := range recs {
		if r.End >= day2.UnixMilli() { // days after the kept one stay too
			want = append(want, r)
		}
	}
	storetest.SameRecords(t, resp.Records, want)
}
