package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flowlog/internal/control"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/spool"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// rig is a control plane, a real DuckDB store and a Plane over them, driven
// step by step by the test (reconcile, age) instead of by Run.
type rig struct {
	t       *testing.T
	ctx     context.Context
	svc     *control.Service
	st      *duckdb.Store
	sp      *spool.Spool
	p       *Plane
	account string
}

func newRig(t *testing.T, netflowListen string) *rig {
	t.Helper()
	return newRigPcap(t, netflowListen, "")
}

// newRigPcap is newRig with a pcap directory for the accounts other than
// the bootstrap one.
func newRigPcap(t *testing.T, netflowListen, pcapDir string) *rig {
	t.Helper()
	dir := t.TempDir()
	svc, err := control.New(control.Config{DataDir: dir, PcapDir: pcapDir, Quota: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	st, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	boot, err := svc.EnsureBootstrap(context.Background(), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, "spool"), Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Control: svc, Store: st, Spool: sp, NetflowListen: netflowListen, PcapDir: pcapDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.shutdown)
	return &rig{t: t, ctx: context.Background(), svc: svc, st: st, sp: sp, p: p, account: boot.Key.AccountID}
}

func ptr[T any](v T) *T { return &v }

func (r *rig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) gateway(in control.GatewayInput) control.Gateway {
	r.t.Helper()
	in.Name = ptr("gw")
	g, err := r.svc.CreateGateway(r.ctx, r.account, in)
	r.must(err)
	return g
}

func (r *rig) attach(gw string, in control.AttachmentInput) control.Attachment {
	r.t.Helper()
	in.Name = ptr("att")
	a, err := r.svc.CreateAttachment(r.ctx, r.account, gw, in)
	r.must(err)
	return a
}

func (r *rig) stream() string {
	r.t.Helper()
	g, err := r.svc.CreateLogGroup(r.ctx, r.account, ptr(control.NewAccountID()[:8]))
	r.must(err)
	s, err := r.svc.CreateLogStream(r.ctx, r.account, g.ID, ptr("flows"), nil)
	r.must(err)
	return s.ID
}

func (r *rig) flowLog(in control.FlowLogInput) control.FlowLog {
	r.t.Helper()
	in.Name = ptr("fl")
	f, _, err := r.svc.CreateFlowLog(r.ctx, r.account, in)
	r.must(err)
	return f
}

// step applies the control plane's desired state and reports, as Run does
// when the version moves.
func (r *rig) step() {
	r.t.Helper()
	r.p.sync(r.ctx)
	if r.p.stale || r.p.reported == nil {
		r.t.Fatal("desired state not applied or not reported")
	}
}

// records ages every meter to at, writes out the log stream's queue and
// returns the stream's records.
func (r *rig) records(stream string, at time.Time) []flow.Record {
	r.t.Helper()
	r.p.age(at)
	id := store.StreamID{Account: r.account, Stream: stream}
	if s := r.p.streams[id]; s != nil {
		r.must(s.pipe.Flush(r.ctx))
	}
	resp, err := r.st.Query(r.ctx, id, query.Request{Since: time.Unix(0, 0), Until: time.Now().Add(24 * time.Hour),
		Limit: 10000})
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.Records
}

func (r *rig) state(id string) control.FlowLog {
	r.t.Helper()
	f, err := r.svc.GetFlowLog(r.ctx, r.account, id)
	r.must(err)
	return f
}

// icmpPackets sums the packets of ICMP records from src, by flow log.
func icmpPackets(recs []flow.Record, src string) (n uint64) {
	for _, x := range recs {
		if x.Protocol == 1 && x.SrcAddr.String() == src {
			n += x.Packets
		}
	}
	return n
}

// ringDelay is more than the capture ring's block timeout.
const ringDelay = 300 * time.Millisecond

// quietLink makes an interface that carries no traffic: one end of a veth
// pair, left down.
func quietLink(t *testing.T, name string) {
	testutil.Run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
}

// captureLink joins a peer namespace to this one by a veth pair,
// 10.<n>.0.1 here and 10.<n>.0.2 there, and makes a capture gateway
// attached to the near end.
func (r *rig) captureLink(n int) (peer string, gw control.Gateway, att control.Attachment) {
	r.t.Helper()
	peer = testutil.Netns(r.t)
	host, _ := testutil.Veth(r.t, "", fmt.Sprintf("10.%d.0.1/24", n), peer, fmt.Sprintf("10.%d.0.2/24", n))
	gw = r.gateway(control.GatewayInput{Kind: ptr(control.KindCapture)})
	return peer, gw, r.attach(gw.ID, control.AttachmentInput{Interface: &host})
}

// ping sends count echo requests from peer to dst, then waits for the
// capture ring to hand over its last block.
func ping(t *testing.T, peer, dst string, count int) {
	testutil.InNetns(t, peer, "ping", "-c", fmt.Sprint(count), "-i", "0.1", "-q", dst)
	time.Sleep(ringDelay)
}

// TestCaptureLifecycle captures on a veth end in this namespace while a
// peer namespace pings across it, and follows one flow log through enable,
// disable, enable and delete.
func TestCaptureLifecycle(t *testing.T) {
	testutil.Root(t)
	r := newRig(t, "")
	peer, gw, att := r.captureLink(241)
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		InactiveAging: ptr(10), Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	if got := r.state(f.ID); got.State != control.StateAvailable || got.StateReason != "" {
		t.Fatalf("state %s %q, want available", got.State, got.StateReason)
	}
	ping := func(n int) { ping(t, peer, "10.241.0.1", n) }

	ping(3)
	recs := r.records(ls, time.Now().Add(30*time.Second))
	if got := icmpPackets(recs, "10.241.0.2"); got != 3 {
		t.Fatalf("echo requests recorded: %d, want 3\n%v", got, recs)
	}
	for _, x := range recs {
		if x.AccountID != r.account || x.FlowLogID != f.ID || x.GatewayID != gw.ID || x.InterfaceID != att.ID {
			t.Fatalf("record not attributed to its flow log and attachment: %+v", x)
		}
	}

	_, _, err := r.svc.SetEnabled(r.ctx, r.account, f.ID, false)
	r.must(err)
	r.step()
	ping(2)
	if got := icmpPackets(r.records(ls, time.Now().Add(60*time.Second)), "10.241.0.2"); got != 3 {
		t.Fatalf("after disable, echo requests recorded: %d, want still 3", got)
	}

	_, _, err = r.svc.SetEnabled(r.ctx, r.account, f.ID, true)
	r.must(err)
	r.step()
	ping(4)
	// Delete before the flow ages out: what is in flight is still delivered.
	_, err = r.svc.DeleteFlowLog(r.ctx, r.account, f.ID, control.DeleteRules{})
	r.must(err)
	r.step()
	if len(r.p.flows) != 0 || len(r.p.taps) != 0 {
		t.Fatalf("deleted flow log still runs: %d flows, %d taps", len(r.p.flows), len(r.p.taps))
	}
	recs = r.records(ls, time.Now())
	if got := icmpPackets(recs, "10.241.0.2"); got != 7 {
		t.Fatalf("after enable and delete, echo requests recorded: %d, want 3+4", got)
	}
	if _, err := r.svc.GetFlowLog(r.ctx, r.account, f.ID); err == nil {
		t.Fatal("deleted flow log not purged")
	}
}

// TestFailureReasons shows the reasons a flow log fails with, and that it
// recovers once the cause is fixed.
func TestFailureReasons(t *testing.T) {
	testutil.Root(t)
	r := newRig(t, "")
	iface := testutil.UniqueName("fld")
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindCapture)})
	r.attach(gw.ID, control.AttachmentInput{Interface: &iface})
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	got := r.state(f.ID)
	if got.State != control.StateFailed || got.StateReason != "interface "+iface+" does not exist on this host" {
		t.Fatalf("missing interface: state %s %q", got.State, got.StateReason)
	}
	quietLink(t, iface)
	r.step()
	if got := r.state(f.ID); got.State != control.StateAvailable {
		t.Fatalf("interface created: state %s %q, want available", got.State, got.StateReason)
	}

	nf := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputNetflow), NetflowServerIP: ptr("0.0.0.0"),
		Targets: []control.Target{{GatewayID: gw.ID}}})
	pg := r.gateway(control.GatewayInput{Kind: ptr(control.KindPcap), PcapPath: ptr("/nonexistent.pcap")})
	pf := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: ptr(r.stream()),
		Targets: []control.Target{{GatewayID: pg.ID}}})
	eg := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr("192.0.2.1")})
	ef := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: ptr(r.stream()),
		Targets: []control.Target{{GatewayID: eg.ID}}})
	r.step()
	for id, want := range map[string]string{
		nf.ID: `netflow collector address "0.0.0.0" is not a host address`,
		pf.ID: "pcap file /nonexistent.pcap does not exist",
		ef.ID: "the collector is off",
	} {
		if got := r.state(id); got.State != control.StateFailed || !strings.Contains(got.StateReason, want) {
			t.Errorf("%s: state %s %q, want failed with %q", id, got.State, got.StateReason, want)
		}
	}
}

// TestNoData reports an attachment without traffic once per aggregation
// interval.
func TestNoData(t *testing.T) {
	testutil.Root(t)
	r := newRig(t, "")
	iface := testutil.UniqueName("fld")
	quietLink(t, iface)
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindCapture)})
	att := r.attach(gw.ID, control.AttachmentInput{Interface: &iface})
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		AggregationInterval: ptr(60), Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	start := time.Now()
	if recs := r.records(ls, start.Add(59*time.Second)); len(recs) != 0 {
		t.Fatalf("records before an interval ended: %v", recs)
	}
	recs := r.records(ls, start.Add(61*time.Second))
	if len(recs) != 1 {
		t.Fatalf("want one NODATA record, got %v", recs)
	}
	x := recs[0]
	if x.LogStatus != flow.StatusNoData || x.FlowLogID != f.ID || x.InterfaceID != att.ID ||
		x.End-x.Start != 60_000 || x.Packets != 0 {
		t.Fatalf("NODATA record: %+v", x)
	}
}

// TestExporterAttribution sends NetFlow v5 from two loopback addresses to
// the plane's collector: the records of the exporter a gateway names are
// attributed to it and to its attachments by ifIndex; the other's datagram
// is counted as unclaimed and gets no state.
func TestExporterAttribution(t *testing.T) {
	port := testutil.FreeUDPPort(t)
	r := newRig(t, fmt.Sprintf("127.0.0.1:%d", port))
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr("127.0.0.1")})
	a1 := r.attach(gw.ID, control.AttachmentInput{IfIndex: ptr(uint32(1))})
	a2 := r.attach(gw.ID, control.AttachmentInput{IfIndex: ptr(uint32(2))})
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	if got := r.state(f.ID); got.State != control.StateAvailable {
		t.Fatalf("state %s %q", got.State, got.StateReason)
	}
	now := time.Now().UnixMilli()
	sent := []flow.Record{}
	for i, in := range []uint32{1, 2, 7} {
		sent = append(sent, flow.Record{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"),
			SrcPort: uint16(1000 + i), DstPort: 80, Protocol: 6, Packets: uint64(10 + i), Bytes: 1000, Start: now - 1000,
			End: now, InputIfIndex: in, OutputIfIndex: 9})
	}
	send := func(from string) {
		e, err := export.New(export.Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: netflow.V5,
			Source: from})
		r.must(err)
		defer e.Close()
		r.must(e.Export(sent))
	}
	send("127.0.0.1")
	send("127.0.0.2")
	want := map[uint16]string{1000: a1.ID, 1001: a2.ID, 1002: ""}
	deadline := time.Now().Add(5 * time.Second)
	var recs []flow.Record
	for len(recs) < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		recs = r.records(ls, time.Now())
	}
	if len(recs) != 3 {
		t.Fatalf("want the 3 records of 127.0.0.1, got %v", recs)
	}
	for _, x := range recs {
		if x.GatewayID != gw.ID || x.FlowLogID != f.ID || x.InterfaceID != want[x.SrcPort] ||
			x.Packets != uint64(10+x.SrcPort-1000) {
			t.Errorf("record %d: gateway %s interface %q packets %d", x.SrcPort, x.GatewayID, x.InterfaceID, x.Packets)
		}
	}
	if n := r.p.collector.Unclaimed(); n != 1 {
		t.Errorf("unclaimed datagrams: %d, want the one of 127.0.0.2", n)
	}
	if st := r.p.collector.Stats(); len(st) != 1 || st[0].Exporter != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("exporters with state: %+v, want 127.0.0.1 only", st)
	}
}

// TestPcapReplay replays a capture file as fast as it can, and paced by its
// timestamps: every IP packet of the file is accounted, and the records end
// no later than now.
func TestPcapReplay(t *testing.T) {
	for _, pace := range []string{"fast", "realtime"} {
		t.Run(pace, func(t *testing.T) { testPcapReplay(t, pace) })
	}
}

func testPcapReplay(t *testing.T, pace string) {
	pcap := filepath.Join(testutil.SharedDir(t), "testdata", "flowtest", "pcap", "ICMP_across_dot1q.pcap")
	r := newRig(t, "")
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindPcap), PcapPath: &pcap, PcapPace: &pace})
	ls := r.stream()
	r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: gw.ID}}})
	started := time.Now().Truncate(time.Millisecond)
	r.step()
	out, err := exec.Command("tshark", "-r", pcap, "-Y", "ip", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Skipf("tshark: %v", err)
	}
	want := uint64(len(strings.Fields(string(out))))
	deadline := started.Add(10 * time.Second)
	var got uint64
	for got < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = 0
		for _, x := range r.records(ls, time.Now()) {
			got += x.Packets
			if x.End > time.Now().UnixMilli() {
				t.Fatalf("record ends in the future: %+v", x)
			}
			if pace == "realtime" && x.Start < started.UnixMilli() {
				t.Fatalf("paced replay starts before the flow log did: %+v", x)
			}
		}
	}
	if got != want {
		t.Fatalf("packets recorded %d, tshark counts %d IP packets", got, want)
	}
}

// TestDeliveredWithinAggregation: with an inactive aging longer than the
// aggregation interval, a flow's record still arrives within one interval
// of its last packet.
func TestDeliveredWithinAggregation(t *testing.T) {
	testutil.Root(t)
	r := newRig(t, "")
	peer, gw, _ := r.captureLink(242)
	ls := r.stream()
	r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		InactiveAging: ptr(600), AggregationInterval: ptr(60), Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	ping(t, peer, "10.242.0.1", 2)
	last := time.Now()
	if got := icmpPackets(r.records(ls, last.Add(50*time.Second)), "10.242.0.2"); got != 0 {
		t.Fatalf("flow ended before its (capped) inactive timeout: %d packets", got)
	}
	if got := icmpPackets(r.records(ls, last.Add(60*time.Second)), "10.242.0.2"); got != 2 {
		t.Fatalf("one aggregation interval after the flow, recorded %d echo requests, want 2", got)
	}
}

// TestPcapDir: an account other than the operator's replays files only from
// the pcap directory. The control plane refuses other paths when the
// gateway is made (see the control package's tests); the data plane checks
// again when the replay starts, for a link pointed elsewhere meanwhile.
func TestPcapDir(t *testing.T) {
	src := filepath.Join(testutil.SharedDir(t), "testdata", "flowtest", "pcap", "ICMP_across_dot1q.pcap")
	dir := t.TempDir()
	pcap, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	file, link := filepath.Join(dir, "icmp.pcap"), filepath.Join(dir, "link.pcap")
	if err := os.WriteFile(file, pcap, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	r := newRigPcap(t, "", dir)
	key, err := r.svc.CreateAccount(r.ctx, r.account)
	r.must(err)
	r.account = key.AccountID
	ls := r.stream()
	replayOf := func(path string) control.FlowLog {
		gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindPcap), PcapPath: ptr(path)})
		return r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
			Targets: []control.Target{{GatewayID: gw.ID}}})
	}
	inside, gone := replayOf(file), replayOf(filepath.Join(dir, "nonexistent.pcap"))
	moved := replayOf(link)
	// The link now leads out of the directory.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	r.step()
	for _, c := range []struct {
		f    control.FlowLog
		want string
	}{{inside, ""}, {gone, "does not exist"}, {moved, "outside the server's pcap directory"}} {
		got := r.state(c.f.ID)
		if c.want == "" && got.State != control.StateAvailable || c.want != "" && !strings.Contains(got.StateReason, c.want) {
			t.Errorf("state %s %q, want %q", got.State, got.StateReason, c.want)
		}
	}
}
