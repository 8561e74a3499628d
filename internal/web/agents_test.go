package web_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// TestAgents shows the operator its agents as the API reports them, and
// tells another account they are not its to see.
func TestAgents(t *testing.T) {
	c := newConsole(t)
	row := `[data-test=agent][data-name=edge1] `

	do(t, c.tab, chromedp.Navigate(c.srv.URL+"/agents"))
	poll[bool](t, c.tab, `!!document.querySelector('[data-test=empty]')`)

	// An agent registered, then reporting as a real one does, with its key.
	_, a := testutil.Call(t, c.api, "POST", "/v1/agents", map[string]any{"name": "edge1"})
	if poll[string](t, c.tab, `document.querySelector('`+row+`[data-test=last-seen]')?.textContent ?? ''`) != "never" {
		t.Error("a registered agent that never called is not shown as never seen")
	}
	agent := client.New(c.srv.URL, a["access_key_id"].(string), a["access_key_secret"].(string))
	_, d := testutil.Call(t, agent, "GET", "/v1/agents/edge1/desired", nil)
	version := d["version"].(float64)
	if st, m := testutil.Call(t, agent, "POST", "/v1/agents/edge1/status", map[string]any{"version": version,
		"components": []any{map[string]any{"kind": "capture", "name": "eth9", "error": "interface eth9 does not exist"}}}); st != 204 {
		t.Fatalf("status: %d %v", st, m)
	}
	_, list := testutil.Call(t, c.api, "GET", "/v1/agents", nil)
	want := list["agents"].([]any)[0].(map[string]any)
	got := poll[string](t, c.tab, `(r => r && !r.querySelector('[data-test=version]').textContent.includes('–') ? r.innerText : '')(document.querySelector('`+row+`'))`)
	for _, e := range want["errors"].([]any) {
		if !strings.Contains(got, e.(string)) {
			t.Errorf("the agent's row %q lacks the error %q", got, e)
		}
	}
	if v := eval[string](t, c.tab, `document.querySelector('`+row+`[data-test=version]').textContent.trim()`); v != fmt.Sprint(want["version_applied"]) {
		t.Errorf("version applied: shown %q, the API says %v", v, want["version_applied"])
	}
	if b := poll[string](t, c.tab, `document.querySelector('`+row+`[data-test=behind]')?.textContent.trim() ?? ''`); b != "(current)" {
		t.Errorf("an agent that reported the current version shows %q", b)
	}
	// A change makes a new version, which the agent has not applied yet.
	must(t, c.api, "/v1/gateways", map[string]any{"name": "more", "kind": "exporter", "exporter_addr": "192.0.2.77"})
	if b := poll[string](t, c.tab, `(b => b === '(current)' ? '' : b)(document.querySelector('`+row+`[data-test=behind]')?.textContent.trim() ?? '')`); b != "(1 behind)" {
		t.Errorf("after a change the agent shows %q, want (1 behind)", b)
	}
	screenshot(t, c.tab, "agents")

	// Another account: not its to see.
	_, k := testutil.Call(t, c.api, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	other := browser(t, testutil.Peer(t, "chromium"))
	signIn(t, other, c.srv.URL, k["access_key_id"].(string), k["access_key_secret"].(string))
	poll[bool](t, other, `location.pathname === '/explore'`) // signed in
	do(t, other, chromedp.Navigate(c.srv.URL+"/agents"))
	poll[bool](t, other, `!!document.querySelector('[data-test=forbidden]')`)
	if n := eval[int](t, other, `document.querySelectorAll('[data-test=agent]').length`); n != 0 {
		t.Errorf("another account sees %d agents", n)
	}
}
