// Package clickhouse is the scale-out log store: each log stream is a
// MergeTree table partitioned by day, so retention drops partitions (and,
// on servers with TTL, the server expires them itself). It talks to the
// server over HTTP with explicit column lists and escaped literals, which
// works from Debian's 18.16 (no query parameters, no IPv6/DateTime64 types)
// to current releases. Commit stores each record of a stream's spool once,
// across failed INSERTs, late requests, restarts and changed batch
// boundaries: rows carry their spool position, a small table per stream
// holds the committed one, and each attempt goes through a staging table
// of its own (commit.go). Append keeps no position and does not deduplicate.
// Materialized views sum each stream's records into rollups as they are
// written, which answer top-N and series over whole minutes or hours
// (rollup.go).
package clickhouse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
)

// Config configures the connection.
type Config struct {
	URL      string // HTTP interface, e.g. http://127.0.0.1:8123; on a cluster, one per replica, comma-separated
	Database string // default "flowlog"
	Cluster  string // the cluster (of remote_servers) to replicate the tables on; "" for one server (cluster.go)
	User     string
	Password string
	Timeout  time.Duration // per request; default 60s
	// Writer names the process whose spool Commit stores from: "" for
	// the server, an agent's name for an agent. Each writer of a stream
	// keeps positions and marks of its own (store.WriterNumber).
	Writer string
}

// Store is the ClickHouse backend of store.Store.
type Store struct {
	c         *client
	db        string
	cluster   string
	hasTTL    bool // server ≥ 19.6
	mu        sync.Mutex
	streams   map[store.StreamID]bool      // known to exist
	positions map[store.StreamID]*position // what Commit knows of each stream's marks
	rolled    map[store.StreamID]bool      // whether a stream has rollups (rollup.go)
	noRollups atomic.Bool                  // answer everything from the records
	writer    uint64                       // store.WriterNumber of Config.Writer
}

var _ store.Store = (*Store)(nil)

// New connects, creates the database and catalog if missing, and checks
// the server version.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("clickhouse store: no URL")
	}
	if cfg.Database == "" {
		cfg.Database = "flowlog"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	s := &Store{
		c:         newClient(cfg.URL, clusterSettings(cfg.Cluster), cfg.User, cfg.Password, cfg.Timeout),
		db:        cfg.Database,
		cluster:   cfg.Cluster,
		streams:   map[store.StreamID]bool{},
		positions: map[store.StreamID]*position{},
		rolled:    map[store.StreamID]bool{},
		writer:    store.WriterNumber(cfg.Writer),
	}
	rows, err := s.c.selectTSV(ctx, "SELECT version()", []query.SQLType{query.SQLString})
	if err != nil {
		return nil, fmt.Errorf("clickhouse store: %w", err)
	}
	s.hasTTL = versionAtLeast(rows[0][0].(string), 19, 6)
	err = s.ddl(ctx, "CREATE DATABASE IF NOT EXISTS "+query.Quote(s.db)+s.onCluster(),
		"(SELECT count() FROM system.databases WHERE name = "+literal(s.db)+") = 1")
	if err == nil {
		// The catalog: the latest version of each stream row wins.
		err = s.createTable(ctx, "streams", `(account String, stream String, log_group String,
			retention_days UInt32, created Int64, deleted UInt8, version UInt64)`,
			s.engine("ReplacingMergeTree", "streams", "version")+" ORDER BY (account, stream)")
	}
	if err == nil {
		err = s.checkReplicated(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("clickhouse store: init: %w", err)
	}
	if err := s.upgradeTables(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// clusterSettings are the settings of every request on a cluster: no
// deduplication of repeated INSERT blocks by the replicated tables, so
// that Append stores what it is given as on one server, and Commit keeps
// its own exact account of positions.
func clusterSettings(cluster string) url.Values {
	if cluster == "" {
		return nil
	}
	return url.Values{"insert_deduplicate": {"0"}}
}

// versionAtLeast compares a "major.minor.…" version string.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(parts[1])
	return ma > major || ma == major && mi >= minor
}

// Close implements store.Store; there is nothing to release.
func (s *Store) Close() error { return nil }

func (s *Store) table(name string) string { return query.Quote(s.db) + "." + query.Quote(name) }

// dataTable names a stream's table by a hash of its id, so every agent
// writing to the same server finds the same table without coordination.
func (s *Store) dataTable(id store.StreamID) string { return s.table(tableID(id)) }

func tableID(id store.StreamID) string {
	h := sha256.Sum256([]byte(id.Account + "\x00" + id.Stream))
	return "f_" + hex.EncodeToString(h[:12])
}

func (s *Store) putCatalog(ctx context.Context, st store.Stream, deleted bool) error {
	del := uint64(0)
	if deleted {
		del = 1
	}
	q := "INSERT INTO " + s.table("streams") + " (account, stream, log_group, retention_days, created, deleted, version) SELECT " +
		strings.Join([]string{literal(st.Account), literal(st.Stream), literal(st.Group), literal(uint64(st.RetentionDays)),
			literal(st.Created.UnixMilli()), literal(del), literal(uint64(time.Now().UnixNano()))}, ", ")
	return s.c.exec(ctx, q)
}

// CreateStream implements store.Store.
func (s *Store) CreateStream(ctx context.Context, st store.Stream) error {
	if err := st.Validate(); err != nil {
		return err
	}
	created := false
	if old, err := s.Stream(ctx, st.StreamID); err == nil {
		st.Created = old.Created
	} else if !errors.Is(err, store.ErrNoStream) {
		return err
	} else {
		st.Created, created = time.Now(), true
	}
	cols := make([]string, len(query.Columns))
	for i, c := range query.Columns {
		cols[i] = query.Quote(c.Name) + " " + chType[c.Type]
	}
	data, marks := tableID(st.StreamID), marksName(st.StreamID)
	err := s.createTable(ctx, data, "("+strings.Join(cols, ", ")+", day Date, "+seqColumn+" UInt64)",
		s.engine("MergeTree", data)+" PARTITION BY day ORDER BY ("+query.Quote(query.TimeColumn)+")")
	if err == nil {
		// The marks of commit.go: the highest of each kind wins.
		err = s.createTable(ctx, marks, "(kind UInt64, next UInt64)", s.engine("ReplacingMergeTree", marks, "next")+" ORDER BY kind")
	}
	if err == nil {
		err = s.createReadTable(ctx, st.StreamID)
	}
	// Rollups, before the catalog row, so before any record is written. (A
	// server or replica that dies between storing a block and its views'
	// blocks leaves records without their rollup rows, which a retry cannot
	// see: queries read such days from the records, unsummedDays.)
	if err == nil && created {
		err = s.createRollups(ctx, st.StreamID)
	}
	if err != nil {
		return fmt.Errorf("clickhouse store: create stream %s: %w", st.StreamID, err)
	}
	if s.hasTTL {
		ttl := "REMOVE TTL"
		if st.RetentionDays > 0 {
			ttl = fmt.Sprintf("MODIFY TTL day + toIntervalDay(%d)", st.RetentionDays)
		}
		tables := []string{tableID(st.StreamID)}
		if has, err := s.hasRollups(ctx, st.StreamID); err != nil {
			return err
		} else if has {
			tables = append(tables, rollupTableIDs(st.StreamID)...)
		}
		for _, t := range tables {
			if err := s.c.exec(ctx, "ALTER TABLE "+s.table(t)+" "+ttl); err != nil && st.RetentionDays > 0 {
				return fmt.Errorf("clickhouse store: retention of %s: %w", st.StreamID, err)
			}
		}
	}
	if err := s.putCatalog(ctx, st, false); err != nil {
		return fmt.Errorf("clickhouse store: create stream %s: %w", st.StreamID, err)
	}
	s.mu.Lock()
	s.streams[st.StreamID] = true
	s.mu.Unlock()
	return nil
}

// emptySource is a table of the records' columns without rows.
var emptySource = func() string {
	cols := make([]string, len(query.Columns))
	for i, c := range query.Columns {
		cols[i] = "CAST(" + literal(zero[c.Type]) + " AS " + chType[c.Type] + ") AS " + query.Quote(c.Name)
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM system.one WHERE 0)"
}()

var zero = map[query.SQLType]any{query.SQLUint: uint64(0), query.SQLInt: int64(0), query.SQLString: ""}

var chType = map[query.SQLType]string{query.SQLUint: "UInt64", query.SQLInt: "Int64", query.SQLString: "String"}

// Stream implements store.Store.
func (s *Store) Stream(ctx context.Context, id store.StreamID) (store.Stream, error) {
	list, err := s.list(ctx, "account = "+literal(id.Account)+" AND stream = "+literal(id.Stream))
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
	return s.list(ctx, "account = "+literal(account))
}

func (s *Store) list(ctx context.Context, where string) ([]store.Stream, error) {
	rows, err := s.c.selectTSV(ctx, "SELECT account, stream, log_group, retention_days, created FROM "+s.table("streams")+
		" FINAL WHERE "+where+" AND deleted = 0 ORDER BY stream",
		[]query.SQLType{query.SQLString, query.SQLString, query.SQLString, query.SQLUint, query.SQLInt})
	if err != nil {
		return nil, fmt.Errorf("clickhouse store: list streams: %w", err)
	}
	out := make([]store.Stream, len(rows))
	for i, r := range rows {
		out[i] = store.Stream{StreamID: store.StreamID{Account: r[0].(string), Stream: r[1].(string)}, Group: r[2].(string),
			RetentionDays: int(r[3].(uint64)), Created: time.UnixMilli(r[4].(int64)).UTC()}
	}
	return out, nil
}

func (s *Store) exists(ctx context.Context, id store.StreamID) error {
	s.mu.Lock()
	ok := s.streams[id]
	s.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := s.Stream(ctx, id); err != nil {
		return err
	}
	s.mu.Lock()
	s.streams[id] = true
	s.mu.Unlock()
	return nil
}

// DeleteStream implements store.Store.
func (s *Store) DeleteStream(ctx context.Context, id store.StreamID) error {
	st, err := s.Stream(ctx, id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.streams, id)
	delete(s.positions, id)
	delete(s.rolled, id)
	s.mu.Unlock()
	if err := s.putCatalog(ctx, st, true); err != nil {
		return fmt.Errorf("clickhouse store: delete stream %s: %w", id, err)
	}
	for _, t := range append(rollupObjects(id), marksName(id), tableID(id)+"_all", tableID(id)) {
		if err := s.dropTable(ctx, t); err != nil {
			return fmt.Errorf("clickhouse store: delete stream %s: %w", id, err)
		}
	}
	if _, err := s.dropStages(ctx, id); err != nil {
		return fmt.Errorf("clickhouse store: delete stream %s: %w", id, err)
	}
	return nil
}

// Append implements store.Store: one INSERT … FORMAT RowBinary with an
// explicit column list. The records are on the server when it returns.
// Their rows carry no spool position, so retrying an Append that failed
// may store some records twice; spooled ingest goes through Commit.
func (s *Store) Append(ctx context.Context, id store.StreamID, recs []flow.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := s.exists(ctx, id); err != nil {
		return err
	}
	if _, err := s.c.do(ctx, insertHead(s.dataTable(id)), bytes.NewReader(encode(recs, 0).buf)); err != nil {
		return fmt.Errorf("clickhouse store: append to %s: %w", id, err)
	}
	return nil
}

// Query implements store.Store.
// A stream never written to (or deleted) answers as one without records.
func (s *Store) Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error) {
	return s.QueryStreams(ctx, []store.StreamID{id}, q)
}

// QueryStreams implements store.Store: the streams' tables are read as one
// UNION ALL, or, for a query a rollup answers, their rollups (rollup.go).
func (s *Store) QueryStreams(ctx context.Context, ids []store.StreamID, q query.Request) (*query.Response, error) {
	p, err := s.plan(ctx, ids, q)
	if err != nil {
		return nil, err
	}
	rows, err := s.c.selectTSV(ctx, p.SQL, p.Types)
	if err != nil {
		return nil, fmt.Errorf("clickhouse store: query: %w", err)
	}
	resp := p.Response()
	for _, r := range rows {
		if err := p.Add(resp, r); err != nil {
			return nil, err
		}
	}
	p.Finish(resp)
	return resp, nil
}

// plan compiles a query over the streams.
func (s *Store) plan(ctx context.Context, ids []store.StreamID, q query.Request) (*query.Plan, error) {
	streams, err := s.existing(ctx, ids)
	if err != nil {
		return nil, err
	}
	if from, ok, err := s.rollupSource(ctx, streams, q); err != nil {
		return nil, err
	} else if ok {
		return query.CompileWith(q, from, rollupDialect{}, query.Options{Count: rollup.CountColumn})
	}
	return query.Compile(q, s.source(streams), Dialect{})
}

// existing returns the streams that exist, each once.
func (s *Store) existing(ctx context.Context, ids []store.StreamID) ([]store.StreamID, error) {
	var out []store.StreamID
	for _, id := range ids {
		err := s.exists(ctx, id)
		if errors.Is(err, store.ErrNoStream) {
			continue
		} else if err != nil {
			return nil, err
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// source is the table a query over the streams reads: the union of their
// tables, or emptySource.
func (s *Store) source(streams []store.StreamID) string {
	tables := make([]string, len(streams))
	for i, id := range streams {
		tables[i] = s.dataTable(id)
	}
	switch len(tables) {
	case 0:
		return emptySource
	case 1:
		return tables[0]
	}
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = "SELECT " + columnList + " FROM " + t
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

// columnList names the records' columns, which every stream's table has.
var columnList = func() string {
	cols := make([]string, len(query.Columns))
	for i, c := range query.Columns {
		cols[i] = query.Quote(c.Name)
	}
	return strings.Join(cols, ", ")
}()

// Expire implements store.Store by dropping the day partitions older than
// each stream's retention; servers with TTL also expire on their own.
func (s *Store) Expire(ctx context.Context, now time.Time) error {
	rows, err := s.c.selectTSV(ctx, "SELECT account, stream, retention_days FROM "+s.table("streams")+
		" FINAL WHERE deleted = 0 AND retention_days > 0", []query.SQLType{query.SQLString, query.SQLString, query.SQLUint})
	if err != nil {
		return fmt.Errorf("clickhouse store: expire: %w", err)
	}
	for _, r := range rows {
		id := store.StreamID{Account: r[0].(string), Stream: r[1].(string)}
		first, _ := store.ExpiredBefore(now, int(r[2].(uint64)))
		if err := s.dropBefore(ctx, id, first); err != nil {
			return err
		}
	}
	return nil
}

// dropBefore drops the old partitions of the stream's table and rollups.
func (s *Store) dropBefore(ctx context.Context, id store.StreamID, firstDay int64) error {
	for _, t := range append([]string{tableID(id)}, rollupTableIDs(id)...) {
		if err := s.dropTableBefore(ctx, id, t, firstDay); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) dropTableBefore(ctx context.Context, id store.StreamID, table string, firstDay int64) error {
	parts, err := s.c.selectTSV(ctx, "SELECT DISTINCT partition FROM system.parts WHERE active AND database = "+
		literal(s.db)+" AND table = "+literal(table), []query.SQLType{query.SQLString})
	if err != nil {
		return fmt.Errorf("clickhouse store: expire %s: %w", id, err)
	}
	cutoff := time.UnixMilli(firstDay * 86400000).UTC().Format(time.DateOnly)
	for _, p := range parts {
		day := strings.Trim(p[0].(string), "'")
		if _, err := time.Parse(time.DateOnly, day); err != nil || day >= cutoff {
			continue
		}
		if err := s.c.exec(ctx, "ALTER TABLE "+s.table(table)+" DROP PARTITION "+literalDate(day)); err != nil {
			return fmt.Errorf("clickhouse store: expire %s: %w", id, err)
		}
	}
	return nil
}

// literalDate quotes a validated YYYY-MM-DD partition value.
func literalDate(day string) string { return "'" + day + "'" }

// Dialect renders values as escaped literals for ClickHouse SQL.
type Dialect struct{}

// Bind implements query.Dialect.
func (Dialect) Bind(_ *[]any, v any) string { return literal(v) }

// Uint implements query.Dialect.
func (Dialect) Uint(x string) string { return "toUInt64(" + x + ")" }

// Sum implements query.Dialect. ClickHouse's sum of UInt64 wraps around
// and 18.16 has no wider integer, so the column is summed in two halves of
// 32 bits, which cannot overflow below 2^32 rows, and the total saturates
// at 2^64−1.
func (Dialect) Sum(col string) string {
	return sumHalves("sum(intDiv("+col+", "+half+"))", "sum("+col+" % "+half+")")
}

// sumHalves adds up the sums of the high and low 32-bit halves of a
// counter, saturating at 2^64−1.
func sumHalves(hi, lo string) string {
	carried := "(" + hi + " + intDiv(" + lo + ", 4294967296))"
	return "if(" + carried + " >= 4294967296, 18446744073709551615, " +
		carried + " * 4294967296 + " + lo + " % 4294967296)"
}

// InSet implements query.Dialect: ClickHouse hashes a literal IN list.
func (d Dialect) InSet(exprs []string, cols [][]any, args *[]any) string {
	return query.InLiterals(d, exprs, cols, args)
}

// CountDistinct implements query.Dialect.
func (Dialect) CountDistinct(exprs []string) string {
	return "uniqExact(" + strings.Join(exprs, ", ") + ")"
}

// Bucket implements query.Dialect.
func (Dialect) Bucket(x string, ms int64) string {
	return fmt.Sprintf("(intDiv(%s, %d) * %d)", x, ms, ms)
}
