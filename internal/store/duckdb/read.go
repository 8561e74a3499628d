package duckdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
)

// Query implements store.Store.
func (s *Store) Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error) {
	return s.QueryStreams(ctx, []store.StreamID{id}, q)
}

// QueryStreams implements store.Store: the day tables of every stream are
// read as one.
func (s *Store) QueryStreams(ctx context.Context, ids []store.StreamID, q query.Request) (*query.Response, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	s.drop.RLock()
	defer s.drop.RUnlock()
	from, opts := s.source(ids, q)
	resp, err := s.run(ctx, q, from, opts, dialect{})
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeConversion {
		resp, err = s.run(ctx, q, from, opts, dialect{exact: true})
	}
	return resp, err
}

func (s *Store) run(ctx context.Context, q query.Request, from string, o query.Options, d dialect) (*query.Response, error) {
	p, err := query.CompileWith(q, from, d, o)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, p.SQL, p.Args...)
	if err != nil {
		return nil, fmt.Errorf("duckdb store: query: %w", err)
	}
	defer rows.Close()
	resp := p.Response()
	ptrs, vals := scanTargets(p.Types)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("duckdb store: query: %w", err)
		}
		if err := p.Add(resp, deref(ptrs, vals)); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb store: query: %w", err)
	}
	p.Finish(resp)
	return resp, nil
}

// emptyTable stands in for a window without data.
const emptyTable = "empty_flows"

// source returns what a query over the streams reads: the rollup that
// answers it, if there is one, or else the records of the window's days.
// A stream never written to (or deleted) has no day tables.
func (s *Store) source(ids []store.StreamID, q query.Request) (string, query.Options) {
	s.view.RLock()
	defer s.view.RUnlock()
	first, last := store.Day(q.Since.UnixMilli()), store.Day(q.Until.UnixMilli()-1)
	var days []dayTable
	for _, id := range slices.Compact(slices.SortedFunc(slices.Values(ids), compareIDs)) {
		st, ok := s.streams[id]
		if !ok {
			continue
		}
		for _, d := range st.days {
			if d >= first && d <= last {
				days = append(days, dayTable{tableName(st.num, d), d})
			}
		}
	}
	if len(days) == 0 { // no day of the window holds data
		return decoded([]string{emptyTable}), query.Options{}
	}
	if p, ok := rollup.For(q); ok && !s.noRollups.Load() {
		return rollupSource(p, days), query.Options{Count: countColumn}
	}
	return decoded(names(days)), query.Options{}
}

// dayTable is one stream's table of one day.
type dayTable struct {
	name string
	day  int64
}

func names(days []dayTable) []string {
	out := make([]string, len(days))
	for i, d := range days {
		out[i] = d.name
	}
	return out
}

// compareIDs orders stream ids, so that a stream listed twice is read once.
func compareIDs(a, b store.StreamID) int {
	return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Stream, b.Stream))
}

// decoded reads the day tables with text fields decoded: each code
// indexes the list of its field's values, read from the strings table in
// the same snapshot as the records.
func decoded(days []string) string {
	var sel, lists []string
	for _, c := range query.Columns {
		col := query.Quote(c.Name)
		if c.Type != query.SQLString {
			sel = append(sel, "t."+col)
			continue
		}
		name := flow.Fields[c.Field].Name
		sel = append(sel, "d."+col+"[t."+col+" + 1] AS "+col)
		lists = append(lists, "list(value ORDER BY code) FILTER (WHERE field = '"+name+"') AS "+col)
	}
	return "(SELECT " + strings.Join(sel, ", ") + " FROM " + union(days, "*", "") + " t, (SELECT " +
		strings.Join(lists, ", ") + " FROM strings) d)"
}

// union selects cols from each table, under an optional condition. DuckDB
// nests a chain of UNION ALL one level per table, and refuses a query
// nested more than 1000 deep: a window over thousands of days (records
// from a router whose clock is wrong) is read as a tree of unions of at
// most unionFan parts, as deep as the log of the number of days.
func union(tables []string, cols, where string) string {
	var parts []string
	if len(tables) <= unionFan {
		for _, t := range tables {
			parts = append(parts, "SELECT "+cols+" FROM "+query.Quote(t)+where)
		}
	} else {
		size := (len(tables) + unionFan - 1) / unionFan
		for c := range slices.Chunk(tables, size) {
			parts = append(parts, "SELECT * FROM "+union(c, cols, where))
		}
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

const unionFan = 16

// rollupSource reads the rollup's whole steps of the window, and the
// records of the parts of a step at either end of it, summed the same way
// (each record counting once).
func rollupSource(p rollup.Plan, days []dayTable) string {
	keys := p.KeyColumns()
	rolled := make([]string, len(days))
	for i, d := range days {
		rolled[i] = rollupTable(p.Rollup, d.name)
	}
	parts := []string{union(rolled, `"end", `+keys+", packets, bytes, "+countColumn, between(p.Steps))}
	// Each end is its own range within one day (steps divide days), read
	// from each stream's table of that day, which DuckDB filters while
	// scanning.
	for _, e := range p.Edges {
		var tables []string
		for _, d := range days {
			if d.day == store.Day(e.From) {
				tables = append(tables, d.name)
			}
		}
		if len(tables) > 0 {
			parts = append(parts, union(tables, `"end", `+keys+", packets, bytes, CAST(1 AS UBIGINT) AS "+countColumn, between(e)))
		}
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

// between is a condition on the time column: within the span.
func between(s rollup.Span) string {
	return ` WHERE "end" >= ` + strconv.FormatInt(s.From, 10) + ` AND "end" < ` + strconv.FormatInt(s.To, 10)
}

func scanTargets(types []query.SQLType) ([]any, []any) {
	ptrs := make([]any, len(types))
	for i, t := range types {
		switch t {
		case query.SQLUint:
			ptrs[i] = new(uint64)
		case query.SQLInt:
			ptrs[i] = new(int64)
		default:
			ptrs[i] = new(string)
		}
	}
	return ptrs, make([]any, len(types))
}

func deref(ptrs, vals []any) []any {
	for i, p := range ptrs {
		switch p := p.(type) {
		case *uint64:
			vals[i] = *p
		case *int64:
			vals[i] = *p
		case *string:
			vals[i] = *p
		}
	}
	return vals
}

// dialect binds every value as a prepared-statement parameter. Unless
// exact, it sums counters as BIGINT, which DuckDB adds in 64 bits when its
// statistics rule out overflow, instead of 128; a counter above 2^63 makes
// that cast fail, and the query is run again exact. Either way the sum is
// a HUGEINT, and Uint saturates it at 2^64−1, so no total fails a query.
type dialect struct{ exact bool }

func (d dialect) Sum(col string) string {
	if d.exact {
		return "sum(" + col + ")"
	}
	return "sum(CAST(" + col + " AS BIGINT))"
}

func (dialect) Bind(args *[]any, v any) string {
	if u, ok := v.(uint64); ok {
		if u > math.MaxInt64 { // database/sql refuses to bind these; a formatted number is safe
			return "CAST(" + strconv.FormatUint(u, 10) + " AS UBIGINT)"
		}
		v = int64(u)
	}
	*args = append(*args, v)
	return "?"
}

// Uint saturates at 2^64−1: the API's counters are unsigned 64-bit.
func (dialect) Uint(x string) string {
	return "CAST(least(" + x + ", " + maxUint + ") AS UBIGINT)"
}

const maxUint = "CAST(18446744073709551615 AS UBIGINT)"

// InSet binds each column of values as one list parameter: DuckDB hashes
// the list once, where thousands of parameters would take seconds to plan.
func (dialect) InSet(exprs []string, cols [][]any, args *[]any) string {
	lists := make([]string, len(cols))
	for i, c := range cols {
		*args = append(*args, typedList(c))
		lists[i] = "unnest(?)"
	}
	lhs := strings.Join(exprs, ", ")
	if len(exprs) > 1 {
		lhs = "(" + lhs + ")"
	}
	return "(" + lhs + " IN (SELECT " + strings.Join(lists, ", ") + "))"
}

// typedList turns values of one type (uint64, int64 or string) into the
// slice of that type, which the driver binds as a LIST.
func typedList(vals []any) any {
	switch vals[0].(type) {
	case uint64:
		return convert[uint64](vals)
	case int64:
		return convert[int64](vals)
	}
	return convert[string](vals)
}

func convert[T any](vals []any) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = v.(T)
	}
	return out
}

func (dialect) CountDistinct(exprs []string) string {
	if len(exprs) == 1 {
		return "count(DISTINCT " + exprs[0] + ")"
	}
	return "count(DISTINCT (" + strings.Join(exprs, ", ") + "))"
}

func (dialect) Bucket(x string, ms int64) string {
	return fmt.Sprintf("((%s // %d) * %d)", x, ms, ms)
}
