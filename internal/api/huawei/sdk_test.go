package huawei

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/region"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	er "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/auth"
	"flowlog/internal/control"
)

// These tests run the dialect in process over a real control plane whose
// settler does not run, so transitional states stay put until the test
// settles them, and with a clock the test can move. The unmodified Huawei
// SDK is the client.

type rig struct {
	svc                      *control.Service
	account                  string
	router, attachment, g, s string
	client                   *er.ErClient
	url                      string
	key                      control.AccessKey
	mux                      *http.ServeMux
	mu                       sync.Mutex
	skew                     time.Duration
}

func newRig(t testing.TB) *rig {
	t.Helper()
	ctx := context.Background()
	svc, err := control.New(control.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	boot, err := svc.EnsureBootstrap(ctx, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{svc: svc, account: boot.Key.AccountID, key: boot.Key}
	name, kind, iface := "er", control.KindCapture, "eth0"
	gw, err := svc.CreateGateway(ctx, r.account, control.GatewayInput{Name: &name, Kind: &kind})
	if err != nil {
		t.Fatal(err)
	}
	att, err := svc.CreateAttachment(ctx, r.account, gw.ID, control.AttachmentInput{Name: &name, Interface: &iface})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := svc.CreateLogGroup(ctx, r.account, &name)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := svc.CreateLogStream(ctx, r.account, lg.ID, &name, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.router, r.attachment, r.g, r.s = gw.ID, att.ID, lg.ID, ls.ID
	keys := func(ctx context.Context, id string) (string, string, bool, error) {
		k, err := svc.LookupKey(ctx, id)
		if errors.Is(err, control.ErrNotFound) {
			return "", "", false, nil
		}
		return k.Secret, k.AccountID, err == nil, err
	}
	mux := http.NewServeMux()
	r.mux = mux
	Register(mux, Config{Now: func() time.Time {
		r.mu.Lock()
		defer r.mu.Unlock()
		return time.Now().Add(r.skew)
	}}, Deps{Control: svc, Keys: keys})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	r.url = ts.URL
	cred := basic.NewCredentialsBuilder().WithAk(boot.Key.ID).WithSk(boot.Key.Secret).WithProjectId(r.account).Build()
	r.client = er.NewErClient(er.ErClientBuilder().WithRegion(region.NewRegion("local-1", ts.URL)).WithCredential(cred).Build())
	return r
}

func (r *rig) settle(t *testing.T) {
	t.Helper()
	if err := r.svc.Settle(context.Background(), r.svc.CheckOutputs); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) create(t *testing.T) *model.FlowLog {
	t.Helper()
	res, err := r.client.CreateFlowLog(&model.CreateFlowLogRequest{ErId: r.router, Body: &model.CreateFlowLogRequestBody{
		FlowLog: &model.FlowLogRequest{Name: "fl", ResourceType: model.GetFlowLogRequestResourceTypeEnum().ATTACHMENT,
			ResourceId: r.attachment, LogGroupId: r.g, LogStreamId: r.s,
			LogStoreType: model.GetFlowLogRequestLogStoreTypeEnum().LTS}}})
	if err != nil {
		t.Fatal(err)
	}
	return res.FlowLog
}

func code(t *testing.T, err error, status int, want string) {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) || se.StatusCode != status || se.ErrorCode != want {
		t.Fatalf("got %v, want %d %s", err, status, want)
	}
	if se.RequestId == "" {
		t.Fatal("no request id (X-Request-Id) in the error")
	}
}

// nextSecond waits until the wall clock enters a new second, so that the
// SDK signs an identical call with a new X-Sdk-Date: a new request.
func nextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
}

// The SDK signs X-Sdk-Date to the second and adds no nonce, so an identical
// changing call within one second is the same signed request: the server
// takes it for a replay. Reads repeat; a unique header makes calls distinct.
func TestSDKReplay(t *testing.T) {
	r := newRig(t)
	fl := r.create(t)
	r.settle(t)
	date := map[string]string{"X-Sdk-Date": time.Now().UTC().Format("20060102T150405Z")}
	enable := &model.EnableFlowLogRequest{ErId: r.router, FlowLogId: fl.Id}
	if _, err := r.client.EnableFlowLogInvoker(enable).AddHeaders(date).Invoke(); err != nil {
		t.Fatal(err)
	}
	_, err := r.client.EnableFlowLogInvoker(enable).AddHeaders(date).Invoke()
	code(t, err, 401, "Auth.Replay")
	list := &model.ListFlowLogsRequest{ErId: r.router}
	for i := 0; i < 2; i++ {
		if _, err := r.client.ListFlowLogsInvoker(list).AddHeaders(date).Invoke(); err != nil {
			t.Fatalf("identical GET %d: %v", i, err)
		}
	}
	for i := 0; i < 2; i++ {
		hdr := map[string]string{"X-Sdk-Date": date["X-Sdk-Date"], "X-Flowlog-Nonce": fmt.Sprint(i)}
		if _, err := r.client.DisableFlowLogInvoker(&model.DisableFlowLogRequest{ErId: r.router, FlowLogId: fl.Id}).
			AddHeaders(hdr).Invoke(); err != nil {
			t.Fatalf("disable with nonce %d: %v", i, err)
		}
		r.settle(t)
	}
}

// Delete is allowed only in available, deleting and failed; the other
// operations are refused while the flow log is being deleted.
func TestBeingOperated(t *testing.T) {
	r := newRig(t)
	fl := r.create(t)
	del := &model.DeleteFlowLogRequest{ErId: r.router, FlowLogId: fl.Id}
	_, err := r.client.DeleteFlowLog(del)
	code(t, err, 400, "ER.04008502") // pending
	nextSecond()                     // the same call within one second would be a replay (TestSDKReplay)

	r.settle(t)
	name := "renamed"
	up, err := r.client.UpdateFlowLog(&model.UpdateFlowLogRequest{ErId: r.router, FlowLogId: fl.Id,
		Body: &model.UpdateFlowLogRequestBody{Name: &name}})
	if err != nil || up.FlowLog.State != "modifying" {
		t.Fatalf("update: %v %+v", err, up)
	}
	nextSecond()
	_, err = r.client.DeleteFlowLog(del)
	code(t, err, 400, "ER.04008502") // modifying

	r.settle(t)
	nextSecond()
	if _, err := r.client.DeleteFlowLog(del); err != nil {
		t.Fatal(err)
	}
	show, err := r.client.ShowFlowLog(&model.ShowFlowLogRequest{ErId: r.router, FlowLogId: fl.Id})
	if err != nil || show.FlowLog.State != "deleting" {
		t.Fatalf("after delete: %v %+v", err, show)
	}
	nextSecond()
	if _, err := r.client.DeleteFlowLog(del); err != nil {
		t.Fatalf("deleting again is allowed: %v", err)
	}
	nextSecond()
	_, err = r.client.UpdateFlowLog(&model.UpdateFlowLogRequest{ErId: r.router, FlowLogId: fl.Id,
		Body: &model.UpdateFlowLogRequestBody{Name: &name}})
	code(t, err, 400, "ER.04008502")
	_, err = r.client.EnableFlowLog(&model.EnableFlowLogRequest{ErId: r.router, FlowLogId: fl.Id})
	code(t, err, 400, "ER.04008502")

	r.settle(t)
	_, err = r.client.ShowFlowLog(&model.ShowFlowLogRequest{ErId: r.router, FlowLogId: fl.Id})
	code(t, err, 400, "ER.04008501")
}

// A flow log the data plane cannot run is failed, and may be deleted.
func TestFailedMayBeDeleted(t *testing.T) {
	r := newRig(t)
	fl := r.create(t)
	broken := func(context.Context, control.FlowLog) (string, bool) { return "interface eth0 does not exist", true }
	if err := r.svc.Settle(context.Background(), broken); err != nil {
		t.Fatal(err)
	}
	show, err := r.client.ShowFlowLog(&model.ShowFlowLogRequest{ErId: r.router, FlowLogId: fl.Id})
	if err != nil || show.FlowLog.State != "failed" {
		t.Fatalf("show: %v %+v", err, show)
	}
	if _, err := r.client.DeleteFlowLog(&model.DeleteFlowLogRequest{ErId: r.router, FlowLogId: fl.Id}); err != nil {
		t.Fatalf("deleting a failed flow log: %v", err)
	}
}

// X-Sdk-Date must be within 5 minutes of the server's clock.
func TestSDKDateWindow(t *testing.T) {
	r := newRig(t)
	list := &model.ListFlowLogsRequest{ErId: r.router}
	for _, skew := range []time.Duration{6 * time.Minute, -6 * time.Minute} {
		r.mu.Lock()
		r.skew = skew
		r.mu.Unlock()
		_, err := r.client.ListFlowLogs(list)
		code(t, err, 401, "APIGW.0301")
	}
	for _, skew := range []time.Duration{4 * time.Minute, -4 * time.Minute} {
		r.mu.Lock()
		r.skew = skew
		r.mu.Unlock()
		if _, err := r.client.ListFlowLogs(list); err != nil {
			t.Fatalf("skew %v: %v", skew, err)
		}
	}
}

// Bodies and queries that are not what the API takes get a precise 4xx.
func TestMalformedRequests(t *testing.T) {
	r := newRig(t)
	base := "/v3/" + r.account + "/enterprise-router/" + r.router + "/flow-logs"
	fl := r.create(t)
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", base, `{`, 400, "ER.04009005"},
		{"POST", base, `{"flow_log":{"name":"x"}} trailing`, 400, "ER.04009005"},
		{"POST", base, `{}`, 400, "ER.04009005"},
		{"POST", base, `{"flow_log":{"name":1}}`, 400, "ER.04009005"},
		{"POST", base, `{"flow_log":{"name":"x","state":"available"}}`, 400, "ER.04009005"},
		{"POST", base, strings.Repeat(" ", 1<<20+1), 413, "ER.04009005"},
		{"PUT", base + "/" + fl.Id, `{}`, 400, "ER.04009005"},
		{"PUT", base + "/" + fl.Id, `{"enabled":false}`, 400, "ER.04009005"},
		{"GET", base + "?limit=ten", "", 400, "ER.04009005"},
		{"GET", base + "?sort_dir=up", "", 400, "ER.04009005"},
		{"GET", base + "?resource_type=vpc", "", 400, "ER.04009005"},
	} {
		status, body := r.raw(t, c.method, c.path, c.body)
		if status != c.status || body.Code != c.code || body.RequestID == "" {
			t.Errorf("%s %s %.40q: %d %+v, want %d %s", c.method, c.path, c.body, status, body, c.status, c.code)
		}
	}
}

// raw sends a request signed with the account's key, as the SDK signs.
func (r *rig) raw(t *testing.T, method, path, body string) (int, errorBody) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	auth.Sign(req, []byte(body), r.key.ID, r.key.Secret, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errorBody
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}
