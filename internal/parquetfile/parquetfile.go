// Package parquetfile writes one Parquet file of typed columns through an
// in-memory DuckDB table, so that the file's types are exactly the
// columns' DuckDB types.
package parquetfile

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Column is a column of the file: its name and DuckDB type (INTEGER for
// Parquet INT32, BIGINT for INT64, VARCHAR for STRING, UBIGINT …).
type Column struct {
	Name string
	Type string
}

// Writer collects rows and writes the file when closed.
type Writer struct {
	path string
	db   *sql.DB
	conn *sql.Conn
	app  *duckdb.Appender
}

// New starts a file at path with the columns cols.
func New(path string, cols []Column) (*Writer, error) {
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	w := &Writer{path: path, db: sql.OpenDB(c)}
	defs := make([]string, len(cols))
	for i, col := range cols {
		defs[i] = quote(col.Name) + " " + col.Type
	}
	ctx := context.Background()
	if w.conn, err = w.db.Conn(ctx); err == nil {
		if _, err = w.conn.ExecContext(ctx, "CREATE TABLE records ("+strings.Join(defs, ", ")+")"); err == nil {
			err = w.conn.Raw(func(dc any) error {
				var err error
				w.app, err = duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "records")
				return err
			})
		}
	}
	if err != nil {
		w.db.Close()
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return w, nil
}

// Append adds a row, one value per column (nil for NULL). Text goes as
// []byte: the appender cuts a Go string at its first NUL.
func (w *Writer) Append(row ...driver.Value) error { return w.app.AppendRow(row...) }

// Close writes the file if ok, and frees the table either way.
func (w *Writer) Close(ok bool) error {
	err := w.app.Close()
	if ok && err == nil {
		_, err = w.conn.ExecContext(context.Background(),
			"COPY records TO '"+strings.ReplaceAll(w.path, "'", "''")+"' (FORMAT parquet)")
	}
	return errors.Join(err, w.conn.Close(), w.db.Close())
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
