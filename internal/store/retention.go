package store

import (
	"context"
	"log/slog"
	"time"
)

// Expirer is the part of a Store that enforces retention.
type Expirer interface {
	Expire(ctx context.Context, now time.Time) error
}

// EnforceRetention calls Expire now and then every interval until ctx
// ends: the background job that keeps each stream within its retention
// when the store has no catalog to follow. Failures are logged and retried
// at the next tick.
func EnforceRetention(ctx context.Context, s Expirer, every time.Duration, log *slog.Logger) {
	run(ctx, func(now time.Time) error { return s.Expire(ctx, now) }, every, log)
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
