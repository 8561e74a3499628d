package api_test

import (
	"testing"
	"time"
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
