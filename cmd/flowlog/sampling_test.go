package main

import (
	"strings"
	"testing"

	"flowlog/internal/testutil"
)

// TestCLIGatewaySamplingInterval: --sampling-interval sets an exporter
// gateway's override, 0 clears it, and a capture gateway refuses one.
func TestCLIGatewaySamplingInterval(t *testing.T) {
	srv := testutil.StartServer(t)
	out, errOut, code := runCLI(t, srv, "gateways", "create", "--name", "rtr", "--kind", "exporter",
		"--exporter-addr", "192.0.2.1", "--sampling-interval", "64", "-o", "json")
	if code != 0 || !strings.Contains(out, `"sampling_interval": 64`) {
		t.Fatalf("gateways create: exit %d\n%s%s", code, out, errOut)
	}
	gw := jsonID(t, out)
	out, errOut, code = runCLI(t, srv, "gateways", "update", gw, "--sampling-interval", "0", "-o", "json")
	if code != 0 || strings.Contains(out, "sampling_interval") {
		t.Fatalf("update --sampling-interval 0: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, srv, "gateways", "create", "--name", "cap", "--kind", "capture",
		"--sampling-interval", "8")
	if code == 0 || !strings.Contains(errOut, "sampling_interval") {
		t.Fatalf("capture gateway with an override: exit %d: %s", code, errOut)
	}
}
