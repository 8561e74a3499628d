package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

func TestQueryAndExportCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, id, err := duckdb.OpenLocal(ctx, dir, "lan", true)
	if err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(5000, 3*time.Hour, 21)
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	since, until := storetest.Base.Format(time.RFC3339), storetest.Base.Add(3*time.Hour).Format(time.RFC3339)
	exec := func(args ...string) string {
		t.Helper()
		cmd := newQueryCmd()
		if args[0] == "export" {
			cmd = newExportCmd()
		}
		var out, errOut bytes.Buffer
		cmd.SetArgs(args[1:])
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("%v: %v (%s)", args, err, errOut.String())
		}
		return out.String()
	}
	common := []string{"--data-dir", dir, "--log-stream", "lan", "--since", since, "--until", until}

	// --top srcaddr --by bytes as JSON equals the oracle's top 5.
	out := exec(append([]string{"query"}, append(common, "--top", "srcaddr", "--by", "bytes", "--limit", "5", "--where", "protocol = 6", "--output", "json")...)...)
	var got query.Response
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	q := query.Request{Since: storetest.Base, Until: storetest.Base.Add(3 * time.Hour), Where: "protocol = 6", GroupBy: []string{"srcaddr"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, Limit: 5}
	want, _ := storetest.Answer(q, recs)
	storetest.Equal(t, q, &got, want)

	// --series as CSV: one row per 30 minutes, flows adding up to all records.
	out = exec(append([]string{"query"}, append(common, "--series", "30m", "--by", "flows", "--output", "csv")...)...)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rows[0], []string{"time", "count"}) || len(rows) != 7 {
		t.Errorf("series csv: %v", rows)
	}

	// The table of raw records pages.
	out = exec(append([]string{"query"}, append(common, "--limit", "3", "--where", "dstport = 22")...)...)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 5 || !strings.HasPrefix(lines[0], "START") || lines[4] != "(more: --offset 3)" {
		t.Errorf("table:\n%s", out)
	}

	// export jsonl to a file holds every record of the range.
	file := filepath.Join(t.TempDir(), "out.jsonl")
	exec(append([]string{"export"}, append(common, "--format", "jsonl", "--out", file)...)...)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != len(recs) {
		t.Errorf("exported %d lines, want %d", n, len(recs))
	}

	// Errors are precise, and a mistyped directory is not created.
	for _, args := range [][]string{
		append(common, "--where", "srcaddr <"),
		append(common, "--by", "octets", "--top", "srcaddr"),
		{"--data-dir", dir, "--log-stream", "nosuch"},
		{"--data-dir", filepath.Join(dir, "typo"), "--log-stream", "lan"},
		{"--server", "http://127.0.0.1:1", "--log-stream", "lan"},
	} {
		cmd := newQueryCmd()
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.ExecuteContext(ctx); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); err == nil {
		t.Error("query created the mistyped data directory")
	}
}
