package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// TestConsole drives the console in headless Chromium against a real
// `flowlog serve` fed by the demo pcap gateway, as a user would, and checks
// what it shows against the query API.
func TestConsole(t *testing.T) {
	chromium := testutil.Peer(t, "chromium")
	srv := testutil.StartServer(t)
	api := client.New(srv.URL, srv.KeyID, srv.Secret)
	stream := demo(t, api)

	tab := browser(t, chromium)
	t.Run("SignIn", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name=access_key_id]`)))
		do(t, tab, chromedp.SendKeys(chromedp.CSS(`input[name=access_key_id]`), srv.KeyID),
			chromedp.SendKeys(chromedp.CSS(`input[name=access_key_secret]`), srv.Secret))
		screenshot(t, tab, "sign-in")
		do(t, tab, chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		// Signing in lands on the overview.
		poll[bool](t, tab, `document.querySelector('section.overview')?.dataset.state === 'ready'`)
		screenshot(t, tab, "signed-in")
		do(t, tab, chromedp.Navigate(srv.URL+"/explore"))
		waitReady(t, tab)
		// The secret is nowhere the page can keep it; the session cookie is
		// out of the page's reach.
		kept := eval[string](t, tab, `location.href + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + history.state`)
		if strings.Contains(kept, srv.Secret) || strings.Contains(kept, "flowlog_session") {
			t.Errorf("the page keeps the secret or the session cookie: %s", kept)
		}
		screenshot(t, tab, "explore")
	})

	t.Run("TopTalkersMatchQueryAPI", func(t *testing.T) {
		got := topRows(t, tab)
		want := topTalkers(t, api, stream, "")
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("console shows %d top talkers, the API %d:\n%v\n%v", len(got), len(want), got, want)
		}
		for addr, bytes := range want {
			if got[addr] != bytes {
				t.Errorf("%s: console %q bytes, API %s", addr, got[addr], bytes)
			}
		}
		// The readable figure is there too (1.23 MB), the exact one on hover.
		text := eval[string](t, tab, `document.querySelector('[data-test=top-row] [data-test=total]').textContent.trim()`)
		if !regexp.MustCompile(`^\d+(\.\d+)? [kMGT]?B$`).MatchString(text) {
			t.Errorf("total shown as %q, want a readable byte count", text)
		}
		if n := eval[int](t, tab, `Number(document.querySelector('[data-test=chart]').dataset.series)`); n < 2 {
			t.Errorf("the chart draws %d series, want one per top talker", n)
		}
	})

	var filtered string
	t.Run("FilterChangesView", func(t *testing.T) {
		before := topRows(t, tab)
		addr := eval[string](t, tab, `document.querySelectorAll('[data-test=top-row] [data-dim=srcaddr]')[1].dataset.raw`)
		typeFilter(t, tab, "srcaddr = "+addr)
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=apply]`)))
		poll[bool](t, tab, `location.search.includes('filter=')`)
		waitReady(t, tab)
		got := topRows(t, tab)
		if len(got) != 1 || got[addr] != before[addr] {
			t.Errorf("filtered on %s: the table shows %v, want only %s with %s bytes", addr, got, addr, before[addr])
		}
		if n := eval[int](t, tab, `Number(document.querySelector('[data-test=chart]').dataset.series)`); n != 1 {
			t.Errorf("filtered chart draws %d series, want 1", n)
		}
		if total := eval[string](t, tab, `document.querySelector('[data-test=grand-total]').dataset.value`); total != before[addr] {
			t.Errorf("filtered total %s, want %s", total, before[addr])
		}
		filtered = eval[string](t, tab, `location.href`)
		if !strings.Contains(filtered, "filter=") {
			t.Errorf("the filter is not in the URL: %s", filtered)
		}
		screenshot(t, tab, "filtered")
	})

	t.Run("WrongFilterShowsError", func(t *testing.T) {
		bad := "srcaddr = = 10.0.0.1"
		typeFilter(t, tab, bad)
		msg := poll[string](t, tab, `document.querySelector('[data-test=filter-error]')?.textContent ?? ''`)
		st, want := testutil.Call(t, api, "POST", "/v1/filters/check", map[string]string{"where": bad})
		if st != 200 || want["valid"] != false || !strings.Contains(msg, want["error"].(string)) {
			t.Errorf("inline error %q, the server says %d %v", msg, st, want)
		}
		if !eval[bool](t, tab, `document.querySelector('[data-test=apply]').disabled`) {
			t.Error("a wrong filter can be applied")
		}
		screenshot(t, tab, "wrong-filter")
	})

	t.Run("SharedURLInFreshTab", func(t *testing.T) {
		want := topRows(t, tab)
		fresh, cancel := chromedp.NewContext(tab)
		defer cancel()
		if err := chromedp.Do(fresh); err != nil { // opens the tab, for as long as fresh lives
			t.Fatal(err)
		}
		start := time.Now()
		do(t, fresh, chromedp.Navigate(filtered))
		waitReady(t, fresh)
		t.Logf("first view (load, session, the explore request, chart and table) in %v", time.Since(start).Round(time.Millisecond))
		if got := topRows(t, fresh); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("fresh tab shows %v, the first %v", got, want)
		}
		if f := eval[string](t, fresh, `document.querySelector('[data-test=filter]').value`); !strings.HasPrefix(f, "srcaddr = ") {
			t.Errorf("fresh tab's filter box: %q", f)
		}
		screenshot(t, fresh, "shared-url")
	})

	explore := srv.URL + "/explore?stream=" + stream + "&range=1h&dims=srcaddr&measure=bytes&top=10"
	t.Run("LinesKeepTotals", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(explore))
		waitReady(t, tab)
		before := topRows(t, tab)
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=graph-lines]`)))
		poll[bool](t, tab, `location.search.includes('graph=lines')`)
		waitReady(t, tab)
		if got := topRows(t, tab); len(got) == 0 || fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("as lines the table shows %v, as stacked areas %v", got, before)
		}
		if d := eval[string](t, tab, `document.querySelector('[data-test=chart]').dataset.drawn`); d != "lines" {
			t.Errorf("the chart draws %q, want lines", d)
		}
		screenshot(t, tab, "lines")
	})

	t.Run("TableStatsPerRow", func(t *testing.T) {
		want := topTalkers(t, api, stream, "")
		if got := topRows(t, tab); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("table totals %v, the API %v", got, want)
		}
		raw := eval[string](t, tab, `JSON.stringify([...document.querySelectorAll('[data-test=top-row]')].map(r =>
			Object.fromEntries(['min', 'avg', 'p95', 'max'].map(k => [k, Number(r.querySelector('[data-test=' + k + ']').dataset.value)]))))`)
		var rows []map[string]float64
		if err := json.Unmarshal([]byte(raw), &rows); err != nil || len(rows) == 0 {
			t.Fatalf("reading the table's statistics: %v %s", err, raw)
		}
		for i, r := range rows {
			if !(r["max"] >= r["p95"] && r["max"] >= r["avg"] && r["avg"] >= r["min"] && r["min"] >= 0 && r["max"] > 0) {
				t.Errorf("row %d: min %v, average %v, p95 %v, max %v", i+1, r["min"], r["avg"], r["p95"], r["max"])
			}
		}
	})

	t.Run("SankeyMatchesQueryAPI", func(t *testing.T) {
		if !eval[bool](t, tab, `document.querySelector('[data-test=graph-sankey]').disabled`) {
			t.Error("a Sankey is offered with one dimension")
		}
		eval[chromedp.Void](t, tab, `(() => { const s = document.querySelector('[data-test=add-dim]');
			s.value = 'dstaddr'; s.dispatchEvent(new Event('change')) })()`)
		poll[bool](t, tab, `location.search.includes('dims=srcaddr%2Cdstaddr') || location.search.includes('dims=srcaddr,dstaddr')`)
		waitReady(t, tab)
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=graph-sankey]`)))
		poll[bool](t, tab, `location.search.includes('graph=sankey')`)
		waitReady(t, tab)
		if d := eval[string](t, tab, `document.querySelector('[data-test=chart]').dataset.drawn`); d != "sankey" {
			t.Fatalf("the chart draws %q, want a sankey", d)
		}
		var links []struct {
			Source, Target string
			Value          float64
		}
		if err := json.Unmarshal([]byte(eval[string](t, tab, `document.querySelector('[data-test=chart]').dataset.links`)), &links); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, l := range links {
			if !strings.HasPrefix(l.Source, "Other (") { // the rest, which explore_test checks
				got[l.Source+" → "+l.Target] = int64(l.Value)
			}
		}
		now := time.Now()
		st, m := testutil.Call(t, api, "POST", "/v1/log-streams/"+stream+"/query", map[string]any{
			"since": now.Add(-time.Hour), "until": now, "group_by": []string{"srcaddr", "dstaddr"},
			"aggregates": []any{map[string]string{"func": "sum", "field": "bytes"}}, "limit": 10})
		if st != 200 {
			t.Fatalf("query: %d %v", st, m)
		}
		want := map[string]int64{}
		for _, r := range m["rows"].([]any) {
			r := r.([]any)
			want["srcaddr "+r[0].(string)+" → dstaddr "+r[1].(string)] = int64(r[2].(float64))
		}
		if len(want) < 2 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("sankey links %v, the API's pairs %v", got, want)
		}
		// The table lists the same pairs.
		pairs := eval[string](t, tab, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-test=top-row]')].map(r =>
			['srcaddr ' + r.querySelector('[data-dim=srcaddr]').dataset.raw + ' → dstaddr ' + r.querySelector('[data-dim=dstaddr]').dataset.raw,
			 Number(r.querySelector('[data-test=total]').dataset.value)])))`)
		table := map[string]int64{}
		if err := json.Unmarshal([]byte(pairs), &table); err != nil || fmt.Sprint(table) != fmt.Sprint(want) {
			t.Errorf("the table's pairs %v (%v), the API's %v", table, err, want)
		}
		// Drawn: a good part of the canvas is painted.
		painted := eval[float64](t, tab, `(() => { const c = document.querySelector('[data-test=chart] canvas');
			const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n / (c.width * c.height) })()`)
		if painted < 0.05 {
			t.Errorf("the sankey paints %.1f %% of the canvas", 100*painted)
		}
		screenshot(t, tab, "sankey")
	})

	t.Run("AutoRefreshWhileNow", func(t *testing.T) {
		if ms := eval[int](t, tab, `Number(document.querySelector('section.explore').dataset.refresh)`); ms != 60000 {
			t.Errorf("a window ending now refreshes every %d ms, want 60000", ms)
		}
		if txt := eval[string](t, tab, `document.querySelector('[data-test=refresh]').textContent`); !strings.Contains(txt, "1 min") {
			t.Errorf("the refresh button says %q", txt)
		}
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=shift-left]`)))
		poll[bool](t, tab, `location.search.includes('end=')`)
		waitReady(t, tab)
		if ms := eval[int](t, tab, `Number(document.querySelector('section.explore').dataset.refresh)`); ms != 0 ||
			!eval[bool](t, tab, `document.querySelector('[data-test=refresh]').disabled`) {
			t.Errorf("a past window refreshes every %d ms", ms)
		}
		do(t, tab, chromedp.NavigateBack())
		poll[bool](t, tab, `!location.search.includes('end=')`)
		waitReady(t, tab)
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=refresh]`)))
		poll[bool](t, tab, `location.search.includes('refresh=off')`)
		waitReady(t, tab)
		if ms := eval[int](t, tab, `Number(document.querySelector('section.explore').dataset.refresh)`); ms != 0 {
			t.Errorf("auto-refresh turned off, still every %d ms", ms)
		}
	})

	t.Run("FlowLogs", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(srv.URL+"/flow-logs"))
		row := poll[string](t, tab, `document.querySelector('[data-test=flow-logs] tbody tr')?.textContent ?? ''`)
		_, fls := testutil.Call(t, api, "GET", "/v1/flow-logs", nil)
		fl := fls["flow_logs"].([]any)[0].(map[string]any)
		if !strings.Contains(row, fl["id"].(string)) || !strings.Contains(row, fl["state"].(string)) {
			t.Errorf("flow log row %q, the API says %v", row, fl)
		}
		screenshot(t, tab, "flow-logs")
	})

	t.Run("ManageFlowLog", func(t *testing.T) {
		// A gateway of its own: the demo's already carries a flow log into a log stream.
		gw, stream := demoGateway(t, api, "console")
		do(t, tab, chromedp.Navigate(srv.URL+"/flow-logs"))
		poll[string](t, tab, `document.querySelector('[data-test=flow-logs] tbody tr')?.textContent ?? ''`)
		eval[chromedp.Void](t, tab, `window.notReloaded = true`)
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=new-flow-log]`)))
		poll[bool](t, tab, `!document.querySelector('[data-test=create]')?.disabled`)
		do(t, tab, chromedp.SendKeys(chromedp.CSS(`[data-test=flow-log-form] input[name=name]`), "console-made"),
			chromedp.Click(chromedp.CSS(`[data-test=gateway][value="`+gw+`"]`)))

		// No log stream chosen: the form says what the API says, and nothing is created.
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=create]`)))
		msg := poll[string](t, tab, `document.querySelector('[data-test=form-error]')?.textContent ?? ''`)
		st, want := testutil.Call(t, api, "POST", "/v1/flow-logs", map[string]any{"name": "console-made",
			"output_type": "sls", "targets": []any{map[string]any{"gateway_id": gw}}})
		if st != 400 || !strings.Contains(msg, want["code"].(string)) || !strings.Contains(msg, want["message"].(string)) {
			t.Errorf("form error %q, the API says %d %v", msg, st, want)
		}
		if row := flowLogRow(t, tab, "console-made"); row != "" {
			t.Errorf("a refused flow log is listed: %s", row)
		}
		screenshot(t, tab, "flow-log-form-error")

		eval[chromedp.Void](t, tab, `(() => { const s = document.querySelector('[data-test=flow-log-form] select[name=log_stream_id]');
			s.value = `+fmt.Sprintf("%q", stream)+`; s.dispatchEvent(new Event('change')) })()`)
		do(t, tab, chromedp.SendKeys(chromedp.CSS(`[data-test=flow-log-form] input[name=sampling]`), "4"),
			chromedp.Click(chromedp.CSS(`[data-test=create]`)))
		id := poll[string](t, tab, `document.querySelector('tr[data-name="console-made"]')?.dataset.id ?? ''`)
		poll[bool](t, tab, flowLogCell(id, "state")+` === 'available'`)
		st, fl := testutil.Call(t, api, "GET", "/v1/flow-logs/"+id, nil)
		targets, _ := fl["targets"].([]any)
		if st != 200 || fl["log_stream_id"] != stream || fl["sampling"] != float64(4) || fl["state"] != "available" ||
			len(targets) != 1 || targets[0].(map[string]any)["gateway_id"] != gw {
			t.Errorf("the flow log made in the console, by the API: %d %v", st, fl)
		}
		if eval[bool](t, tab, `document.querySelector('[data-test=form-error]') !== null || !window.notReloaded`) {
			t.Error("after creating, the form error stays or the page reloaded")
		}
		screenshot(t, tab, "flow-log-created")

		do(t, tab, chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] [data-test=toggle]`)))
		poll[bool](t, tab, flowLogCell(id, "enabled")+` === 'no'`)
		if _, fl := testutil.Call(t, api, "GET", "/v1/flow-logs/"+id, nil); fl["enabled"] != false {
			t.Errorf("disabled in the console, the API says enabled=%v", fl["enabled"])
		}

		do(t, tab, chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] [data-test=delete]`)))
		if flowLogRow(t, tab, "console-made") == "" {
			t.Fatal("the first click on Delete removed the row; it should ask to confirm")
		}
		do(t, tab, chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] [data-test=confirm-delete]`)))
		poll[bool](t, tab, `document.querySelector('tr[data-id="`+id+`"]') === null`)
		if st, _ := testutil.Call(t, api, "GET", "/v1/flow-logs/"+id, nil); st != 404 {
			t.Errorf("the row is gone, the API answers %d for the flow log", st)
		}
		if !eval[bool](t, tab, `window.notReloaded === true`) {
			t.Error("the page reloaded")
		}
		screenshot(t, tab, "flow-log-deleted")
	})

	t.Run("ManageLogGroups", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(srv.URL+"/log-groups"))
		poll[string](t, tab, `document.querySelector('[data-test=group]')?.dataset.id ?? ''`)
		do(t, tab, chromedp.SendKeys(chromedp.CSS(`input[name=group_name]`), "console-group"),
			chromedp.Click(chromedp.CSS(`[data-test=create-group]`)))
		g := poll[string](t, tab, `document.querySelector('[data-test=group][data-name="console-group"]')?.dataset.id ?? ''`)
		in := `[data-test=group][data-id="` + g + `"] `
		do(t, tab, chromedp.SendKeys(chromedp.CSS(in+`input[name=stream_name]`), "console-stream"),
			chromedp.SendKeys(chromedp.CSS(in+`input[name=stream_retention]`), "7"),
			chromedp.Click(chromedp.CSS(in+`[data-test=create-stream]`)))
		s := poll[string](t, tab, `document.querySelector('`+in+`tr[data-name="console-stream"]')?.dataset.id ?? ''`)
		path := "/v1/log-groups/" + g + "/log-streams/" + s
		if st, ls := testutil.Call(t, api, "GET", path, nil); st != 200 || ls["retention_days"] != float64(7) {
			t.Errorf("stream made in the console with retention 7, the API says %d %v", st, ls)
		}
		screenshot(t, tab, "log-group-created")

		row := `tr[data-id="` + s + `"] `
		eval[chromedp.Void](t, tab, `(() => { const i = document.querySelector('`+row+`input[name=retention_days]');
			i.value = ''; i.dispatchEvent(new Event('input')) })()`)
		do(t, tab, chromedp.SendKeys(chromedp.CSS(row+`input[name=retention_days]`), "30"),
			chromedp.Click(chromedp.CSS(row+`[data-test=save-retention]`)))
		poll[bool](t, tab, `document.querySelector('`+row+`[data-test=retention]')?.textContent.trim() === '30'`)
		if st, ls := testutil.Call(t, api, "GET", path, nil); st != 200 || ls["retention_days"] != float64(30) {
			t.Errorf("retention changed to 30 in the console, the API says %d %v", st, ls)
		}

		// A name the server refuses: its code and message are shown, nothing is made.
		do(t, tab, chromedp.SendKeys(chromedp.CSS(in+`input[name=stream_name]`), "console-stream"),
			chromedp.Click(chromedp.CSS(in+`[data-test=create-stream]`)))
		msg := poll[string](t, tab, `document.querySelector('[data-test=error]')?.textContent ?? ''`)
		st, want := testutil.Call(t, api, "POST", "/v1/log-groups/"+g+"/log-streams", map[string]any{"name": "console-stream"})
		if st < 400 || !strings.Contains(msg, want["code"].(string)) || !strings.Contains(msg, want["message"].(string)) {
			t.Errorf("error shown %q, the API says %d %v", msg, st, want)
		}
		screenshot(t, tab, "log-group-error")

		do(t, tab, chromedp.Click(chromedp.CSS(row+`[data-test=delete-stream]`)))
		if eval[bool](t, tab, `document.querySelector('`+row+`') === null`) {
			t.Fatal("the first click on Delete removed the stream; it should ask to confirm")
		}
		do(t, tab, chromedp.Click(chromedp.CSS(row+`[data-test=confirm-delete-stream]`)))
		poll[bool](t, tab, `document.querySelector('`+row+`') === null`)
		do(t, tab, chromedp.Click(chromedp.CSS(in+`[data-test=delete-group]`)),
			chromedp.Click(chromedp.CSS(in+`[data-test=confirm-delete-group]`)))
		poll[bool](t, tab, `document.querySelector('`+in+`') === null`)
		if st, _ := testutil.Call(t, api, "GET", "/v1/log-groups/"+g, nil); st != 404 {
			t.Errorf("the group is gone from the page, the API answers %d", st)
		}
	})

	t.Run("ManageAccessKeys", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(srv.URL+"/access-keys"))
		poll[string](t, tab, `document.querySelector('[data-test=access-key]')?.dataset.id ?? ''`)
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=new-key]`)))
		secret := poll[string](t, tab, `document.querySelector('[data-test=secret]')?.textContent.trim() ?? ''`)
		id := eval[string](t, tab, `document.querySelector('[data-test=new-secret]').dataset.id`)
		kept := eval[string](t, tab, `location.href + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + history.state + JSON.stringify(history.state)`)
		if strings.Contains(kept, secret) {
			t.Errorf("the new key's secret is kept by the page: %s", kept)
		}
		if st, _ := testutil.Call(t, client.New(srv.URL, id, secret), "GET", "/v1/access-keys", nil); st != 200 {
			t.Errorf("the key and secret the console showed: %d", st)
		}
		row := `tr[data-id="` + id + `"] `
		poll[bool](t, tab, `document.querySelector('`+row+`[data-test=state]')?.textContent.trim() === 'enabled'`)
		screenshot(t, tab, "access-key-created")
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=dismiss-secret]`)))
		if eval[bool](t, tab, `document.documentElement.outerHTML.includes(`+fmt.Sprintf("%q", secret)+`)`) {
			t.Error("the secret is still in the page after dismissing it")
		}

		do(t, tab, chromedp.Click(chromedp.CSS(row+`[data-test=toggle]`)))
		poll[bool](t, tab, `document.querySelector('`+row+`[data-test=state]')?.textContent.trim() === 'disabled'`)
		if accessKeyStatus(t, api, id) != "disabled" {
			t.Errorf("disabled in the console, the API says %q", accessKeyStatus(t, api, id))
		}
		screenshot(t, tab, "access-key-disabled")

		do(t, tab, chromedp.Click(chromedp.CSS(row+`[data-test=delete]`)), chromedp.Click(chromedp.CSS(row+`[data-test=confirm-delete]`)))
		poll[bool](t, tab, `document.querySelector('`+row+`') === null`)
		if st := accessKeyStatus(t, api, id); st != "" {
			t.Errorf("deleted in the console, the API lists it as %q", st)
		}
	})

	t.Run("ManageGateways", func(t *testing.T) {
		do(t, tab, chromedp.Navigate(srv.URL+"/gateways"))
		poll[string](t, tab, `document.querySelector('[data-test=gateway]')?.dataset.id ?? ''`)
		const addr = "192.0.2.77"
		exp := createGateway(t, tab, "console-exporter", "exporter", "exporter_addr", addr)
		if st, g := testutil.Call(t, api, "GET", "/v1/gateways/"+exp, nil); st != 200 || g["kind"] != "exporter" || g["exporter_addr"] != addr {
			t.Errorf("exporter gateway made in the console, the API says %d %v", st, g)
		}
		card := `[data-test=gateway][data-id="` + exp + `"] `
		if src := eval[string](t, tab, `document.querySelector('`+card+`[data-test=source]').textContent.trim()`); src != addr {
			t.Errorf("the exporter gateway's row shows %q, want its address", src)
		}

		// A second gateway for the same exporter: the API's 409 is shown, nothing is made.
		fillGateway(t, tab, "console-exporter-2", "exporter", "exporter_addr", addr)
		msg := poll[string](t, tab, `document.querySelector('[data-test=error]')?.textContent ?? ''`)
		st, want := testutil.Call(t, api, "POST", "/v1/gateways", map[string]any{"name": "console-exporter-2", "kind": "exporter", "exporter_addr": addr})
		if st != 409 || !strings.Contains(msg, want["code"].(string)) || !strings.Contains(msg, want["message"].(string)) {
			t.Errorf("error shown %q, the API says %d %v", msg, st, want)
		}
		if eval[bool](t, tab, `!!document.querySelector('[data-test=gateway][data-name="console-exporter-2"]')`) {
			t.Error("a refused gateway is listed")
		}
		screenshot(t, tab, "gateway-conflict")

		// An exporter with a sampling override and SNMP: set as typed, the
		// community shown nowhere and kept in no browser storage.
		const community = "console-s3cret"
		form := `[data-test=new-gateway] `
		setFields(t, tab, form, map[string]string{"gateway_kind": "exporter"})
		poll[bool](t, tab, `!!document.querySelector('`+form+`[name=snmp_community]')`)
		setFields(t, tab, form, map[string]string{"gateway_name": "console-polled", "exporter_addr": "192.0.2.78",
			"sampling_interval": "100", "snmp_community": community})
		poll[bool](t, tab, `!!document.querySelector('`+form+`[name=snmp_port]')`)
		setFields(t, tab, form, map[string]string{"snmp_port": "1161"})
		do(t, tab, chromedp.Click(chromedp.CSS(form+`[data-test=create-gateway]`)))
		polled := poll[string](t, tab, `document.querySelector('[data-test=gateway][data-name="console-polled"]')?.dataset.id ?? ''`)
		st, g := testutil.Call(t, api, "GET", "/v1/gateways/"+polled, nil)
		snmp, _ := g["snmp"].(map[string]any)
		if st != 200 || g["sampling_interval"] != float64(100) || g["snmp_configured"] != true || snmp["version"] != "2c" || snmp["port"] != float64(1161) {
			t.Errorf("exporter with SNMP made in the console, the API says %d %v", st, g)
		}
		src := eval[string](t, tab, `document.querySelector('[data-test=gateway][data-id="`+polled+`"] [data-test=source]').textContent`)
		if !strings.Contains(src, "sampling 1:100") || !strings.Contains(src, "SNMP v2c port 1161") {
			t.Errorf("the polled exporter's row shows %q", src)
		}
		if eval[bool](t, tab, `document.documentElement.outerHTML.includes('`+community+`') || JSON.stringify(localStorage).includes('`+community+`') || JSON.stringify(sessionStorage).includes('`+community+`')`) {
			t.Error("the SNMP community shows in the page or in browser storage")
		}

		capture := createGateway(t, tab, "console-capture", "capture", "", "")
		in := `[data-test=gateway][data-id="` + capture + `"] `
		setFields(t, tab, in, map[string]string{"attachment_name": "console-lo", "attachment_interface": "lo"})
		do(t, tab, chromedp.Click(chromedp.CSS(in+`[data-test=create-attachment]`)))
		att := poll[string](t, tab, `document.querySelector('`+in+`tr[data-name="console-lo"]')?.dataset.id ?? ''`)
		if st, a := testutil.Call(t, api, "GET", "/v1/gateways/"+capture+"/attachments/"+att, nil); st != 200 || a["interface"] != "lo" {
			t.Errorf("attachment made in the console, the API says %d %v", st, a)
		}
		screenshot(t, tab, "gateways")

		row := `tr[data-id="` + att + `"] `
		do(t, tab, chromedp.Click(chromedp.CSS(row+`[data-test=delete-attachment]`)))
		if eval[bool](t, tab, `document.querySelector('`+row+`') === null`) {
			t.Fatal("the first click on Remove removed the attachment; it should ask to confirm")
		}
		do(t, tab, chromedp.Click(chromedp.CSS(row+`[data-test=confirm-delete-attachment]`)))
		poll[bool](t, tab, `document.querySelector('`+row+`') === null`)
		for _, id := range []string{exp, capture} {
			card := `[data-test=gateway][data-id="` + id + `"] `
			do(t, tab, chromedp.Click(chromedp.CSS(card+`[data-test=delete-gateway]`)),
				chromedp.Click(chromedp.CSS(card+`[data-test=confirm-delete-gateway]`)))
			poll[bool](t, tab, `document.querySelector('`+card+`') === null`)
			if st, _ := testutil.Call(t, api, "GET", "/v1/gateways/"+id, nil); st != 404 {
				t.Errorf("gateway %s is gone from the page, the API answers %d", id, st)
			}
		}
	})

	t.Run("SecondAccountSeesNothing", func(t *testing.T) {
		_, k := testutil.Call(t, api, "POST", "/v1/access-keys", map[string]any{"new_account": true})
		other := browser(t, chromium)
		signIn(t, other, srv.URL, k["access_key_id"].(string), k["access_key_secret"].(string))
		if st := poll[string](t, other, `(s => s !== 'loading' && s)(document.querySelector('section.explore')?.dataset.state)`); st != "empty" {
			t.Errorf("explore state %q, want empty", st)
		}
		if n := eval[int](t, other, `document.querySelectorAll('[data-test=stream] option').length`); n != 0 {
			t.Errorf("the second account sees %d log streams", n)
		}
		// The first account's view of its stream, by its URL: refused, nothing shown.
		do(t, other, chromedp.Navigate(explore))
		msg := poll[string](t, other, `document.querySelector('[data-test=error]')?.textContent ?? ''`)
		if !strings.Contains(msg, stream) || eval[int](t, other, `document.querySelectorAll('[data-test=top-row]').length`) != 0 {
			t.Errorf("the first account's stream, opened by the second: %q", msg)
		}
		screenshot(t, other, "second-account")
		do(t, other, chromedp.Navigate(srv.URL+"/flow-logs"))
		poll[string](t, other, `document.querySelector('[data-test=empty]')?.textContent ?? ''`)

		// Its only key cannot be disabled: the API's 409 is shown, the key stays.
		do(t, other, chromedp.Navigate(srv.URL+"/access-keys"))
		row := `tr[data-id="` + k["access_key_id"].(string) + `"] `
		poll[bool](t, other, `!!document.querySelector('`+row+`[data-test=toggle]')`)
		do(t, other, chromedp.Click(chromedp.CSS(row+`[data-test=toggle]`)))
		msg = poll[string](t, other, `document.querySelector('[data-test=error]')?.textContent ?? ''`)
		if !strings.Contains(msg, "Conflict.LastAccessKey") || eval[string](t, other, `document.querySelector('`+row+`[data-test=state]').textContent.trim()`) != "enabled" {
			t.Errorf("disabling the last key: shown %q", msg)
		}
		screenshot(t, other, "last-access-key")
	})
}

// console is a real server fed by the demo, and a browser signed in to it,
// for a test of one part of the console; serverEnv is passed to the server
// (e.g. to turn its collector on).
type console struct {
	srv    *testutil.Server
	api    *client.Client
	stream string // the demo's log stream
	tab    context.Context
}

func newConsole(t *testing.T, serverEnv ...string) *console {
	t.Helper()
	chromium := testutil.Peer(t, "chromium")
	srv := testutil.StartServer(t, serverEnv...)
	c := &console{srv: srv, api: client.New(srv.URL, srv.KeyID, srv.Secret)}
	c.stream = demo(t, c.api)
	c.tab = browser(t, chromium)
	signIn(t, c.tab, srv.URL, srv.KeyID, srv.Secret)
	waitReady(t, c.tab)
	return c
}

// signIn signs in from the sign-in page with an access key, going on to
// the Explore page.
func signIn(t *testing.T, tab context.Context, url, id, secret string) {
	t.Helper()
	do(t, tab, chromedp.Navigate(url+"/sign-in?next=/explore"), chromedp.WaitVisible(chromedp.CSS(`input[name=access_key_id]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=access_key_id]`), id),
		chromedp.SendKeys(chromedp.CSS(`input[name=access_key_secret]`), secret),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
}

// demo sets up the README's quick start through the API: a pcap gateway
// replaying demo/lab.pcap fast, a log stream and a flow log into it. It
// returns the stream once the replay's records have all been stored.
func demo(t *testing.T, c *client.Client) string {
	gw, ls := demoGateway(t, c, "demo")
	must(t, c, "/v1/flow-logs", map[string]any{"name": "demo", "output_type": "sls", "log_stream_id": ls,
		"targets": []any{map[string]any{"gateway_id": gw}}})
	last := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		now := fmt.Sprint(topTalkers(t, c, ls, ""))
		if now != last || now == "map[]" {
			last = now
			continue
		}
		return ls
	}
	t.Fatalf("the demo's records never settled: %s", last)
	return ""
}

// demoGateway makes a pcap gateway replaying demo/lab.pcap fast, and a log
// group with a log stream, all named name; it returns the gateway and stream.
func demoGateway(t *testing.T, c *client.Client, name string) (gw, stream string) {
	t.Helper()
	pcap, _ := filepath.Abs("../../demo/lab.pcap")
	gw = must(t, c, "/v1/gateways", map[string]any{"name": name, "kind": "pcap", "pcap_path": pcap, "pcap_pace": "fast"})
	lg := must(t, c, "/v1/log-groups", map[string]any{"name": name})
	return gw, must(t, c, "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "flows"})
}

// must creates a resource through the API and returns its id.
func must(t *testing.T, c *client.Client, path string, body any) string {
	t.Helper()
	st, m := testutil.Call(t, c, "POST", path, body)
	if st != 201 {
		t.Fatalf("POST %s: %d %v", path, st, m)
	}
	return m["id"].(string)
}

// topTalkers asks the query API what the console's default view shows:
// the top 10 source addresses by bytes over the last hour.
func topTalkers(t *testing.T, c *client.Client, stream, where string) map[string]string {
	t.Helper()
	now := time.Now()
	st, m := testutil.Call(t, c, "POST", "/v1/log-streams/"+stream+"/query", map[string]any{
		"since": now.Add(-time.Hour), "until": now, "where": where, "group_by": []string{"srcaddr"},
		"aggregates": []any{map[string]string{"func": "sum", "field": "bytes"}}, "limit": 10})
	if st != 200 {
		t.Fatalf("query: %d %v", st, m)
	}
	out := map[string]string{}
	rows, _ := m["rows"].([]any)
	for _, r := range rows {
		r := r.([]any)
		out[r[0].(string)] = fmt.Sprint(int64(r[1].(float64)))
	}
	return out
}

func browser(t *testing.T, chromium string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	watchConsole(t, ctx)
	return ctx
}

// watchConsole fails the test on an uncaught exception in the page or on
// anything the Content-Security-Policy blocked.
func watchConsole(t *testing.T, ctx context.Context) {
	var mu sync.Mutex
	var bad []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				bad = append(bad, m.Text)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bad {
			t.Errorf("page console: %s", b)
		}
	})
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// poll waits until js gives a truthy value, and returns it.
func poll[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// By interval: a tab in the background gets no animation frames.
	v, err := chromedp.Run(ctx, chromedp.Poll[T](js, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		screenshot(t, ctx, "failed-"+strings.ReplaceAll(t.Name(), "/", "-"))
		t.Fatalf("waiting for %s: %v", js, err)
	}
	return v
}

// waitReady waits until the Explore page shows the answer to its URL.
func waitReady(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const s = document.querySelector('section.explore');
		return !!s && s.dataset.state === 'ready' && s.dataset.loaded === location.pathname + location.search })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		screenshot(t, ctx, "failed-"+strings.ReplaceAll(t.Name(), "/", "-"))
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' ' + JSON.stringify(document.querySelector('section.explore')?.dataset) + ' ' + document.body.innerText.slice(0, 300)`))
		t.Fatalf("the Explore page never showed its view: %v; %s", err, state)
	}
}

// topRows reads the Explore table: source address → exact byte count.
func topRows(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	raw := eval[string](t, ctx, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-test=top-row]')].map(r =>
		[r.querySelector('[data-dim=srcaddr]').dataset.raw, r.querySelector('[data-test=total]').dataset.value])))`)
	out := map[string]string{}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func typeFilter(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	eval[chromedp.Void](t, ctx, `(() => { const f = document.querySelector('[data-test=filter]');
		f.value = ''; f.dispatchEvent(new Event('input')) })()`)
	do(t, ctx, chromedp.SendKeys(chromedp.CSS(`[data-test=filter]`), text))
}

// screenshot saves the page as PNG under $FLOWLOG_ARTIFACTS (CI keeps that
// directory), else testdata/artifacts.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("FLOWLOG_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// accessKeyStatus is an access key's status as the API lists it, "" if not listed.
func accessKeyStatus(t *testing.T, c *client.Client, id string) string {
	t.Helper()
	_, m := testutil.Call(t, c, "GET", "/v1/access-keys", nil)
	keys, _ := m["access_keys"].([]any)
	for _, k := range keys {
		if k := k.(map[string]any); k["access_key_id"] == id {
			return k["status"].(string)
		}
	}
	return ""
}

// flowLogRow is the Flow logs table's row for a name, or "" if none.
func flowLogRow(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`document.querySelector('tr[data-name=%q]')?.textContent ?? ''`, name))
}

// flowLogCell is JS reading a cell (by data-test) of a flow log's row, as shown.
func flowLogCell(id, cell string) string {
	return fmt.Sprintf(`(document.querySelector('tr[data-id=%q] [data-test=%s]')?.textContent ?? '').trim()`, id, cell)
}

// fillGateway fills the new-gateway form (field, if any, is the kind's own)
// and submits it.
func fillGateway(t *testing.T, ctx context.Context, name, kind, field, value string) {
	t.Helper()
	form := `[data-test=new-gateway] `
	setFields(t, ctx, form, map[string]string{"gateway_kind": kind})
	fields := map[string]string{"gateway_name": name}
	if field != "" {
		poll[bool](t, ctx, `!!document.querySelector('`+form+`[name=`+field+`]')`)
		fields[field] = value
	}
	setFields(t, ctx, form, fields)
	do(t, ctx, chromedp.Click(chromedp.CSS(form+`[data-test=create-gateway]`)))
}

// createGateway makes a gateway through the form and returns its id, once listed.
func createGateway(t *testing.T, ctx context.Context, name, kind, field, value string) string {
	t.Helper()
	fillGateway(t, ctx, name, kind, field, value)
	return poll[string](t, ctx, fmt.Sprintf(`document.querySelector('[data-test=gateway][data-name=%q]')?.dataset.id ?? ''`, name))
}

// setFields replaces the values of named inputs and selects under scope, as typing would.
func setFields(t *testing.T, ctx context.Context, scope string, fields map[string]string) {
	t.Helper()
	js, _ := json.Marshal(fields)
	eval[chromedp.Void](t, ctx, `(() => { for (const [n, v] of Object.entries(`+string(js)+`)) {
		const e = document.querySelector(`+fmt.Sprintf("%q", scope)+` + '[name=' + n + ']');
		e.value = v; e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input')) } })()`)
}
