package duckdb

import (
	"context"
	"testing"
	"time"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

func TestSmoke(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	id := store.StreamID{Account: "a", Stream: "s"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(5000, 4*time.Hour, 1)
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(5 * time.Hour), GroupBy: []string{"srcaddr"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}, {Func: "count_distinct", Field: "dstaddr"}}, Limit: 5, Interval: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", resp)
	resp, err = s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(5 * time.Hour), Where: "srcaddr in 10.0.0.0/16 and dstport in (22, 80)", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", resp)
}
