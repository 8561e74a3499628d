package clickhouse

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

// TestWritersKeepApart: the server and two agents commit to one stream,
// each from its own spool whose positions start at 0, with the first
// attempt of every batch storing its rows but losing its answer, and one
// writer restarting in the middle. Every writer's records are stored
// exactly once: positions, marks and staging tables of one writer never
// count for another.
func TestWritersKeepApart(t *testing.T) {
	target := chtest.Start(t)
	ctx := context.Background()
	id := store.StreamID{Account: "acct", Stream: "shared"}
	const size = 3000
	open := func(proxyURL, writer string) *Store {
		t.Helper()
		s, err := New(ctx, Config{URL: proxyURL, Database: "flowlog_writers", Timeout: 10 * time.Second, Writer: writer})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var all []flow.Record
	for i, w := range []string{"", "edge1", "edge2"} {
		recs := storetest.Records(9000, 3*time.Hour, uint64(20+i))
		all = append(all, recs...)
		proxy := &faultyProxy{target: target, fault: loseAnswer}
		srv := httptest.NewServer(proxy)
		s := open(srv.URL, w)
		// A first process commits one batch and dies with the second in flight.
		if err := s.Commit(ctx, id, store.Batch{First: 0, Records: recs[:size]}); err != nil {
			t.Fatal(err)
		}
		proxy.arm()
		if err := s.Commit(ctx, id, store.Batch{First: size, Records: recs[size : 2*size]}); err == nil {
			t.Fatal("the spoilt commit succeeded")
		}
		s = open(srv.URL, w) // the next process
		if got, err := s.Committed(ctx, id); err != nil || got != size {
			t.Fatalf("writer %q: Committed = %d, %v; want %d, its own", w, got, err, size)
		}
		commitAll(t, s, proxy, id, recs, size, func(first uint64) bool { return first == 2*size })
		if got, err := s.Committed(ctx, id); err != nil || got != uint64(len(recs)) {
			t.Fatalf("writer %q: Committed = %d, %v; want %d", w, got, err, len(recs))
		}
		if left, err := s.stagesOn(ctx, s.c, id); err != nil || len(left) > 0 {
			t.Errorf("writer %q: staging tables left: %v, %v", w, left, err)
		}
		srv.Close()
	}
	s := open(target, "")
	resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(3 * time.Hour), Limit: query.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Records) != len(all) {
		t.Fatalf("%d records stored, want %d", len(resp.Records), len(all))
	}
	storetest.SameRecords(t, resp.Records, all)
	if w1, w2 := store.WriterNumber("edge1"), store.WriterNumber("edge2"); w1 == 0 || w1 == w2 || w2 == 0 {
		t.Errorf("writer numbers %d, %d", w1, w2)
	}
}
