package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"flowlog/internal/testutil"
)

// TestFileOutput runs flow logs of output type file on a real serve: one
// replaying demo/lab.pcap as AWS VPC Flow Logs Parquet files, beside one
// storing the same replay in a log stream. The files are published when
// the server stops, in AWS's layout inside the account's part of the file
// directory, and DuckDB reads the same totals from them as flowlog query
// gives for the log stream. An output directory that leads outside the
// file directory is refused by the API or, through a symbolic link, by
// the data plane.
func TestFileOutput(t *testing.T) {
	root := t.TempDir()
	srv := testutil.NewServer(t)
	srv.UseTestKey()
	srv.Args = []string{"--file-dir", root}
	srv.Start()
	ls := demoFlowLog(t, srv, "demo")
	pcap, _ := filepath.Abs("../../demo/lab.pcap")
	gw := cliOK(t, srv, "gateways", "create", "--name", "files", "--kind", "pcap", "--pcap-path", pcap, "--pcap-pace", "fast", "-o", "id")
	fl := cliOK(t, srv, "flow-logs", "create", "--name", "files", "--output-type", "file", "--output-dir", "vpc/flows",
		"--file-format", "parquet", "--per-hour-partition", "--region", "lab-1", "--log-format", awsV5Format, "--gateway", gw, "-o", "id")
	want := settled(t, srv, ls)
	waitTrue(t, "the file flow log available", func() bool { return flowLogState(t, srv, fl) == "available" })

	if f, _ := flowLogJSON(t, srv, fl)["file"].(map[string]any); f["output_dir"] != "vpc/flows" || f["file_format"] != "parquet" ||
		f["log_format"] != awsV5Format || f["per_hour_partition"] != true {
		t.Errorf("the flow log's file settings: %v", f)
	}

	// Refused: settings that are not AWS's, and a directory outside the
	// file directory, by name or through a symbolic link made inside the
	// account's directory.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--output-dir", "../elsewhere"}, "output_dir"},
		{[]string{"--output-dir", "/tmp/flows"}, "output_dir"},
		{[]string{"--output-dir", "a/../../b"}, "output_dir"},
		{[]string{"--log-format", "${version}"}, "output_dir"},
		{[]string{"--output-dir", "x", "--log-format", "${version} ${bogus}"}, `log_format: unknown field "bogus" in "${bogus}"`},
		{[]string{"--output-dir", "x", "--file-format", "orc"}, "file_format"},
		{[]string{"--output-dir", "x", "--region", "../up"}, "region"},
	} {
		_, errOut, code := runCLI(t, srv, append([]string{"flow-logs", "create", "--name", "out", "--output-type", "file", "--gateway", gw}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %s; want an error about %s", c.args, code, errOut, c.want)
		}
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, srv.Account, "escape")); err != nil {
		t.Fatal(err)
	}
	esc := cliOK(t, srv, "flow-logs", "create", "--name", "escape", "--output-type", "file", "--output-dir", "escape/x", "--gateway", gw, "-o", "id")
	waitTrue(t, "the escaping flow log failed", func() bool {
		f := flowLogJSON(t, srv, esc)
		return f["state"] == "failed" && strings.Contains(fmt.Sprint(f["state_reason"]), "leads outside the file directory")
	})
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the escaping flow log wrote outside the file directory: %v", entries)
	}
	cliOK(t, srv, "flow-logs", "delete", esc)

	// The metrics count what the flow log handed to its files.
	records := fmt.Sprintf(`flowlog_flow_log_records_total{flow_log="%s",output="file"}`, fl)
	waitTrue(t, "every record handed to the files", func() bool { return srv.Metrics()[records] == float64(want.flows) })
	if m := srv.Metrics(); m[fmt.Sprintf(`flowlog_flow_log_dropped_records_total{flow_log="%s",output="file"}`, fl)] != 0 {
		t.Errorf("records dropped by the file output: %v", m)
	}

	// Stopping publishes every file still open, under its final name.
	srv.Stop()
	out := filepath.Join(root, srv.Account, "vpc", "flows")
	db := openDuckDB(t)
	mustExec(t, db, fmt.Sprintf(awsParquetView, out))
	if got := totalsSQL(t, db, "vpc_flow_logs_parquet"); got != want {
		t.Errorf("file output read by DuckDB: %s\nflowlog query of the same replay: %s", got, want)
	}
	check := queryRows(t, db, `SELECT count(*) FILTER (WHERE "aws-account-id" != account_id OR "aws-region" != 'lab-1'
		OR region != 'lab-1' OR version != 5 OR NOT regexp_matches(filename, '/AWSLogs/aws-account-id=' || account_id ||
		'/aws-service=vpcflowlogs/aws-region=lab-1/year=' || year || '/month=' || month || '/day=' || day || '/hour=' || hour ||
		'/' || account_id || '_vpcflowlogs_lab-1_`+fl+`_' || year || month || day || 'T' || hour || '[0-9]{2}Z_[0-9a-f]{8}\.parquet$')),
		min("aws-account-id") FROM vpc_flow_logs_parquet`)
	if check[0][0] != "0" || check[0][1] != srv.Account {
		t.Errorf("%s records out of AWS's layout; account %s, want %s", check[0][0], check[0][1], srv.Account)
	}
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary file left: %s", path)
		}
		return nil
	})
}

// flowLogJSON returns the flow log as the API shows it.
func flowLogJSON(t *testing.T, srv *testutil.Server, id string) map[string]any {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal([]byte(cliOK(t, srv, "flow-logs", "get", id, "-o", "json")), &f); err != nil {
		t.Fatal(err)
	}
	return f
}
