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
// store follows it (Follow) and holds nothing of its own beyond records.
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
	want, err := c.LogStreams(ctx)
	if err != nil {
		return fmt.Errorf("log store: catalog: %w", err)
	}
	accounts, err := c.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("log store: catalog: %w", err)
	}
	byAccount := map[string]map[string]Stream{}
	for _, a := range accounts {
		byAccount[a] = map[string]Stream{}
	}
	for _, w := range want {
		if byAccount[w.Account] == nil {
			byAccount[w.Account] = map[string]Stream{}
		}
		byAccount[w.Account][w.Stream] = w
	}
	var errs []error
	for account, streams := range byAccount {
		errs = append(errs, followAccount(ctx, s, account, streams))
	}
	errs = append(errs, s.Expire(ctx, now))
	return errors.Join(errs...)
}

// followAccount applies the catalog's streams of one account to s.
func followAccount(ctx context.Context, s Store, account string, want map[string]Stream) error {
	have, err := s.Streams(ctx, account)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range have {
		w, ok := want[h.Stream]
		switch {
		case !ok:
			errs = append(errs, DropStream(ctx, s, h.StreamID))
		case w.Group != h.Group || w.RetentionDays != h.RetentionDays:
			errs = append(errs, s.CreateStream(ctx, w))
		}
	}
	return errors.Join(errs...)
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
