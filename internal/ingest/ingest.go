// Package ingest feeds flow records into a log stream: it batches them by
// size and time, holds them in a bounded queue, and retries a failed batch
// until the store takes it. When the queue is full a live source (capture,
// collector) drops and counts, per source; a file import waits.
//
// A record is acknowledged when the store's Append of its batch returned:
// from then on it is durable. Batches are committed in the order records
// were written, one at a time, so the acknowledged records are always a
// prefix of what was written, and each is stored once.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("ingest pipeline closed")

// Appender is the part of a store the pipeline writes to.
type Appender interface {
	Append(ctx context.Context, id store.StreamID, recs []flow.Record) error
}

// Config sets batching and queueing.
type Config struct {
	BatchSize     int           // records per Append; default 50000
	FlushInterval time.Duration // longest a record waits for a full batch; default 1s
	QueueSize     int           // records held, including the batch being written; default 4×BatchSize
	RetryInterval time.Duration // wait after a failed Append; default 1s
	// OnCommit, if set, is called after each batch is durable, in order.
	OnCommit func(recs []flow.Record)
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 50000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.QueueSize < c.BatchSize {
		c.QueueSize = 4 * c.BatchSize
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Pipeline ingests into one log stream.
type Pipeline struct {
	cfg Config
	dst Appender
	id  store.StreamID

	mu       sync.Mutex
	queue    []flow.Record
	inflight int           // records of the batch being written, still counted as queued
	written  uint64        // records accepted so far
	done     uint64        // records acknowledged so far
	failures uint64        // failed Append calls
	changed  chan struct{} // closed and replaced whenever done grows or the pipeline stops
	closed   bool
	sources  map[string]*Source

	kick    chan struct{}
	stopped chan struct{}
	cancel  context.CancelFunc
}

// New starts a pipeline writing to id through dst.
func New(cfg Config, dst Appender, id store.StreamID) *Pipeline {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pipeline{cfg: cfg, dst: dst, id: id, changed: make(chan struct{}), sources: map[string]*Source{},
		kick: make(chan struct{}, 1), stopped: make(chan struct{}), cancel: cancel}
	go p.run(ctx)
	return p
}

// Source is one producer of records, with its own drop counter.
type Source struct {
	p       *Pipeline
	name    string
	live    bool
	dropped uint64 // guarded by p.mu
}

// Source returns the named source, creating it. A live source never
// blocks and drops what does not fit; a file source waits for room.
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

// Dropped returns how many records this source lost to a full queue.
func (s *Source) Dropped() uint64 {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.dropped
}

// Write queues recs (copying them). A file source blocks until they all
// fit or ctx ends; a live source queues what fits and counts the rest as
// dropped, returning nil either way.
func (s *Source) Write(ctx context.Context, recs []flow.Record) error {
	p := s.p
	for len(recs) > 0 {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		room := p.cfg.QueueSize - len(p.queue) - p.inflight
		n := min(room, len(recs))
		p.queue = append(p.queue, recs[:n]...)
		p.written += uint64(n)
		recs = recs[n:]
		full := len(p.queue) >= p.cfg.BatchSize
		if s.live && len(recs) > 0 {
			s.dropped += uint64(len(recs))
			recs = nil
		}
		wait := p.changed
		p.mu.Unlock()
		if full {
			p.wake()
		}
		if len(recs) == 0 {
			return nil
		}
		select { // a file source waits for the next commit to make room
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("ingest: %d records not queued: %w", len(recs), ctx.Err())
		}
	}
	return nil
}

func (p *Pipeline) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Stats are the pipeline's counters.
type Stats struct {
	Queued    int               // records waiting or being written
	Written   uint64            // accepted into the queue
	Committed uint64            // acknowledged by the store
	Failures  uint64            // failed Append calls (each retried)
	Dropped   map[string]uint64 // per live source
}

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{Queued: len(p.queue) + p.inflight, Written: p.written, Committed: p.done, Failures: p.failures, Dropped: map[string]uint64{}}
	for n, s := range p.sources {
		if s.live {
			st.Dropped[n] = s.dropped
		}
	}
	return st
}

// Flush waits until every record written before the call is durable.
func (p *Pipeline) Flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.written
	p.mu.Unlock()
	for {
		p.wake()
		p.mu.Lock()
		done, wait := p.done, p.changed
		p.mu.Unlock()
		if done >= target {
			return nil
		}
		select {
		case <-wait:
		case <-p.stopped:
			return fmt.Errorf("ingest: pipeline stopped with %d records unwritten", target-done)
		case <-ctx.Done():
			return fmt.Errorf("ingest: flush: %w", ctx.Err())
		}
	}
}

// Close stops accepting records, writes what is queued, and stops. If ctx
// ends first, the records still queued are lost and reported.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	p.cancel()
	<-p.stopped
	return err
}

func (p *Pipeline) run(ctx context.Context) {
	defer close(p.stopped)
	tick := time.NewTicker(p.cfg.FlushInterval)
	defer tick.Stop()
	var batch []flow.Record
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-tick.C:
		}
		for {
			p.mu.Lock()
			n := min(len(p.queue), p.cfg.BatchSize)
			batch = append(batch[:0], p.queue[:n]...)
			p.queue = p.queue[:copy(p.queue, p.queue[n:])]
			p.inflight = n
			more := len(p.queue) >= p.cfg.BatchSize
			p.mu.Unlock()
			if n == 0 || !p.commit(ctx, batch) {
				break
			}
			if !more {
				break
			}
		}
	}
}

// commit appends one batch, retrying until the store takes it or the
// pipeline is cancelled.
func (p *Pipeline) commit(ctx context.Context, batch []flow.Record) bool {
	for {
		err := p.dst.Append(ctx, p.id, batch)
		if err == nil {
			break
		}
		p.mu.Lock()
		p.failures++
		p.mu.Unlock()
		p.cfg.Logger.Warn("ingest: append failed; retrying", "stream", p.id.String(), "records", len(batch), "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(p.cfg.RetryInterval):
		}
	}
	if p.cfg.OnCommit != nil {
		p.cfg.OnCommit(batch)
	}
	p.mu.Lock()
	p.done += uint64(len(batch))
	p.inflight = 0
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	return true
}
