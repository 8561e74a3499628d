package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// /metrics is open to Prometheus, or behind a bearer token when one is set.
func TestMetricsEndpoint(t *testing.T) {
	get := func(url, auth string) (int, string) {
		req, _ := http.NewRequest("GET", url+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	open := newEnv(t)
	if code, body := get(open.srv.URL, ""); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("open /metrics: %d %.200s", code, body)
	}
	closed := newEnv(t, "FLOWLOG_METRICS_TOKEN=s3cret-token")
	if code, body := get(closed.srv.URL, ""); code != 401 || !strings.Contains(body, "Auth.MetricsToken") {
		t.Fatalf("/metrics without the token: %d %.200s", code, body)
	}
	if code, _ := get(closed.srv.URL, "Bearer wrong"); code != 401 {
		t.Fatalf("/metrics with a wrong token: %d", code)
	}
	if code, body := get(closed.srv.URL, "Bearer s3cret-token"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics with the token: %d %.200s", code, body)
	}
	if _, stderr := closed.srv.Logs(); strings.Contains(stderr, "s3cret-token") {
		t.Fatal("the metrics token appears in the log")
	}
}
