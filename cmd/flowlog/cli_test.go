package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/testutil"
)

// runCLI runs the real binary against srv with its bootstrap key.
func runCLI(t *testing.T, srv *testutil.Server, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIAs(t, srv, srv.KeyID, srv.Secret, args...)
}

// runCLIAs runs the real binary against srv signed with the key id/secret.
func runCLIAs(t *testing.T, srv *testutil.Server, id, secret string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testutil.Binary(t), args...)
	cmd.Env = []string{"FLOWLOG_SERVER=" + srv.URL, "FLOWLOG_ACCESS_KEY_ID=" + id,
		"FLOWLOG_ACCESS_KEY_SECRET=" + secret, "HOME=" + t.TempDir()}
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func jsonID(t *testing.T, out string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("--output json printed no JSON object: %v\n%s", err, out)
	}
	return m["id"].(string)
}

func TestCLIResourceCommands(t *testing.T) {
	srv := testutil.StartServer(t)
	out, errOut, code := runCLI(t, srv, "gateways", "create", "--name", "lab", "--kind", "capture", "-o", "json")
	if code != 0 {
		t.Fatalf("gateways create: exit %d: %s", code, errOut)
	}
	gw := jsonID(t, out)
	out, _, _ = runCLI(t, srv, "gateways", "attach", gw, "--name", "lo", "--interface", "lo", "-o", "json")
	att := jsonID(t, out)
	out, _, _ = runCLI(t, srv, "log-groups", "create", "--name", "g", "-o", "json")
	lg := jsonID(t, out)
	out, _, _ = runCLI(t, srv, "log-groups", "create-stream", lg, "--name", "s", "--retention-days", "2", "-o", "json")
	ls := jsonID(t, out)
	out, errOut, code = runCLI(t, srv, "flow-logs", "create", "--name", "web", "--output-type", "sls",
		"--log-stream", ls, "--gateway", gw, "--attachment", att, "--active-aging", "60", "-o", "json")
	if code != 0 {
		t.Fatalf("flow-logs create: exit %d: %s", code, errOut)
	}
	fl := jsonID(t, out)

	out, _, code = runCLI(t, srv, "flow-logs", "list")
	if code != 0 || !strings.Contains(out, "ID") || !strings.Contains(out, fl) || !strings.Contains(out, gw+"/"+att) {
		t.Fatalf("flow-logs list table:\n%s", out)
	}
	out, _, _ = runCLI(t, srv, "flow-logs", "get", fl)
	if !strings.Contains(out, "active_aging:") || !strings.Contains(out, "60") {
		t.Fatalf("flow-logs get:\n%s", out)
	}
	if _, _, code = runCLI(t, srv, "flow-logs", "disable", fl); code != 0 {
		t.Fatal("disable failed")
	}
	out, _, _ = runCLI(t, srv, "flow-logs", "list", "-o", "json")
	var lst struct {
		FlowLogs []struct{ Enabled bool } `json:"flow_logs"`
	}
	if err := json.Unmarshal([]byte(out), &lst); err != nil || len(lst.FlowLogs) != 1 || lst.FlowLogs[0].Enabled {
		t.Fatalf("list json after disable: %v\n%s", err, out)
	}

	// Failures exit non-zero with the API's message.
	_, errOut, code = runCLI(t, srv, "flow-logs", "create", "--name", "x", "--output-type", "sls")
	if code == 0 || !strings.Contains(errOut, "MissingParameter.log_stream_id") {
		t.Fatalf("missing log stream: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runCLI(t, srv, "gateways", "delete", gw)
	if code == 0 || !strings.Contains(errOut, "Conflict.InUse") {
		t.Fatalf("delete bound gateway: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runCLI(t, srv, "gateways", "get", "gw-none")
	if code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("unknown gateway: exit %d, stderr %q", code, errOut)
	}
	cmd := exec.Command(testutil.Binary(t), "gateways", "list")
	cmd.Env = []string{"FLOWLOG_SERVER=" + srv.URL}
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "FLOWLOG_ACCESS_KEY_ID") {
		t.Fatalf("without credentials: %v %s", err, b)
	}
}

func TestSignForCurl(t *testing.T) {
	curl := testutil.Peer(t, "curl")
	srv := testutil.StartServer(t)
	url := srv.URL + "/v1/log-groups"
	body := `{"name":"from-curl"}`
	cfg, errOut, code := runCLI(t, srv, "sign", "POST", url, "--data", body)
	if code != 0 {
		t.Fatalf("sign: %s", errOut)
	}
	cmd := exec.Command(curl, "-s", "-K", "-", "-H", "Content-Type: application/json", "--data", body, url)
	cmd.Stdin = strings.NewReader(cfg)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"name":"from-curl"`) {
		t.Fatalf("curl with signed headers: %v %s", err, out)
	}
	// The signature covers the body: another body is refused.
	cmd = exec.Command(curl, "-s", "-K", "-", "--data", `{"name":"other"}`, url)
	cmd.Stdin = strings.NewReader(cfg)
	out, _ = cmd.Output()
	if !strings.Contains(string(out), "Auth.SignatureMismatch") {
		t.Fatalf("changed body accepted: %s", out)
	}
}

func TestQueryServer(t *testing.T) {
	srv := testutil.StartServer(t)
	out, _, _ := runCLI(t, srv, "log-groups", "create", "--name", "g", "-o", "json")
	lg := jsonID(t, out)
	out, _, _ = runCLI(t, srv, "log-groups", "create-stream", lg, "--name", "lan", "-o", "json")
	ls := jsonID(t, out)
	srv.Stop()
	st, err := duckdb.New(duckdb.Config{Dir: srv.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	id := store.StreamID{Account: srv.Account, Stream: ls}
	ctx := context.Background()
	now := time.Now().UnixMilli()
	recs := []flow.Record{
		{SrcAddr: netip.MustParseAddr("10.1.1.1"), DstAddr: netip.MustParseAddr("10.2.2.2"), Protocol: 17, Packets: 3, Bytes: 300, Start: now - 5000, End: now - 4000},
		{SrcAddr: netip.MustParseAddr("10.1.1.7"), DstAddr: netip.MustParseAddr("10.2.2.2"), Protocol: 17, Packets: 9, Bytes: 900, Start: now - 5000, End: now - 4000},
	}
	if err := st.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv.Start()
	for _, stream := range []string{"lan", ls} {
		out, errOut, code := runCLI(t, srv, "query", "--server", srv.URL, "--log-stream", stream, "--since", "1h",
			"--top", "srcaddr", "--by", "bytes", "--output", "csv")
		if code != 0 {
			t.Fatalf("query --server: %s", errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[1], "10.1.1.7,900") {
			t.Fatalf("top srcaddr by bytes over the server:\n%s", out)
		}
	}
	_, errOut, code := runCLI(t, srv, "query", "--server", srv.URL, "--log-stream", "nope", "--since", "1h")
	if code == 0 || !strings.Contains(errOut, `no log stream named "nope"`) {
		t.Fatalf("unknown stream: %d %s", code, errOut)
	}
}
