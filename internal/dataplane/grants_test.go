package dataplane

import (
	"fmt"
	"strings"
	"testing"

	"flowlog/internal/control"
	"flowlog/internal/testutil"
)

// TestGrantWithdrawn: when the operator withdraws the grant an exporter
// gateway relies on, its flow log stops and fails with the reason; granted
// again, it runs again.
func TestGrantWithdrawn(t *testing.T) {
	r := newRig(t, fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t)))
	boot := r.account
	key, err := r.svc.CreateAccount(r.ctx, boot)
	r.must(err)
	r.account = key.AccountID
	grant := func() control.Grant {
		g, err := r.svc.CreateGrant(r.ctx, boot, control.GrantInput{AccountID: &r.account,
			Kind: ptr(control.GrantExporter), Value: ptr("192.0.2.0/24")})
		r.must(err)
		return g
	}
	g := grant()
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr("192.0.2.7")})
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	if got := r.state(f.ID); got.State != control.StateAvailable {
		t.Fatalf("granted: state %s %q, want available", got.State, got.StateReason)
	}
	if routes := r.p.routes.v.Load().units; len(routes) != 1 {
		t.Fatalf("granted: routes %v, want the exporter's", routes)
	}

	r.must(r.svc.DeleteGrant(r.ctx, boot, g.ID))
	r.step()
	got := r.state(f.ID)
	if got.State != control.StateFailed || !strings.Contains(got.StateReason,
		"exporter address 192.0.2.7 is not granted to this account; ask the operator for an exporter_addr grant") {
		t.Fatalf("withdrawn: state %s %q, want failed for want of the grant", got.State, got.StateReason)
	}
	if routes := r.p.routes.v.Load().units; len(routes) != 0 {
		t.Fatalf("withdrawn: records of the exporter are still routed: %v", routes)
	}

	grant()
	r.step()
	if got := r.state(f.ID); got.State != control.StateAvailable {
		t.Fatalf("granted again: state %s %q, want available", got.State, got.StateReason)
	}
}
