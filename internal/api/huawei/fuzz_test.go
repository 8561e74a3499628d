package huawei

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"flowlog/internal/api/auth"
)

// FuzzRequests sends signed requests with arbitrary bodies and queries to
// every operation: each answer is a success or a precise 4xx, never a 5xx.
func FuzzRequests(f *testing.F) {
	f.Add(0, "", `{"flow_log":{"name":"a","resource_type":"attachment","resource_id":"x","log_group_id":"g","log_stream_id":"s","log_store_type":"LTS"}}`)
	f.Add(1, "limit=2&marker=fl-x&sort_key=name&sort_dir=desc&resource_id=a&resource_id=b", "")
	f.Add(2, "", `{"name":"","description":null}`)
	f.Add(3, "%zz", "\x00")
	r := newRig(f)
	f.Fuzz(func(t *testing.T, op int, query, body string) {
		base := "/v3/" + r.account + "/enterprise-router/" + r.router + "/flow-logs"
		method, path := "POST", base
		switch op % 4 {
		case 1:
			method = "GET"
		case 2:
			method, path = "PUT", base+"/fl-nothere"
		case 3:
			method, path = "POST", base+"/fl-nothere/disable"
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.URL.RawQuery = query
		auth.Sign(req, []byte(body), r.key.ID, r.key.Secret, time.Now())
		w := httptest.NewRecorder()
		r.mux.ServeHTTP(w, req)
		if w.Code >= 500 || w.Code == http.StatusUnauthorized {
			t.Fatalf("%s %s?%s %q: %d %s", method, path, query, body, w.Code, w.Body)
		}
	})
}
