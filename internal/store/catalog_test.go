package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"flowlog/internal/control"
	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
)

// TestFollowControlPlane runs Follow with the real control plane as the
// catalog over a real store: retention changed in control is what expiry
// uses, a stream control deleted is deleted with its records (also in an
// account with no stream left), and a stream never written stays out of
// the store.
func TestFollowControlPlane(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ctl, err := control.New(control.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	s, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boot, err := ctl.EnsureBootstrap(ctx, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ctl.CreateAccount(ctx, boot.Key.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	kept := followStream(t, ctl, boot.Key.AccountID, "kept", 7)
	unwritten := followStream(t, ctl, boot.Key.AccountID, "unwritten", 7)
	gone := followStream(t, ctl, other.AccountID, "gone", 7)

	now := time.Now()
	for _, ls := range []control.LogStream{kept, gone} {
		if err := s.CreateStream(ctx, ls.StoreStream()); err != nil {
			t.Fatal(err)
		}
		recs := []flow.Record{{Bytes: 1, End: now.UnixMilli()}, {Bytes: 2, End: now.AddDate(0, 0, -5).UnixMilli()}}
		if err := s.Append(ctx, ls.StoreStream().StreamID, recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Follow(ctx, s, ctl, now); err != nil {
		t.Fatal(err)
	}
	followWantBytes(t, s, kept, now, 3)
	if _, err := s.Stream(ctx, unwritten.StoreStream().StreamID); !errors.Is(err, store.ErrNoStream) {
		t.Fatalf("a stream never written to is in the store: %v", err)
	}

	if _, err := ctl.UpdateLogStream(ctx, kept.AccountID, kept.LogGroupID, kept.ID, ptr(3)); err != nil {
		t.Fatal(err)
	}
	// Deleted in control only (no hook set): the follow deletes the records.
	if err := ctl.DeleteLogStream(ctx, gone.AccountID, gone.LogGroupID, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := store.Follow(ctx, s, ctl, now); err != nil {
		t.Fatal(err)
	}
	followWantBytes(t, s, kept, now, 1)
	if st, err := s.Stream(ctx, kept.StoreStream().StreamID); err != nil || st.RetentionDays != 3 {
		t.Fatalf("store's stream after a retention change: %+v %v, want 3 days", st, err)
	}
	if _, err := s.Stream(ctx, gone.StoreStream().StreamID); !errors.Is(err, store.ErrNoStream) {
		t.Fatalf("a stream deleted in control is still in the store: %v", err)
	}
	followWantBytes(t, s, gone, now, 0)
}

func ptr[T any](v T) *T { return &v }

// followStream creates a log stream in a new log group of account.
func followStream(t *testing.T, ctl *control.Service, account, name string, days int) control.LogStream {
	t.Helper()
	ctx := context.Background()
	g, err := ctl.CreateLogGroup(ctx, account, ptr(name))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := ctl.CreateLogStream(ctx, account, g.ID, ptr(name), ptr(days))
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// followWantBytes checks the sum of bytes over the last ten days.
func followWantBytes(t *testing.T, s store.Store, ls control.LogStream, now time.Time, want uint64) {
	t.Helper()
	q := query.Request{Since: now.AddDate(0, 0, -10), Until: now.Add(time.Hour), Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}}
	resp, err := s.Query(context.Background(), ls.StoreStream().StreamID, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Rows[0][0]; got != want {
		t.Fatalf("sum of bytes in %s = %v, want %d", ls.Name, got, want)
	}
}
