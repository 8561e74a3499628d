package testutil

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Console is a browser's side of a console session: the session cookie and
// the CSRF token from sign-in.
type Console struct {
	URL    string // the server, e.g. http://127.0.0.1:8080
	HTTP   *http.Client
	Cookie *http.Cookie
	CSRF   string
	// SignIn is the sign-in answer's JSON.
	SignIn map[string]any
}

// ConsoleSignIn signs in with an access key (hc nil: http.DefaultClient)
// and fails the test unless a session cookie comes back.
func ConsoleSignIn(t testing.TB, hc *http.Client, url, keyID, secret string) *Console {
	t.Helper()
	c := &Console{URL: url, HTTP: hc}
	resp, m := c.Raw(t, "POST", "/v1/console/sessions",
		map[string]string{"access_key_id": keyID, "access_key_secret": secret}, nil)
	for _, ck := range resp.Cookies() {
		if ck.Name == "flowlog_session" {
			c.Cookie = ck
		}
	}
	c.CSRF, _ = m["csrf_token"].(string)
	c.SignIn = m
	if resp.StatusCode != http.StatusCreated || c.Cookie == nil || c.Cookie.Value == "" || c.CSRF == "" {
		t.Fatalf("console sign-in: %d %v, cookies %v", resp.StatusCode, m, resp.Cookies())
	}
	return c
}

// Do sends a request as the console page would: with the session cookie,
// the CSRF token and the server's origin; header adds or overrides headers
// (an empty value removes one). It returns the status and the JSON object
// (nil if none).
func (c *Console) Do(t testing.TB, method, path string, body any, header map[string]string) (int, map[string]any) {
	t.Helper()
	h := map[string]string{"Cookie": c.Cookie.Name + "=" + c.Cookie.Value, "X-CSRF-Token": c.CSRF, "Origin": c.URL}
	for k, v := range header {
		h[k] = v
	}
	resp, m := c.Raw(t, method, path, body, h)
	return resp.StatusCode, m
}

// Raw sends a request with exactly the given headers (empty values
// skipped) and a JSON body (none if nil); the response's body is read.
func (c *Console) Raw(t testing.TB, method, path string, body any, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, raw)
		}
	}
	return resp, m
}
