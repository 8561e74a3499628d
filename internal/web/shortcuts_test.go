package web_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestShortcuts drives the console from the keyboard alone.
func TestShortcuts(t *testing.T) {
	c := newConsole(t)
	key := func(k string) { do(t, c.tab, chromedp.KeyEvent(k)) }

	key("?")
	if list := poll[string](t, c.tab, `document.querySelector('[data-test=shortcuts]')?.innerText ?? ''`); !strings.Contains(list, "Flow logs") {
		t.Errorf("the shortcut list: %q", list)
	}
	key("\x1b") // Escape
	poll[bool](t, c.tab, `!document.querySelector('[data-test=shortcuts]')`)

	// "[" moves the window one width earlier: the URL gains its end.
	key("[")
	waitReady(t, c.tab)
	if u := eval[string](t, c.tab, `location.search`); !strings.Contains(u, "end=") {
		t.Errorf("after [ the view is %s, want an earlier window", u)
	}

	// "/" puts the cursor in the filter; keys typed there are text, not shortcuts.
	key("/")
	key("g")
	key("f")
	if v := eval[string](t, c.tab, `document.activeElement?.dataset.test + ' ' + location.pathname`); v != "filter /explore" {
		t.Errorf("after / g f: focus and page %q, want the filter on /explore", v)
	}
	key("\x1b")

	key("g")
	key("f")
	poll[bool](t, c.tab, `location.pathname === '/flow-logs'`)
	theme := `document.documentElement.dataset.theme`
	before := eval[string](t, c.tab, theme)
	key("t")
	if after := eval[string](t, c.tab, theme); after == before {
		t.Errorf("the theme stayed %q after t", after)
	}
	screenshot(t, c.tab, "shortcuts")
}
