package duckdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
)

// Rollup tables: each day table has one per rollup.Rollup, holding its
// sums of the day's records. A source rollup of an older flowlog holds
// per-minute rows, which sum the same within whole hours.

// rollupTable names the rollup's table of a day table.
func rollupTable(r rollup.Rollup, day string) string { return day + "_" + r.Name }

// rollupTables names every rollup table of a day table.
func rollupTables(day string) []string {
	out := make([]string, len(rollup.All))
	for i, r := range rollup.All {
		out[i] = rollupTable(r, day)
	}
	return out
}

// createRollupTable is the DDL of a rollup table. "end" is the step's
// start, so the time conditions the query compiler writes apply unchanged.
func createRollupTable(r rollup.Rollup, name string) string {
	cols := []string{query.Quote(query.TimeColumn) + " BIGINT NOT NULL"}
	for _, p := range r.Parts {
		cols = append(cols, query.Quote(p.Column)+" UBIGINT NOT NULL")
	}
	cols = append(cols, "packets UBIGINT NOT NULL", "bytes UBIGINT NOT NULL", countColumn+" UBIGINT NOT NULL")
	return "CREATE TABLE IF NOT EXISTS " + query.Quote(name) + " (" + strings.Join(cols, ", ") + ")"
}

const countColumn = rollup.CountColumn

type rollupKey struct {
	start int64 // of the step
	key   [rollup.MaxParts]uint64
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
	endColumn     = query.ColumnIndex(query.TimeColumn)
	packetsColumn = query.ColumnIndex("packets")
	bytesColumn   = query.ColumnIndex("bytes")
)

// aggregate sums a day's records, laid out as a day table's columns, into
// rollup rows laid out as the rollup table's. A key whose sums would
// overflow gets a second row.
func aggregate(r rollup.Rollup, recs *colSet) *colSet {
	end, packets, bytes := recs.cols[endColumn].i64, recs.cols[packetsColumn].u64, recs.cols[bytesColumn].u64
	parts := make([][]uint64, len(r.Parts))
	for p, part := range r.Parts {
		parts[p] = recs.cols[part.Index].u64
	}
	at := make(map[rollupKey]int, recs.n/4)
	var keys []rollupKey
	var sums []rollupSums
	for i := range recs.n {
		k := rollupKey{start: rollup.Floor(end[i], r.Step)}
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
	return rollupRows(r, keys, sums)
}

// rollupRows lays rollup rows out as the rollup table's columns.
func rollupRows(r rollup.Rollup, keys []rollupKey, sums []rollupSums) *colSet {
	cs := newColSet(len(keys))
	cs.add(duckdb.TYPE_BIGINT)
	for range len(r.Parts) + 3 { // key columns, packets, bytes, flows
		cs.add(duckdb.TYPE_UBIGINT)
	}
	for n, k := range keys {
		cs.cols[0].i64 = append(cs.cols[0].i64, k.start)
		for p := range r.Parts {
			cs.cols[1+p].u64 = append(cs.cols[1+p].u64, k.key[p])
		}
		c := cs.cols[1+len(r.Parts):]
		c[0].u64 = append(c[0].u64, sums[n].packets)
		c[1].u64 = append(c[1].u64, sums[n].bytes)
		c[2].u64 = append(c[2].u64, sums[n].flows)
	}
	return cs
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
		for i, r := range rollup.All {
			t := rollupTable(r, b.table)
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
func (s *Store) merge(ctx context.Context, r rollup.Rollup, table string) (int, error) {
	n, err := s.mergeWith(ctx, table, mergeSQL(r, table, false))
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeConversion {
		n, err = s.mergeWith(ctx, table, mergeSQL(r, table, true))
	}
	return n, err
}

// mergeSQL selects the merged rows; apart keeps the rows of a step and
// key whose sums pass 64 bits as they are.
func mergeSQL(r rollup.Rollup, table string, apart bool) string {
	t, keys := query.Quote(table), r.KeyColumns()
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
