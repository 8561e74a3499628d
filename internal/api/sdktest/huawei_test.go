package sdktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/auth"
	er "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3"
)

// erFixture is an account with an enterprise router (a gateway), its
// attachments and a log stream, and a Huawei client for it.
type erFixture struct {
	c             creds
	router        string
	attachments   []string
	group, stream string
	hw            *er.ErClient
}

func newER(t *testing.T, s *server, c creds, attachments int) erFixture {
	t.Helper()
	router, atts := s.gateway(t, c, "er", attachments)
	group, stream := s.logStream(t, c, "lts-group", "lts-stream")
	return erFixture{c, router, atts, group, stream, huawei(t, s.url, c, c.account)}
}

func (f erFixture) request(name, attachment string) *model.CreateFlowLogRequest {
	return &model.CreateFlowLogRequest{ErId: f.router, Body: &model.CreateFlowLogRequestBody{FlowLog: &model.FlowLogRequest{
		Name: name, ResourceType: model.GetFlowLogRequestResourceTypeEnum().ATTACHMENT, ResourceId: attachment,
		LogGroupId: f.group, LogStreamId: f.stream, LogStoreType: model.GetFlowLogRequestLogStoreTypeEnum().LTS}}}
}

func (f erFixture) create(t *testing.T, name, attachment string) *model.FlowLog {
	t.Helper()
	res, err := f.hw.CreateFlowLog(f.request(name, attachment))
	if err != nil {
		t.Fatal(err)
	}
	if res.HttpStatusCode != 202 {
		t.Fatalf("create answered %d", res.HttpStatusCode)
	}
	return res.FlowLog
}

func (f erFixture) show(t *testing.T, id string) *model.FlowLog {
	t.Helper()
	res, err := f.hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: f.router, FlowLogId: id})
	if err != nil {
		t.Fatal(err)
	}
	if res.HttpStatusCode != 200 {
		t.Fatalf("show answered %d", res.HttpStatusCode)
	}
	return res.FlowLog
}

func (f erFixture) waitState(t *testing.T, id, state string) *model.FlowLog {
	t.Helper()
	var fl *model.FlowLog
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if fl = f.show(t, id); fl.State == state {
			return fl
		}
	}
	t.Fatalf("flow log %s stayed %s, want %s", id, fl.State, state)
	return nil
}

// Every operation of the ER flow-log API with its documented status codes.
func TestHuaweiLifecycle(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 1)
	token := "lifecycle-token-1"
	desc := "first attachment"
	req := f.request("er-flow", f.attachments[0])
	req.XClientToken, req.Body.FlowLog.Description = &token, &desc
	before := time.Now().Add(-time.Second)
	res, err := f.hw.CreateFlowLog(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.HttpStatusCode != 202 || res.XClientToken == nil || *res.XClientToken != token || res.RequestId == nil {
		t.Fatalf("create: status %d token %v request id %v", res.HttpStatusCode, res.XClientToken, res.RequestId)
	}
	fl := res.FlowLog
	if fl.Name != "er-flow" || *fl.Description != desc || fl.ProjectId != c.account || fl.ResourceType != "attachment" ||
		fl.ResourceId != f.attachments[0] || fl.LogGroupId != f.group || fl.LogStreamId != f.stream ||
		fl.LogStoreType != "LTS" || *fl.LogAggregationInterval != 600 || fl.State != "pending" || !fl.Enabled {
		t.Fatalf("created %+v", fl)
	}
	if created := time.Time(*fl.CreatedAt); created.Before(before) || created.After(time.Now().Add(time.Second)) {
		t.Fatalf("created_at %v is not now", created)
	}
	// created_at and updated_at in the documented YYYY-MM-DDTHH:mm:ss.sssZ.
	raw := rawHuawei(t, s, c, "GET", "/v3/"+c.account+"/enterprise-router/"+f.router+"/flow-logs/"+fl.Id)
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, k := range []string{"created_at", "updated_at"} {
		if v, _ := raw["flow_log"].(map[string]any)[k].(string); !stamp.MatchString(v) {
			t.Fatalf("%s = %q", k, v)
		}
	}

	f.waitState(t, fl.Id, "available")
	name, newDesc := "er-flow-2", "renamed"
	up, err := f.hw.UpdateFlowLog(&model.UpdateFlowLogRequest{ErId: f.router, FlowLogId: fl.Id,
		Body: &model.UpdateFlowLogRequestBody{Name: &name, Description: &newDesc}})
	if err != nil {
		t.Fatal(err)
	}
	if up.HttpStatusCode != 200 || up.FlowLog.Name != name || *up.FlowLog.Description != newDesc || up.FlowLog.State != "modifying" {
		t.Fatalf("update: %d %+v", up.HttpStatusCode, up.FlowLog)
	}
	f.waitState(t, fl.Id, "available")

	dis, err := f.hw.DisableFlowLog(&model.DisableFlowLogRequest{ErId: f.router, FlowLogId: fl.Id})
	if err != nil {
		t.Fatal(err)
	}
	if dis.HttpStatusCode != 202 || dis.FlowLog.Enabled {
		t.Fatalf("disable: %d enabled=%v", dis.HttpStatusCode, dis.FlowLog.Enabled)
	}
	if f.show(t, fl.Id).Enabled {
		t.Fatal("disabled flow log shows enabled")
	}
	en, err := f.hw.EnableFlowLog(&model.EnableFlowLogRequest{ErId: f.router, FlowLogId: fl.Id})
	if err != nil {
		t.Fatal(err)
	}
	if en.HttpStatusCode != 202 || !en.FlowLog.Enabled {
		t.Fatalf("enable: %d enabled=%v", en.HttpStatusCode, en.FlowLog.Enabled)
	}

	del, err := f.hw.DeleteFlowLog(&model.DeleteFlowLogRequest{ErId: f.router, FlowLogId: fl.Id})
	if err != nil {
		t.Fatal(err)
	}
	if del.HttpStatusCode != 202 {
		t.Fatalf("delete answered %d", del.HttpStatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := f.hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: f.router, FlowLogId: fl.Id})
		if err != nil {
			huaweiCode(t, err, 400, "ER.04008501")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("deleted flow log is still shown")
		}
	}
}

// rawHuawei sends a request signed like the SDK signs it and decodes the
// JSON answer, for what the SDK's types hide (exact time formats).
func rawHuawei(t *testing.T, s *server, c creds, method, path string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, nil)
	req.Header.Set("X-Project-Id", c.account)
	auth.Sign(req, nil, c.key, c.secret, time.Now())
	status, out := do(t, req)
	if status != 200 {
		t.Fatalf("%s %s: %d %v", method, path, status, out)
	}
	return out
}

func TestHuaweiErrors(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 2)
	first := f.create(t, "first", f.attachments[0])

	_, err := f.hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: f.router, FlowLogId: "fl-doesnotexist"})
	huaweiCode(t, err, 400, "ER.04008501")
	_, err = f.hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: "gw-doesnotexist", FlowLogId: first.Id})
	huaweiCode(t, err, 404, "ER.04041001")
	_, err = f.hw.CreateFlowLog(f.request("x", "at-doesnotexist"))
	huaweiCode(t, err, 404, "ER.04044001")
	_, err = f.hw.CreateFlowLog(f.request("second", f.attachments[0]))
	huaweiCode(t, err, 400, "ER.04008503") // one flow log per attachment and output

	vpc := f.request("x", f.attachments[1])
	if err := json.Unmarshal([]byte(`"vpc"`), &vpc.Body.FlowLog.ResourceType); err != nil {
		t.Fatal(err)
	}
	_, err = f.hw.CreateFlowLog(vpc)
	huaweiCode(t, err, 400, "ER.04008500")

	for name, mod := range map[string]func(r *model.FlowLogRequest){
		"no name":          func(r *model.FlowLogRequest) { r.Name = "" },
		"long name":        func(r *model.FlowLogRequest) { r.Name = string(make([]byte, 65)) },
		"no log group":     func(r *model.FlowLogRequest) { r.LogGroupId = "" },
		"unknown group":    func(r *model.FlowLogRequest) { r.LogGroupId = "lg-doesnotexist" },
		"unknown stream":   func(r *model.FlowLogRequest) { r.LogStreamId = "ls-doesnotexist" },
		"long description": func(r *model.FlowLogRequest) { d := string(make([]byte, 256)); r.Description = &d },
	} {
		req := f.request("x", f.attachments[1])
		mod(req.Body.FlowLog)
		_, err := f.hw.CreateFlowLog(req)
		t.Run(name, func(t *testing.T) { huaweiCode(t, err, 400, "ER.04009005") })
	}
	for name, req := range map[string]*model.ListFlowLogsRequest{
		"limit 0":    {ErId: f.router, Limit: ptr(int32(0))},
		"limit 2001": {ErId: f.router, Limit: ptr(int32(2001))},
		"sort key":   {ErId: f.router, SortKey: &[]string{"created_by"}},
		"two keys":   {ErId: f.router, SortKey: &[]string{"name", "state"}},
		"marker":     {ErId: f.router, Limit: ptr(int32(5)), Marker: ptr("fl-doesnotexist")},
	} {
		_, err := f.hw.ListFlowLogs(req)
		t.Run(name, func(t *testing.T) { huaweiCode(t, err, 400, "ER.04009005") })
	}
	empty := ""
	_, err = f.hw.UpdateFlowLog(&model.UpdateFlowLogRequest{ErId: f.router, FlowLogId: first.Id,
		Body: &model.UpdateFlowLogRequestBody{Name: &empty}})
	huaweiCode(t, err, 400, "ER.04009005")

	q, err := startServer(t.TempDir(), "--flow-log-quota", "1")
	if err != nil {
		t.Fatal(err)
	}
	defer q.stop()
	qf := newER(t, q, boot, 2)
	qf.create(t, "only", qf.attachments[0])
	_, err = qf.hw.CreateFlowLog(qf.request("over", qf.attachments[1]))
	huaweiCode(t, err, 400, "ER.04009008")
}

func ptr[T any](v T) *T { return &v }

// Authentication failures answer 401 APIGW.0301; a project other than the
// key's answers 403.
func TestHuaweiAuthentication(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 0)
	list := &model.ListFlowLogsRequest{ErId: f.router}
	_, err := huawei(t, s.url, creds{c.account, c.key, "wrong"}, c.account).ListFlowLogs(list)
	huaweiCode(t, err, 401, "APIGW.0301")
	_, err = huawei(t, s.url, creds{c.account, "UNKNOWNKEY", c.secret}, c.account).ListFlowLogs(list)
	huaweiCode(t, err, 401, "APIGW.0301")
	other := s.newAccount(t)
	_, err = huawei(t, s.url, c, other.account).ListFlowLogs(list)
	huaweiCode(t, err, 403, "APIGW.0302")
	for _, skew := range []time.Duration{-16 * time.Minute, 16 * time.Minute} {
		req, _ := http.NewRequest("GET", s.url+"/v3/"+c.account+"/enterprise-router/"+f.router+"/flow-logs", nil)
		auth.Sign(req, nil, c.key, c.secret, time.Now().Add(skew))
		status, body := do(t, req)
		if status != 401 || body["error_code"] != "APIGW.0301" || req.Header.Get("X-Sdk-Date") == "" {
			t.Fatalf("X-Sdk-Date %v off: %d %v", skew, status, body)
		}
	}
}

// limit/marker paging with page_info, sorting, and the resource_id filter.
func TestHuaweiPaging(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 15)
	var names []string
	for i, a := range f.attachments {
		names = append(names, f.create(t, fmt.Sprintf("flow-%02d", i), a).Name)
	}
	var got []string
	marker := ""
	for page, want := range []int{6, 6, 3} {
		req := &model.ListFlowLogsRequest{ErId: f.router, Limit: ptr(int32(6)), SortKey: &[]string{"name"},
			SortDir: &[]model.ListFlowLogsRequestSortDir{model.GetListFlowLogsRequestSortDirEnum().DESC}}
		if marker != "" {
			req.Marker = &marker
		}
		res, err := f.hw.ListFlowLogs(req)
		if err != nil {
			t.Fatal(err)
		}
		if *res.TotalCount != 15 || len(*res.FlowLogs) != want || int(res.PageInfo.CurrentCount) != want {
			t.Fatalf("page %d: total %d items %d current %d", page, *res.TotalCount, len(*res.FlowLogs), res.PageInfo.CurrentCount)
		}
		for _, fl := range *res.FlowLogs {
			got = append(got, fl.Name)
		}
		last := page == 2
		if last != (res.PageInfo.NextMarker == nil || *res.PageInfo.NextMarker == "") {
			t.Fatalf("page %d: next_marker %v", page, res.PageInfo.NextMarker)
		}
		if !last {
			marker = *res.PageInfo.NextMarker
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("pages by name desc gave\n%v\nwant\n%v", got, names)
	}
	res, err := f.hw.ListFlowLogs(&model.ListFlowLogsRequest{ErId: f.router,
		ResourceId:   &[]string{f.attachments[3], f.attachments[7]},
		ResourceType: ptr(model.GetListFlowLogsRequestResourceTypeEnum().ATTACHMENT)})
	if err != nil {
		t.Fatal(err)
	}
	if *res.TotalCount != 2 || len(*res.FlowLogs) != 2 {
		t.Fatalf("resource_id filter: %d", *res.TotalCount)
	}
	for _, fl := range *res.FlowLogs {
		if fl.ResourceId != f.attachments[3] && fl.ResourceId != f.attachments[7] {
			t.Fatalf("filtered list has %s", fl.ResourceId)
		}
	}
}

// The same X-Client-Token makes one flow log, also under parallel retries.
// (A retry is a new signed request: in a later second, or with a header of
// its own; the very same signed request again is refused as a replay.)
func TestHuaweiIdempotentCreate(t *testing.T) {
	s := shared
	c := s.newAccount(t)
	f := newER(t, s, c, 2)
	token := "retry-1"
	req := f.request("once", f.attachments[0])
	req.XClientToken = &token
	a, err := f.hw.CreateFlowLog(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.hw.CreateFlowLogInvoker(req).AddHeaders(map[string]string{"X-Flowlog-Nonce": "retry"}).Invoke()
	if err != nil {
		t.Fatal(err)
	}
	if rb := b.(*model.CreateFlowLogResponse); a.FlowLog.Id != rb.FlowLog.Id || rb.HttpStatusCode != 202 || *rb.XClientToken != token {
		t.Fatalf("retry made %s after %s (status %d)", rb.FlowLog.Id, a.FlowLog.Id, rb.HttpStatusCode)
	}
	token2 := "parallel-1"
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.request("parallel", f.attachments[1])
			r.XClientToken = &token2
			res, err := huawei(t, s.url, c, c.account).CreateFlowLogInvoker(r).
				AddHeaders(map[string]string{"X-Flowlog-Nonce": fmt.Sprint(i)}).Invoke()
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res.(*model.CreateFlowLogResponse).FlowLog.Id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("parallel retries made different flow logs: %v", ids)
		}
	}
	res, err := f.hw.ListFlowLogs(&model.ListFlowLogsRequest{ErId: f.router})
	if err != nil {
		t.Fatal(err)
	}
	if *res.TotalCount != 2 {
		t.Fatalf("%d flow logs after retries, want 2", *res.TotalCount)
	}
}

func TestHuaweiIsolation(t *testing.T) {
	s := shared
	a, b := s.newAccount(t), s.newAccount(t)
	fa, fb := newER(t, s, a, 1), newER(t, s, b, 1)
	flA := fa.create(t, "a", fa.attachments[0])
	_, err := fb.hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: fa.router, FlowLogId: flA.Id})
	huaweiCode(t, err, 404, "ER.04041001")
	_, err = fb.hw.ShowFlowLog(&model.ShowFlowLogRequest{ErId: fb.router, FlowLogId: flA.Id})
	huaweiCode(t, err, 400, "ER.04008501")
	_, err = fb.hw.DeleteFlowLog(&model.DeleteFlowLogRequest{ErId: fb.router, FlowLogId: flA.Id})
	huaweiCode(t, err, 400, "ER.04008501")
	_, err = fb.hw.CreateFlowLog(fb.request("steal", fa.attachments[0]))
	huaweiCode(t, err, 404, "ER.04044001")
	res, err := fb.hw.ListFlowLogs(&model.ListFlowLogsRequest{ErId: fb.router})
	if err != nil {
		t.Fatal(err)
	}
	if *res.TotalCount != 0 {
		t.Fatalf("B lists %d flow logs", *res.TotalCount)
	}
	fa.show(t, flA.Id)
}
