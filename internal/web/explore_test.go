package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"flowlog/internal/client"
	"flowlog/internal/enrich/mmdbtest"
	"flowlog/internal/testutil"
)

// TestExplore drives the Explore page over two log streams fed by two
// demo gateways: all streams read as one, a typed and an absolute window,
// and a Sankey with its Other nodes, each checked against the query API.
func TestExplore(t *testing.T) {
	c := newConsole(t)
	gw, second := demoGateway(t, c.api, "second")
	must(t, c.api, "/v1/flow-logs", map[string]any{"name": "second", "output_type": "sls", "log_stream_id": second,
		"targets": []any{map[string]any{"gateway_id": gw}}})
	settle(t, c.api, second)
	streams := []string{c.stream, second}
	tab := c.tab

	t.Run("AllStreams", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(c.srv.URL+"/explore?stream=all&range=1h&dims=srcaddr&measure=bytes&top=10"))
		waitReady(t, tab)
		if n := eval[int](t, tab, `document.querySelectorAll('[data-test=stream] option').length`); n != 3 {
			t.Errorf("the stream picker offers %d choices, want All and two streams", n)
		}
		since, until := shownWindow(t, tab)
		if got, want := grandTotal(t, tab), bytesIn(t, c.api, streams, since, until, ""); got != want || want == 0 {
			t.Errorf("all streams: grand total %d, the query API's sum over both streams %d", got, want)
		}
		for addr, total := range topRows(t, tab) {
			if want := bytesIn(t, c.api, streams, since, until, "srcaddr = "+addr); total != fmt.Sprint(want) {
				t.Errorf("%s: %s bytes, the query API's sum over both streams %d", addr, total, want)
			}
		}
		screenshot(t, tab, "explore-all-streams")
	})

	t.Run("TypedRange", func(t *testing.T) {
		eval[chromedp.Void](t, tab, `(() => { const f = document.querySelector('[data-test=range-text]');
			f.value = ''; f.dispatchEvent(new Event('input')) })()`)
		do(t, tab, chromedp.SendKeys(chromedp.CSS(`[data-test=range-text]`), "soon\r"))
		if !poll[bool](t, tab, `document.querySelector('[data-test=range-text]').classList.contains('invalid')`) ||
			strings.Contains(eval[string](t, tab, `location.search`), "soon") {
			t.Error("a width that does not read is applied")
		}
		eval[chromedp.Void](t, tab, `(() => { const f = document.querySelector('[data-test=range-text]');
			f.value = ''; f.dispatchEvent(new Event('input')) })()`)
		do(t, tab, chromedp.SendKeys(chromedp.CSS(`[data-test=range-text]`), "last 90m\r"))
		poll[bool](t, tab, `location.search.includes('range=90m')`)
		waitReady(t, tab)
		since, until := shownWindow(t, tab)
		if until.Sub(since) != 90*time.Minute || time.Since(until).Abs() > time.Minute {
			t.Errorf("last 90m shows %v – %v", since, until)
		}
		if got, want := grandTotal(t, tab), bytesIn(t, c.api, streams, since, until, ""); got != want {
			t.Errorf("last 90m: grand total %d, the query API's %d", got, want)
		}
	})

	t.Run("AbsoluteRange", func(t *testing.T) {
		from, to := time.Now().Add(-2*time.Hour).Truncate(time.Minute), time.Now().Add(2*time.Minute).Truncate(time.Minute)
		local := func(ms int64) string {
			return fmt.Sprintf(`new Date(%d - new Date(%d).getTimezoneOffset() * 60000).toISOString().slice(0, 16)`, ms, ms)
		}
		eval[chromedp.Void](t, tab, `(() => {
			for (const [k, v] of [['from', `+local(from.UnixMilli())+`], ['to', `+local(to.UnixMilli())+`]]) {
				const f = document.querySelector('[data-test=' + k + ']'); f.value = v; f.dispatchEvent(new Event('input')) }
			document.querySelector('[data-test=apply-range]').click() })()`)
		poll[bool](t, tab, `location.search.includes('from=')`)
		waitReady(t, tab)
		q, _ := url.ParseQuery(strings.TrimPrefix(eval[string](t, tab, `location.search`), "?"))
		if q.Get("from") != from.UTC().Format("2006-01-02T15:04:05.000Z") || q.Get("end") != to.UTC().Format("2006-01-02T15:04:05.000Z") || q.Has("range") {
			t.Errorf("the URL holds %v, want from %v and end %v", q, from.UTC(), to.UTC())
		}
		if since, until := shownWindow(t, tab); !since.Equal(from) || !until.Equal(to) {
			t.Errorf("shows %v – %v, want %v – %v", since, until, from, to)
		}
		if got, want := grandTotal(t, tab), bytesIn(t, c.api, streams, from, to, ""); got != want || want == 0 {
			t.Errorf("absolute window: grand total %d, the query API's %d", got, want)
		}
		if ms := eval[int](t, tab, `Number(document.querySelector('section.explore').dataset.refresh)`); ms != 0 {
			t.Errorf("an absolute window refreshes every %d ms", ms)
		}
		screenshot(t, tab, "explore-absolute")
		// Shifted, it keeps its width.
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=shift-left]`)))
		width := to.Sub(from)
		poll[bool](t, tab, `new URLSearchParams(location.search).get('end') === '`+from.UTC().Format("2006-01-02T15:04:05.000Z")+`'`)
		waitReady(t, tab)
		if since, until := shownWindow(t, tab); !since.Equal(from.Add(-width)) || !until.Equal(from) {
			t.Errorf("shifted left: %v – %v, want %v – %v", since, until, from.Add(-width), from)
		}
	})

	t.Run("SankeyOther", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(c.srv.URL+"/explore?stream=all&range=1h&dims=srcaddr,dstaddr&measure=bytes&top=3&graph=sankey"))
		waitReady(t, tab)
		var links []struct {
			Source, Target string
			Value          float64
		}
		if err := json.Unmarshal([]byte(eval[string](t, tab, `document.querySelector('[data-test=chart]').dataset.links`)), &links); err != nil {
			t.Fatal(err)
		}
		var top int64
		for _, v := range topRowTotals(t, tab) {
			top += v
		}
		rest := grandTotal(t, tab) - top
		other := eval[string](t, tab, `document.querySelector('[data-test=other-row] [data-test=total]')?.dataset.value ?? ''`)
		found := false
		for _, l := range links {
			if l.Source == "Other (srcaddr)" && l.Target == "Other (dstaddr)" {
				found = int64(l.Value) == rest
			}
		}
		if rest <= 0 || !found || other != fmt.Sprint(rest) {
			t.Errorf("Other: %d bytes (table %q); links %v", rest, other, links)
		}
		screenshot(t, tab, "explore-sankey-other")
	})
}

// settle waits until a stream's records have all been stored.
func settle(t *testing.T, c *client.Client, stream string) {
	t.Helper()
	last := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		now := fmt.Sprint(topTalkers(t, c, stream, ""))
		if now == last && now != "map[]" {
			return
		}
		last = now
	}
	t.Fatalf("the records of %s never settled: %s", stream, last)
}

// shownWindow is the window the Explore page answers.
func shownWindow(t *testing.T, tab context.Context) (time.Time, time.Time) {
	t.Helper()
	var w [2]time.Time
	for i, k := range []string{"since", "until"} {
		v, err := time.Parse(time.RFC3339Nano, eval[string](t, tab, `document.querySelector('section.explore').dataset.`+k))
		if err != nil {
			t.Fatal(err)
		}
		w[i] = v
	}
	return w[0], w[1]
}

func grandTotal(t *testing.T, tab context.Context) int64 {
	t.Helper()
	var n int64
	fmt.Sscan(eval[string](t, tab, `document.querySelector('[data-test=grand-total]').dataset.value`), &n)
	return n
}

// topRowTotals reads the Explore table's rows: key → exact total.
func topRowTotals(t *testing.T, tab context.Context) map[string]int64 {
	t.Helper()
	raw := eval[string](t, tab, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-test=top-row]')].map(r =>
		[[...r.querySelectorAll('[data-dim]')].map(d => d.dataset.raw).join(' '), Number(r.querySelector('[data-test=total]').dataset.value)])))`)
	out := map[string]int64{}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// bytesIn sums the bytes of records matching where in the streams over
// [since, until), by the query API.
func bytesIn(t *testing.T, c *client.Client, streams []string, since, until time.Time, where string) int64 {
	t.Helper()
	var sum int64
	for _, ls := range streams {
		st, m := testutil.Call(t, c, "POST", "/v1/log-streams/"+ls+"/query", map[string]any{
			"since": since, "until": until, "where": where, "aggregates": []any{map[string]string{"func": "sum", "field": "bytes"}}})
		if st != 200 {
			t.Fatalf("query: %d %v", st, m)
		}
		sum += int64(m["rows"].([]any)[0].([]any)[0].(float64))
	}
	return sum
}

// TestExploreEnriched: with GeoIP and ASN databases, Explore offers the
// enrichment fields as dimensions, and picked from the menu, a country
// breakdown's rows are what the query API sums per country.
func TestExploreEnriched(t *testing.T) {
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	mmdbtest.Write(t, country, mmdbtest.GeoLite2Country, map[string]mmdbtest.Entry{
		"198.51.100.0/24": {Country: "DE"}, "203.0.113.0/24": {Country: "US"}})
	mmdbtest.Write(t, asn, mmdbtest.GeoLite2ASN, map[string]mmdbtest.Entry{"203.0.113.0/24": {AS: 64501, ASName: "Big Cloud"}})
	c := newConsole(t, "FLOWLOG_MMDB="+country+","+asn)
	tab := c.tab
	do(t, tab, chromedp.Navigate(c.srv.URL+"/explore?stream="+c.stream+"&range=1h&dims=srcaddr&measure=bytes&top=10"))
	waitReady(t, tab)
	for _, d := range []string{"src_country", "dst_country", "src_as", "src_as_name", "in_if_name", "out_if_speed"} {
		if !eval[bool](t, tab, `!![...document.querySelectorAll('[data-test=add-dim] option')].find(o => o.value === '`+d+`')`) {
			t.Errorf("the dimension menu does not offer %s", d)
		}
	}
	// src_country instead of srcaddr.
	eval[chromedp.Void](t, tab, `(() => { const s = document.querySelector('[data-test=add-dim]');
		s.value = 'src_country'; s.dispatchEvent(new Event('change')) })()`)
	poll[bool](t, tab, `location.search.includes('src_country')`)
	do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=dim] button`)))
	poll[bool](t, tab, `new URLSearchParams(location.search).get('dims') === 'src_country'`)
	waitReady(t, tab)
	since, until := shownWindow(t, tab)
	rows := topRowTotals(t, tab)
	if rows["DE"] == 0 || rows["US"] == 0 {
		t.Fatalf("rows by src_country: %v", rows)
	}
	for k, got := range rows {
		if want := bytesIn(t, c.api, []string{c.stream}, since, until, "src_country = '"+k+"'"); got != want {
			t.Errorf("src_country %q: %d bytes, the query API's %d", k, got, want)
		}
	}
	screenshot(t, tab, "explore-countries")
}
