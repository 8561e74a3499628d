package main

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// TestOfflineDataDir reads a real server's data dir by log stream name:
// refused with a clear message while the server holds it, answered after
// it stops, for query and export alike, without changing the control state.
func TestOfflineDataDir(t *testing.T) {
	srv := testutil.StartServer(t)
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, srv, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	pcap, _ := filepath.Abs("../../demo/lab.pcap")
	gw := cli("gateways", "create", "--name", "demo", "--kind", "pcap", "--pcap-path", pcap, "--pcap-pace", "fast", "-o", "id")
	lg := cli("log-groups", "create", "--name", "demo", "-o", "id")
	ls := cli("log-groups", "create-stream", lg, "--name", "flows", "-o", "id")
	cli("flow-logs", "create", "--name", "demo", "--output-type", "sls", "--log-stream", ls, "--gateway", gw)
	// A stream of the same name in another group makes the name ambiguous.
	other := cli("log-groups", "create", "--name", "other", "-o", "id")
	cli("log-groups", "create-stream", other, "--name", "flows", "-o", "id")

	window := []string{"--since", "24h", "--until=-1h"} // until an hour ahead: the replay ends now
	flows := func(source ...string) int {
		t.Helper()
		out := cli(append(append([]string{"query", "--log-stream", ls, "--top", "protocol", "--by", "flows", "--output", "json"}, window...), source...)...)
		var rows []struct{ Flows int }
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		n := 0
		for _, r := range rows {
			n += r.Flows
		}
		return n
	}
	// Wait until the replay's records are stored and no more arrive.
	stored := 0
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		n := flows("--server", srv.URL)
		if n > 0 && n == stored {
			break
		}
		if stored = n; time.Now().After(deadline) {
			t.Fatalf("records never settled: %d", n)
		}
	}

	offline := append([]string{"--data-dir", srv.DataDir, "--log-stream", "flows", "--log-group", "demo"}, window...)
	_, errOut, code := runCLI(t, srv, append([]string{"query"}, offline...)...)
	if code == 0 || !strings.Contains(errOut, "in use by a running flowlog server") || !strings.Contains(errOut, "--server") {
		t.Errorf("query --data-dir of a running server: exit %d, %q", code, errOut)
	}

	srv.Stop()
	before := controlState(t, srv.DataDir)

	// By name and group, by id, and by name alone when it is ambiguous.
	out := cli(append(append([]string{"query"}, offline...), "--output", "jsonl", "--limit", "100000")...)
	if n := strings.Count(out, "\n") + 1; out == "" || n != stored || !strings.Contains(out, `"srcaddr":"10.0.0.`) {
		t.Errorf("offline query found %d records, the server stored %d:\n%.500s", n, stored, out)
	}
	if n := flows("--data-dir", srv.DataDir); n != stored {
		t.Errorf("offline query by stream id: %d flows, want %d", n, stored)
	}
	_, errOut, code = runCLI(t, srv, append([]string{"query", "--data-dir", srv.DataDir, "--log-stream", "flows"}, window...)...)
	if code == 0 || !strings.Contains(errOut, "--log-group") || !strings.Contains(errOut, ls) {
		t.Errorf("ambiguous name: exit %d, %q", code, errOut)
	}

	out = cli(append(append([]string{"export"}, offline...), "--format", "csv")...)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows)-1 != stored || !slices.Contains(rows[0], "srcaddr") {
		t.Errorf("offline export: %d rows (want header + %d), %v", len(rows), stored, err)
	}

	if after := controlState(t, srv.DataDir); after != before {
		t.Errorf("reading the data dir changed the control state:\n%s\n%s", before, after)
	}
}

// controlState fingerprints the control database's files in dir.
func controlState(t *testing.T, dir string) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "control.db*"))
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		fmt.Fprintf(&b, "%s %v %x\n", filepath.Base(p), fi.ModTime(), sha256.Sum256(data))
	}
	return b.String()
}
