package clickhouse

import (
	"strings"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// seqColumn holds a row's spool position plus one; 0 for rows Append
// stored, which have none. Not part of the record layout.
const seqColumn = "seq"

// insertColumns lists the columns an INSERT writes, in encoding order.
var insertColumns = func() string {
	names := make([]string, 0, len(query.Columns)+2)
	for _, c := range query.Columns {
		names = append(names, query.Quote(c.Name))
	}
	return strings.Join(append(names, "day", seqColumn), ", ")
}()

// insertHead is the statement that the encoded rows follow.
func insertHead(table string) string {
	return "INSERT INTO " + table + " (" + insertColumns + ") FORMAT RowBinary"
}

// rows is a batch of records encoded as RowBinary rows of a data table.
type rows struct {
	buf    []byte
	starts []int // start of each row in buf, and the end of the last
	minEnd int64
	maxEnd int64
}

// encode lays out recs as rows; recs[i] gets seq firstSeq+i, or 0 when
// firstSeq is 0.
func encode(recs []flow.Record, firstSeq uint64) *rows {
	r := &rows{buf: make([]byte, 0, len(recs)*220), starts: make([]int, 0, len(recs)+1),
		minEnd: recs[0].End, maxEnd: recs[0].End}
	w := &rowBinary{}
	for i := range recs {
		rec := &recs[i]
		r.starts = append(r.starts, len(r.buf))
		w.buf = r.buf
		writeRecord(w, rec)
		w.date(store.Day(rec.End))
		if firstSeq == 0 {
			w.uint64(0)
		} else {
			w.uint64(firstSeq + uint64(i))
		}
		r.buf = w.buf
		r.minEnd, r.maxEnd = min(r.minEnd, rec.End), max(r.maxEnd, rec.End)
	}
	r.starts = append(r.starts, len(r.buf))
	return r
}

// writeRecord writes the stored columns of r.
func writeRecord(w *rowBinary, r *flow.Record) {
	for _, f := range flow.Fields {
		switch f.Kind {
		case flow.KindAddr:
			hi, lo := query.AddrParts(f.Addr(r))
			w.uint64(hi)
			w.uint64(lo)
		case flow.KindUint:
			w.uint64(f.Uint(r))
		case flow.KindTime:
			w.int64(f.Time(r))
		default:
			w.string(query.StoredString(f.Str(r)))
		}
	}
}

// without returns the encoding of the rows whose index is not in skip.
func (r *rows) without(skip map[int]bool) []byte {
	if len(skip) == 0 {
		return r.buf
	}
	var out []byte
	for i := 0; i+1 < len(r.starts); i++ {
		if !skip[i] {
			out = append(out, r.buf[r.starts[i]:r.starts[i+1]]...)
		}
	}
	return out
}
