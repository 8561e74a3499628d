package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/spool"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
	"flowlog/internal/testutil"
)

func TestQueryAndExportCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, id, err := duckdb.OpenLocal(ctx, dir, "lan")
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
		out, _ := runQueryCmd(t, ctx, args...)
		return out
	}
	common := []string{"--data-dir", dir, "--log-stream", "lan", "--since", since, "--until", until}

	// --top srcaddr --by bytes as JSON: an array of {"srcaddr","bytes"}
	// objects, equal to the oracle's top 5.
	out, errOut := runQueryCmd(t, ctx, append([]string{"query"}, append(common, "--top", "srcaddr", "--by", "bytes", "--limit", "5", "--where", "protocol = 6", "--output", "json")...)...)
	var top []struct {
		Srcaddr string
		Bytes   uint64
	}
	strictJSON(t, out, &top)
	got := &query.Response{Columns: []query.Column{{Name: "srcaddr", Type: "addr"}, {Name: "sum_bytes", Type: "uint"}}}
	for _, r := range top {
		got.Rows = append(got.Rows, []any{r.Srcaddr, r.Bytes})
	}
	if _, next, ok := strings.Cut(errOut, "(more: --offset "); ok { // paging is told on stderr
		got.NextOffset, _ = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(next), ")")))
	}
	q := query.Request{Since: storetest.Base, Until: storetest.Base.Add(3 * time.Hour), Where: "protocol = 6", GroupBy: []string{"srcaddr"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, Limit: 5}
	want, _ := storetest.Answer(q, recs)
	storetest.Equal(t, q, got, want)

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

// runQueryCmd runs the query or export command in-process and returns its
// standard output and error.
func runQueryCmd(t *testing.T, ctx context.Context, args ...string) (string, string) {
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
	return out.String(), errOut.String()
}

// strictJSON decodes one JSON document into v, refusing unknown keys and
// trailing data.
func strictJSON(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v:\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
}

// TestQueryJSONOutput checks the shapes jq users rely on: raw records as
// objects keyed by field, top-N and series rows with measures named after
// the field, one object a line with jsonl, and jq reading them.
func TestQueryJSONOutput(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, id, err := duckdb.OpenLocal(ctx, dir, "lan")
	if err != nil {
		t.Fatal(err)
	}
	recs := storetest.Records(2000, 2*time.Hour, 7)
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	common := []string{"query", "--data-dir", dir, "--log-stream", "lan",
		"--since", storetest.Base.Format(time.RFC3339), "--until", storetest.Base.Add(2 * time.Hour).Format(time.RFC3339)}
	run := func(args ...string) (string, string) {
		return runQueryCmd(t, ctx, append(slices.Clone(common), args...)...)
	}

	// Raw records: an array of flat objects, each a whole record; the next
	// page is told on stderr so that stdout stays one document.
	out, errOut := run("--where", "dstport = 22", "--limit", "3", "--output", "json")
	var raw []map[string]any
	strictJSON(t, out, &raw)
	var typed []flow.Record
	strictJSON(t, out, &typed)
	if len(raw) != 3 || len(raw[0]) != len(flow.Fields) || raw[0]["dstport"] != 22.0 || typed[0].DstPort != 22 {
		t.Errorf("raw records json:\n%s", out)
	}
	if !strings.Contains(errOut, "(more: --offset 3)") {
		t.Errorf("no next page on stderr: %q", errOut)
	}

	// Series as jsonl: one {"time","packets"} object a line, adding up to
	// all packets.
	out, _ = run("--series", "30m", "--by", "packets", "--output", "jsonl")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var sum, wantSum uint64
	for _, l := range lines {
		var row struct {
			Time    int64
			Packets uint64
		}
		strictJSON(t, l, &row)
		if row.Time%(30*60*1000) != 0 {
			t.Errorf("series time %d is not a 30m bucket", row.Time)
		}
		sum += row.Packets
	}
	for _, r := range recs {
		wantSum += r.Packets
	}
	if len(lines) != 4 || sum != wantSum {
		t.Errorf("series jsonl: %d lines, %d packets (want 4, %d):\n%s", len(lines), sum, wantSum, out)
	}

	// Top by flows: {"dstport","flows"}; no match is an empty array.
	out, _ = run("--top", "dstport", "--by", "flows", "--limit", "2", "--output", "json")
	var top []struct{ Dstport, Flows uint64 }
	strictJSON(t, out, &top)
	if len(top) != 2 || top[0].Flows < top[1].Flows || top[1].Flows == 0 {
		t.Errorf("top flows json:\n%s", out)
	}
	if out, _ = run("--where", "dstport = 1 and srcport = 1", "--output", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("no records: %q, want []", out)
	}

	// jq reads both: the array's first srcaddr, and jsonl slurped.
	jq := testutil.Peer(t, "jq")
	out, _ = run("--top", "srcaddr", "--by", "bytes", "--limit", "1", "--output", "json")
	var first []map[string]any
	strictJSON(t, out, &first)
	c := exec.Command(jq, "-r", ".[0].srcaddr")
	c.Stdin = strings.NewReader(out)
	if b, err := c.Output(); err != nil || strings.TrimSpace(string(b)) != first[0]["srcaddr"] {
		t.Errorf("jq .[0].srcaddr: %q, %v; want %v", b, err, first[0]["srcaddr"])
	}
	out, _ = run("--series", "30m", "--by", "packets", "--output", "jsonl")
	c = exec.Command(jq, "-s", "map(.packets) | add")
	c.Stdin = strings.NewReader(out)
	if b, err := c.Output(); err != nil || strings.TrimSpace(string(b)) != strconv.FormatUint(wantSum, 10) {
		t.Errorf("jq -s 'map(.packets) | add': %q, %v; want %d", b, err, wantSum)
	}
}

// TestQuerySpoolNote: records waiting in a data dir's spool are not in an
// offline query's results, and the query says so.
func TestQuerySpoolNote(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, id, err := duckdb.OpenLocal(ctx, dir, "lan")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	args := []string{"query", "--data-dir", dir, "--log-stream", "lan", "--since", "24h"}
	if _, errOut := runQueryCmd(t, ctx, args...); strings.Contains(errOut, "spool") {
		t.Errorf("note without a spool: %q", errOut)
	}
	sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, spool.DirName), Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := sp.Log(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(storetest.Records(100, time.Hour, 3)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, errOut := runQueryCmd(t, ctx, args...); !strings.Contains(errOut, "wait in the data dir's spool") {
		t.Errorf("no note of the spooled records: %q", errOut)
	}
}
