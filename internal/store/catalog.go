package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Catalog owns the log streams: which exist, their log groups and how long
// each keeps its records. In flowlog serve it is the control plane; the
// store's own stream table is a copy that Follow keeps in line with it.
type Catalog interface {
	// LogStreams lists every log stream of every account.
	LogStreams(ctx context.Context) ([]Stream, error)
	// Accounts lists every account, with or without log streams.
	Accounts(ctx context.Context) ([]string, error)
}

// Follow brings s in line with c, then expires records by c's retention.
// A stream s holds with another group or retention takes c's; a stream s
// holds that c does not list (for an account c lists) is deleted with its
// records. A stream c lists that s does not hold is left alone: it has no
// records, and its first append creates it.
func Follow(ctx context.Context, s Store, c Catalog, now time.Time) error {
	// The store is read before the catalog: a stream created (and first
	// written) in between is then not taken for one the catalog dropped.
	accounts, err := c.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("log store: catalog: %w", err)
	}
	have := map[string][]Stream{}
	for _, a := range accounts {
		if have[a], err = s.Streams(ctx, a); err != nil {
			return err
		}
	}
	want, err := c.LogStreams(ctx)
	if err != nil {
		return fmt.Errorf("log store: catalog: %w", err)
	}
	byID := map[StreamID]Stream{}
	for _, w := range want {
		byID[w.StreamID] = w
	}
	var errs []error
	for _, streams := range have {
		for _, h := range streams {
			errs = append(errs, follow(ctx, s, h, byID))
		}
	}
	errs = append(errs, s.Expire(ctx, now))
	return errors.Join(errs...)
}

// follow applies the catalog's version of one stream the store holds.
func follow(ctx context.Context, s Store, h Stream, want map[StreamID]Stream) error {
	w, ok := want[h.StreamID]
	switch {
	case !ok:
		return DropStream(ctx, s, h.StreamID)
	case w.Group != h.Group || w.RetentionDays != h.RetentionDays:
		return s.CreateStream(ctx, w)
	}
	return nil
}

// DropStream deletes a stream and its records from s; a stream s never
// held is no error.
func DropStream(ctx context.Context, s Store, id StreamID) error {
	if err := s.DeleteStream(ctx, id); err != nil && !errors.Is(err, ErrNoStream) {
		return err
	}
	return nil
}

// FollowCatalog runs Follow now and then every interval until ctx ends:
// the background job of flowlog serve. Failures are logged and retried at
// the next tick.
func FollowCatalog(ctx context.Context, s Store, c Catalog, every time.Duration, log *slog.Logger) {
	run(ctx, func(now time.Time) error { return Follow(ctx, s, c, now) }, every, log)
}

// run calls job now and then every interval until ctx ends.
func run(ctx context.Context, job func(now time.Time) error, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = time.Hour
	}
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := job(time.Now()); err != nil && ctx.Err() == nil {
			log.Warn("log store retention failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
