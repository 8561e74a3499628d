package web_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// TestExporters: the Exporters page says there are none, then shows the
// routers exporter gateways name (softflowd exporting NetFlow v5 of the
// demo capture, and a real Juniper MX80's v5 packet) with the packets and
// records the API reports, and their health with a reason.
func TestExporters(t *testing.T) {
	softflowd := testutil.Peer(t, "softflowd")
	collector := fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	c := newConsole(t, "FLOWLOG_NETFLOW_LISTEN="+collector)
	tab := c.tab

	do(t, tab, chromedp.Navigate(c.srv.URL+"/exporters"))
	empty := poll[string](t, tab, `document.querySelector('[data-test=empty]')?.textContent ?? ''`)
	if !strings.Contains(empty, "No exporters") {
		t.Errorf("empty state: %q", empty)
	}

	lg := must(t, c.api, "/v1/log-groups", map[string]any{"name": "router"})
	stream := must(t, c.api, "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "flows"})
	gw := must(t, c.api, "/v1/gateways", map[string]any{"name": "router", "kind": "exporter", "exporter_addr": "127.0.0.1"})
	mx := must(t, c.api, "/v1/gateways", map[string]any{"name": "mx80", "kind": "exporter", "exporter_addr": "127.0.0.3"})
	fl := must(t, c.api, "/v1/flow-logs", map[string]any{"name": "routers", "output_type": "sls", "log_stream_id": stream,
		"targets": []any{map[string]any{"gateway_id": gw}, map[string]any{"gateway_id": mx}}})
	waitAPI(t, "flow log "+fl+" available", func() bool {
		_, m := testutil.Call(t, c.api, "GET", "/v1/flow-logs/"+fl, nil)
		return m["state"] == "available"
	})
	row := `[data-test=exporter][data-id="` + gw + `"] `
	if h := poll[string](t, tab, `document.querySelector('`+row+`[data-test=health]')?.textContent ?? ''`); h != "silent" {
		t.Errorf("before any datagram the router shows %q, want silent", h)
	}

	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pcap, _ := filepath.Abs("../../demo/lab.pcap")
	out, err := exec.CommandContext(ctx, softflowd, "-p", pidFile, "-v", "5", "-n", collector, "-r", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("softflowd: %v: %s", err, out)
	}
	// What softflowd says it sent: "Flows exported: 109 (206 records) in 7 packets".
	sent := regexp.MustCompile(`\((\d+) records\) in (\d+) packets`).FindStringSubmatch(string(out))
	if sent == nil {
		t.Fatalf("softflowd did not say what it sent: %s", out)
	}
	testutil.SendCorpus(t, "127.0.0.3", collector, "netflow5_test_juniper_mx80.dat")

	// The API's figures once they stop moving; the page must show them.
	var api map[string]any
	last := ""
	waitAPI(t, "the router's counters to settle", func() bool {
		api = exporterRow(t, c.api, gw)
		now := fmt.Sprint(api["packets"], api["records"])
		settled := now == last && api["packets"].(float64) > 1
		last = now
		return settled
	})
	want := fmt.Sprintf("%v %v", api["packets"], api["records"])
	if want != sent[2]+" "+sent[1] {
		t.Errorf("the API counts packets and records %s, softflowd sent %s %s", want, sent[2], sent[1])
	}
	got := poll[string](t, tab, `(() => { const r = document.querySelector('`+row+`[data-test=packets]');
		const s = r && r.dataset.value + ' ' + document.querySelector('`+row+`[data-test=records]').dataset.value;
		return s === '`+want+`' ? s : '' })()`)
	if got != want {
		t.Errorf("page shows packets and records %q, the API %q", got, want)
	}
	cells := eval[map[string]string](t, tab, `Object.fromEntries(['health', 'reason', 'protocol', 'sampling', 'packets', 'last-seen']
		.map(k => [k, document.querySelector('`+row+`[data-test=' + k + ']').textContent.trim()]))`)
	// Reasons say how long ago; the page's answer may be older than ours.
	if cells["health"] != api["health"] || sinceless(cells["reason"]) != sinceless(api["health_reason"].(string)) ||
		cells["reason"] == "" {
		t.Errorf("health shown %q %q, the API says %v %v", cells["health"], cells["reason"], api["health"], api["health_reason"])
	}
	if cells["protocol"] != "NetFlow v5" || cells["sampling"] != "none announced" {
		t.Errorf("softflowd: protocol %q, sampling %q; want NetFlow v5, none announced", cells["protocol"], cells["sampling"])
	}
	// softflowd announces no rate and the gateway sets none: flagged, with
	// what to do in the cell's title.
	if api["health"] != "no_sampling_rate" || api["sampling_missing"] != true {
		t.Errorf("softflowd without a rate: API health %v, sampling_missing %v", api["health"], api["sampling_missing"])
	}
	flag := eval[string](t, tab, `(() => { const s = document.querySelector('`+row+`[data-test=sampling]');
		return s.dataset.missing + ' ' + s.title })()`)
	if !strings.HasPrefix(flag, "true ") || !strings.Contains(flag, "--sampling-interval") {
		t.Errorf("softflowd's sampling cell: %q, want it flagged with what to set", flag)
	}
	// The MX80's one packet: 29 records sampled 1:1000 by its header.
	mxRow := `[data-test=exporter][data-id="` + mx + `"] `
	mxCells := poll[string](t, tab, `(() => { const q = k => document.querySelector('`+mxRow+`[data-test=' + k + ']')?.textContent.trim();
		return q('records') === '29' ? [q('packets'), q('records'), q('protocol'), q('sampling')].join(', ') : '' })()`)
	if mxCells != "1, 29, NetFlow v5, 1:1 k" {
		t.Errorf("the MX80's row shows %q, want 1, 29, NetFlow v5, 1:1 k", mxCells)
	}
	if !strings.HasSuffix(cells["last-seen"], "s ago") {
		t.Errorf("last seen %q", cells["last-seen"])
	}
	screenshot(t, tab, "exporters")

	// softflowd does not sample: saying so on the gateway clears the flag.
	if st, m := testutil.Call(t, c.api, "PATCH", "/v1/gateways/"+gw, map[string]any{"sampling_interval": 1}); st != 200 {
		t.Fatalf("PATCH sampling_interval: %d %v", st, m)
	}
	cleared := poll[string](t, tab, `(() => { const q = k => document.querySelector('`+row+`[data-test=' + k + ']');
		const s = [q('health')?.textContent, q('sampling')?.textContent.trim(), q('sampling')?.dataset.missing].join(', ');
		return s.startsWith('ok') ? s : '' })()`)
	if cleared != "ok, 1:1 (gateway), false" {
		t.Errorf("after the override, softflowd's row shows %q, want ok, 1:1 (gateway), false", cleared)
	}
}

var durations = regexp.MustCompile(`\b[0-9hms.]+ ago\b`)

// sinceless takes the durations out of a health reason.
func sinceless(s string) string { return durations.ReplaceAllString(s, "ago") }

// exporterRow is GET /v1/exporters?gateway_id=gw's one row.
func exporterRow(t *testing.T, c *client.Client, gw string) map[string]any {
	t.Helper()
	st, m := testutil.Call(t, c, "GET", "/v1/exporters?gateway_id="+gw, nil)
	rows, _ := m["exporters"].([]any)
	if st != 200 || len(rows) != 1 {
		t.Fatalf("GET /v1/exporters: %d %v", st, m)
	}
	return rows[0].(map[string]any)
}

func waitAPI(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20 s for %s", what)
		}
	}
}
