package sdktest

import (
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"
)

// One model underneath: a flow log made through the Huawei dialect is seen
// and managed through the Alibaba one and /v1, with the same state.
func TestHuaweiFlowLogThroughAliyunAndV1(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 1)
	ali := aliyun(t, s.host, c)
	id := f.create(t, "made-by-huawei", f.attachments[0]).Id
	f.waitState(t, id, "available")

	got := describeOne(t, ali, id)
	if got.Name != "made-by-huawei" || got.Status != "Active" || got.OutputType != "sls" || got.TotalSagNum != 1 ||
		got.ProjectName != "lts-group" || got.LogstoreName != "lts-stream" || got.ActiveAging != 300 {
		t.Fatalf("Alibaba sees %+v", got)
	}
	sagsReq := smartag.CreateDescribeFlowLogSagsRequest()
	sagsReq.FlowLogId = id
	sags, err := ali.DescribeFlowLogSags(sagsReq)
	if err != nil {
		t.Fatal(err)
	}
	if sags.TotalCount != 1 || sags.Sags.Sag[0].SmartAGId != f.router {
		t.Fatalf("Alibaba sees SAGs %+v", sags.Sags)
	}

	deact := smartag.CreateDeactiveFlowLogRequest()
	deact.FlowLogId = id
	if _, err := ali.DeactiveFlowLog(deact); err != nil {
		t.Fatal(err)
	}
	if f.show(t, id).Enabled {
		t.Fatal("deactivated through Alibaba, still enabled through Huawei")
	}
	if v1 := s.flowLog(t, c, id); v1["enabled"] != false {
		t.Fatalf("/v1 shows %v", v1)
	}
	mod := smartag.CreateModifyFlowLogAttributeRequest()
	mod.FlowLogId, mod.Name, mod.InactiveAging = id, "renamed-by-alibaba", requests.NewInteger(30)
	if _, err := ali.ModifyFlowLogAttribute(mod); err != nil {
		t.Fatal(err)
	}
	if fl := f.waitState(t, id, "available"); fl.Name != "renamed-by-alibaba" {
		t.Fatalf("Huawei sees name %q", fl.Name)
	}
	if v1 := s.flowLog(t, c, id); v1["inactive_aging"] != float64(30) {
		t.Fatalf("/v1 shows %v", v1)
	}

	// Alibaba refuses to delete a bound flow log; disassociating the SAG
	// removes the attachment binding, after which Huawei no longer finds
	// it on the router and Alibaba may delete it.
	del := smartag.CreateDeleteFlowLogRequest()
	del.FlowLogId = id
	_, err = ali.DeleteFlowLog(del)
	aliyunCode(t, err, 400, "DependencyViolation.FlowLog")
	if _, err := ali.DisassociateFlowLog(disassoc(id, f.router)); err != nil {
		t.Fatal(err)
	}
	_, err = f.hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: f.router, FlowLogId: id})
	huaweiCode(t, err, 400, "ER.04008501")
	if _, err := ali.DeleteFlowLog(del); err != nil {
		t.Fatal(err)
	}
	s.waitGone(t, c, id)
}

// And the other way: an Alibaba flow log bound to a SAG is seen on that
// router through Huawei, toggled there and through /v1, and deleted there.
func TestAliyunFlowLogThroughHuaweiAndV1(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 0)
	ali := aliyun(t, s.host, c)
	req := smartag.CreateCreateFlowLogRequest()
	req.Name, req.OutputType = "made-by-alibaba", "sls"
	req.SlsRegionId, req.ProjectName, req.LogstoreName = "cn-hangzhou", "lts-group", "lts-stream"
	id := mustCreate(t, ali, req)
	if _, err := ali.AssociateFlowLog(assoc(id, f.router)); err != nil {
		t.Fatal(err)
	}

	list, err := f.hw.ListFlowLogs(&model.ListFlowLogsRequest{ErId: f.router})
	if err != nil {
		t.Fatal(err)
	}
	if *list.TotalCount != 1 {
		t.Fatalf("Huawei lists %d flow logs on the router", *list.TotalCount)
	}
	fl := (*list.FlowLogs)[0]
	// The project and logstore named through Alibaba are the log group and
	// stream the fixture made through /v1.
	if fl.Id != id || fl.Name != "made-by-alibaba" || fl.LogGroupId != f.group || fl.LogStreamId != f.stream ||
		fl.ResourceType != "enterprise_router" || fl.ResourceId != f.router || !fl.Enabled {
		t.Fatalf("Huawei sees %+v", fl)
	}
	f.waitState(t, id, "available")
	if _, err := f.hw.DisableFlowLog(&model.DisableFlowLogRequest{ErId: f.router, FlowLogId: id}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, ali, id); got.Status != "Inactive" {
		t.Fatalf("disabled through Huawei, Alibaba says %s", got.Status)
	}
	s.must(t, c, 200, "POST", "/v1/flow-logs/"+id+"/enable", nil)
	if got := describeOne(t, ali, id); got.Status != "Active" {
		t.Fatalf("enabled through /v1, Alibaba says %s", got.Status)
	}
	// Huawei deletes bound flow logs (its bindings go with it).
	if _, err := f.hw.DeleteFlowLog(&model.DeleteFlowLogRequest{ErId: f.router, FlowLogId: id}); err != nil {
		t.Fatal(err)
	}
	s.waitGone(t, c, id)
	res, err := ali.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalCount != 0 {
		t.Fatalf("Alibaba still lists %d flow logs", res.TotalCount)
	}
}

// A flow log made through /v1 on an attachment is seen by both dialects.
func TestV1FlowLogThroughBothDialects(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 1)
	fl := s.must(t, c, 201, "POST", "/v1/flow-logs", map[string]any{
		"name": "made-by-v1", "output_type": "all", "log_stream_id": f.stream,
		"netflow_server_ip": "198.51.100.7", "netflow_version": "V5", "active_aging": 120,
		"targets": []map[string]string{{"gateway_id": f.router, "attachment_id": f.attachments[0]}},
	})
	id := fl["id"].(string)
	hw := f.waitState(t, id, "available")
	if hw.Name != "made-by-v1" || hw.ResourceType != "attachment" || hw.ResourceId != f.attachments[0] ||
		hw.LogStreamId != f.stream || hw.LogGroupId != f.group {
		t.Fatalf("Huawei sees %+v", hw)
	}
	got := describeOne(t, aliyun(t, s.host, c), id)
	if got.OutputType != "all" || got.ActiveAging != 120 || got.NetflowServerIp != "198.51.100.7" ||
		got.NetflowVersion != "V5" || got.NetflowServerPort != "9995" || got.LogstoreName != "lts-stream" || got.TotalSagNum != 1 {
		t.Fatalf("Alibaba sees %+v", got)
	}
}
