package control

import (
	"context"
	"errors"
	"slices"
	"testing"

	"flowlog/internal/store"
)

// TestLogStreamCatalog checks the control plane as the store's catalog:
// what it lists, retention changes, and that the deletion hook runs only
// for a stream actually deleted (not one a flow log still writes to).
func TestLogStreamCatalog(t *testing.T) {
	x := newTenancy(t, "")
	var deleted []string
	x.svc.OnLogStreamDeleted(func(_ context.Context, account, id string) { deleted = append(deleted, account+"/"+id) })
	g, err := x.svc.CreateLogGroup(x.ctx, x.a, ptr("g"))
	if err != nil {
		t.Fatal(err)
	}
	used, err := x.svc.CreateLogStream(x.ctx, x.a, g.ID, ptr("used"), nil)
	if err != nil {
		t.Fatal(err)
	}
	free, err := x.svc.CreateLogStream(x.ctx, x.a, g.ID, ptr("free"), ptr(30))
	if err != nil {
		t.Fatal(err)
	}

	all, err := x.svc.LogStreams(x.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(all, used.StoreStream()) || !slices.Contains(all, free.StoreStream()) || len(all) != 2 {
		t.Fatalf("LogStreams = %+v", all)
	}
	if want := (store.Stream{StreamID: store.StreamID{Account: x.a, Stream: free.ID}, Group: g.ID, RetentionDays: 30,
		Created: free.CreatedAt}); free.StoreStream() != want {
		t.Fatalf("StoreStream = %+v, want %+v", free.StoreStream(), want)
	}
	accounts, err := x.svc.Accounts(x.ctx)
	if err != nil || len(accounts) != 3 || !slices.Contains(accounts, x.b) {
		t.Fatalf("Accounts = %v, %v; want the bootstrap account, a and b", accounts, err)
	}

	_, err = x.svc.UpdateLogStream(x.ctx, x.a, g.ID, free.ID, ptr(0))
	wantErr(t, err, ErrInvalid, "retention_days", "1 to 3650")
	if _, err := x.svc.UpdateLogStream(x.ctx, x.b, g.ID, free.ID, ptr(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's stream: %v, want not found", err)
	}
	if _, err := x.svc.UpdateLogStream(x.ctx, x.a, "lg-other", free.ID, ptr(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stream of another group: %v, want not found", err)
	}
	if ls, err := x.svc.UpdateLogStream(x.ctx, x.a, g.ID, free.ID, ptr(3)); err != nil || ls.RetentionDays != 3 {
		t.Fatalf("update: %+v %v", ls, err)
	}
	if ls, err := x.svc.GetLogStream(x.ctx, x.a, free.ID); err != nil || ls.RetentionDays != 3 {
		t.Fatalf("after update: %+v %v", ls, err)
	}

	if _, _, err := x.svc.CreateFlowLog(x.ctx, x.a, FlowLogInput{Name: ptr("fl"), OutputType: ptr(OutputSLS),
		LogStreamID: &used.ID}); err != nil {
		t.Fatal(err)
	}
	if err := x.svc.DeleteLogStream(x.ctx, x.a, g.ID, used.ID); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete of a stream a flow log writes to: %v, want in use", err)
	}
	if err := x.svc.DeleteLogStream(x.ctx, x.b, g.ID, free.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete by another account: %v, want not found", err)
	}
	if err := x.svc.DeleteLogStream(x.ctx, x.a, g.ID, free.ID); err != nil {
		t.Fatal(err)
	}
	if want := []string{x.a + "/" + free.ID}; !slices.Equal(deleted, want) {
		t.Fatalf("deletion hook ran for %v, want %v", deleted, want)
	}
}
