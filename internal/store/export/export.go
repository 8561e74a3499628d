// Package export writes the records of a log stream over a time range as
// CSV, JSON lines or Parquet, from any store backend.
package export

import (
	"bufio"
	"context"
	"database/sql/driver"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"flowlog/internal/awsformat"
	"flowlog/internal/awsformat/delivery"
	"flowlog/internal/flow"
	"flowlog/internal/parquetfile"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// ErrFormat is returned for an unknown format or a misuse of one.
var ErrFormat = errors.New("export format")

// Formats lists the supported formats.
var Formats = []string{"csv", "jsonl", "parquet", "aws", "aws-parquet"}

// Querier is the part of a store export reads from.
type Querier interface {
	Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error)
}

// Options select what to write and how.
type Options struct {
	Since, Until time.Time
	Where        string
	Format       string    // csv | jsonl | parquet | aws | aws-parquet
	Out          io.Writer // csv and jsonl
	Path         string    // parquet: the file to write
	Window       time.Duration
	// aws and aws-parquet: files in the VPC Flow Logs layout under Dir,
	// in the custom format AWSFormat ("" for AWS's default) for Region.
	Dir       string
	AWSFormat string
	Region    string
	Hourly    bool
	Published func(path string) // told each file written
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
	case "aws", "aws-parquet":
		aw, err := newAWS(o)
		if err != nil {
			return 0, err
		}
		w = aw
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

// parquetWriter has DuckDB write the records as a Parquet file: columns
// named and typed as the fields, addresses as text.
type parquetWriter struct {
	w   *parquetfile.Writer
	row []driver.Value
}

func newParquet(path string) (*parquetWriter, error) {
	cols := make([]parquetfile.Column, len(flow.Fields))
	for i, f := range flow.Fields {
		cols[i] = parquetfile.Column{Name: f.Name, Type: map[flow.Kind]string{flow.KindString: "VARCHAR", flow.KindAddr: "VARCHAR", flow.KindUint: "UBIGINT", flow.KindTime: "BIGINT"}[f.Kind]}
	}
	w, err := parquetfile.New(path, cols)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return &parquetWriter{w: w, row: make([]driver.Value, len(flow.Fields))}, nil
}

func (p *parquetWriter) write(r *flow.Record) error {
	for i, f := range flow.Fields {
		if f.Kind == flow.KindAddr || f.Kind == flow.KindString {
			p.row[i] = []byte(f.Text(r))
		} else {
			p.row[i] = f.Get(r)
		}
	}
	return p.w.Append(p.row...)
}

func (p *parquetWriter) close(ok bool) error { return p.w.Close(ok) }

// awsWriter delivers the records as AWS would: one file per flow log and
// 5 minutes of records, by their end.
type awsWriter struct{ w *delivery.Writer }

func newAWS(o Options) (*awsWriter, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("%w: %s needs an output directory", ErrFormat, o.Format)
	}
	f, err := awsformat.Parse(o.AWSFormat, o.Region)
	if err != nil {
		return nil, err
	}
	w := delivery.NewWriter(delivery.Layout{Dir: o.Dir, Hourly: o.Hourly, Parquet: o.Format == "aws-parquet"}, f)
	w.OnPublish = o.Published
	return &awsWriter{w}, nil
}

func (a *awsWriter) write(r *flow.Record) error {
	end := time.UnixMilli(r.End)
	// Records come by end: the windows before this one are complete.
	if err := a.w.PublishBefore(end.Truncate(delivery.Window)); err != nil {
		return err
	}
	return a.w.Write(r, end)
}

func (a *awsWriter) close(ok bool) error {
	if !ok {
		a.w.Abort()
		return nil
	}
	return a.w.Close()
}
