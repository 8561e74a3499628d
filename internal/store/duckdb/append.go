package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
)

// Append implements store.Store: one transaction holding the records, the
// rollup rows and any new dictionary strings, so all or none of them land.
func (s *Store) Append(ctx context.Context, id store.StreamID, recs []flow.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return s.write(func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		st, ok := s.streams[id]
		if !ok {
			return fmt.Errorf("%w: %s", store.ErrNoStream, id)
		}
		return s.appendLocked(ctx, id, st, recs, nil)
	})
}

// appendLocked writes recs and, if next is set, the stream's spool
// position, in one transaction. Caller holds mu.
func (s *Store) appendLocked(ctx context.Context, id store.StreamID, st *streamState, recs []flow.Record, next *uint64) error {
	days := s.layOut(st.num, recs)
	newDays, err := s.appendTx(ctx, st, days, next)
	if err != nil {
		// The transaction may have committed all the same (a failed
		// checkpoint after the commit), or not while it looks so.
		s.broke()
		return fmt.Errorf("duckdb store: append to %s: %w", id, err)
	}
	s.markPersisted()
	s.view.Lock()
	for _, d := range newDays {
		i, _ := slices.BinarySearch(st.days, d)
		st.days = slices.Insert(st.days, i, d)
	}
	s.view.Unlock()
	s.compact(ctx, days)
	return nil
}

// dayBatch is the part of a batch that belongs to one day: its records in
// table layout, and its rollup rows.
type dayBatch struct {
	day     int64
	table   string
	records *colSet
	rollups []*colSet // one per rollup, in the order of rollup.All
}

// layOut splits a batch by day and lays each day out in columns.
func (s *Store) layOut(num int, recs []flow.Record) []dayBatch {
	order, byDay := splitDays(recs)
	out := make([]dayBatch, len(order))
	for k, d := range order {
		out[k] = dayBatch{day: d, table: tableName(num, d), records: s.recordColumns(recs, byDay[d])}
	}
	return out
}

// splitDays returns the days of a batch in order of first appearance, and
// the indices of each day's records.
func splitDays(recs []flow.Record) ([]int64, map[int64][]int) {
	first := store.Day(recs[0].End)
	all := make([]int, len(recs))
	for i := range recs {
		if store.Day(recs[i].End) != first {
			break
		}
		all[i] = i
		if i == len(recs)-1 { // the usual case: one day
			return []int64{first}, map[int64][]int{first: all}
		}
	}
	byDay := map[int64][]int{}
	var order []int64
	for i := range recs {
		d := store.Day(recs[i].End)
		if _, ok := byDay[d]; !ok {
			order = append(order, d)
		}
		byDay[d] = append(byDay[d], i)
	}
	return order, byDay
}

// aggregate sums a day's records into each rollup.
func (b *dayBatch) aggregate() {
	b.rollups = make([]*colSet, len(rollup.All))
	for i, r := range rollup.All {
		b.rollups[i] = aggregate(r, b.records)
	}
}

// appendTx writes the day batches in one transaction and returns the days
// whose tables it created.
func (s *Store) appendTx(ctx context.Context, st *streamState, days []dayBatch, next *uint64) (newDays []int64, err error) {
	if _, err := s.w.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.w.ExecContext(context.Background(), "ROLLBACK")
			newDays = nil
		}
	}()
	if err := s.saveDictionary(ctx); err != nil {
		return nil, err
	}
	for k := range days {
		b := &days[k]
		if _, found := slices.BinarySearch(st.days, b.day); !found {
			if err := s.createDay(ctx, b.table); err != nil {
				return nil, err
			}
			newDays = append(newDays, b.day)
		}
		// Sum the rollups on another core while DuckDB takes the records.
		summed := make(chan struct{})
		go func() { b.aggregate(); close(summed) }()
		err := s.feeds.insert(ctx, s.w, b.table, b.records)
		<-summed
		if err != nil {
			return nil, err
		}
		for i, r := range rollup.All {
			if err := s.feeds.insert(ctx, s.w, rollupTable(r, b.table), b.rollups[i]); err != nil {
				return nil, err
			}
		}
	}
	if next != nil {
		if _, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO commits VALUES (?, ?)`, st.num, *next); err != nil {
			return nil, err
		}
	}
	_, err = s.w.ExecContext(ctx, "COMMIT")
	return newDays, err
}

// createDay creates a day table and its rollup tables.
func (s *Store) createDay(ctx context.Context, table string) error {
	ddl := []string{createTable(table)}
	for _, r := range rollup.All {
		ddl = append(ddl, createRollupTable(r, rollupTable(r, table)))
	}
	for _, q := range ddl {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// createTable is the DDL of a day table: one column per stored column,
// text as a dictionary code.
func createTable(name string) string {
	cols := make([]string, len(query.Columns))
	for i, c := range query.Columns {
		cols[i] = query.Quote(c.Name) + " " + duckType[c.Type] + " NOT NULL"
	}
	return "CREATE TABLE IF NOT EXISTS " + query.Quote(name) + " (" + strings.Join(cols, ", ") + ")"
}

var duckType = map[query.SQLType]string{query.SQLUint: "UBIGINT", query.SQLInt: "BIGINT", query.SQLString: "UINTEGER"}

// recordColumns lays the records at idx out as a day table's columns,
// reading each record once.
func (s *Store) recordColumns(recs []flow.Record, idx []int) *colSet {
	cs := newColSet(len(idx))
	for _, c := range query.Columns {
		switch c.Type {
		case query.SQLUint:
			cs.add(duckdb.TYPE_UBIGINT)
		case query.SQLInt:
			cs.add(duckdb.TYPE_BIGINT)
		default:
			cs.add(duckdb.TYPE_UINTEGER)
		}
	}
	for _, i := range idx {
		r := &recs[i]
		for j := 0; j < len(query.Columns); j++ {
			f := &flow.Fields[query.Columns[j].Field]
			switch {
			case f.Kind == flow.KindAddr: // two columns: _hi, _lo
				hi, lo := query.AddrParts(f.Addr(r))
				cs.cols[j].u64 = append(cs.cols[j].u64, hi)
				cs.cols[j+1].u64 = append(cs.cols[j+1].u64, lo)
				j++
			case f.Kind == flow.KindUint:
				cs.cols[j].u64 = append(cs.cols[j].u64, f.Uint(r))
			case f.Kind == flow.KindTime:
				cs.cols[j].i64 = append(cs.cols[j].i64, f.Time(r))
			default:
				cs.cols[j].u32 = append(cs.cols[j].u32, s.dicts[j].code(f.Str(r)))
			}
		}
	}
	return cs
}

// dictionary numbers the distinct values of one text field. Codes are
// dense from 0 and never change, so a code column decodes by indexing the
// list of values. Values from persisted on are not yet in the strings
// table; the next committed batch writes them. Values are never removed:
// text fields hold ids and verdicts, whose distinct values are few.
type dictionary struct {
	field     string
	codes     map[string]uint32
	values    []string
	persisted int
	// The previous value looked up, and its code: records of a batch
	// mostly repeat their ids, and comparing with the last is cheaper
	// than a map lookup.
	last     string
	lastCode uint32
	hasLast  bool
}

func (d *dictionary) code(v string) uint32 {
	if d.hasLast && v == d.last {
		return d.lastCode
	}
	c, ok := d.codes[v]
	if !ok {
		stored := query.StoredString(v)
		if c, ok = d.codes[stored]; !ok {
			c = uint32(len(d.values))
			d.values = append(d.values, stored)
			d.codes[stored] = c
		}
		d.codes[v] = c
	}
	d.last, d.lastCode, d.hasLast = v, c, true
	return c
}

// loadDictionary reads the strings table into s.dicts.
func (s *Store) loadDictionary() error {
	s.dicts = make([]*dictionary, len(query.Columns))
	byField := map[string]*dictionary{}
	for j, c := range query.Columns {
		if c.Type == query.SQLString {
			d := &dictionary{field: flow.Fields[c.Field].Name, codes: map[string]uint32{}}
			s.dicts[j], byField[d.field] = d, d
		}
	}
	rows, err := s.db.Query(`SELECT field, code, value FROM strings ORDER BY field, code`)
	if err != nil {
		return fmt.Errorf("duckdb store: dictionary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var field, value string
		var code uint32
		if err := rows.Scan(&field, &code, &value); err != nil {
			return fmt.Errorf("duckdb store: dictionary: %w", err)
		}
		d := byField[field]
		if d == nil || int(code) != len(d.values) {
			return fmt.Errorf("duckdb store: dictionary: unexpected code %d of %q", code, field)
		}
		d.values = append(d.values, value)
		d.codes[value] = code
		d.persisted++
	}
	return rows.Err()
}

// markPersisted notes that saveDictionary's values were committed.
func (s *Store) markPersisted() {
	for _, d := range s.dicts {
		if d != nil {
			d.persisted = len(d.values)
		}
	}
}

// saveDictionary inserts the values not yet in the strings table, within
// the batch's transaction. Values are bound as parameters, in statements
// of dictionaryChunk rows: the driver matches each parameter against every
// argument, so one statement of many thousand values (a first batch of AS
// names) would cost the square of their number.
func (s *Store) saveDictionary(ctx context.Context) error {
	var marks []string
	var args []any
	flush := func() error {
		if len(marks) == 0 {
			return nil
		}
		_, err := s.w.ExecContext(ctx, "INSERT INTO strings VALUES "+strings.Join(marks, ", "), args...)
		marks, args = marks[:0], args[:0]
		return err
	}
	for _, d := range s.dicts {
		if d == nil {
			continue
		}
		for c := d.persisted; c < len(d.values); c++ {
			marks = append(marks, "(?, ?, ?)")
			args = append(args, d.field, uint32(c), d.values[c])
			if len(marks) == dictionaryChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

const dictionaryChunk = 200

// colSet is rows laid out column by column, as the table function hands
// them to DuckDB: one typed slice per column.
type colSet struct {
	n    int
	cols []column
}

type column struct {
	typ duckdb.Type
	u64 []uint64
	i64 []int64
	u32 []uint32
}

func newColSet(n int) *colSet { return &colSet{n: n} }

// constant returns the column's value as an SQL literal if every row has
// the same one: ids, versions and the high half of IPv4 addresses mostly
// do within a batch.
func (c *column) constant() (string, bool) {
	switch c.typ {
	case duckdb.TYPE_UBIGINT:
		return literal(c.u64, "UBIGINT")
	case duckdb.TYPE_BIGINT:
		return literal(c.i64, "BIGINT")
	default:
		return literal(c.u32, "UINTEGER")
	}
}

func literal[T uint64 | int64 | uint32](vals []T, typ string) (string, bool) {
	for _, v := range vals[1:] {
		if v != vals[0] {
			return "", false
		}
	}
	return fmt.Sprintf("CAST(%d AS %s)", vals[0], typ), true
}

// add appends an empty column of type t, sized for n rows.
func (cs *colSet) add(t duckdb.Type) {
	c := column{typ: t}
	switch t {
	case duckdb.TYPE_UBIGINT:
		c.u64 = make([]uint64, 0, cs.n)
	case duckdb.TYPE_BIGINT:
		c.i64 = make([]int64, 0, cs.n)
	default:
		c.u32 = make([]uint32, 0, cs.n)
	}
	cs.cols = append(cs.cols, c)
}

// feeds hands colSets to DuckDB through the table function flowlog_feed(id):
// INSERT … SELECT … FROM flowlog_feed(id) copies whole vectors, where an
// Appender would make a Go call (and, for text, several cgo calls) per
// value. A column with one value in every row goes into the SELECT as a
// constant instead, which DuckDB neither copies nor hashes row by row.
type feeds struct {
	mu   sync.Mutex
	next int64
	m    map[int64]*feedSource
}

const feedFunction = "flowlog_feed"

// register defines the table function on the writer's connection.
func (f *feeds) register(conn *sql.Conn) error {
	arg, err := duckdb.NewTypeInfo(duckdb.TYPE_BIGINT)
	if err != nil {
		return err
	}
	return duckdb.RegisterTableUDF(conn, feedFunction, duckdb.ChunkTableFunction{
		Config: duckdb.TableFunctionConfig{Arguments: []duckdb.TypeInfo{arg}},
		BindArguments: func(_ map[string]any, args ...any) (duckdb.ChunkTableSource, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			fs, ok := f.m[args[0].(int64)]
			if !ok {
				return nil, fmt.Errorf("%s: no batch %v", feedFunction, args[0])
			}
			return fs, nil
		},
	})
}

// insert copies cs into table.
func (f *feeds) insert(ctx context.Context, conn *sql.Conn, table string, cs *colSet) error {
	if cs.n == 0 {
		return nil
	}
	fs := &feedSource{cs: cs}
	sel := make([]string, len(cs.cols))
	for j := range cs.cols {
		if lit, ok := cs.cols[j].constant(); ok && (j > 0 || len(cs.cols) > 1) {
			sel[j] = lit
			continue
		}
		sel[j] = fmt.Sprintf("c%d", len(fs.cols))
		fs.cols = append(fs.cols, j)
	}
	if len(fs.cols) == 0 { // a table function returns at least one column
		fs.cols, sel[0] = []int{0}, "c0"
	}
	f.mu.Lock()
	f.next++
	id := f.next
	f.m[id] = fs
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.m, id)
		f.mu.Unlock()
	}()
	_, err := conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s SELECT %s FROM %s(%d)",
		query.Quote(table), strings.Join(sel, ", "), feedFunction, id))
	return err
}

// feedSource is one scan of the columns of a colSet that are fed.
type feedSource struct {
	cs   *colSet
	cols []int // indices in cs.cols
	pos  int
}

func (fs *feedSource) ColumnInfos() []duckdb.ColumnInfo {
	out := make([]duckdb.ColumnInfo, len(fs.cols))
	for k, j := range fs.cols {
		t, _ := duckdb.NewTypeInfo(fs.cs.cols[j].typ) // only primitive types: cannot fail
		out[k] = duckdb.ColumnInfo{Name: fmt.Sprintf("c%d", k), T: t}
	}
	return out
}

func (fs *feedSource) Cardinality() *duckdb.CardinalityInfo {
	return &duckdb.CardinalityInfo{Cardinality: uint(fs.cs.n), Exact: true}
}

func (fs *feedSource) Init() {}

// FillChunk copies the next vector's worth of rows.
func (fs *feedSource) FillChunk(ch duckdb.DataChunk) error {
	pos := fs.pos
	n := min(duckdb.GetDataChunkCapacity(), fs.cs.n-pos)
	for k, j := range fs.cols {
		c := &fs.cs.cols[j]
		var err error
		switch c.typ {
		case duckdb.TYPE_UBIGINT:
			err = fill(ch, k, c.u64[pos:pos+n])
		case duckdb.TYPE_BIGINT:
			err = fill(ch, k, c.i64[pos:pos+n])
		default:
			err = fill(ch, k, c.u32[pos:pos+n])
		}
		if err != nil {
			return err
		}
	}
	fs.pos += n
	return ch.SetSize(n)
}

func fill[T uint64 | int64 | uint32](ch duckdb.DataChunk, col int, vals []T) error {
	for r, v := range vals {
		if err := duckdb.SetChunkValue(ch, col, r, v); err != nil {
			return err
		}
	}
	return nil
}
