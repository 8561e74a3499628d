package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/testutil"
)

// TestAgentScaleOut runs serve as the control plane on ClickHouse and one
// `flowlog agent` process, each replaying demo/lab.pcap through a gateway
// of its own, and checks against a replay inside an embedded serve:
//   - one flow log over a gateway on each plane fills one log stream with
//     both planes' records, exactly twice the one replay's, and settles
//     available from both planes' reports;
//   - an agent killed (-9) with records landed but not committed and
//     records spooled while ClickHouse was away, then restarted, stores
//     each of them once;
//   - with the server stopped for 30 s the agent keeps storing, and once
//     the server is back, a new flow log reaches the agent, which stores
//     and exports (IPFIX) its records.
func TestAgentScaleOut(t *testing.T) {
	chURL := chtest.Start(t)
	const db = "flowlog_agents"
	proxy := newTCPProxy(t, "127.0.0.1:0", strings.TrimPrefix(chURL, "http://"))

	emb := testutil.StartServer(t)
	want := settled(t, emb, demoFlowLog(t, emb, "demo"))
	t.Logf("one replay inside serve: %s", want)

	srv := testutil.NewServer(t)
	srv.UseTestKey()
	srv.Args = []string{"--store", "clickhouse://" + strings.TrimPrefix(chURL, "http://") + "/" + db}
	srv.Start()
	ag := newAgent(t, srv, "edge1", "", "", "--store", "clickhouse://"+proxy.addr+"/"+db)
	if _, errOut, code := runCLIAs(t, srv, ag.KeyID, ag.Secret, "gateways", "list"); code == 0 {
		t.Fatal("the agent's key lists gateways")
	} else if !strings.Contains(errOut, "UnknownAccessKey") {
		t.Errorf("the agent's key on an account route: %s", errOut)
	}
	ag.Start()

	// One flow log, one gateway on each plane, one log stream.
	ls1 := newStream(t, srv, "both")
	fl := cliOK(t, srv, "flow-logs", "create", "--name", "both", "--output-type", "sls", "--log-stream", ls1,
		"--gateway", pcapGateway(t, srv, "on-serve", "fast", ""), "-o", "id")
	cliOK(t, srv, "flow-logs", "associate", fl, "--gateway", pcapGateway(t, srv, "on-agent", "fast", "edge1"))
	reach(t, srv, ls1, want.times(2), same, time.Minute)
	waitTrue(t, "the flow log available from both planes", func() bool { return flowLogState(t, srv, fl) == "available" })
	agents := agentsList(t, srv)
	if len(agents) != 1 || agents[0]["name"] != "edge1" || agents[0]["last_seen"] == nil ||
		agents[0]["version_applied"].(float64) == 0 || len(agents[0]["errors"].([]any)) != 0 {
		t.Errorf("agents list: %v", agents)
	}
	cliOK(t, srv, "flow-logs", "delete", fl) // so that restarts do not replay it

	// Records landed uncommitted, records spooled, then kill -9.
	ls2 := newStream(t, srv, "crash")
	crash := []string{flowLogTo(t, srv, "crash-a", ls2, pcapGateway(t, srv, "crash-a", "fast", "edge1"))}
	reach(t, srv, ls2, want, same, time.Minute)
	table := db + "." + streamTable(srv.Account, ls2)
	chSelect(t, chURL, "DETACH TABLE "+table+"_marks")
	crash = append(crash, flowLogTo(t, srv, "crash-b", ls2, pcapGateway(t, srv, "crash-b", "fast", "edge1")))
	failures := fmt.Sprintf(`flowlog_store_append_failures_total{log_stream="%s"}`, ls2)
	waitTrue(t, "the second replay's rows in ClickHouse, uncommitted", func() bool {
		return chSelect(t, chURL, "SELECT count() FROM "+table+" WHERE seq > 0") == strconv.Itoa(2*want.flows) &&
			ag.Metrics()[failures] > 0
	})
	proxy.setDown(true)
	crash = append(crash, flowLogTo(t, srv, "crash-c", ls2, pcapGateway(t, srv, "crash-c", "fast", "edge1")))
	queued := fmt.Sprintf(`flowlog_store_queue_records{log_stream="%s"}`, ls2)
	waitTrue(t, "two replays' records spooled on the agent", func() bool { return ag.Metrics()[queued] == float64(2*want.flows) })
	for _, f := range crash {
		waitTrue(t, "the agent's report of "+f, func() bool { return flowLogState(t, srv, f) == "available" })
	}
	ag.Kill()
	for _, f := range crash {
		cliOK(t, srv, "flow-logs", "delete", f)
	}
	chSelect(t, chURL, "ATTACH TABLE "+table+"_marks")
	proxy.setDown(false)
	ag.Start()
	reach(t, srv, ls2, want.times(3), same, time.Minute)
	waitTrue(t, "the deleted flow logs removed once the agent applied it", func() bool {
		return cliOK(t, srv, "flow-logs", "list", "--name", "crash-a", "-o", "id") == ""
	})

	// The server away for 30 s, during a real-time replay on the agent.
	ls3 := newStream(t, srv, "away")
	away := flowLogTo(t, srv, "away", ls3, pcapGateway(t, srv, "away", "realtime", "edge1"))
	waitTrue(t, "the real-time replay running", func() bool { return flowLogState(t, srv, away) == "available" })
	table3 := db + "." + streamTable(srv.Account, ls3)
	stopping := time.Now()
	srv.Stop() // the agent's long poll must not hold the shutdown
	if took := time.Since(stopping); took > 5*time.Second || srv.ExitCode() != 0 {
		t.Errorf("serve took %v to stop, exit code %d", took.Round(time.Millisecond), srv.ExitCode())
	}
	rows := func() int {
		n, _ := strconv.Atoi(chSelect(t, chURL, "SELECT count() FROM "+table3))
		return n
	}
	before := rows()
	time.Sleep(30 * time.Second)
	if after := rows(); after <= before {
		t.Errorf("the agent stored nothing while the server was away: %d rows, then %d", before, after)
	}
	srv.Start()
	// A new flow log reaches the agent, which stores its records and
	// exports them as IPFIX too.
	collector, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer collector.Close()
	ls4 := newStream(t, srv, "back")
	cliOK(t, srv, "flow-logs", "create", "--name", "back", "--output-type", "all", "--log-stream", ls4,
		"--netflow-server-ip", "127.0.0.1", "--netflow-server-port", strconv.Itoa(collector.LocalAddr().(*net.UDPAddr).Port),
		"--netflow-version", "V10", "--gateway", pcapGateway(t, srv, "back", "fast", "edge1"))
	reach(t, srv, ls4, want, same, time.Minute)
	collector.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	if n, _, err := collector.ReadFrom(buf); err != nil || n < 16 || buf[0] != 0 || buf[1] != 10 {
		t.Errorf("no IPFIX message from the agent: %d bytes, %v", n, err)
	}
	// Real time ages flows by the clock: the split into flows may differ,
	// the packets and bytes may not.
	reach(t, srv, ls3, want, sameVolume, 3*time.Minute)
}

// newAgent registers agent name on srv and prepares (without starting) its
// process: `flowlog agent` against srv with its key, data dir and /metrics,
// then extra flags. ns, if set, is the network namespace it runs in, and
// addr, if set, where it serves /metrics.
func newAgent(t *testing.T, srv *testutil.Server, name, ns, addr string, extra ...string) *testutil.Server {
	t.Helper()
	var key struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	if err := json.Unmarshal([]byte(cliOK(t, srv, "agents", "create", "--name", name, "-o", "json")), &key); err != nil || key.Secret == "" {
		t.Fatalf("agents create %s: %v %+v", name, err, key)
	}
	ag := testutil.NewServer(t)
	ag.Netns, ag.KeyID, ag.Secret = ns, key.ID, key.Secret
	if addr != "" {
		ag.Addr, ag.URL = addr, "http://"+addr
	}
	ag.Cmd = append([]string{"agent", "--server", srv.URL, "--name", name, "--data-dir", ag.DataDir,
		"--metrics-listen", ag.Addr}, extra...)
	return ag
}

// newStream makes a log group and stream named name and returns the stream.
func newStream(t *testing.T, srv *testutil.Server, name string) string {
	t.Helper()
	lg := cliOK(t, srv, "log-groups", "create", "--name", name, "-o", "id")
	return cliOK(t, srv, "log-groups", "create-stream", lg, "--name", "flows", "--retention-days", "3", "-o", "id")
}

// pcapGateway makes a gateway replaying demo/lab.pcap at pace, run by
// agent ("" for the server).
func pcapGateway(t *testing.T, srv *testutil.Server, name, pace, agent string) string {
	t.Helper()
	pcap, _ := filepath.Abs("../../demo/lab.pcap")
	return cliOK(t, srv, "gateways", "create", "--name", name, "--kind", "pcap", "--pcap-path", pcap,
		"--pcap-pace", pace, "--agent", agent, "-o", "id")
}

func flowLogTo(t *testing.T, srv *testutil.Server, name, stream, gw string) string {
	t.Helper()
	return cliOK(t, srv, "flow-logs", "create", "--name", name, "--output-type", "sls", "--log-stream", stream,
		"--gateway", gw, "-o", "id")
}

func flowLogState(t *testing.T, srv *testutil.Server, id string) string {
	t.Helper()
	var f struct{ State, StateReason string }
	out := cliOK(t, srv, "flow-logs", "get", id, "-o", "json")
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatal(err)
	}
	return f.State
}

func agentsList(t *testing.T, srv *testutil.Server) []map[string]any {
	t.Helper()
	var out struct{ Agents []map[string]any }
	if err := json.Unmarshal([]byte(cliOK(t, srv, "agents", "list", "-o", "json")), &out); err != nil {
		t.Fatal(err)
	}
	return out.Agents
}

// streamTable is the ClickHouse table of a log stream, as the store names it.
func streamTable(account, stream string) string {
	h := sha256.Sum256([]byte(account + "\x00" + stream))
	return "f_" + hex.EncodeToString(h[:12])
}

func same(a, b streamTotals) bool { return a == b }

// sameVolume compares packets and bytes per protocol, not flows.
func sameVolume(a, b streamTotals) bool {
	strip := func(s streamTotals) string {
		var out []string
		for _, p := range strings.Split(s.text, " ") {
			proto, sums, _ := strings.Cut(p, ":")
			_, rest, _ := strings.Cut(sums, "/")
			out = append(out, proto+":"+rest)
		}
		return strings.Join(out, " ")
	}
	return strip(a) == strip(b)
}

// reach waits up to within for the log stream's totals to match want, and
// checks that they still do 3 s later (nothing stored twice arrives late).
func reach(t *testing.T, srv *testutil.Server, stream string, want streamTotals, match func(a, b streamTotals) bool, within time.Duration) {
	t.Helper()
	now := func() streamTotals {
		return totalsOf(t, func(args ...string) string {
			return cliOK(t, srv, append(append([]string{"query", "--server", srv.URL, "--log-stream", stream}, storeWindow...), args...)...)
		})
	}
	got := now()
	for deadline := time.Now().Add(within); !match(got, want); got = now() {
		if time.Now().After(deadline) {
			t.Fatalf("log stream %s: %s\nwant %s", stream, got, want)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second)
	if got = now(); !match(got, want) {
		t.Fatalf("log stream %s went on to %s\nwant %s", stream, got, want)
	}
}

// tcpProxy forwards TCP connections to a target; down, it refuses them
// and cuts those open, as an unreachable server would look.
type tcpProxy struct {
	addr   string
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newTCPProxy(t *testing.T, listen, target string) *tcpProxy {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &tcpProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tcpProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *tcpProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

// TestAgentStartsWithoutClickHouse starts an agent while ClickHouse does
// not answer: its flow log runs (available), the records are spooled,
// and a kill -9, a stop and restarts while ClickHouse is still away keep
// them;
// once ClickHouse answers, the agent creates the log stream's tables and
// stores one replay's records, each once.
func TestAgentStartsWithoutClickHouse(t *testing.T) {
	chURL := chtest.Start(t)
	const db = "flowlog_late"
	proxy := newTCPProxy(t, "127.0.0.1:0", strings.TrimPrefix(chURL, "http://"))
	proxy.setDown(true)

	emb := testutil.StartServer(t)
	want := settled(t, emb, demoFlowLog(t, emb, "demo"))

	srv := testutil.NewServer(t)
	srv.UseTestKey()
	srv.Args = []string{"--store", "clickhouse://" + strings.TrimPrefix(chURL, "http://") + "/" + db}
	srv.Start()
	ag := newAgent(t, srv, "edge1", "", "", "--store", "clickhouse://"+proxy.addr+"/"+db)
	ag.Start()
	if _, errOut := ag.Logs(); strings.Count(errOut, `msg="log store unreachable`) != 1 {
		t.Errorf("the agent's log, ClickHouse away:\n%s", errOut)
	}

	ls := newStream(t, srv, "late")
	fl := flowLogTo(t, srv, "late", ls, pcapGateway(t, srv, "late", "fast", "edge1"))
	queued := fmt.Sprintf(`flowlog_store_queue_records{log_stream="%s"}`, ls)
	waitTrue(t, "one replay's records spooled", func() bool { return ag.Metrics()[queued] == float64(want.flows) })
	failures := fmt.Sprintf(`flowlog_store_append_failures_total{log_stream="%s"}`, ls)
	if m := ag.Metrics(); m["flowlog_spool_bytes"] == 0 || m[failures] == 0 {
		t.Errorf("records queued: spool bytes %v, append failures %v", m["flowlog_spool_bytes"], m[failures])
	}
	waitTrue(t, "the flow log available", func() bool { return flowLogState(t, srv, fl) == "available" })

	ag.Kill()
	cliOK(t, srv, "flow-logs", "delete", fl) // so that the restart does not replay it
	ag.Start()
	waitTrue(t, "the spooled records kept across the restart", func() bool { return ag.Metrics()[queued] == float64(want.flows) })
	if n := chSelect(t, chURL, "SELECT count() FROM system.tables WHERE database = '"+db+"' AND name = '"+streamTable(srv.Account, ls)+"'"); n != "0" {
		t.Errorf("the log stream's table made while ClickHouse was away: %s", n)
	}
	stopping := time.Now()
	ag.Stop() // not waiting for ClickHouse
	if took := time.Since(stopping); took > 5*time.Second || ag.ExitCode() != 0 {
		t.Errorf("the agent took %v to stop, exit code %d", took.Round(time.Millisecond), ag.ExitCode())
	}
	ag.Start()
	waitTrue(t, "the spooled records kept across a stop", func() bool { return ag.Metrics()[queued] == float64(want.flows) })

	proxy.setDown(false)
	reach(t, srv, ls, want, same, time.Minute)
	waitTrue(t, "the queue empty", func() bool { return ag.Metrics()[queued] == 0 })
	if _, errOut := ag.Logs(); !strings.Contains(errOut, `msg="log store answers again"`) {
		t.Errorf("no word of ClickHouse back:\n%s", errOut)
	}
}
