// Package duckdb is the embedded log store: one DuckDB file in a data
// directory. Each log stream keeps one table per day (f<stream>_d<day>), so
// a time range reads only its days and retention drops whole tables.
// Records are ingested through DuckDB's Appender, one transaction per batch.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// FileName is the database file inside the data directory.
const FileName = "flowlog.duckdb"

// Config configures the embedded store.
type Config struct {
	Dir     string // data directory; created if missing
	Threads int    // DuckDB worker threads; 0: one per core
}

// Store is the DuckDB backend of store.Store.
type Store struct {
	db        *sql.DB
	connector *duckdb.Connector

	mu      sync.Mutex   // one writer: appends and DDL
	view    sync.RWMutex // streams and their days: changed holding mu and view
	streams map[store.StreamID]*streamState
	// drop keeps tables from being dropped under a running query:
	// queries hold it shared, retention and deletion exclusively (taken
	// before mu).
	drop sync.RWMutex
}

type streamState struct {
	num  int
	days []int64 // sorted days that have a table
}

var _ store.Store = (*Store)(nil)

// New opens (or creates) the store in cfg.Dir.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("duckdb store: no data directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("duckdb store: %w", err)
	}
	dsn := filepath.Join(cfg.Dir, FileName)
	if cfg.Threads > 0 {
		dsn += "?threads=" + strconv.Itoa(cfg.Threads)
	}
	c, err := duckdb.NewConnector(dsn, func(ex driver.ExecerContext) error {
		// Group-bys over addresses and ports have keys with small ranges
		// (an IPv4 /16 is 16 bits): let DuckDB aggregate them in an array
		// rather than a hash table. The default stops at 12 bits.
		_, err := ex.ExecContext(context.Background(), "SET perfect_ht_threshold = 18", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("duckdb store: open %s: %w", dsn, err)
	}
	s := &Store{db: sql.OpenDB(c), connector: c, streams: map[store.StreamID]*streamState{}}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database; committed data is on disk.
func (s *Store) Close() error {
	err := s.db.Close()
	return errors.Join(err, s.connector.Close())
}

// DB exposes the database for tools such as export.
func (s *Store) DB() *sql.DB { return s.db }

func (s *Store) load() error {
	_, err := s.db.Exec(`CREATE TABLE IF NOT EXISTS streams (
		num INTEGER PRIMARY KEY, account VARCHAR NOT NULL, stream VARCHAR NOT NULL,
		log_group VARCHAR NOT NULL, retention_days INTEGER NOT NULL, created BIGINT NOT NULL,
		UNIQUE (account, stream))`)
	if err == nil {
		_, err = s.db.Exec(createTable(emptyTable))
	}
	if err != nil {
		return fmt.Errorf("duckdb store: catalog: %w", err)
	}
	rows, err := s.db.Query(`SELECT num, account, stream FROM streams`)
	if err != nil {
		return fmt.Errorf("duckdb store: catalog: %w", err)
	}
	defer rows.Close()
	byNum := map[int]*streamState{}
	for rows.Next() {
		var st streamState
		var id store.StreamID
		if err := rows.Scan(&st.num, &id.Account, &id.Stream); err != nil {
			return fmt.Errorf("duckdb store: catalog: %w", err)
		}
		s.streams[id] = &st
		byNum[st.num] = &st
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("duckdb store: catalog: %w", err)
	}
	tables, err := s.db.Query(`SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'`)
	if err != nil {
		return fmt.Errorf("duckdb store: tables: %w", err)
	}
	defer tables.Close()
	for tables.Next() {
		var name string
		if err := tables.Scan(&name); err != nil {
			return fmt.Errorf("duckdb store: tables: %w", err)
		}
		if num, day, ok := parseTableName(name); ok && byNum[num] != nil {
			byNum[num].days = append(byNum[num].days, day)
		}
	}
	for _, st := range byNum {
		slices.Sort(st.days)
	}
	return tables.Err()
}

var tableRE = regexp.MustCompile(`^f(\d+)_d(\d+)$`)

func tableName(num int, day int64) string { return fmt.Sprintf("f%d_d%d", num, day) }

func parseTableName(name string) (int, int64, bool) {
	m := tableRE.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, false
	}
	num, err1 := strconv.Atoi(m[1])
	day, err2 := strconv.ParseInt(m[2], 10, 64)
	return num, day, err1 == nil && err2 == nil
}

// CreateStream implements store.Store.
func (s *Store) CreateStream(ctx context.Context, st store.Stream) error {
	if err := st.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.streams[st.StreamID]; ok {
		_, err := s.db.ExecContext(ctx, `UPDATE streams SET log_group = ?, retention_days = ? WHERE account = ? AND stream = ?`,
			st.Group, st.RetentionDays, st.Account, st.Stream)
		if err != nil {
			return fmt.Errorf("duckdb store: update stream %s: %w", st.StreamID, err)
		}
		return nil
	}
	var num int
	err := s.db.QueryRowContext(ctx, `INSERT INTO streams
		SELECT coalesce(max(num), 0) + 1, ?, ?, ?, ?, ? FROM streams RETURNING num`,
		st.Account, st.Stream, st.Group, st.RetentionDays, time.Now().UnixMilli()).Scan(&num)
	if err != nil {
		return fmt.Errorf("duckdb store: create stream %s: %w", st.StreamID, err)
	}
	s.view.Lock()
	s.streams[st.StreamID] = &streamState{num: num}
	s.view.Unlock()
	return nil
}

// Stream implements store.Store.
func (s *Store) Stream(ctx context.Context, id store.StreamID) (store.Stream, error) {
	list, err := s.list(ctx, `WHERE account = ? AND stream = ?`, id.Account, id.Stream)
	if err != nil {
		return store.Stream{}, err
	}
	if len(list) == 0 {
		return store.Stream{}, fmt.Errorf("%w: %s", store.ErrNoStream, id)
	}
	return list[0], nil
}

// Streams implements store.Store.
func (s *Store) Streams(ctx context.Context, account string) ([]store.Stream, error) {
	return s.list(ctx, `WHERE account = ? ORDER BY stream`, account)
}

func (s *Store) list(ctx context.Context, where string, args ...any) ([]store.Stream, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT account, stream, log_group, retention_days, created FROM streams `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("duckdb store: list streams: %w", err)
	}
	defer rows.Close()
	var out []store.Stream
	for rows.Next() {
		var st store.Stream
		var created int64
		if err := rows.Scan(&st.Account, &st.Stream, &st.Group, &st.RetentionDays, &created); err != nil {
			return nil, fmt.Errorf("duckdb store: list streams: %w", err)
		}
		st.Created = time.UnixMilli(created).UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}

// DeleteStream implements store.Store.
func (s *Store) DeleteStream(ctx context.Context, id store.StreamID) error {
	s.drop.Lock()
	defer s.drop.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view.Lock()
	defer s.view.Unlock()
	st, ok := s.streams[id]
	if !ok {
		return fmt.Errorf("%w: %s", store.ErrNoStream, id)
	}
	if err := s.dropDays(ctx, st, len(st.days)); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM streams WHERE num = ?`, st.num); err != nil {
		return fmt.Errorf("duckdb store: delete stream %s: %w", id, err)
	}
	delete(s.streams, id)
	return nil
}

// dropDays drops the first n day tables of a stream. Caller holds mu.
func (s *Store) dropDays(ctx context.Context, st *streamState, n int) error {
	for n > 0 {
		if _, err := s.db.ExecContext(ctx, `DROP TABLE IF EXISTS `+query.Quote(tableName(st.num, st.days[0]))); err != nil {
			return fmt.Errorf("duckdb store: drop day: %w", err)
		}
		st.days = st.days[1:]
		n--
	}
	return nil
}

// Expire implements store.Store: whole day tables older than each
// stream's retention are dropped.
func (s *Store) Expire(ctx context.Context, now time.Time) error {
	rows, err := s.db.QueryContext(ctx, `SELECT account, stream, retention_days FROM streams WHERE retention_days > 0`)
	if err != nil {
		return fmt.Errorf("duckdb store: expire: %w", err)
	}
	type ret struct {
		id   store.StreamID
		days int
	}
	var rets []ret
	for rows.Next() {
		var r ret
		if err := rows.Scan(&r.id.Account, &r.id.Stream, &r.days); err != nil {
			rows.Close()
			return fmt.Errorf("duckdb store: expire: %w", err)
		}
		rets = append(rets, r)
	}
	rows.Close()
	s.drop.Lock()
	defer s.drop.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view.Lock()
	defer s.view.Unlock()
	for _, r := range rets {
		st, ok := s.streams[r.id]
		if !ok {
			continue
		}
		first, _ := store.ExpiredBefore(now, r.days)
		n, _ := slices.BinarySearch(st.days, first)
		if err := s.dropDays(ctx, st, n); err != nil {
			return err
		}
	}
	return nil
}

// Append implements store.Store: one transaction, one Appender per day.
func (s *Store) Append(ctx context.Context, id store.StreamID, recs []flow.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[id]
	if !ok {
		return fmt.Errorf("%w: %s", store.ErrNoStream, id)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("duckdb store: append: %w", err)
	}
	defer conn.Close()
	var newDays []int64
	err = conn.Raw(func(dc any) error {
		var err error
		newDays, err = appendTx(ctx, dc.(driver.Conn), st, recs)
		return err
	})
	if err != nil {
		return fmt.Errorf("duckdb store: append to %s: %w", id, err)
	}
	s.view.Lock()
	for _, d := range newDays {
		i, _ := slices.BinarySearch(st.days, d)
		st.days = slices.Insert(st.days, i, d)
	}
	s.view.Unlock()
	return nil
}

func appendTx(ctx context.Context, dc driver.Conn, st *streamState, recs []flow.Record) (newDays []int64, err error) {
	ex := dc.(driver.ExecerContext)
	exec := func(q string) error { _, err := ex.ExecContext(ctx, q, nil); return err }
	if err := exec("BEGIN TRANSACTION"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			exec("ROLLBACK")
			newDays = nil
		}
	}()
	byDay := map[int64][]int{}
	var days []int64
	for i := range recs {
		d := store.Day(recs[i].End)
		if _, ok := byDay[d]; !ok {
			days = append(days, d)
		}
		byDay[d] = append(byDay[d], i)
	}
	for _, d := range days {
		name := tableName(st.num, d)
		if _, found := slices.BinarySearch(st.days, d); !found {
			if err := exec(createTable(name)); err != nil {
				return nil, err
			}
			newDays = append(newDays, d)
		}
		if err := appendDay(dc, name, recs, byDay[d]); err != nil {
			return nil, err
		}
	}
	return newDays, exec("COMMIT")
}

// appendDay appends the records at idx to one day table. Handing strings
// to DuckDB costs three cgo calls each, so the Appender gets a small code
// per string instead, and its INSERT maps codes back through a dictionary
// of the batch's distinct strings (few: ids, actions, reasons).
func appendDay(dc driver.Conn, table string, recs []flow.Record, idx []int) error {
	dicts := make([]dictionary, len(query.Columns))
	rows := make([][]driver.Value, len(idx))
	vals := make([]any, 0, len(query.Columns))
	for k, i := range idx {
		vals = query.RecordColumns(&recs[i], vals)
		row := make([]driver.Value, len(vals))
		for j, v := range vals {
			if str, ok := v.(string); ok {
				row[j] = dicts[j].code(str)
			} else {
				row[j] = v
			}
		}
		rows[k] = row
	}
	sel := make([]string, len(query.Columns))
	types := make([]duckdb.TypeInfo, len(query.Columns))
	for j, c := range query.Columns {
		t := map[query.SQLType]duckdb.Type{query.SQLUint: duckdb.TYPE_UBIGINT, query.SQLInt: duckdb.TYPE_BIGINT, query.SQLString: duckdb.TYPE_UINTEGER}[c.Type]
		var err error
		if types[j], err = duckdb.NewTypeInfo(t); err != nil {
			return err
		}
		sel[j] = fmt.Sprintf("c%d", j)
		if c.Type == query.SQLString {
			sel[j] = dicts[j].sql(sel[j])
		}
	}
	names := make([]string, len(query.Columns))
	for j := range names {
		names[j] = fmt.Sprintf("c%d", j)
	}
	q := "INSERT INTO " + query.Quote(table) + " SELECT " + strings.Join(sel, ", ") + " FROM batch"
	a, err := duckdb.NewQueryAppender(dc, q, "batch", types, names)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if err := a.AppendRow(row...); err != nil {
			a.Close()
			return err
		}
	}
	return a.Close()
}

// dictionary numbers the distinct strings of one column in a batch.
type dictionary struct {
	codes  map[string]uint32
	values []string
}

func (d *dictionary) code(s string) uint32 {
	c, ok := d.codes[s]
	if !ok {
		if d.codes == nil {
			d.codes = map[string]uint32{}
		}
		c = uint32(len(d.values))
		d.codes[s] = c
		d.values = append(d.values, s)
	}
	return c
}

// sql maps a code column back to its string. The strings are written in
// hex, so no byte of theirs (quotes, NUL) can reach the SQL text.
func (d *dictionary) sql(col string) string {
	if len(d.values) == 0 {
		return "''"
	}
	items := make([]string, len(d.values))
	for i, v := range d.values {
		items[i] = "decode(from_hex('" + hex.EncodeToString([]byte(v)) + "'))"
	}
	return "([" + strings.Join(items, ", ") + "])[" + col + " + 1]"
}

func createTable(name string) string {
	cols := make([]string, len(query.Columns))
	for i, c := range query.Columns {
		cols[i] = query.Quote(c.Name) + " " + duckType[c.Type] + " NOT NULL"
	}
	return "CREATE TABLE IF NOT EXISTS " + query.Quote(name) + " (" + strings.Join(cols, ", ") + ")"
}

var duckType = map[query.SQLType]string{query.SQLUint: "UBIGINT", query.SQLInt: "BIGINT", query.SQLString: "VARCHAR"}

// Query implements store.Store.
func (s *Store) Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error) {
	s.drop.RLock()
	defer s.drop.RUnlock()
	from, err := s.from(id, q.Since, q.Until)
	if err != nil {
		return nil, err
	}
	if from == "" { // no day of the window holds data: answer from an empty table
		from = "(SELECT * FROM " + query.Quote(emptyTable) + ")"
	}
	resp, err := s.run(ctx, q, from, dialect{})
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeConversion {
		resp, err = s.run(ctx, q, from, dialect{exact: true})
	}
	return resp, err
}

func (s *Store) run(ctx context.Context, q query.Request, from string, d dialect) (*query.Response, error) {
	p, err := query.Compile(q, from, d)
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

// from returns the union of the day tables overlapping [since, until).
func (s *Store) from(id store.StreamID, since, until time.Time) (string, error) {
	s.view.RLock()
	defer s.view.RUnlock()
	st, ok := s.streams[id]
	if !ok {
		return "", fmt.Errorf("%w: %s", store.ErrNoStream, id)
	}
	first, last := store.Day(since.UnixMilli()), store.Day(until.UnixMilli()-1)
	var parts []string
	for _, d := range st.days {
		if d >= first && d <= last {
			parts = append(parts, "SELECT * FROM "+query.Quote(tableName(st.num, d)))
		}
	}
	if len(parts) == 0 {
		return "", nil
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")", nil
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
// that cast fail, and the query is run again exact.
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

func (dialect) Uint(x string) string { return "CAST(" + x + " AS UBIGINT)" }

func (dialect) CountDistinct(exprs []string) string {
	if len(exprs) == 1 {
		return "count(DISTINCT " + exprs[0] + ")"
	}
	return "count(DISTINCT (" + strings.Join(exprs, ", ") + "))"
}

func (dialect) Bucket(x string, ms int64) string {
	return fmt.Sprintf("((%s // %d) * %d)", x, ms, ms)
}

// OpenLocal opens the store in dir and finds the named log stream of
// store.LocalAccount, creating it if create is set (an import) or failing
// with store.ErrNoStream otherwise (a query): what the command-line tools
// work on.
func OpenLocal(ctx context.Context, dir, stream string, create bool) (*Store, store.StreamID, error) {
	id := store.StreamID{Account: store.LocalAccount, Stream: stream}
	if err := id.Validate(); err != nil {
		return nil, id, err
	}
	s, err := New(Config{Dir: dir})
	if err != nil {
		return nil, id, err
	}
	if _, err = s.Stream(ctx, id); errors.Is(err, store.ErrNoStream) && create {
		err = s.CreateStream(ctx, store.Stream{StreamID: id, Group: store.LocalAccount})
	}
	if err != nil {
		s.Close()
		return nil, id, err
	}
	return s, id, nil
}
