// Package ingest feeds flow records into a log stream through the stream's
// write-ahead spool (package spool). A source's records are accepted once
// they are in the spool; a committer takes them out in order, in batches
// as large as the backlog and the shared memory budget allow, and commits
// each batch with its spool position, so that every accepted record is
// stored once whatever fails: the store, the disk, or the process.
//
// When the spool is full (its size bound, or the disk's reserve) a live
// source (capture, collector) drops and counts, per source; a file import
// waits.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/spool"
	"flowlog/internal/store"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("ingest pipeline closed")

// Committer is the part of a store the pipeline writes to.
type Committer interface {
	Commit(ctx context.Context, id store.StreamID, b store.Batch) error
	Committed(ctx context.Context, id store.StreamID) (uint64, error)
}

// Config sets batching.
type Config struct {
	// MinBatch is the smallest batch committed before FlushInterval has
	// passed; default 50,000 records.
	MinBatch int
	// MaxBatch is the largest batch committed; default 500,000 records.
	// A store falling behind gets ever larger batches up to this, which
	// it writes at a lower cost per record.
	MaxBatch      int
	FlushInterval time.Duration // longest a record waits for MinBatch; default 1s
	RetryInterval time.Duration // wait after a failed commit; default 1s
	// Memory bounds the records held in memory by all the pipelines
	// sharing it; nil: this pipeline's own, of MaxBatch records.
	Memory *Memory
	// OnCommit, if set, is called after each batch is durable, in order.
	OnCommit func(recs []flow.Record)
	// Prepare, if set, readies the store for the stream (creates it)
	// before its position is read.
	Prepare func(ctx context.Context) error
	Logger  *slog.Logger
}

func (c *Config) defaults() {
	if c.MinBatch <= 0 {
		c.MinBatch = 50000
	}
	if c.MaxBatch < c.MinBatch {
		c.MaxBatch = max(500000, c.MinBatch)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.Memory == nil {
		c.Memory = NewMemory(int64(c.MaxBatch) * RecordBytes)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Pipeline ingests into one log stream.
type Pipeline struct {
	cfg Config
	dst Committer
	id  store.StreamID
	log *spool.Log

	offset uint64 // the store's position of spool position 0, once placed

	mu        sync.Mutex
	committed uint64        // spool position after the last committed record
	written   uint64        // records spooled by this process
	flushers  int           // Flush calls waiting
	done      uint64        // records committed by this process
	failures  uint64        // failed commits
	changed   chan struct{} // closed and replaced whenever committed grows or the pipeline stops
	closed    bool
	placed    bool // the store told where its records end
	sources   map[string]*Source

	kick    chan struct{}
	stopped chan struct{}
	cancel  context.CancelFunc
}

// New opens the stream's spool log in sp and starts committing what it
// holds and what is written to it, resuming where the store's records
// end. A store that does not answer (store.ErrUnreachable) is waited for:
// records are spooled meanwhile, and committed once the store tells where
// its records end.
func New(ctx context.Context, cfg Config, sp *spool.Spool, dst Committer, id store.StreamID) (*Pipeline, error) {
	cfg.defaults()
	p := &Pipeline{cfg: cfg, dst: dst, id: id, changed: make(chan struct{}), sources: map[string]*Source{},
		kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	next, err := p.storeNext(ctx)
	placed := err == nil
	switch {
	case placed:
		p.log, err = sp.Log(id, next)
	case errors.Is(err, store.ErrUnreachable):
		p.log, err = sp.LogUnplaced(id)
	default:
		return nil, fmt.Errorf("ingest: %s: %w", id, err)
	}
	if err != nil {
		return nil, err
	}
	p.committed = p.log.First()
	if placed {
		next, err = p.place(next)
		if err != nil {
			p.log.Close()
			return nil, err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(runCtx, next, placed)
	return p, nil
}

// storeNext readies the store and returns where its records of the
// stream end.
func (p *Pipeline) storeNext(ctx context.Context) (uint64, error) {
	if p.cfg.Prepare != nil {
		if err := p.cfg.Prepare(ctx); err != nil {
			return 0, err
		}
	}
	return p.dst.Committed(ctx, p.id)
}

// place ties the spool's numbering to the store's position next and
// returns the spool position to commit from.
func (p *Pipeline) place(next uint64) (uint64, error) {
	pos, err := p.log.Place(next)
	if err != nil {
		return 0, err
	}
	p.offset, _ = p.log.Offset()
	p.mu.Lock()
	p.committed, p.placed = pos, true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	return pos, nil
}

// awaitStore waits until the store answers and places the spool; false
// when cancelled. Each attempt that fails counts as a failed commit.
func (p *Pipeline) awaitStore(ctx context.Context) (uint64, bool) {
	for {
		next, err := p.storeNext(ctx)
		if err == nil {
			var pos uint64
			if pos, err = p.place(next); err == nil {
				p.cfg.Logger.Info("ingest: log store answers; committing the spool", "log_stream", p.id.Stream,
					"records", p.log.End()-pos)
				return pos, true
			}
		}
		p.failed(err, 0)
		if !sleep(ctx, p.cfg.RetryInterval) {
			return 0, false
		}
	}
}

// Source is one producer of records, with its own drop counter.
type Source struct {
	p       *Pipeline
	name    string
	live    bool
	dropped uint64 // guarded by p.mu
	lastLog time.Time
}

// Source returns the named source, creating it. A live source never
// blocks and drops what the spool refuses; a file source waits for room.
func (p *Pipeline) Source(name string, live bool) *Source {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sources[name]
	if !ok {
		s = &Source{p: p, name: name, live: live}
		p.sources[name] = s
	}
	return s
}

// Dropped returns how many records this source lost to a full spool.
func (s *Source) Dropped() uint64 {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.dropped
}

// Write spools recs. A live source counts what the spool refuses as
// dropped and returns nil; a file source waits until the spool takes them
// or ctx ends.
func (s *Source) Write(ctx context.Context, recs []flow.Record) error {
	p := s.p
	for {
		p.mu.Lock()
		closed, wait := p.closed, p.changed
		p.mu.Unlock()
		if closed {
			return ErrClosed
		}
		err := p.log.Append(recs)
		if err == nil {
			p.accepted(len(recs))
			return nil
		}
		if errors.Is(err, spool.ErrClosed) {
			return ErrClosed
		}
		if s.live {
			s.drop(len(recs), err)
			return nil
		}
		if !errors.Is(err, spool.ErrFull) && !errors.Is(err, spool.ErrDiskFull) {
			return fmt.Errorf("ingest: %w", err)
		}
		select { // a file source waits for the next commit to make room
		case <-wait:
		case <-time.After(p.cfg.RetryInterval): // the disk may free up without a commit
		case <-ctx.Done():
			return fmt.Errorf("ingest: %d records not spooled: %w", len(recs), ctx.Err())
		}
	}
}

// accepted counts spooled records and wakes the committer once a batch's
// worth waits.
func (p *Pipeline) accepted(n int) {
	end := p.log.End()
	p.mu.Lock()
	p.written += uint64(n)
	backlog := end - min(end, p.committed)
	p.mu.Unlock()
	if backlog >= uint64(p.cfg.MinBatch) {
		p.wake()
	}
}

// drop counts refused records, logging the reason at most once a minute
// per source.
func (s *Source) drop(n int, err error) {
	s.p.mu.Lock()
	s.dropped += uint64(n)
	logIt := time.Since(s.lastLog) > time.Minute
	if logIt {
		s.lastLog = time.Now()
	}
	s.p.mu.Unlock()
	if logIt {
		s.p.cfg.Logger.Warn("ingest: records dropped", "log_stream", s.p.id.Stream, "source", s.name, "err", err)
	}
}

func (p *Pipeline) committedPos() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.committed
}

func (p *Pipeline) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Stats are the pipeline's counters.
type Stats struct {
	Queued    uint64            // records spooled and not yet committed
	Written   uint64            // records spooled by this process
	Committed uint64            // records committed by this process
	Failures  uint64            // failed commits (each retried)
	Dropped   map[string]uint64 // per live source
}

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	end := p.log.End()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{Queued: end - min(end, p.committed), Written: p.written, Committed: p.done, Failures: p.failures,
		Dropped: map[string]uint64{}}
	for n, s := range p.sources {
		if s.live {
			st.Dropped[n] = s.dropped
		}
	}
	return st
}

// Flush waits until every record spooled before the call is committed.
func (p *Pipeline) Flush(ctx context.Context) error {
	target := p.log.End()
	p.mu.Lock()
	p.flushers++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.flushers--
		p.mu.Unlock()
	}()
	for {
		p.wake()
		p.mu.Lock()
		committed, wait := p.committed, p.changed
		p.mu.Unlock()
		if committed >= target {
			return nil
		}
		select {
		case <-wait:
		case <-p.stopped:
			return fmt.Errorf("ingest: pipeline stopped with %d records in the spool", target-committed)
		case <-ctx.Done():
			return fmt.Errorf("ingest: %d records stay in the spool, to be stored later: %w", target-committed, ctx.Err())
		}
	}
}

// Close stops accepting records and commits what the spool holds until
// ctx ends or a commit fails; what is left stays in the spool for the next
// New. A store that has not answered yet is not waited for.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	placed := p.placed
	p.mu.Unlock()
	err := errors.New("ingest: the log store has not answered: the records stay in the spool")
	if placed {
		err = p.Flush(ctx)
	}
	p.cancel()
	<-p.stopped
	return errors.Join(err, p.log.Close())
}
