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
	err = nil
	b = b.After(next)
	n := b.Next()
	if len(b.Records) == 0 {
		if n > next { // a gap: the position moves past it
			_, err = s.w.ExecContext(ctx, `INSERT OR REPLACE INTO commits VALUES (?, ?)`, st.num, n)
		}
		return err
	}
	return s.appendLocked(ctx, id, st, b.Records, &n)
}

// Committed implements store.Store.
func (s *Store) Committed(ctx context.Context, id store.StreamID) (uint64, error) {
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

// resync reads again, after a failed write, what the database holds of
// what the store keeps in memory: which dictionary values are saved and
// which day tables exist. Caller holds mu.
func (s *Store) resync(ctx context.Context) error {
	if !s.stale {
		return nil
	}
	rows, err := s.w.QueryContext(ctx, `SELECT field, count(*) FROM strings GROUP BY field`)
	if err != nil {
		return fmt.Errorf("duckdb store: resync: %w", err)
	}
	saved := map[string]int{}
	for rows.Next() {
		var f string
		var n int
		if err := rows.Scan(&f, &n); err != nil {
			rows.Close()
			return fmt.Errorf("duckdb store: resync: %w", err)
		}
		saved[f] = n
	}
	rows.Close()
	for _, d := range s.dicts {
		if d != nil {
			d.persisted = saved[d.field]
		}
	}
	days, err := s.dayTables(ctx, s.w)
	if err != nil {
		return err
	}
	s.view.Lock()
	for _, st := range s.streams {
		st.days = days[st.num]
	}
	s.view.Unlock()
	s.stale = false
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
