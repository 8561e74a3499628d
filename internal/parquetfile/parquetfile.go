// Package parquetfile writes Parquet files of typed columns through
// in-memory DuckDB tables, so that the files' types are exactly the
// columns' DuckDB types.
package parquetfile

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Column is a column of the file: its name and DuckDB type (INTEGER for
// Parquet INT32, BIGINT for INT64, VARCHAR for STRING, UBIGINT …).
type Column struct {
	Name string
	Type string
}

// DB is an in-memory DuckDB database that files are collected in, one
// table each: many files at once cost one database.
type DB struct {
	db     *sql.DB
	tables atomic.Uint64
}

// Open starts a database.
func Open() (*DB, error) {
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return &DB{db: sql.OpenDB(c)}, nil
}

// Close frees the database; the files not closed yet are not written.
func (d *DB) Close() error { return d.db.Close() }

// Writer collects rows and writes the file when closed.
type Writer struct {
	path, table string
	own         *DB // the database of a Writer made by New
	conn        *sql.Conn
	app         *duckdb.Appender
}

// New starts a file at path with the columns cols, in a database of its
// own.
func New(path string, cols []Column) (*Writer, error) {
	d, err := Open()
	if err != nil {
		return nil, err
	}
	w, err := d.New(path, cols)
	if err != nil {
		d.Close()
		return nil, err
	}
	w.own = d
	return w, nil
}

// New starts a file at path with the columns cols, in the database.
func (d *DB) New(path string, cols []Column) (*Writer, error) {
	w := &Writer{path: path, table: fmt.Sprintf("file%d", d.tables.Add(1))}
	defs := make([]string, len(cols))
	for i, col := range cols {
		defs[i] = quote(col.Name) + " " + col.Type
	}
	ctx := context.Background()
	var err error
	if w.conn, err = d.db.Conn(ctx); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	if _, err = w.conn.ExecContext(ctx, "CREATE TABLE "+w.table+" ("+strings.Join(defs, ", ")+")"); err == nil {
		err = w.conn.Raw(func(dc any) error {
			var err error
			w.app, err = duckdb.NewAppenderFromConn(dc.(driver.Conn), "", w.table)
			return err
		})
	}
	if err != nil {
		w.conn.Close()
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return w, nil
}

// Append adds a row, one value per column (nil for NULL). Text goes as
// []byte: the appender cuts a Go string at its first NUL.
func (w *Writer) Append(row ...driver.Value) error { return w.app.AppendRow(row...) }

// Close writes the file if ok, and frees the table either way.
func (w *Writer) Close(ok bool) error {
	ctx := context.Background()
	err := w.app.Close()
	if ok && err == nil {
		_, err = w.conn.ExecContext(ctx, "COPY "+w.table+" TO '"+strings.ReplaceAll(w.path, "'", "''")+"' (FORMAT parquet)")
	}
	_, dropErr := w.conn.ExecContext(ctx, "DROP TABLE "+w.table)
	err = errors.Join(err, dropErr, w.conn.Close())
	if w.own != nil {
		err = errors.Join(err, w.own.Close())
	}
	return err
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
