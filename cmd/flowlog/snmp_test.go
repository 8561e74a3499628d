package main

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/snmp/snmptest"
	"flowlog/internal/testutil"
)

// TestCLIGatewaySNMP: the --snmp-* flags set an exporter's SNMP settings,
// `gateways discover` lists and attaches its interfaces, --no-snmp removes
// them.
func TestCLIGatewaySNMP(t *testing.T) {
	agent := snmptest.Start(t)
	srv := testutil.StartServer(t)
	out, errOut, code := runCLI(t, srv, "gateways", "create", "--name", "rtr", "--kind", "exporter",
		"--exporter-addr", "127.0.0.1", "--snmp-community", snmptest.Community, "--snmp-port", strconv.Itoa(agent.Port),
		"-o", "json")
	if code != 0 {
		t.Fatalf("gateways create: exit %d: %s", code, errOut)
	}
	gw := jsonID(t, out)
	if strings.Contains(out, snmptest.Community) || !strings.Contains(out, `"snmp_configured": true`) {
		t.Fatalf("created gateway:\n%s", out)
	}
	out, errOut, code = runCLI(t, srv, "gateways", "discover", gw)
	if code != 0 || !strings.Contains(out, "IF_INDEX") || !strings.Contains(out, " lo ") {
		t.Fatalf("discover: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, srv, "gateways", "discover", gw, "--create-attachments", "--if-index", "1", "-o", "json")
	var d struct {
		Created []struct {
			Name    string `json:"name"`
			IfIndex uint32 `json:"if_index"`
		} `json:"created"`
	}
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || len(d.Created) != 1 ||
		d.Created[0].Name != "lo" || d.Created[0].IfIndex != 1 {
		t.Fatalf("discover --create-attachments: exit %d %v\n%s%s", code, err, out, errOut)
	}
	out, errOut, code = runCLI(t, srv, "gateways", "update", gw, "--snmp-version", "3", "--snmp-user", "poller",
		"--snmp-auth-protocol", "SHA", "--snmp-auth-password", "auth-passw0rd", "-o", "json")
	if code != 0 || !strings.Contains(out, `"user": "poller"`) || strings.Contains(out, "auth-passw0rd") {
		t.Fatalf("update to v3: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = runCLI(t, srv, "gateways", "update", gw, "--no-snmp", "-o", "json")
	if code != 0 || !strings.Contains(out, `"snmp_configured": false`) {
		t.Fatalf("--no-snmp:\n%s", out)
	}
}

// TestServeSNMPInterfaceNames: `flowlog serve` polls an exporter gateway's
// router (snmpd serving this machine's interfaces) and the records it
// collects from that router are stored and queried with the names and
// speeds of their interfaces; the community shows in no output.
func TestServeSNMPInterfaceNames(t *testing.T) {
	agent := snmptest.Start(t)
	port := testutil.FreeUDPPort(t)
	srv := testutil.StartServer(t, "FLOWLOG_NETFLOW_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	gw := cliOK(t, srv, "gateways", "create", "--name", "rtr", "--kind", "exporter", "--exporter-addr", "127.0.0.1",
		"--snmp-community", snmptest.Community, "--snmp-port", strconv.Itoa(agent.Port), "-o", "id")
	lg := cliOK(t, srv, "log-groups", "create", "--name", "snmp", "-o", "id")
	ls := cliOK(t, srv, "log-groups", "create-stream", lg, "--name", "flows", "-o", "id")
	cliOK(t, srv, "flow-logs", "create", "--name", "rtr", "--output-type", "sls", "--log-stream", ls, "--gateway", gw)
	waitTrue(t, "the router polled", func() bool { return srv.Metrics()[`flowlog_snmp_interfaces{exporter="127.0.0.1"}`] > 0 })

	now := time.Now().UnixMilli()
	var recs []flow.Record
	for i := range 3 {
		recs = append(recs, flow.Record{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"),
			SrcPort: uint16(1000 + i), DstPort: 80, Protocol: 6, Packets: 1, Bytes: 100, Start: now - 1000, End: now,
			InputIfIndex: 1, OutputIfIndex: 60000})
	}
	e, err := export.New(export.Config{Collector: "127.0.0.1:" + strconv.Itoa(port), Version: netflow.V5, Source: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var rows []map[string]any
	waitTrue(t, "records stored", func() bool {
		if len(rows) == 0 {
			e.Export(recs) // again until the flow log runs
		}
		out := cliOK(t, srv, append(append([]string{"query", "--server", srv.URL, "--log-stream", ls, "--output", "json"},
			storeWindow...), "--where", "in_if_name = 'lo'", "--limit", "10")...)
		rows = nil
		json.Unmarshal([]byte(out), &rows)
		return len(rows) >= 3
	})
	for _, r := range rows {
		if r["in_if_speed"] != 10_000_000.0 || r["in_if_index"] != 1.0 || r["out_if_name"] != "" || r["out_if_index"] != 60000.0 {
			t.Errorf("record: %v", r)
		}
	}
	srv.Stop()
	if stdout, stderr := srv.Logs(); strings.Contains(stdout+stderr, snmptest.Community) {
		t.Error("the community shows in the server's output")
	}
}
