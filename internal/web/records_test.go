package web_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"

	"flowlog/internal/client"
	"flowlog/internal/flow"
)

// TestRecords: the Records page lists, page by page, the records the query
// API returns for its view, and downloads all of them.
func TestRecords(t *testing.T) {
	c := newConsole(t)
	tab := c.tab
	do(t, tab, chromedp.Navigate(c.srv.URL+"/records?stream="+c.stream+"&range=1h&size=25"))
	waitRecords(t, tab)
	win := recordsWindow(t, tab)
	all := apiRecords(t, c.api, c.stream, win, "", 0, 0)
	if len(all) <= 25 {
		t.Fatalf("the demo stores %d records; the test wants more than a page", len(all))
	}

	t.Run("PageMatchesQueryAPI", func(t *testing.T) {
		if got, want := pageRows(t, tab), apiRecords(t, c.api, c.stream, win, "", 0, 25); !slices.Equal(got, want) {
			t.Errorf("the page lists\n%v\nthe query API\n%v", got, want)
		}
		// Readable cells, the exact value on hover.
		cells := eval[string](t, tab, `JSON.stringify([...document.querySelectorAll('[data-test=record]')].map(r =>
			Object.fromEntries(['protocol', 'bytes', 'end'].flatMap(f => { const c = r.querySelector('[data-field=' + f + ']');
				return [[f, c.textContent.trim()], [f + '_raw', c.dataset.raw], [f + '_title', c.title]] }))))`)
		var rows []map[string]string
		if err := json.Unmarshal([]byte(cells), &rows); err != nil {
			t.Fatal(err)
		}
		names := map[string]string{"1": "ICMP", "6": "TCP", "17": "UDP", "58": "ICMPv6"}
		for _, r := range rows {
			if n, ok := names[r["protocol_raw"]]; ok && r["protocol"] != n {
				t.Errorf("protocol %s shown as %q, want %s", r["protocol_raw"], r["protocol"], n)
			}
			if !strings.HasSuffix(r["bytes"], "B") || !strings.HasPrefix(strings.ReplaceAll(r["bytes_title"], ",", ""), r["bytes_raw"]+" ") {
				t.Errorf("bytes %s shown as %q (title %q)", r["bytes_raw"], r["bytes"], r["bytes_title"])
			}
			if end, err := time.Parse(time.RFC3339, r["end_title"]); err != nil || fmt.Sprint(end.UnixMilli()) != r["end_raw"] {
				t.Errorf("end %s has the title %q, want its time", r["end_raw"], r["end_title"])
			}
		}
		screenshot(t, tab, "records")
	})

	t.Run("Paging", func(t *testing.T) {
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=next]`)))
		poll[bool](t, tab, `location.search.includes('offset=25')`)
		waitRecords(t, tab)
		if got, want := pageRows(t, tab), apiRecords(t, c.api, c.stream, win, "", 25, 25); !slices.Equal(got, want) || len(got) == 0 {
			t.Errorf("page 2 lists\n%v\nthe query API\n%v", got, want)
		}
		if w := recordsWindow(t, tab); w != win {
			t.Errorf("paging moved the window from %v to %v", win, w)
		}
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=prev]`)))
		poll[bool](t, tab, `!location.search.includes('offset=')`)
		waitRecords(t, tab)
		if got, want := pageRows(t, tab), apiRecords(t, c.api, c.stream, win, "", 0, 25); !slices.Equal(got, want) {
			t.Errorf("back on page 1:\n%v\nthe query API\n%v", got, want)
		}
	})

	var where string
	t.Run("FilterNarrows", func(t *testing.T) {
		addr := eval[string](t, tab, `document.querySelector('[data-test=record] [data-field=srcaddr]').dataset.raw`)
		where = "srcaddr = " + addr
		typeFilter(t, tab, where)
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=apply]`)))
		poll[bool](t, tab, `location.search.includes('filter=')`)
		waitRecords(t, tab)
		win = recordsWindow(t, tab)
		want := apiRecords(t, c.api, c.stream, win, where, 0, 25)
		got := pageRows(t, tab)
		if !slices.Equal(got, want) || len(got) == 0 {
			t.Errorf("filtered on %s, the page lists\n%v\nthe query API\n%v", addr, got, want)
		}
		for _, r := range got {
			if !strings.HasPrefix(r, addr+" ") {
				t.Errorf("filtered on %s, the page lists %s", addr, r)
			}
		}
		if len(apiRecords(t, c.api, c.stream, win, where, 0, 0)) >= len(all) {
			t.Errorf("the filter %q does not narrow the records", where)
		}
	})

	t.Run("DownloadCSV", func(t *testing.T) {
		dir := t.TempDir()
		do(t, tab, downloadTo(dir))
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=download-csv]`)))
		name := poll[string](t, tab, `document.querySelector('section.records').dataset.downloaded`)
		rows := readCSV(t, waitFile(t, filepath.Join(dir, name)))
		if len(rows) < 1 || !slices.Equal(rows[0], fieldNames()) {
			t.Fatalf("the CSV's header: %v", rows)
		}
		got := make([]string, 0, len(rows)-1)
		for _, r := range rows[1:] {
			got = append(got, strings.Join(r, ","))
		}
		want := apiFullRows(t, c.api, c.stream, win, where)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || len(got) == 0 {
			t.Errorf("the CSV holds %d records, the query API %d for the view:\n%v\n%v", len(got), len(want), got, want)
		}
		// Nothing of the export went into a URL: the page's own stays as it was.
		if href := eval[string](t, tab, `location.href`); strings.Contains(href, "format=") || strings.Contains(href, "csrf") {
			t.Errorf("the page's URL after a download: %s", href)
		}
		screenshot(t, tab, "records-downloaded")

		// The Parquet file of the same view (its contents are checked
		// against the query API in internal/api).
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=download-parquet]`)))
		name = poll[string](t, tab, `(d => d.endsWith('.parquet') && d)(document.querySelector('section.records').dataset.downloaded)`)
		if b := waitFile(t, filepath.Join(dir, name)); len(b) < 8 || string(b[:4]) != "PAR1" || string(b[len(b)-4:]) != "PAR1" {
			t.Errorf("the Parquet download (%d bytes) is not a Parquet file", len(b))
		}
	})

	t.Run("ExploreAndBack", func(t *testing.T) {
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=explore-link]`)))
		poll[bool](t, tab, `location.pathname === '/explore'`)
		waitReady(t, tab)
		if f := eval[string](t, tab, `new URLSearchParams(location.search).get('filter') + ' ' + new URLSearchParams(location.search).get('stream')`); f != where+" "+c.stream {
			t.Errorf("Explore opened with filter and stream %q, want %q", f, where+" "+c.stream)
		}
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-test=records-link]`)))
		poll[bool](t, tab, `location.pathname === '/records'`)
		waitRecords(t, tab)
		if got, want := pageRows(t, tab), apiRecords(t, c.api, c.stream, recordsWindow(t, tab), where, 0, 50); !slices.Equal(got, want) {
			t.Errorf("back from Explore, the page lists\n%v\nthe query API\n%v", got, want)
		}
	})
}

// waitRecords waits until the Records page shows the answer to its URL.
func waitRecords(t *testing.T, tab context.Context) {
	t.Helper()
	poll[bool](t, tab, `(() => { const s = document.querySelector('section.records');
		return !!s && s.dataset.state === 'ready' && s.dataset.loaded === location.pathname + location.search })()`)
}

type window struct{ since, until string }

// recordsWindow is the window the Records page shows.
func recordsWindow(t *testing.T, tab context.Context) window {
	t.Helper()
	s := eval[string](t, tab, `(d => d.since + ' ' + d.until)(document.querySelector('section.records').dataset)`)
	since, until, _ := strings.Cut(s, " ")
	return window{since, until}
}

// recordKey is a record as the tests compare the page's rows with the
// API's: its addresses, ports, protocol, counters and times.
var recordKey = []string{"srcaddr", "srcport", "dstaddr", "dstport", "protocol", "packets", "bytes", "start", "end"}

// pageRows reads the Records table, one line per record.
func pageRows(t *testing.T, tab context.Context) []string {
	t.Helper()
	js, _ := json.Marshal(recordKey)
	raw := eval[string](t, tab, `JSON.stringify([...document.querySelectorAll('[data-test=record]')].map(r =>
		`+string(js)+`.map(f => r.querySelector('[data-field=' + f + ']').dataset.raw).join(' ')))`)
	var out []string
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// queryPage asks the query API for one page of raw records.
func queryPage(t *testing.T, api *client.Client, stream string, w window, where string, offset, limit int) ([]flow.Record, int) {
	t.Helper()
	resp, err := api.Do(context.Background(), "POST", "/v1/log-streams/"+stream+"/query", nil, map[string]any{
		"since": w.since, "until": w.until, "where": where, "offset": offset, "limit": limit}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Records    []flow.Record `json:"records"`
		NextOffset int           `json:"next_offset"`
	}
	if err := json.Unmarshal(resp.Body, &page); err != nil {
		t.Fatal(err)
	}
	return page.Records, page.NextOffset
}

// apiRecords is what pageRows reads, from the query API: one page, or
// (limit 0) every record.
func apiRecords(t *testing.T, api *client.Client, stream string, w window, where string, offset, limit int) []string {
	t.Helper()
	var out []string
	for _, r := range allRecords(t, api, stream, w, where, offset, limit) {
		vals := make([]string, len(recordKey))
		for i, name := range recordKey {
			f, _ := flow.FieldByName(name)
			vals[i] = f.Text(&r)
		}
		out = append(out, strings.Join(vals, " "))
	}
	return out
}

// apiFullRows is every record of the view, all fields, as CSV lines.
func apiFullRows(t *testing.T, api *client.Client, stream string, w window, where string) []string {
	t.Helper()
	var out []string
	for _, r := range allRecords(t, api, stream, w, where, 0, 0) {
		vals := make([]string, len(flow.Fields))
		for i, f := range flow.Fields {
			vals[i] = f.Text(&r)
		}
		out = append(out, strings.Join(vals, ","))
	}
	return out
}

func allRecords(t *testing.T, api *client.Client, stream string, w window, where string, offset, limit int) []flow.Record {
	t.Helper()
	if limit > 0 {
		recs, _ := queryPage(t, api, stream, w, where, offset, limit)
		return recs
	}
	var out []flow.Record
	for {
		recs, next := queryPage(t, api, stream, w, where, offset, 1000)
		out = append(out, recs...)
		if next == 0 {
			return out
		}
		offset = next
	}
}

func fieldNames() []string {
	var out []string
	for _, f := range flow.Fields {
		out = append(out, f.Name)
	}
	return out
}

// downloadTo lets the browser save downloads into dir.
func downloadTo(dir string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return chromedp.Void{}, err
	}
}

// waitFile waits for a download to be complete, and returns its content.
func waitFile(t *testing.T, path string) []byte {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil {
			if _, err := os.Stat(path + ".crdownload"); os.IsNotExist(err) {
				return b
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	t.Fatalf("no download %s; the directory holds %v", path, entries)
	return nil
}

func readCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
