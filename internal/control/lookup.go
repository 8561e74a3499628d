package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// StreamRef names a log stream found in a data dir's control state, for
// tools that read the data dir without the server (flowlog query/export).
type StreamRef struct {
	ID        string // ls-…
	Name      string
	GroupID   string // lg-…
	GroupName string
	AccountID string
}

// ErrNoControlState is returned by FindLogStreams for a data dir that has
// no control database (e.g. one written by flowlog meter).
var ErrNoControlState = errors.New("no control state")

// StreamFilter narrows FindLogStreams: Stream is a name or an ls-… id;
// Group, if set, a log group name or lg-… id; Account, if set, an account id.
type StreamFilter struct {
	Stream, Group, Account string
}

// FindLogStreams lists the log streams of dataDir's control database that
// match f. It opens the database read-only and changes nothing in it, so a
// stopped server's state can be read by another user's tools.
func FindLogStreams(ctx context.Context, dataDir string, f StreamFilter) ([]StreamRef, error) {
	path := filepath.Join(dataDir, dbFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoControlState
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// mode=ro opens without write access; query_only refuses any write
	// the driver might attempt (no schema creation, no migrations). A
	// cleanly stopped server leaves no write-ahead log: then the file is
	// the whole state, and immutable keeps SQLite from creating -wal and
	// -shm files beside it. A left log (a killed server) must be read.
	dsn := (&url.URL{Scheme: "file", Path: abs}).String() + "?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(5000)"
	if _, err := os.Stat(path + "-wal"); errors.Is(err, os.ErrNotExist) {
		dsn += "&immutable=1"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("control db: %w", err)
	}
	defer db.Close()
	q := `SELECT s.id, s.name, g.id, g.name, s.account_id
		FROM log_streams s JOIN log_groups g ON g.id = s.log_group_id
		WHERE (s.name = ?1 OR s.id = ?1)
		AND (?2 = '' OR g.name = ?2 OR g.id = ?2) AND (?3 = '' OR s.account_id = ?3)
		ORDER BY s.account_id, g.name, s.id`
	rows, err := db.QueryContext(ctx, q, f.Stream, f.Group, f.Account)
	if err != nil {
		return nil, fmt.Errorf("control db %s: %w", path, err)
	}
	defer rows.Close()
	var out []StreamRef
	for rows.Next() {
		var r StreamRef
		if err := rows.Scan(&r.ID, &r.Name, &r.GroupID, &r.GroupName, &r.AccountID); err != nil {
			return nil, fmt.Errorf("control db: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("control db: %w", err)
	}
	return out, nil
}

// String describes r for a choice between streams of the same name.
func (r StreamRef) String() string {
	return fmt.Sprintf("%s (log group %s %s, account %s)", r.ID, r.GroupName, r.GroupID, r.AccountID)
}

// DescribeStreams joins refs for an error message.
func DescribeStreams(refs []StreamRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, "; ")
}
