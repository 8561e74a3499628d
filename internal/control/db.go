package control

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"modernc.org/sqlite" // pure Go
)

const schema = `
CREATE TABLE IF NOT EXISTS settings (
	key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
	id TEXT PRIMARY KEY, bootstrap INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (
	id TEXT PRIMARY KEY, secret TEXT NOT NULL,
	account_id TEXT NOT NULL REFERENCES accounts(id), created_at INTEGER NOT NULL,
	enabled INTEGER NOT NULL DEFAULT 1, last_used_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS gateways (
	id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
	name TEXT NOT NULL, description TEXT NOT NULL, kind TEXT NOT NULL,
	pcap_path TEXT NOT NULL, pcap_pace TEXT NOT NULL, exporter TEXT NOT NULL,
	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (
	id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
	account_id TEXT NOT NULL, name TEXT NOT NULL, interface TEXT NOT NULL,
	if_index INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_groups (
	id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
	name TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (account_id, name));
CREATE TABLE IF NOT EXISTS log_streams (
	id TEXT PRIMARY KEY, log_group_id TEXT NOT NULL REFERENCES log_groups(id),
	account_id TEXT NOT NULL, name TEXT NOT NULL, retention_days INTEGER NOT NULL,
	created_at INTEGER NOT NULL, UNIQUE (log_group_id, name));
CREATE TABLE IF NOT EXISTS flow_logs (
	id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
	name TEXT NOT NULL, description TEXT NOT NULL, region TEXT NOT NULL,
	resource_group_id TEXT NOT NULL,
	active_aging INTEGER NOT NULL, inactive_aging INTEGER NOT NULL,
	aggregation_interval INTEGER NOT NULL, sampling INTEGER NOT NULL,
	output_type TEXT NOT NULL, log_group_id TEXT NOT NULL, log_stream_id TEXT NOT NULL,
	sls_region_id TEXT NOT NULL, netflow_ip TEXT NOT NULL, netflow_port INTEGER NOT NULL,
	netflow_version TEXT NOT NULL,
	enabled INTEGER NOT NULL, state TEXT NOT NULL, state_reason TEXT NOT NULL,
	client_token TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS flow_logs_token ON flow_logs (account_id, client_token)
	WHERE client_token <> '';
CREATE TABLE IF NOT EXISTS flow_log_targets (
	flow_log_id TEXT NOT NULL REFERENCES flow_logs(id) ON DELETE CASCADE,
	gateway_id TEXT NOT NULL, attachment_id TEXT NOT NULL,
	PRIMARY KEY (flow_log_id, gateway_id, attachment_id));
CREATE INDEX IF NOT EXISTS flow_log_targets_gw ON flow_log_targets (gateway_id);
CREATE INDEX IF NOT EXISTS gateways_exporter ON gateways (exporter) WHERE kind = 'exporter';
CREATE TABLE IF NOT EXISTS revision (
	id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT OR IGNORE INTO revision (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS grants (
	id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
	kind TEXT NOT NULL, value TEXT NOT NULL, created_at INTEGER NOT NULL,
	UNIQUE (account_id, kind, value));
CREATE TABLE IF NOT EXISTS agents (
	name TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, secret TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS planes (
	name TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS flow_log_planes (
	flow_log_id TEXT NOT NULL REFERENCES flow_logs(id) ON DELETE CASCADE,
	plane TEXT NOT NULL, version INTEGER NOT NULL, reason TEXT NOT NULL,
	PRIMARY KEY (flow_log_id, plane));
CREATE TABLE IF NOT EXISTS exporter_templates (
	account_id TEXT NOT NULL, exporter TEXT NOT NULL, templates TEXT NOT NULL,
	PRIMARY KEY (account_id, exporter));
`

// dbFile is the control-plane database's name in the data dir.
const dbFile = "control.db"

// openDB opens (creating if needed) the control-plane database in dir. The
// directory is private to the user (0700) and the files 0600: they hold
// access-key secrets.
func openDB(dir string, stmts *atomic.Uint64) (*sql.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, dbFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("control db: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("control db: %w", err)
	}
	// WAL with synchronous=FULL: a committed change survives a crash of the
	// process or of the machine.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)"
	conn, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("control db: %w", err)
	}
	db := sql.OpenDB(countingConnector{conn, stmts})
	// One connection serialises every change; the control plane's load is
	// small, and it makes quotas and idempotent creates race-free.
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("control db schema: %w", err)
	}
	if err := addColumns(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("control db schema: %w", err)
	}
	return db, nil
}

// addedColumns are columns added to a table after its first release: CREATE
// TABLE IF NOT EXISTS leaves an older data dir's table as it was, so openDB
// adds them where missing. Each needs a default for the rows already there.
var addedColumns = []struct{ table, column, def string }{
	{"access_keys", "enabled", "INTEGER NOT NULL DEFAULT 1"},
	{"access_keys", "last_used_at", "INTEGER NOT NULL DEFAULT 0"},
	{"flow_logs", "revision", "INTEGER NOT NULL DEFAULT 0"}, // version of its last change
	{"gateways", "agent", "TEXT NOT NULL DEFAULT ''"},       // the agent running it; "" for the server
	// output type file: its settings, as JSON
	{"flow_logs", "file_output", "TEXT NOT NULL DEFAULT ''"},
	{"gateways", "snmp", "TEXT NOT NULL DEFAULT ''"}, // exporters: SNMP settings (JSON); "" for none
	// exporter: 1:N applied when the router announces no rate; 0 for none
	{"gateways", "sampling_interval", "INTEGER NOT NULL DEFAULT 0"},
}

func addColumns(ctx context.Context, db *sql.DB) error {
	for _, c := range addedColumns {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`,
			c.table, c.column).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.def); err != nil {
			return fmt.Errorf("adding %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func unixNano(t time.Time) int64 { return t.UnixNano() }

func fromNano(n int64) time.Time { return time.Unix(0, n).UTC() }
