package api_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/api"
	"flowlog/internal/client"
	"flowlog/internal/flow"
	"flowlog/internal/store/storetest"
)

// TestExportLogStream: the CSV and Parquet files of a window and filter
// hold exactly the records the query endpoint pages through for them.
func TestExportLogStream(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("x")
	big := str(e.must(201, "POST", "/v1/log-groups/"+fx.lg+"/log-streams", map[string]any{"name": "big"}), "id")
	now := time.Now()
	e.seed(fx.lg, map[string][]flow.Record{
		fx.ls: recent(storetest.Records(3000, time.Hour, 7), now.Add(-2*time.Hour)),
		big:   recent(storetest.Records(api.MaxExportRecords+1, time.Hour, 8), now.Add(-2*time.Hour)),
	})
	body := map[string]any{"since": now.Add(-150 * time.Minute), "until": now.Add(-80 * time.Minute),
		"where": "protocol != 1 and dstport in (80, 443, 22)"}
	want := queryRows(t, e, fx.ls, body)
	if len(want) < 500 {
		t.Fatalf("the query selects %d records; the test wants a few pages", len(want))
	}
	path := "/v1/log-streams/" + fx.ls + "/export"

	t.Run("CSV", func(t *testing.T) {
		resp := exportFile(t, e, path, body, "csv")
		if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		rows, err := csv.NewReader(strings.NewReader(string(resp.Body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rows[0]) != fmt.Sprint(fieldNames()) {
			t.Errorf("header %v", rows[0])
		}
		sameRows(t, rows[1:], want)
	})

	t.Run("Parquet", func(t *testing.T) {
		resp := exportFile(t, e, path, body, "parquet")
		file := filepath.Join(t.TempDir(), "x.parquet")
		if err := os.WriteFile(file, resp.Body, 0o600); err != nil {
			t.Fatal(err)
		}
		sameRows(t, readParquet(t, file), want)
	})

	t.Run("Refused", func(t *testing.T) {
		with := func(k string, v any) map[string]any {
			m := map[string]any{"format": "csv"}
			for k, v := range body {
				m[k] = v
			}
			m[k] = v
			return m
		}
		wantErrC(t, e.c, 400, "InvalidParameter.format", "POST", path, with("format", "xlsx"))
		wantErrC(t, e.c, 400, "InvalidQuery", "POST", path, with("where", "srcaddr in (1.2.3.4"))
		wantErrC(t, e.c, 400, "InvalidQuery", "POST", path, with("until", body["since"]))
		all := map[string]any{"since": now.Add(-3 * time.Hour), "until": now, "format": "csv"}
		wantErrC(t, e.c, 400, "ExportTooLarge", "POST", "/v1/log-streams/"+big+"/export", all)
		wantErrC(t, e.c, 404, "NotFound.LogStream", "POST", "/v1/log-streams/ls-none/export", all)
		k := mustC(t, e.c, 201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
		other := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))
		wantErrC(t, other, 404, "NotFound.LogStream", "POST", path, with("where", ""))
	})
}

// recent moves generated records (from storetest.Base) to start at from,
// so that they are inside the stream's retention.
func recent(recs []flow.Record, from time.Time) []flow.Record {
	d := from.UnixMilli() - storetest.Base.UnixMilli()
	for i := range recs {
		recs[i].Start += d
		recs[i].End += d
	}
	return recs
}

func fieldNames() []string {
	var out []string
	for _, f := range flow.Fields {
		out = append(out, f.Name)
	}
	return out
}

// queryRows pages through the query endpoint's raw records, as text rows.
func queryRows(t *testing.T, e *env, stream string, body map[string]any) [][]string {
	t.Helper()
	var rows [][]string
	for offset := 0; ; {
		q := map[string]any{"limit": 250, "offset": offset}
		for k, v := range body {
			q[k] = v
		}
		resp, err := e.c.Do(context.Background(), "POST", "/v1/log-streams/"+stream+"/query", nil, q, nil)
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
		for i := range page.Records {
			row := make([]string, len(flow.Fields))
			for j, f := range flow.Fields {
				row[j] = f.Text(&page.Records[i])
			}
			rows = append(rows, row)
		}
		if page.NextOffset == 0 {
			return rows
		}
		offset = page.NextOffset
	}
}

func exportFile(t *testing.T, e *env, path string, body map[string]any, format string) *client.Response {
	t.Helper()
	b := map[string]any{"format": format}
	for k, v := range body {
		b[k] = v
	}
	resp, err := e.c.Do(context.Background(), "POST", path, nil, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=") || !strings.HasSuffix(cd, "."+format+`"`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	return resp
}

// readParquet reads a Parquet file with DuckDB, every value as text.
func readParquet(t *testing.T, file string) [][]string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query("SELECT * FROM read_parquet(?)", file)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	if fmt.Sprint(cols) != fmt.Sprint(fieldNames()) {
		t.Errorf("Parquet columns %v", cols)
	}
	var rows [][]string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = fmt.Sprint(v)
		}
		rows = append(rows, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// sameRows compares record rows as multisets: ties in the store's order
// may come out either way.
func sameRows(t *testing.T, got, want [][]string) {
	t.Helper()
	key := func(rows [][]string) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = strings.Join(r, "\x1f")
		}
		slices.Sort(out)
		return out
	}
	g, w := key(got), key(want)
	if len(g) != len(w) {
		t.Fatalf("%d records, the query endpoint %d", len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("record differs from the query endpoint's:\n%q\n%q", g[i], w[i])
		}
	}
}
