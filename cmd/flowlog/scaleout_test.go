package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"flowlog/internal/netflow/netflowtest"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/testutil"
)

// site is an agent in a network namespace of its own, on the bridge to the
// host, capturing the traffic of a second namespace (its hosts) on its
// own veth.
type site struct {
	name, ns, hosts string
	addr            string // on the bridge
	capture         string // the interface it captures on, in ns
	target          string // what the hosts ping
	agent           *testutil.Server
}

// TestScaleOut is the scale-out layout on one machine: serve as the control
// plane on a ClickHouse cluster (two replicas over ZooKeeper), and two
// agents in network namespaces of their own, each capturing its own veth
// and both receiving one router (softflowd, IPFIX) side by side. It shows:
//   - one flow log over a gateway on each agent answers one query with
//     both agents' traffic, exactly what was sent;
//   - the router's datagrams spread over both agents, the templates only to
//     the first, are all decoded (the second holds its data until the
//     first shares the templates), as nfcapd decodes the same export;
//   - an agent killed (-9), its templates gone, and restarted decodes the
//     router's data from its first datagram, from the templates shared;
//   - with a ClickHouse replica killed, and with the control plane stopped
//     for 30 s, the agents go on storing; nothing is lost and nothing
//     stored twice, on either replica.
func TestScaleOut(t *testing.T) {
	testutil.Root(t)
	for _, tool := range []string{"ip", "ping", "softflowd"} {
		testutil.Peer(t, tool)
	}
	cluster := chtest.StartCluster(t)
	const db = "flowlog_scaleout"
	const hostIP = "10.250.0.1"
	br := testutil.Bridge(t, hostIP+"/24")

	// ClickHouse as the agents reach it, through the bridge.
	var direct, bridged []string
	for _, u := range cluster.URLs {
		direct = append(direct, strings.TrimPrefix(u, "http://"))
		bridged = append(bridged, newTCPProxy(t, hostIP+":0", strings.TrimPrefix(u, "http://")).addr)
	}
	store := func(hosts []string) string {
		return "clickhouse://" + strings.Join(hosts, ",") + "/" + db + "?cluster=" + chtest.ClusterName
	}
	srv := testutil.NewServer(t)
	srv.Addr = fmt.Sprintf("%s:%d", hostIP, testutil.FreeTCPPort(t))
	srv.URL = "http://" + srv.Addr
	srv.UseTestKey()
	srv.Args = []string{"--store", store(direct)}
	srv.Start()

	sites := []*site{{name: "edge1"}, {name: "edge2"}}
	for i, s := range sites {
		s.ns, s.hosts = testutil.Netns(t), testutil.Netns(t)
		s.addr = fmt.Sprintf("10.250.0.%d", 11+i)
		testutil.BridgePort(t, br, s.ns, s.addr+"/24")
		s.capture, _ = testutil.Veth(t, s.ns, fmt.Sprintf("10.251.%d.1/24", i), s.hosts, fmt.Sprintf("10.251.%d.2/24", i))
		s.target = fmt.Sprintf("10.251.%d.1", i)
		s.agent = newAgent(t, srv, s.name, s.ns, s.addr+":9464", "--netflow-listen", s.addr+":2055", "--store", store(bridged))
		s.agent.Start()
		t.Cleanup(func() {
			if t.Failed() {
				_, logs := s.agent.Logs()
				t.Logf("%s's log:\n%s", s.name, tail(logs, 60))
				for k, v := range s.agent.Metrics() {
					if strings.Contains(k, "exporter") || strings.Contains(k, "collector") {
						t.Logf("%s: %s %v", s.name, k, v)
					}
				}
			}
		})
	}

	// One flow log over a capture gateway on each agent.
	sitesStream := newStream(t, srv, "sites")
	var gws []string
	for _, s := range sites {
		gw := cliOK(t, srv, "gateways", "create", "--name", s.name, "--kind", "capture", "--agent", s.name, "-o", "id")
		cliOK(t, srv, "gateways", "attach", gw, "--name", "lan", "--interface", s.capture)
		gws = append(gws, gw)
	}
	fl := cliOK(t, srv, "flow-logs", "create", "--name", "sites", "--output-type", "sls", "--log-stream", sitesStream,
		"--inactive-aging", "10", "--gateway", gws[0], "-o", "id")
	cliOK(t, srv, "flow-logs", "associate", fl, "--gateway", gws[1])
	waitTrue(t, "the flow log available on both agents", func() bool { return flowLogState(t, srv, fl) == "available" })
	var echoes int
	ping := func(count ...int) {
		for i, s := range sites {
			testutil.InNetns(t, s.hosts, "ping", "-q", "-c", strconv.Itoa(count[i]), "-i", "0.02", s.target)
			echoes += count[i]
		}
	}
	sent := func() streamTotals { // echo requests and replies, 84 IP bytes each
		return streamTotals{text: fmt.Sprintf("1:0/%d/%d", 2*echoes, 2*echoes*84)}
	}
	ping(20, 30)
	reach(t, srv, sitesStream, sent(), sameVolume, time.Minute)

	// The router, received by both agents side by side.
	routerStream := newStream(t, srv, "router")
	var exps []string
	for _, s := range sites {
		exps = append(exps, cliOK(t, srv, "gateways", "create", "--name", "router", "--kind", "exporter",
			"--exporter-addr", hostIP, "--agent", s.name, "-o", "id"))
	}
	rfl := cliOK(t, srv, "flow-logs", "create", "--name", "router", "--output-type", "sls", "--log-stream", routerStream,
		"--gateway", exps[0], "-o", "id")
	cliOK(t, srv, "flow-logs", "associate", rfl, "--gateway", exps[1])
	waitTrue(t, "the router's flow log available on both agents", func() bool { return flowLogState(t, srv, rfl) == "available" })
	nfPort, stopNfcapd := testutil.StartNfcapd(t)
	ecmp := startECMP(t, hostIP, sites[0].addr+":2055", sites[1].addr+":2055")
	softflowd(t, fmt.Sprintf("127.0.0.1:%d", nfPort))
	nf, _ := stopNfcapd()
	once := nfdumpTotals(nf)
	softflowd(t, ecmp.addr)
	exporter := fmt.Sprintf(`{exporter="%s"}`, hostIP)
	waitTrue(t, "the export spread over both agents", func() bool { return ecmp.sent[0].Load()+ecmp.sent[1].Load() >= ecmp.read.Load() })
	if ecmp.sent[0].Load() == 0 || ecmp.sent[1].Load() == 0 {
		t.Fatalf("datagrams to the agents: %d with templates, %d without", ecmp.sent[0].Load(), ecmp.sent[1].Load())
	}
	reach(t, srv, routerStream, once, same, time.Minute)
	if m := sites[1].agent.Metrics(); m["flowlog_exporter_held_sets_total"+exporter] == 0 ||
		m["flowlog_exporter_dropped_sets_total"+exporter] != 0 {
		t.Errorf("the second agent's collector did not wait for the shared templates: %v", m)
	}

	// The second agent killed, its templates gone, restarted: it decodes
	// from its first datagram with the templates the first one shared.
	sites[1].agent.Kill()
	if err := os.RemoveAll(filepath.Join(sites[1].agent.DataDir, "templates")); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	sites[1].agent.Start()
	waitTrue(t, "the restarted agent's report", func() bool { return agentApplied(t, srv, sites[1].name, restarted) })
	softflowd(t, ecmp.addr)
	reach(t, srv, routerStream, once.times(2), same, time.Minute)
	if m := sites[1].agent.Metrics(); m["flowlog_exporter_records_total"+exporter] == 0 ||
		m["flowlog_exporter_held_sets_total"+exporter] != 0 {
		t.Errorf("the restarted agent waited for templates: %v", m)
	}

	// A replica killed: the agents and the server go on with the other.
	cluster.Kill(0)
	ping(15, 25)
	reach(t, srv, sitesStream, sent(), sameVolume, time.Minute)
	cluster.Start(t, 0)

	// The control plane away for 30 s: the agents go on storing.
	table := db + "." + streamTable(srv.Account, sitesStream)
	rows := func() int {
		n, _ := strconv.Atoi(chSelect(t, cluster.URLs[1], "SELECT count() FROM "+table))
		return n
	}
	before := rows()
	stopped := time.Now()
	srv.Stop()
	ping(40, 60)
	waitTrue(t, "the agents' records while the server is away", func() bool { return rows() > before })
	time.Sleep(30*time.Second - time.Since(stopped))
	srv.Start()
	reach(t, srv, sitesStream, sent(), sameVolume, time.Minute)
	for _, s := range sites {
		waitTrue(t, s.name+" on the current version", func() bool { return agentApplied(t, srv, s.name, time.Time{}) })
	}

	// Each record once, on both replicas.
	for _, ls := range []string{sitesStream, routerStream} {
		q := "SELECT count(), uniqExact(seq) FROM " + db + "." + streamTable(srv.Account, ls)
		want := chSelect(t, cluster.URLs[1], q)
		if n, u, _ := strings.Cut(want, "\t"); n != u || n == "0" {
			t.Errorf("log stream %s: %s rows, %s distinct", ls, n, u)
		}
		waitTrue(t, "the first replica caught up with "+ls, func() bool { return chSelect(t, cluster.URLs[0], q) == want })
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// agentApplied says whether agent name reported the desired state's
// current version, since a time if given.
func agentApplied(t *testing.T, srv *testutil.Server, name string, since time.Time) bool {
	var out struct {
		Version uint64
		Agents  []map[string]any
	}
	if err := json.Unmarshal([]byte(cliOK(t, srv, "agents", "list", "-o", "json")), &out); err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Agents {
		if a["name"] == name {
			v, _ := a["version_applied"].(float64)
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(a["reported_at"]))
			return uint64(v) == out.Version && !at.Before(since)
		}
	}
	return false
}

// softflowd exports demo/lab.pcap as IPFIX to addr.
func softflowd(t *testing.T, addr string) {
	t.Helper()
	pcap, _ := filepath.Abs("../../demo/lab.pcap")
	// Absolute times (-A milli): from a file, softflowd's relative ones
	// count from its own start.
	out, err := exec.Command("softflowd", "-d", "-r", pcap, "-v", "10", "-A", "milli", "-n", addr, "-m", "262144").CombinedOutput()
	if err != nil {
		t.Fatalf("softflowd: %v\n%s", err, out)
	}
}

// nfdumpTotals are nfdump's flows as streamTotals: per protocol, flows,
// packets and bytes.
func nfdumpTotals(flows []testutil.NfdumpFlow) streamTotals {
	by := map[string][3]uint64{}
	for _, f := range flows {
		p := strconv.Itoa(int(f.Proto))
		s := by[p]
		by[p] = [3]uint64{s[0] + 1, s[1] + f.Packets, s[2] + f.Bytes}
	}
	var protos, parts []string
	for p := range by {
		protos = append(protos, p)
	}
	slices.Sort(protos)
	for _, p := range protos {
		parts = append(parts, fmt.Sprintf("%s:%d/%d/%d", p, by[p][0], by[p][1], by[p][2]))
	}
	return streamTotals{flows: len(flows), text: strings.Join(parts, " ")}
}

// ecmp spreads a router's datagrams over two collectors from one source
// address, as anycast or ECMP next hops would: those carrying templates
// to the first, the others to the second.
type ecmp struct {
	addr string
	read atomic.Int64
	sent [2]atomic.Int64
}

func startECMP(t *testing.T, ip string, first, second string) *ecmp {
	conn, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var to [2]net.Addr
	for i, a := range []string{first, second} {
		if to[i], err = net.ResolveUDPAddr("udp", a); err != nil {
			t.Fatal(err)
		}
	}
	e := &ecmp{addr: conn.LocalAddr().String()}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			e.read.Add(1)
			i := 1
			if netflowtest.HasTemplates(buf[:n]) {
				i = 0
			}
			if _, err := conn.WriteTo(buf[:n], to[i]); err == nil {
				e.sent[i].Add(1)
			}
		}
	}()
	return e
}
