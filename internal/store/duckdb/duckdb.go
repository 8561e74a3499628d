// Package duckdb is the embedded log store: one DuckDB file in a data
// directory. Each log stream keeps one table per day (f<stream>_d<day>), so
// a time range reads only its days and retention drops whole tables. Next
// to each day table sit its rollups (f<stream>_d<day>_<rollup>): per-minute
// or per-hour sums by a few keys, which answer top-N and time-series
// questions without reading every record.
//
// Text fields are stored as integer codes into one dictionary (the strings
// table), and decoded when read: DuckDB appends and compresses integers far
// faster than text. Records are ingested column by column through a table
// function, one transaction per batch.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// FileName is the database file inside the data directory.
const FileName = "flowlog.duckdb"

// layoutVersion names the table layout. A data directory written with
// another layout is refused rather than misread.
const layoutVersion = 2

// Config configures the embedded store.
type Config struct {
	Dir     string // data directory; created if missing
	Threads int    // DuckDB worker threads; 0: one per core
}

// Store is the DuckDB backend of store.Store.
type Store struct {
	cfg       Config
	db        *sql.DB
	connector *duckdb.Connector

	mu      sync.Mutex // one writer: appends and DDL, on w
	w       *sql.Conn  // the writer's connection
	dicts   []*dictionary
	rollups map[string]*rollupState // by table name
	feeds   feeds

	view    sync.RWMutex // streams and their days: changed holding mu and view
	streams map[store.StreamID]*streamState
	// drop keeps tables from being dropped, and db from being reopened,
	// under a running query: readers of db hold it shared; retention,
	// deletion and repair exclusively (taken before mu).
	drop sync.RWMutex

	// broken is set when a write failed: the database is opened again
	// from its files before the next write (repair). Set holding mu.
	broken atomic.Bool

	compactMin int         // fewest new rollup rows worth a compaction
	noRollups  atomic.Bool // answer everything from the records
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
	s := &Store{cfg: cfg, feeds: feeds{m: map[int64]*feedSource{}}, compactMin: compactMin}
	if err := s.connect(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// connect opens the database files and loads the catalog.
func (s *Store) connect() error {
	dsn := filepath.Join(s.cfg.Dir, FileName)
	if s.cfg.Threads > 0 {
		dsn += "?threads=" + strconv.Itoa(s.cfg.Threads)
	}
	c, err := duckdb.NewConnector(dsn, func(ex driver.ExecerContext) error {
		// Group-bys over addresses and ports have keys with small ranges
		// (an IPv4 /16 is 16 bits): let DuckDB aggregate them in an array
		// rather than a hash table. The default stops at 12 bits.
		_, err := ex.ExecContext(context.Background(), "SET perfect_ht_threshold = 18", nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("duckdb store: open %s: %w", dsn, err)
	}
	s.db, s.connector, s.w = sql.OpenDB(c), c, nil
	s.streams, s.rollups = map[store.StreamID]*streamState{}, map[string]*rollupState{}
	return s.open()
}

// open takes the writer's connection and loads the catalog.
func (s *Store) open() error {
	var err error
	if s.w, err = s.db.Conn(context.Background()); err != nil {
		return fmt.Errorf("duckdb store: %w", err)
	}
	if err := s.feeds.register(s.w); err != nil {
		return fmt.Errorf("duckdb store: %w", err)
	}
	if err := s.checkLayout(); err != nil {
		return err
	}
	if err := s.loadDictionary(); err != nil {
		return err
	}
	if err := s.upgradeTables(); err != nil {
		return err
	}
	return s.load()
}

// Close closes the database; committed data is on disk.
func (s *Store) Close() error {
	var err error
	if s.w != nil {
		err = s.w.Close()
	}
	if s.db != nil {
		err = errors.Join(err, s.db.Close(), s.connector.Close())
	}
	return err
}

// UseRollups sets whether queries may be answered from rollups (the
// default) or always from the records, e.g. to compare the two.
func (s *Store) UseRollups(on bool) { s.noRollups.Store(!on) }

// DB exposes the database for tools such as export.
func (s *Store) DB() *sql.DB { return s.db }

// checkLayout creates the catalog tables of a new store, and refuses a
// store written with another table layout.
func (s *Store) checkLayout() error {
	var old int
	err := s.db.QueryRow(`SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'streams'`).Scan(&old)
	if err != nil {
		return fmt.Errorf("duckdb store: catalog: %w", err)
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS layout (version INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS streams (
		num INTEGER PRIMARY KEY, account VARCHAR NOT NULL, stream VARCHAR NOT NULL,
		log_group VARCHAR NOT NULL, retention_days INTEGER NOT NULL, created BIGINT NOT NULL,
		UNIQUE (account, stream))`,
		`CREATE TABLE IF NOT EXISTS strings (field VARCHAR NOT NULL, code UINTEGER NOT NULL, value VARCHAR NOT NULL,
		PRIMARY KEY (field, code))`,
		// Each stream's spool position after its last committed record.
		`CREATE TABLE IF NOT EXISTS commits (num INTEGER PRIMARY KEY, next UBIGINT NOT NULL)`,
		createTable(emptyTable),
	} {
		if _, err := s.db.Exec(q); err != nil {
			return fmt.Errorf("duckdb store: catalog: %w", err)
		}
	}
	var v sql.NullInt64
	if err := s.db.QueryRow(`SELECT max(version) FROM layout`).Scan(&v); err != nil {
		return fmt.Errorf("duckdb store: catalog: %w", err)
	}
	switch {
	case !v.Valid && old > 0:
		return errors.New("duckdb store: the data directory was written by an earlier flowlog with another table layout; it cannot be read")
	case !v.Valid:
		_, err = s.db.Exec(`INSERT INTO layout VALUES (?)`, layoutVersion)
	case v.Int64 != layoutVersion:
		err = fmt.Errorf("table layout %d, this flowlog reads %d", v.Int64, layoutVersion)
	}
	if err != nil {
		return fmt.Errorf("duckdb store: %w", err)
	}
	return nil
}

// load reads the streams and finds their day tables.
func (s *Store) load() error {
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
	days, err := s.dayTables(context.Background(), s.db)
	if err != nil {
		return err
	}
	for num, st := range byNum {
		st.days = days[num]
	}
	return nil
}

// tableRE matches day table names; days before 1970 are negative.
var tableRE = regexp.MustCompile(`^f(\d+)_d(-?\d+)$`)

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
		_, err := s.w.ExecContext(ctx, `UPDATE streams SET log_group = ?, retention_days = ? WHERE account = ? AND stream = ?`,
			st.Group, st.RetentionDays, st.Account, st.Stream)
		if err != nil {
			s.broke()
			return fmt.Errorf("duckdb store: update stream %s: %w", st.StreamID, err)
		}
		return nil
	}
	var num int
	err := s.w.QueryRowContext(ctx, `INSERT INTO streams
		SELECT coalesce(max(num), 0) + 1, ?, ?, ?, ?, ? FROM streams RETURNING num`,
		st.Account, st.Stream, st.Group, st.RetentionDays, time.Now().UnixMilli()).Scan(&num)
	if err != nil {
		s.broke()
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
	s.drop.RLock()
	defer s.drop.RUnlock()
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

// exclusive takes every lock, in order, for a change that drops tables
// or reopens the database; the returned function releases them.
func (s *Store) exclusive() func() {
	s.drop.Lock()
	s.mu.Lock()
	s.view.Lock()
	return func() {
		s.view.Unlock()
		s.mu.Unlock()
		s.drop.Unlock()
	}
}

// DeleteStream implements store.Store.
func (s *Store) DeleteStream(ctx context.Context, id store.StreamID) error {
	defer s.exclusive()()
	st, ok := s.streams[id]
	if !ok {
		return fmt.Errorf("%w: %s", store.ErrNoStream, id)
	}
	if err := s.dropDays(ctx, st, len(st.days)); err != nil {
		return err
	}
	for _, q := range []string{`DELETE FROM streams WHERE num = ?`, `DELETE FROM commits WHERE num = ?`} {
		if _, err := s.w.ExecContext(ctx, q, st.num); err != nil {
			s.broke()
			return fmt.Errorf("duckdb store: delete stream %s: %w", id, err)
		}
	}
	delete(s.streams, id)
	return nil
}

// dropDays drops the first n day tables of a stream, with their rollups.
// Caller holds mu.
func (s *Store) dropDays(ctx context.Context, st *streamState, n int) error {
	for n > 0 {
		day := tableName(st.num, st.days[0])
		for _, t := range append(rollupTables(day), day) {
			if _, err := s.w.ExecContext(ctx, `DROP TABLE IF EXISTS `+query.Quote(t)); err != nil {
				s.broke()
				return fmt.Errorf("duckdb store: drop day: %w", err)
			}
			delete(s.rollups, t)
		}
		st.days = st.days[1:]
		n--
	}
	return nil
}

// Expire implements store.Store: whole day tables older than each
// stream's retention are dropped.
func (s *Store) Expire(ctx context.Context, now time.Time) error {
	s.drop.Lock()
	defer s.drop.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := s.w.QueryContext(ctx, `SELECT account, stream, retention_days FROM streams WHERE retention_days > 0`)
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

// OpenLocal opens (or makes) the store in dir and the named log stream of
// store.LocalAccount, creating it if need be: where flowlog meter imports
// records. Reading a data dir is the CLI's openDataDir.
func OpenLocal(ctx context.Context, dir, stream string) (*Store, store.StreamID, error) {
	id := store.StreamID{Account: store.LocalAccount, Stream: stream}
	if err := id.Validate(); err != nil {
		return nil, id, err
	}
	s, err := New(Config{Dir: dir})
	if err != nil {
		return nil, id, err
	}
	if _, err = s.Stream(ctx, id); errors.Is(err, store.ErrNoStream) {
		err = s.CreateStream(ctx, store.Stream{StreamID: id, Group: store.LocalAccount})
	}
	if err != nil {
		s.Close()
		return nil, id, err
	}
	return s, id, nil
}
