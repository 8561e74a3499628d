package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"flowlog/internal/api"
	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// conformance checks every response the tests receive against the OpenAPI
// document the server publishes, and that each carries X-Request-Id.
type conformance struct {
	t      testing.TB
	router routers.Router
	next   http.RoundTripper
	mu     sync.Mutex
	seen   map[string]bool // "METHOD path-template status" checked
}

var (
	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
)

func loadDoc() (*openapi3.T, error) {
	docOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, docErr = loader.LoadFromData(api.OpenAPI)
		if docErr == nil {
			docErr = doc.Validate(context.Background())
		}
		if docErr == nil {
			doc.Servers = nil // match on paths only
		}
	})
	return doc, docErr
}

func newConformance(t testing.TB) *conformance {
	d, err := loadDoc()
	if err != nil {
		t.Fatalf("openapi document: %v", err)
	}
	r, err := gorillamux.NewRouter(d)
	if err != nil {
		t.Fatal(err)
	}
	return &conformance{t: t, router: r, next: http.DefaultTransport, seen: map[string]bool{}}
}

func (c *conformance) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.Header.Get("X-Request-Id") == "" {
		c.t.Errorf("%s %s: response without X-Request-Id", req.Method, req.URL.Path)
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// Not in the document: must be a JSON error (404/405).
		if resp.StatusCode != 404 && resp.StatusCode != 405 {
			c.t.Errorf("%s %s: not in the OpenAPI document but answered %d", req.Method, req.URL.Path, resp.StatusCode)
		}
		var e api.ErrorBody
		if json.Unmarshal(body, &e) != nil || e.Code == "" || e.RequestID == "" {
			c.t.Errorf("%s %s: error body is not {code,message,request_id}: %s", req.Method, req.URL.Path, body)
		}
		return resp, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		c.t.Errorf("%s %s → %d does not conform to the OpenAPI document: %v\nbody: %s",
			req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	c.mu.Lock()
	c.seen[fmt.Sprintf("%s %s %d", req.Method, route.Path, resp.StatusCode)] = true
	c.mu.Unlock()
	return resp, nil
}

// env is a running server and a client of its bootstrap account.
type env struct {
	t   testing.TB
	srv *testutil.Server
	c   *client.Client
	cf  *conformance
}

func newEnv(t testing.TB, serverEnv ...string) *env {
	srv := testutil.StartServer(t, serverEnv...)
	e := &env{t: t, srv: srv, cf: newConformance(t)}
	e.c = e.clientFor(srv.KeyID, srv.Secret)
	return e
}

func (e *env) clientFor(keyID, secret string) *client.Client {
	c := client.New(e.srv.URL, keyID, secret)
	c.HTTP.Transport = e.cf
	return c
}

// roundTrip sends req through the conformance checker and decodes the JSON
// answer (nil if none).
func (e *env) roundTrip(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	resp, err := e.cf.RoundTrip(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// must sends a request that must answer want, and returns the JSON object.
func (e *env) must(want int, method, path string, body any) map[string]any {
	e.t.Helper()
	return mustC(e.t, e.c, want, method, path, body)
}

func mustC(t testing.TB, c *client.Client, want int, method, path string, body any) map[string]any {
	t.Helper()
	got, m := testutil.Call(t, c, method, path, body)
	if got != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, got, want, m)
	}
	return m
}

// wantErr sends a request that must fail with status and code.
func (e *env) wantErr(status int, code, method, path string, body any) {
	e.t.Helper()
	wantErrC(e.t, e.c, status, code, method, path, body)
}

func wantErrC(t testing.TB, c *client.Client, status int, code, method, path string, body any) {
	t.Helper()
	got, m := testutil.Call(t, c, method, path, body)
	if got != status || m["code"] != code {
		t.Fatalf("%s %s %v: got %d %v, want %d %s", method, path, body, got, m, status, code)
	}
	if msg, _ := m["message"].(string); msg == "" {
		t.Fatalf("%s %s: error without a message: %v", method, path, m)
	}
}

func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return q
}

// list returns GET path?q as a JSON object.
func (e *env) list(path string, q url.Values) map[string]any {
	e.t.Helper()
	resp, err := e.c.Do(context.Background(), "GET", path, q, nil, nil)
	if err != nil {
		e.t.Fatalf("GET %s?%s: %v", path, q.Encode(), err)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Body, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func ids(items any) []string {
	var out []string
	for _, it := range items.([]any) {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// fixture makes a capture gateway with one attachment, and a log group with
// one stream, for flow-log tests.
type fixture struct{ gw, att, lg, ls string }

func (e *env) fixture(name string) fixture {
	e.t.Helper()
	gw := e.must(201, "POST", "/v1/gateways", map[string]any{"name": name, "kind": "capture"})
	att := e.must(201, "POST", "/v1/gateways/"+str(gw, "id")+"/attachments",
		map[string]any{"name": name + "-eth0", "interface": "eth0"})
	lg := e.must(201, "POST", "/v1/log-groups", map[string]any{"name": name})
	ls := e.must(201, "POST", "/v1/log-groups/"+str(lg, "id")+"/log-streams",
		map[string]any{"name": name, "retention_days": 3})
	return fixture{str(gw, "id"), str(att, "id"), str(lg, "id"), str(ls, "id")}
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }
