package web_test

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"flowlog/internal/testutil"
)

// TestSessionEnds checks both ways a console session ends from the
// browser's side: signing out, and the access key behind it being disabled
// elsewhere. Either way the page returns to sign-in, keeping where the user
// was, and the old cookie opens nothing.
func TestSessionEnds(t *testing.T) {
	c := newConsole(t)
	cookie := `document.cookie`

	t.Run("SignOut", func(t *testing.T) {
		do(t, c.tab, chromedp.Navigate(c.srv.URL+"/flow-logs"))
		poll[bool](t, c.tab, `!!document.querySelector('[data-test=sign-out]')`)
		do(t, c.tab, chromedp.Click(chromedp.CSS(`[data-test=sign-out]`)))
		poll[bool](t, c.tab, `location.pathname === '/sign-in'`)
		// The API, called with whatever the browser still holds, refuses.
		st, err := chromedp.Run(c.tab, chromedp.Evaluate[int](`fetch('/v1/flow-logs').then(r => r.status)`, awaited))
		if err != nil {
			t.Fatal(err)
		}
		if st != 401 {
			t.Errorf("GET /v1/flow-logs after sign-out: %v, want 401", st)
		}
		if k := eval[string](t, c.tab, cookie); strings.Contains(k, "flowlog_session") {
			t.Errorf("the page can read the session cookie: %q", k)
		}
	})

	t.Run("KeyDisabledElsewhere", func(t *testing.T) {
		_, k := testutil.Call(t, c.api, "POST", "/v1/access-keys", nil)
		id := k["access_key_id"].(string)
		signIn(t, c.tab, c.srv.URL, id, k["access_key_secret"].(string))
		waitReady(t, c.tab)
		do(t, c.tab, chromedp.Navigate(c.srv.URL+"/log-groups"))
		poll[bool](t, c.tab, `!!document.querySelector('[data-test=sign-out]')`)

		if st, m := testutil.Call(t, c.api, "POST", "/v1/access-keys/"+id+"/disable", nil); st != 200 {
			t.Fatalf("disable: %d %v", st, m)
		}
		// The next call the page makes finds the session gone.
		do(t, c.tab, chromedp.Navigate(c.srv.URL+"/flow-logs"))
		next := poll[string](t, c.tab, `location.pathname === '/sign-in' ? new URLSearchParams(location.search).get('next') ?? '' : ''`)
		if next != "/flow-logs" {
			t.Errorf("sign-in page keeps next=%q, want /flow-logs", next)
		}
		screenshot(t, c.tab, "session-ended")
	})
}

// awaited makes Evaluate wait for the promise the script returns.
func awaited(p *runtime.EvaluateParams) {
	yes := true
	p.AwaitPromise = &yes
}
