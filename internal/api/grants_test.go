package api_test

import "testing"

// Grants through the native API, every answer checked against the OpenAPI
// document: the operator grants and withdraws, an account lists its own and
// is refused what it was not granted.
func TestGrants(t *testing.T) {
	e := newEnv(t)
	k := e.must(201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	acc := str(k, "account_id")
	other := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))

	gw := mustC(t, other, 201, "POST", "/v1/gateways", map[string]any{"name": "host", "kind": "capture"})
	attach := "/v1/gateways/" + str(gw, "id") + "/attachments"
	wantErrC(t, other, 403, "Forbidden.Interface", "POST", attach, map[string]any{"name": "p", "interface": "lo"})
	wantErrC(t, other, 403, "Forbidden.ExporterAddr", "POST", "/v1/gateways",
		map[string]any{"name": "r", "kind": "exporter", "exporter_addr": "192.0.2.1"})
	wantErrC(t, other, 403, "Forbidden.PcapPath", "POST", "/v1/gateways",
		map[string]any{"name": "f", "kind": "pcap", "pcap_path": "/etc/passwd"})

	g := e.must(201, "POST", "/v1/grants", map[string]any{"account_id": acc, "kind": "capture_interface", "value": "lo"})
	if g["value"] != "lo" || g["account_id"] != acc {
		t.Fatalf("grant: %v", g)
	}
	x := e.must(201, "POST", "/v1/grants", map[string]any{"account_id": acc, "kind": "exporter_addr", "value": "192.0.2.9/24"})
	if x["value"] != "192.0.2.0/24" {
		t.Fatalf("exporter grant stored as %v, want 192.0.2.0/24", x["value"])
	}
	mustC(t, other, 201, "POST", attach, map[string]any{"name": "p", "interface": "lo"})
	mustC(t, other, 201, "POST", "/v1/gateways", map[string]any{"name": "r", "kind": "exporter", "exporter_addr": "192.0.2.1"})
	e.wantErr(409, "Conflict.ExporterAddr", "POST", "/v1/gateways",
		map[string]any{"name": "r", "kind": "exporter", "exporter_addr": "192.0.2.1"})

	e.wantErr(409, "Conflict.AlreadyExists", "POST", "/v1/grants", map[string]any{"account_id": acc, "kind": "capture_interface", "value": "lo"})
	e.wantErr(404, "NotFound.Account", "POST", "/v1/grants", map[string]any{"account_id": "nobody", "kind": "capture_interface", "value": "lo"})
	e.wantErr(400, "InvalidParameter.kind", "POST", "/v1/grants", map[string]any{"account_id": acc, "kind": "everything", "value": "lo"})
	e.wantErr(400, "InvalidParameter.value", "POST", "/v1/grants", map[string]any{"account_id": acc, "kind": "exporter_addr", "value": "lo"})
	e.wantErr(400, "MissingParameter.value", "POST", "/v1/grants", map[string]any{"account_id": acc, "kind": "exporter_addr"})
	wantErrC(t, other, 403, "Forbidden", "POST", "/v1/grants", map[string]any{"account_id": acc, "kind": "capture_interface", "value": "eth0"})
	wantErrC(t, other, 403, "Forbidden", "DELETE", "/v1/grants/"+str(g, "id"), nil)

	if got := ids(mustC(t, other, 200, "GET", "/v1/grants", nil)["grants"]); len(got) != 2 {
		t.Fatalf("the account lists %v, want its 2 grants", got)
	}
	if got := ids(e.list("/v1/grants", query("account_id", acc))["grants"]); len(got) != 2 {
		t.Fatalf("the operator lists %v for the account, want 2", got)
	}
	e.must(204, "DELETE", "/v1/grants/"+str(g, "id"), nil)
	e.wantErr(404, "NotFound.Grant", "DELETE", "/v1/grants/"+str(g, "id"), nil)
	wantErrC(t, other, 403, "Forbidden.Interface", "POST", attach, map[string]any{"name": "p2", "interface": "lo"})
}
