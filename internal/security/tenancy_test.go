package security

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"

	"flowlog/internal/api/sdktest"
	"flowlog/internal/client"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// An account that claims an exporter address another account holds is
// refused, and the records of that exporter reach only the holder's log
// stream.
func TestOtherTenantClaimsExporterAddr(t *testing.T) {
	port := testutil.FreeUDPPort(t)
	s := startServer(t, fmt.Sprintf("FLOWLOG_NETFLOW_LISTEN=127.0.0.1:%d", port))
	boot := bootstrapClient(s)
	a, idA := newAccount(t, s)
	b, idB := newAccount(t, s)
	for _, id := range []string{idA, idB} {
		tenancyGrant(t, boot, id, "exporter_addr", "192.0.2.0/24")
		tenancyGrant(t, boot, id, "exporter_addr", "127.0.0.0/24")
	}

	tenancyMust(t, a, 201, "POST", "/v1/gateways", tenancyExporter("192.0.2.1"))
	for _, c := range []*client.Client{b, boot} {
		tenancyRefused(t, c, 409, "Conflict.ExporterAddr", "held by another account",
			"POST", "/v1/gateways", tenancyExporter("192.0.2.1"))
	}
	// The routers that send: 127.0.0.2 is A's, and B may not have it.
	gwA := tenancyMust(t, a, 201, "POST", "/v1/gateways", tenancyExporter("127.0.0.2"))["id"].(string)
	tenancyRefused(t, b, 409, "Conflict.ExporterAddr", "held by another account",
		"POST", "/v1/gateways", tenancyExporter("127.0.0.2"))
	gwB := tenancyMust(t, b, 201, "POST", "/v1/gateways", tenancyExporter("127.0.0.3"))["id"].(string)
	// Nor move its own gateway onto it.
	tenancyRefused(t, b, 409, "Conflict.ExporterAddr", "held by another account",
		"PATCH", "/v1/gateways/"+gwB, map[string]any{"exporter_addr": "127.0.0.2"})
	streamA, streamB := tenancyFlowLog(t, a, gwA), tenancyFlowLog(t, b, gwB)

	tenancySend(t, port, "127.0.0.2", 1000)
	tenancySend(t, port, "127.0.0.3", 2000)
	tenancyWaitPorts(t, a, streamA, 1000)
	tenancyWaitPorts(t, b, streamB, 2000)
	time.Sleep(time.Second) // anything misrouted would have arrived by now
	gotA, gotB := tenancyPorts(t, a, streamA), tenancyPorts(t, b, streamB)
	if len(gotA) != 3 || gotA[1000]+gotA[1001]+gotA[1002] != 3 {
		t.Errorf("A's stream holds records of source ports %v, want only 1000-1002 from its exporter", gotA)
	}
	if len(gotB) != 3 || gotB[2000]+gotB[2001]+gotB[2002] != 3 {
		t.Errorf("B's stream holds records of source ports %v, want only 2000-2002 from its exporter", gotB)
	}
}

// A non-bootstrap account cannot capture on a host interface it was not
// granted; once the operator grants it, it can.
func TestCaptureUngrantedInterface(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	acc, id := newAccount(t, s)
	gw := tenancyMust(t, acc, 201, "POST", "/v1/gateways", map[string]any{"name": "host", "kind": "capture"})
	attach := "/v1/gateways/" + gw["id"].(string) + "/attachments"
	tenancyRefused(t, acc, 403, "Forbidden.Interface",
		"interface lo is not granted to this account; ask the operator for a capture_interface grant",
		"POST", attach, map[string]any{"name": "loopback", "interface": "lo"})
	// Nor can it grant itself.
	tenancyRefused(t, acc, 403, "Forbidden", "only the bootstrap account may grant", "POST", "/v1/grants",
		map[string]any{"account_id": id, "kind": "capture_interface", "value": "lo"})

	tenancyGrant(t, boot, id, "capture_interface", "lo")
	tenancyMust(t, acc, 201, "POST", attach, map[string]any{"name": "loopback", "interface": "lo"})
	tenancyRefused(t, acc, 403, "Forbidden.Interface", "interface eth0 is not granted",
		"POST", attach, map[string]any{"name": "other", "interface": "eth0"})
}

// A non-bootstrap account cannot claim an exporter address outside its
// grants, nor move a gateway out of them.
func TestExporterOutsideGrant(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	acc, id := newAccount(t, s)
	none, _ := newAccount(t, s)
	tenancyGrant(t, boot, id, "exporter_addr", "192.0.2.0/28")
	const msg = "is not granted to this account; ask the operator for an exporter_addr grant"
	tenancyRefused(t, acc, 403, "Forbidden.ExporterAddr", "exporter address 192.0.2.16 "+msg,
		"POST", "/v1/gateways", tenancyExporter("192.0.2.16"))
	gw := tenancyMust(t, acc, 201, "POST", "/v1/gateways", tenancyExporter("192.0.2.15"))["id"].(string)
	tenancyRefused(t, acc, 403, "Forbidden.ExporterAddr", "exporter address 198.51.100.1 "+msg,
		"PATCH", "/v1/gateways/"+gw, map[string]any{"exporter_addr": "198.51.100.1"})
	tenancyRefused(t, none, 403, "Forbidden.ExporterAddr", msg, "POST", "/v1/gateways", tenancyExporter("192.0.2.1"))
	// The operator's account needs no grant.
	tenancyMust(t, boot, 201, "POST", "/v1/gateways", tenancyExporter("198.51.100.1"))
}

// A SAG carries one flow log, whatever the output types: an Alibaba caller
// cannot associate a second one.
func TestAlibabaAssociateSecondFlowLog(t *testing.T) {
	s := startServer(t)
	ali := sdktest.Aliyun(t, s.Addr, s.KeyID, s.Secret)
	sag := tenancyMust(t, bootstrapClient(s), 201, "POST", "/v1/gateways", tenancyExporter("192.0.2.1"))["id"].(string)
	first := tenancyAliyunCreate(t, ali, "netflow")
	second := tenancyAliyunCreate(t, ali, "sls")
	assoc := func(id string) error {
		req := smartag.CreateAssociateFlowLogRequest()
		req.FlowLogId, req.SmartAGId = id, sag
		_, err := ali.AssociateFlowLog(req)
		return err
	}
	if err := assoc(first); err != nil {
		t.Fatal(err)
	}
	aliyunCode(t, assoc(second), 400, "OperationFailed.AssociateFlowLog")

	dis := smartag.CreateDisassociateFlowLogRequest()
	dis.FlowLogId, dis.SmartAGId = first, sag
	if _, err := ali.DisassociateFlowLog(dis); err != nil {
		t.Fatal(err)
	}
	if err := assoc(second); err != nil {
		t.Fatalf("associating once the SAG is free: %v", err)
	}
}

// Once DeleteFlowLog has answered, the flow log is gone for Alibaba
// callers: no longer described, not deletable again, and a delete right
// after a create or a change is not refused for a state this API lacks.
func TestAlibabaDeleteGoneAtOnce(t *testing.T) {
	s := startServer(t)
	ali := sdktest.Aliyun(t, s.Addr, s.KeyID, s.Secret)
	for i := range 10 {
		id := tenancyAliyunCreate(t, ali, "netflow")
		if i%2 == 1 { // a change right before the delete
			mod := smartag.CreateModifyFlowLogAttributeRequest()
			mod.FlowLogId, mod.Description = id, fmt.Sprint("change ", i)
			if _, err := ali.ModifyFlowLogAttribute(mod); err != nil {
				t.Fatal(err)
			}
		}
		del := smartag.CreateDeleteFlowLogRequest()
		del.FlowLogId = id
		if _, err := ali.DeleteFlowLog(del); err != nil {
			t.Fatalf("delete %d, right after a create or change: %v", i, err)
		}
		desc := smartag.CreateDescribeFlowLogsRequest()
		desc.FlowLogId = id
		res, err := ali.DescribeFlowLogs(desc)
		if err != nil {
			t.Fatal(err)
		}
		if res.TotalCount != 0 || len(res.FlowLogs.FlowLogSetType) != 0 {
			t.Fatalf("deleted flow log still described: %+v", res.FlowLogs.FlowLogSetType)
		}
		_, err = ali.DeleteFlowLog(del)
		aliyunCode(t, err, 400, "InvalidFlowLogId.NotFound")
	}
	all, err := ali.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	if err != nil || all.TotalCount != 0 {
		t.Fatalf("after deleting every flow log, described %+v (%v)", all, err)
	}
}

func tenancyMust(t *testing.T, c *client.Client, want int, method, path string, body any) map[string]any {
	t.Helper()
	status, m := testutil.Call(t, c, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, status, m, want)
	}
	return m
}

// tenancyRefused sends a request that must fail with status and code, its
// message saying msg.
func tenancyRefused(t *testing.T, c *client.Client, status int, code, msg, method, path string, body any) {
	t.Helper()
	got, m := testutil.Call(t, c, method, path, body)
	if got != status || m["code"] != code || !strings.Contains(fmt.Sprint(m["message"]), msg) {
		t.Fatalf("%s %s %v: got %d %v, want %d %s saying %q", method, path, body, got, m, status, code, msg)
	}
}

func tenancyGrant(t *testing.T, boot *client.Client, account, kind, value string) {
	t.Helper()
	tenancyMust(t, boot, 201, "POST", "/v1/grants", map[string]any{"account_id": account, "kind": kind, "value": value})
}

func tenancyExporter(addr string) map[string]any {
	return map[string]any{"name": "router " + addr, "kind": "exporter", "exporter_addr": addr}
}

// tenancyFlowLog makes a log stream and a flow log of gateway gw into it,
// waits until the flow log runs, and returns the stream's id.
func tenancyFlowLog(t *testing.T, c *client.Client, gw string) string {
	t.Helper()
	lg := tenancyMust(t, c, 201, "POST", "/v1/log-groups", map[string]any{"name": "flows"})["id"].(string)
	ls := tenancyMust(t, c, 201, "POST", "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "router"})["id"].(string)
	id := tenancyMust(t, c, 201, "POST", "/v1/flow-logs", map[string]any{"name": "router", "output_type": "sls",
		"log_stream_id": ls, "targets": []map[string]any{{"gateway_id": gw}}})["id"].(string)
	var f map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if f = tenancyMust(t, c, 200, "GET", "/v1/flow-logs/"+id, nil); f["state"] == "available" {
			return ls
		}
	}
	t.Fatalf("flow log %s: %v, want available", id, f)
	return ""
}

// tenancySend exports three NetFlow v5 records from address from, with
// source ports port, port+1 and port+2.
func tenancySend(t *testing.T, collector int, from string, port uint16) {
	t.Helper()
	e, err := export.New(export.Config{Collector: fmt.Sprintf("127.0.0.1:%d", collector), Version: netflow.V5,
		Source: from})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	now := time.Now().UnixMilli()
	var recs []flow.Record
	for i := range uint16(3) {
		recs = append(recs, flow.Record{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"),
			SrcPort: port + i, DstPort: 80, Protocol: 6, Packets: 1, Bytes: 100, Start: now - 1000, End: now})
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
}

// tenancyPorts counts a log stream's records by source port.
func tenancyPorts(t *testing.T, c *client.Client, stream string) map[int]int {
	t.Helper()
	now := time.Now().UTC()
	m := tenancyMust(t, c, 200, "POST", "/v1/log-streams/"+stream+"/query", map[string]any{
		"since": now.Add(-time.Hour).Format(time.RFC3339), "until": now.Add(time.Hour).Format(time.RFC3339)})
	out := map[int]int{}
	recs, _ := m["records"].([]any)
	for _, r := range recs {
		port, _ := r.(map[string]any)["srcport"].(float64)
		out[int(port)]++
	}
	return out
}

// tenancyWaitPorts waits until a stream holds a record of source port port.
func tenancyWaitPorts(t *testing.T, c *client.Client, stream string, port int) {
	t.Helper()
	var got map[int]int
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = tenancyPorts(t, c, stream); got[port] > 0 {
			return
		}
	}
	t.Fatalf("stream %s never received the records of source port %d: %v", stream, port, got)
}

func tenancyAliyunCreate(t *testing.T, ali *smartag.Client, output string) string {
	t.Helper()
	req := smartag.CreateCreateFlowLogRequest()
	req.OutputType = output
	if output == "netflow" {
		req.NetflowServerIp = "192.0.2.200"
	} else {
		req.SlsRegionId, req.ProjectName, req.LogstoreName = "local", "project", "store"
	}
	res, err := ali.CreateFlowLog(req)
	if err != nil {
		t.Fatal(err)
	}
	return res.FlowLogId
}
