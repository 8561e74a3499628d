package aliyun

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzServe feeds arbitrary query strings and form bodies to the endpoint:
// every answer must be a well-formed refusal, never a panic or a success.
func FuzzServe(f *testing.F) {
	f.Add("GET", "Action=CreateFlowLog&Version=2018-03-13", "")
	f.Add("POST", "", "AccessKeyId=AK-one&Signature=x&SignatureMethod=HMAC-SHA1&SignatureNonce=1&Timestamp=2026-01-01T00:00:00Z")
	f.Add("POST", "Format=XML&%zz", "a=%")
	f.Add("DELETE", "Format=xml", "")
	srv := NewServer(Config{}, testKeys)
	srv.Handle("CreateFlowLog", func(context.Context, *Call) (any, error) { return &probeCreateResponse{}, nil })
	f.Fuzz(func(t *testing.T, method, query, body string) {
		if method != "GET" && method != "POST" {
			method = "PUT"
		}
		req := httptest.NewRequest(method, "/", strings.NewReader(body))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code < 400 || w.Code >= 600 {
			t.Fatalf("%s ?%s %q answered %d", method, query, body, w.Code)
		}
		if w.Header().Get("X-Request-Id") == "" || !strings.Contains(w.Body.String(), "Code") {
			t.Fatalf("refusal without request id or code: %s", w.Body.String())
		}
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("internal error on input %q %q", query, body)
		}
	})
}
