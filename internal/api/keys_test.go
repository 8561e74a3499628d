package api_test

import (
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/sdktest"
)

// The access-key routes answer as the OpenAPI document says: list without
// secrets, disable/enable/delete, the last-key guard and force, and a last
// use that follows the key's signed requests.
func TestAccessKeyRoutes(t *testing.T) {
	e := newEnv(t)
	k := e.must(201, "POST", "/v1/access-keys", nil)
	id := str(k, "access_key_id")
	second := e.clientFor(id, str(k, "access_key_secret"))
	before := time.Now().Add(-time.Second)
	mustC(t, second, 200, "GET", "/v1/gateways", nil)

	keys := e.must(200, "GET", "/v1/access-keys", nil)["access_keys"].([]any)
	if len(keys) != 2 {
		t.Fatalf("listed %d keys, want 2: %v", len(keys), keys)
	}
	got := keys[1].(map[string]any)
	if got["access_key_id"] != id || got["status"] != "enabled" || got["account_id"] != e.srv.Account {
		t.Fatalf("second key listed as %v", got)
	}
	used, err := time.Parse(time.RFC3339, str(got, "last_used_at"))
	if err != nil || used.Before(before) {
		t.Fatalf("last_used_at %q after a signed request at %v: %v", got["last_used_at"], before, err)
	}

	if m := e.must(200, "POST", "/v1/access-keys/"+id+"/disable", nil); m["status"] != "disabled" {
		t.Fatalf("disable answered %v", m)
	}
	wantErrC(t, second, 401, "Auth.AccessKeyDisabled", "GET", "/v1/gateways", nil)
	if m := e.must(200, "POST", "/v1/access-keys/"+id+"/enable", nil); m["status"] != "enabled" {
		t.Fatalf("enable answered %v", m)
	}
	mustC(t, second, 200, "GET", "/v1/gateways", nil)

	e.wantErr(400, "InvalidParameter.force", "DELETE", "/v1/access-keys/"+id+"?force=maybe", nil)
	e.must(204, "DELETE", "/v1/access-keys/"+id, nil)
	wantErrC(t, second, 401, "Auth.UnknownAccessKey", "GET", "/v1/gateways", nil)
	e.wantErr(404, "NotFound.AccessKey", "POST", "/v1/access-keys/"+id+"/enable", nil)

	boot := "/v1/access-keys/" + e.srv.KeyID
	e.wantErr(409, "Conflict.LastAccessKey", "POST", boot+"/disable", nil)
	e.wantErr(409, "Conflict.LastAccessKey", "DELETE", boot, nil)
	e.must(200, "GET", "/v1/gateways", nil)
}

// A key used only through a cloud dialect (official SDK) shows a last use
// too; a key never used shows none.
func TestAccessKeyLastUseThroughDialects(t *testing.T) {
	e := newEnv(t)
	gw := e.must(201, "POST", "/v1/gateways", map[string]any{"name": "er", "kind": "capture"})
	ali := e.must(201, "POST", "/v1/access-keys", nil)
	hw := e.must(201, "POST", "/v1/access-keys", nil)
	idle := e.must(201, "POST", "/v1/access-keys", nil)

	req := smartag.CreateDescribeFlowLogsRequest()
	req.RegionId = "cn-shanghai"
	if _, err := sdktest.Aliyun(t, e.srv.Addr, str(ali, "access_key_id"), str(ali, "access_key_secret")).
		DescribeFlowLogs(req); err != nil {
		t.Fatal(err)
	}
	if _, err := sdktest.Huawei(t, e.srv.URL, str(hw, "access_key_id"), str(hw, "access_key_secret"), e.srv.Account).
		ListFlowLogs(&model.ListFlowLogsRequest{ErId: str(gw, "id")}); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, k := range e.must(200, "GET", "/v1/access-keys", nil)["access_keys"].([]any) {
		m := k.(map[string]any)
		used[str(m, "access_key_id")] = m["last_used_at"] != nil
	}
	if !used[str(ali, "access_key_id")] || !used[str(hw, "access_key_id")] || used[str(idle, "access_key_id")] {
		t.Fatalf("last use shown (Alibaba, Huawei, idle key): %v %v %v", used[str(ali, "access_key_id")],
			used[str(hw, "access_key_id")], used[str(idle, "access_key_id")])
	}
}
