package security

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// consoleOf signs a console in with key k.
func consoleOf(t *testing.T, s *testutil.Server, k keysCred) *testutil.Console {
	t.Helper()
	return testutil.ConsoleSignIn(t, nil, s.URL, k.ID, k.Secret)
}

// consoleWant asserts a console request answers status (and code, for
// errors) and returns the JSON answer.
func consoleWant(t *testing.T, c *testutil.Console, status int, code, method, path string, body any) map[string]any {
	t.Helper()
	st, m := c.Do(t, method, path, body, nil)
	if st != status || (code != "" && m["code"] != code) {
		t.Fatalf("console %s %s: %d %v, want %d %s", method, path, st, m, status, code)
	}
	return m
}

func consoleCreate(t *testing.T, c *client.Client, path string, body any) string {
	t.Helper()
	var out struct{ ID string }
	if err := c.JSON(context.Background(), "POST", path, nil, body, &out); err != nil || out.ID == "" {
		t.Fatalf("POST %s: %v", path, err)
	}
	return out.ID
}

// Another account's console session sees and touches none of this
// account's resources, exactly as its signed requests would not.
func TestConsoleSessionTenancy(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	gw := consoleCreate(t, boot, "/v1/gateways", map[string]string{"name": "a", "kind": "capture"})
	lg := consoleCreate(t, boot, "/v1/log-groups", map[string]string{"name": "a"})
	ls := consoleCreate(t, boot, "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "a"})

	b := keysCreate(t, boot, true)
	con := consoleOf(t, s, b)
	if con.SignIn["account_id"] != b.Account {
		t.Fatalf("signed in as %v, want account %s", con.SignIn["account_id"], b.Account)
	}
	for _, list := range []string{"/v1/gateways", "/v1/log-groups", "/v1/flow-logs", "/v1/grants"} {
		m := consoleWant(t, con, 200, "", "GET", list, nil)
		for k, v := range m {
			if items, ok := v.([]any); ok && len(items) != 0 {
				t.Fatalf("B's console lists %s of A: %v", k, items)
			}
		}
	}
	keys := consoleWant(t, con, 200, "", "GET", "/v1/access-keys", nil)["access_keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["access_key_id"] != b.ID {
		t.Fatalf("B's console lists keys %v", keys)
	}
	consoleWant(t, con, 404, "NotFound.Gateway", "GET", "/v1/gateways/"+gw, nil)
	consoleWant(t, con, 404, "NotFound.Gateway", "PATCH", "/v1/gateways/"+gw, map[string]string{"name": "mine"})
	consoleWant(t, con, 404, "NotFound.Gateway", "DELETE", "/v1/gateways/"+gw, nil)
	consoleWant(t, con, 404, "NotFound.LogGroup", "DELETE", "/v1/log-groups/"+lg, nil)
	consoleWant(t, con, 404, "NotFound.LogStream", "POST", "/v1/log-streams/"+ls+"/query",
		map[string]any{"since": time.Now().Add(-time.Hour), "until": time.Now()})
	consoleWant(t, con, 404, "NotFound.AccessKey", "POST", "/v1/access-keys/"+s.KeyID+"/disable?force=true", nil)
	// B's console cannot make accounts (only the operator can).
	consoleWant(t, con, 403, "", "POST", "/v1/access-keys", map[string]bool{"new_account": true})

	var g struct{ Name string }
	if err := boot.JSON(context.Background(), "GET", "/v1/gateways/"+gw, nil, nil, &g); err != nil || g.Name != "a" {
		t.Fatalf("A's gateway after B's attempts: %+v %v", g, err)
	}
	keysWant(t, boot, 200, "", "GET", "/v1/log-groups/"+lg+"/log-streams/"+ls, nil)
}

// A session is worth its key: disabled or deleted, the key's sessions end
// from the next request on, and enabling the key again does not revive them.
func TestConsoleSessionEndsWithKey(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	for _, act := range []struct{ method, suffix string }{{"POST", "/disable"}, {"DELETE", ""}} {
		k := keysCreate(t, boot, false)
		con, other := consoleOf(t, s, k), consoleOf(t, s, keysCred{ID: s.KeyID, Secret: s.Secret})
		consoleWant(t, con, 200, "", "GET", "/v1/gateways", nil)
		keysWant(t, boot, map[string]int{"POST": 200, "DELETE": 204}[act.method], "", act.method,
			"/v1/access-keys/"+k.ID+act.suffix, nil)
		consoleWant(t, con, 401, "Auth.SessionEnded", "GET", "/v1/gateways", nil)
		consoleWant(t, other, 200, "", "GET", "/v1/gateways", nil) // another key's session goes on
		if act.method == "POST" {
			keysWant(t, boot, 200, "", "POST", "/v1/access-keys/"+k.ID+"/enable", nil)
			consoleWant(t, con, 401, "Auth.SessionExpired", "GET", "/v1/gateways", nil)
			consoleOf(t, s, k) // a new sign-in works
		}
	}
}

// A session cookie authenticates the native API only: the Alibaba RPC and
// Huawei APIs want their signatures, cookie or not.
func TestConsoleCookieNotForDialects(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	er := consoleCreate(t, boot, "/v1/gateways", map[string]string{"name": "er", "kind": "capture"})
	con := consoleOf(t, s, keysCred{ID: s.KeyID, Secret: s.Secret})

	ali := url.Values{"Action": {"DescribeFlowLogs"}, "Version": {"2018-03-13"}, "Format": {"JSON"}, "RegionId": {"cn-shanghai"}}
	if st, m := con.Do(t, "GET", "/?"+ali.Encode(), nil, nil); st != 400 || m["Code"] != "MissingAccessKeyId" {
		t.Fatalf("Alibaba RPC with a session cookie: %d %v", st, m)
	}
	hw := fmt.Sprintf("/v3/%s/enterprise-router/%s/flow-logs", s.Account, er)
	if st, m := con.Do(t, "GET", hw, nil, nil); st != 401 || m["error_code"] != "APIGW.0301" {
		t.Fatalf("Huawei GET with a session cookie: %d %v", st, m)
	}
	create := map[string]any{"flow_log": map[string]any{"name": "cookie", "resource_type": "attachment",
		"resource_id": er, "log_group_id": "x", "log_stream_id": "y"}}
	if st, m := con.Do(t, "POST", hw, create, nil); st != 401 {
		t.Fatalf("Huawei POST with a session cookie: %d %v", st, m)
	}
	var fl struct {
		Total int `json:"total_count"`
	}
	if err := boot.JSON(context.Background(), "GET", "/v1/flow-logs", nil, nil, &fl); err != nil || fl.Total != 0 {
		t.Fatalf("flow logs after cookie attempts: %+v %v", fl, err)
	}
}

// Guessing a secret through the sign-in form gets 10 tries per key id and
// 30 per address in 10 minutes; then even the right secret is refused,
// while signed requests and existing sessions go on.
func TestConsoleSignInThrottle(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	k := keysCreate(t, boot, false)
	before := consoleOf(t, s, k)
	try := func(id, secret string) (*http.Response, map[string]any) {
		c := &testutil.Console{URL: s.URL}
		return c.Raw(t, "POST", "/v1/console/sessions", map[string]string{"access_key_id": id, "access_key_secret": secret}, nil)
	}
	for i := range 10 {
		if resp, m := try(s.KeyID, fmt.Sprintf("guess-%d", i)); resp.StatusCode != 401 {
			t.Fatalf("guess %d: %d %v", i, resp.StatusCode, m)
		}
	}
	resp, m := try(s.KeyID, s.Secret)
	if resp.StatusCode != 429 || m["code"] != "Throttling.SignIn" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the right secret after 10 failures: %d %v", resp.StatusCode, m)
	}
	keysWant(t, boot, 200, "", "GET", "/v1/gateways", nil)
	consoleOf(t, s, k) // another key id from the same address: 10 of 30

	for i := range 20 {
		try(fmt.Sprintf("GUESSEDKEYID%08d", i), "x")
	}
	if resp, m := try(k.ID, k.Secret); resp.StatusCode != 429 || m["code"] != "Throttling.SignIn" {
		t.Fatalf("a good key from an address with 30 failures: %d %v", resp.StatusCode, m)
	}
	consoleWant(t, before, 200, "", "GET", "/v1/gateways", nil)
}

// A page on another site that rides the browser's cookie can neither change
// anything nor sign the user out, and cannot sign the browser into its own
// account with a form post.
func TestConsoleCrossSiteRequests(t *testing.T) {
	s := startServer(t)
	con := consoleOf(t, s, keysCred{ID: s.KeyID, Secret: s.Secret})
	evil := map[string]string{"Origin": "https://evil.example", "X-CSRF-Token": ""}
	for _, r := range []struct{ method, path string }{
		{"POST", "/v1/access-keys"}, {"POST", "/v1/gateways"}, {"DELETE", "/v1/console/session"},
	} {
		if st, m := con.Do(t, r.method, r.path, map[string]any{"name": "x", "kind": "capture"}, evil); st != 403 ||
			m["code"] != "Forbidden.CSRF" {
			t.Fatalf("cross-site %s %s: %d %v", r.method, r.path, st, m)
		}
	}
	// The token alone does not do from another origin either.
	if st, _ := con.Do(t, "POST", "/v1/gateways", map[string]any{"name": "x", "kind": "capture"},
		map[string]string{"Origin": "https://evil.example"}); st != 403 {
		t.Fatalf("cross-site POST with the token: %d", st)
	}
	keys := consoleWant(t, con, 200, "", "GET", "/v1/access-keys", nil)["access_keys"].([]any)
	gws := consoleWant(t, con, 200, "", "GET", "/v1/gateways", nil)["gateways"].([]any)
	if len(keys) != 1 || len(gws) != 0 {
		t.Fatalf("cross-site requests changed things: keys %v, gateways %v", keys, gws)
	}

	// What a cross-site HTML form can send: text/plain, no Origin check passed.
	req, _ := http.NewRequest("POST", s.URL+"/v1/console/sessions",
		strings.NewReader(`{"access_key_id":"`+s.KeyID+`","access_key_secret":"`+s.Secret+`"}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 || len(resp.Cookies()) != 0 {
		t.Fatalf("form sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// Secrets, session tokens and CSRF tokens stay out of the server's output,
// whatever happens to the session, even a secret pasted into the key id.
func TestConsoleSecretsStayOutOfLogs(t *testing.T) {
	s := startServer(t) // logs at debug level
	k := keysCreate(t, bootstrapClient(s), false)
	con := consoleOf(t, s, k)
	consoleWant(t, con, 200, "", "GET", "/v1/gateways", nil)
	consoleWant(t, con, 201, "", "POST", "/v1/gateways", map[string]string{"name": "g", "kind": "capture"})
	con.Do(t, "POST", "/v1/gateways", map[string]string{"name": "h", "kind": "capture"}, map[string]string{"X-CSRF-Token": "bad"})
	pasted := &testutil.Console{URL: s.URL}
	pasted.Raw(t, "POST", "/v1/console/sessions", map[string]string{"access_key_id": k.Secret, "access_key_secret": k.Secret}, nil)
	pasted.Raw(t, "POST", "/v1/console/sessions", map[string]string{"access_key_id": k.ID, "access_key_secret": "wrong-" + k.Secret}, nil)
	consoleWant(t, con, 204, "", "DELETE", "/v1/console/session", nil)
	consoleWant(t, con, 401, "Auth.SessionExpired", "GET", "/v1/gateways", nil)
	s.Stop()
	stdout, stderr := s.Logs()
	for what, v := range map[string]string{"secret": k.Secret, "session token": con.Cookie.Value, "CSRF token": con.CSRF} {
		if strings.Contains(stdout+stderr, v) {
			t.Errorf("the %s appears in the server's output", what)
		}
	}
	for _, want := range []string{"console sign-in failed", "Forbidden.CSRF", "Auth.SessionExpired"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("%q is not logged:\n%s", want, stderr)
		}
	}
}

// Over TLS the session cookie is Secure, and the console works as over HTTP.
func TestConsoleOverTLS(t *testing.T) {
	s, _, _ := startTLSServer(t)
	con := testutil.ConsoleSignIn(t, s.HTTP, s.URL, s.KeyID, s.Secret)
	if ck := con.Cookie; !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie over TLS: %q", ck.Raw)
	}
	consoleWant(t, con, 201, "", "POST", "/v1/gateways", map[string]string{"name": "g", "kind": "capture"})
	consoleWant(t, con, 204, "", "DELETE", "/v1/console/session", nil)
}
