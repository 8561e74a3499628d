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
// transitional states stay until the test settles them.
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

	req := smartag.CreateCreateFlowLogRequest()
	req.OutputType, req.NetflowServerIp = "netflow", "192.0.2.1"
	res, err := c.CreateFlowLog(req)
	if err != nil {
		t.Fatal(err)
	}
	del := smartag.CreateDeleteFlowLogRequest()
	del.FlowLogId = res.FlowLogId
	_, err = c.DeleteFlowLog(del)
	expectCode(t, err, 400, "IncorrectStatus.FlowLog") // pending

	settle()
	mod := smartag.CreateModifyFlowLogAttributeRequest()
	mod.FlowLogId, mod.Description = res.FlowLogId, "changed"
	if _, err := c.ModifyFlowLogAttribute(mod); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteFlowLog(del)
	expectCode(t, err, 400, "IncorrectStatus.FlowLog") // modifying

	settle()
	if _, err := c.DeleteFlowLog(del); err != nil {
		t.Fatal(err)
	}
	assoc := smartag.CreateAssociateFlowLogRequest()
	assoc.FlowLogId, assoc.SmartAGId = res.FlowLogId, gw.ID
	_, err = c.AssociateFlowLog(assoc)
	expectCode(t, err, 400, "IncorrectStatus.FlowLog") // deleting
	act := smartag.CreateDeactiveFlowLogRequest()
	act.FlowLogId = res.FlowLogId
	_, err = c.DeactiveFlowLog(act)
	expectCode(t, err, 400, "IncorrectStatus.FlowLog")

	settle()
	_, err = c.DeleteFlowLog(del)
	expectCode(t, err, 400, "InvalidFlowLogId.NotFound")
}
