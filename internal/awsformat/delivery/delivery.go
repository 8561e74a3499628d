// Package delivery writes AWS VPC Flow Logs records into files laid out
// as AWS delivers them to S3, under a local directory.
package delivery

import (
	"bufio"
	"compress/gzip"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"flowlog/internal/awsformat"
	"flowlog/internal/flow"
	"flowlog/internal/parquetfile"
)

// Window is how much time one delivered file covers: AWS publishes the
// records of the previous 5 minutes every 5 minutes.
const Window = 5 * time.Minute

// Layout says how files are laid out under a directory, as AWS lays them
// out under a bucket: AWSLogs/aws-account-id=…/aws-service=vpcflowlogs/
// aws-region=…/year=…/month=…/day=…[/hour=…]/ (Hive-compatible partitions).
type Layout struct {
	Dir     string
	Hourly  bool // per-hour partitions
	Parquet bool // Parquet files rather than gzip text
	// MaxBytes publishes a text file early once it is that large, as AWS
	// does at 75 MB (the default); the window's next records start another.
	MaxBytes int64
}

// DefaultMaxBytes is AWS's cap on a delivered file.
const DefaultMaxBytes = 75 << 20

// Path is where the file of a flow log's records for the window ending at
// stamp goes; hash tells apart files of the same window.
func (l Layout) Path(account, region, flowLogID string, stamp time.Time, hash string) string {
	stamp = stamp.UTC()
	account, region, flowLogID = pathPart(account), pathPart(region), pathPart(flowLogID)
	parts := []string{l.Dir, "AWSLogs", "aws-account-id=" + account, "aws-service=vpcflowlogs", "aws-region=" + region,
		stamp.Format("year=2006"), stamp.Format("month=01"), stamp.Format("day=02")}
	if l.Hourly {
		parts = append(parts, stamp.Format("hour=15"))
	}
	ext := ".log.gz"
	if l.Parquet {
		ext = ".parquet"
	}
	name := fmt.Sprintf("%s_vpcflowlogs_%s_%s_%s_%s%s", account, region, flowLogID, stamp.Format("20060102T1504Z"), hash, ext)
	return filepath.Join(append(parts, name)...)
}

// WindowEnd is the end of the 5-minute window holding t: the time stamp
// of the file t's records go to.
func WindowEnd(t time.Time) time.Time { return t.Truncate(Window).Add(Window) }

// Writer delivers records into files of the layout, one per account, flow
// log and window. A file is written under a hidden temporary name and
// renamed into place when published, so that readers never see half a
// file.
type Writer struct {
	layout Layout
	format *awsformat.Format
	files  map[fileKey]*file
	pq     *parquetfile.DB // where Parquet files are collected; opened on first use
	lost   atomic.Uint64   // records in files that could not be written
	// OnPublish, if set, is told the path of each file published.
	OnPublish func(path string)
}

type fileKey struct {
	account, flowLog string
	end              int64 // window end, Unix seconds
}

// NewWriter delivers records formatted by f in the layout l.
func NewWriter(l Layout, f *awsformat.Format) *Writer {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return &Writer{layout: l, format: f, files: map[fileKey]*file{}}
}

// Write adds the record to the file of the window holding at.
func (w *Writer) Write(r *flow.Record, at time.Time) error {
	k := fileKey{r.AccountID, r.FlowLogID, WindowEnd(at).Unix()}
	f := w.files[k]
	if f == nil {
		var err error
		if f, err = w.open(k); err != nil {
			w.lost.Add(1)
			return err
		}
		w.files[k] = f
	}
	if err := f.write(r); err != nil {
		w.lost.Add(1)
		return err
	}
	f.records++
	if f.size.n >= w.layout.MaxBytes {
		delete(w.files, k)
		return w.publish(k, f)
	}
	return nil
}

// PublishBefore publishes the files of the windows that end at or
// before t.
func (w *Writer) PublishBefore(t time.Time) error {
	var errs []error
	for k, f := range w.files {
		if k.end <= t.Unix() {
			delete(w.files, k)
			errs = append(errs, w.publish(k, f))
		}
	}
	return errors.Join(errs...)
}

// Close publishes every open file; the Writer is done.
func (w *Writer) Close() error {
	return errors.Join(w.PublishBefore(time.Unix(1<<62, 0)), w.closeDB())
}

// Abort drops the files not yet published; the Writer is done.
func (w *Writer) Abort() {
	for k, f := range w.files {
		f.abort()
		w.lost.Add(f.records)
		delete(w.files, k)
	}
	w.closeDB()
}

func (w *Writer) closeDB() error {
	if w.pq == nil {
		return nil
	}
	err := w.pq.Close()
	w.pq = nil
	return err
}

// Lost is how many records were lost to files that could not be written
// or published. It may be called from any goroutine.
func (w *Writer) Lost() uint64 { return w.lost.Load() }

func (w *Writer) open(k fileKey) (*file, error) {
	final := w.layout.Path(k.account, w.format.Region(), k.flowLog, time.Unix(k.end, 0), "")
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".flowlog-*.tmp")
	if err != nil {
		return nil, err
	}
	f := &file{tmp: tmp.Name(), format: w.format}
	if w.layout.Parquet {
		tmp.Close()
		if w.pq == nil {
			if w.pq, err = parquetfile.Open(); err != nil {
				os.Remove(f.tmp)
				return nil, err
			}
		}
		if f.pq, err = w.pq.New(f.tmp, parquetColumns(w.format)); err != nil {
			os.Remove(f.tmp)
			return nil, err
		}
		return f, nil
	}
	f.os, f.size.w = tmp, tmp
	f.buf = bufio.NewWriterSize(&f.size, 64<<10)
	f.gz = gzip.NewWriter(f.buf)
	f.line = append([]byte(w.format.Header()), '\n')
	if _, err := f.gz.Write(f.line); err != nil {
		f.abort()
		return nil, err
	}
	return f, nil
}

// publish finishes the file and renames it to its name in the layout,
// its hash taken from its content.
func (w *Writer) publish(k fileKey, f *file) (err error) {
	defer func() {
		if err != nil {
			os.Remove(f.tmp)
			w.lost.Add(f.records)
		}
	}()
	if err := f.finish(); err != nil {
		return err
	}
	h, err := contentHash(f.tmp)
	if err == nil {
		err = os.Chmod(f.tmp, 0o644)
	}
	if err != nil {
		return err
	}
	// The name holds a hash of the content: the same records written
	// again (an export run twice) make the same file, not a second one.
	path := w.layout.Path(k.account, w.format.Region(), k.flowLog, time.Unix(k.end, 0), fmt.Sprintf("%08x", h))
	if err = os.Rename(f.tmp, path); err == nil && w.OnPublish != nil {
		w.OnPublish(path)
	}
	return err
}

func contentHash(path string) (uint32, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	h := fnv.New32a()
	_, err = io.Copy(h, in)
	return h.Sum32(), err
}

var duckTypes = map[awsformat.Type]string{awsformat.Int32: "INTEGER", awsformat.Int64: "BIGINT", awsformat.String: "VARCHAR"}

func parquetColumns(f *awsformat.Format) []parquetfile.Column {
	cols := make([]parquetfile.Column, 0, len(f.Columns()))
	for _, c := range f.Columns() {
		cols = append(cols, parquetfile.Column{Name: c.Name, Type: duckTypes[c.Type]})
	}
	return cols
}

// file is one file being written: gzip text or Parquet.
type file struct {
	tmp     string
	format  *awsformat.Format
	records uint64 // written to it
	// text
	os   *os.File
	size countingWriter // the compressed bytes written out so far
	buf  *bufio.Writer
	gz   *gzip.Writer
	line []byte
	// parquet
	pq  *parquetfile.Writer
	row []driver.Value
}

func (f *file) write(r *flow.Record) error {
	if f.pq != nil {
		f.row = f.format.AppendRow(f.row[:0], r)
		return f.pq.Append(f.row...)
	}
	f.line = append(f.format.AppendText(f.line[:0], r), '\n')
	_, err := f.gz.Write(f.line)
	return err
}

func (f *file) finish() error {
	if f.pq != nil {
		return f.pq.Close(true)
	}
	return errors.Join(f.gz.Close(), f.buf.Flush(), f.os.Close())
}

func (f *file) abort() {
	if f.pq != nil {
		f.pq.Close(false)
	} else {
		f.os.Close()
	}
	os.Remove(f.tmp)
}

// pathPart makes s safe as part of a file name (never a whole one: the
// layout always adds to it): never empty, no separator.
func pathPart(s string) string {
	if s == "" {
		return "unknown"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
