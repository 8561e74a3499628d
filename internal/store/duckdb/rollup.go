package duckdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/flow"
	"flowlog/internal/store/query"
)

// A rollup is a summary of a day's records by a few key fields: for each
// step (a minute or an hour, by record end) and key, the sum of packets
// and bytes and the number of records. A top-N or time series over whole
// steps reads it instead of the records, and the records only for the
// parts of a step at either end of the window.
type rollup struct {
	name  string    // table suffix
	step  int64     // ms
	keys  []string  // key fields: numbers and addresses only
	parts []keyPart // the key's stored columns
}

// keyPart is one stored column of a rollup key.
type keyPart struct {
	column string
	index  int // in query.Columns
}

// maxKeyParts bounds a key's stored columns, so keys are small arrays.
const maxKeyParts = 2

// rollups, smallest first: a question is answered from the first that can.
// Ports are few, so they are summed per minute. Sources are summed per
// hour: where each source sends a flow every few minutes (a scan, many
// clients, a large network) a per-minute rollup would hold a row per
// record and cost ingest as much as it saved, while an hour holds a row per
// source. Destinations are not rolled up: spread too evenly to save much.
// A source rollup of an older flowlog holds per-minute rows, which sum the
// same within whole hours.
var rollups = []rollup{
	newRollup("port", minuteMS, "protocol", "dstport"),
	newRollup("src", hourMS, "srcaddr"),
}

func newRollup(name string, step int64, keys ...string) rollup {
	r := rollup{name: name, step: step, keys: keys}
	for _, k := range keys {
		f, ok := flow.FieldByName(k)
		switch {
		case !ok || f.Kind == flow.KindString || f.Kind == flow.KindTime:
			panic("duckdb: rollup key " + k + " is not a number or an address")
		case f.Kind == flow.KindAddr:
			r.parts = append(r.parts, keyPart{k + "_hi", columnIndex(k + "_hi")}, keyPart{k + "_lo", columnIndex(k + "_lo")})
		default:
			r.parts = append(r.parts, keyPart{k, columnIndex(k)})
		}
	}
	if len(r.parts) > maxKeyParts {
		panic("duckdb: rollup " + name + " has too many key columns")
	}
	return r
}

// columnIndex is the index of a stored column in query.Columns.
func columnIndex(name string) int {
	for i, c := range query.Columns {
		if c.Name == name {
			return i
		}
	}
	panic("duckdb: no stored column " + name)
}

// table names the rollup's table of a day table.
func (r rollup) table(day string) string { return day + "_" + r.name }

// rollupTables names every rollup table of a day table.
func rollupTables(day string) []string {
	out := make([]string, len(rollups))
	for i, r := range rollups {
		out[i] = r.table(day)
	}
	return out
}

// keyColumns returns the quoted key columns, comma-separated.
func (r rollup) keyColumns() string {
	cols := make([]string, len(r.parts))
	for i, p := range r.parts {
		cols[i] = query.Quote(p.column)
	}
	return strings.Join(cols, ", ")
}

// createTable is the DDL of a rollup table. "end" is the step's start,
// so the time conditions the query compiler writes apply unchanged.
func (r rollup) createTable(name string) string {
	cols := []string{query.Quote(query.TimeColumn) + " BIGINT NOT NULL"}
	for _, p := range r.parts {
		cols = append(cols, query.Quote(p.column)+" UBIGINT NOT NULL")
	}
	cols = append(cols, "packets UBIGINT NOT NULL", "bytes UBIGINT NOT NULL", countColumn+" UBIGINT NOT NULL")
	return "CREATE TABLE IF NOT EXISTS " + query.Quote(name) + " (" + strings.Join(cols, ", ") + ")"
}

// countColumn holds how many records a rollup row sums.
const countColumn = "flows"

const (
	minuteMS = 60_000
	hourMS   = 60 * minuteMS
)

// floorTo rounds a time down to a multiple of step, also before 1970.
func floorTo(ms, step int64) int64 {
	m := ms % step
	if m < 0 {
		m += step
	}
	return ms - m
}

type rollupKey struct {
	start int64 // of the step
	key   [maxKeyParts]uint64
}

type rollupSums struct{ packets, bytes, flows uint64 }

// add adds a record's counters unless a sum would pass 64 bits.
func (s *rollupSums) add(packets, bytes uint64) bool {
	if s.packets > math.MaxUint64-packets || s.bytes > math.MaxUint64-bytes {
		return false
	}
	s.packets += packets
	s.bytes += bytes
	s.flows++
	return true
}

// Stored columns a rollup sums, and the one it rounds to its step.
var (
	endColumn     = columnIndex(query.TimeColumn)
	packetsColumn = columnIndex("packets")
	bytesColumn   = columnIndex("bytes")
)

// aggregate sums a day's records, laid out as a day table's columns, into
// rollup rows laid out as the rollup table's. A key whose sums would
// overflow gets a second row.
func (r rollup) aggregate(recs *colSet) *colSet {
	end, packets, bytes := recs.cols[endColumn].i64, recs.cols[packetsColumn].u64, recs.cols[bytesColumn].u64
	parts := make([][]uint64, len(r.parts))
	for p, part := range r.parts {
		parts[p] = recs.cols[part.index].u64
	}
	at := make(map[rollupKey]int, recs.n/4)
	var keys []rollupKey
	var sums []rollupSums
	for i := range recs.n {
		k := rollupKey{start: floorTo(end[i], r.step)}
		for p, col := range parts {
			k.key[p] = col[i]
		}
		if n, ok := at[k]; ok && sums[n].add(packets[i], bytes[i]) {
			continue
		}
		at[k] = len(sums)
		keys = append(keys, k)
		sums = append(sums, rollupSums{packets[i], bytes[i], 1})
	}
	return r.rows(keys, sums)
}

// rows lays rollup rows out as the rollup table's columns.
func (r rollup) rows(keys []rollupKey, sums []rollupSums) *colSet {
	cs := newColSet(len(keys))
	cs.add(duckdb.TYPE_BIGINT)
	for range len(r.parts) + 3 { // key columns, packets, bytes, flows
		cs.add(duckdb.TYPE_UBIGINT)
	}
	for n, k := range keys {
		cs.cols[0].i64 = append(cs.cols[0].i64, k.start)
		for p := range r.parts {
			cs.cols[1+p].u64 = append(cs.cols[1+p].u64, k.key[p])
		}
		c := cs.cols[1+len(r.parts):]
		c[0].u64 = append(c[0].u64, sums[n].packets)
		c[1].u64 = append(c[1].u64, sums[n].bytes)
		c[2].u64 = append(c[2].u64, sums[n].flows)
	}
	return cs
}

// answers reports whether the rollup holds everything q asks about: its
// groups and filter use only key fields, and it sums bytes or packets or
// counts records, per whole steps.
func (r rollup) answers(q query.Request) bool {
	if q.Raw() {
		return false
	}
	if ms, err := q.IntervalMS(); err != nil || ms%r.step != 0 {
		return false
	}
	for _, a := range q.Aggregates {
		if a.Func != "count" && (a.Func != "sum" || a.Field != "bytes" && a.Field != "packets") {
			return false
		}
	}
	e, err := query.Parse(q.Where)
	if err != nil {
		return false
	}
	for _, f := range append(query.FilterFields(e), q.GroupBy...) {
		if !slices.Contains(r.keys, f) {
			return false
		}
	}
	return true
}

// rollupFor returns the first rollup that answers q and has a whole step
// in its window, and the whole steps [from, to); the rest of the window,
// less than a step at either end, is read from the records.
func rollupFor(q query.Request) (r rollup, from, to int64, ok bool) {
	since, until := q.Since.UnixMilli(), q.Until.UnixMilli()
	if since < 0 {
		return rollup{}, 0, 0, false
	}
	for _, r := range rollups {
		from, to = floorTo(since+r.step-1, r.step), floorTo(until, r.step)
		if from < to && r.answers(q) {
			return r, from, to, true
		}
	}
	return rollup{}, 0, 0, false
}

// rollupState tracks a rollup table's growth since it was last compacted.
type rollupState struct {
	rows      int  // rows in the table
	compacted int  // rows after the last compaction
	stuck     bool // compaction failed: left as is
}

// compactMin is the fewest new rows worth a compaction.
const compactMin = 1 << 16

// compact merges the rows of the batch's rollup tables once they have
// grown by as many rows as they had after their last merge, so each row is
// merged a bounded number of times. Each batch adds its own rows for the
// steps it touches; merging them keeps the rollup as small as the keys
// per step. A failed merge leaves the table as it was, which answers
// the same.
func (s *Store) compact(ctx context.Context, days []dayBatch) {
	for _, b := range days {
		for i, r := range rollups {
			t := r.table(b.table)
			st, err := s.rollupState(ctx, t, b.rollups[i].n)
			if err != nil || st.stuck || st.rows-st.compacted < max(st.compacted, s.compactMin) {
				continue
			}
			n, err := s.merge(ctx, r, t)
			if err != nil {
				st.stuck = ctx.Err() == nil
				s.broke() // its COMMIT may have failed in a checkpoint
				continue
			}
			st.rows, st.compacted = n, n
		}
	}
}

// rollupState returns the state of table after added rows went in; a
// table not seen since the store opened is counted.
func (s *Store) rollupState(ctx context.Context, table string, added int) (*rollupState, error) {
	if st, ok := s.rollups[table]; ok {
		st.rows += added
		return st, nil
	}
	var n int
	if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM "+query.Quote(table)).Scan(&n); err != nil {
		return nil, err
	}
	st := &rollupState{rows: n, compacted: n - added}
	s.rollups[table] = st
	return st, nil
}

// merge rewrites a rollup table with one row per step and key, in time
// order, in one transaction; concurrent queries see it before or after.
// If a step and key sums past 64 bits (a hostile or broken exporter),
// the merge is done again leaving such rows apart: queries add them up as
// they would a merged row.
func (s *Store) merge(ctx context.Context, r rollup, table string) (int, error) {
	n, err := s.mergeWith(ctx, table, mergeSQL(r, table, false))
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeConversion {
		n, err = s.mergeWith(ctx, table, mergeSQL(r, table, true))
	}
	return n, err
}

// mergeSQL selects the merged rows; apart keeps the rows of a step and
// key whose sums pass 64 bits as they are.
func mergeSQL(r rollup, table string, apart bool) string {
	t, keys := query.Quote(table), r.keyColumns()
	sums := `CAST(sum(packets) AS UBIGINT), CAST(sum(bytes) AS UBIGINT), CAST(sum(` + countColumn + `) AS UBIGINT)`
	if !apart {
		return `SELECT "end", ` + keys + `, ` + sums + ` FROM ` + t + ` GROUP BY "end", ` + keys + ` ORDER BY "end", ` + keys
	}
	big := "sum(packets) OVER k > " + maxUint + " OR sum(bytes) OVER k > " + maxUint
	return `WITH w AS (SELECT *, ` + big + ` AS big FROM ` + t + ` WINDOW k AS (PARTITION BY "end", ` + keys + `))
		SELECT "end", ` + keys + `, ` + sums + ` FROM w WHERE NOT big GROUP BY "end", ` + keys + `
		UNION ALL SELECT "end", ` + keys + `, packets, bytes, ` + countColumn + ` FROM w WHERE big
		ORDER BY "end", ` + keys
}

func (s *Store) mergeWith(ctx context.Context, table, merged string) (n int, err error) {
	t := query.Quote(table)
	steps := []string{
		"BEGIN TRANSACTION",
		"CREATE OR REPLACE TEMP TABLE rollup_merge AS " + merged,
		"DELETE FROM " + t,
		"INSERT INTO " + t + " SELECT * FROM rollup_merge",
		"DROP TABLE rollup_merge",
		"COMMIT",
	}
	for _, q := range steps {
		res, err := s.w.ExecContext(ctx, q)
		if err != nil {
			s.w.ExecContext(context.Background(), "ROLLBACK")
			return 0, fmt.Errorf("merge %s: %w", table, err)
		}
		if strings.HasPrefix(q, "INSERT") {
			rows, _ := res.RowsAffected()
			n = int(rows)
		}
	}
	return n, nil
}
