package ingest

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/spool"
	"flowlog/internal/store"
)

// run commits the spool's records in order until cancelled. A backlog of
// MinBatch records is committed at once; a smaller one after
// FlushInterval, or when Flush asks.
func (p *Pipeline) run(ctx context.Context, next uint64, placed bool) {
	defer close(p.stopped)
	if !placed {
		var ok bool
		if next, ok = p.awaitStore(ctx); !ok {
			return
		}
	}
	r := p.log.NewReader(next)
	defer r.Close()
	b := &batcher{mem: p.cfg.Memory}
	defer b.release()
	tick := time.NewTicker(p.cfg.FlushInterval)
	defer tick.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			all = p.flushing()
		case <-tick.C:
			all = true
		}
		for {
			backlog := p.log.End() - p.committedPos()
			if backlog == 0 || (backlog < uint64(p.cfg.MinBatch) && !all) {
				break
			}
			if !p.commitNext(ctx, r, b, int(min(backlog, uint64(p.cfg.MaxBatch)))) {
				return
			}
		}
		if p.log.End() == p.committedPos() {
			b.release() // idle: give the memory back
		}
	}
}

// flushing reports whether a Flush or Close waits: then a partial batch
// goes at once.
func (p *Pipeline) flushing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed || p.flushers > 0
}

// commitNext reads up to want records and commits them, retrying until
// the store takes them; false when cancelled, or when a commit fails while
// the pipeline closes.
func (p *Pipeline) commitNext(ctx context.Context, r *spool.Reader, b *batcher, want int) bool {
	n := b.reserve(ctx, want, p.cfg.MinBatch)
	if n == 0 {
		return false
	}
	recs, first, err := r.Read(b.buf[:0], n)
	b.buf = recs
	if err != nil {
		p.cfg.Logger.Error("ingest: spool unreadable", "log_stream", p.id.Stream, "position", first, "err", err)
		return sleep(ctx, p.cfg.RetryInterval)
	}
	batch := store.Batch{First: first + p.offset, Records: recs}
	for {
		err := p.dst.Commit(ctx, p.id, batch)
		if err == nil {
			break
		}
		if p.failed(err, len(batch.Records)) { // the spool keeps the batch for the next start: no waiting on a full disk
			return false
		}
		if !sleep(ctx, p.cfg.RetryInterval) {
			return false
		}
		// The failed commit may have stored the batch after all.
		if next, err := p.dst.Committed(ctx, p.id); err == nil {
			batch = batch.After(next)
		}
	}
	p.committedBatch(store.Batch{First: first, Records: recs})
	return true
}

// failed counts a failed commit of n records and logs it; a store that
// does not answer logged that itself (store.ErrUnreachable). It says
// whether the pipeline closes.
func (p *Pipeline) failed(err error, n int) (closing bool) {
	p.mu.Lock()
	p.failures++
	closing = p.closed
	p.mu.Unlock()
	level, msg := slog.LevelWarn, "ingest: commit failed; retrying"
	if closing {
		msg = "ingest: commit failed while closing"
	}
	if errors.Is(err, store.ErrUnreachable) {
		level = slog.LevelDebug
	}
	p.cfg.Logger.Log(context.Background(), level, msg, "log_stream", p.id.Stream, "records", n, "err", err)
	return closing
}

// committedBatch moves the position on past b, trims the spool and tells
// the waiters.
func (p *Pipeline) committedBatch(b store.Batch) {
	if p.cfg.OnCommit != nil {
		p.cfg.OnCommit(b.Records)
	}
	if err := p.log.Trim(b.Next()); err != nil {
		p.cfg.Logger.Warn("ingest: spool trim", "log_stream", p.id.Stream, "err", err)
	}
	p.mu.Lock()
	p.committed = b.Next()
	p.done += uint64(len(b.Records))
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// batcher holds one pipeline's batch buffer and the memory it was granted.
type batcher struct {
	mem  *Memory
	buf  []flow.Record
	held int // records granted, the buffer's capacity
}

// reserve makes room for want records, taking memory from the budget;
// it may grant fewer (at least min(want, least), waiting for it), and
// 0 when ctx ends.
func (b *batcher) reserve(ctx context.Context, want, least int) int {
	if want > b.held {
		got := b.mem.take(ctx, want-b.held, max(0, min(want, least)-b.held))
		if got == 0 && b.held == 0 {
			return 0
		}
		b.held += got
		b.buf = make([]flow.Record, 0, b.held)
	}
	return min(want, b.held)
}

func (b *batcher) release() {
	b.mem.give(b.held)
	b.held, b.buf = 0, nil
}
