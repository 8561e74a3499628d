package duckdb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
	"flowlog/internal/testutil"
)

// TestFailedCheckpoint: on a full disk, a commit that fails in the
// checkpoint DuckDB runs once the WAL passes its threshold (16 MiB) moves
// nothing on and loses nothing: Committed says what is durable, the
// records committed before are all read, and when space returns the
// retried batch is stored once, and all of it is there after reopening.
func TestFailedCheckpoint(t *testing.T) {
	mnt := testutil.Tmpfs(t, 64)
	dir := filepath.Join(mnt, "data")
	ctx := context.Background()
	s := open(t, dir)
	id := store.StreamID{Account: "a", Stream: "s"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	var next uint64
	for walBytes(t, dir) < 15<<20 { // a batch short of the threshold
		b := numbered(next, 5000)
		if err := s.Commit(ctx, id, b); err != nil {
			t.Fatal(err)
		}
		next = b.Next()
	}
	filler := filepath.Join(mnt, "filler")
	testutil.Fill(t, filler, 1<<20) // room for the WAL, not for the checkpoint
	b := numbered(next, 10000)
	if err := s.Commit(ctx, id, b); err == nil {
		t.Fatal("a commit on a full disk did not fail")
	}
	wantHeld(t, s, id, next, "after the failed commit")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, id, b.After(next)); err != nil {
		t.Fatalf("the retry with space: %v", err)
	}
	wantHeld(t, s, id, b.Next(), "after the retry")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, open(t, dir), id, b.Next(), "reopened")
}

// numbered is n records at positions first on, numbered by their bytes.
func numbered(first uint64, n int) store.Batch {
	recs := storetest.Records(n, time.Minute, first)
	for i := range recs {
		recs[i].Bytes = first + uint64(i)
	}
	return store.Batch{First: first, Records: recs}
}

func walBytes(t *testing.T, dir string) int64 {
	t.Helper()
	info, err := os.Stat(filepath.Join(dir, FileName+".wal"))
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// wantHeld fails unless the store says it committed up to next and holds
// the records numbered 0 to next-1, once each.
func wantHeld(t *testing.T, s *Store, id store.StreamID, next uint64, when string) {
	t.Helper()
	if got, err := s.Committed(context.Background(), id); err != nil || got != next {
		t.Errorf("%s: Committed = %d, %v; want %d", when, got, err, next)
	}
	resp, err := s.Query(context.Background(), id, query.Request{Since: storetest.Base.Add(-time.Hour),
		Until: storetest.Base.Add(time.Hour), Where: "srcport >= 0",
		Aggregates: []query.Aggregate{{Func: "count"}, {Func: "count_distinct", Field: "bytes"}, {Func: "sum", Field: "bytes"}}})
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	row := resp.Rows[0]
	if n, d, sum := row[0].(uint64), row[1].(uint64), row[2].(uint64); n != next || d != next || sum != next*(next-1)/2 {
		t.Errorf("%s: %d records, %d distinct, sum %d; want records 0 to %d once each", when, n, d, sum, next-1)
	}
}
