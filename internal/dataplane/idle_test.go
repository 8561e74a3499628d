package dataplane

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"flowlog/internal/control"
	"flowlog/internal/testutil"
)

// TestIdleQueries measures what a running data plane costs the control
// plane's database while nothing changes: N flow logs (FLOWLOG_IDLE_FLOW_LOGS,
// default 100), each over an exporter gateway with an attachment, running.
func TestIdleQueries(t *testing.T) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("FLOWLOG_IDLE_FLOW_LOGS")); err == nil {
		n = v
	}
	r := newRig(t, fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t)))
	var last control.FlowLog
	for i := range n {
		gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter),
			Exporter: ptr(fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250))})
		a := r.attach(gw.ID, control.AttachmentInput{IfIndex: ptr(uint32(1))})
		last = r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputNetflow), NetflowServerIP: ptr("127.0.0.1"),
			Targets: []control.Target{{GatewayID: gw.ID, AttachmentID: a.ID}}})
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	go func() { r.p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(time.Second) // applied and settled
	const span = 3 * time.Second
	before := r.svc.Statements()
	time.Sleep(span)
	perSec := float64(r.svc.Statements()-before) / span.Seconds()
	t.Logf("%d flow logs idle: %.1f control-db statements/s", n, perSec)
	if perSec > idleBudget {
		t.Errorf("idle data plane runs %.1f statements/s on the control db, want at most %v", perSec, idleBudget)
	}

	// One edit: what the data plane reads and reports to apply it.
	_, err := r.svc.UpdateFlowLog(r.ctx, r.account, last.ID, control.FlowLogInput{ActiveAging: ptr(120)})
	r.must(err)
	before = r.svc.Statements()
	polls := uint64(0)
	for ; r.state(last.ID).State != control.StateAvailable; polls++ {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // what applying the edit may still run
	// Reading the state back here took 2 statements a time.
	t.Logf("%d flow logs, one edit applied: %d control-db statements", n, r.svc.Statements()-before-2*(polls+1))
}

// idleBudget is what an idle data plane may cost the control plane's
// database, in statements per second.
const idleBudget = 0
