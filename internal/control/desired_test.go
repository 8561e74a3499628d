package control

import (
	"context"
	"testing"
	"time"

	"flowlog/internal/desired"
)

// netflowLog makes a flow log of x.a over a new exporter gateway that a
// grant lets it claim.
func (x *tenancy) netflowLog() (FlowLog, Gateway) {
	x.t.Helper()
	x.grant(x.a, GrantExporter, "192.0.2.0/24")
	gw, err := x.exporter(x.a, "192.0.2.9")
	if err != nil {
		x.t.Fatal(err)
	}
	f, _, err := x.svc.CreateFlowLog(x.ctx, x.a, FlowLogInput{Name: ptr("fl"), OutputType: ptr(OutputNetflow),
		NetflowServerIP: ptr("127.0.0.1"), Targets: []Target{{GatewayID: gw.ID}}})
	if err != nil {
		x.t.Fatal(err)
	}
	return f, gw
}

func (x *tenancy) snapshot() desired.State {
	x.t.Helper()
	st, err := x.svc.Snapshot(x.ctx, "")
	if err != nil {
		x.t.Fatal(err)
	}
	return st
}

func (x *tenancy) report(version uint64, id, reason string) {
	x.t.Helper()
	if err := x.svc.Report(x.ctx, desired.Status{Version: version,
		FlowLogs: []desired.FlowLogStatus{{ID: id, Reason: reason}}}); err != nil {
		x.t.Fatal(err)
	}
}

func (x *tenancy) stateOf(id string) string {
	x.t.Helper()
	f, err := x.svc.GetFlowLog(x.ctx, x.a, id)
	if err != nil {
		x.t.Fatal(err)
	}
	return f.State
}

// TestReportOfOlderVersion: a flow log edited after the version a data
// plane applied stays modifying when that data plane reports, and becomes
// available only from a report of a version that includes the edit.
func TestReportOfOlderVersion(t *testing.T) {
	x := newTenancy(t, "")
	f, _ := x.netflowLog()
	applied := x.snapshot()
	if _, err := x.svc.UpdateFlowLog(x.ctx, x.a, f.ID, FlowLogInput{Sampling: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	x.report(applied.Version, f.ID, "")
	if got := x.stateOf(f.ID); got != StateModifying {
		t.Fatalf("after a report of the version before the edit: %s, want modifying", got)
	}
	edited := x.snapshot()
	if edited.Version <= applied.Version || edited.FlowLogs[0].Sampling != 10 {
		t.Fatalf("edit not in a newer version: %d then %+v", applied.Version, edited)
	}
	x.report(edited.Version, f.ID, "")
	if got := x.stateOf(f.ID); got != StateAvailable {
		t.Fatalf("after a report of the edit's version: %s, want available", got)
	}
	if last := x.svc.Planes()[""]; last.Version != edited.Version || last.At.IsZero() {
		t.Fatalf("data plane's last report: %+v, want version %d", last, edited.Version)
	}
}

// TestDeletedOnReport: a flow log being deleted leaves the desired state at
// once, and is removed when a data plane reports a version that includes
// the delete.
func TestDeletedOnReport(t *testing.T) {
	x := newTenancy(t, "")
	f, _ := x.netflowLog()
	x.report(x.snapshot().Version, f.ID, "")
	before := x.snapshot().Version
	if _, err := x.svc.DeleteFlowLog(x.ctx, x.a, f.ID, DeleteRules{}); err != nil {
		t.Fatal(err)
	}
	after := x.snapshot()
	if len(after.FlowLogs) != 0 {
		t.Fatalf("flow log being deleted is still desired: %+v", after.FlowLogs)
	}
	x.report(before, f.ID, "")
	if got := x.stateOf(f.ID); got != StateDeleting {
		t.Fatalf("after a report from before the delete: %s, want deleting", got)
	}
	x.report(after.Version, f.ID, "")
	if _, err := x.svc.GetFlowLog(x.ctx, x.a, f.ID); err == nil {
		t.Fatal("deleted flow log not removed after a report of the delete's version")
	}
}

// TestVersionedWrites: every write to what data planes run makes a new
// version, and wakes a watcher; other writes do not.
func TestVersionedWrites(t *testing.T) {
	x := newTenancy(t, "")
	f, gw := x.netflowLog()
	g, err := x.svc.CreateLogGroup(x.ctx, x.a, ptr("lg"))
	if err != nil {
		t.Fatal(err)
	}
	var ls LogStream
	var grant Grant
	writes := []struct {
		name string
		fn   func() error
	}{
		{"gateway description", func() error {
			_, err := x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{Description: ptr("edge")})
			return err
		}},
		{"attachment", func() error {
			_, err := x.svc.CreateAttachment(x.ctx, x.a, gw.ID, AttachmentInput{Name: ptr("p1"), IfIndex: ptr(uint32(1))})
			return err
		}},
		{"log stream", func() (err error) { ls, err = x.svc.CreateLogStream(x.ctx, x.a, g.ID, ptr("s"), nil); return err }},
		{"retention", func() error {
			_, err := x.svc.UpdateLogStream(x.ctx, x.a, g.ID, ls.ID, ptr(30))
			return err
		}},
		{"disable", func() error { _, _, err := x.svc.SetEnabled(x.ctx, x.a, f.ID, false); return err }},
		{"grant", func() error { grant = x.grant(x.a, GrantInterface, "eth9"); return nil }},
		{"grant withdrawn", func() error { return x.svc.DeleteGrant(x.ctx, x.boot, grant.ID) }},
		{"log stream deleted", func() error { return x.svc.DeleteLogStream(x.ctx, x.a, g.ID, ls.ID) }},
	}
	for _, w := range writes {
		v := x.svc.Version()
		woke := make(chan uint64, 1)
		go func() {
			got, _ := x.svc.Watch(x.ctx, v)
			woke <- got
		}()
		if err := w.fn(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		select {
		case got := <-woke:
			if got != v+1 || x.snapshot().Version != got {
				t.Errorf("%s: watcher woke at version %d (snapshot %d), want %d", w.name, got, x.snapshot().Version, v+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: watcher not woken", w.name)
		}
	}
	v := x.svc.Version()
	if _, err := x.svc.CreateLogGroup(x.ctx, x.a, ptr("other")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(x.ctx, 50*time.Millisecond)
	defer cancel()
	if got, err := x.svc.Watch(ctx, v); err == nil {
		t.Errorf("a log group made version %d, want none", got)
	}
}

// TestSnapshot: one read has what a data plane needs, with fences already
// applied, and a fixed number of statements whatever the flow logs.
func TestSnapshot(t *testing.T) {
	x := newTenancy(t, "")
	f, _ := x.netflowLog()
	st := x.snapshot()
	if len(st.FlowLogs) != 1 || st.FlowLogs[0].ID != f.ID || st.FlowLogs[0].Refused != "" ||
		len(st.Gateways) != 1 || st.Gateways[0].Exporter != "192.0.2.9" || !st.Gateways[0].PcapFenced {
		t.Fatalf("snapshot %+v", st)
	}
	grants, err := x.svc.ListGrants(x.ctx, x.boot, x.a)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.svc.DeleteGrant(x.ctx, x.boot, grants[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := x.snapshot().FlowLogs[0].Refused; got == "" {
		t.Fatal("withdrawn grant: flow log not refused")
	}
	cost := func() uint64 {
		n := x.svc.Statements()
		x.snapshot()
		return x.svc.Statements() - n
	}
	one := cost()
	for range 2 {
		if _, _, err := x.svc.CreateFlowLog(x.ctx, x.a, FlowLogInput{Name: ptr("more"),
			OutputType: ptr(OutputNetflow), NetflowServerIP: ptr("127.0.0.1")}); err != nil {
			t.Fatal(err)
		}
	}
	if three := cost(); three != one || len(x.snapshot().FlowLogs) != 3 {
		t.Fatalf("snapshot of 1 flow log: %d statements, of 3: %d", one, three)
	}
	if other, err := x.svc.Snapshot(x.ctx, "agent-1"); err != nil || len(other.FlowLogs)+len(other.Gateways) != 0 {
		t.Fatalf("another data plane's snapshot: %+v %v, want empty", other, err)
	}
}

// TestGatewaySamplingOverride: an exporter gateway takes a sampling
// override (0 to 2^24, 0 clears it), which the desired state carries to the
// data planes; other kinds refuse one.
func TestGatewaySamplingOverride(t *testing.T) {
	x := newTenancy(t, "")
	_, gw := x.netflowLog()
	if gw.SamplingInterval != 0 {
		t.Fatalf("new gateway has override %d", gw.SamplingInterval)
	}
	gw, err := x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{SamplingInterval: ptr(100)})
	if err != nil || gw.SamplingInterval != 100 {
		t.Fatalf("set 100: %v, %+v", err, gw)
	}
	if got, _ := x.svc.GetGateway(x.ctx, x.a, gw.ID); got.SamplingInterval != 100 {
		t.Fatalf("stored override %d, want 100", got.SamplingInterval)
	}
	st := x.snapshot()
	if len(st.Gateways) != 1 || st.Gateways[0].SamplingInterval != 100 {
		t.Fatalf("desired gateways %+v, want the override 100", st.Gateways)
	}
	for _, bad := range []int{-1, 1<<24 + 1} {
		_, err := x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{SamplingInterval: ptr(bad)})
		wantErr(t, err, ErrInvalid, "sampling_interval", "must be 0 to")
	}
	if gw, err = x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{SamplingInterval: ptr(0)}); err != nil || gw.SamplingInterval != 0 {
		t.Fatalf("clear: %v, %+v", err, gw)
	}
	_, err = x.svc.CreateGateway(x.ctx, x.a, GatewayInput{Name: ptr("cap"), Kind: ptr(KindCapture), SamplingInterval: ptr(10)})
	wantErr(t, err, ErrInvalid, "sampling_interval", "only an exporter gateway")
}
