package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
)

// Rollups (see package rollup): each stream has a SummingMergeTree table
// per rollup, fed by a materialized view on the stream's table. Every
// INSERT into the stream's table, Append's or Commit's move out of its
// staging table, passes its rows through the views as it writes them, so
// a rollup holds what the stream's table holds: Commit's marks, which
// keep each record stored once across retries, keep it rolled up once.
//
// The server sums a table's rows by key only when it merges parts, so a
// reader always groups and sums. ClickHouse adds UInt64 modulo 2^64 and
// 18.16 has nothing wider, so a counter is rolled up as the sums of its
// two 32-bit halves (which cannot overflow below 2^32 records per step
// and key), and a query adds them up as Dialect.Sum does for records.
//
// A stream created by a flowlog without rollups keeps none: its records
// were not fed into them, and filling them while agents write would count
// some records twice or not at all. Its queries read the records.

// counters are the rolled-up sums, each kept as two halves.
var counters = []string{"packets", "bytes"}

func halves(counter string) (hi, lo string) { return counter + "_hi32", counter + "_lo32" }

// stepColumn holds the start of a rollup row's step.
const stepColumn = "step"

func rollupTableID(id store.StreamID, r rollup.Rollup) string { return tableID(id) + "_" + r.Name }
func rollupViewID(id store.StreamID, r rollup.Rollup) string  { return rollupTableID(id, r) + "_feed" }

// createRollups creates a new stream's rollup tables and the views feeding
// them from its table.
func (s *Store) createRollups(ctx context.Context, id store.StreamID) error {
	for _, r := range rollup.All {
		cols := []string{query.Quote(stepColumn) + " Int64"}
		var parts, sums, sel []string
		for _, p := range r.Parts {
			cols = append(cols, query.Quote(p.Column)+" UInt64")
			parts = append(parts, query.Quote(p.Column))
		}
		for _, c := range counters {
			hi, lo := halves(c)
			cols = append(cols, query.Quote(hi)+" UInt64", query.Quote(lo)+" UInt64")
			sums = append(sums, query.Quote(hi), query.Quote(lo))
			sel = append(sel, "sum(intDiv("+query.Quote(c)+", "+half+")) AS "+query.Quote(hi),
				"sum("+query.Quote(c)+" % "+half+") AS "+query.Quote(lo))
		}
		count := query.Quote(rollup.CountColumn)
		cols = append(cols, count+" UInt64", "day Date")
		sums = append(sums, count)
		keys := strings.Join(append([]string{query.Quote(stepColumn)}, parts...), ", ")
		table, view := rollupTableID(id, r), rollupViewID(id, r)
		err := s.createTable(ctx, table, "("+strings.Join(cols, ", ")+")",
			s.engine("SummingMergeTree", table, "("+strings.Join(sums, ", ")+")")+" PARTITION BY day ORDER BY ("+keys+")")
		if err != nil {
			return err
		}
		err = s.ddl(ctx, "CREATE MATERIALIZED VIEW IF NOT EXISTS "+s.table(view)+s.onCluster()+" TO "+s.table(table)+
			" AS SELECT "+stepOf(r.Step)+" AS "+query.Quote(stepColumn)+", "+strings.Join(parts, ", ")+", "+
			strings.Join(sel, ", ")+", count() AS "+count+", day FROM "+s.dataTable(id)+" GROUP BY "+keys+", day",
			tableCount(s.db, view)+" = 1")
		if err != nil {
			return err
		}
	}
	return nil
}

// half is 2^32, where a counter is split.
const half = "4294967296"

// stepOf rounds the time column down to a multiple of step, also before
// 1970 (ClickHouse's % takes the sign of the dividend, and the type of a
// small divisor: the step is an Int64, so the remainder is too).
func stepOf(step int64) string {
	t, n := query.Quote(query.TimeColumn), "toInt64("+strconv.FormatInt(step, 10)+")"
	return "(" + t + " - (" + t + " % " + n + " + " + n + ") % " + n + ")"
}

// rollupObjects names the stream's views and rollup tables, views first,
// so that dropping them in order leaves no view without its table.
func rollupObjects(id store.StreamID) []string {
	var views, tables []string
	for _, r := range rollup.All {
		views = append(views, rollupViewID(id, r))
		tables = append(tables, rollupTableID(id, r))
	}
	return append(views, tables...)
}

// rollupTableIDs names the stream's rollup tables, which expire with its
// table.
func rollupTableIDs(id store.StreamID) []string {
	out := make([]string, len(rollup.All))
	for i, r := range rollup.All {
		out[i] = rollupTableID(id, r)
	}
	return out
}

// UseRollups sets whether queries may be answered from rollups (the
// default); without, they read the records.
func (s *Store) UseRollups(on bool) { s.noRollups.Store(!on) }

// hasRollups reports whether the stream has its rollups: whether every
// view feeding them exists (the last of its objects made). A stream keeps
// the answer until it is deleted.
func (s *Store) hasRollups(ctx context.Context, id store.StreamID) (bool, error) {
	s.mu.Lock()
	has, known := s.rolled[id]
	s.mu.Unlock()
	if known {
		return has, nil
	}
	views := make([]string, len(rollup.All))
	for i, r := range rollup.All {
		views[i] = literal(rollupViewID(id, r))
	}
	rows, err := s.c.selectTSV(ctx, "SELECT count() FROM system.tables WHERE database = "+literal(s.db)+
		" AND name IN ("+strings.Join(views, ", ")+")", []query.SQLType{query.SQLUint})
	if err != nil {
		return false, err
	}
	has = rows[0][0].(uint64) == uint64(len(views))
	s.mu.Lock()
	s.rolled[id] = has
	s.mu.Unlock()
	return has, nil
}

// rollupSource is what a query that a rollup answers reads over the
// streams: for each stream with rollups, the rollup's whole steps of the
// window and the records of the parts of a step at either end; for any
// other, the records of the window; all as rollup rows. ok is false when
// no rollup answers the query or no stream has rollups.
func (s *Store) rollupSource(ctx context.Context, ids []store.StreamID, q query.Request) (from string, ok bool, err error) {
	p, ok := rollup.For(q)
	if !ok || s.noRollups.Load() {
		return "", false, nil
	}
	window := rollup.Span{From: q.Since.UnixMilli(), To: q.Until.UnixMilli()}
	var parts []string
	rolled := false
	for _, id := range ids {
		has, err := s.hasRollups(ctx, id)
		if err != nil {
			return "", false, err
		}
		if !has {
			parts = append(parts, s.recordsAsRollup(id, p.Rollup, window))
			continue
		}
		bad, err := s.unsummedDays(ctx, id, p)
		if err != nil {
			return "", false, err
		}
		rolled = true
		parts = append(parts, s.rollupRows(id, p, bad))
		for _, e := range p.Edges {
			parts = append(parts, s.recordsAsRollup(id, p.Rollup, e))
		}
		if len(bad) > 0 {
			parts = append(parts, s.recordsAsRollup(id, p.Rollup, p.Steps)+" AND day IN ("+strings.Join(bad, ", ")+")")
		}
	}
	if !rolled {
		return "", false, nil
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")", true, nil
}

// rollupRows selects the rollup's rows of the plan's whole steps, with the
// step's start as the time column, so the compiler's time conditions and
// buckets apply unchanged.
func (s *Store) rollupRows(id store.StreamID, p rollup.Plan, skip []string) string {
	sel := []string{query.Quote(stepColumn) + " AS " + query.Quote(query.TimeColumn), p.KeyColumns()}
	for _, c := range counters {
		hi, lo := halves(c)
		sel = append(sel, query.Quote(hi), query.Quote(lo))
	}
	sel = append(sel, query.Quote(rollup.CountColumn))
	step := query.Quote(stepColumn)
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + s.table(rollupTableID(id, p.Rollup)) + " WHERE " +
		step + " >= " + literal(p.Steps.From) + " AND " + step + " < " + literal(p.Steps.To)
	if len(skip) > 0 {
		q += " AND day NOT IN (" + strings.Join(skip, ", ") + ")"
	}
	return q
}

// unsummedDays returns the days of the plan's steps (as SQL dates) whose
// rollup does not count every record of the day: where ClickHouse stopped
// between storing a block of records and its views' blocks, or where a
// reader sees a block before its views' ones. Those days are read from the
// records. The records of a day are counted from the metadata of its
// partition, so the check reads no records.
func (s *Store) unsummedDays(ctx context.Context, id store.StreamID, p rollup.Plan) ([]string, error) {
	day := func(ms int64) string {
		return "toDate(" + literal(time.UnixMilli(ms).UTC().Format(time.DateOnly)) + ")"
	}
	first, last := day(p.Steps.From), day(p.Steps.To-1)
	rows, err := s.c.selectTSV(ctx, "SELECT toString(d) FROM (SELECT min_date AS d, sum(rows) AS n FROM system.parts"+
		" WHERE active AND database = "+literal(s.db)+" AND table = "+literal(tableID(id))+" GROUP BY d)"+
		" ANY FULL OUTER JOIN (SELECT day AS d, sum("+query.Quote(rollup.CountColumn)+") AS m FROM "+
		s.table(rollupTableID(id, p.Rollup))+" WHERE day BETWEEN "+first+" AND "+last+" GROUP BY d) USING d"+
		" WHERE d BETWEEN "+first+" AND "+last+" AND n != m", []query.SQLType{query.SQLString})
	if err != nil {
		return nil, fmt.Errorf("clickhouse store: rollup check: %w", err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = "toDate(" + literal(r[0].(string)) + ")"
	}
	return out, nil
}

// recordsAsRollup selects the stream's records in the span as rollup
// rows of one record each.
func (s *Store) recordsAsRollup(id store.StreamID, r rollup.Rollup, sp rollup.Span) string {
	t := query.Quote(query.TimeColumn)
	sel := []string{t, r.KeyColumns()}
	for _, c := range counters {
		hi, lo := halves(c)
		sel = append(sel, "intDiv("+query.Quote(c)+", "+half+") AS "+query.Quote(hi), query.Quote(c)+" % "+half+" AS "+query.Quote(lo))
	}
	sel = append(sel, "toUInt64(1) AS "+query.Quote(rollup.CountColumn))
	return "SELECT " + strings.Join(sel, ", ") + " FROM " + s.dataTable(id) + " WHERE " +
		t + " >= " + literal(sp.From) + " AND " + t + " < " + literal(sp.To)
}

// rollupDialect sums a counter of rollup rows from its halves.
type rollupDialect struct{ Dialect }

func (d rollupDialect) Sum(col string) string {
	for _, c := range counters {
		if col == query.Quote(c) {
			hi, lo := halves(c)
			return sumHalves("sum("+query.Quote(hi)+")", "sum("+query.Quote(lo)+")")
		}
	}
	return d.Dialect.Sum(col)
}
