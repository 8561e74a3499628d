package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"flowlog/internal/config"
	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// waiting is a ClickHouse store that may not answer: it connects on first
// use, and again after each failure to, and marks the errors of a server
// that does not answer with store.ErrUnreachable, so that callers wait
// for it (ingest spools meanwhile). It logs when the server stops
// answering and when it answers again, once each.
type waiting struct {
	st      config.Store
	connect func(ctx context.Context) (store.Store, error)
	log     *slog.Logger

	mu   sync.Mutex
	s    store.Store // nil until connected
	down bool        // the last request found no server
}

var _ store.Store = (*waiting)(nil)

// get returns the connected store, connecting if need be.
func (w *waiting) get(ctx context.Context) (store.Store, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.s != nil {
		return w.s, nil
	}
	s, err := w.connect(ctx)
	if err != nil {
		return nil, err
	}
	w.s = s
	return s, nil
}

// do runs f on the store and notes whether the server answered.
func (w *waiting) do(ctx context.Context, f func(store.Store) error) error {
	s, err := w.get(ctx)
	if err == nil {
		err = f(s)
	}
	if ctx.Err() != nil {
		return err // the caller's deadline (a query's), not the server's absence
	}
	if err != nil && unanswered(err) {
		err = fmt.Errorf("%w: %w", store.ErrUnreachable, err)
	}
	w.note(err)
	return err
}

// note logs a change between a server answering and not.
func (w *waiting) note(err error) {
	down := errors.Is(err, store.ErrUnreachable)
	w.mu.Lock()
	changed := down != w.down
	w.down = down
	w.mu.Unlock()
	switch {
	case changed && down:
		w.log.Warn("log store unreachable; records are spooled until it answers", "store", w.st.String(), "err", err)
	case changed:
		w.log.Info("log store answers again", "store", w.st.String())
	}
}

// unanswered says whether err is that of no server answering (the
// network's, or a timeout) rather than a server's answer.
func unanswered(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

func (w *waiting) CreateStream(ctx context.Context, st store.Stream) error {
	return w.do(ctx, func(s store.Store) error { return s.CreateStream(ctx, st) })
}

func (w *waiting) Stream(ctx context.Context, id store.StreamID) (st store.Stream, err error) {
	err = w.do(ctx, func(s store.Store) (err error) { st, err = s.Stream(ctx, id); return err })
	return st, err
}

func (w *waiting) Streams(ctx context.Context, account string) (sts []store.Stream, err error) {
	err = w.do(ctx, func(s store.Store) (err error) { sts, err = s.Streams(ctx, account); return err })
	return sts, err
}

func (w *waiting) DeleteStream(ctx context.Context, id store.StreamID) error {
	return w.do(ctx, func(s store.Store) error { return s.DeleteStream(ctx, id) })
}

func (w *waiting) Append(ctx context.Context, id store.StreamID, recs []flow.Record) error {
	return w.do(ctx, func(s store.Store) error { return s.Append(ctx, id, recs) })
}

func (w *waiting) Commit(ctx context.Context, id store.StreamID, b store.Batch) error {
	return w.do(ctx, func(s store.Store) error { return s.Commit(ctx, id, b) })
}

func (w *waiting) Committed(ctx context.Context, id store.StreamID) (next uint64, err error) {
	err = w.do(ctx, func(s store.Store) (err error) { next, err = s.Committed(ctx, id); return err })
	return next, err
}

func (w *waiting) Query(ctx context.Context, id store.StreamID, q query.Request) (r *query.Response, err error) {
	err = w.do(ctx, func(s store.Store) (err error) { r, err = s.Query(ctx, id, q); return err })
	return r, err
}

func (w *waiting) QueryStreams(ctx context.Context, ids []store.StreamID, q query.Request) (r *query.Response, err error) {
	err = w.do(ctx, func(s store.Store) (err error) { r, err = s.QueryStreams(ctx, ids, q); return err })
	return r, err
}

func (w *waiting) Expire(ctx context.Context, now time.Time) error {
	return w.do(ctx, func(s store.Store) error { return s.Expire(ctx, now) })
}

func (w *waiting) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.s == nil {
		return nil
	}
	return w.s.Close()
}
