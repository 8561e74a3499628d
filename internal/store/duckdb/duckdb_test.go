package duckdb

import (
	"context"
	"database/sql"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
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
	if days, rolled := tables(t, s); days != 3 || rolled != 3*len(rollup.All) {
		t.Fatalf("%d day tables and %d rollup tables, want 3 and %d", days, rolled, 3*len(rollup.All))
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
	if days, rolled := tables(t, s); days != 1 || rolled != len(rollup.All) {
		t.Fatalf("%d day tables and %d rollup tables after expiry, want 1 and %d", days, rolled, len(rollup.All))
	}
}

// tables counts the day tables and the rollup tables.
func tables(t *testing.T, s *Store) (days, rolled int) {
	err := s.DB().QueryRow(`SELECT count(*) FILTER (WHERE regexp_matches(table_name, '^f[0-9]+_d[0-9]+$')),
		count(*) FILTER (WHERE regexp_matches(table_name, '^f[0-9]+_d[0-9]+_[a-z]+$')) FROM duckdb_tables()`).Scan(&days, &rolled)
	if err != nil {
		t.Fatal(err)
	}
	return days, rolled
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

// TestRollups appends many small batches (so rollup tables are merged
// several times) and checks that the questions a rollup can answer are
// planned onto one and get the same answer as from the records and from
// the Go oracle, for windows on and off minute and hour boundaries.
func TestRollups(t *testing.T) {
	s := open(t, t.TempDir())
	s.compactMin = 500
	ctx := context.Background()
	id := store.StreamID{Account: "a", Stream: "r"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	recs := storetest.RollupRecords() // crosses midnight; the huge counters are merged with every later batch
	for b := range slices.Chunk(recs, 1000) {
		if err := s.Append(ctx, id, b); err != nil {
			t.Fatal(err)
		}
	}
	qs := storetest.RollupCases()
	for i, q := range qs {
		_, opts := s.source([]store.StreamID{id}, q)
		if rolled := opts.Count != ""; rolled != (i < len(qs)-1) {
			t.Errorf("query %d: answered from a rollup: %v", i, rolled)
		}
		storetest.SameBothWays(t, s, id, q, recs)
	}
	for name, st := range s.rollups {
		if st.stuck {
			t.Errorf("rollup %s could not be merged", name)
		}
	}
	// Each batch adds rows for most minutes of the (protocol, dstport)
	// rollup; merging keeps it near one row per minute and key.
	var rows, keys int
	err := s.DB().QueryRow(`SELECT (SELECT count(*) FROM f1_d20526_port), (SELECT count(*) FROM
		(SELECT DISTINCT "end" // 60000, protocol, dstport FROM f1_d20526))`).Scan(&rows, &keys)
	if err != nil {
		t.Fatal(err)
	}
	if rows > 2*keys {
		t.Errorf("port rollup of the first day has %d rows for %d minute keys: not merged", rows, keys)
	}
}

// TestEarlierLayout checks that a data directory written with the earlier
// table layout (text columns, no layout table) is refused, not misread.
func TestEarlierLayout(t *testing.T) {
	dir := t.TempDir()
	c, err := duckdb.NewConnector(filepath.Join(dir, FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	_, err = db.Exec(`CREATE TABLE streams (num INTEGER PRIMARY KEY, account VARCHAR, stream VARCHAR,
		log_group VARCHAR, retention_days INTEGER, created BIGINT)`)
	db.Close()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := New(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "earlier flowlog") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("opening an earlier layout: %v, want a refusal", err)
	}
}

// TestHostileDays stores records on days before 1970 and on thousands of
// scattered days (as a router with a broken or hostile clock sends them):
// every one is queryable, before and after a restart, and retention drops
// the old days.
func TestHostileDays(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	id := store.StreamID{Account: "a", Stream: "s"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id, RetentionDays: 30}); err != nil {
		t.Fatal(err)
	}
	const days = 1200 // more than DuckDB's limit of 1000 nested expressions
	recs := storetest.Records(days, time.Hour, 11)
	for i := range recs { // days -400 … 799, before and after 1970
		recs[i].End = int64(i-400)*86400000 + 12345
	}
	recs[0].End = math.MinInt64 / 2 // far before 1970
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	all := query.Request{Since: time.UnixMilli(math.MinInt64 / 2).UTC(), Until: time.UnixMilli(days * 86400000).UTC(), Limit: query.MaxLimit}
	top := query.Request{Since: all.Since, Until: all.Until, GroupBy: []string{"srcaddr"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}}, Limit: 1000}
	check := func(when string) {
		t.Helper()
		resp, err := s.Query(ctx, id, all)
		if err != nil {
			t.Fatalf("%s: all records: %v", when, err)
		}
		storetest.SameRecords(t, resp.Records, recs)
		for _, q := range []query.Request{top, {Since: time.Unix(0, 0).UTC(), Until: time.Unix(30*86400, 0).UTC(), Interval: "24h"}} {
			got, err := s.Query(ctx, id, q)
			if err != nil {
				t.Fatalf("%s: %+v: %v", when, q, err)
			}
			want, _ := storetest.Answer(q, recs)
			storetest.Equal(t, q, got, want)
		}
	}
	check("before restart")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	check("after restart")
	if err := s.Expire(ctx, time.UnixMilli(500*86400000).UTC()); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Query(ctx, id, query.Request{Since: all.Since, Until: all.Until, Aggregates: []query.Aggregate{{Func: "count"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Rows[0][0], uint64(799-471+1); got != want { // days 471 … 799 stay
		t.Errorf("after expiry %v records, want %d (days before 1970 must expire too)", got, want)
	}
}

// TestReopenCommit: a reopened store resumes from Committed and stores an
// overlapping re-commit once.
func TestReopenCommit(t *testing.T) {
	dir := t.TempDir()
	storetest.RunReopen(t, func(t *testing.T) store.Store { return open(t, dir) })
}

// TestUpgradeLayout5: day tables made by record layout 5 gain the columns
// of layout 6 on open.
func TestUpgradeLayout5(t *testing.T) {
	dir := t.TempDir()
	storetest.RunUpgrade(t, func(t *testing.T) store.Store {
		s, err := New(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T) { dropLayout6(t, dir) })
}

// dropLayout6 turns the store in dir into one written by record layout 5:
// the day tables and the empty table without the columns of layout 6.
func dropLayout6(t *testing.T, dir string) {
	t.Helper()
	db, err := sql.Open("duckdb", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT table_name FROM duckdb_tables() WHERE regexp_matches(table_name, '^f[0-9]+_d[0-9]+$') OR table_name = 'empty_flows'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) != 4 {
		t.Fatalf("tables %v, want three days and the empty table", tables)
	}
	for _, table := range tables {
		for _, c := range storetest.Layout6Columns {
			if _, err := db.Exec("ALTER TABLE " + query.Quote(table) + " DROP COLUMN " + query.Quote(c.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestManyNewStrings: a batch with more new text values than one
// dictionary statement takes (AS names) stores them all, across a reopen.
func TestManyNewStrings(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	id := store.StreamID{Account: "a", Stream: "s"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id, Group: "g"}); err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(5*dictionaryChunk+7, time.Hour, 9)
	for i := range recs {
		recs[i].SrcASName, recs[i].DstCountry = "AS name "+strconv.Itoa(i), "C"+strconv.Itoa(i%3)
	}
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	resp, err := s.Query(ctx, id, query.Request{Since: storetest.Base, Until: storetest.Base.Add(time.Hour), Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	storetest.SameRecords(t, resp.Records, recs)
}
