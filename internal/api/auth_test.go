package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// independentSign signs with a from-scratch implementation of the algorithm
// as cloud-apis.md describes it, signing exactly the headers given (host
// included when listed), so the server's verifier is checked against a
// second opinion rather than against itself.
func independentSign(r *http.Request, body []byte, keyID, secret string, date time.Time, signed []string) {
	d := date.UTC().Format("20060102T150405Z")
	r.Header.Set("X-Sdk-Date", d)
	sort.Strings(signed)
	var segs []string
	for _, s := range strings.Split(r.URL.Path, "/") {
		segs = append(segs, strings.ReplaceAll(url.QueryEscape(s), "+", "%20"))
	}
	uri := strings.Join(segs, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	q := r.URL.Query()
	var qs []string
	for k, vs := range q {
		for _, v := range vs {
			qs = append(qs, strings.ReplaceAll(url.QueryEscape(k), "+", "%20")+"="+strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	sort.Strings(qs)
	var hb strings.Builder
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.URL.Host
		}
		fmt.Fprintf(&hb, "%s:%s\n", h, strings.TrimSpace(v))
	}
	bh := sha256.Sum256(body)
	canon := strings.Join([]string{r.Method, uri, strings.Join(qs, "&"), hb.String(), strings.Join(signed, ";"),
		hex.EncodeToString(bh[:])}, "\n")
	ch := sha256.Sum256([]byte(canon))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("SDK-HMAC-SHA256\n" + d + "\n" + hex.EncodeToString(ch[:])))
	r.Header.Set("Authorization", fmt.Sprintf("SDK-HMAC-SHA256 Access=%s, SignedHeaders=%s, Signature=%s",
		keyID, strings.Join(signed, ";"), hex.EncodeToString(m.Sum(nil))))
}

func TestSignatures(t *testing.T) {
	e := newEnv(t)
	send := func(req *http.Request) (int, string) {
		t.Helper()
		status, m := e.roundTrip(req)
		code, _ := m["code"].(string)
		return status, code
	}
	newReq := func(method, path, body string) *http.Request {
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		req.Header.Set("User-Agent", "sig-test")
		req.Header.Set("X-Project-Id", e.srv.Account)
		return req
	}
	now := time.Now()
	body := `{"name":"sig","kind":"capture"}`
	cases := []struct {
		name   string
		build  func() *http.Request
		status int
		code   string
	}{
		{"independent signer, host signed", func() *http.Request {
			r := newReq("POST", "/v1/gateways", body)
			independentSign(r, []byte(body), e.srv.KeyID, e.srv.Secret, now, []string{"host", "x-sdk-date", "user-agent"})
			return r
		}, 201, ""},
		{"independent signer, query with repeated keys and spaces", func() *http.Request {
			r := newReq("GET", "/v1/flow-logs?attachment_id=b&attachment_id=a&name=a+b%20c", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now, []string{"x-project-id", "x-sdk-date"})
			return r
		}, 200, ""},
		{"4 minutes slow is accepted", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now.Add(-4*time.Minute), []string{"x-sdk-date"})
			return r
		}, 200, ""},
		{"no Authorization", func() *http.Request { return newReq("GET", "/v1/gateways", "") }, 401, "Auth.MissingAuthorization"},
		{"other algorithm", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
			return r
		}, 401, "Auth.MalformedAuthorization"},
		{"x-sdk-date not signed", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now, []string{"user-agent"})
			return r
		}, 401, "Auth.MalformedAuthorization"},
		{"signed header absent", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date", "x-client-token"})
			return r
		}, 401, "Auth.MalformedAuthorization"},
		{"6 minutes slow", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now.Add(-6*time.Minute), []string{"x-sdk-date"})
			return r
		}, 401, "Auth.RequestExpired"},
		{"6 minutes fast", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now.Add(6*time.Minute), []string{"x-sdk-date"})
			return r
		}, 401, "Auth.RequestExpired"},
		{"bad date", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date"})
			r.Header.Set("X-Sdk-Date", now.Format(time.RFC1123))
			return r
		}, 401, "Auth.InvalidDate"},
		{"unknown key", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, "NOSUCHKEY", e.srv.Secret, now, []string{"x-sdk-date"})
			return r
		}, 401, "Auth.UnknownAccessKey"},
		{"wrong secret", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, "not-the-secret", now, []string{"x-sdk-date"})
			return r
		}, 401, "Auth.SignatureMismatch"},
		{"body changed after signing", func() *http.Request {
			r := newReq("POST", "/v1/gateways", `{"name":"evil","kind":"capture"}`)
			independentSign(r, []byte(body), e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date"})
			return r
		}, 401, "Auth.SignatureMismatch"},
		{"body substituted, the original hash in X-Sdk-Content-Sha256", func() *http.Request {
			r := newReq("POST", "/v1/gateways", `{"name":"evil","kind":"capture"}`)
			sum := sha256.Sum256([]byte(body))
			r.Header.Set("X-Sdk-Content-Sha256", hex.EncodeToString(sum[:]))
			independentSign(r, []byte(body), e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-content-sha256", "x-sdk-date"})
			return r
		}, 401, "Auth.ContentHashMismatch"},
		{"UNSIGNED-PAYLOAD on a body", func() *http.Request {
			r := newReq("POST", "/v1/gateways", body)
			r.Header.Set("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD")
			independentSign(r, []byte(body), e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date"})
			return r
		}, 401, "Auth.ContentHashMismatch"},
		{"query changed after signing", func() *http.Request {
			r := newReq("GET", "/v1/flow-logs?name=a", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date"})
			r.URL.RawQuery = "name=b"
			return r
		}, 401, "Auth.SignatureMismatch"},
		{"signed header changed (proxy rewrote User-Agent)", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now, []string{"user-agent", "x-sdk-date"})
			r.Header.Set("User-Agent", "proxy/1.0")
			return r
		}, 401, "Auth.SignatureMismatch"},
		{"path changed after signing", func() *http.Request {
			r := newReq("GET", "/v1/gateways", "")
			independentSign(r, nil, e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date"})
			r.URL.Path = "/v1/log-groups"
			return r
		}, 401, "Auth.SignatureMismatch"},
	}
	for _, c := range cases {
		st, code := send(c.build())
		if st != c.status || (c.code != "" && code != c.code) {
			t.Errorf("%s: got %d %s, want %d %s", c.name, st, code, c.status, c.code)
		}
	}
	// A changing request is accepted once; a read may repeat.
	post := newReq("POST", "/v1/gateways", `{"name":"once","kind":"capture"}`)
	independentSign(post, []byte(`{"name":"once","kind":"capture"}`), e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date"})
	get := newReq("GET", "/v1/gateways", "")
	independentSign(get, nil, e.srv.KeyID, e.srv.Secret, now, []string{"x-sdk-date"})
	for i, want := range []struct {
		status int
		code   string
	}{{201, ""}, {401, "Auth.Replay"}} {
		again := post.Clone(post.Context())
		again.Body = io.NopCloser(strings.NewReader(`{"name":"once","kind":"capture"}`))
		if st, code := send(again); st != want.status || code != want.code {
			t.Errorf("POST number %d: %d %s, want %d %s", i+1, st, code, want.status, want.code)
		}
		if st, _ := send(get.Clone(get.Context())); st != 200 {
			t.Errorf("identical GET number %d: %d", i+1, st)
		}
	}
	// Every /v1 path but the OpenAPI document needs a signature.
	for _, p := range []string{"/v1/gateways", "/v1/log-groups", "/v1/flow-logs", "/v1/flow-logs/fl-x"} {
		if st, code := send(newReq("GET", p, "")); st != 401 || code != "Auth.MissingAuthorization" {
			t.Errorf("GET %s unsigned: %d %s", p, st, code)
		}
	}
	if st, _ := send(newReq("GET", "/v1/openapi.json", "")); st != 200 {
		t.Errorf("openapi.json: %d", st)
	}
}
