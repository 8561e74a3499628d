package aliyun

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"flowlog/internal/api/auth"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
)

// These tests drive the RPC endpoint with the official Alibaba Go SDK,
// unmodified, so what it signs and parses is the oracle.

var testKeys = auth.Lookup(func(_ context.Context, id string) (string, string, bool, error) {
	switch id {
	case "AK-one":
		return "secret-one", "acct-1", true, nil
	case "AK-two":
		return "secret-two", "acct-2", true, nil
	}
	return "", "", false, nil
})

type probeSag struct {
	SmartAGId   string `json:"SmartAGId" xml:"SmartAGId"`
	Name        string `json:"Name" xml:"Name"`
	Description string `json:"Description" xml:"Description"`
}

type probeUnbindResponse struct {
	RequestID string `json:"RequestId" xml:"RequestId"`
	Count     int    `json:"Count" xml:"Count"`
	Sags      struct {
		Sag []probeSag `json:"Sag" xml:"Sag"`
	} `json:"Sags" xml:"Sags"`
}

func (r *probeUnbindResponse) setRequestID(id string) { r.RequestID = id }

type probeCreateResponse struct {
	RequestID       string `json:"RequestId" xml:"RequestId"`
	FlowLogId       string `json:"FlowLogId" xml:"FlowLogId"`
	ResourceGroupId string `json:"ResourceGroupId" xml:"ResourceGroupId"`
}

func (r *probeCreateResponse) setRequestID(id string) { r.RequestID = id }

// rig is an RPC server with two probe actions that echo what they were
// given, behind a recorder of the raw requests for replays.
type rig struct {
	t      *testing.T
	srv    *Server
	url    string
	mu     sync.Mutex
	clock  time.Duration // server clock offset
	rawReq []recorded
}

type recorded struct {
	method, uri, ctype string
	body               []byte
}

func newRig(t *testing.T, cfg Config) *rig {
	r := &rig{t: t}
	cfg.Now = func() time.Time {
		r.mu.Lock()
		defer r.mu.Unlock()
		return time.Now().Add(r.clock)
	}
	r.srv = NewServer(cfg, testKeys)
	r.srv.Handle("DescribeUnbindFlowLogSags", func(_ context.Context, c *Call) (any, error) {
		res := &probeUnbindResponse{Count: 1}
		res.Sags.Sag = []probeSag{{SmartAGId: "sag-probe", Name: c.Account, Description: c.Params["RegionId"]}}
		return res, nil
	})
	r.srv.Handle("CreateFlowLog", func(_ context.Context, c *Call) (any, error) {
		if c.Params["OutputType"] == "bad" {
			return nil, badRequest("IllegalParam.OutputType", "The specified OutputType is invalid.")
		}
		if c.Params["OutputType"] == "boom" {
			return nil, errors.New("disk on fire")
		}
		return &probeCreateResponse{FlowLogId: c.Params["Name"], ResourceGroupId: c.Params["Description"]}, nil
	})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.rawReq = append(r.rawReq, recorded{req.Method, req.URL.RequestURI(), req.Header.Get("Content-Type"), body})
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.srv.ServeHTTP(w, req)
	}))
	t.Cleanup(ts.Close)
	r.url = ts.URL
	return r
}

func (r *rig) setClock(d time.Duration) {
	r.mu.Lock()
	r.clock = d
	r.mu.Unlock()
}

func (r *rig) last() recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rawReq[len(r.rawReq)-1]
}

func (r *rig) client(ak, sk string) *smartag.Client {
	c, err := smartag.NewClientWithAccessKey("cn-shanghai", ak, sk)
	if err != nil {
		r.t.Fatal(err)
	}
	c.Domain = strings.TrimPrefix(r.url, "http://")
	return c
}

func serverError(t *testing.T, err error) *sdkerrors.ServerError {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("want an SDK ServerError, got %v", err)
	}
	return se
}

func expectCode(t *testing.T, err error, status int, code string) *sdkerrors.ServerError {
	t.Helper()
	se := serverError(t, err)
	if se.HttpStatus() != status || se.ErrorCode() != code {
		t.Fatalf("got %d %s (%s), want %d %s", se.HttpStatus(), se.ErrorCode(), se.Message(), status, code)
	}
	if se.RequestId() == "" || se.HostId() == "" || se.Recommend() == "" {
		t.Fatalf("error body lacks RequestId/HostId/Recommend: %v", se)
	}
	return se
}

func TestSDKSignedRequestAccepted(t *testing.T) {
	r := newRig(t, Config{})
	for _, ak := range []struct{ id, secret, account string }{
		{"AK-one", "secret-one", "acct-1"}, {"AK-two", "secret-two", "acct-2"},
	} {
		res, err := r.client(ak.id, ak.secret).DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Sags.Sag) != 1 || res.Sags.Sag[0].Name != ak.account || res.Sags.Sag[0].Description != "cn-shanghai" {
			t.Fatalf("%s: response %+v", ak.id, res.Sags)
		}
		if res.RequestId == "" || res.GetHttpHeaders()["X-Request-Id"][0] != res.RequestId {
			t.Fatalf("RequestId %q vs header %v", res.RequestId, res.GetHttpHeaders()["X-Request-Id"])
		}
	}
}

// Parameter values with every class of character percent-encoding treats
// specially reach the action intact and are signed the same on both sides.
func TestSDKSpecialCharacters(t *testing.T) {
	r := newRig(t, Config{})
	for _, s := range []string{"a b*c~d/e+f&g=h%i", "流日志 ünïcödé", "", "'\"<>;#?"} {
		req := smartag.CreateCreateFlowLogRequest()
		req.Name = "n" + s
		req.Description = s
		req.OutputType = "sls"
		res, err := r.client("AK-one", "secret-one").CreateFlowLog(req)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if res.FlowLogId != "n"+s || res.ResourceGroupId != s {
			t.Fatalf("%q came back as %q / %q", s, res.FlowLogId, res.ResourceGroupId)
		}
	}
}

func TestSDKFormatXML(t *testing.T) {
	r := newRig(t, Config{})
	req := smartag.CreateCreateFlowLogRequest()
	req.AcceptFormat = "XML"
	req.Name, req.Description = "x<&>y", "desc"
	res, err := r.client("AK-one", "secret-one").CreateFlowLog(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.FlowLogId != "x<&>y" || res.ResourceGroupId != "desc" || res.RequestId == "" {
		t.Fatalf("XML response decoded to %+v", res)
	}
	if !strings.HasPrefix(res.GetHttpContentString(), "<?xml") || !strings.Contains(res.GetHttpContentString(), "<CreateFlowLogResponse>") {
		t.Fatalf("not an XML document: %s", res.GetHttpContentString())
	}
	// An error in XML is Alibaba's <Error> document.
	req = smartag.CreateCreateFlowLogRequest()
	req.AcceptFormat = "XML"
	req.OutputType = "bad"
	_, err = r.client("AK-one", "secret-one").CreateFlowLog(req)
	se := serverError(t, err)
	var doc struct {
		XMLName                                     xml.Name
		RequestId, HostId, Code, Message, Recommend string
	}
	if err := xml.Unmarshal([]byte(se.Message()), &doc); err != nil {
		t.Fatalf("XML error body %q: %v", se.Message(), err)
	}
	if doc.XMLName.Local != "Error" || doc.Code != "IllegalParam.OutputType" || doc.RequestId == "" || doc.HostId == "" {
		t.Fatalf("XML error %+v", doc)
	}
}

// With a wrong secret the SDK compares our string to sign with its own and,
// finding them equal, blames the secret: proof the canonicalisation agrees.
func TestSDKWrongSecret(t *testing.T) {
	r := newRig(t, Config{})
	_, err := r.client("AK-one", "not-the-secret").DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
	se := expectCode(t, err, 400, "SignatureDoesNotMatch")
	if se.Recommend() != "InvalidAccessKeySecret: Please check you AccessKeySecret" {
		t.Fatalf("the SDK did not recognise our string to sign as its own: %q", se.Recommend())
	}
}

func TestSDKUnknownKey(t *testing.T) {
	r := newRig(t, Config{})
	_, err := r.client("AK-nobody", "x").DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
	expectCode(t, err, 404, "InvalidAccessKeyId.NotFound")
}

func TestSDKStaleTimestamp(t *testing.T) {
	r := newRig(t, Config{})
	c := r.client("AK-one", "secret-one")
	for _, skew := range []time.Duration{6 * time.Minute, -6 * time.Minute} {
		r.setClock(skew)
		_, err := c.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
		expectCode(t, err, 400, "InvalidTimeStamp.Expired")
	}
	for _, skew := range []time.Duration{4 * time.Minute, -4 * time.Minute} {
		r.setClock(skew)
		if _, err := c.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest()); err != nil {
			t.Fatalf("skew %v inside the window: %v", skew, err)
		}
	}
}

func replay(t *testing.T, base string, rec recorded) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(rec.method, base+rec.uri, bytes.NewReader(rec.body))
	req.Header.Set("Content-Type", rec.ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestReplayedNonce(t *testing.T) {
	r := newRig(t, Config{})
	if _, err := r.client("AK-one", "secret-one").DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest()); err != nil {
		t.Fatal(err)
	}
	captured := r.last()
	status, body := replay(t, r.url, captured)
	if status != 400 || body["Code"] != "SignatureNonceUsed" {
		t.Fatalf("replay answered %d %v", status, body)
	}
	// Once the nonce is forgotten the timestamp is out of the window.
	r.setClock(6 * time.Minute)
	status, body = replay(t, r.url, captured)
	if status != 400 || body["Code"] != "InvalidTimeStamp.Expired" {
		t.Fatalf("late replay answered %d %v", status, body)
	}
}

func TestNonceMemoryBound(t *testing.T) {
	r := newRig(t, Config{MaxNonces: 2})
	c := r.client("AK-one", "secret-one")
	for i := 0; i < 2; i++ {
		if _, err := c.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest()); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
	expectCode(t, err, 503, "ServiceUnavailable")
	// The bound is the account's: another account is served.
	if _, err := r.client("AK-two", "secret-two").DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest()); err != nil {
		t.Fatalf("another account refused once the first filled its nonces: %v", err)
	}
}

func TestSDKRouting(t *testing.T) {
	r := newRig(t, Config{})
	c := r.client("AK-one", "secret-one")
	common := func(version, action string) error {
		req := requests.NewCommonRequest()
		req.Product, req.Version, req.ApiName = "Smartag", version, action
		req.Domain = c.Domain
		_, err := c.ProcessCommonRequest(req)
		return err
	}
	expectCode(t, common(Version, "RunInstances"), 404, "InvalidAction.NotFound")
	expectCode(t, common("2014-05-26", "CreateFlowLog"), 400, "InvalidVersion")
	if err := common(Version, "CreateFlowLog"); err != nil {
		t.Fatal(err)
	}
}

func TestActionErrors(t *testing.T) {
	r := newRig(t, Config{})
	req := smartag.CreateCreateFlowLogRequest()
	req.OutputType = "bad"
	_, err := r.client("AK-one", "secret-one").CreateFlowLog(req)
	se := expectCode(t, err, 400, "IllegalParam.OutputType")
	if se.Message() != "The specified OutputType is invalid." {
		t.Fatalf("message %q", se.Message())
	}
	req = smartag.CreateCreateFlowLogRequest()
	req.OutputType = "boom"
	_, err = r.client("AK-one", "secret-one").CreateFlowLog(req)
	se = expectCode(t, err, 500, "InternalError")
	if strings.Contains(se.Message(), "fire") {
		t.Fatal("an internal error leaked its cause to the client")
	}
}

// signed builds parameters signed for method with the package's own signer,
// which the SDK tests above prove equal to the SDK's.
func signed(method string, extra map[string]string) url.Values {
	p := map[string]string{
		"AccessKeyId": "AK-one", "Action": "DescribeUnbindFlowLogSags", "Version": Version,
		"Format": "JSON", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
		"SignatureNonce": time.Now().Format(time.RFC3339Nano) + extra["RegionId"],
		"Timestamp":      time.Now().UTC().Format("2006-01-02T15:04:05Z"), "RegionId": "cn-hangzhou",
	}
	for k, v := range extra {
		p[k] = v
	}
	p["Signature"] = Sign("secret-one", StringToSign(method, p))
	v := url.Values{}
	for k, s := range p {
		v.Set(k, s)
	}
	return v
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// Clients other than the Go SDK use GET, or put parameters in a form body;
// both, and a split between query and body, are accepted.
func TestQueryAndFormParameters(t *testing.T) {
	r := newRig(t, Config{})
	get, _ := http.NewRequest("GET", r.url+"/?"+signed("GET", map[string]string{"RegionId": "r-get"}).Encode(), nil)
	if s, b := do(t, get); s != 200 {
		t.Fatalf("GET: %d %v", s, b)
	}
	form := signed("POST", map[string]string{"RegionId": "r-form"})
	post, _ := http.NewRequest("POST", r.url+"/", strings.NewReader(form.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s, b := do(t, post); s != 200 {
		t.Fatalf("POST form: %d %v", s, b)
	}
	split := signed("POST", map[string]string{"RegionId": "r-split"})
	q := url.Values{}
	for _, k := range []string{"Action", "Version", "AccessKeyId", "Signature"} {
		q.Set(k, split.Get(k))
		split.Del(k)
	}
	post, _ = http.NewRequest("POST", r.url+"/?"+q.Encode(), strings.NewReader(split.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	s, b := do(t, post)
	if s != 200 {
		t.Fatalf("POST split: %d %v", s, b)
	}
	if sags := b["Sags"].(map[string]any)["Sag"].([]any); sags[0].(map[string]any)["Description"] != "r-split" {
		t.Fatalf("split request saw %v", b)
	}
}

func TestMalformedRequests(t *testing.T) {
	r := newRig(t, Config{})
	drop := func(k string) url.Values { v := signed("GET", nil); v.Del(k); return v }
	with := func(k, val string) url.Values { v := signed("GET", nil); v.Set(k, val); return v }
	for _, c := range []struct {
		name   string
		q      url.Values
		status int
		code   string
	}{
		{"no AccessKeyId", drop("AccessKeyId"), 400, "MissingAccessKeyId"},
		{"no Signature", drop("Signature"), 400, "MissingSignature"},
		{"no nonce", drop("SignatureNonce"), 400, "MissingSignatureNonce"},
		{"no Timestamp", drop("Timestamp"), 400, "MissingTimestamp"},
		{"no SignatureMethod", drop("SignatureMethod"), 400, "MissingSignatureMethod"},
		{"SHA256 method", with("SignatureMethod", "HMAC-SHA256"), 400, "InvalidSignatureMethod"},
		{"version 2.0", with("SignatureVersion", "2.0"), 400, "InvalidSignatureVersion"},
		{"bad Timestamp", with("Timestamp", "yesterday"), 400, "InvalidTimeStamp.Format"},
		{"tampered", with("RegionId", "elsewhere"), 400, "SignatureDoesNotMatch"},
		{"bad signature", with("Signature", "AAAA"), 400, "SignatureDoesNotMatch"},
	} {
		req, _ := http.NewRequest("GET", r.url+"/?"+c.q.Encode(), nil)
		s, b := do(t, req)
		if s != c.status || b["Code"] != c.code || b["RequestId"] == "" || b["Message"] == "" {
			t.Errorf("%s: %d %v, want %d %s", c.name, s, b, c.status, c.code)
		}
	}
	req, _ := http.NewRequest("PUT", r.url+"/?"+signed("PUT", nil).Encode(), nil)
	if s, b := do(t, req); s != 405 || b["Code"] != "UnsupportedHTTPMethod" {
		t.Errorf("PUT: %d %v", s, b)
	}
	big := strings.NewReader("A=" + strings.Repeat("x", 1<<20+1))
	req, _ = http.NewRequest("POST", r.url+"/", big)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s, b := do(t, req); s != 413 || b["Code"] != "InvalidParameter.BodyTooLarge" {
		t.Errorf("big body: %d %v", s, b)
	}
}

// flowlog has no security-token service: a request carrying an STS token is
// refused as a feature it does not support, before its key is looked up.
func TestSDKSecurityTokenNotSupported(t *testing.T) {
	r := newRig(t, Config{})
	c, err := smartag.NewClientWithStsToken("cn-shanghai", "STS.AK-one", "secret-one", "token")
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = strings.TrimPrefix(r.url, "http://")
	_, err = c.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
	expectCode(t, err, 403, "FeatureNotSupport")
}

// Concurrent clients: every fresh nonce is accepted exactly once. (One SDK
// client per goroutine: the SDK's client is not safe for concurrent use.)
func TestSDKConcurrent(t *testing.T) {
	r := newRig(t, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := r.client("AK-one", "secret-one")
			_, err := c.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := r.srv.verify.nonces.Len("acct-1"); n != 40 {
		t.Fatalf("%d nonces remembered, want 40", n)
	}
}
