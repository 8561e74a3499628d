package sdktest

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"

	rpc "flowlog/internal/api/aliyun"
)

func netflowLog(name, ip string) *smartag.CreateFlowLogRequest {
	req := smartag.CreateCreateFlowLogRequest()
	req.Name, req.OutputType, req.NetflowServerIp = name, "netflow", ip
	return req
}

func mustCreate(t *testing.T, c *smartag.Client, req *smartag.CreateFlowLogRequest) string {
	t.Helper()
	res, err := c.CreateFlowLog(req)
	if err != nil {
		t.Fatal(err)
	}
	return res.FlowLogId
}

func describeOne(t *testing.T, c *smartag.Client, id string) smartag.FlowLogSetType {
	t.Helper()
	req := smartag.CreateDescribeFlowLogsRequest()
	req.FlowLogId = id
	res, err := c.DescribeFlowLogs(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalCount != 1 || len(res.FlowLogs.FlowLogSetType) != 1 {
		t.Fatalf("DescribeFlowLogs(%s): %+v", id, res)
	}
	return res.FlowLogs.FlowLogSetType[0]
}

// Every action of the SAG flow-log API, in the order a user meets them.
func TestAliyunLifecycle(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	sag1, _ := s.gateway(t, c, "sag-one", 0)
	sag2, _ := s.gateway(t, c, "sag-two", 0)
	ali := aliyun(t, s.host, c)

	req := smartag.CreateCreateFlowLogRequest()
	req.Name, req.Description, req.OutputType = "branch", "all traffic of the branch", "all"
	req.SlsRegionId, req.ProjectName, req.LogstoreName = "cn-shanghai", "sag-project", "sag-store"
	req.NetflowServerIp = "192.0.2.10"
	id := mustCreate(t, ali, req)

	// The documented defaults: aging 300/15, port 9995, NetFlow V9; new
	// flow logs are Active and bound to no SAG.
	got := describeOne(t, ali, id)
	want := smartag.FlowLogSetType{FlowLogId: id, Name: "branch", Description: "all traffic of the branch",
		Status: "Active", OutputType: "all", ActiveAging: 300, InactiveAging: 15, SlsRegionId: "cn-shanghai",
		ProjectName: "sag-project", LogstoreName: "sag-store", NetflowServerIp: "192.0.2.10",
		NetflowServerPort: "9995", NetflowVersion: "V9", TotalSagNum: 0}
	if got != want {
		t.Fatalf("described\n got %+v\nwant %+v", got, want)
	}
	// The project and logstore were created on first use, as a log group
	// and stream of the caller's account.
	groups := s.must(t, c, 200, "GET", "/v1/log-groups", nil)["log_groups"].([]any)
	if len(groups) != 1 || groups[0].(map[string]any)["name"] != "sag-project" {
		t.Fatalf("log groups after create: %v", groups)
	}

	if _, err := ali.AssociateFlowLog(assoc(id, sag1)); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, ali, id); got.TotalSagNum != 1 {
		t.Fatalf("TotalSagNum after associate: %d", got.TotalSagNum)
	}
	sagsReq := smartag.CreateDescribeFlowLogSagsRequest()
	sagsReq.FlowLogId = id
	sags, err := ali.DescribeFlowLogSags(sagsReq)
	if err != nil {
		t.Fatal(err)
	}
	if sags.TotalCount != 1 || sags.Sags.Sag[0].SmartAGId != sag1 || sags.Sags.Sag[0].Name != "sag-one" {
		t.Fatalf("DescribeFlowLogSags: %+v", sags)
	}
	unbound, err := ali.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
	if err != nil {
		t.Fatal(err)
	}
	if unbound.Count != 1 || len(unbound.Sags.Sag) != 1 || unbound.Sags.Sag[0].SmartAGId != sag2 {
		t.Fatalf("DescribeUnbindFlowLogSags: %+v", unbound)
	}

	deact := smartag.CreateDeactiveFlowLogRequest()
	deact.FlowLogId = id
	if _, err := ali.DeactiveFlowLog(deact); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, ali, id); got.Status != "Inactive" {
		t.Fatalf("status after DeactiveFlowLog: %s", got.Status)
	}
	_, err = ali.DeactiveFlowLog(deact)
	aliyunCode(t, err, 400, "IncorrectStatus.FlowLog")
	act := smartag.CreateActiveFlowLogRequest()
	act.FlowLogId = id
	if _, err := ali.ActiveFlowLog(act); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, ali, id); got.Status != "Active" {
		t.Fatalf("status after ActiveFlowLog: %s", got.Status)
	}

	mod := smartag.CreateModifyFlowLogAttributeRequest()
	mod.FlowLogId, mod.Name, mod.OutputType = id, "branch-nf", "netflow"
	mod.ActiveAging, mod.NetflowVersion, mod.NetflowServerPort = requests.NewInteger(600), "V10", requests.NewInteger(4739)
	if _, err := ali.ModifyFlowLogAttribute(mod); err != nil {
		t.Fatal(err)
	}
	got = describeOne(t, ali, id)
	want = smartag.FlowLogSetType{FlowLogId: id, Name: "branch-nf", Description: "all traffic of the branch",
		Status: "Active", OutputType: "netflow", ActiveAging: 600, InactiveAging: 15,
		NetflowServerIp: "192.0.2.10", NetflowServerPort: "4739", NetflowVersion: "V10", TotalSagNum: 1}
	if got != want {
		t.Fatalf("after modify\n got %+v\nwant %+v", got, want)
	}

	s.waitState(t, c, id, "available")
	del := smartag.CreateDeleteFlowLogRequest()
	del.FlowLogId = id
	_, err = ali.DeleteFlowLog(del)
	aliyunCode(t, err, 400, "DependencyViolation.FlowLog")
	if _, err := ali.DisassociateFlowLog(disassoc(id, sag1)); err != nil {
		t.Fatal(err)
	}
	_, err = ali.DisassociateFlowLog(disassoc(id, sag1))
	aliyunCode(t, err, 400, "IncorrectStatus.FlowLog")
	if _, err := ali.DeleteFlowLog(del); err != nil {
		t.Fatal(err)
	}
	s.waitGone(t, c, id)
	_, err = ali.DeleteFlowLog(del)
	aliyunCode(t, err, 400, "InvalidFlowLogId.NotFound")
}

func assoc(id, sag string) *smartag.AssociateFlowLogRequest {
	r := smartag.CreateAssociateFlowLogRequest()
	r.FlowLogId, r.SmartAGId = id, sag
	return r
}

func disassoc(id, sag string) *smartag.DisassociateFlowLogRequest {
	r := smartag.CreateDisassociateFlowLogRequest()
	r.FlowLogId, r.SmartAGId = id, sag
	return r
}

// Every MissingParam and IllegalParam code of the CreateFlowLog page, each
// range edge, and that a refused create changes nothing.
func TestAliyunValidation(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	ali := aliyun(t, s.host, c)
	sls := func(mod func(r *smartag.CreateFlowLogRequest)) *smartag.CreateFlowLogRequest {
		r := smartag.CreateCreateFlowLogRequest()
		r.OutputType, r.SlsRegionId, r.ProjectName, r.LogstoreName = "sls", "cn-shanghai", "p-valid", "s-valid"
		mod(r)
		return r
	}
	nf := func(mod func(r *smartag.CreateFlowLogRequest)) *smartag.CreateFlowLogRequest {
		r := netflowLog("nf", "192.0.2.1")
		mod(r)
		return r
	}
	empty := func(name string) func(r *smartag.CreateFlowLogRequest) {
		// Present but empty: the SDK drops empty fields, so set it raw.
		return func(r *smartag.CreateFlowLogRequest) { r.QueryParams[name] = "" }
	}
	for _, c := range []struct {
		code string
		req  *smartag.CreateFlowLogRequest
	}{
		{"MissingParam.OutputType", sls(func(r *smartag.CreateFlowLogRequest) { r.OutputType = "" })},
		{"MissingParam.SlsRegionId", sls(func(r *smartag.CreateFlowLogRequest) { r.SlsRegionId = "" })},
		{"MissingParam.ProjectName", sls(func(r *smartag.CreateFlowLogRequest) { r.ProjectName = "" })},
		{"MissingParam.LogstoreName", sls(func(r *smartag.CreateFlowLogRequest) { r.LogstoreName = "" })},
		{"MissingParam.NetflowServerIp", nf(func(r *smartag.CreateFlowLogRequest) { r.NetflowServerIp = "" })},
		{"MissingParam.NetflowServerPort", nf(empty("NetflowServerPort"))},
		{"MissingParam.NetflowVersion", nf(empty("NetflowVersion"))},
		{"IllegalParam.OutputType", sls(func(r *smartag.CreateFlowLogRequest) { r.OutputType = "kafka" })},
		{"IllegalParam.ActiveAging", nf(func(r *smartag.CreateFlowLogRequest) { r.ActiveAging = "59" })},
		{"IllegalParam.ActiveAging", nf(func(r *smartag.CreateFlowLogRequest) { r.ActiveAging = "6001" })},
		{"IllegalParam.ActiveAging", nf(func(r *smartag.CreateFlowLogRequest) { r.ActiveAging = "5m" })},
		{"IllegalParam.InactiveAging", nf(func(r *smartag.CreateFlowLogRequest) { r.InactiveAging = "9" })},
		{"IllegalParam.InactiveAging", nf(func(r *smartag.CreateFlowLogRequest) { r.InactiveAging = "601" })},
		{"IllegalParam.NetflowServerIp", nf(func(r *smartag.CreateFlowLogRequest) { r.NetflowServerIp = "300.1.1.1" })},
		{"IllegalParam.NetflowServerPort", nf(func(r *smartag.CreateFlowLogRequest) { r.NetflowServerPort = "0" })},
		{"IllegalParam.NetflowServerPort", nf(func(r *smartag.CreateFlowLogRequest) { r.NetflowServerPort = "65536" })},
		{"IllegalParam.NetflowVersion", nf(func(r *smartag.CreateFlowLogRequest) { r.NetflowVersion = "V8" })},
		{"IllegalParam.SlsRegionId", sls(func(r *smartag.CreateFlowLogRequest) { r.SlsRegionId = "Shanghai 1" })},
		{"IllegalParam.RegionId", sls(func(r *smartag.CreateFlowLogRequest) { r.RegionId = "CN_SHANGHAI" })},
		{"IllegalParam.Name", sls(func(r *smartag.CreateFlowLogRequest) { r.Name = string(make([]byte, 65)) })},
	} {
		_, err := ali.CreateFlowLog(c.req)
		aliyunCode(t, err, 400, c.code)
	}
	// Nothing was stored by the refused creates: no flow log, and no log
	// project left behind by the sls ones.
	if fl := s.must(t, c, 200, "GET", "/v1/flow-logs", nil); fl["total_count"].(float64) != 0 {
		t.Fatalf("refused creates left flow logs: %v", fl)
	}
	if lg := s.must(t, c, 200, "GET", "/v1/log-groups", nil)["log_groups"].([]any); len(lg) != 0 {
		t.Fatalf("refused creates left log groups: %v", lg)
	}
	// The edges of each range are accepted.
	for _, edge := range []struct{ active, inactive, port string }{{"60", "10", "1"}, {"6000", "600", "65535"}} {
		req := nf(func(r *smartag.CreateFlowLogRequest) {
			r.ActiveAging, r.InactiveAging, r.NetflowServerPort = requests.Integer(edge.active),
				requests.Integer(edge.inactive), requests.Integer(edge.port)
		})
		f := describeOne(t, ali, mustCreate(t, ali, req))
		if fmt.Sprintf("%d %d %s", f.ActiveAging, f.InactiveAging, f.NetflowServerPort) != edge.active+" "+edge.inactive+" "+edge.port {
			t.Fatalf("edge %v stored as %+v", edge, f)
		}
	}
	// MissingParam.FlowLogId on every action that takes one.
	for name, call := range map[string]func() error{
		"DeleteFlowLog": func() error { _, e := ali.DeleteFlowLog(smartag.CreateDeleteFlowLogRequest()); return e },
		"ModifyFlowLogAttribute": func() error {
			_, e := ali.ModifyFlowLogAttribute(smartag.CreateModifyFlowLogAttributeRequest())
			return e
		},
		"ActiveFlowLog":       func() error { _, e := ali.ActiveFlowLog(smartag.CreateActiveFlowLogRequest()); return e },
		"DeactiveFlowLog":     func() error { _, e := ali.DeactiveFlowLog(smartag.CreateDeactiveFlowLogRequest()); return e },
		"AssociateFlowLog":    func() error { _, e := ali.AssociateFlowLog(smartag.CreateAssociateFlowLogRequest()); return e },
		"DisassociateFlowLog": func() error { _, e := ali.DisassociateFlowLog(smartag.CreateDisassociateFlowLogRequest()); return e },
		"DescribeFlowLogSags": func() error { _, e := ali.DescribeFlowLogSags(smartag.CreateDescribeFlowLogSagsRequest()); return e },
	} {
		t.Run(name, func(t *testing.T) { aliyunCode(t, call(), 400, "MissingParam.FlowLogId") })
	}
	st := smartag.CreateDescribeFlowLogsRequest()
	st.Status = "Running"
	_, err := ali.DescribeFlowLogs(st)
	aliyunCode(t, err, 400, "IllegalParam.Status")
}

// InvalidFlowLogId.NotFound, InvalidSmartAGId.NotFound,
// OperationFailed.AssociateFlowLog and QuotaExceeded.Flowlog.
func TestAliyunStateErrors(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	ali := aliyun(t, s.host, c)
	sag, _ := s.gateway(t, c, "sag", 0)
	a := mustCreate(t, ali, netflowLog("a", "192.0.2.1"))
	b := mustCreate(t, ali, netflowLog("b", "192.0.2.2"))

	_, err := ali.AssociateFlowLog(assoc("fl-doesnotexist", sag))
	aliyunCode(t, err, 400, "InvalidFlowLogId.NotFound")
	_, err = ali.AssociateFlowLog(assoc(a, "gw-doesnotexist"))
	aliyunCode(t, err, 400, "InvalidSmartAGId.NotFound")
	if _, err := ali.AssociateFlowLog(assoc(a, sag)); err != nil {
		t.Fatal(err)
	}
	_, err = ali.AssociateFlowLog(assoc(b, sag))
	aliyunCode(t, err, 400, "OperationFailed.AssociateFlowLog")

	q, err := startServer(t.TempDir(), "--flow-log-quota", "2")
	if err != nil {
		t.Fatal(err)
	}
	defer q.stop()
	qa := aliyun(t, q.host, boot)
	mustCreate(t, qa, netflowLog("one", "192.0.2.1"))
	mustCreate(t, qa, netflowLog("two", "192.0.2.1"))
	_, err = qa.CreateFlowLog(netflowLog("three", "192.0.2.1"))
	aliyunCode(t, err, 400, "QuotaExceeded.Flowlog")
}

// DescribeFlowLogs pages with PageNumber/PageSize (at most 50) and
// TotalCount; DescribeFlowLogSags pages the same way.
func TestAliyunPaging(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	ali := aliyun(t, s.host, c)
	var created []string
	for i := 0; i < 20; i++ {
		created = append(created, mustCreate(t, ali, netflowLog(fmt.Sprintf("fl-%02d", i), "192.0.2.1")))
	}
	var seen []string
	for page, want := range []int{8, 8, 4, 0} {
		req := smartag.CreateDescribeFlowLogsRequest()
		req.PageNumber, req.PageSize = requests.NewInteger(page+1), requests.NewInteger(8)
		res, err := ali.DescribeFlowLogs(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.TotalCount != 20 || res.PageNumber != page+1 || res.PageSize != 8 || len(res.FlowLogs.FlowLogSetType) != want {
			t.Fatalf("page %d: total %d number %d size %d items %d", page+1, res.TotalCount, res.PageNumber,
				res.PageSize, len(res.FlowLogs.FlowLogSetType))
		}
		for _, f := range res.FlowLogs.FlowLogSetType {
			seen = append(seen, f.FlowLogId)
		}
	}
	sort.Strings(seen)
	sort.Strings(created)
	if fmt.Sprint(seen) != fmt.Sprint(created) {
		t.Fatalf("pages gave %v, created %v", seen, created)
	}
	def, err := ali.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	if err != nil {
		t.Fatal(err)
	}
	if def.PageNumber != 1 || def.PageSize != 10 || len(def.FlowLogs.FlowLogSetType) != 10 {
		t.Fatalf("default page: number %d size %d items %d", def.PageNumber, def.PageSize, len(def.FlowLogs.FlowLogSetType))
	}
	for _, size := range []int{0, 51} {
		req := smartag.CreateDescribeFlowLogsRequest()
		req.PageSize = requests.NewInteger(size)
		_, err := ali.DescribeFlowLogs(req)
		aliyunCode(t, err, 400, "IllegalParam.PageSize")
	}
	req := smartag.CreateDescribeFlowLogsRequest()
	req.PageSize = requests.NewInteger(50)
	if res, err := ali.DescribeFlowLogs(req); err != nil || len(res.FlowLogs.FlowLogSetType) != 20 {
		t.Fatalf("PageSize 50: %v", err)
	}

	// One flow log on five SAGs, two per page.
	for i := 0; i < 5; i++ {
		g, _ := s.gateway(t, c, fmt.Sprintf("sag-%d", i), 0)
		if _, err := ali.AssociateFlowLog(assoc(created[0], g)); err != nil {
			t.Fatal(err)
		}
	}
	for page, want := range []int{2, 2, 1} {
		r := smartag.CreateDescribeFlowLogSagsRequest()
		r.FlowLogId, r.PageNumber, r.PageSize = created[0], requests.NewInteger(page+1), requests.NewInteger(2)
		res, err := ali.DescribeFlowLogSags(r)
		if err != nil {
			t.Fatal(err)
		}
		if res.TotalCount != 5 || len(res.Sags.Sag) != want {
			t.Fatalf("sags page %d: total %d items %d", page+1, res.TotalCount, len(res.Sags.Sag))
		}
	}
}

// Two accounts on one server never see or touch each other's resources.
func TestAliyunIsolation(t *testing.T) {
	s := shared
	a, b := s.newAccount(t), s.newAccount(t)
	aliA, aliB := aliyun(t, s.host, a), aliyun(t, s.host, b)
	sagA, _ := s.gateway(t, a, "sag-a", 0)
	flA := mustCreate(t, aliA, netflowLog("a", "192.0.2.1"))
	flB := mustCreate(t, aliB, netflowLog("b", "192.0.2.1"))

	res, err := aliB.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalCount != 1 || res.FlowLogs.FlowLogSetType[0].FlowLogId != flB {
		t.Fatalf("B sees %+v", res.FlowLogs)
	}
	del := smartag.CreateDeleteFlowLogRequest()
	del.FlowLogId = flA
	_, err = aliB.DeleteFlowLog(del)
	aliyunCode(t, err, 400, "InvalidFlowLogId.NotFound")
	_, err = aliB.AssociateFlowLog(assoc(flB, sagA))
	aliyunCode(t, err, 400, "InvalidSmartAGId.NotFound")
	unbound, err := aliB.DescribeUnbindFlowLogSags(smartag.CreateDescribeUnbindFlowLogSagsRequest())
	if err != nil {
		t.Fatal(err)
	}
	if unbound.Count != 0 {
		t.Fatalf("B sees A's SAGs: %+v", unbound.Sags)
	}
	describeOne(t, aliA, flA) // still there for its owner
}

// Authentication against the real server: wrong secret, unknown key, a
// replayed request, a stale timestamp, and XML answers.
func TestAliyunAuthentication(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	rec := newRecorder(t, s.url)

	_, err := aliyun(t, rec.host, creds{c.account, c.key, "wrong-secret"}).DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	se := aliyunCode(t, err, 400, "SignatureDoesNotMatch")
	if se.Recommend() != "InvalidAccessKeySecret: Please check you AccessKeySecret" {
		t.Fatalf("the SDK did not find our string to sign equal to its own: %q", se.Recommend())
	}
	_, err = aliyun(t, rec.host, creds{c.account, "LTAInobodyhasthiskey", c.secret}).DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	aliyunCode(t, err, 404, "InvalidAccessKeyId.NotFound")

	if _, err := aliyun(t, rec.host, c).DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest()); err != nil {
		t.Fatal(err)
	}
	sent := rec.last()
	status, body := postQuery(t, s.url, sent.URL.Query())
	if status != 400 || body["Code"] != "SignatureNonceUsed" {
		t.Fatalf("replayed request: %d %v", status, body)
	}
	// The same request re-signed with a timestamp 16 minutes old and a
	// fresh nonce (the signer is the one the SDK tests prove equal).
	for _, skew := range []time.Duration{-16 * time.Minute, 16 * time.Minute} {
		q := sent.URL.Query()
		q.Set("Timestamp", time.Now().Add(skew).UTC().Format("2006-01-02T15:04:05Z"))
		q.Set("SignatureNonce", fmt.Sprint(time.Now().UnixNano()))
		p := map[string]string{}
		for k := range q {
			p[k] = q.Get(k)
		}
		q.Set("Signature", rpc.Sign(c.secret, rpc.StringToSign("POST", p)))
		status, body = postQuery(t, s.url, q)
		if status != 400 || body["Code"] != "InvalidTimeStamp.Expired" {
			t.Fatalf("timestamp %v off: %d %v", skew, status, body)
		}
	}

	req := smartag.CreateDescribeFlowLogsRequest()
	req.AcceptFormat = "XML"
	mustCreate(t, aliyun(t, s.host, c), netflowLog("xml", "2001:db8::1"))
	res, err := aliyun(t, s.host, c).DescribeFlowLogs(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalCount != 1 || res.FlowLogs.FlowLogSetType[0].NetflowServerIp != "2001:db8::1" || res.RequestId == "" {
		t.Fatalf("XML answer decoded to %+v", res)
	}
}

// postQuery sends the parameters in the query of an empty POST, as the SDK does.
func postQuery(t *testing.T, base string, q url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/?"+q.Encode(), nil)
	return do(t, req)
}

// A ClientToken makes CreateFlowLog idempotent, as X-Client-Token does for
// Huawei; an STS token is a feature flowlog does not have.
func TestAliyunClientTokenAndSTS(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	ali := aliyun(t, s.host, c)
	var ids []string
	for i := 0; i < 3; i++ {
		req := netflowLog("once", "192.0.2.1")
		req.QueryParams["ClientToken"] = "alibaba-retry-1"
		ids = append(ids, mustCreate(t, ali, req))
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("retries with one ClientToken made %v", ids)
	}
	res, err := ali.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	if err != nil || res.TotalCount != 1 {
		t.Fatalf("after retries: %v %+v", err, res)
	}

	sts, err := smartag.NewClientWithStsToken("cn-shanghai", "STS."+c.key, c.secret, "security-token")
	if err != nil {
		t.Fatal(err)
	}
	sts.Domain = s.host
	_, err = sts.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest())
	aliyunCode(t, err, 403, "FeatureNotSupport")
}
