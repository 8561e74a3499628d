package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"flowlog/internal/testutil"
)

// TestWebConsoleBesideAPIs: `flowlog serve` gives browsers the console at
// / and its client routes, while every API keeps its paths: the Alibaba
// RPC on / with parameters, /v1 (its 404 and 405 included), /healthz.
func TestWebConsoleBesideAPIs(t *testing.T) {
	srv := testutil.StartServer(t)
	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/", "/explore", "/flow-logs?x=1", "/sign-in"} {
		resp, body := get("GET", p)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, `<div id="app">`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: %d %s %.80q", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	for _, tc := range []struct {
		method, path string
		status       int
		has          string
	}{
		{"GET", "/?Action=DescribeFlowLogs&RegionId=cn-hangzhou&Format=JSON", 400, `"RequestId"`}, // unsigned: refused by the dialect
		{"POST", "/", 400, "RequestId"},
		{"GET", "/v1/nothing", 404, `"NotFound.Route"`},
		{"DELETE", "/v1/log-groups", 405, `"MethodNotAllowed"`},
		{"GET", "/v1/flow-logs", 401, `"Auth.`},
		{"GET", "/assets/missing.js", 404, `"NotFound.Route"`},
		{"GET", "/healthz", 200, "ok"},
	} {
		resp, body := get(tc.method, tc.path)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.has) || strings.Contains(body, `<div id="app">`) {
			t.Errorf("%s %s: %d %.200s, want %d with %s", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.has)
		}
	}
}
