package api_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
)

func TestQueryLogStream(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("q")
	base := time.Now().Add(-10 * time.Minute).UnixMilli()
	recs := []flow.Record{
		{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("192.0.2.1"), SrcPort: 1000, DstPort: 443, Protocol: 6, Packets: 10, Bytes: 1000, Start: base, End: base + 1},
		{SrcAddr: netip.MustParseAddr("10.0.0.2"), DstAddr: netip.MustParseAddr("192.0.2.1"), SrcPort: 1001, DstPort: 443, Protocol: 6, Packets: 5, Bytes: 5000, Start: base, End: base + 2},
		{SrcAddr: netip.MustParseAddr("172.16.0.9"), DstAddr: netip.MustParseAddr("192.0.2.1"), SrcPort: 53, DstPort: 53, Protocol: 17, Packets: 1, Bytes: 80, Start: base, End: base + 3},
	}
	e.seed(fx.lg, map[string][]flow.Record{fx.ls: recs})

	window := map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339), "until": time.Now().Format(time.RFC3339)}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range window {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	path := "/v1/log-streams/" + fx.ls + "/query"
	raw := e.must(200, "POST", path, with())
	if n := len(raw["records"].([]any)); n != 3 {
		t.Fatalf("raw query: %d records, want 3: %v", n, raw)
	}
	f := e.must(200, "POST", path, with("where", "srcaddr in 10.0.0.0/8 and dstport = 443"))
	if n := len(f["records"].([]any)); n != 2 {
		t.Fatalf("filtered query: %d records, want 2", n)
	}
	top := e.must(200, "POST", path, with("group_by", []string{"srcaddr"},
		"aggregates", []any{map[string]any{"func": "sum", "field": "bytes"}}, "limit", 1))
	rows := top["rows"].([]any)
	if len(rows) != 1 || rows[0].([]any)[0] != "10.0.0.2" || rows[0].([]any)[1] != float64(5000) {
		t.Fatalf("top srcaddr by bytes: %v", top)
	}
	e.wantErr(400, "InvalidQuery", "POST", path, with("where", "srcaddr in (1.2.3.4"))
	e.wantErr(400, "InvalidQuery", "POST", path, with("where", "colour = 'red'"))
	e.wantErr(400, "InvalidQuery", "POST", path, with("until", window["since"]))
	e.wantErr(400, "UnknownField.select", "POST", path, with("select", "*"))
	e.wantErr(404, "NotFound.LogStream", "POST", "/v1/log-streams/ls-none/query", with())

	// A stream nobody wrote to answers empty; another account sees nothing.
	empty := e.must(201, "POST", "/v1/log-groups/"+fx.lg+"/log-streams", map[string]any{"name": "empty"})
	got := e.must(200, "POST", "/v1/log-streams/"+str(empty, "id")+"/query", with())
	if got["records"] != nil && len(got["records"].([]any)) != 0 {
		t.Fatalf("empty stream: %v", got)
	}
	k := e.must(201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	other := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))
	wantErrC(t, other, 404, "NotFound.LogStream", "POST", path, with())
}

// seed writes records into the server's own store, by log stream of the
// group, while the server is stopped.
func (e *env) seed(group string, recs map[string][]flow.Record) {
	e.t.Helper()
	e.srv.Stop()
	st, err := duckdb.New(duckdb.Config{Dir: e.srv.DataDir})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	for ls, rs := range recs {
		id := store.StreamID{Account: e.srv.Account, Stream: ls}
		if err := st.CreateStream(ctx, store.Stream{StreamID: id, Group: group, RetentionDays: 3}); err != nil {
			e.t.Fatal(err)
		}
		if err := st.Append(ctx, id, rs); err != nil {
			e.t.Fatal(err)
		}
	}
	st.Close()
	e.srv.Start()
}
