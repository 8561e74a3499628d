package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/testutil"
)

// storeWindow covers the demo replay, which ends when it starts.
var storeWindow = []string{"--since", "24h", "--until=-1h"}

// TestServeClickHouse runs `flowlog serve --store clickhouse://…` beside
// an embedded one, both replaying demo/lab.pcap into a log stream, and
// checks that the query API, query/export --data-dir --store, a crash with
// records in flight and the log stream's retention all behave on
// ClickHouse as the embedded store does.
func TestServeClickHouse(t *testing.T) {
	// A server of its own (it is paused below), with a user whose password
	// must not show in any output.
	const user, password = "flow", "Pw-0f-flow"
	chURL := chtest.StartWithUser(t, user, password)
	chPID := chtest.PID(chURL)
	const db = "flowlog_serve"
	addr := strings.TrimPrefix(chURL, "http://")
	setting := "clickhouse://" + user + ":" + password + "@" + addr + "/" + db
	shown := "clickhouse://" + user + "@" + addr + "/" + db // setting without the password

	emb := testutil.StartServer(t)
	srv := testutil.NewServer(t)
	srv.UseTestKey()
	srv.Args = []string{"--store", setting}
	srv.Start()
	if _, errOut := srv.Logs(); !strings.Contains(errOut, "store="+shown) {
		t.Errorf("the start log does not name the store %s:\n%s", shown, errOut)
	}

	want := settled(t, emb, demoFlowLog(t, emb, "demo"))
	ls := demoFlowLog(t, srv, "demo")
	if got := settled(t, srv, ls); got != want {
		t.Fatalf("ClickHouse store: %s\nembedded store: %s", got, want)
	}
	if got := chSelect(t, chURL, "SELECT retention_days FROM "+db+".streams FINAL WHERE stream = '"+ls+"' AND deleted = 0"); got != "3" {
		t.Errorf("the log stream's retention in ClickHouse: %q, want 3 (days)", got)
	}
	// A day older than the retention, written behind the server's back:
	// the retention job drops it at the next start.
	table := chSelect(t, chURL, "SELECT name FROM system.tables WHERE database = '"+db+"' AND name LIKE 'f%' AND engine = 'MergeTree'") // the stream's table, not its marks, rollups or views
	chSelect(t, chURL, "INSERT INTO "+db+"."+table+" (`end`, day) SELECT toInt64(now() - 10 * 86400) * 1000, today() - 10")
	old := "SELECT count() FROM " + db + "." + table + " WHERE day < today() - 3"
	if n := chSelect(t, chURL, old); n != "1" {
		t.Fatalf("%s old rows", n)
	}
	t.Logf("one replay: %s", want)

	// Two more replays into the same log stream, with the server crashing
	// before either is committed. The second's rows reach the stream's
	// table, but its commit mark cannot be written (the marks table is
	// detached): the commit fails and is retried, the rows being there
	// already. The third comes while ClickHouse does not answer at all:
	// its records wait in the spool. Then the server crashes, its flow
	// logs gone, and starts again once ClickHouse is whole. Each record
	// must be stored once: three replays' worth.
	marks := db + "." + table + "_marks"
	chSelect(t, chURL, "DETACH TABLE "+marks)
	second := demoFlowLogTo(t, srv, "again", ls)
	rows := "SELECT count() FROM " + db + "." + table + " WHERE seq > 0"
	failures := fmt.Sprintf(`flowlog_store_append_failures_total{log_stream="%s"}`, ls)
	waitTrue(t, "the second replay's rows in ClickHouse, uncommitted", func() bool {
		return chSelect(t, chURL, rows) == strconv.Itoa(2*want.flows) && srv.Metrics()[failures] > 0
	})
	if err := syscall.Kill(chPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(chPID, syscall.SIGCONT) })
	third := demoFlowLogTo(t, srv, "third", ls)
	queued := fmt.Sprintf(`flowlog_store_queue_records{log_stream="%s"}`, ls)
	waitTrue(t, "the second and third replays' records queued", func() bool {
		return srv.Metrics()[queued] == float64(2*want.flows)
	})
	for _, fl := range []string{second, third, flowLogOf(t, srv, "demo")} {
		cliOK(t, srv, "flow-logs", "delete", fl)
	}
	srv.Kill()
	hidden := func(run string) {
		t.Helper()
		stdout, stderr := srv.Logs()
		if strings.Contains(stdout+stderr, password) {
			t.Errorf("the %s run's output shows the ClickHouse password:\n%s%s", run, stdout, stderr)
		}
	}
	hidden("first")
	if err := syscall.Kill(chPID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	chSelect(t, chURL, "ATTACH TABLE "+marks)
	srv.Start()
	if got, thrice := settled(t, srv, ls), want.times(3); got != thrice {
		t.Fatalf("after the crash: %s\nwant three replays' worth: %s", got, thrice)
	}
	if n := chSelect(t, chURL, old); n != "0" {
		t.Errorf("%s rows older than the 3 days' retention are left", n)
	}

	// Offline: the data dir says where its records are, --store reads them.
	srv.Stop()
	hidden("second")
	if b, _ := os.ReadFile(filepath.Join(srv.DataDir, "store")); strings.TrimSpace(string(b)) != shown {
		t.Errorf("the data dir notes the store as %q, want %q", b, shown)
	}
	offline := append([]string{"--data-dir", srv.DataDir, "--log-stream", "flows", "--log-group", "demo"}, storeWindow...)
	_, errOut, code := runCLI(t, srv, append([]string{"query"}, offline...)...)
	if code == 0 || !strings.Contains(errOut, "keeps its log records in ClickHouse ("+shown+")") || !strings.Contains(errOut, "--store "+shown) {
		t.Errorf("query --data-dir of a ClickHouse server: exit %d, %q", code, errOut)
	}
	withStore := append(offline, "--store", setting)
	if got := totalsOf(t, func(args ...string) string {
		return cliOK(t, srv, append(append([]string{"query"}, withStore...), args...)...)
	}); got != want.times(3) {
		t.Errorf("query --data-dir --store: %s, want %s", got, want.times(3))
	}
	out := cliOK(t, srv, append(append([]string{"export"}, withStore...), "--format", "csv")...)
	lines, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(lines)-1 != 3*want.flows || !slices.Contains(lines[0], "srcaddr") {
		t.Errorf("export --data-dir --store: %d rows (want header + %d), %v", len(lines), 3*want.flows, err)
	}
}

// waitTrue polls cond for up to 30 s.
func waitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
	}
}

// streamTotals are a log stream's sums over the window, by protocol.
type streamTotals struct {
	flows int
	text  string // per protocol: flows, packets, bytes
}

func (t streamTotals) String() string { return t.text }

// times is what n replays of the same records sum to.
func (t streamTotals) times(n int) streamTotals {
	var parts []string
	for _, p := range strings.Split(t.text, " ") {
		proto, sums, _ := strings.Cut(p, ":")
		var f, pk, b uint64
		fmt.Sscanf(sums, "%d/%d/%d", &f, &pk, &b)
		parts = append(parts, fmt.Sprintf("%s:%d/%d/%d", proto, uint64(n)*f, uint64(n)*pk, uint64(n)*b))
	}
	return streamTotals{flows: n * t.flows, text: strings.Join(parts, " ")}
}

// totalsOf sums by protocol what query (given extra flags) answers.
func totalsOf(t *testing.T, query func(args ...string) string) streamTotals {
	t.Helper()
	by := map[string]map[string]uint64{}
	var protos []string
	for _, measure := range []string{"flows", "packets", "bytes"} {
		out := query("--top", "protocol", "--by", measure, "--limit", "300", "--output", "json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, r := range rows {
			p := fmt.Sprint(r["protocol"])
			if by[p] == nil {
				by[p] = map[string]uint64{}
				protos = append(protos, p)
			}
			by[p][measure] = uint64(r[measure].(float64))
		}
	}
	slices.Sort(protos)
	var parts []string
	n := 0
	for _, p := range protos {
		parts = append(parts, fmt.Sprintf("%s:%d/%d/%d", p, by[p]["flows"], by[p]["packets"], by[p]["bytes"]))
		n += int(by[p]["flows"])
	}
	return streamTotals{flows: n, text: strings.Join(parts, " ")}
}

// settled waits until the log stream's streamTotals, through the server's query
// API, are not empty and stay the same for a second.
func settled(t *testing.T, srv *testutil.Server, stream string) streamTotals {
	t.Helper()
	var last streamTotals
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		now := totalsOf(t, func(args ...string) string {
			return cliOK(t, srv, append(append([]string{"query", "--server", srv.URL, "--log-stream", stream}, storeWindow...), args...)...)
		})
		if now.flows > 0 && now == last {
			return now
		}
		if last = now; time.Now().After(deadline) {
			t.Fatalf("records never settled: %s", now)
		}
	}
}

// demoFlowLog makes a log group and stream named name/flows keeping 3 days,
// and a flow log replaying demo/lab.pcap into it; it returns the stream.
func demoFlowLog(t *testing.T, srv *testutil.Server, name string) string {
	t.Helper()
	lg := cliOK(t, srv, "log-groups", "create", "--name", name, "-o", "id")
	ls := cliOK(t, srv, "log-groups", "create-stream", lg, "--name", "flows", "--retention-days", "3", "-o", "id")
	demoFlowLogTo(t, srv, name, ls)
	return ls
}

// demoFlowLogTo makes a pcap gateway replaying demo/lab.pcap and a flow
// log of it into the log stream, both named name; it returns the flow log.
func demoFlowLogTo(t *testing.T, srv *testutil.Server, name, stream string) string {
	t.Helper()
	pcap, _ := filepath.Abs("../../demo/lab.pcap")
	gw := cliOK(t, srv, "gateways", "create", "--name", name, "--kind", "pcap", "--pcap-path", pcap, "--pcap-pace", "fast", "-o", "id")
	return cliOK(t, srv, "flow-logs", "create", "--name", name, "--output-type", "sls", "--log-stream", stream, "--gateway", gw, "-o", "id")
}

// flowLogOf returns the id of the flow log named name.
func flowLogOf(t *testing.T, srv *testutil.Server, name string) string {
	t.Helper()
	return cliOK(t, srv, "flow-logs", "list", "--name", name, "-o", "id")
}

// cliOK runs the CLI against srv and returns its trimmed output; a
// failure fails the test.
func cliOK(t *testing.T, srv *testutil.Server, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, srv, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	return strings.TrimSpace(out)
}

// chSelect runs SQL on the ClickHouse server at url and returns the
// answer, trimmed.
func chSelect(t *testing.T, url, sql string) string {
	t.Helper()
	resp, err := http.Post(url+"/", "text/plain", strings.NewReader(sql))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s: %s", sql, resp.Status, b)
	}
	return strings.TrimSpace(string(b))
}

// TestServeStoreErrors checks that a store setting serve cannot use stops
// it at once, with a message that says why and does not show the password,
// and that a ClickHouse server that does not answer is waited for.
func TestServeStoreErrors(t *testing.T) {
	refusing := chtest.StartWithUser(t, "flow", "Right1")
	closed := fmt.Sprintf("127.0.0.1:%d", testutil.FreeTCPPort(t))
	file := filepath.Join(t.TempDir(), "flowlog.yaml")
	if err := os.WriteFile(file, []byte("store: clickhouse://flow:Hidden1@"+closed+"/flows\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waiting := testutil.NewServer(t)
	waiting.Args = []string{"--config", file}
	waiting.Start()
	want := `msg="log store unreachable; records are spooled until it answers" store=clickhouse://flow@` + closed + "/flows"
	if _, errOut := waiting.Logs(); !strings.Contains(errOut, want) || strings.Contains(errOut, "Hidden1") {
		t.Errorf("serve with no ClickHouse server: %s\nwant %q, without the password", errOut, want)
	}
	for _, c := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"unknown scheme", []string{"--store", "postgres://flow:Hidden1@db/flows"}, "",
			`store "postgres://flow:xxxxx@db/flows": unknown scheme "postgres"; want duckdb or clickhouse://`},
		{"malformed", []string{"--store", "clickhouse://flow:Hidden1@ch1:port/flows"}, "", `invalid port ":port"`},
		{"bad database", nil, "FLOWLOG_STORE=clickhouse://ch1/flow-logs", `database "flow-logs" is not a name`},
		{"wrong password", []string{"--store", "clickhouse://flow:Hidden1@" + strings.TrimPrefix(refusing, "http://")}, "",
			"Wrong password for user flow"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, testutil.Binary(t), append([]string{"serve", "--listen",
			fmt.Sprintf("127.0.0.1:%d", testutil.FreeTCPPort(t)), "--data-dir", dir}, c.args...)...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "FLOWLOG_NETFLOW_LISTEN=off", "FLOWLOG_SFLOW_LISTEN=off", c.env}
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Errorf("%s: serve did not stop at once (%v): %s", c.name, err, out)
			continue
		}
		if !strings.Contains(string(out), c.want) || strings.Contains(string(out), "Hidden1") {
			t.Errorf("%s: got %s\nwant a message containing %q, without the password", c.name, out, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "control.db")); err == nil {
			t.Errorf("%s: serve made control state before refusing its store", c.name)
		}
	}
}
