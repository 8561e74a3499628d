package duckdb

import (
	"context"
	"fmt"
	"slices"

	"flowlog/internal/store/query"
)

// upgradeTables gives the record tables made by an earlier record layout
// the columns added since, with the value of an empty field: layouts only
// ever append fields, so a table's columns are a prefix of query.Columns.
func (s *Store) upgradeTables() error {
	tables, err := s.recordTableColumns()
	if err != nil {
		return fmt.Errorf("duckdb store: upgrade: %w", err)
	}
	var ddl []string
	for _, t := range tables {
		if len(t.cols) > len(query.Columns) || !slices.Equal(t.cols, columnNames[:len(t.cols)]) {
			return fmt.Errorf("duckdb store: table %s has columns %v, not those of a record layout", t.name, t.cols)
		}
		for j := len(t.cols); j < len(query.Columns); j++ {
			// DuckDB adds no column with a constraint: NOT NULL, as new
			// tables have it, comes after.
			table, col := query.Quote(t.name), query.Quote(query.Columns[j].Name)
			ddl = append(ddl, "ALTER TABLE "+table+" ADD COLUMN "+col+" "+duckType[query.Columns[j].Type]+" DEFAULT "+s.emptyValue(j),
				"ALTER TABLE "+table+" ALTER COLUMN "+col+" SET NOT NULL")
		}
	}
	if len(ddl) == 0 {
		return nil
	}
	ctx := context.Background()
	if _, err := s.w.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("duckdb store: upgrade: %w", err)
	}
	err = s.saveDictionary(ctx)
	for _, q := range ddl {
		if err == nil {
			_, err = s.w.ExecContext(ctx, q)
		}
	}
	if err == nil {
		_, err = s.w.ExecContext(ctx, "COMMIT")
	}
	if err != nil {
		s.w.ExecContext(ctx, "ROLLBACK")
		return fmt.Errorf("duckdb store: upgrade: %w", err)
	}
	s.markPersisted()
	return nil
}

// emptyValue is the stored value of column j of an empty field: 0, or the
// dictionary code of "".
func (s *Store) emptyValue(j int) string {
	if d := s.dicts[j]; d != nil {
		return fmt.Sprint(d.code(""))
	}
	return "0"
}

var columnNames = func() []string {
	out := make([]string, len(query.Columns))
	for i, c := range query.Columns {
		out[i] = c.Name
	}
	return out
}()

type tableColumns struct {
	name string
	cols []string
}

// recordTableColumns lists the day tables and the empty table with their
// columns in order.
func (s *Store) recordTableColumns() ([]tableColumns, error) {
	rows, err := s.w.QueryContext(context.Background(), `SELECT table_name, column_name FROM duckdb_columns()
		WHERE schema_name = 'main' ORDER BY table_name, column_index`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tableColumns
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return nil, err
		}
		if _, _, ok := parseTableName(table); !ok && table != emptyTable {
			continue
		}
		if len(out) == 0 || out[len(out)-1].name != table {
			out = append(out, tableColumns{name: table})
		}
		last := &out[len(out)-1]
		last.cols = append(last.cols, col)
	}
	return out, rows.Err()
}
