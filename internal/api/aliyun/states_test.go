package aliyun

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"

	"flowlog/internal/control"
)

// The dialect over a real control plane whose settler does not run, so
// transitional states stay until the test settles them: Alibaba callers
// never see them.
func TestTransitionalStates(t *testing.T) {
	ctx := context.Background()
	svc, err := control.New(control.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	boot, err := svc.EnsureBootstrap(ctx, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	name, kind := "sag", control.KindCapture
	gw, err := svc.CreateGateway(ctx, boot.Key.AccountID, control.GatewayInput{Name: &name, Kind: &kind})
	if err != nil {
		t.Fatal(err)
	}
	keys := func(ctx context.Context, id string) (string, string, bool, error) {
		k, err := svc.LookupKey(ctx, id)
		if errors.Is(err, control.ErrNotFound) {
			return "", "", false, nil
		}
		return k.Secret, k.AccountID, err == nil, err
	}
	mux := http.NewServeMux()
	Register(mux, Config{}, Deps{Control: svc, Keys: keys})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	c, err := smartag.NewClientWithAccessKey("cn-shanghai", boot.Key.ID, boot.Key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = strings.TrimPrefix(ts.URL, "http://")
	settle := func() {
		if err := svc.Settle(ctx, svc.CheckOutputs); err != nil {
			t.Fatal(err)
		}
	}

	create := func() string {
		req := smartag.CreateCreateFlowLogRequest()
		req.OutputType, req.NetflowServerIp = "netflow", "192.0.2.1"
		res, err := c.CreateFlowLog(req)
		if err != nil {
			t.Fatal(err)
		}
		return res.FlowLogId
	}
	listed := func(id string) bool {
		req := smartag.CreateDescribeFlowLogsRequest()
		req.FlowLogId = id
		res, err := c.DescribeFlowLogs(req)
		if err != nil {
			t.Fatal(err)
		}
		return res.TotalCount != 0 || len(res.FlowLogs.FlowLogSetType) != 0
	}
	deleted := func(id string) {
		t.Helper()
		del := smartag.CreateDeleteFlowLogRequest()
		del.FlowLogId = id
		if _, err := c.DeleteFlowLog(del); err != nil {
			t.Fatalf("DeleteFlowLog: %v", err)
		}
		if listed(id) {
			t.Fatalf("flow log %s still described after DeleteFlowLog answered", id)
		}
		// Gone for every action, though it is still being deleted inside.
		if f, err := svc.GetFlowLog(ctx, boot.Key.AccountID, id); err != nil || f.State != control.StateDeleting {
			t.Fatalf("inside: %+v %v, want state deleting", f, err)
		}
		_, err := c.DeleteFlowLog(del)
		expectCode(t, err, 400, "InvalidFlowLogId.NotFound")
		assoc := smartag.CreateAssociateFlowLogRequest()
		assoc.FlowLogId, assoc.SmartAGId = id, gw.ID
		_, err = c.AssociateFlowLog(assoc)
		expectCode(t, err, 400, "InvalidFlowLogId.NotFound")
		act := smartag.CreateDeactiveFlowLogRequest()
		act.FlowLogId = id
		_, err = c.DeactiveFlowLog(act)
		expectCode(t, err, 400, "InvalidFlowLogId.NotFound")
		mod := smartag.CreateModifyFlowLogAttributeRequest()
		mod.FlowLogId, mod.Description = id, "changed"
		_, err = c.ModifyFlowLogAttribute(mod)
		expectCode(t, err, 400, "InvalidFlowLogId.NotFound")
		sags := smartag.CreateDescribeFlowLogSagsRequest()
		sags.FlowLogId = id
		_, err = c.DescribeFlowLogSags(sags)
		expectCode(t, err, 400, "InvalidFlowLogId.NotFound")
	}

	// This API has no pending or modifying state: a delete right after a
	// create or a change is not refused, and the flow log is gone at once.
	pending := create()
	deleted(pending) // pending
	changed := create()
	settle()
	mod := smartag.CreateModifyFlowLogAttributeRequest()
	mod.FlowLogId, mod.Description = changed, "changed"
	if _, err := c.ModifyFlowLogAttribute(mod); err != nil {
		t.Fatal(err)
	}
	if f, _ := svc.GetFlowLog(ctx, boot.Key.AccountID, changed); f.State != control.StateModifying {
		t.Fatalf("after a change: state %s, want modifying", f.State)
	}
	deleted(changed) // modifying

	settle()
	for _, id := range []string{pending, changed} {
		if _, err := svc.GetFlowLog(ctx, boot.Key.AccountID, id); !errors.Is(err, control.ErrNotFound) {
			t.Fatalf("flow log %s not removed by the settler: %v", id, err)
		}
	}
}
