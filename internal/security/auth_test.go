package security

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	alierrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/region"
	er "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/sdktest"
	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// authCaptured is a request as an eavesdropper saw it on the wire.
type authCaptured struct {
	method, url string
	header      http.Header
	body        []byte
}

// authRecorder is an http.RoundTripper that keeps a copy of every request
// it sends: the attacker's view of a legitimate client's traffic.
type authRecorder struct {
	mu   sync.Mutex
	reqs []authCaptured
}

func (r *authRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, authCaptured{req.Method, req.URL.String(), req.Header.Clone(), body})
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *authRecorder) last(t *testing.T) authCaptured {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request captured")
	}
	return r.reqs[len(r.reqs)-1]
}

// authResend sends a captured request again, with body (nil: the original)
// and extra headers; it returns the status and the decoded JSON answer.
func authResend(t *testing.T, c authCaptured, body []byte, extra map[string]string) (int, map[string]any) {
	t.Helper()
	if body == nil {
		body = c.body
	}
	req, err := http.NewRequest(c.method, c.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = c.header.Clone()
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// authRecordingClient is the bootstrap client whose traffic is captured.
func authRecordingClient(s *testutil.Server) (*client.Client, *authRecorder) {
	rec := &authRecorder{}
	c := bootstrapClient(s)
	c.HTTP.Transport = rec
	return c, rec
}

// authER makes, through /v1, what a Huawei flow log needs: an enterprise
// router (gateway) with an attachment, and a log group with a stream.
type authER struct{ router, attachment, group, stream string }

func authNewER(t *testing.T, c *client.Client) authER {
	t.Helper()
	ctx := context.Background()
	var gw, att, lg, ls struct{ ID string }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.JSON(ctx, "POST", "/v1/gateways", nil, map[string]string{"name": "er", "kind": "capture"}, &gw))
	must(c.JSON(ctx, "POST", "/v1/gateways/"+gw.ID+"/attachments", nil,
		map[string]string{"name": "lo", "interface": "lo"}, &att))
	must(c.JSON(ctx, "POST", "/v1/log-groups", nil, map[string]string{"name": "g"}, &lg))
	must(c.JSON(ctx, "POST", "/v1/log-groups/"+lg.ID+"/log-streams", nil, map[string]string{"name": "s"}, &ls))
	return authER{gw.ID, att.ID, lg.ID, ls.ID}
}

func (e authER) create(name string) *model.CreateFlowLogRequest {
	return &model.CreateFlowLogRequest{ErId: e.router, Body: &model.CreateFlowLogRequestBody{FlowLog: &model.FlowLogRequest{
		Name: name, ResourceType: model.GetFlowLogRequestResourceTypeEnum().ATTACHMENT, ResourceId: e.attachment,
		LogGroupId: e.group, LogStreamId: e.stream, LogStoreType: model.GetFlowLogRequestLogStoreTypeEnum().LTS}}}
}

// authHuawei is the official Huawei ER client of the bootstrap account
// (as sdktest.Huawei builds it), sending through rt.
func authHuawei(t *testing.T, s *testutil.Server, rt http.RoundTripper) *er.ErClient {
	t.Helper()
	cred, err := basic.NewCredentialsBuilder().WithAk(s.KeyID).WithSk(s.Secret).WithProjectId(s.Account).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := er.ErClientBuilder().WithRegion(region.NewRegion("local-1", s.URL)).WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithHttpRoundTripper(rt)).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	return er.NewErClient(hc)
}

func authSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A captured signed request resent with another body, and the original
// body's hash in X-Sdk-Content-Sha256, is refused: native /v1 and Huawei.
func TestBodySubstitution(t *testing.T) {
	s := startServer(t)
	c, rec := authRecordingClient(s)
	ctx := context.Background()
	if err := c.JSON(ctx, "POST", "/v1/gateways", nil, map[string]string{"name": "lab", "kind": "capture"}, nil); err != nil {
		t.Fatal(err)
	}
	orig := rec.last(t)
	evil := []byte(`{"name":"evil","kind":"exporter","exporter_addr":"203.0.113.9"}`)
	status, body := authResend(t, orig, evil, map[string]string{"X-Sdk-Content-Sha256": authSHA(orig.body)})
	if status != 401 || body["code"] != "Auth.ContentHashMismatch" {
		t.Fatalf("/v1 body substitution answered %d %v", status, body)
	}
	var gws struct{ Gateways []struct{ Name string } }
	if err := bootstrapClient(s).JSON(ctx, "GET", "/v1/gateways", nil, nil, &gws); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws.Gateways {
		if g.Name == "evil" {
			t.Fatal("the substituted body was applied")
		}
	}

	er := authNewER(t, bootstrapClient(s))
	hw := authHuawei(t, s, rec)
	if _, err := hw.CreateFlowLog(er.create("fl")); err != nil {
		t.Fatal(err)
	}
	orig = rec.last(t)
	evil = bytes.Replace(orig.body, []byte(`"fl"`), []byte(`"evil"`), 1)
	if bytes.Equal(evil, orig.body) {
		t.Fatalf("captured Huawei body %s", orig.body)
	}
	status, body = authResend(t, orig, evil, map[string]string{"X-Sdk-Content-Sha256": authSHA(orig.body)})
	if status != 401 || body["error_code"] != "Auth.ContentHashMismatch" {
		t.Fatalf("Huawei body substitution answered %d %v", status, body)
	}
	// UNSIGNED-PAYLOAD does not stand in for a body either.
	status, body = authResend(t, orig, evil, map[string]string{"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
	if status != 401 || body["error_code"] != "Auth.ContentHashMismatch" {
		t.Fatalf("Huawei UNSIGNED-PAYLOAD with a body answered %d %v", status, body)
	}
}

// A captured changing request is accepted once; a captured read repeats.
// Native /v1 (POST /v1/access-keys hands out a secret), Huawei SDK create,
// Alibaba SDK call with its SignatureNonce.
func TestReplayMutatingRequest(t *testing.T) {
	s := startServer(t)
	c, rec := authRecordingClient(s)
	ctx := context.Background()
	if err := c.JSON(ctx, "POST", "/v1/access-keys", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	post := rec.last(t)
	if status, body := authResend(t, post, nil, nil); status != 401 || body["code"] != "Auth.Replay" {
		t.Fatalf("replayed POST /v1/access-keys answered %d %v", status, body)
	}
	if err := c.JSON(ctx, "GET", "/v1/gateways", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	get := rec.last(t)
	for i := 0; i < 2; i++ {
		if status, body := authResend(t, get, nil, nil); status != 200 {
			t.Fatalf("identical GET %d answered %d %v", i, status, body)
		}
	}
	// The client's signed nonce: the same call twice at once is two requests.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.JSON(ctx, "POST", "/v1/gateways", nil, map[string]string{"name": "twin", "kind": "capture"}, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("identical calls of the flowlog client: %v", err)
	}

	er := authNewER(t, bootstrapClient(s))
	hw := authHuawei(t, s, rec)
	if _, err := hw.CreateFlowLog(er.create("fl")); err != nil {
		t.Fatal(err)
	}
	if status, body := authResend(t, rec.last(t), nil, nil); status != 401 || body["error_code"] != "Auth.Replay" {
		t.Fatalf("replayed Huawei create answered %d %v", status, body)
	}

	al := sdktest.Aliyun(t, s.Addr, s.KeyID, s.Secret)
	al.SetTransport(rec)
	if _, err := al.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest()); err != nil {
		t.Fatal(err)
	}
	if status, body := authResend(t, rec.last(t), nil, nil); status != 400 || body["Code"] != "SignatureNonceUsed" {
		t.Fatalf("replayed Alibaba call answered %d %v", status, body)
	}
}

// One account filling its replay memory (changing requests on /v1, nonces
// on the Alibaba API) is refused itself; another account is served.
func TestReplayCacheIsPerAccount(t *testing.T) {
	const bound = 40
	s := startServer(t, fmt.Sprintf("FLOWLOG_REPLAY_PER_ACCOUNT=%d", bound))
	a := bootstrapClient(s)
	ctx := context.Background()
	var other struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	if err := a.JSON(ctx, "POST", "/v1/access-keys", nil, map[string]bool{"new_account": true}, &other); err != nil {
		t.Fatal(err)
	}
	b := client.New(s.URL, other.ID, other.Secret)
	// Cheap changing requests: each is authenticated (and remembered), then
	// answered 404.
	var last error
	for i := 0; i < bound+5; i++ {
		_, last = a.Do(ctx, "DELETE", "/v1/gateways/gw-none", nil, nil, nil)
	}
	var ae *client.APIError
	if !errors.As(last, &ae) || ae.Status != 429 || ae.Code != "TooManyRequests" {
		t.Fatalf("the filling account: %v", last)
	}
	if err := b.JSON(ctx, "POST", "/v1/gateways", nil, map[string]string{"name": "b", "kind": "capture"}, nil); err != nil {
		t.Fatalf("another account after the first filled its replay memory: %v", err)
	}

	al := sdktest.Aliyun(t, s.Addr, s.KeyID, s.Secret)
	var err error
	for i := 0; i < bound+1; i++ {
		_, err = al.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	}
	var se *alierrors.ServerError
	if !errors.As(err, &se) || se.HttpStatus() != 503 {
		t.Fatalf("the account filling its Alibaba nonces: %v", err)
	}
	if _, err := sdktest.Aliyun(t, s.Addr, other.ID, other.Secret).DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest()); err != nil {
		t.Fatalf("another account's Alibaba call: %v", err)
	}
}
