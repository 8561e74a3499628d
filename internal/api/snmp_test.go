package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"flowlog/internal/snmp/snmptest"
)

// TestGatewaySNMP: an exporter gateway takes SNMP settings (v2c, v3),
// shows them without secrets, discovers its router's interfaces and
// attaches them; the secrets reach no response and no log line.
func TestGatewaySNMP(t *testing.T) {
	agent := snmptest.Start(t)
	e := newEnv(t)
	v3 := map[string]any{"version": "3", "port": agent.Port, "user": snmptest.User, "auth_protocol": "SHA",
		"auth_password": snmptest.AuthPass, "priv_protocol": "AES", "priv_password": snmptest.PrivPass}
	gw := e.must(201, "POST", "/v1/gateways", map[string]any{"name": "rtr", "kind": "exporter",
		"exporter_addr": "127.0.0.1", "snmp": v3})
	id := str(gw, "id")
	got := e.must(200, "GET", "/v1/gateways/"+id, nil)
	view, _ := got["snmp"].(map[string]any)
	if got["snmp_configured"] != true || view["version"] != "3" || view["user"] != snmptest.User ||
		view["auth_protocol"] != "SHA" || view["port"] != float64(agent.Port) {
		t.Fatalf("gateway: %v", got)
	}

	// The server's data plane polls the router: GET /v1/exporters says how.
	var polled map[string]any
	for deadline := time.Now().Add(10 * time.Second); polled["polled_at"] == nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if rows := exporters(t, e.c, id); len(rows) == 1 {
			polled, _ = rows[0]["snmp"].(map[string]any)
		}
	}
	if polled["polled_at"] == nil || polled["interfaces"].(float64) < 1 || polled["target"] != fmt.Sprintf("snmpv3://%s@127.0.0.1:%d", snmptest.User, agent.Port) {
		t.Fatalf("exporter's snmp status: %v", polled)
	}

	d := e.must(200, "POST", "/v1/gateways/"+id+"/discover", nil)
	ifs, _ := d["interfaces"].([]any)
	if len(ifs) == 0 || ifs[0].(map[string]any)["name"] != "lo" {
		t.Fatalf("discover: %v", d)
	}
	d = e.must(200, "POST", "/v1/gateways/"+id+"/discover", map[string]any{"create_attachments": true,
		"if_indexes": []int{1}})
	created, _ := d["created"].([]any)
	if len(created) != 1 || created[0].(map[string]any)["name"] != "lo" {
		t.Fatalf("discover and attach ifIndex 1: %v", d)
	}
	atts := e.must(200, "GET", "/v1/gateways/"+id+"/attachments", nil)
	if got := ids(atts["attachments"]); len(got) != 1 || got[0] != str(created[0].(map[string]any), "id") {
		t.Fatalf("attachments: %v", atts)
	}

	wrong := map[string]any{}
	for k, v := range v3 {
		wrong[k] = v
	}
	wrong["auth_password"] = "wrong-auth-password"
	e.must(200, "PATCH", "/v1/gateways/"+id, map[string]any{"snmp": wrong})
	e.wantErr(502, "BadGateway.SNMP", "POST", "/v1/gateways/"+id+"/discover", nil)
	e.wantErr(400, "InvalidParameter.snmp", "PATCH", "/v1/gateways/"+id,
		map[string]any{"snmp": map[string]any{"version": "3", "user": "u", "auth_protocol": "SHA", "auth_password": "short"}})
	e.wantErr(400, "InvalidParameter.snmp", "POST", "/v1/gateways", map[string]any{"name": "h", "kind": "capture",
		"snmp": map[string]any{"community": "c0mmunity"}})
	plain := e.must(201, "POST", "/v1/gateways", map[string]any{"name": "r2", "kind": "exporter", "exporter_addr": "192.0.2.1"})
	e.wantErr(400, "InvalidParameter.snmp", "POST", "/v1/gateways/"+str(plain, "id")+"/discover", nil)
	off := e.must(200, "PATCH", "/v1/gateways/"+id, map[string]any{"snmp": map[string]any{}})
	if off["snmp_configured"] != false || off["snmp"] != nil {
		t.Fatalf("after removal: %v", off)
	}

	all, _ := json.Marshal([]any{gw, got, e.must(200, "GET", "/v1/gateways", nil)})
	e.srv.Stop()
	stdout, stderr := e.srv.Logs()
	for _, secret := range []string{snmptest.AuthPass, snmptest.PrivPass, "wrong-auth-password"} {
		if strings.Contains(string(all), secret) {
			t.Errorf("a response shows %q", secret)
		}
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("the server's output shows %q", secret)
		}
	}
}
