package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// exporterFlowLog makes, for c's account, an exporter gateway for addr with
// a log stream and a running flow log into it; it returns the gateway and
// the stream.
func exporterFlowLog(t *testing.T, c *client.Client, name, addr string) (gw, stream string) {
	t.Helper()
	gw = str(mustC(t, c, 201, "POST", "/v1/gateways", map[string]any{"name": name, "kind": "exporter", "exporter_addr": addr}), "id")
	lg := str(mustC(t, c, 201, "POST", "/v1/log-groups", map[string]any{"name": name}), "id")
	stream = str(mustC(t, c, 201, "POST", "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": name, "retention_days": 3}), "id")
	fl := str(mustC(t, c, 201, "POST", "/v1/flow-logs", map[string]any{"name": name, "output_type": "sls",
		"log_stream_id": stream, "targets": []map[string]any{{"gateway_id": gw}}}), "id")
	waitUntil(t, "flow log "+fl+" available", func() bool {
		return mustC(t, c, 200, "GET", "/v1/flow-logs/"+fl, nil)["state"] == "available"
	})
	return gw, stream
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 15 s for %s", what)
		}
	}
}

// exporters returns GET /v1/exporters (?gateway_id=gw) as c sees it.
func exporters(t *testing.T, c *client.Client, gw string) []map[string]any {
	t.Helper()
	path := "/v1/exporters"
	if gw != "" {
		path += "?gateway_id=" + gw
	}
	var out []map[string]any
	for _, x := range mustC(t, c, 200, "GET", path, nil)["exporters"].([]any) {
		out = append(out, x.(map[string]any))
	}
	return out
}

// storedRecords counts the records a log stream holds from the last day.
func storedRecords(t *testing.T, c *client.Client, stream string) int {
	t.Helper()
	return int(stored(t, c, stream, map[string]string{"func": "count"}))
}

// stored is one aggregate over the records a log stream holds from the
// last day.
func stored(t *testing.T, c *client.Client, stream string, agg map[string]string) float64 {
	t.Helper()
	now := time.Now()
	m := mustC(t, c, 200, "POST", "/v1/log-streams/"+stream+"/query", map[string]any{"since": now.Add(-24 * time.Hour),
		"until": now.Add(time.Hour), "aggregates": []any{agg}})
	rows, _ := m["rows"].([]any)
	if len(rows) != 1 {
		return 0
	}
	v, _ := rows[0].([]any)[0].(float64)
	return v
}

// TestExportersAPI: two accounts' routers send real devices' export packets
// to a real collector; each account's GET /v1/exporters reports exactly
// what its router sent, and nothing of the other's.
func TestExportersAPI(t *testing.T) {
	port := testutil.FreeUDPPort(t)
	collector := fmt.Sprintf("127.0.0.1:%d", port)
	e := newEnv(t, "FLOWLOG_NETFLOW_LISTEN="+collector)

	// Account B, granted 127.0.0.2 only.
	k := e.must(201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	other := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))
	e.must(201, "POST", "/v1/grants", map[string]any{"account_id": str(k, "account_id"), "kind": "exporter_addr", "value": "127.0.0.2/32"})

	gwA, streamA := exporterFlowLog(t, e.c, "router-a", "127.0.0.1")
	idle := str(e.must(201, "POST", "/v1/gateways", map[string]any{"name": "idle", "kind": "exporter", "exporter_addr": "192.0.2.7"}), "id")
	gwB, streamB := exporterFlowLog(t, other, "router-b", "127.0.0.2")

	// Before any datagram: claimed and silent; the idle gateway unused.
	rows := exporters(t, e.c, "")
	if len(rows) != 2 || rows[0]["gateway_id"] != gwA || rows[0]["health"] != "silent" || rows[0]["seen"] != false ||
		rows[1]["gateway_id"] != idle || rows[1]["health"] != "unused" || rows[1]["claimed"] != false {
		t.Fatalf("before datagrams: %v", rows)
	}

	// A: a Cisco ASR1001X v9 packet (template and 25 records), a Juniper
	// MX80 v5 packet (29 records sampled 1:1000), then a malformed v9
	// packet. B: a MikroTik v5 packet (30 records).
	testutil.SendCorpus(t, "127.0.0.1", collector, "netflow9_cisco_asr1001x_tpl259.dat",
		"netflow5_test_juniper_mx80.dat", "netflow9_test_invalid01.dat")
	testutil.SendCorpus(t, "127.0.0.2", collector, "netflow5_test_microtik.dat")
	waitUntil(t, "the records in the stores", func() bool {
		return storedRecords(t, e.c, streamA) == 54 && storedRecords(t, other, streamB) == 30
	})

	a := exporters(t, e.c, gwA)
	want := map[string]any{"gateway_id": gwA, "gateway_name": "router-a", "exporter_addr": "127.0.0.1",
		"claimed": true, "seen": true, "protocol": "netflow-v9", "packets": 3.0, "records": 54.0,
		"decode_errors": 1.0, "templates": 1.0, "sampling_interval_min": 1000.0, "sampling_interval_max": 1000.0,
		"templates_refused": 0.0, "dropped_sets": 0.0, "unknown_template_sets": 0.0, "health": "errors"}
	checkRow(t, "account A's router", a, want)
	if reason := str(a[0], "health_reason"); reason == "" || str(a[0], "last_error") == "" {
		t.Errorf("errors without a reason: %v", a[0])
	}
	// The corpus was captured years ago: every record's times were moved
	// to its arrival.
	if a[0]["clamped_records"] != 54.0 {
		t.Errorf("clamped_records %v, want 54", a[0]["clamped_records"])
	}
	first, err1 := time.Parse(time.RFC3339Nano, str(a[0], "first_seen"))
	last, err2 := time.Parse(time.RFC3339Nano, str(a[0], "last_seen"))
	if err1 != nil || err2 != nil || last.Before(first) || time.Since(first) > time.Minute {
		t.Errorf("first_seen %v, last_seen %v", a[0]["first_seen"], a[0]["last_seen"])
	}

	// The MikroTik announces no sampling rate and B's gateway sets none:
	// its records are stored as unsampled, and the verdict says so.
	b := exporters(t, other, "")
	checkRow(t, "account B's router", b, map[string]any{"gateway_id": gwB, "exporter_addr": "127.0.0.2",
		"protocol": "netflow-v5", "packets": 1.0, "records": 30.0, "decode_errors": 0.0, "sequence_lost": 0.0,
		"sampling_interval_min": 0.0, "sampling_missing": true, "sampling_missing_records": 30.0,
		"sampling_interval_override": 0.0, "health": "no_sampling_rate"})
	if reason := str(b[0], "health_reason"); !strings.Contains(reason, "sampling_interval") {
		t.Errorf("no_sampling_rate reason does not say what to set: %q", reason)
	}
	if a[0]["sampling_missing"] != false {
		t.Errorf("A's last records had a rate (1:1000), yet sampling_missing: %v", a[0])
	}
	checkOverride(t, other, collector, gwB, streamB)

	// Neither account sees the other's router, by list or by id.
	wantErrC(t, other, 404, "NotFound.Gateway", "GET", "/v1/exporters?gateway_id="+gwA, nil)
	e.wantErr(404, "NotFound.Gateway", "GET", "/v1/exporters?gateway_id="+gwB, nil)
	for _, r := range exporters(t, e.c, "") {
		if r["gateway_id"] == gwB || r["exporter_addr"] == "127.0.0.2" {
			t.Errorf("account A lists B's router: %v", r)
		}
	}

	// A gives 127.0.0.1 up and B takes it: B starts from nothing, never
	// from A's counters.
	e.must(200, "PATCH", "/v1/gateways/"+gwA, map[string]any{"exporter_addr": "127.0.0.9"})
	e.must(201, "POST", "/v1/grants", map[string]any{"account_id": str(k, "account_id"), "kind": "exporter_addr", "value": "127.0.0.1/32"})
	taken, _ := exporterFlowLog(t, other, "taken", "127.0.0.1")
	checkRow(t, "the address B took", exporters(t, other, taken), map[string]any{"exporter_addr": "127.0.0.1",
		"claimed": true, "seen": false, "packets": 0.0, "records": 0.0, "templates": 0.0, "health": "silent"})
	testutil.SendCorpus(t, "127.0.0.1", collector, "netflow5.dat")
	waitUntil(t, "B's first datagram from 127.0.0.1", func() bool { return exporters(t, other, taken)[0]["packets"] == 1.0 })
	checkRow(t, "the address B took", exporters(t, other, taken), map[string]any{"records": 2.0, "decode_errors": 0.0})
	checkRow(t, "A's moved gateway", exporters(t, e.c, gwA), map[string]any{"exporter_addr": "127.0.0.9",
		"claimed": true, "seen": false, "packets": 0.0})
}

// checkRow checks that rows is one exporter with the wanted fields.
func checkRow(t *testing.T, what string, rows []map[string]any, want map[string]any) {
	t.Helper()
	if len(rows) != 1 {
		t.Fatalf("%s: %d rows, want 1: %v", what, len(rows), rows)
	}
	for k, v := range want {
		if rows[0][k] != v {
			t.Errorf("%s: %s = %v, want %v", what, k, rows[0][k], v)
		}
	}
}

// TestExportersCollectorOff: without exporter gateways the list is empty
// (not null); with one on a server whose collector is off, the router is
// silent (not merely unused) and the reason says why.
func TestExportersCollectorOff(t *testing.T) {
	e := newEnv(t) // testutil servers run without collectors
	if m := e.must(200, "GET", "/v1/exporters", nil); fmt.Sprint(m["exporters"]) != "[]" {
		t.Fatalf("no exporter gateways: %v", m)
	}
	gw := str(e.must(201, "POST", "/v1/gateways", map[string]any{"name": "r", "kind": "exporter", "exporter_addr": "192.0.2.1"}), "id")
	checkRow(t, "collector off", exporters(t, e.c, gw), map[string]any{"claimed": false, "seen": false, "health": "silent",
		"health_reason": "the server's collector is off (netflow_listen and sflow_listen)"})
	e.wantErr(404, "NotFound.Gateway", "GET", "/v1/exporters?gateway_id=gw-nothere", nil)
}

// checkOverride sets a 1:100 override on gw, whose router (127.0.0.2, a
// MikroTik) announces no rate, and sends its packet again: the verdict no
// longer flags the rate, and once the data plane applies the override the
// same 30 records are stored as 100 × the packets they were stored with
// before.
func checkOverride(t *testing.T, c *client.Client, collector, gw, stream string) {
	t.Helper()
	packets := map[string]string{"func": "sum", "field": "packets"}
	unsampled := stored(t, c, stream, packets)
	if unsampled == 0 {
		t.Fatal("no packets stored")
	}
	g := mustC(t, c, 200, "PATCH", "/v1/gateways/"+gw, map[string]any{"sampling_interval": 100})
	if g["sampling_interval"] != 100.0 {
		t.Fatalf("gateway after PATCH: %v", g)
	}
	checkRow(t, "with an override", exporters(t, c, gw), map[string]any{"health": "ok", "sampling_missing": false,
		"sampling_interval_override": 100.0, "sampling_interval_min": 0.0})
	for try := 0; ; try++ {
		before, total := storedRecords(t, c, stream), stored(t, c, stream, packets)
		testutil.SendCorpus(t, "127.0.0.2", collector, "netflow5_test_microtik.dat")
		waitUntil(t, "30 more records", func() bool { return storedRecords(t, c, stream) == before+30 })
		switch got := stored(t, c, stream, packets) - total; {
		case got == 100*unsampled:
			return
		case got != unsampled || try == 20: // unsampled: sent before the plane took the override
			t.Fatalf("with a 1:100 override, 30 records stored %v packets, want 100 × %v", got, unsampled)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
