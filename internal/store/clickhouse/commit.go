package clickhouse

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// Commit keeps each record of a stream's spool stored once, across
// retries, restarts and batch boundaries that differ between attempts.
//
// An INSERT whose answer is lost (a timeout, a dropped connection, a
// server error part-way, the process killed) may have stored all of its
// rows, some of them (one part per day partition and block), or none.
// So every row carries its spool position (seqColumn), and a small table
// per stream holds two marks, each the highest value written:
//
//   - committed: the position after the last batch whose INSERT
//     succeeded, written after it; Committed reads it.
//   - pending: a bound no INSERT has reached past, written before an
//     INSERT would pass it, reserveAhead positions ahead so that few
//     INSERTs need it.
//
// Positions between the two may be on the server from attempts whose
// outcome is unknown. A Store that has not seen every attempt there (one
// just started, or one whose INSERT failed) treats them as uncertain: for
// a batch that overlaps them it waits until no earlier INSERT into the
// stream's table runs on the server (all run under one query id, which the
// server also allows only once at a time), reads which of the batch's positions
// landed, and inserts only the others. Past them, and in steady state, a
// Commit makes no read.
//
// A request can also reach the server late, after the retry has read what
// landed (held in a queue on the way). So no attempt sends rows to the
// stream's table directly: it uploads them into a staging table of its
// own and moves them over with a server-side INSERT … SELECT. Before a
// retry reads what landed, the staging tables of earlier attempts are
// dropped; DROP waits for the queries using a table, and any request of
// those attempts that arrives later fails, as its table no longer exists.
// The move runs under the stream's query id, so the wait above covers it.
// A Commit thus sends five statements (create, upload, move, drop, mark);
// staging tables use the Memory engine, so the rows pass through no disk
// on their way.
//
// One committer per stream and writer is assumed (the spool is the
// writer's). Writers (the server, agents) keep apart: a row's seq carries
// the writer's number above its position (store.PositionBits), each
// writer has marks of its own kinds, its own query id and staging tables.

// reserveAhead is how far the pending mark runs ahead of the batch that
// moves it: how many positions after a restart may need a check.
const reserveAhead = 1 << 16

// Kinds of mark.
const (
	committedMark uint64 = 0
	pendingMark   uint64 = 1
)

// errStillRunning makes the caller retry later: an earlier INSERT of the
// stream has not finished on the server yet.
var errStillRunning = errors.New("an earlier INSERT of this stream is still running on the server")

// position is what a Store knows of a stream's marks. Its mutex
// serializes the stream's Commits.
type position struct {
	mu       sync.Mutex
	loaded   bool
	next     uint64  // committed: positions before it are stored
	reserved uint64  // pending, as last written
	unsure   uint64  // positions in [next, unsure) may have landed unseen
	need     logNeed // what a replica must hold to read what landed (cluster.go)
	staged   bool    // staging tables of failed attempts may be left
}

func (s *Store) position(id store.StreamID) *position {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.positions[id]
	if p == nil {
		p = &position{}
		s.positions[id] = p
	}
	return p
}

func (s *Store) marksTable(id store.StreamID) string { return s.table(marksName(id)) }

func marksName(id store.StreamID) string { return tableID(id) + "_marks" }

// commitQueryID is the query id of every INSERT Commit sends to the
// stream, from any process of the server's writer.
func commitQueryID(id store.StreamID) string { return "flowlog-commit-" + tableID(id) }

// queryID is commitQueryID for this Store's writer.
func (s *Store) queryID(id store.StreamID) string {
	if s.writer == 0 {
		return commitQueryID(id)
	}
	return commitQueryID(id) + "-w" + strconv.FormatUint(s.writer, 10)
}

// base is the writer's part of its rows' seq.
func (s *Store) base() uint64 { return s.writer << store.PositionBits }

// kind is the writer's mark of kind k.
func (s *Store) kind(k uint64) uint64 { return 2*s.writer + k }

// Commit implements store.Store.
func (s *Store) Commit(ctx context.Context, id store.StreamID, b store.Batch) error {
	if err := s.exists(ctx, id); err != nil {
		return err
	}
	p := s.position(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.commit(ctx, id, p, b); err != nil {
		return fmt.Errorf("clickhouse store: commit to %s: %w", id, err)
	}
	return nil
}

func (s *Store) commit(ctx context.Context, id store.StreamID, p *position, b store.Batch) error {
	if !p.loaded {
		committed, pending, err := s.marks(ctx, id)
		if err != nil {
			return err
		}
		p.loaded, p.next, p.reserved, p.unsure, p.staged = true, committed, pending, pending, true
	}
	if p.staged {
		all, err := s.dropStages(ctx, id)
		if err != nil {
			return err
		}
		p.staged = !all
	}
	if b = b.After(p.next); b.Next() <= p.next {
		return nil
	}
	if len(b.Records) > 0 {
		if err := s.insertNew(ctx, id, p, b); err != nil {
			return err
		}
	}
	if err := s.mark(ctx, id, committedMark, b.Next()); err != nil {
		p.unsure, p.need = max(p.unsure, b.Next()), logNeed{}
		return err
	}
	p.next = b.Next()
	return nil
}

// insertNew stores the records of b that are not on the server yet.
func (s *Store) insertNew(ctx context.Context, id store.StreamID, p *position, b store.Batch) error {
	r := encode(b.Records, s.base()+b.First+1)
	body := r.buf
	if b.First < p.unsure {
		landed, err := s.landed(ctx, id, p, b.First, min(b.Next(), p.unsure), r)
		if err != nil {
			return err
		}
		body = r.without(landed)
	}
	if b.Next() > p.reserved {
		if err := s.mark(ctx, id, pendingMark, b.Next()+reserveAhead); err != nil {
			return err
		}
		p.reserved = b.Next() + reserveAhead
	}
	if len(body) == 0 {
		return nil
	}
	p.staged = true
	if err := s.insertStaged(ctx, id, body); err != nil {
		p.unsure, p.need = max(p.unsure, b.Next()), logNeed{}
		return err
	}
	p.staged = false
	return nil
}

// stagePrefix begins the names of the stream's staging tables; writerStage
// then names the writer's, but for the server's (writer 0), which keep
// the names they had before agents.
func stagePrefix(id store.StreamID) string { return tableID(id) + "_stage_" }

func (s *Store) writerStage(id store.StreamID) string {
	if s.writer == 0 {
		return stagePrefix(id)
	}
	return stagePrefix(id) + "w" + strconv.FormatUint(s.writer, 10) + "_"
}

// insertStaged stores rows in the stream's table through a staging table
// of this attempt. On error the staging table may be left.
func (s *Store) insertStaged(ctx context.Context, id store.StreamID, body []byte) error {
	var suffix [8]byte
	rand.Read(suffix[:])
	stage := s.table(s.writerStage(id) + hex.EncodeToString(suffix[:]))
	if err := s.c.exec(ctx, "CREATE TABLE "+stage+" AS "+s.dataTable(id)+" ENGINE = Memory"); err != nil {
		return err
	}
	if _, err := s.c.do(ctx, insertHead(stage), bytes.NewReader(body)); err != nil {
		return err
	}
	move := "INSERT INTO " + s.dataTable(id) + " SELECT * FROM " + stage
	if _, err := s.c.doWith(ctx, move, url.Values{"query_id": {s.queryID(id)}}, nil); err != nil {
		return err
	}
	return s.c.exec(ctx, "DROP TABLE "+stage)
}

// dropStages drops the stream's staging tables on every server that is
// up; once it returns, no request of the attempts they belong to can store
// anything. (A server that is gone (isGone) lost its requests and, with the Memory
// engine, its staged rows; all is false then, as its empty staging tables
// are left to drop when it is back.)
func (s *Store) dropStages(ctx context.Context, id store.StreamID) (all bool, err error) {
	all = true
	for _, c := range s.c.each() {
		names, err := s.stagesOn(ctx, c, id)
		if isGone(err) {
			all = false
			continue
		} else if err != nil {
			return false, err
		}
		for _, n := range names {
			if err := c.exec(ctx, "DROP TABLE IF EXISTS "+s.table(n)); err != nil {
				return false, err
			}
		}
	}
	return all, nil
}

// stagesOn lists this writer's staging tables of the stream on c's server.
func (s *Store) stagesOn(ctx context.Context, c *client, id store.StreamID) ([]string, error) {
	prefix := s.writerStage(id)
	rows, err := c.selectTSV(ctx, "SELECT name FROM system.tables WHERE database = "+literal(s.db)+
		" AND substring(name, 1, "+literal(uint64(len(prefix)))+") = "+literal(prefix), []query.SQLType{query.SQLString})
	names := make([]string, 0, len(rows))
	for _, r := range rows {
		// The server's prefix also begins agents' names ("…_stage_w").
		if n := r[0].(string); s.writer != 0 || !strings.HasPrefix(n[len(prefix):], "w") {
			names = append(names, n)
		}
	}
	return names, err
}

// landed returns which of the positions [from, to) are in the stream's
// table, as indexes into the batch r encodes (which starts at from), once
// no earlier INSERT of the writer runs on any server and the one talked to
// holds what the others stored.
func (s *Store) landed(ctx context.Context, id store.StreamID, p *position, from, to uint64, r *rows) (map[int]bool, error) {
	if err := s.noneRunning(ctx, id); err != nil {
		return nil, err
	}
	c, done := s.c.pinned()
	var found [][]any
	base := s.base()
	err := s.caughtUp(ctx, c, tableID(id), &p.need)
	if err == nil {
		// The records of these positions are those of the batch, so they
		// lie within its time range, which the table's order narrows down.
		found, err = c.selectTSV(ctx, "SELECT "+seqColumn+" FROM "+s.dataTable(id)+" WHERE "+query.Quote(query.TimeColumn)+
			" BETWEEN "+literal(r.minEnd)+" AND "+literal(r.maxEnd)+" AND "+seqColumn+" BETWEEN "+literal(base+from+1)+" AND "+literal(base+to),
			[]query.SQLType{query.SQLUint})
	}
	if done(err); err != nil {
		return nil, err
	}
	landed := make(map[int]bool, len(found))
	for _, f := range found {
		landed[int(f[0].(uint64)-base-1-from)] = true
	}
	return landed, nil
}

// noneRunning returns errStillRunning while an INSERT of this writer's
// Commit into the stream's table runs on a server that is up.
func (s *Store) noneRunning(ctx context.Context, id store.StreamID) error {
	for _, c := range s.c.each() {
		running, err := c.selectTSV(ctx, "SELECT count() FROM system.processes WHERE query_id = "+literal(s.queryID(id)),
			[]query.SQLType{query.SQLUint})
		if isGone(err) {
			continue
		} else if err != nil {
			return err
		}
		if running[0][0].(uint64) > 0 {
			return errStillRunning
		}
	}
	return nil
}

// mark raises a mark of the stream to next.
func (s *Store) mark(ctx context.Context, id store.StreamID, kind, next uint64) error {
	return s.c.exec(ctx, "INSERT INTO "+s.marksTable(id)+" (kind, next) SELECT "+literal(s.kind(kind))+", "+literal(next))
}

// marks reads the stream's marks; 0 for one never written.
func (s *Store) marks(ctx context.Context, id store.StreamID) (committed, pending uint64, err error) {
	c, done := s.c.pinned()
	var rows [][]any
	err = s.caughtUp(ctx, c, marksName(id), &logNeed{})
	if err == nil {
		rows, err = c.selectTSV(ctx, "SELECT kind, max(next) FROM "+s.marksTable(id)+" WHERE kind IN ("+
			literal(s.kind(committedMark))+", "+literal(s.kind(pendingMark))+") GROUP BY kind",
			[]query.SQLType{query.SQLUint, query.SQLUint})
	}
	if done(err); err != nil {
		return 0, 0, err
	}
	for _, r := range rows {
		switch r[0].(uint64) {
		case s.kind(committedMark):
			committed = r[1].(uint64)
		case s.kind(pendingMark):
			pending = r[1].(uint64)
		}
	}
	return committed, max(committed, pending), nil
}

// Committed implements store.Store. What this Store's Commits have
// stored is known without a read (there is one committer per stream), so
// it needs no replica to have caught up.
func (s *Store) Committed(ctx context.Context, id store.StreamID) (uint64, error) {
	if err := s.exists(ctx, id); errors.Is(err, store.ErrNoStream) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	p := s.position(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loaded {
		return p.next, nil
	}
	committed, _, err := s.marks(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("clickhouse store: committed of %s: %w", id, err)
	}
	return committed, nil
}
