package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

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
