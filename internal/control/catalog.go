package control

import (
	"context"
	"database/sql"

	"flowlog/internal/desired"
	"flowlog/internal/store"
)

// The control plane is the log store's catalog: it owns log groups and log
// streams, and the store follows it (store.Follow).
var _ store.Catalog = (*Service)(nil)

// LogStreams implements store.Catalog: every account's log streams as the
// store names them, with their log group and retention.
func (s *Service) LogStreams(ctx context.Context) ([]store.Stream, error) {
	all, err := queryAll(ctx, s.db, scanLogStream, `SELECT `+logStreamCols+` FROM log_streams ORDER BY id`)
	if err != nil {
		return nil, err
	}
	out := make([]store.Stream, len(all))
	for i, ls := range all {
		out[i] = ls.StoreStream()
	}
	return out, nil
}

// Accounts implements store.Catalog: every account's id.
func (s *Service) Accounts(ctx context.Context) ([]string, error) {
	return queryAll(ctx, s.db, func(row scanner) (string, error) {
		var id string
		return id, row.Scan(&id)
	}, `SELECT id FROM accounts ORDER BY id`)
}

// StoreStream is the log stream as the log store knows it.
func (ls LogStream) StoreStream() store.Stream { return ls.desired().StoreStream() }

func (ls LogStream) desired() desired.LogStream {
	return desired.LogStream{ID: ls.ID, AccountID: ls.AccountID, LogGroupID: ls.LogGroupID,
		RetentionDays: ls.RetentionDays, CreatedAt: ls.CreatedAt}
}

// OnLogStreamDeleted sets what runs after a log stream is deleted: in
// serve, deleting its records from the log store. The store's follow of
// the catalog deletes them too, should this fail or the server stop first.
func (s *Service) OnLogStreamDeleted(fn func(ctx context.Context, account, id string)) {
	s.streamDeleted = fn
}

// UpdateLogStream changes a log stream's retention; the log store expires
// by it from its next retention pass.
func (s *Service) UpdateLogStream(ctx context.Context, account, groupID, id string, retentionDays *int) (LogStream, error) {
	var ls LogStream
	err := s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		var err error
		if ls, err = getLogStream(ctx, tx, account, id); err != nil {
			return err
		}
		if ls.LogGroupID != groupID {
			return notFound("log_stream", id)
		}
		if retentionDays == nil {
			return nil
		}
		if err := checkRetention(*retentionDays); err != nil {
			return err
		}
		ls.RetentionDays = *retentionDays
		_, err = tx.ExecContext(ctx, `UPDATE log_streams SET retention_days = ? WHERE id = ?`, ls.RetentionDays, id)
		return err
	})
	return ls, err
}

func checkRetention(days int) error {
	if days < 1 || days > 3650 {
		return illegal("retention_days", "must be 1 to 3650, got %d", days)
	}
	return nil
}
