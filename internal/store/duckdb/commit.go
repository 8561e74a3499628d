package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"flowlog/internal/store"
)

// Commit implements store.Store: the records the store does not hold yet
// and the position after them, in one transaction.
func (s *Store) Commit(ctx context.Context, id store.StreamID, b store.Batch) error {
	return s.write(func() error { return s.commit(ctx, id, b) })
}

func (s *Store) commit(ctx context.Context, id store.StreamID, b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[id]
	if !ok {
		return fmt.Errorf("%w: %s", store.ErrNoStream, id)
	}
	var next uint64
	err := s.w.QueryRowContext(ctx, `SELECT next FROM commits WHERE num = ?`, st.num).Scan(&next)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("duckdb store: commit to %s: %w", id, err)
	}
	b = b.After(next)
	n := b.Next()
	if len(b.Records) == 0 {
		if n > next { // a gap: the position moves past it
			if _, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO commits VALUES (?, ?)`, st.num, n); err != nil {
				s.broke()
				return fmt.Errorf("duckdb store: commit to %s: %w", id, err)
			}
		}
		return nil
	}
	return s.appendLocked(ctx, id, st, b.Records, &n)
}

// Committed implements store.Store.
func (s *Store) Committed(ctx context.Context, id store.StreamID) (uint64, error) {
	s.drop.RLock()
	defer s.drop.RUnlock()
	var next uint64
	err := s.db.QueryRowContext(ctx, `SELECT c.next FROM commits c JOIN streams s USING (num)
		WHERE s.account = ? AND s.stream = ?`, id.Account, id.Stream).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("duckdb store: committed %s: %w", id, err)
	}
	return next, nil
}

// write runs a write, with the database repaired before and after it if
// a write failed.
func (s *Store) write(f func() error) error {
	if err := s.repair(); err != nil {
		return err
	}
	err := f()
	return errors.Join(err, s.repair())
}

// broke records a failed write, after which DuckDB's memory cannot be
// trusted: a COMMIT that fails in the checkpoint it runs once the WAL is
// past its threshold leaves the transaction visible (its spool position
// moved on) while its records are in no file, and may leave a day table
// reading as empty. Checkpointing that at close would make it durable, so
// the database is told not to, and repair opens it again from its files.
// Caller holds mu.
func (s *Store) broke() {
	s.broken.Store(true)
	s.w.ExecContext(context.Background(), "PRAGMA disable_checkpoint_on_shutdown")
}

// repair opens the database again from its files after a failed write:
// what is read and retried from then on is what is durable, the WAL
// holding every transaction that committed. It waits for running queries.
func (s *Store) repair() error {
	if !s.broken.Load() {
		return nil
	}
	defer s.exclusive()()
	if !s.broken.Load() {
		return nil
	}
	s.Close()
	if err := s.connect(); err != nil {
		return fmt.Errorf("duckdb store: reopen after a failed write: %w", err)
	}
	s.broken.Store(false)
	return nil
}

// dayTables returns the days that have a table, sorted, by stream number.
func (s *Store) dayTables(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (map[int][]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'`)
	if err != nil {
		return nil, fmt.Errorf("duckdb store: tables: %w", err)
	}
	defer rows.Close()
	days := map[int][]int64{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("duckdb store: tables: %w", err)
		}
		if num, day, ok := parseTableName(name); ok {
			days[num] = append(days[num], day)
		}
	}
	for _, d := range days {
		slices.Sort(d)
	}
	return days, rows.Err()
}
