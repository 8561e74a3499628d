// Package backend opens the log store a store setting names: the embedded
// DuckDB store in the data dir, or a ClickHouse server. It also records the
// choice in the data dir, so that tools reading a data dir offline know
// where its records are.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"flowlog/internal/config"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse"
	"flowlog/internal/store/duckdb"
)

// Config says which store to open.
type Config struct {
	Store   config.Store
	DataDir string // the embedded store's directory
	Threads int    // the embedded store's worker threads; 0: one per core
	// Writer is the process writing to a shared store: "" for the server,
	// an agent's name (clickhouse.Config.Writer).
	Writer string
	// Timeout bounds each contact with a ClickHouse server until it
	// answers; 0: 15s.
	Timeout time.Duration
	// Logger, if set, makes a ClickHouse server that does not answer
	// (nothing listens, or the network does not reach it) waited for:
	// the store connects once it answers, and its requests until then
	// fail with store.ErrUnreachable. Logged once each way.
	Logger *slog.Logger
}

// New opens the store. A ClickHouse server must answer now, unless
// cfg.Logger is set: its database and catalog are created if missing.
// Errors name the store without its password.
func New(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.Store.Kind != config.StoreClickHouse {
		s, err := duckdb.New(duckdb.Config{Dir: cfg.DataDir, Threads: cfg.Threads})
		if err != nil {
			return nil, fmt.Errorf("log store: %w", err)
		}
		return s, nil
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	st := cfg.Store
	connect := func(ctx context.Context) (store.Store, error) {
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		s, err := clickhouse.New(ctx, clickhouse.Config{URL: "http://" + strings.Join(st.Addrs(), ",http://"), Database: st.Database,
			Cluster: st.Cluster, User: st.User, Password: st.Password, Writer: cfg.Writer})
		switch {
		case err == nil:
			return s, nil
		case unanswered(err):
			return nil, fmt.Errorf("log store %s: no ClickHouse server answers on %s (its HTTP port): %w", st, st.Addr, err)
		}
		return nil, fmt.Errorf("log store %s: %w", st, err)
	}
	if cfg.Logger == nil {
		return connect(ctx)
	}
	w := &waiting{st: st, connect: connect, log: cfg.Logger}
	err := w.do(ctx, func(store.Store) error { return nil })
	if err != nil && !errors.Is(err, store.ErrUnreachable) {
		return nil, err // a server that refuses: a wrong address or credentials
	}
	return w, nil
}

// RecordFile, in a data dir, names the store its server last used.
const RecordFile = "store"

// Record notes in dataDir which store holds its server's log records,
// without the password.
func Record(dataDir string, st config.Store) error {
	return os.WriteFile(filepath.Join(dataDir, RecordFile), []byte(st.String()+"\n"), 0o600)
}

// Previous returns the store that kept dataDir's records before, when it
// is not now: the one Record noted, or the embedded one for a data dir
// from before notes that holds its database.
func Previous(dataDir string, now config.Store) (config.Store, bool) {
	before, err := Recorded(dataDir)
	if err != nil {
		return before, false
	}
	if _, err := os.Stat(filepath.Join(dataDir, RecordFile)); err != nil {
		if _, err := os.Stat(filepath.Join(dataDir, duckdb.FileName)); err != nil {
			return before, false // a new data dir
		}
	}
	return before, before.String() != now.String()
}

// Recorded returns the store Record noted in dataDir; the embedded one
// when nothing was noted (data dirs from before the choice existed).
func Recorded(dataDir string) (config.Store, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, RecordFile))
	if errors.Is(err, os.ErrNotExist) {
		return config.Store{Kind: config.StoreDuckDB}, nil
	}
	if err != nil {
		return config.Store{}, err
	}
	return config.ParseStore(strings.TrimSpace(string(b)))
}
