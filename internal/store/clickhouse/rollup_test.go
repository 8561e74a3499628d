package clickhouse

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
	"flowlog/internal/store/storetest"
)

func openRollups(t *testing.T, url, db string, ids ...store.StreamID) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := New(ctx, Config{URL: url, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func appendAll(t *testing.T, s *Store, id store.StreamID, recs []flow.Record, batch int) {
	t.Helper()
	for b := range slices.Chunk(recs, batch) {
		if err := s.Append(context.Background(), id, b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRollups appends many small batches (so rollup rows of one step and
// key sit in many unmerged parts) and checks that the questions a rollup
// can answer are planned onto one and get the oracle's answer, as they do
// from the records, in windows on and off minute and hour boundaries.
func TestRollups(t *testing.T) {
	ctx := context.Background()
	id := store.StreamID{Account: "a", Stream: "r"}
	s := openRollups(t, chtest.Start(t), "flowlog_rollup", id)
	recs := storetest.RollupRecords()
	appendAll(t, s, id, recs, 1000)
	qs := storetest.RollupCases()
	for i, q := range qs {
		_, rolled, err := s.rollupSource(ctx, []store.StreamID{id}, q)
		if err != nil || rolled != (i < len(qs)-1) {
			t.Errorf("query %d: answered from a rollup: %v, %v", i, rolled, err)
		}
		storetest.SameBothWays(t, s, id, q, recs)
	}
	wantRolledOnce(t, s, id, recs)
}

// TestRollupReadsFewRows checks, by the server's own count of the rows a
// query reads (max_rows_to_read), that a top 10 over whole hours and a
// per-minute series over a window off the minutes read the rollups and
// the edges of the window, not the records, and answer as the oracle.
func TestRollupReadsFewRows(t *testing.T) {
	ctx := context.Background()
	id := store.StreamID{Account: "a", Stream: "few"}
	s := openRollups(t, chtest.Start(t), "flowlog_rollup", id)
	recs := storetest.Records(400_000, 3*time.Hour, 7)
	appendAll(t, s, id, recs, len(recs)) // one part per day
	limit := len(recs) / 4               // the rollups hold ~8k rows, the edges a few granules of 8192
	base, odd := storetest.Base, storetest.Base.Add(61*time.Second+7*time.Millisecond)
	for _, q := range []query.Request{
		{Since: base, Until: base.Add(3 * time.Hour), GroupBy: []string{"srcaddr"}, Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, Limit: 10},
		{Since: odd, Until: odd.Add(170 * time.Minute), Interval: "1m", Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}}, Limit: 1000},
	} {
		if err := s.readsAtMost(ctx, id, q, limit); err != nil {
			t.Errorf("%+v: %v", q, err)
		}
		s.UseRollups(false)
		err := s.readsAtMost(ctx, id, q, limit)
		s.UseRollups(true)
		if err == nil || !strings.Contains(err.Error(), "Limit for rows to read exceeded") {
			t.Errorf("%+v from the records read at most %d rows (%v): the limit tests nothing", q, limit, err)
		}
		got, err := s.Query(ctx, id, q)
		storetest.Check(t, q, got, err, recs)
	}
}

// readsAtMost runs the query as planned, with the server refusing to read
// more than limit rows.
func (s *Store) readsAtMost(ctx context.Context, id store.StreamID, q query.Request, limit int) error {
	p, err := s.plan(ctx, []store.StreamID{id}, q)
	if err != nil {
		return err
	}
	_, err = s.c.doWith(ctx, "", url.Values{"max_rows_to_read": {strconv.Itoa(limit)}}, strings.NewReader(p.SQL))
	return err
}

// TestStreamWithoutRollups checks a stream made before rollups existed
// (its views and rollup tables dropped): creating it again adds none, its
// queries read its records, and a query over it and a stream with rollups
// reads each its own way and answers as the oracle over both.
func TestStreamWithoutRollups(t *testing.T) {
	ctx := context.Background()
	url := chtest.Start(t)
	old, cur := store.StreamID{Account: "a", Stream: "old"}, store.StreamID{Account: "a", Stream: "new"}
	s := openRollups(t, url, "flowlog_old", old, cur)
	for _, o := range rollupObjects(old) {
		if err := s.c.exec(ctx, "DROP TABLE "+s.table(o)); err != nil {
			t.Fatal(err)
		}
	}
	s = openRollups(t, url, "flowlog_old", old, cur) // the next process
	recsOld, recsCur := storetest.Records(5000, 3*time.Hour, 31), storetest.Records(5000, 3*time.Hour, 32)
	appendAll(t, s, old, recsOld, 1000)
	appendAll(t, s, cur, recsCur, 1000)
	for _, id := range []store.StreamID{old, cur} {
		if has, err := s.hasRollups(ctx, id); err != nil || has != (id == cur) {
			t.Errorf("%s has rollups: %v, %v", id, has, err)
		}
	}
	q := storetest.RollupCases()[1]
	if _, rolled, _ := s.rollupSource(ctx, []store.StreamID{old}, q); rolled {
		t.Errorf("the stream without rollups is answered from rollups")
	}
	for ids, recs := range map[string][]flow.Record{"old": recsOld, "both": slices.Concat(recsOld, recsCur)} {
		streams := []store.StreamID{old}
		if ids == "both" {
			streams = append(streams, cur)
		}
		got, err := s.QueryStreams(ctx, streams, q)
		storetest.Check(t, q, got, err, recs)
	}
}

// wantRolledOnce fails unless each rollup of the stream sums every record
// once: as many records, packets and bytes as recs, each step and key as
// the records'.
func wantRolledOnce(t *testing.T, s *Store, id store.StreamID, recs []flow.Record) {
	t.Helper()
	ctx := context.Background()
	var packets, bytes uint64
	for _, r := range recs {
		packets, bytes = packets+r.Packets, bytes+r.Bytes // modulo 2^64, as the server adds
	}
	for _, r := range rollup.All {
		if s.cluster != "" { // a replica lost mid-insert may leave records unsummed, which queries read as records
			break
		}
		ph, pl := halves("packets")
		bh, bl := halves("bytes")
		rows, err := s.c.selectTSV(ctx, "SELECT sum("+rollup.CountColumn+"), sum("+ph+") * 4294967296 + sum("+pl+"), sum("+bh+
			") * 4294967296 + sum("+bl+") FROM "+s.table(rollupTableID(id, r)), []query.SQLType{query.SQLUint, query.SQLUint, query.SQLUint})
		if err != nil {
			t.Fatal(err)
		}
		if got := rows[0]; got[0] != uint64(len(recs)) || got[1] != packets || got[2] != bytes {
			t.Errorf("rollup %s sums %v records, packets, bytes; want %d, %d, %d", r.Name, got, len(recs), packets, bytes)
		}
	}
	q := query.Request{Since: storetest.Base, Until: storetest.Base.Add(3 * time.Hour), Interval: "1m", GroupBy: []string{"protocol"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}}, Limit: query.MaxLimit}
	if _, rolled, err := s.rollupSource(ctx, []store.StreamID{id}, q); err != nil || !rolled {
		t.Fatalf("per-minute series not answered from the rollup: %v", err)
	}
	got, err := s.Query(ctx, id, q)
	storetest.Check(t, q, got, err, recs)
}

// TestUnsummedDay stores records while the views miss them, as when
// ClickHouse stops between a block of records and its views' blocks: a
// question a rollup answers still counts them, the days concerned being
// read from the records, and days whose rollups are whole still come from
// the rollups.
func TestUnsummedDay(t *testing.T) {
	ctx := context.Background()
	id := store.StreamID{Account: "a", Stream: "gap"}
	s := openRollups(t, chtest.Start(t), "flowlog_gap", id)
	recs := storetest.RollupRecords()
	appendAll(t, s, id, recs, 5000)
	missed := storetest.Records(700, time.Hour, 77) // the hour after Base: one day
	views := make([]string, len(rollup.All))
	for i, r := range rollup.All {
		views[i] = s.table(rollupViewID(id, r))
		if err := s.c.exec(ctx, "DETACH TABLE "+views[i]); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(t, s, id, missed, 700)
	for _, v := range views {
		if err := s.c.exec(ctx, "ATTACH TABLE "+v); err != nil {
			t.Fatal(err)
		}
	}
	all := append(slices.Clone(recs), missed...)
	qs := storetest.RollupCases()
	for _, q := range qs[:len(qs)-1] {
		p, _ := rollup.For(q)
		bad, err := s.unsummedDays(ctx, id, p)
		if err != nil {
			t.Fatal(err)
		}
		missedDay := store.Day(storetest.Base.UnixMilli())
		covers := store.Day(p.Steps.From) <= missedDay && missedDay <= store.Day(p.Steps.To-1)
		if (len(bad) == 1) != covers || len(bad) > 1 {
			t.Errorf("%+v: unsummed days %v; the steps cover the day of the missed records: %v", q, bad, covers)
		}
		storetest.SameBothWays(t, s, id, q, all)
	}
}
