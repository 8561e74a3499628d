package api_test

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/testutil"
)

// catalogStoreTables opens the stopped server's store and returns its
// streams of the account and the number of day tables (with rollups) of
// stream num, or of every stream when num is 0.
func catalogStoreTables(t *testing.T, e *env, num int) ([]store.Stream, int) {
	t.Helper()
	st, err := duckdb.New(duckdb.Config{Dir: e.srv.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list, err := st.Streams(context.Background(), e.srv.Account)
	if err != nil {
		t.Fatal(err)
	}
	like := "f%"
	if num > 0 {
		like = "f" + itoa(num) + "\\_d%"
	}
	var n int
	if err := st.DB().QueryRow(`SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE ? ESCAPE '\'`, like).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return list, n
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestLogStreamCatalog follows one log stream through its life: the
// control plane owns it, and the store follows: a query before any record
// writes nothing, a retention change through the API is what expiry uses,
// and deleting the stream (after its flow log) deletes its records.
func TestLogStreamCatalog(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("cat")
	ls := e.must(201, "POST", "/v1/log-groups/"+fx.lg+"/log-streams", map[string]any{"name": "life", "retention_days": 7})
	lsID := str(ls, "id")
	now := time.Now()
	window := map[string]any{"since": now.AddDate(0, 0, -9).Format(time.RFC3339), "until": now.Add(time.Hour).Format(time.RFC3339)}
	path := "/v1/log-streams/" + lsID + "/query"
	if got := e.must(200, "POST", path, window); got["records"] != nil {
		t.Fatalf("query of a stream without records: %v, want none", got)
	}

	e.srv.Stop()
	if list, _ := catalogStoreTables(t, e, 0); len(list) != 0 {
		t.Fatalf("the store holds %v after a query alone; a query must write nothing", list)
	}
	// Records of today and of five days ago, written while the server is stopped.
	st, err := duckdb.New(duckdb.Config{Dir: e.srv.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	id := store.StreamID{Account: e.srv.Account, Stream: lsID}
	ctx := context.Background()
	old := now.AddDate(0, 0, -5).UnixMilli()
	recs := []flow.Record{
		{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"), Protocol: 6, Bytes: 100, Packets: 1, Start: now.UnixMilli() - 1000, End: now.UnixMilli() - 1000},
		{SrcAddr: netip.MustParseAddr("10.0.0.3"), DstAddr: netip.MustParseAddr("10.0.0.4"), Protocol: 6, Bytes: 200, Packets: 2, Start: old, End: old},
	}
	if err := st.CreateStream(ctx, store.Stream{StreamID: id, Group: fx.lg, RetentionDays: 7}); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	var num int
	if err := st.DB().QueryRow(`SELECT num FROM streams WHERE stream = ?`, lsID).Scan(&num); err != nil {
		t.Fatal(err)
	}
	st.Close()
	e.srv.Start()
	catalogWantRecords(t, e, path, window, 2)

	// Retention is the control plane's: 3 days expires the 5-day-old record
	// at the store's next retention pass (one runs at start).
	e.wantErr(400, "InvalidParameter.retention_days", "PATCH", "/v1/log-groups/"+fx.lg+"/log-streams/"+lsID,
		map[string]any{"retention_days": 0})
	if got := e.must(200, "PATCH", "/v1/log-groups/"+fx.lg+"/log-streams/"+lsID, map[string]any{"retention_days": 3}); got["retention_days"] != float64(3) {
		t.Fatalf("retention update: %v", got)
	}
	if got := e.must(200, "GET", "/v1/log-groups/"+fx.lg+"/log-streams/"+lsID, nil); got["retention_days"] != float64(3) {
		t.Fatalf("retention after update: %v", got)
	}
	e.srv.Stop()
	e.srv.Start()
	catalogWantRecords(t, e, path, window, 1)

	// Refused while a flow log writes to it; once the flow log is gone, the
	// records go with the stream.
	fl := e.must(201, "POST", "/v1/flow-logs", map[string]any{"name": "cat", "output_type": "sls", "log_stream_id": lsID})
	e.wantErr(409, "Conflict.InUse", "DELETE", "/v1/log-groups/"+fx.lg+"/log-streams/"+lsID, nil)
	// The native API refuses to delete a flow log still pending: let the
	// data plane settle it first.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		f := e.must(200, "GET", "/v1/flow-logs/"+str(fl, "id"), nil)
		if f["state"] != "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow log stuck pending: %v", f)
		}
	}
	e.must(202, "DELETE", "/v1/flow-logs/"+str(fl, "id"), nil)
	catalogWaitGone(t, e, "/v1/flow-logs/"+str(fl, "id"))
	e.must(204, "DELETE", "/v1/log-groups/"+fx.lg+"/log-streams/"+lsID, nil)
	e.srv.Stop()
	list, tables := catalogStoreTables(t, e, num)
	for _, s := range list {
		if s.Stream == lsID {
			t.Fatalf("the store still holds the deleted stream: %v", s)
		}
	}
	if tables != 0 {
		t.Fatalf("%d day tables of the deleted stream are left", tables)
	}
	e.srv.Start()

	// A new stream of the same name starts empty.
	again := e.must(201, "POST", "/v1/log-groups/"+fx.lg+"/log-streams", map[string]any{"name": "life"})
	catalogWantRecords(t, e, "/v1/log-streams/"+str(again, "id")+"/query", window, 0)
}

// catalogWantRecords waits until a raw query answers n records.
func catalogWantRecords(t *testing.T, e *env, path string, body map[string]any, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.must(200, "POST", path, body)
		recs, _ := got["records"].([]any)
		if len(recs) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d records, want %d", path, len(recs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// catalogWaitGone waits until path answers 404.
func catalogWaitGone(t *testing.T, e *env, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, _ := testutil.Call(t, e.c, "GET", path, nil); st == 404 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
