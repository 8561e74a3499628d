// Package export writes the records of a log stream over a time range as
// CSV, JSON lines or Parquet, from any store backend.
package export

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// ErrFormat is returned for an unknown format or a misuse of one.
var ErrFormat = errors.New("export format")

// Formats lists the supported formats.
var Formats = []string{"csv", "jsonl", "parquet"}

// Querier is the part of a store export reads from.
type Querier interface {
	Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error)
}

// Options select what to write and how.
type Options struct {
	Since, Until time.Time
	Where        string
	Format       string    // csv | jsonl | parquet
	Out          io.Writer // csv and jsonl
	Path         string    // parquet: the file to write
	Window       time.Duration
}

// Export writes the records and returns how many it wrote. Records come
// in time order (by end), read one window at a time so that paging stays
// cheap on large ranges.
func Export(ctx context.Context, src Querier, id store.StreamID, o Options) (int, error) {
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	var w recordWriter
	switch o.Format {
	case "csv":
		w = newCSV(o.Out)
	case "jsonl":
		w = &jsonl{w: bufio.NewWriter(o.Out)}
	case "parquet":
		if o.Path == "" {
			return 0, fmt.Errorf("%w: parquet needs a file path", ErrFormat)
		}
		pw, err := newParquet(o.Path)
		if err != nil {
			return 0, err
		}
		w = pw
	default:
		return 0, fmt.Errorf("%w: %q (want one of %s)", ErrFormat, o.Format, strings.Join(Formats, ", "))
	}
	n, err := each(ctx, src, id, o, w.write)
	return n, errors.Join(err, w.close(err == nil))
}

func each(ctx context.Context, src Querier, id store.StreamID, o Options, fn func(*flow.Record) error) (int, error) {
	n := 0
	for from := o.Since; from.Before(o.Until); from = from.Add(o.Window) {
		q := query.Request{Since: from, Until: minTime(from.Add(o.Window), o.Until), Where: o.Where, Limit: query.MaxLimit}
		for {
			resp, err := src.Query(ctx, id, q)
			if err != nil {
				return n, err
			}
			for i := range resp.Records {
				if err := fn(&resp.Records[i]); err != nil {
					return n, err
				}
				n++
			}
			if resp.NextOffset == 0 {
				break
			}
			q.Offset = resp.NextOffset
		}
	}
	return n, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

type recordWriter interface {
	write(*flow.Record) error
	close(ok bool) error
}

type csvWriter struct {
	w   *csv.Writer
	row []string
}

func newCSV(out io.Writer) *csvWriter {
	c := &csvWriter{w: csv.NewWriter(out), row: make([]string, len(flow.Fields))}
	for i, f := range flow.Fields {
		c.row[i] = f.Name
	}
	c.w.Write(c.row)
	return c
}

func (c *csvWriter) write(r *flow.Record) error {
	for i, f := range flow.Fields {
		c.row[i] = f.Text(r)
	}
	return c.w.Write(c.row)
}

func (c *csvWriter) close(bool) error { c.w.Flush(); return c.w.Error() }

type jsonl struct{ w *bufio.Writer }

func (j *jsonl) write(r *flow.Record) error {
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	j.w.Write(b)
	return j.w.WriteByte('\n')
}

func (j *jsonl) close(bool) error { return j.w.Flush() }

// parquetWriter collects records in an in-memory DuckDB table and has
// DuckDB write the Parquet file: columns named and typed as the fields,
// addresses as text.
type parquetWriter struct {
	path string
	db   *sql.DB
	conn *sql.Conn
	app  *duckdb.Appender
	row  []driver.Value
}

func newParquet(path string) (*parquetWriter, error) {
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	p := &parquetWriter{path: path, db: sql.OpenDB(c), row: make([]driver.Value, len(flow.Fields))}
	cols := make([]string, len(flow.Fields))
	for i, f := range flow.Fields {
		cols[i] = query.Quote(f.Name) + " " + map[flow.Kind]string{flow.KindString: "VARCHAR", flow.KindAddr: "VARCHAR", flow.KindUint: "UBIGINT", flow.KindTime: "BIGINT"}[f.Kind]
	}
	ctx := context.Background()
	if p.conn, err = p.db.Conn(ctx); err == nil {
		if _, err = p.conn.ExecContext(ctx, "CREATE TABLE records ("+strings.Join(cols, ", ")+")"); err == nil {
			err = p.conn.Raw(func(dc any) error {
				var err error
				p.app, err = duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "records")
				return err
			})
		}
	}
	if err != nil {
		p.db.Close()
		return nil, fmt.Errorf("export: %w", err)
	}
	return p, nil
}

func (p *parquetWriter) write(r *flow.Record) error {
	for i, f := range flow.Fields {
		if f.Kind == flow.KindAddr || f.Kind == flow.KindString {
			// As bytes: the appender cuts a Go string at its first NUL.
			p.row[i] = []byte(f.Text(r))
		} else {
			p.row[i] = f.Get(r)
		}
	}
	return p.app.AppendRow(p.row...)
}

func (p *parquetWriter) close(ok bool) error {
	err := p.app.Close()
	if ok && err == nil {
		_, err = p.conn.ExecContext(context.Background(),
			"COPY records TO '"+strings.ReplaceAll(p.path, "'", "''")+"' (FORMAT parquet)")
	}
	return errors.Join(err, p.conn.Close(), p.db.Close())
}
