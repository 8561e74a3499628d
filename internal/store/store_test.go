package store_test

import (
	"context"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
)

func TestDay(t *testing.T) {
	for _, tt := range []struct {
		ms   int64
		want int64
	}{{0, 0}, {86399999, 0}, {86400000, 1}, {-1, -1}, {-86400000, -1}, {-86400001, -2}} {
		if got := store.Day(tt.ms); got != tt.want {
			t.Errorf("Day(%d) = %d, want %d", tt.ms, got, tt.want)
		}
	}
	now := time.Date(2026, 3, 14, 13, 0, 0, 0, time.UTC)
	if first, ok := store.ExpiredBefore(now, 1); !ok || first != store.Day(now.UnixMilli()) {
		t.Errorf("retention 1 day keeps only today: got %d", first)
	}
	if _, ok := store.ExpiredBefore(now, 0); ok {
		t.Error("retention 0 must keep everything")
	}
}

// fixedCatalog lists the same streams, of one account, every time.
type fixedCatalog []store.Stream

func (c fixedCatalog) LogStreams(context.Context) ([]store.Stream, error) { return c, nil }
func (c fixedCatalog) Accounts(context.Context) ([]string, error)         { return []string{"a"}, nil }

// TestEnforceRetention runs the background job on a real store: records
// older than the retention disappear without anyone calling Expire.
func TestEnforceRetention(t *testing.T) {
	s, err := duckdb.New(duckdb.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id := store.StreamID{Account: "a", Stream: "s"}
	stream := store.Stream{StreamID: id, RetentionDays: 3}
	if err := s.CreateStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	recs := []flow.Record{{Bytes: 1, End: now.UnixMilli()}, {Bytes: 2, End: now.AddDate(0, 0, -10).UnixMilli()}}
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	go store.FollowCatalog(ctx, s, fixedCatalog{stream}, 10*time.Millisecond, nil)
	q := query.Request{Since: now.AddDate(0, 0, -30), Until: now.Add(time.Hour), Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := s.Query(ctx, id, q)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Rows[0][0] == uint64(1) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sum of bytes still %v; the 10-day-old record was not expired", resp.Rows[0][0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
