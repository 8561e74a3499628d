package control

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

// CreateLogGroup adds a log group named name to account.
func (s *Service) CreateLogGroup(ctx context.Context, account string, name *string) (LogGroup, error) {
	g := LogGroup{ID: newID(prefixLogGroup), AccountID: account, CreatedAt: s.now()}
	if err := checkName("name", name, true); err != nil {
		return g, err
	}
	g.Name = *name
	_, err := s.db.ExecContext(ctx, `INSERT INTO log_groups (id, account_id, name, created_at) VALUES (?,?,?,?)`,
		g.ID, g.AccountID, g.Name, unixNano(g.CreatedAt))
	if isUnique(err) {
		return g, conflict("log group %q already exists", g.Name)
	}
	return g, err
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

const logGroupCols = `id, account_id, name, created_at`

func scanLogGroup(row scanner) (LogGroup, error) {
	var g LogGroup
	var c int64
	err := row.Scan(&g.ID, &g.AccountID, &g.Name, &c)
	g.CreatedAt = fromNano(c)
	return g, err
}

func getLogGroup(ctx context.Context, q querier, account, id string) (LogGroup, error) {
	return queryOne(ctx, q, scanLogGroup, "log_group", id, `SELECT `+logGroupCols+` FROM log_groups
		WHERE id = ? AND account_id = ?`, id, account)
}

// GetLogGroup returns one of account's log groups.
func (s *Service) GetLogGroup(ctx context.Context, account, id string) (LogGroup, error) {
	return getLogGroup(ctx, s.db, account, id)
}

// LogGroupByName returns account's log group called name.
func (s *Service) LogGroupByName(ctx context.Context, account, name string) (LogGroup, error) {
	return queryOne(ctx, s.db, scanLogGroup, "log_group", name, `SELECT `+logGroupCols+` FROM log_groups
		WHERE name = ? AND account_id = ?`, name, account)
}

// ListLogGroups returns account's log groups, oldest first.
func (s *Service) ListLogGroups(ctx context.Context, account string) ([]LogGroup, error) {
	return queryAll(ctx, s.db, scanLogGroup, `SELECT `+logGroupCols+` FROM log_groups
		WHERE account_id = ? ORDER BY created_at, id`, account)
}

// DeleteLogGroup removes an empty log group.
func (s *Service) DeleteLogGroup(ctx context.Context, account, id string) error {
	return inTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := getLogGroup(ctx, tx, account, id); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM log_streams WHERE log_group_id = ?`, id).
			Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return inUse("log group %s still has %d log stream(s); delete them first", id, n)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM log_groups WHERE id = ?`, id)
		return err
	})
}

// CreateLogStream adds a log stream to a log group. retentionDays nil means
// DefaultRetentionDays.
func (s *Service) CreateLogStream(ctx context.Context, account, groupID string, name *string, retentionDays *int) (LogStream, error) {
	ls := LogStream{ID: newID(prefixLogStream), LogGroupID: groupID, AccountID: account,
		RetentionDays: DefaultRetentionDays, CreatedAt: s.now()}
	if err := checkName("name", name, true); err != nil {
		return ls, err
	}
	ls.Name = *name
	if retentionDays != nil {
		if err := checkRetention(*retentionDays); err != nil {
			return ls, err
		}
		ls.RetentionDays = *retentionDays
	}
	err := s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		if _, err := getLogGroup(ctx, tx, account, groupID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO log_streams (id, log_group_id, account_id, name,
			retention_days, created_at) VALUES (?,?,?,?,?,?)`, ls.ID, ls.LogGroupID, ls.AccountID, ls.Name,
			ls.RetentionDays, unixNano(ls.CreatedAt))
		if isUnique(err) {
			return conflict("log stream %q already exists in log group %s", ls.Name, groupID)
		}
		return err
	})
	return ls, err
}

const logStreamCols = `id, log_group_id, account_id, name, retention_days, created_at`

func scanLogStream(row scanner) (LogStream, error) {
	var ls LogStream
	var c int64
	err := row.Scan(&ls.ID, &ls.LogGroupID, &ls.AccountID, &ls.Name, &ls.RetentionDays, &c)
	ls.CreatedAt = fromNano(c)
	return ls, err
}

func getLogStream(ctx context.Context, q querier, account, id string) (LogStream, error) {
	return queryOne(ctx, q, scanLogStream, "log_stream", id, `SELECT `+logStreamCols+` FROM log_streams
		WHERE id = ? AND account_id = ?`, id, account)
}

// GetLogStream returns one of account's log streams.
func (s *Service) GetLogStream(ctx context.Context, account, id string) (LogStream, error) {
	return getLogStream(ctx, s.db, account, id)
}

// LogStreamByName returns the stream called name in account's group groupID.
func (s *Service) LogStreamByName(ctx context.Context, account, groupID, name string) (LogStream, error) {
	return queryOne(ctx, s.db, scanLogStream, "log_stream", name, `SELECT `+logStreamCols+` FROM log_streams
		WHERE log_group_id = ? AND name = ? AND account_id = ?`, groupID, name, account)
}

// ListLogStreams returns the streams of one of account's log groups.
func (s *Service) ListLogStreams(ctx context.Context, account, groupID string) ([]LogStream, error) {
	if _, err := s.GetLogGroup(ctx, account, groupID); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db, scanLogStream, `SELECT `+logStreamCols+` FROM log_streams
		WHERE log_group_id = ? AND account_id = ? ORDER BY created_at, id`, groupID, account)
}

// AccountLogStreams returns all of account's log streams, in every log group.
func (s *Service) AccountLogStreams(ctx context.Context, account string) ([]LogStream, error) {
	return queryAll(ctx, s.db, scanLogStream, `SELECT `+logStreamCols+` FROM log_streams
		WHERE account_id = ? ORDER BY created_at, id`, account)
}

// DeleteLogStream removes a log stream, and then its records through the
// OnLogStreamDeleted hook; refused while a flow log writes to it.
func (s *Service) DeleteLogStream(ctx context.Context, account, groupID, id string) error {
	err := s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		ls, err := getLogStream(ctx, tx, account, id)
		if err != nil {
			return err
		}
		if ls.LogGroupID != groupID {
			return notFound("log_stream", id)
		}
		var fl string
		err = tx.QueryRowContext(ctx, `SELECT id FROM flow_logs WHERE log_stream_id = ? LIMIT 1`, id).Scan(&fl)
		if err == nil {
			return inUse("log stream %s is the output of flow log %s", id, fl)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM log_streams WHERE id = ?`, id)
		return err
	})
	if err == nil {
		if s.streamDeleted != nil {
			s.streamDeleted(context.WithoutCancel(ctx), account, id)
		}
	}
	return err
}
