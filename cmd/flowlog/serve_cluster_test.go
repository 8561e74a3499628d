package main

import (
	"strconv"
	"strings"
	"testing"

	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/testutil"
)

// TestServeClickHouseCluster runs `flowlog serve --store
// 'clickhouse://h1,h2/db?cluster=…'` on a cluster of two replicas beside
// an embedded server, both replaying demo/lab.pcap. A second replay comes
// while the first replica is down (killed): the server goes on through the
// second, and the first, started again, catches up with every record once.
func TestServeClickHouseCluster(t *testing.T) {
	c := chtest.StartCluster(t)
	const db = "flowlog_serve_cluster"
	var hosts []string
	for _, u := range c.URLs {
		hosts = append(hosts, strings.TrimPrefix(u, "http://"))
	}
	setting := "clickhouse://" + strings.Join(hosts, ",") + "/" + db + "?cluster=" + chtest.ClusterName

	emb := testutil.StartServer(t)
	srv := testutil.NewServer(t)
	srv.UseTestKey()
	srv.Args = []string{"--store", setting}
	srv.Start()
	if _, errOut := srv.Logs(); !strings.Contains(errOut, `store="`+setting+`"`) {
		t.Errorf("the start log does not name the store %s:\n%s", setting, errOut)
	}
	want := settled(t, emb, demoFlowLog(t, emb, "demo"))
	ls := demoFlowLog(t, srv, "demo")
	if got := settled(t, srv, ls); got != want {
		t.Fatalf("ClickHouse cluster: %s\nembedded store: %s", got, want)
	}

	c.Kill(0)
	demoFlowLogTo(t, srv, "again", ls)
	if got, twice := settled(t, srv, ls), want.times(2); got != twice {
		t.Fatalf("with the first replica down: %s\nwant two replays' worth: %s", got, twice)
	}
	c.Start(t, 0)
	table := chSelect(t, c.URLs[1], "SELECT name FROM system.tables WHERE database = '"+db+"' AND name LIKE 'f%' AND engine = 'ReplicatedMergeTree'") // the stream's table, not its marks, rollups or reads
	rows := "SELECT count(), uniqExact(seq) FROM " + db + "." + table
	twice := strconv.Itoa(2*want.flows) + "\t" + strconv.Itoa(2*want.flows)
	for _, u := range c.URLs {
		waitTrue(t, "both replays' records, each once, on "+u, func() bool { return chSelect(t, u, rows) == twice })
	}
}
