package control

import (
	"strings"
	"testing"

	"flowlog/internal/desired"
)

// planeReport reports, as data plane plane at version, that flow log id
// runs (reason "") or why not.
func (x *tenancy) planeReport(plane string, version uint64, id, reason string) {
	x.t.Helper()
	if err := x.svc.Report(x.ctx, desired.Status{Plane: plane, Version: version,
		FlowLogs: []desired.FlowLogStatus{{ID: id, Reason: reason}}}); err != nil {
		x.t.Fatal(err)
	}
}

// TestAgentAssignment: only registered agents take gateways; another
// account's gateway goes to an agent only with the operator's grant of
// it; an agent's snapshot holds only its gateways and what observes them.
func TestAgentAssignment(t *testing.T) {
	x := newTenancy(t, "")
	if _, err := x.svc.CreateAgent(x.ctx, x.a, "edge1"); err == nil {
		t.Fatal("a tenant registered an agent")
	}
	ag, err := x.svc.CreateAgent(x.ctx, x.boot, "edge1")
	if err != nil || ag.Secret == "" || ag.KeyID == "" {
		t.Fatalf("CreateAgent: %+v, %v", ag, err)
	}
	if _, err := x.svc.CreateAgent(x.ctx, x.boot, "edge1"); err == nil {
		t.Fatal("an agent name registered twice")
	}
	// The agent key is no account's access key.
	if _, err := x.svc.LookupKey(x.ctx, ag.KeyID); err == nil {
		t.Fatal("the agent's key is an access key")
	}
	if got, err := x.svc.LookupAgentKey(x.ctx, ag.KeyID); err != nil || got.Name != "edge1" || got.Secret != ag.Secret {
		t.Fatalf("LookupAgentKey: %+v, %v", got, err)
	}

	x.grant(x.a, GrantExporter, "192.0.2.0/24")
	in := GatewayInput{Name: ptr("r"), Kind: ptr(KindExporter), Exporter: ptr("192.0.2.1"), Agent: ptr("edge2")}
	_, err = x.svc.CreateGateway(x.ctx, x.boot, in)
	wantErr(t, err, ErrNotFound, "agent", "does not exist")
	in.Agent = ptr("edge1")
	_, err = x.svc.CreateGateway(x.ctx, x.a, in)
	wantErr(t, err, ErrForbidden, "agent", "not granted")
	x.grant(x.a, GrantAgent, "edge1")
	gw, err := x.svc.CreateGateway(x.ctx, x.a, in)
	if err != nil || gw.Agent != "edge1" {
		t.Fatalf("gateway: %+v, %v", gw, err)
	}
	local, err := x.exporter(x.a, "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = x.svc.CreateFlowLog(x.ctx, x.a, FlowLogInput{Name: ptr("both"), OutputType: ptr(OutputNetflow),
		NetflowServerIP: ptr("127.0.0.1"), Targets: []Target{{GatewayID: gw.ID}, {GatewayID: local.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	// Another account's resources, on the server: not the agent's.
	x.grant(x.b, GrantExporter, "198.51.100.0/24")
	if _, err := x.exporter(x.b, "198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	st, err := x.svc.Snapshot(x.ctx, "edge1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Gateways) != 1 || st.Gateways[0].ID != gw.ID || st.Gateways[0].Plane != "edge1" {
		t.Fatalf("agent's gateways: %+v", st.Gateways)
	}
	if len(st.FlowLogs) != 1 || len(st.FlowLogs[0].Targets) != 1 || st.FlowLogs[0].Targets[0].GatewayID != gw.ID {
		t.Fatalf("agent's flow logs: %+v", st.FlowLogs)
	}
	for _, ls := range st.LogStreams {
		if ls.AccountID != x.a {
			t.Fatalf("agent sees another account's log stream %+v", ls)
		}
	}
	if srv := x.snapshot(); len(srv.FlowLogs) != 1 || len(srv.FlowLogs[0].Targets) != 1 ||
		srv.FlowLogs[0].Targets[0].GatewayID != local.ID {
		t.Fatalf("server's part of the flow log: %+v", srv.FlowLogs)
	}

	// The operator withdraws the grant: the flow log is refused there.
	for _, g := range mustGrants(t, x) {
		if g.Kind == GrantAgent {
			if err := x.svc.DeleteGrant(x.ctx, x.boot, g.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, _ = x.svc.Snapshot(x.ctx, "edge1")
	if len(st.FlowLogs) != 1 || !strings.Contains(st.FlowLogs[0].Refused, "agent edge1 is not granted") {
		t.Fatalf("after the agent grant was withdrawn: %+v", st.FlowLogs)
	}
	if err := x.svc.DeleteAgent(x.ctx, x.boot, "edge1"); err == nil {
		t.Fatal("an agent with gateways deleted")
	}
}

func mustGrants(t *testing.T, x *tenancy) []Grant {
	gs, err := x.svc.ListGrants(x.ctx, x.boot, x.a)
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// TestStateAcrossPlanes: a flow log over gateways on the server and on an
// agent is available only once both reported it running for a version
// that includes its last change; failed as soon as one reports it cannot
// run, with that plane's reason; moving a gateway to another plane makes it
// settle again; and it is removed after a delete only once both applied it.
func TestStateAcrossPlanes(t *testing.T) {
	x := newTenancy(t, "")
	if _, err := x.svc.CreateAgent(x.ctx, x.boot, "edge1"); err != nil {
		t.Fatal(err)
	}
	remote, err := x.svc.CreateGateway(x.ctx, x.boot, GatewayInput{Name: ptr("r"), Kind: ptr(KindExporter),
		Exporter: ptr("192.0.2.1"), Agent: ptr("edge1")})
	if err != nil {
		t.Fatal(err)
	}
	local, err := x.exporter(x.boot, "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := x.svc.CreateFlowLog(x.ctx, x.boot, FlowLogInput{Name: ptr("both"), OutputType: ptr(OutputNetflow),
		NetflowServerIP: ptr("127.0.0.1"), Targets: []Target{{GatewayID: remote.ID}, {GatewayID: local.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	state := func() (string, string) {
		t.Helper()
		got, err := x.svc.GetFlowLog(x.ctx, x.boot, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.State, got.StateReason
	}
	v := x.snapshot().Version
	x.planeReport("", v, f.ID, "")
	if s, _ := state(); s != StatePending {
		t.Fatalf("after the server alone reported: %s, want pending", s)
	}
	x.planeReport("edge1", v-1, f.ID, "")
	if s, _ := state(); s != StatePending {
		t.Fatalf("after the agent reported a version before the flow log: %s, want pending", s)
	}
	x.planeReport("edge1", v, f.ID, "")
	if s, _ := state(); s != StateAvailable {
		t.Fatalf("after both reported: %s, want available", s)
	}
	x.planeReport("edge1", v, f.ID, "exporter gone")
	if s, r := state(); s != StateFailed || r != "agent edge1: exporter gone" {
		t.Fatalf("after the agent failed it: %s %q", s, r)
	}
	x.planeReport("edge1", v, f.ID, "")
	if s, _ := state(); s != StateAvailable {
		t.Fatalf("after the agent recovered: %s, want available", s)
	}

	// The remote gateway moves to the server: only the server's report counts.
	if _, err := x.svc.UpdateGateway(x.ctx, x.boot, remote.ID, GatewayInput{Agent: ptr("")}); err != nil {
		t.Fatal(err)
	}
	if s, _ := state(); s != StateModifying {
		t.Fatalf("after its gateway moved: %s, want modifying", s)
	}
	moved := x.snapshot()
	if len(moved.FlowLogs) != 1 || len(moved.FlowLogs[0].Targets) != 2 {
		t.Fatalf("server's part after the move: %+v", moved.FlowLogs)
	}
	x.planeReport("", moved.Version, f.ID, "")
	if s, _ := state(); s != StateAvailable {
		t.Fatalf("after the server reported the move: %s, want available", s)
	}

	// Back on the agent, then deleted: removed once both applied the delete.
	if _, err := x.svc.UpdateGateway(x.ctx, x.boot, remote.ID, GatewayInput{Agent: ptr("edge1")}); err != nil {
		t.Fatal(err)
	}
	back := x.snapshot().Version
	x.planeReport("", back, f.ID, "")
	x.planeReport("edge1", back, f.ID, "")
	if _, err := x.svc.DeleteFlowLog(x.ctx, x.boot, f.ID, DeleteRules{}); err != nil {
		t.Fatal(err)
	}
	del := x.snapshot().Version
	x.svc.Report(x.ctx, desired.Status{Plane: "", Version: del})
	if s, _ := state(); s != StateDeleting {
		t.Fatalf("after the server alone applied the delete: %s, want deleting", s)
	}
	x.svc.Report(x.ctx, desired.Status{Plane: "edge1", Version: del})
	if _, err := x.svc.GetFlowLog(x.ctx, x.boot, f.ID); err == nil {
		t.Fatal("not removed after both planes applied the delete")
	}
}
