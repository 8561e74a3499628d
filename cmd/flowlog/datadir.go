package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"flowlog/internal/config"
	"flowlog/internal/control"
	"flowlog/internal/spool"
	"flowlog/internal/store"
	"flowlog/internal/store/backend"
	"flowlog/internal/store/duckdb"
)

// openDataDir opens the log store of dir without a server and finds the
// log stream t names. A server's data dir is resolved through its control
// state (log stream name or id, narrowed by --log-group and --account);
// streams written by flowlog meter belong to store.LocalAccount. The
// records are in the embedded store, or in the ClickHouse server --store
// names.
func openDataDir(ctx context.Context, t streamTarget) (store.Store, store.StreamID, error) {
	s, err := openOffline(ctx, t)
	if err != nil {
		return nil, store.StreamID{}, err
	}
	id, err := resolveStream(ctx, s, t)
	if err != nil {
		s.Close()
		return nil, id, err
	}
	if n, _ := spool.Waiting(filepath.Join(t.dataDir, spool.DirName), id); n > 0 && t.notes != nil {
		fmt.Fprintf(t.notes, "note: up to %.1f MB of this log stream's records wait in the data dir's spool, "+
			"not in these results; the server stores them when it next runs\n", float64(n)/1e6)
	}
	return s, id, nil
}

// openOffline opens the store holding the records of t's data dir: the
// one --store names, else the one its server noted. FLOWLOG_STORE (as
// serve reads it) supplies the ClickHouse URL, with its credentials, for a
// data dir whose server noted ClickHouse.
func openOffline(ctx context.Context, t streamTarget) (store.Store, error) {
	dir := t.dataDir
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no flowlog data dir %s: %w", dir, err)
	}
	used, err := backend.Recorded(dir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	setting := t.store
	if setting == "" && used.Kind == config.StoreClickHouse {
		setting = os.Getenv("FLOWLOG_STORE")
	}
	given, err := config.ParseStore(setting)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	switch {
	case given.Kind == config.StoreClickHouse:
		return backend.New(ctx, backend.Config{Store: given})
	case used.Kind == config.StoreClickHouse && t.store == "":
		return nil, fmt.Errorf("the server of data dir %s keeps its log records in ClickHouse (%s), not in the data dir: "+
			"query it with --server URL, or read ClickHouse directly with --store %s (with USER:PASSWORD@ if it needs them)",
			dir, used, used)
	}
	if _, err := os.Stat(filepath.Join(dir, duckdb.FileName)); err != nil {
		return nil, fmt.Errorf("no flowlog store in %s: %w", dir, err)
	}
	s, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		if duckdbLocked(err) {
			return nil, fmt.Errorf("the data dir %s is in use by a running flowlog server; "+
				"query it with --server URL (or stop the server)", dir)
		}
		return nil, err
	}
	return s, nil
}

// duckdbLocked tells whether opening failed because another process (a
// running server) holds the database's lock. DuckDB reports it only in
// its message.
func duckdbLocked(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Could not set lock") || strings.Contains(msg, "Conflicting lock")
}

// resolveStream finds the store's stream id for t in the control state,
// falling back to the local account's stream of that name.
func resolveStream(ctx context.Context, s store.Store, t streamTarget) (store.StreamID, error) {
	local := store.StreamID{Account: store.LocalAccount, Stream: t.stream}
	if t.account == store.LocalAccount {
		return local, checkStream(ctx, s, local, t.stream)
	}
	refs, err := control.FindLogStreams(ctx, t.dataDir, control.StreamFilter{Stream: t.stream, Group: t.group, Account: t.account})
	if err != nil && !errors.Is(err, control.ErrNoControlState) {
		return local, err
	}
	narrowed := t.group != "" || t.account != ""
	switch {
	case len(refs) == 1:
		id := store.StreamID{Account: refs[0].AccountID, Stream: refs[0].ID}
		return id, checkStream(ctx, s, id, t.stream)
	case len(refs) > 1:
		return local, fmt.Errorf("%d log streams are named %q; give --log-group or --account, or the stream's id: %s",
			len(refs), t.stream, control.DescribeStreams(refs))
	case narrowed:
		return local, fmt.Errorf("no log stream %q%s in %s", t.stream, t.narrowing(), t.dataDir)
	}
	return local, checkStream(ctx, s, local, t.stream)
}

// checkStream reports a stream the store does not hold in the user's terms.
func checkStream(ctx context.Context, s store.Store, id store.StreamID, name string) error {
	if _, err := s.Stream(ctx, id); err != nil {
		if errors.Is(err, store.ErrNoStream) {
			return fmt.Errorf("no records of log stream %q in this data dir's store: %w", name, err)
		}
		return err
	}
	return nil
}

func (t streamTarget) narrowing() string {
	var s string
	if t.group != "" {
		s += " in log group " + t.group
	}
	if t.account != "" {
		s += " of account " + t.account
	}
	return s
}
