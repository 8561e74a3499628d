package clickhouse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"net/url"
	"strings"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// An INSERT whose answer is lost (a timeout, a dropped connection, a
// server error mid-way) may have stored all of its rows, some of them, or
// none. A caller retrying it would then store some rows twice. So every
// row carries its batch's token (a hash of the batch's encoding, so the
// retry, which sends the same records, has the same one) and its number
// within the batch. The retry of a batch whose INSERT failed first waits
// for that INSERT to have ended on the server (both run under the same
// query id, which the server allows only once at a time), then reads
// which rows landed, and inserts only the others.

// Columns that identify a row's batch; not part of the record layout.
const (
	batchColumn    = "batch"
	batchRowColumn = "batch_row"
)

// tokenSeed makes tokens stable within the process, which is where a
// failed INSERT is retried.
var tokenSeed = maphash.MakeSeed()

// maxUncertain bounds the batches remembered as possibly half-stored.
const maxUncertain = 4096

// errStillRunning makes the caller retry later: the earlier attempt of the
// batch has not finished on the server yet.
var errStillRunning = errors.New("the previous attempt of this batch is still running on the server")

// batch is a batch of records encoded as RowBinary rows of the data table.
type batch struct {
	buf        []byte
	rows       []int // start of each row in buf, and the end of the last
	token      uint64
	minEnd     int64
	maxEnd     int64
	queryID    string
	insertHead string // INSERT … FORMAT RowBinary
}

// encode lays out recs as rows of table and computes the batch token.
func encode(table, tableID string, recs []flow.Record) *batch {
	b := &batch{buf: make([]byte, 0, len(recs)*220), rows: make([]int, 0, len(recs)+1),
		minEnd: recs[0].End, maxEnd: recs[0].End}
	w := &rowBinary{}
	for i := range recs {
		r := &recs[i]
		b.rows = append(b.rows, len(b.buf))
		w.buf = b.buf
		writeRecord(w, r)
		w.date(store.Day(r.End))
		w.uint64(0) // the token, filled in below
		w.uint32(uint32(i))
		b.buf = w.buf
		b.minEnd, b.maxEnd = min(b.minEnd, r.End), max(b.maxEnd, r.End)
	}
	b.rows = append(b.rows, len(b.buf))
	b.token = maphash.Bytes(tokenSeed, b.buf)
	for i := range recs {
		binary.LittleEndian.PutUint64(b.buf[b.rows[i+1]-12:], b.token)
	}
	b.queryID = fmt.Sprintf("flowlog-%s-%016x", tableID, b.token)
	names := make([]string, len(query.Columns))
	for i, c := range query.Columns {
		names[i] = query.Quote(c.Name)
	}
	b.insertHead = "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ", day, " +
		batchColumn + ", " + batchRowColumn + ") FORMAT RowBinary"
	return b
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

// only returns the encoding of the rows not in landed.
func (b *batch) only(landed map[uint32]bool) []byte {
	var out []byte
	for i := 0; i+1 < len(b.rows); i++ {
		if !landed[uint32(i)] {
			out = append(out, b.buf[b.rows[i]:b.rows[i+1]]...)
		}
	}
	return out
}

// insert stores the batch: all of it, or, when an earlier attempt failed,
// the rows that attempt did not store.
func (s *Store) insert(ctx context.Context, table string, b *batch) error {
	body := b.buf
	if s.isUncertain(b.queryID) {
		landed, err := s.landed(ctx, table, b)
		if err != nil {
			return err
		}
		body = b.only(landed)
	}
	if len(body) > 0 {
		if _, err := s.c.doWith(ctx, b.insertHead, url.Values{"query_id": {b.queryID}}, bytes.NewReader(body)); err != nil {
			s.setUncertain(b.queryID, true)
			return err
		}
	}
	s.setUncertain(b.queryID, false)
	return nil
}

// landed returns the numbers of the batch's rows already in table, once
// no earlier attempt of the batch is running.
func (s *Store) landed(ctx context.Context, table string, b *batch) (map[uint32]bool, error) {
	running, err := s.c.selectTSV(ctx, "SELECT count() FROM system.processes WHERE query_id = "+literal(b.queryID),
		[]query.SQLType{query.SQLUint})
	if err != nil {
		return nil, err
	}
	if running[0][0].(uint64) > 0 {
		return nil, errStillRunning
	}
	rows, err := s.c.selectTSV(ctx, "SELECT "+batchRowColumn+" FROM "+table+" WHERE "+query.Quote(query.TimeColumn)+
		" BETWEEN "+literal(b.minEnd)+" AND "+literal(b.maxEnd)+" AND "+batchColumn+" = "+literal(b.token),
		[]query.SQLType{query.SQLUint})
	if err != nil {
		return nil, err
	}
	landed := make(map[uint32]bool, len(rows))
	for _, r := range rows {
		landed[uint32(r[0].(uint64))] = true
	}
	return landed, nil
}

func (s *Store) isUncertain(queryID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uncertain[queryID]
}

// setUncertain remembers or forgets a batch whose INSERT may have been
// stored in part. Past the bound, an arbitrary old one is forgotten.
func (s *Store) setUncertain(queryID string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.uncertain, queryID)
		return
	}
	for k := range s.uncertain {
		if len(s.uncertain) < maxUncertain {
			break
		}
		delete(s.uncertain, k)
	}
	s.uncertain[queryID] = true
}
