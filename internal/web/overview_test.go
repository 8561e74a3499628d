package web_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"flowlog/internal/testutil"
)

// TestOverview checks the overview's figures against the query API over
// the same 24 hours, and that it points at what needs attention.
func TestOverview(t *testing.T) {
	c := newConsole(t)
	// An exporter gateway no flow log uses: the overview lists it as unused.
	idle := must(t, c.api, "/v1/gateways", map[string]any{"name": "idle-router", "kind": "exporter", "exporter_addr": "192.0.2.9"})

	do(t, c.tab, chromedp.Navigate(c.srv.URL+"/overview"))
	poll[bool](t, c.tab, `document.querySelector('section.overview')?.dataset.state === 'ready'`)
	screenshot(t, c.tab, "overview")
	now := time.Now()

	t.Run("RecordsMatchQueryAPI", func(t *testing.T) {
		want := aggregate(t, c, now, nil, map[string]string{"func": "count"})
		got := eval[string](t, c.tab, `document.querySelector('[data-test=records-day]').dataset.value`)
		if fmt.Sprint(want[""]) != got {
			t.Errorf("records over 24 h: the overview shows %s, the query API counts %v", got, want[""])
		}
	})

	t.Run("TopTalkersMatchQueryAPI", func(t *testing.T) {
		want := aggregate(t, c, now, []string{"srcaddr"}, map[string]string{"func": "sum", "field": "bytes"})
		raw := eval[string](t, c.tab, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-test=talker]')].map(r => [r.dataset.key, Number(r.dataset.value)])))`)
		got := map[string]uint64{}
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || len(got) != len(want) {
			t.Fatalf("the overview shows %d talkers, the query API %d", len(got), len(want))
		}
		for k, v := range got {
			if want[k] != v {
				t.Errorf("talker %s: overview %d bytes, query API %d", k, v, want[k])
			}
		}
	})

	t.Run("States", func(t *testing.T) {
		if n := eval[string](t, c.tab, `document.querySelector('[data-test=flow-logs] [data-state=available]')?.dataset.count ?? ''`); n != "1" {
			t.Errorf("available flow logs: %q, want 1 (the demo)", n)
		}
		// The API's verdict on it (silent: this server's collector is off).
		_, m := testutil.Call(t, c.api, "GET", "/v1/exporters?gateway_id="+idle, nil)
		exp := m["exporters"].([]any)[0].(map[string]any)
		got := eval[string](t, c.tab, `document.querySelector('[data-test=unhealthy][data-id="`+idle+`"]')?.innerText ?? ''`)
		if !strings.Contains(got, exp["health"].(string)) || !strings.Contains(got, exp["health_reason"].(string)) {
			t.Errorf("the idle exporter on the overview: %q; the API says %v: %v", got, exp["health"], exp["health_reason"])
		}
	})

	t.Run("TalkerOpensExplore", func(t *testing.T) {
		addr := eval[string](t, c.tab, `document.querySelector('[data-test=talker]').dataset.key`)
		do(t, c.tab, chromedp.Click(chromedp.CSS(`[data-test=talker] a`)))
		waitReady(t, c.tab)
		q := eval[string](t, c.tab, `(p => p.get('filter') + ' ' + p.get('range'))(new URLSearchParams(location.search))`)
		if q != "srcaddr = "+addr+" 24h" {
			t.Errorf("the talker %s opened Explore with filter and range %q", addr, q)
		}
	})
}

// aggregate asks the query API for one aggregate over the 24 h before now,
// grouped by dims: group key (values joined by spaces; "" with no dims) →
// value, for the top 10.
func aggregate(t *testing.T, c *console, now time.Time, dims []string, agg map[string]string) map[string]uint64 {
	t.Helper()
	st, m := testutil.Call(t, c.api, "POST", "/v1/log-streams/"+c.stream+"/query", map[string]any{
		"since": now.Add(-24 * time.Hour), "until": now, "group_by": dims, "aggregates": []any{agg}, "limit": 10})
	if st != 200 {
		t.Fatalf("query: %d %v", st, m)
	}
	out := map[string]uint64{}
	rows, _ := m["rows"].([]any)
	for _, r := range rows {
		r := r.([]any)
		var key []string
		for _, v := range r[:len(dims)] {
			key = append(key, fmt.Sprint(v))
		}
		out[strings.Join(key, " ")] = uint64(r[len(dims)].(float64))
	}
	return out
}
