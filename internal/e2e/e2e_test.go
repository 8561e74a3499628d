package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/sdktest"
	"flowlog/internal/client"
	"flowlog/internal/flow"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// world is a running `flowlog serve` in this namespace and a peer namespace
// joined to it by three veth links: 10.240.N.1 here, 10.240.N.2 there.
type world struct {
	t     *testing.T
	srv   *testutil.Server
	api   *client.Client
	peer  string
	hosts [4]string // host-side interface of link N (1..3)
	peers [4]string // peer-side interface of link N
}

func newWorld(t *testing.T, collectorPort int) *world {
	w := &world{t: t, peer: testutil.Netns(t)}
	for n := 1; n <= 3; n++ {
		w.hosts[n], w.peers[n] = testutil.Veth(t, "", fmt.Sprintf("10.240.%d.1/24", n),
			w.peer, fmt.Sprintf("10.240.%d.2/24", n))
	}
	w.srv = testutil.StartServer(t, fmt.Sprintf("FLOWLOG_NETFLOW_LISTEN=0.0.0.0:%d", collectorPort))
	w.api = client.New(w.srv.URL, w.srv.KeyID, w.srv.Secret)
	return w
}

// call sends a native API request and returns the decoded answer.
func (w *world) call(method, path string, body any) map[string]any {
	w.t.Helper()
	var out map[string]any
	if err := w.api.JSON(context.Background(), method, path, nil, body, &out); err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	return out
}

func (w *world) id(method, path string, body any) string {
	return w.call(method, path, body)["id"].(string)
}

// records returns every record of a log stream.
func (w *world) records(stream string) []flow.Record {
	w.t.Helper()
	var resp query.Response
	req := query.Request{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour), Limit: 10000}
	if err := w.api.JSON(context.Background(), "POST", "/v1/log-streams/"+stream+"/query", nil, req, &resp); err != nil {
		w.t.Fatalf("query %s: %v", stream, err)
	}
	return resp.Records
}

// key names a unidirectional flow as tshark and nfdump can name it too;
// ICMP "ports" are 0 and type<<8|code.
func key(src string, sport uint16, dst string, dport uint16, proto uint8) string {
	return fmt.Sprintf("%s:%d>%s:%d/%d", src, sport, dst, dport, proto)
}

// tally sums packets per flow of the records of one flow log that keep
// passes.
func tally(recs []flow.Record, flowLog string, keep func(k string) bool) map[string]uint64 {
	m := map[string]uint64{}
	for _, r := range recs {
		if r.FlowLogID != flowLog || r.LogStatus != flow.StatusOK {
			continue
		}
		if k := key(r.SrcAddr.String(), r.SrcPort, r.DstAddr.String(), r.DstPort, r.Protocol); keep(k) {
			m[k] += r.Packets
		}
	}
	return m
}

// sniff runs dumpcap on a host interface; stop ends it and returns what
// tshark counts per flow in what it captured.
func sniff(t *testing.T, iface string) (pcap string, stop func(keep func(string) bool) map[string]uint64) {
	pcap = filepath.Join(t.TempDir(), iface+".pcap")
	cmd := exec.Command("dumpcap", "-q", "-P", "-i", iface, "-w", pcap)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return pcap, func(keep func(string) bool) map[string]uint64 {
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		m := map[string]uint64{}
		for k, n := range testutil.CapTruth(t, pcap) {
			if keep(k) {
				m[k] = n
			}
		}
		return m
	}
}

// traffic sends ICMP, UDP and TCP from the peer to 10.240.<link>.1, from
// source address src (one of the peer's) and source ports base+1, base+2.
func (w *world) traffic(link int, src string, base int) {
	w.t.Helper()
	dst := fmt.Sprintf("10.240.%d.1", link)
	testutil.InNetns(w.t, w.peer, "ping", "-c", "4", "-i", "0.1", "-q", "-I", src, dst)
	udpSrv := exec.Command("nc", "-u", "-l", dst, strconv.Itoa(base+1))
	tcpSrv := exec.Command("nc", "-l", dst, strconv.Itoa(base+2))
	tcpSrv.Stdout = io.Discard
	udpSrv.Start()
	tcpSrv.Start()
	defer func() { udpSrv.Process.Kill(); udpSrv.Wait() }()
	time.Sleep(200 * time.Millisecond)
	udp := exec.Command("ip", "netns", "exec", w.peer, "nc", "-u", "-q", "0", "-s", src, "-p", strconv.Itoa(base+1),
		dst, strconv.Itoa(base+1))
	udp.Stdin = strings.NewReader("one datagram\n")
	if out, err := udp.CombinedOutput(); err != nil {
		w.t.Fatalf("nc udp: %v %s", err, out)
	}
	tcp := exec.Command("ip", "netns", "exec", w.peer, "nc", "-N", "-s", src, "-p", strconv.Itoa(base+2),
		dst, strconv.Itoa(base+2))
	tcp.Stdin = strings.NewReader(strings.Repeat("flowlog ", 5000))
	if out, err := tcp.CombinedOutput(); err != nil {
		w.t.Fatalf("nc tcp: %v %s", err, out)
	}
	tcpSrv.Wait()
}

// waitEqual polls until got() equals want, and fails with both if it never
// does.
func waitEqual(t *testing.T, what string, within time.Duration, want map[string]uint64, got func() map[string]uint64) {
	t.Helper()
	var g map[string]uint64
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(time.Second) {
		if g = got(); maps.Equal(g, want) {
			return
		}
	}
	t.Errorf("%s: packets per flow differ from what was sent\n got: %s\nsent: %s", what, show(g), show(want))
}

func show(m map[string]uint64) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// waitFor polls cond every 100 ms for up to within.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestEndToEnd is the whole job on real traffic: a Huawei-SDK flow log to a
// log stream on link 1; an Alibaba-SDK flow log (OutputType=all, V10) to
// the store and to nfcapd on link 2, re-timed and then deactivated; and an
// exporter gateway fed by softflowd watching link 3.
func TestEndToEnd(t *testing.T) {
	testutil.Root(t)
	for _, tool := range []string{"ip", "ping", "nc", "dumpcap", "tshark", "softflowd"} {
		testutil.Peer(t, tool)
	}
	nfPort, nfStop := testutil.StartNfcapd(t)
	collector := testutil.FreeUDPPort(t)
	w := newWorld(t, collector)
	testutil.InNetns(t, w.peer, "ip", "addr", "add", "10.240.1.3/24", "dev", w.peers[1])
	testutil.InNetns(t, w.peer, "ip", "addr", "add", "10.240.2.3/24", "dev", w.peers[2])
	testutil.InNetns(t, w.peer, "ip", "addr", "add", "10.240.2.4/24", "dev", w.peers[2])

	// Gateways: two capture gateways on links 1 and 2, and an exporter
	// gateway for the softflowd metering link 3.
	er1 := w.id("POST", "/v1/gateways", map[string]any{"name": "er1", "kind": "capture"})
	att1 := w.id("POST", "/v1/gateways/"+er1+"/attachments", map[string]any{"name": "l1", "interface": w.hosts[1]})
	sag := w.id("POST", "/v1/gateways", map[string]any{"name": "sag", "kind": "capture"})
	w.id("POST", "/v1/gateways/"+sag+"/attachments", map[string]any{"name": "l2", "interface": w.hosts[2]})
	router := w.id("POST", "/v1/gateways", map[string]any{"name": "router", "kind": "exporter", "exporter_addr": "10.240.3.2"})
	lg := w.id("POST", "/v1/log-groups", map[string]any{"name": "lts"})
	stream1 := w.id("POST", "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "er"})
	stream3 := w.id("POST", "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "router"})

	// Huawei: a flow log on the attachment of link 1, to an LTS stream.
	hw := sdktest.Huawei(t, w.srv.URL, w.srv.KeyID, w.srv.Secret, w.srv.Account)
	hres, err := hw.CreateFlowLog(&model.CreateFlowLogRequest{ErId: er1, Body: &model.CreateFlowLogRequestBody{
		FlowLog: &model.FlowLogRequest{Name: "hw", ResourceType: model.GetFlowLogRequestResourceTypeEnum().ATTACHMENT,
			ResourceId: att1, LogGroupId: lg, LogStreamId: stream1,
			LogStoreType: model.GetFlowLogRequestLogStoreTypeEnum().LTS}}})
	if err != nil {
		t.Fatal(err)
	}
	hwID := hres.FlowLog.Id
	waitFor(t, "the Huawei flow log to become available", 5*time.Second, func() bool {
		res, err := hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: er1, FlowLogId: hwID})
		return err == nil && res.FlowLog.State == "available"
	})

	// Alibaba: OutputType=all, IPFIX to nfcapd, bound to the SAG of link 2.
	ali := sdktest.Aliyun(t, strings.TrimPrefix(w.srv.URL, "http://"), w.srv.KeyID, w.srv.Secret)
	creq := smartag.CreateCreateFlowLogRequest()
	creq.Name, creq.OutputType, creq.NetflowVersion = "sag", "all", "V10"
	creq.NetflowServerIp, creq.NetflowServerPort = "127.0.0.1", requests.NewInteger(nfPort)
	creq.SlsRegionId, creq.ProjectName, creq.LogstoreName = "local", "sag-project", "sag-flows"
	creq.InactiveAging = requests.NewInteger(10)
	cres, err := ali.CreateFlowLog(creq)
	if err != nil {
		t.Fatal(err)
	}
	aliID := cres.FlowLogId
	areq := smartag.CreateAssociateFlowLogRequest()
	areq.FlowLogId, areq.SmartAGId = aliID, sag
	if _, err := ali.AssociateFlowLog(areq); err != nil {
		t.Fatal(err)
	}
	stream2 := w.call("GET", "/v1/flow-logs/"+aliID, nil)["log_stream_id"].(string)

	// Native API: the exporter gateway's flow log.
	exID := w.id("POST", "/v1/flow-logs", map[string]any{"name": "router", "output_type": "sls",
		"log_stream_id": stream3, "targets": []map[string]any{{"gateway_id": router}}})
	for _, id := range []string{aliID, exID} {
		waitFor(t, id+" to become available", 5*time.Second, func() bool {
			return w.call("GET", "/v1/flow-logs/"+id, nil)["state"] == "available"
		})
	}

	// A long-running flow on link 2, then ActiveAging 300 → 60.
	long := exec.Command("ip", "netns", "exec", w.peer, "ping", "-q", "-i", "0.5", "-c", "170", "-I", "10.240.2.3", "10.240.2.1")
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	longEnd := time.Now().Add(85 * time.Second) // 170 echo requests, 0.5 s apart
	t.Cleanup(func() { long.Process.Kill(); long.Wait() })
	time.Sleep(2 * time.Second)
	mreq := smartag.CreateModifyFlowLogAttributeRequest()
	mreq.FlowLogId, mreq.ActiveAging = aliID, requests.NewInteger(60)
	if _, err := ali.ModifyFlowLogAttribute(mreq); err != nil {
		t.Fatal(err)
	}
	longStart := time.Now()

	// Bursts of ICMP, UDP and TCP on every link, with what was sent
	// counted by dumpcap on the same interfaces.
	not := func(addrs ...string) func(string) bool {
		return func(k string) bool {
			for _, a := range addrs {
				if strings.Contains(k, a+":") {
					return false
				}
			}
			return !strings.Contains(k, fmt.Sprintf(":%d/17", collector)) // softflowd's export
		}
	}
	stops := [4]func(func(string) bool) map[string]uint64{}
	pcaps := [4]string{}
	for n := 1; n <= 3; n++ {
		pcaps[n], stops[n] = sniff(t, w.hosts[n])
	}
	time.Sleep(time.Second) // dumpcap has no ready signal
	for n := 1; n <= 3; n++ {
		w.traffic(n, fmt.Sprintf("10.240.%d.2", n), 41000+10*n)
	}
	sent := [4]map[string]uint64{}
	for n := 1; n <= 3; n++ {
		sent[n] = stops[n](not("10.240.2.3"))
	}
	// The router of link 3 is softflowd, exporting IPFIX from the peer's
	// address what it meters in link 3's capture. Live, softflowd 1.1.0
	// never wakes up on this libpcap: it polls the TPACKET_V3 socket with
	// no timeout and processes nothing. From a file, its relative times
	// count from its own start and wrap below zero, hence absolute times
	// (-A milli).
	sf := exec.Command("ip", "netns", "exec", w.peer, "softflowd", "-d", "-r", pcaps[3], "-v", "10", "-A", "milli",
		"-n", fmt.Sprintf("10.240.3.1:%d", collector), "-m", "262144")
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("softflowd: %v\n%s", err, out)
	}

	waitEqual(t, "Huawei flow log, store", 30*time.Second, sent[1], func() map[string]uint64 {
		return tally(w.records(stream1), hwID, not("10.240.1.3"))
	})
	waitEqual(t, "Alibaba flow log, store", 30*time.Second, sent[2], func() map[string]uint64 {
		return tally(w.records(stream2), aliID, not("10.240.2.3", "10.240.2.4"))
	})
	waitEqual(t, "exporter gateway fed by softflowd, store", 30*time.Second, sent[3], func() map[string]uint64 {
		return tally(w.records(stream3), exID, not())
	})
	for _, r := range w.records(stream3) {
		if r.AccountID != w.srv.Account || r.GatewayID != router || r.FlowLogID != exID || r.InterfaceID != "" {
			t.Errorf("exporter record not attributed to gateway %s: %+v", router, r)
			break
		}
	}

	// The long flow is reported at the new active period, while it runs.
	var first flow.Record
	waitFor(t, "the long flow's active-timeout record", 75*time.Second, func() bool {
		for _, r := range w.records(stream2) {
			if r.SrcAddr.String() == "10.240.2.3" && r.Protocol == 1 {
				first = r
				return true
			}
		}
		return false
	})
	if d := time.Duration(first.End-first.Start) * time.Millisecond; d < 55*time.Second || d > 61*time.Second ||
		first.EndReason != flow.EndActive {
		t.Errorf("long flow reported after %v (end reason %v), want 60 s active timeout", d, first.EndReason)
	}
	if reported := time.UnixMilli(first.End); reported.Before(longStart.Add(50 * time.Second)) {
		t.Errorf("long flow reported at %v, before the new period could end", reported)
	}
	if reported := time.UnixMilli(first.End); reported.After(longEnd.Add(-10 * time.Second)) {
		t.Errorf("long flow reported at %v, too close to its end at %v to tell an active timeout", reported, longEnd)
	}

	// Deactivated, the Alibaba flow log delivers nothing more, anywhere;
	// the Huawei one goes on.
	dreq := smartag.CreateDeactiveFlowLogRequest()
	dreq.FlowLogId = aliID
	if _, err := ali.DeactiveFlowLog(dreq); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	deactivated := time.Now()
	w.traffic(2, "10.240.2.4", 42000)
	w.traffic(1, "10.240.1.3", 42100)
	waitFor(t, "the Huawei flow log's later traffic", 30*time.Second, func() bool {
		return len(tally(w.records(stream1), hwID, func(k string) bool { return strings.HasPrefix(k, "10.240.1.3:") })) >= 3
	})
	time.Sleep(2 * time.Second) // the Alibaba flow log ages out its flows sooner (10 s) than Huawei's (15 s)
	for _, r := range w.records(stream2) {
		if r.FlowLogID == aliID && (r.SrcAddr.String() == "10.240.2.4" || r.End > deactivated.UnixMilli()) {
			t.Errorf("record after DeactiveFlowLog: %+v", r)
		}
	}

	// nfcapd saw, per flow, what was sent on link 2, and nothing after the
	// deactivation.
	flows, _ := nfStop()
	got := map[string]uint64{}
	keep := not("10.240.2.3")
	for _, f := range flows {
		k := key(f.Src4, f.SrcPort, f.Dst4, f.DstPort, f.Proto)
		if f.Proto == 1 {
			k = key(f.Src4, 0, f.Dst4, uint16(f.ICMPType)<<8|uint16(f.ICMPCode), 1)
		}
		if strings.Contains(k, "10.240.2.4") {
			t.Errorf("nfcapd got a flow after DeactiveFlowLog: %s", k)
		}
		if keep(k) && !strings.Contains(k, "10.240.2.4") {
			got[k] += f.Packets
		}
	}
	if !maps.Equal(got, sent[2]) {
		t.Errorf("nfdump: packets per flow differ from what was sent\n got: %s\nsent: %s", show(got), show(sent[2]))
	}

	// Metrics account for both outputs and the exporter.
	resp, err := http.Get(w.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`flowlog_flow_log_records_total{flow_log=%q,output="sls"}`, hwID),
		`flowlog_exporter_packets_total{exporter="10.240.3.2"}`,
		fmt.Sprintf(`flowlog_store_committed_records_total{log_stream=%q}`, stream3),
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
