package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// sessionCookie returns the flowlog_session cookie a response sets, if any.
func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "flowlog_session" {
			return c
		}
	}
	return nil
}

// A console signs in with an access key, gets an HttpOnly, SameSite=Strict
// cookie (not Secure over plain HTTP) and a CSRF token, reads with the
// cookie alone, changes only with the token from its own origin, and signs
// out for good.
func TestConsoleSession(t *testing.T) {
	e := newEnv(t)
	con := testutil.ConsoleSignIn(t, &http.Client{Transport: e.cf}, e.srv.URL, e.srv.KeyID, e.srv.Secret)
	ck := con.Cookie
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/" || ck.MaxAge != 12*3600 ||
		len(ck.Value) < 43 {
		t.Fatalf("session cookie: %+v (raw %q)", ck, ck.Raw)
	}
	in := con.SignIn
	exp, err := time.Parse(time.RFC3339, str(in, "expires_at"))
	if in["account_id"] != e.srv.Account || in["access_key_id"] != e.srv.KeyID || in["idle_timeout_seconds"] != 3600.0 ||
		err != nil || time.Until(exp) < 12*time.Hour-time.Minute || time.Until(exp) > 12*time.Hour {
		t.Fatalf("sign-in answer: %v", in)
	}
	if strings.Contains(ck.Value, con.CSRF) || strings.Contains(con.CSRF, ck.Value) {
		t.Fatal("the CSRF token is the session token")
	}

	// A page reload learns who is signed in, and the CSRF token again.
	if st, m := con.Do(t, "GET", "/v1/console/session", nil, nil); st != 200 || m["csrf_token"] != con.CSRF ||
		m["account_id"] != e.srv.Account {
		t.Fatalf("GET /v1/console/session: %d %v", st, m)
	}
	// Reads need the cookie only.
	bare := map[string]string{"X-CSRF-Token": "", "Origin": ""}
	if st, m := con.Do(t, "GET", "/v1/gateways", nil, bare); st != 200 {
		t.Fatalf("GET with the cookie: %d %v", st, m)
	}

	gw := map[string]any{"name": "console", "kind": "capture"}
	for name, h := range map[string]map[string]string{
		"no CSRF token":          {"X-CSRF-Token": ""},
		"a wrong CSRF token":     {"X-CSRF-Token": con.CSRF[:len(con.CSRF)-1] + "x"},
		"another origin":         {"Origin": "http://evil.example"},
		"an opaque origin":       {"Origin": "null"},
		"another site's referer": {"Origin": "", "Referer": "http://evil.example/page"},
		"a cross-site fetch":     {"Sec-Fetch-Site": "cross-site"},
	} {
		if st, m := con.Do(t, "POST", "/v1/gateways", gw, h); st != 403 || m["code"] != "Forbidden.CSRF" {
			t.Fatalf("POST with %s: %d %v, want 403 Forbidden.CSRF", name, st, m)
		}
	}
	if len(e.list("/v1/gateways", nil)["gateways"].([]any)) != 0 {
		t.Fatal("a refused change was made")
	}
	st, m := con.Do(t, "POST", "/v1/gateways", gw, map[string]string{"Origin": "", "Referer": e.srv.URL + "/flows"})
	if st != 201 {
		t.Fatalf("POST with the token: %d %v", st, m)
	}
	// The same account as the key's: the signed API sees it.
	e.must(200, "GET", "/v1/gateways/"+str(m, "id"), nil)
	// A signed request has no session to show.
	e.wantErr(404, "NotFound.ConsoleSession", "GET", "/v1/console/session", nil)

	// Signing out needs the token too; then the cookie is dead.
	if st, m := con.Do(t, "DELETE", "/v1/console/session", nil, map[string]string{"X-CSRF-Token": ""}); st != 403 {
		t.Fatalf("sign-out without the token: %d %v", st, m)
	}
	resp, _ := con.Raw(t, "DELETE", "/v1/console/session", nil, map[string]string{
		"Cookie": "flowlog_session=" + ck.Value, "X-CSRF-Token": con.CSRF, "Origin": e.srv.URL})
	if c := sessionCookie(resp); resp.StatusCode != 204 || c == nil || c.Value != "" || c.MaxAge >= 0 {
		t.Fatalf("sign-out: %d, cookie %v", resp.StatusCode, c)
	}
	for _, p := range []string{"/v1/gateways", "/v1/console/session"} {
		if st, m := con.Do(t, "GET", p, nil, nil); st != 401 || m["code"] != "Auth.SessionExpired" {
			t.Fatalf("GET %s after sign-out: %d %v", p, st, m)
		}
	}

	// Signing in again from a signed-in browser ends the session its cookie held.
	old := testutil.ConsoleSignIn(t, con.HTTP, e.srv.URL, e.srv.KeyID, e.srv.Secret)
	resp, m = old.Raw(t, "POST", "/v1/console/sessions", map[string]string{"access_key_id": e.srv.KeyID,
		"access_key_secret": e.srv.Secret}, map[string]string{"Cookie": "flowlog_session=" + old.Cookie.Value})
	if resp.StatusCode != 201 || sessionCookie(resp) == nil {
		t.Fatalf("signing in again: %d %v", resp.StatusCode, m)
	}
	if st, m := old.Do(t, "GET", "/v1/gateways", nil, nil); st != 401 {
		t.Fatalf("the replaced session still works: %d %v", st, m)
	}
}

// A wrong secret, an unknown key id and a disabled key get one and the
// same answer and no cookie; the key never travels in the URL, and a
// cross-site form cannot sign a browser in.
func TestConsoleSignInRefusals(t *testing.T) {
	e := newEnv(t)
	off := e.must(201, "POST", "/v1/access-keys", nil)
	e.must(200, "POST", "/v1/access-keys/"+str(off, "access_key_id")+"/disable", nil)
	con := &testutil.Console{URL: e.srv.URL, HTTP: &http.Client{Transport: e.cf}}
	signIn := func(id, secret, path string, h map[string]string) (*http.Response, map[string]any) {
		return con.Raw(t, "POST", path, map[string]string{"access_key_id": id, "access_key_secret": secret}, h)
	}
	var first string
	for name, k := range map[string][2]string{
		"wrong secret":   {e.srv.KeyID, e.srv.Secret + "x"},
		"unknown key":    {"NOSUCHKEY00000000001", e.srv.Secret},
		"disabled key":   {str(off, "access_key_id"), str(off, "access_key_secret")},
		"empty password": {e.srv.KeyID, " "},
	} {
		resp, m := signIn(k[0], k[1], "/v1/console/sessions", nil)
		if resp.StatusCode != 401 || m["code"] != "Auth.SignatureMismatch" || sessionCookie(resp) != nil {
			t.Fatalf("%s: %d %v, cookie %v", name, resp.StatusCode, m, sessionCookie(resp))
		}
		if first == "" {
			first = str(m, "message")
		} else if str(m, "message") != first {
			t.Fatalf("%s answers %q, another failure %q: the answer tells them apart", name, m["message"], first)
		}
	}
	for name, c := range map[string]struct {
		path   string
		h      map[string]string
		status int
		code   string
	}{
		"secret in the URL": {"/v1/console/sessions?access_key_secret=" + e.srv.Secret, nil, 400, "InvalidRequest"},
		"a form post":       {"/v1/console/sessions", map[string]string{"Content-Type": "text/plain"}, 415, "UnsupportedMediaType"},
		"another origin":    {"/v1/console/sessions", map[string]string{"Origin": "http://evil.example"}, 403, "Forbidden.CSRF"},
	} {
		resp, m := signIn(e.srv.KeyID, e.srv.Secret, c.path, c.h)
		if resp.StatusCode != c.status || m["code"] != c.code || sessionCookie(resp) != nil {
			t.Fatalf("%s: %d %v, want %d %s and no cookie", name, resp.StatusCode, m, c.status, c.code)
		}
	}
	if resp, m := con.Raw(t, "POST", "/v1/console/sessions", map[string]string{"access_key_id": e.srv.KeyID}, nil); resp.StatusCode != 400 {
		t.Fatalf("no secret: %d %v", resp.StatusCode, m)
	}
	// A cookie that was never issued is no session.
	fake := &testutil.Console{URL: e.srv.URL, HTTP: con.HTTP, Cookie: &http.Cookie{Name: "flowlog_session", Value: "forged"}}
	if st, m := fake.Do(t, "GET", "/v1/gateways", nil, nil); st != 401 || m["code"] != "Auth.SessionExpired" {
		t.Fatalf("a forged cookie: %d %v", st, m)
	}
}

// The filter check answers as the query endpoint parses: valid, or the
// error and its byte offset, through a signature or a console session.
func TestFilterCheck(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		where  string
		valid  bool
		offset any
		msg    string
	}{
		{"", true, nil, ""},
		{"dstport in (80, 443) and srcaddr in 10.0.0.0/8 and not protocol = 1", true, nil, ""},
		{"dstport = 443 and nosuch = 2", false, 18.0, `unknown field "nosuch"`},
		{"(dstport = 1", false, 12.0, "missing )"},
		{"srcaddr = 10.0.0.300", false, 10.0, "not an IP address"},
		{strings.Repeat("x", 16<<10+1), false, nil, "longer than"},
	} {
		m := e.must(200, "POST", "/v1/filters/check", map[string]any{"where": c.where})
		if m["valid"] != c.valid || m["offset"] != c.offset || !strings.Contains(str(m, "error"), c.msg) ||
			(c.valid && m["error"] != nil) {
			t.Errorf("check %.40q: %v, want valid %v offset %v …%s…", c.where, m, c.valid, c.offset, c.msg)
		}
	}
	e.wantErr(400, "MissingParameter.where", "POST", "/v1/filters/check", map[string]any{})

	con := testutil.ConsoleSignIn(t, &http.Client{Transport: e.cf}, e.srv.URL, e.srv.KeyID, e.srv.Secret)
	if st, m := con.Do(t, "POST", "/v1/filters/check", map[string]any{"where": "dstport >"}, nil); st != 200 ||
		m["valid"] != false || m["offset"] != 9.0 {
		t.Fatalf("check through a session: %d %v", st, m)
	}
}
