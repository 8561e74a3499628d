package clickhouse

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/query"
	"flowlog/internal/store/rollup"
	"flowlog/internal/store/storetest"
)

func newClusterStore(t *testing.T, urls []string, db string) *Store {
	t.Helper()
	s, err := New(context.Background(), Config{URL: strings.Join(urls, ","), Database: db, Cluster: chtest.ClusterName,
		Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestClusterSuite runs the shared suite on a cluster of two replicas,
// through the first.
func TestClusterSuite(t *testing.T) {
	c := chtest.StartCluster(t)
	s := newClusterStore(t, c.URLs, "flowlog_test")
	defer s.Close()
	storetest.Run(t, s)
	// Every table is on both replicas, and each data table has its
	// Distributed table.
	for _, u := range c.URLs {
		rows, err := newClient(u, nil, "", "", 0).selectTSV(context.Background(),
			"SELECT countIf(engine LIKE 'Replicated%'), countIf(engine = 'Distributed'), countIf(name LIKE 'f\\\\_%\\\\_marks')"+
				" FROM system.tables WHERE database = 'flowlog_test' AND name NOT LIKE '%\\\\_stage\\\\_%'",
			[]query.SQLType{query.SQLUint, query.SQLUint, query.SQLUint})
		if err != nil {
			t.Fatal(err)
		}
		replicated, distributed, marks := rows[0][0].(uint64), rows[0][1].(uint64), rows[0][2].(uint64)
		want := 1 + (2+uint64(len(rollup.All)))*marks // the catalog; per stream its table, marks and rollups
		if marks == 0 || distributed != marks || replicated != want {
			t.Errorf("%s: %d replicated tables, %d distributed, %d streams; want %d, 1 per stream", u, replicated, distributed, marks, want)
		}
	}
}

// TestClusterReplicaLoss commits a stream's records in batches through a
// store given both replicas while one replica is lost and comes back:
// an attempt whose answer is lost is retried on the other replica, the
// first replica is killed (SIGKILL) between Commits, and again while one
// runs, and restarted. Commits go on while it is down, and both replicas
// end up with every record exactly once.
func TestClusterReplicaLoss(t *testing.T) {
	ctx := context.Background()
	c := chtest.StartCluster(t)
	recs := storetest.Records(24000, 3*time.Hour, 5)
	const size = 1000
	id := store.StreamID{Account: "acct", Stream: "replicated"}

	// Through a proxy that loses the answer of a move into the stream's
	// table: the retry goes to the second replica, which must first see
	// what the first stored.
	proxy := &faultyProxy{target: c.URLs[0], fault: loseAnswer, spoils: isMove}
	srv := startProxy(t, proxy)
	s := newClusterStore(t, []string{srv, c.URLs[1]}, "flowlog_cluster")
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	commitUntil(t, s, id, recs, size, 3*size, func(first uint64) { proxy.armAt(first == 2*size) })
	if len(proxy.landed) != 1 || proxy.landed[0] != size {
		t.Fatalf("spoilt moves stored %v rows, want one of %d", proxy.landed, size)
	}
	if s.c.cur.Load() != 1 {
		t.Error("the retry of the attempt without answer did not move on to the second replica")
	}

	// A new process, given the replicas directly, the first one first.
	s = newClusterStore(t, c.URLs, "flowlog_cluster")
	commitUntil(t, s, id, recs, size, 6*size, nil)
	c.Kill(0)
	commitUntil(t, s, id, recs, size, 9*size, nil) // while it is down
	c.Start(t, 0)
	s.c.cur.Store(0)
	commitUntil(t, s, id, recs, size, 12*size, nil)

	// Behind a TCP proxy (a load balancer), the first replica killed is
	// not refused but hung up on: Commits go on through the second.
	behind := newClusterStore(t, []string{"http://" + startTCPForwarder(t, strings.TrimPrefix(c.URLs[0], "http://")), c.URLs[1]},
		"flowlog_cluster")
	commitUntil(t, behind, id, recs, size, 13*size, nil)
	c.Kill(0)
	commitUntil(t, behind, id, recs, size, 15*size, nil)
	c.Start(t, 0)
	s = newClusterStore(t, c.URLs, "flowlog_cluster") // one process per writer: the next one

	// Killed while a Commit runs: it may have stored the batch on the
	// first replica only, so the retry may have to wait for it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(150 * time.Millisecond)
		c.Kill(0)
		time.Sleep(3 * time.Second)
		c.Start(t, 0)
	}()
	commitUntil(t, s, id, recs, 2*size, len(recs), nil)
	<-done

	for _, u := range c.URLs {
		wantReplicaOnce(t, u, "flowlog_cluster", id, len(recs))
	}
	wantOnce(t, s, id, recs) // through the Distributed table, once caught up
}

// commitUntil commits recs from Committed on in batches of size until
// position to, as the spool's committer does, retrying failed Commits for
// up to a minute. before, if set, is called before each attempt.
func commitUntil(t *testing.T, s *Store, id store.StreamID, recs []flow.Record, size, to int, before func(first uint64)) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	var err error
	for {
		var pos uint64
		if pos, err = s.Committed(ctx, id); err == nil {
			if pos >= uint64(to) {
				return
			}
			b := store.Batch{First: pos, Records: recs[pos:min(pos+uint64(size), uint64(to))]}
			if before != nil {
				before(pos)
			}
			if err = s.Commit(ctx, id, b); err == nil {
				continue
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startTCPForwarder forwards TCP connections to target until the test
// ends, as a load balancer would: when target refuses, it hangs up on the
// client. It returns its address.
func startTCPForwarder(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// armAt arms the proxy for the next request it spoils when on is set.
func (p *faultyProxy) armAt(on bool) {
	if on && len(p.landed) == 0 {
		p.arm()
	}
}

// startProxy serves p on loopback until the test ends and returns its URL.
func startProxy(t *testing.T, p http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// wantReplicaOnce waits until the replica at url holds n rows of the
// stream, then fails unless they are the positions 1…n, each once.
func wantReplicaOnce(t *testing.T, url, db string, id store.StreamID, n int) {
	t.Helper()
	c := newClient(url, nil, "", "", 0)
	q := fmt.Sprintf("SELECT count(), uniqExact(seq), min(seq), max(seq) FROM %s.%s", query.Quote(db), query.Quote(tableID(id)))
	types := []query.SQLType{query.SQLUint, query.SQLUint, query.SQLUint, query.SQLUint}
	var got [][]any
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, err = c.selectTSV(context.Background(), q, types); err == nil && got[0][0].(uint64) >= uint64(n) {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	want := []any{uint64(n), uint64(n), uint64(1), uint64(n)}
	if fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Errorf("%s: rows, distinct positions, first, last = %v; want %v", url, got[0], want)
	}
}

// TestClusterExpire checks that retention, run through one replica, drops
// the old days on both.
func TestClusterExpire(t *testing.T) {
	ctx := context.Background()
	c := chtest.StartCluster(t)
	s := newClusterStore(t, c.URLs, "flowlog_expire")
	id := store.StreamID{Account: "acct", Stream: "kept-3-days"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id, RetentionDays: 3}); err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(2000, 3*time.Hour, 7) // two days
	if err := s.Commit(ctx, id, store.Batch{First: 0, Records: recs}); err != nil {
		t.Fatal(err)
	}
	for _, u := range c.URLs {
		wantReplicaOnce(t, u, "flowlog_expire", id, len(recs))
	}
	// Three days after the first: only the second is kept.
	if err := s.Expire(ctx, storetest.Base.Add(3*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, r := range recs {
		if store.Day(r.End) > store.Day(storetest.Base.UnixMilli()) {
			kept++
		}
	}
	if kept == 0 || kept == len(recs) {
		t.Fatalf("%d of %d records on the second day: the test does not test", kept, len(recs))
	}
	q := "SELECT count() FROM flowlog_expire." + query.Quote(tableID(id))
	for _, u := range c.URLs {
		cl := newClient(u, nil, "", "", 0)
		var got [][]any
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got, _ = cl.selectTSV(ctx, q, []query.SQLType{query.SQLUint}); got != nil && got[0][0].(uint64) == uint64(kept) {
				break
			}
		}
		if got == nil || got[0][0].(uint64) != uint64(kept) {
			t.Errorf("%s: %v rows after expiry, want %d", u, got, kept)
		}
	}
}

// TestClusterRefusesSingleDatabase checks that a database made on one
// server is not taken for a replicated one.
func TestClusterRefusesSingleDatabase(t *testing.T) {
	c := chtest.StartCluster(t)
	if _, err := New(context.Background(), Config{URL: c.URLs[0], Database: "flowlog_single"}); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), Config{URL: c.URLs[0], Database: "flowlog_single", Cluster: chtest.ClusterName})
	if err == nil || !strings.Contains(err.Error(), "database flowlog_single was made without a cluster") {
		t.Errorf("cluster mode on a database of one server: %v", err)
	}
}

// TestClusterCreateWhileReplicaDown makes a stream and commits to it while
// the second replica is down; back, it gets the stream's tables from the
// queue of statements ON CLUSTER, then its records.
func TestClusterCreateWhileReplicaDown(t *testing.T) {
	ctx := context.Background()
	c := chtest.StartCluster(t)
	s := newClusterStore(t, c.URLs, "flowlog_down")
	c.Kill(1)
	id := store.StreamID{Account: "acct", Stream: "made-while-down"}
	start := time.Now()
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	t.Logf("CreateStream with a replica down: %v", time.Since(start).Round(time.Millisecond))
	recs := storetest.Records(3000, 3*time.Hour, 9)
	if err := s.Commit(ctx, id, store.Batch{First: 0, Records: recs}); err != nil {
		t.Fatal(err)
	}
	c.Start(t, 1)
	for _, u := range c.URLs {
		wantReplicaOnce(t, u, "flowlog_down", id, len(recs))
	}
}
