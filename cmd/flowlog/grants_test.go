package main

import (
	"encoding/json"
	"strings"
	"testing"

	"flowlog/internal/testutil"
)

func TestCLIGrants(t *testing.T) {
	srv := testutil.StartServer(t)
	out, errOut, code := runCLI(t, srv, "access-keys", "create", "--new-account", "-o", "json")
	var key map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &key) != nil {
		t.Fatalf("access-keys create: exit %d: %s%s", code, out, errOut)
	}
	account := key["account_id"]
	out, errOut, code = runCLI(t, srv, "grants", "create", "--account", account, "--interface", "lo", "-o", "json")
	if code != 0 {
		t.Fatalf("grants create --interface: exit %d: %s", code, errOut)
	}
	iface := jsonID(t, out)
	out, errOut, code = runCLI(t, srv, "grants", "create", "--account", account, "--exporter", "192.0.2.0/24", "-o", "json")
	if code != 0 || !strings.Contains(out, `"exporter_addr"`) {
		t.Fatalf("grants create --exporter: exit %d: %s%s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, srv, "grants", "create", "--account", account, "--interface", "lo", "--exporter", "192.0.2.1")
	if code == 0 || !strings.Contains(errOut, "one of --interface, --exporter or --agent") {
		t.Fatalf("both kinds at once: exit %d: %s", code, errOut)
	}
	if _, errOut, code = runCLI(t, srv, "grants", "create", "--account", account, "--agent", "edge1"); code != 0 {
		t.Fatalf("grants create --agent: exit %d: %s", code, errOut)
	}
	out, _, _ = runCLI(t, srv, "grants", "list", "--account", account)
	if !strings.Contains(out, "capture_interface") || !strings.Contains(out, "192.0.2.0/24") || !strings.Contains(out, "edge1") {
		t.Fatalf("grants list:\n%s", out)
	}
	if _, errOut, code = runCLI(t, srv, "grants", "delete", iface); code != 0 {
		t.Fatalf("grants delete: exit %d: %s", code, errOut)
	}
	out, _, _ = runCLI(t, srv, "grants", "list", "-o", "id")
	if strings.Contains(out, iface) || strings.Count(strings.TrimSpace(out), "\n") != 1 {
		t.Fatalf("after delete, grants list -o id:\n%s", out)
	}
}
