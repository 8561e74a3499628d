package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"flowlog/internal/api/auth"
	"flowlog/internal/testutil"
)

func TestGatewaysAndAttachments(t *testing.T) {
	e := newEnv(t)
	gw := e.must(201, "POST", "/v1/gateways", map[string]any{"name": "edge", "kind": "capture", "description": "lab"})
	id := str(gw, "id")
	if !strings.HasPrefix(id, "gw-") || gw["kind"] != "capture" || gw["account_id"] != e.srv.Account {
		t.Fatalf("created gateway: %v", gw)
	}
	got := e.must(200, "GET", "/v1/gateways/"+id, nil)
	if got["name"] != "edge" || got["description"] != "lab" {
		t.Fatalf("get: %v", got)
	}
	upd := e.must(200, "PATCH", "/v1/gateways/"+id, map[string]any{"name": "edge-2"})
	if upd["name"] != "edge-2" || upd["description"] != "lab" {
		t.Fatalf("update must change only the given fields: %v", upd)
	}
	e.wantErr(400, "InvalidParameter.kind", "PATCH", "/v1/gateways/"+id, map[string]any{"kind": "pcap"})

	pc := e.must(201, "POST", "/v1/gateways", map[string]any{"name": "replay", "kind": "pcap", "pcap_path": "/tmp/x.pcap"})
	if pc["pcap_pace"] != "realtime" {
		t.Fatalf("pcap gateway default pace: %v", pc)
	}
	ex := e.must(201, "POST", "/v1/gateways", map[string]any{"name": "rtr", "kind": "exporter", "exporter_addr": "2001:db8::1"})

	for _, c := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"kind": "capture"}, "MissingParameter.name"},
		{map[string]any{"name": "x"}, "MissingParameter.kind"},
		{map[string]any{"name": "x", "kind": "router"}, "InvalidParameter.kind"},
		{map[string]any{"name": "", "kind": "capture"}, "InvalidParameter.name"},
		{map[string]any{"name": repeat("n", 65), "kind": "capture"}, "InvalidParameter.name"},
		{map[string]any{"name": "x", "kind": "capture", "description": repeat("d", 256)}, "InvalidParameter.description"},
		{map[string]any{"name": "x", "kind": "pcap"}, "MissingParameter.pcap_path"},
		{map[string]any{"name": "x", "kind": "pcap", "pcap_path": "/a", "pcap_pace": "slow"}, "InvalidParameter.pcap_pace"},
		{map[string]any{"name": "x", "kind": "exporter"}, "MissingParameter.exporter_addr"},
		{map[string]any{"name": "x", "kind": "exporter", "exporter_addr": "10.0.0.300"}, "InvalidParameter.exporter_addr"},
		{map[string]any{"name": "x", "kind": "capture", "pcap_path": "/a"}, "InvalidParameter.kind"},
		{map[string]any{"name": 5, "kind": "capture"}, "InvalidParameter.name"},
		{map[string]any{"name": "x", "kind": "capture", "colour": "red"}, "UnknownField.colour"},
	} {
		e.wantErr(400, c.code, "POST", "/v1/gateways", c.body)
	}

	att := e.must(201, "POST", "/v1/gateways/"+id+"/attachments", map[string]any{"name": "uplink", "interface": "eth1"})
	aid := str(att, "id")
	if !strings.HasPrefix(aid, "att-") || att["gateway_id"] != id {
		t.Fatalf("attachment: %v", att)
	}
	e.wantErr(400, "MissingParameter.interface", "POST", "/v1/gateways/"+id+"/attachments", map[string]any{"name": "x"})
	e.wantErr(400, "InvalidParameter.interface", "POST", "/v1/gateways/"+id+"/attachments",
		map[string]any{"name": "x", "interface": repeat("e", 16)})
	e.wantErr(400, "MissingParameter.if_index", "POST", "/v1/gateways/"+str(ex, "id")+"/attachments",
		map[string]any{"name": "port1"})
	e.must(201, "POST", "/v1/gateways/"+str(ex, "id")+"/attachments", map[string]any{"name": "port1", "if_index": 7})
	lst := e.must(200, "GET", "/v1/gateways/"+id+"/attachments", nil)
	if got := ids(lst["attachments"]); !reflect.DeepEqual(got, []string{aid}) {
		t.Fatalf("attachments: %v", got)
	}
	e.must(200, "GET", "/v1/gateways/"+id+"/attachments/"+aid, nil)
	e.wantErr(404, "NotFound.Attachment", "GET", "/v1/gateways/"+str(pc, "id")+"/attachments/"+aid, nil)

	all := e.must(200, "GET", "/v1/gateways", nil)
	if got := ids(all["gateways"]); len(got) != 3 || got[0] != id {
		t.Fatalf("list gateways, oldest first: %v", got)
	}
	e.must(204, "DELETE", "/v1/gateways/"+id+"/attachments/"+aid, nil)
	e.must(204, "DELETE", "/v1/gateways/"+id, nil)
	e.wantErr(404, "NotFound.Gateway", "GET", "/v1/gateways/"+id, nil)
	e.wantErr(404, "NotFound.Gateway", "DELETE", "/v1/gateways/"+id, nil)
}

func TestLogGroupsAndStreams(t *testing.T) {
	e := newEnv(t)
	lg := e.must(201, "POST", "/v1/log-groups", map[string]any{"name": "prod"})
	gid := str(lg, "id")
	e.wantErr(409, "Conflict.AlreadyExists", "POST", "/v1/log-groups", map[string]any{"name": "prod"})
	e.wantErr(400, "MissingParameter.name", "POST", "/v1/log-groups", map[string]any{})
	ls := e.must(201, "POST", "/v1/log-groups/"+gid+"/log-streams", map[string]any{"name": "flows"})
	if ls["retention_days"] != float64(7) {
		t.Fatalf("default retention: %v", ls)
	}
	for _, d := range []int{0, 3651} {
		e.wantErr(400, "InvalidParameter.retention_days", "POST", "/v1/log-groups/"+gid+"/log-streams",
			map[string]any{"name": fmt.Sprint("s", d), "retention_days": d})
	}
	for _, d := range []int{1, 3650} {
		e.must(201, "POST", "/v1/log-groups/"+gid+"/log-streams", map[string]any{"name": fmt.Sprint("s", d), "retention_days": d})
	}
	e.wantErr(409, "Conflict.AlreadyExists", "POST", "/v1/log-groups/"+gid+"/log-streams", map[string]any{"name": "flows"})
	e.wantErr(404, "NotFound.LogGroup", "POST", "/v1/log-groups/lg-nope/log-streams", map[string]any{"name": "x"})
	got := e.must(200, "GET", "/v1/log-groups/"+gid+"/log-streams", nil)
	if n := len(got["log_streams"].([]any)); n != 3 {
		t.Fatalf("want 3 streams, got %d", n)
	}
	e.must(200, "GET", "/v1/log-groups/"+gid+"/log-streams/"+str(ls, "id"), nil)
	e.wantErr(409, "Conflict.InUse", "DELETE", "/v1/log-groups/"+gid, nil)
	for _, s := range got["log_streams"].([]any) {
		e.must(204, "DELETE", "/v1/log-groups/"+gid+"/log-streams/"+s.(map[string]any)["id"].(string), nil)
	}
	e.must(204, "DELETE", "/v1/log-groups/"+gid, nil)
	e.wantErr(404, "NotFound.LogGroup", "GET", "/v1/log-groups/"+gid, nil)
}

// waitState polls a flow log until it reaches state.
func (e *env) waitState(id, state string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := e.must(200, "GET", "/v1/flow-logs/"+id, nil)
		if f["state"] == state {
			return f
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("flow log %s stuck in %v (reason %v), want %s", id, f["state"], f["state_reason"], state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFlowLogLifecycle(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("life")
	f := e.must(201, "POST", "/v1/flow-logs", map[string]any{"name": "fl1", "output_type": "sls",
		"log_stream_id": fx.ls, "targets": []any{map[string]any{"gateway_id": fx.gw, "attachment_id": fx.att}}})
	id := str(f, "id")
	if !strings.HasPrefix(id, "fl-") || f["state"] != "pending" || f["enabled"] != true || len(f["targets"].([]any)) != 1 {
		t.Fatalf("created: %v", f)
	}
	// Defaults of the seeds.
	for k, v := range map[string]float64{"active_aging": 300, "inactive_aging": 15, "aggregation_interval": 600, "sampling": 1} {
		if f[k] != v {
			t.Errorf("default %s = %v, want %v", k, f[k], v)
		}
	}
	if f["log_group_id"] != fx.lg {
		t.Errorf("log group must be filled from the stream: %v", f["log_group_id"])
	}
	e.waitState(id, "available")

	upd := e.must(200, "PATCH", "/v1/flow-logs/"+id, map[string]any{"active_aging": 120, "description": "d"})
	if upd["state"] != "modifying" || upd["active_aging"] != float64(120) || upd["name"] != "fl1" {
		t.Fatalf("update: %v", upd)
	}
	e.waitState(id, "available")

	dis := e.must(200, "POST", "/v1/flow-logs/"+id+"/disable", nil)
	if dis["enabled"] != false {
		t.Fatalf("disable: %v", dis)
	}
	if en := e.must(200, "POST", "/v1/flow-logs/"+id+"/enable", nil); en["enabled"] != true {
		t.Fatalf("enable: %v", en)
	}
	// Switching to netflow drops the log stream and needs a collector.
	e.wantErr(400, "MissingParameter.netflow_server_ip", "PATCH", "/v1/flow-logs/"+id, map[string]any{"output_type": "netflow"})
	nf := e.must(200, "PATCH", "/v1/flow-logs/"+id, map[string]any{"output_type": "netflow", "netflow_server_ip": "192.0.2.9"})
	if nf["netflow_server_port"] != float64(9995) || nf["netflow_version"] != "V9" || nf["log_stream_id"] != nil {
		t.Fatalf("netflow defaults: %v", nf)
	}
	e.waitState(id, "available")

	dl := e.must(202, "DELETE", "/v1/flow-logs/"+id, nil)
	if dl["state"] != "deleting" {
		t.Fatalf("delete: %v", dl)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := testutil.Call(t, e.c, "GET", "/v1/flow-logs/"+id, nil)
		if st == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flow log not removed after delete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The attachment is free again, so the gateway can go.
	e.must(204, "DELETE", "/v1/gateways/"+fx.gw+"/attachments/"+fx.att, nil)
}

func TestFlowLogValidation(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("val")
	base := func(kv ...any) map[string]any {
		m := map[string]any{"name": "v", "output_type": "sls", "log_stream_id": fx.ls}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	accepted := 0
	ok := func(body map[string]any) map[string]any {
		t.Helper()
		accepted++
		return e.must(201, "POST", "/v1/flow-logs", body)
	}
	bad := func(code string, body map[string]any) {
		t.Helper()
		e.wantErr(400, code, "POST", "/v1/flow-logs", body)
	}
	// Range edges of every numeric setting.
	for _, r := range []struct {
		field  string
		lo, hi int
	}{{"active_aging", 60, 6000}, {"inactive_aging", 10, 600}, {"aggregation_interval", 60, 600}} {
		bad("InvalidParameter."+r.field, base(r.field, r.lo-1))
		bad("InvalidParameter."+r.field, base(r.field, r.hi+1))
		if f := ok(base(r.field, r.lo)); f[r.field] != float64(r.lo) {
			t.Errorf("%s=%d not kept: %v", r.field, r.lo, f[r.field])
		}
		ok(base(r.field, r.hi))
	}
	bad("InvalidParameter.active_aging", base("active_aging", "300"))
	bad("InvalidParameter.active_aging", base("active_aging", 300.5))
	// Names and descriptions.
	bad("MissingParameter.name", base("name", nil))
	bad("InvalidParameter.name", base("name", ""))
	bad("InvalidParameter.name", base("name", repeat("é", 65)))
	ok(base("name", repeat("é", 64)))
	bad("InvalidParameter.description", base("description", repeat("d", 256)))
	ok(base("description", repeat("d", 255)))
	// Output type and its conditional-required fields.
	bad("MissingParameter.output_type", base("output_type", nil))
	bad("InvalidParameter.output_type", base("output_type", "kafka"))
	bad("MissingParameter.log_stream_id", base("log_stream_id", nil))
	e.wantErr(404, "NotFound.LogStream", "POST", "/v1/flow-logs", base("log_stream_id", "ls-nope"))
	bad("InvalidParameter.log_group_id", base("log_group_id", "lg-other"))
	bad("MissingParameter.netflow_server_ip", base("output_type", "netflow"))
	bad("MissingParameter.netflow_server_ip", base("output_type", "all"))
	bad("MissingParameter.log_stream_id", base("output_type", "all", "log_stream_id", nil, "netflow_server_ip", "192.0.2.1"))
	bad("InvalidParameter.netflow_server_ip", base("output_type", "netflow", "netflow_server_ip", "192.0.2"))
	bad("InvalidParameter.netflow_server_ip", base("output_type", "netflow", "netflow_server_ip", "collector.example"))
	for _, p := range []int{0, 65536} {
		bad("InvalidParameter.netflow_server_port", base("output_type", "netflow", "netflow_server_ip", "192.0.2.1", "netflow_server_port", p))
	}
	for _, p := range []int{1, 65535} {
		f := ok(base("output_type", "netflow", "netflow_server_ip", "192.0.2.1", "netflow_server_port", p))
		if f["netflow_server_port"] != float64(p) {
			t.Errorf("port %d: %v", p, f["netflow_server_port"])
		}
	}
	bad("InvalidParameter.netflow_version", base("output_type", "netflow", "netflow_server_ip", "192.0.2.1", "netflow_version", "V8"))
	for _, v := range []string{"V5", "V9", "V10"} {
		ok(base("output_type", "netflow", "netflow_server_ip", "2001:db8::53", "netflow_version", v))
	}
	all := ok(base("output_type", "all", "netflow_server_ip", "192.0.2.1"))
	if all["log_stream_id"] != fx.ls || all["netflow_version"] != "V9" || all["netflow_server_port"] != float64(9995) {
		t.Errorf("all: %v", all)
	}
	// Targets must exist.
	e.wantErr(404, "NotFound.Gateway", "POST", "/v1/flow-logs", base("targets", []any{map[string]any{"gateway_id": "gw-x"}}))
	e.wantErr(404, "NotFound.Attachment", "POST", "/v1/flow-logs",
		base("targets", []any{map[string]any{"gateway_id": fx.gw, "attachment_id": "att-x"}}))

	// Nothing that was refused was stored.
	lst := e.list("/v1/flow-logs", query("limit", "2000"))
	if n := int(lst["total_count"].(float64)); n != accepted {
		t.Fatalf("%d flow logs stored, want the %d accepted", n, accepted)
	}
}

func TestTargetsOneFlowLogPerOutputKind(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("tg")
	mk := func(name, out string) string {
		body := map[string]any{"name": name, "output_type": out, "log_stream_id": fx.ls, "netflow_server_ip": "192.0.2.1"}
		return str(e.must(201, "POST", "/v1/flow-logs", body), "id")
	}
	sls, nf, all, sls2 := mk("sls", "sls"), mk("nf", "netflow"), mk("all", "all"), mk("sls2", "sls")
	gwT := map[string]any{"gateway_id": fx.gw}
	attT := map[string]any{"gateway_id": fx.gw, "attachment_id": fx.att}

	e.must(200, "POST", "/v1/flow-logs/"+sls+"/associate", gwT)
	e.must(200, "POST", "/v1/flow-logs/"+sls+"/associate", gwT) // again: no-op
	e.must(200, "POST", "/v1/flow-logs/"+nf+"/associate", attT) // other kind: fine
	e.wantErr(409, "Conflict.Target", "POST", "/v1/flow-logs/"+sls2+"/associate", attT)
	e.wantErr(409, "Conflict.Target", "POST", "/v1/flow-logs/"+all+"/associate", gwT)
	// Changing the output of a bound flow log is checked too.
	e.wantErr(409, "Conflict.Target", "PATCH", "/v1/flow-logs/"+nf, map[string]any{"output_type": "all", "log_stream_id": fx.ls})

	e.wantErr(409, "Conflict.InUse", "DELETE", "/v1/gateways/"+fx.gw, nil)
	e.wantErr(409, "Conflict.InUse", "DELETE", "/v1/gateways/"+fx.gw+"/attachments/"+fx.att, nil)
	e.wantErr(409, "Conflict.InUse", "DELETE", "/v1/log-groups/"+fx.lg+"/log-streams/"+fx.ls, nil)

	f := e.must(200, "POST", "/v1/flow-logs/"+sls+"/disassociate", gwT)
	if len(f["targets"].([]any)) != 0 {
		t.Fatalf("targets after disassociate: %v", f["targets"])
	}
	e.wantErr(409, "Conflict.Target", "POST", "/v1/flow-logs/"+sls+"/disassociate", gwT)
	e.must(200, "POST", "/v1/flow-logs/"+sls2+"/associate", attT)

	got := e.list("/v1/flow-logs", query("gateway_id", fx.gw))
	g := ids(got["flow_logs"])
	sort.Strings(g)
	want := []string{nf, sls2}
	sort.Strings(want)
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("flow logs on the gateway: %v, want %v", g, want)
	}
	got = e.list("/v1/flow-logs", query("attachment_id", fx.att, "attachment_id", "att-other", "output_type", "sls"))
	if g := ids(got["flow_logs"]); !reflect.DeepEqual(g, []string{sls2}) {
		t.Fatalf("sls flow logs on the attachment: %v", g)
	}
}

func TestFlowLogListPaging(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("pg")
	var all []string
	for i := 0; i < 7; i++ {
		f := e.must(201, "POST", "/v1/flow-logs", map[string]any{"name": fmt.Sprintf("p%d", i),
			"output_type": "netflow", "netflow_server_ip": "192.0.2.1", "enabled": i%2 == 0})
		all = append(all, str(f, "id"))
	}
	_ = fx
	walk := func(q ...string) (got []string) {
		marker := ""
		for pages := 0; ; pages++ {
			qq := query(append(q, "limit", "3")...)
			if marker != "" {
				qq.Set("marker", marker)
			}
			page := e.list("/v1/flow-logs", qq)
			got = append(got, ids(page["flow_logs"])...)
			marker = str(page, "next_marker")
			if marker == "" {
				return got
			}
			if pages > 10 {
				t.Fatal("paging does not end")
			}
		}
	}
	sorted := append([]string(nil), all...)
	sort.Strings(sorted)
	if got := walk(); !reflect.DeepEqual(got, sorted) {
		t.Fatalf("by id: %v, want %v", got, sorted)
	}
	desc := walk("sort_key", "name", "sort_dir", "desc")
	wantDesc := []string{all[6], all[5], all[4], all[3], all[2], all[1], all[0]}
	if !reflect.DeepEqual(desc, wantDesc) {
		t.Fatalf("by name desc: %v, want %v", desc, wantDesc)
	}
	if got := walk("enabled", "false"); len(got) != 3 {
		t.Fatalf("enabled=false: %v", got)
	}
	page := e.list("/v1/flow-logs", query("limit", "2", "name", "p3"))
	if page["total_count"] != float64(1) || len(page["flow_logs"].([]any)) != 1 {
		t.Fatalf("name filter: %v", page)
	}
	for _, q := range [][]string{{"limit", "0"}, {"limit", "2001"}, {"limit", "x"}, {"sort_dir", "up"},
		{"sort_key", "bytes"}, {"enabled", "maybe"}, {"marker", "fl-nope"}} {
		resp, err := e.c.Do(context.Background(), "GET", "/v1/flow-logs", query(q...), nil, nil)
		if err == nil || resp.Status != 400 {
			t.Errorf("list with %v: want 400, got %v", q, err)
		}
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, "FLOWLOG_FLOW_LOG_QUOTA=3")
	body := func(i int) map[string]any {
		return map[string]any{"name": fmt.Sprint("q", i), "output_type": "netflow", "netflow_server_ip": "192.0.2.1"}
	}
	for i := 0; i < 3; i++ {
		e.must(201, "POST", "/v1/flow-logs", body(i))
	}
	e.wantErr(403, "QuotaExceeded.FlowLog", "POST", "/v1/flow-logs", body(3))
	// Another account has its own quota.
	k := e.must(201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	other := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))
	mustC(t, other, 201, "POST", "/v1/flow-logs", body(0))
}

func TestIdempotentCreateUnderConcurrentRetries(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"name": "idem", "output_type": "netflow", "netflow_server_ip": "192.0.2.1"}
	const n = 16
	var wg sync.WaitGroup
	statuses := make([]int, n)
	idsSeen := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			hdr := http.Header{"X-Client-Token": {"token-123"}}
			resp, err := e.c.Do(context.Background(), "POST", "/v1/flow-logs", nil, body, hdr)
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			statuses[i] = resp.Status
			idsSeen[i] = extractID(resp.Body)
		}(i)
	}
	wg.Wait()
	created := 0
	for i := range statuses {
		if statuses[i] == 201 {
			created++
		}
		if idsSeen[i] != idsSeen[0] || idsSeen[i] == "" {
			t.Fatalf("retries returned different flow logs: %v", idsSeen)
		}
	}
	if created != 1 {
		t.Fatalf("%d creates answered 201, want exactly 1 (others 200): %v", created, statuses)
	}
	// The token in the body works the same; another token makes another.
	again := e.must(200, "POST", "/v1/flow-logs", map[string]any{"name": "idem", "output_type": "netflow",
		"netflow_server_ip": "192.0.2.1", "client_token": "token-123"})
	if str(again, "id") != idsSeen[0] {
		t.Fatal("client_token in the body not honoured")
	}
	body["client_token"] = "token-456"
	e.must(201, "POST", "/v1/flow-logs", body)
	if lst := e.list("/v1/flow-logs", nil); lst["total_count"] != float64(2) {
		t.Fatalf("want 2 flow logs, got %v", lst["total_count"])
	}
}

func extractID(b []byte) string {
	s := string(b)
	i := strings.Index(s, `"id":"`)
	if i < 0 {
		return ""
	}
	s = s[i+6:]
	return s[:strings.IndexByte(s, '"')]
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("a")
	fl := e.must(201, "POST", "/v1/flow-logs", map[string]any{"name": "a", "output_type": "sls", "log_stream_id": fx.ls,
		"targets": []any{map[string]any{"gateway_id": fx.gw}}})
	k := e.must(201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	if k["account_id"] == e.srv.Account {
		t.Fatal("new_account made no new account")
	}
	b := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))

	for _, p := range []string{"/v1/gateways/" + fx.gw, "/v1/gateways/" + fx.gw + "/attachments",
		"/v1/gateways/" + fx.gw + "/attachments/" + fx.att, "/v1/log-groups/" + fx.lg,
		"/v1/log-groups/" + fx.lg + "/log-streams/" + fx.ls, "/v1/flow-logs/" + str(fl, "id")} {
		if st, _ := testutil.Call(t, b, "GET", p, nil); st != 404 {
			t.Errorf("other account GET %s: %d, want 404", p, st)
		}
		if st, _ := testutil.Call(t, b, "DELETE", p, nil); st != 404 && st != 405 {
			t.Errorf("other account DELETE %s: %d, want 404", p, st)
		}
	}
	wantErrC(t, b, 404, "NotFound.FlowLog", "PATCH", "/v1/flow-logs/"+str(fl, "id"), map[string]any{"name": "x"})
	wantErrC(t, b, 404, "NotFound.FlowLog", "POST", "/v1/flow-logs/"+str(fl, "id")+"/disable", nil)
	// B cannot use A's gateway or log stream in its own flow log.
	wantErrC(t, b, 404, "NotFound.LogStream", "POST", "/v1/flow-logs",
		map[string]any{"name": "b", "output_type": "sls", "log_stream_id": fx.ls})
	bfl := mustC(t, b, 201, "POST", "/v1/flow-logs", map[string]any{"name": "b", "output_type": "netflow", "netflow_server_ip": "192.0.2.1"})
	wantErrC(t, b, 404, "NotFound.Gateway", "POST", "/v1/flow-logs/"+str(bfl, "id")+"/associate",
		map[string]any{"gateway_id": fx.gw})
	for _, p := range []string{"/v1/gateways", "/v1/log-groups", "/v1/flow-logs"} {
		m := mustC(t, b, 200, "GET", p, nil)
		for _, v := range m {
			if items, ok := v.([]any); ok {
				for _, it := range items {
					if it.(map[string]any)["account_id"] != k["account_id"] {
						t.Errorf("%s lists another account's resource: %v", p, it)
					}
				}
			}
		}
	}
	// A's resources are untouched.
	if f := e.must(200, "GET", "/v1/flow-logs/"+str(fl, "id"), nil); f["name"] != "a" || f["enabled"] != true {
		t.Fatalf("A's flow log changed: %v", f)
	}
	// Only the bootstrap account makes accounts; any account makes its own keys.
	wantErrC(t, b, 403, "Forbidden", "POST", "/v1/access-keys", map[string]any{"new_account": true})
	k2 := mustC(t, b, 201, "POST", "/v1/access-keys", nil)
	if k2["account_id"] != k["account_id"] {
		t.Fatalf("second key for another account: %v", k2)
	}
	b2 := e.clientFor(str(k2, "access_key_id"), str(k2, "access_key_secret"))
	mustC(t, b2, 200, "GET", "/v1/flow-logs/"+str(bfl, "id"), nil)
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("bad")
	fl := e.must(201, "POST", "/v1/flow-logs", map[string]any{"name": "keep", "output_type": "sls", "log_stream_id": fx.ls})
	id := str(fl, "id")
	e.waitState(id, "available")
	before := e.snapshot()

	raw := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		return e.sendSigned(req, []byte(body))
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/flow-logs", `{"name":`, 400, "MalformedJSON"},
		{"POST", "/v1/flow-logs", `[1,2]`, 400, "InvalidParameter."},
		{"POST", "/v1/flow-logs", `{"name":"x"} {"name":"y"}`, 400, "MalformedJSON"},
		{"POST", "/v1/flow-logs", ``, 400, "MalformedJSON"},
		{"PATCH", "/v1/flow-logs/" + id, `{"active_aging":"fast"}`, 400, "InvalidParameter.active_aging"},
		{"PATCH", "/v1/flow-logs/" + id, `{"active_aging":59}`, 400, "InvalidParameter.active_aging"},
		{"PATCH", "/v1/flow-logs/" + id, `{"enabled":"yes"}`, 400, "InvalidParameter.enabled"},
		{"PATCH", "/v1/flow-logs/" + id, `{"netflow_version":"V7"}`, 400, "InvalidParameter.netflow_version"},
		{"PATCH", "/v1/flow-logs/" + id, `{"targets":[]}`, 400, "InvalidParameter.targets"},
		{"PATCH", "/v1/flow-logs/" + id, `{"bogus":1}`, 400, "UnknownField.bogus"},
		{"PATCH", "/v1/flow-logs/fl-unknown", `{"name":"x"}`, 404, "NotFound.FlowLog"},
		{"DELETE", "/v1/flow-logs/fl-unknown", ``, 404, "NotFound.FlowLog"},
		{"PUT", "/v1/flow-logs/" + id, `{"name":"x"}`, 405, "MethodNotAllowed"},
		{"POST", "/v1/flow-logs/" + id + "/explode", ``, 404, "NotFound.Route"},
		{"POST", "/v1/flow-logs", `{"name":"` + repeat("x", 1<<20) + `"}`, 413, "RequestTooLarge"},
	} {
		st, m := raw(c.method, c.path, c.body)
		code, _ := m["code"].(string)
		if st != c.status || !strings.HasPrefix(code, c.code) {
			t.Errorf("%s %s %.40q: got %d %v, want %d %s", c.method, c.path, c.body, st, m, c.status, c.code)
		}
	}
	if after := e.snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("bad requests changed the state:\nbefore %v\nafter  %v", before, after)
	}
}

// sendSigned signs and sends a raw request through the conformance checker.
func (e *env) sendSigned(req *http.Request, body []byte) (int, map[string]any) {
	e.t.Helper()
	req.Header.Set("User-Agent", "test")
	auth.Sign(req, body, e.srv.KeyID, e.srv.Secret, time.Now())
	return e.roundTrip(req)
}

// snapshot returns every resource of the account, for before/after checks.
func (e *env) snapshot() map[string]any {
	out := map[string]any{}
	for _, p := range []string{"/v1/gateways", "/v1/log-groups", "/v1/flow-logs"} {
		out[p] = e.must(200, "GET", p, nil)
	}
	return out
}

func TestRestartAndCrashKeepState(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("persist")
	fl := e.must(201, "POST", "/v1/flow-logs", map[string]any{"name": "p", "output_type": "all", "log_stream_id": fx.ls,
		"netflow_server_ip": "2001:db8::9", "netflow_version": "V10", "active_aging": 77,
		"targets": []any{map[string]any{"gateway_id": fx.gw, "attachment_id": fx.att}}})
	e.waitState(str(fl, "id"), "available")
	k := e.must(201, "POST", "/v1/access-keys", nil)
	before := e.snapshot()

	e.srv.Stop()
	if code := e.srv.ExitCode(); code != 0 {
		_, errLog := e.srv.Logs()
		t.Fatalf("SIGTERM: exit code %d\n%s", code, errLog)
	}
	e.srv.Start()
	if after := e.snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("state changed across a restart:\nbefore %v\nafter  %v", before, after)
	}
	// A change acknowledged just before a crash survives it.
	upd := e.must(200, "PATCH", "/v1/flow-logs/"+str(fl, "id"), map[string]any{"inactive_aging": 42})
	e.srv.Kill()
	e.srv.Start()
	got := e.must(200, "GET", "/v1/flow-logs/"+str(fl, "id"), nil)
	if got["inactive_aging"] != float64(42) || got["active_aging"] != upd["active_aging"] {
		t.Fatalf("acknowledged change lost in a crash: %v", got)
	}
	// The second key still works after restarts.
	c2 := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))
	mustC(t, c2, 200, "GET", "/v1/flow-logs", nil)
}

func TestDataDirIsPrivateAndSecretsStayOutOfLogs(t *testing.T) {
	e := newEnv(t)
	k := e.must(201, "POST", "/v1/access-keys", nil)
	bad := e.clientFor(e.srv.KeyID, "wrong-secret")
	testutil.Call(t, bad, "GET", "/v1/gateways", nil)
	e.srv.Stop()
	err := filepath.Walk(e.srv.DataDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := e.srv.Logs()
	for _, secret := range []string{e.srv.Secret, str(k, "access_key_secret"), "wrong-secret"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("a secret appears in the server's output")
		}
	}
	if !strings.Contains(stderr, "authentication failed") {
		t.Errorf("the failed authentication was not logged:\n%s", stderr)
	}
}

func TestGeneratedBootstrapKeyPrintedOnce(t *testing.T) {
	srv := testutil.NewServer(t)
	srv.Start()
	out1, _ := srv.Logs()
	srv.Stop()
	srv.Start()
	out2, _ := srv.Logs()
	if !strings.Contains(out1, "FLOWLOG_ACCESS_KEY_SECRET=") {
		t.Fatalf("first start did not print the generated key:\n%s", out1)
	}
	if strings.Contains(out2, "FLOWLOG_ACCESS_KEY_SECRET=") {
		t.Fatalf("second start printed the key again:\n%s", out2)
	}
	keyID := between(out1, "FLOWLOG_ACCESS_KEY_ID=", "\n")
	secret := between(out1, "FLOWLOG_ACCESS_KEY_SECRET=", "\n")
	e := &env{t: t, srv: srv, cf: newConformance(t)}
	c := e.clientFor(keyID, secret)
	mustC(t, c, 200, "GET", "/v1/gateways", nil)
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return s
}
