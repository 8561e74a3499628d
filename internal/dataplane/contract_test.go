package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"flowlog/internal/control"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// metric returns the value of the plane's series name{labels}, given as
// name, value pairs.
func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.p)
	mfs, err := reg.Gather()
	r.must(err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := []string{}
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName(), l.GetValue())
			}
			if slices.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	r.t.Fatalf("no series %s%q", name, labels)
	return 0
}

// udpSink returns the port of a UDP socket that takes and ignores datagrams.
func udpSink(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go io.Copy(io.Discard, readerOf{c})
	return c.LocalAddr().(*net.UDPAddr).Port
}

type readerOf struct{ net.PacketConn }

func (r readerOf) Read(b []byte) (int, error) {
	n, _, err := r.ReadFrom(b)
	return n, err
}

// TestRunWatches: Run applies a change when the control plane commits it,
// not on a timer (none would fire within the test), and reports it with
// its components.
func TestRunWatches(t *testing.T) {
	r := newRig(t, fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t)))
	r.p.cfg.Tick, r.p.cfg.Retry = time.Hour, time.Hour
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	go func() { r.p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr("192.0.2.3")})
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputNetflow), NetflowServerIP: ptr("127.0.0.1"),
		Targets: []control.Target{{GatewayID: gw.ID}}})
	deadline := time.Now().Add(5 * time.Second)
	for r.state(f.ID).State != control.StateAvailable {
		if time.Now().After(deadline) {
			t.Fatalf("flow log not applied: %+v", r.state(f.ID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	last := r.svc.Planes()[""]
	kinds := map[string]bool{}
	for _, c := range last.Components {
		kinds[c.Kind+" "+c.Name] = true
	}
	if !kinds["collector collector"] || !kinds["meter "+f.ID] {
		t.Fatalf("the report's components: %+v", last.Components)
	}
}

// TestEditAfterApply: a flow log edited after the data plane read the
// desired state stays modifying when the data plane reports what it
// applied (which runs), and takes the state of the edit once that is
// applied.
func TestEditAfterApply(t *testing.T) {
	r := newRig(t, fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t)))
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr("192.0.2.4")})
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputNetflow), NetflowServerIP: ptr("127.0.0.1"),
		Targets: []control.Target{{GatewayID: gw.ID}}})
	read, err := r.svc.Snapshot(r.ctx, "")
	r.must(err)
	_, err = r.svc.UpdateFlowLog(r.ctx, r.account, f.ID, control.FlowLogInput{NetflowServerIP: ptr("0.0.0.0")})
	r.must(err)
	r.p.setState(read) // the data plane read before the edit,
	r.p.apply(r.ctx)   // and applies and reports after it
	if got := r.state(f.ID); got.State != control.StateModifying {
		t.Fatalf("edit not applied yet: state %s %q, want modifying", got.State, got.StateReason)
	}
	r.step()
	if got := r.state(f.ID); got.State != control.StateFailed {
		t.Fatalf("edit applied: state %s %q, want failed (0.0.0.0 is no collector)", got.State, got.StateReason)
	}
}

// TestDescriptionEdit: renaming or describing a capture gateway anew
// changes nothing that runs: its unit keeps its capture and meter, whose
// counters go on.
func TestDescriptionEdit(t *testing.T) {
	testutil.Root(t)
	r := newRig(t, "")
	peer, gw, att := r.captureLink(243)
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	ping(t, peer, "10.243.0.1", 3)
	key := unitKey{r.account, f.ID, gw.ID, att.ID}
	u := r.p.flows[f.ID].units[key]
	before := u.meter.Stats()
	_, err := r.svc.UpdateGateway(r.ctx, r.account, gw.ID, control.GatewayInput{Name: ptr("edge"),
		Description: ptr("the edge router")})
	r.must(err)
	r.step()
	if got := r.p.flows[f.ID].units[key]; got != u {
		t.Fatal("a description edit restarted the unit")
	}
	if after := u.meter.Stats(); after.Packets < before.Packets || after.ActiveFlows != before.ActiveFlows ||
		after.Records != before.Records {
		t.Fatalf("meter flushed or reset by a description edit: %+v, then %+v", before, after)
	}
}

// TestCountersSurviveRestarts: the meter, output and ingest counters of a
// flow log keep growing when its units restart (a sampling change), its
// NetFlow exporter is replaced (a new collector port) and its log stream's
// pipeline closes (disabled) and opens again; nothing counts as dropped.
func TestCountersSurviveRestarts(t *testing.T) {
	testutil.Root(t)
	r := newRig(t, "")
	peer, gw, _ := r.captureLink(244)
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputAll), LogStreamID: &ls,
		NetflowServerIP: ptr("127.0.0.1"), NetflowServerPort: ptr(udpSink(t)), NetflowVersion: ptr(control.NetflowV9),
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	ping(t, peer, "10.244.0.1", 3)
	r.records(ls, time.Now().Add(time.Minute)) // flows end and are committed
	series := [][]string{
		{"flowlog_meter_packets_total", "flow_log", f.ID},
		{"flowlog_flow_log_records_total", "flow_log", f.ID, "output", "sls"},
		{"flowlog_flow_log_records_total", "flow_log", f.ID, "output", "netflow"},
		{"flowlog_store_committed_records_total", "log_stream", ls},
	}
	last := make([]float64, len(series))
	check := func(when string) {
		t.Helper()
		r.p.snap.Store(r.p.snapshot())
		for i, s := range series {
			v := r.metric(s[0], s[1:]...)
			if v < last[i] || v == 0 {
				t.Errorf("%s: %v went from %v to %v", when, s, last[i], v)
			}
			last[i] = v
		}
		for _, out := range []string{"sls", "netflow"} {
			if v := r.metric("flowlog_flow_log_dropped_records_total", "flow_log", f.ID, "output", out); v != 0 {
				t.Errorf("%s: %v %s records dropped", when, v, out)
			}
		}
	}
	check("running")
	_, err := r.svc.UpdateFlowLog(r.ctx, r.account, f.ID, control.FlowLogInput{Sampling: ptr(2)})
	r.must(err)
	r.step()
	check("after a sampling change")
	_, err = r.svc.UpdateFlowLog(r.ctx, r.account, f.ID, control.FlowLogInput{NetflowServerPort: ptr(udpSink(t))})
	r.must(err)
	r.step()
	check("after a collector change")
	_, _, err = r.svc.SetEnabled(r.ctx, r.account, f.ID, false)
	r.must(err)
	r.step()
	if len(r.p.streams) != 0 {
		t.Fatal("the log stream's pipeline is still open")
	}
	check("disabled")
	_, _, err = r.svc.SetEnabled(r.ctx, r.account, f.ID, true)
	r.must(err)
	r.step()
	check("enabled again")
}

// TestShutdownDelivers shuts the plane down while the collector delivers
// records it decoded: they are stored, through the spool, once a new plane
// starts.
func TestShutdownDelivers(t *testing.T) {
	port := testutil.FreeUDPPort(t)
	r := newRig(t, fmt.Sprintf("127.0.0.1:%d", port))
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr("127.0.0.1")})
	ls := r.stream()
	r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	inFlight := make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() {
			close(inFlight)
			time.Sleep(200 * time.Millisecond) // while the plane shuts down
		})
	}
	r.p.routes.inFlight.Store(&hook)
	e, err := export.New(export.Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: netflow.V5})
	r.must(err)
	defer e.Close()
	now := time.Now().UnixMilli()
	recs := make([]flow.Record, 30) // one v5 datagram
	for i := range recs {
		recs[i] = flow.Record{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"),
			SrcPort: uint16(i), DstPort: 80, Protocol: 6, Packets: 1, Bytes: 100, Start: now - 1000, End: now}
	}
	r.must(e.Export(recs))
	<-inFlight
	r.p.shutdown()
	decoded, _ := r.p.collector.Exporter(netip.MustParseAddr("127.0.0.1"))

	p, err := New(Config{Control: r.svc, Store: r.st, Spool: r.sp})
	r.must(err)
	t.Cleanup(p.shutdown)
	r.p = p
	r.step()
	id := store.StreamID{Account: r.account, Stream: ls}
	deadline := time.Now().Add(10 * time.Second)
	var stored uint64
	for stored < decoded.Records && time.Now().Before(deadline) {
		if s := r.p.streams[id]; s != nil {
			r.must(s.pipe.Flush(r.ctx))
		}
		stored = r.count(ls)
	}
	if stored != decoded.Records || stored == 0 {
		t.Fatalf("collector decoded %d records, delivering them at shutdown; %d stored", decoded.Records, stored)
	}
}

// count returns how many records a log stream stores.
func (r *rig) count(stream string) uint64 {
	r.t.Helper()
	resp, err := r.st.Query(r.ctx, store.StreamID{Account: r.account, Stream: stream}, query.Request{
		Since: time.Unix(0, 0), Until: time.Now().Add(24 * time.Hour), Aggregates: []query.Aggregate{{Func: "count"}}})
	r.must(err)
	if len(resp.Rows) == 0 {
		return 0
	}
	return resp.Rows[0][0].(uint64)
}
