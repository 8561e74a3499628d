package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flowlog/internal/config"
	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

const password = "pw:S3cret/!"

// storeURL is the setting for the ClickHouse server at base (http://…)
// with the user's credentials.
func storeURL(t *testing.T, base, user, pw, db string) config.Store {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	setting := "clickhouse://" + url.UserPassword(user, pw).String() + "@" + u.Host + "/" + db
	st, err := config.ParseStore(setting)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestClickHouseCredentials opens a server as a user with a password, and
// checks that a wrong password and a server that does not answer fail
// with errors that say so without quoting the password.
func TestClickHouseCredentials(t *testing.T) {
	base := chtest.StartWithUser(t, "flow", password)
	ctx := context.Background()
	s, err := New(ctx, Config{Store: storeURL(t, base, "flow", password, "flowlog_backend")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := store.StreamID{Account: "a", Stream: "s"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	end := time.Now().UnixMilli()
	recs := []flow.Record{{Start: end - 1000, End: end, Packets: 3, Bytes: 300}, {Start: end - 500, End: end, Packets: 1, Bytes: 40}}
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Query(ctx, id, query.Request{Since: time.UnixMilli(end - 60000), Until: time.UnixMilli(end + 1),
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Rows) != 1 || resp.Rows[0][0] != uint64(340) {
		t.Fatalf("sum of bytes: %v, want 340", resp.Rows)
	}

	_, err = New(ctx, Config{Store: storeURL(t, base, "flow", "wrong-"+password, "flowlog_backend")})
	if err == nil || !strings.Contains(err.Error(), "Wrong password for user flow") ||
		!strings.Contains(err.Error(), "log store clickhouse://flow@") || strings.Contains(err.Error(), "S3cret") {
		t.Errorf("wrong password: %v", err)
	}

	closed := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreeTCPPort(t))
	_, err = New(ctx, Config{Store: storeURL(t, closed, "flow", password, "flowlog"), Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "no ClickHouse server answers on 127.0.0.1:") || strings.Contains(err.Error(), "S3cret") {
		t.Errorf("no server: %v", err)
	}

	// Waiting (a Logger), a refusing server still fails at once; one that
	// does not answer gives a store whose requests fail with
	// ErrUnreachable, logged once.
	var logged bytes.Buffer
	wait := slog.New(slog.NewTextHandler(&logged, nil))
	_, err = New(ctx, Config{Store: storeURL(t, base, "flow", "wrong-"+password, "flowlog_backend"), Logger: wait})
	if err == nil || !strings.Contains(err.Error(), "Wrong password for user flow") {
		t.Errorf("wrong password, waiting: %v", err)
	}
	s, err = New(ctx, Config{Store: storeURL(t, closed, "flow", password, "flowlog"), Timeout: 5 * time.Second, Logger: wait})
	if err != nil {
		t.Fatalf("no server, waiting: %v", err)
	}
	for range 2 {
		if _, err := s.Streams(ctx, "acct"); !errors.Is(err, store.ErrUnreachable) {
			t.Errorf("a request while no server answers: %v", err)
		}
	}
	if n := strings.Count(logged.String(), `msg="log store unreachable`); n != 1 || strings.Contains(logged.String(), "S3cret") {
		t.Errorf("logged %d times: %s", n, logged.String())
	}
}

// TestRecord notes the store in a data dir without its password.
func TestRecord(t *testing.T) {
	dir := t.TempDir()
	if st, err := Recorded(dir); err != nil || st.Kind != config.StoreDuckDB {
		t.Fatalf("a data dir with no note: %+v, %v; want duckdb", st, err)
	}
	st, err := config.ParseStore("clickhouse://flow:" + url.QueryEscape(password) + "@ch1:9000/logs")
	if err != nil {
		t.Fatal(err)
	}
	if err := Record(dir, st); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, RecordFile))
	if strings.Contains(string(b), "S3cret") {
		t.Errorf("the note holds the password: %s", b)
	}
	got, err := Recorded(dir)
	if err != nil || got.String() != "clickhouse://flow@ch1:9000/logs" {
		t.Errorf("Recorded = %v, %v", got, err)
	}
}

// TestPrevious tells a change of store from a first start.
func TestPrevious(t *testing.T) {
	ch, _ := config.ParseStore("clickhouse://ch1/logs")
	embedded := config.Store{Kind: config.StoreDuckDB}
	fresh := t.TempDir()
	if _, changed := Previous(fresh, ch); changed {
		t.Error("a new data dir had a store before")
	}
	old := t.TempDir() // the embedded store's data dir from before notes
	if err := os.WriteFile(filepath.Join(old, duckdb.FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if before, changed := Previous(old, ch); !changed || before.Kind != config.StoreDuckDB {
		t.Errorf("embedded, then ClickHouse: %v, %v", before, changed)
	}
	if _, changed := Previous(old, embedded); changed {
		t.Error("embedded both times: a change")
	}
	if err := Record(fresh, ch); err != nil {
		t.Fatal(err)
	}
	if _, changed := Previous(fresh, ch); changed {
		t.Error("the same ClickHouse: a change")
	}
	if before, changed := Previous(fresh, embedded); !changed || before.String() != ch.String() {
		t.Errorf("ClickHouse, then embedded: %v, %v", before, changed)
	}
}
