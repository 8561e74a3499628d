package security

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/sdktest"
	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// keysCred is an access key as POST /v1/access-keys returns it.
type keysCred struct {
	ID      string `json:"access_key_id"`
	Secret  string `json:"access_key_secret"`
	Account string `json:"account_id"`
}

// keysCall sends a signed /v1 request and returns the status, the error code
// (if any) and the raw body.
func keysCall(t *testing.T, c *client.Client, method, path string, q url.Values) (int, string, []byte) {
	t.Helper()
	resp, err := c.Do(context.Background(), method, path, q, nil, nil)
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Status, ae.Code, resp.Body
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.Status, "", resp.Body
}

// keysWant asserts a /v1 request answers status (and code, for errors).
func keysWant(t *testing.T, c *client.Client, status int, code, method, path string, q url.Values) []byte {
	t.Helper()
	st, got, body := keysCall(t, c, method, path, q)
	if st != status || got != code {
		t.Fatalf("%s %s?%s with key %s: %d %s, want %d %s: %s", method, path, q.Encode(), c.KeyID, st, got,
			status, code, body)
	}
	return body
}

// keysCreate makes an access key for c's account, or a new account.
func keysCreate(t *testing.T, c *client.Client, newAccount bool) keysCred {
	t.Helper()
	var k keysCred
	if err := c.JSON(context.Background(), "POST", "/v1/access-keys", nil,
		map[string]bool{"new_account": newAccount}, &k); err != nil || k.ID == "" || k.Secret == "" {
		t.Fatalf("creating a key: %v %+v", err, k)
	}
	return k
}

func keysClient(s *testutil.Server, k keysCred) *client.Client {
	return client.New(s.URL, k.ID, k.Secret)
}

// keysListed returns the access keys the caller's listing shows, by id.
func keysListed(t *testing.T, c *client.Client) map[string]map[string]any {
	t.Helper()
	var lst struct {
		Keys []map[string]any `json:"access_keys"`
	}
	if err := json.Unmarshal(keysWant(t, c, 200, "", "GET", "/v1/access-keys", nil), &lst); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, k := range lst.Keys {
		out[k["access_key_id"].(string)] = k
	}
	return out
}

// keysDialects calls the Alibaba and Huawei dialects with key through the
// official SDKs and returns their errors (nil: served).
func keysDialects(t *testing.T, s *testutil.Server, k keysCred, router string) (ali, hw error) {
	t.Helper()
	req := smartag.CreateDescribeFlowLogsRequest()
	req.RegionId = "cn-shanghai"
	_, ali = sdktest.Aliyun(t, s.Addr, k.ID, k.Secret).DescribeFlowLogs(req)
	_, hw = sdktest.Huawei(t, s.URL, k.ID, k.Secret, k.Account).ListFlowLogs(&model.ListFlowLogsRequest{ErId: router})
	return ali, hw
}

// keysHuaweiCode asserts err is a Huawei error with status and code, whose
// message contains detail.
func keysHuaweiCode(t *testing.T, err error, status int, code, detail string) {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) || se.StatusCode != status || se.ErrorCode != code || !strings.Contains(se.ErrorMessage, detail) {
		t.Fatalf("Huawei SDK: got %v, want %d %s (…%s…)", err, status, code, detail)
	}
}

// keysAllServe asserts that k is served natively and by both dialects.
func keysAllServe(t *testing.T, s *testutil.Server, k keysCred, router string) {
	t.Helper()
	keysWant(t, keysClient(s, k), 200, "", "GET", "/v1/gateways", nil)
	if ali, hw := keysDialects(t, s, k, router); ali != nil || hw != nil {
		t.Fatalf("key %s refused: Alibaba %v, Huawei %v", k.ID, ali, hw)
	}
}

// A key that leaked is disabled by its owner: the very next request with it
// is refused on every API (native, Alibaba and Huawei through their official
// SDKs), with no cache that outlives the change; enabled again, it works;
// deleted, it is an unknown key.
func TestDisabledKeyRefusedAtOnce(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	k := keysCreate(t, boot, false)
	var gw struct{ ID string }
	if err := boot.JSON(context.Background(), "POST", "/v1/gateways", nil,
		map[string]string{"name": "er", "kind": "capture"}, &gw); err != nil {
		t.Fatal(err)
	}
	keysAllServe(t, s, k, gw.ID)

	keysWant(t, boot, 200, "", "POST", "/v1/access-keys/"+k.ID+"/disable", nil)
	keysWant(t, keysClient(s, k), 401, "Auth.AccessKeyDisabled", "GET", "/v1/gateways", nil)
	ali, hw := keysDialects(t, s, k, gw.ID)
	aliyunCode(t, ali, 400, "InvalidAccessKeyId.Inactive")
	keysHuaweiCode(t, hw, 401, "APIGW.0301", "disabled")

	keysWant(t, boot, 200, "", "POST", "/v1/access-keys/"+k.ID+"/enable", nil)
	keysAllServe(t, s, k, gw.ID)

	keysWant(t, boot, 204, "", "DELETE", "/v1/access-keys/"+k.ID, nil)
	keysWant(t, keysClient(s, k), 401, "Auth.UnknownAccessKey", "GET", "/v1/gateways", nil)
	ali, hw = keysDialects(t, s, k, gw.ID)
	aliyunCode(t, ali, 404, "InvalidAccessKeyId.NotFound")
	keysHuaweiCode(t, hw, 401, "APIGW.0301", "does not exist")
	keysAllServe(t, s, keysCred{ID: s.KeyID, Secret: s.Secret, Account: s.Account}, gw.ID)
}

// Whoever holds a key cannot learn a secret from the key listing, and
// another tenant can neither see nor disable, enable or delete this
// account's keys (its ids answer 404, as unknown ids do).
func TestStolenKeyCannotBeListedOrRevealed(t *testing.T) {
	s := startServer(t)
	boot := bootstrapClient(s)
	a2 := keysCreate(t, boot, false)
	b := keysCreate(t, boot, true)
	thief, other := keysClient(s, a2), keysClient(s, b)

	for _, c := range []*client.Client{boot, thief} {
		raw := keysWant(t, c, 200, "", "GET", "/v1/access-keys", nil)
		if strings.Contains(string(raw), a2.Secret) || strings.Contains(string(raw), s.Secret) ||
			strings.Contains(string(raw), "secret") {
			t.Fatalf("the key listing reveals a secret: %s", raw)
		}
	}
	if got := keysListed(t, thief); len(got) != 2 || got[s.KeyID] == nil || got[a2.ID] == nil {
		t.Fatalf("account A lists %v", got)
	}
	if got := keysListed(t, other); len(got) != 1 || got[b.ID] == nil {
		t.Fatalf("account B lists %v", got)
	}

	force := url.Values{"force": {"true"}}
	for _, id := range []string{a2.ID, s.KeyID} {
		p := "/v1/access-keys/" + id
		keysWant(t, other, 404, "NotFound.AccessKey", "POST", p+"/disable", force)
		keysWant(t, other, 404, "NotFound.AccessKey", "POST", p+"/enable", nil)
		keysWant(t, other, 404, "NotFound.AccessKey", "DELETE", p, force)
	}
	// Nor can the bootstrap account reach into B's keys.
	keysWant(t, boot, 404, "NotFound.AccessKey", "POST", "/v1/access-keys/"+b.ID+"/disable", force)
	keysWant(t, boot, 404, "NotFound.AccessKey", "DELETE", "/v1/access-keys/"+b.ID, force)

	for id, k := range keysListed(t, boot) {
		if k["status"] != "enabled" {
			t.Fatalf("key %s is %v after another tenant's attempts", id, k["status"])
		}
	}
	keysWant(t, thief, 200, "", "GET", "/v1/gateways", nil)
	keysWant(t, other, 200, "", "GET", "/v1/gateways", nil)
}

// An account's last enabled key is not disabled or deleted by mistake (nor
// by two deletes racing each other); force does it, and the operator's
// configured bootstrap key is back after a restart.
func TestLastKeyNotDeletedByMistake(t *testing.T) {
	s := startServer(t)
	b := keysCreate(t, bootstrapClient(s), true)
	bc := keysClient(s, b)
	p := "/v1/access-keys/" + b.ID
	keysWant(t, bc, 409, "Conflict.LastAccessKey", "POST", p+"/disable", nil)
	keysWant(t, bc, 409, "Conflict.LastAccessKey", "DELETE", p, nil)
	keysWant(t, bc, 409, "Conflict.LastAccessKey", "DELETE", p, url.Values{"force": {"false"}})

	// A disabled second key does not count as a way back in.
	b2 := keysCreate(t, bc, false)
	keysWant(t, bc, 200, "", "POST", "/v1/access-keys/"+b2.ID+"/disable", nil)
	keysWant(t, bc, 409, "Conflict.LastAccessKey", "POST", p+"/disable", url.Values{"force": {"0"}})
	keysWant(t, bc, 200, "", "POST", "/v1/access-keys/"+b2.ID+"/enable", nil)

	// Each key deletes the other at once: one delete wins, the other is
	// refused, and one working key remains.
	b2c := keysClient(s, b2)
	var wg sync.WaitGroup
	status := make([]int, 2)
	for i, c := range []*client.Client{bc, b2c} {
		target := []string{b2.ID, b.ID}[i]
		wg.Go(func() {
			resp, err := c.Do(context.Background(), "DELETE", "/v1/access-keys/"+target, nil, nil, nil)
			if resp != nil {
				status[i] = resp.Status
			} else {
				t.Errorf("racing delete: %v", err)
			}
		})
	}
	wg.Wait()
	left := 0
	for _, c := range []*client.Client{bc, b2c} {
		if st, _, _ := keysCall(t, c, "GET", "/v1/access-keys", nil); st == 200 {
			left++
		}
	}
	deleted := 0
	for _, st := range status {
		if st == 204 {
			deleted++
		}
	}
	if left != 1 || deleted != 1 {
		t.Fatalf("racing deletes answered %v; %d keys still work, want 1", status, left)
	}

	// Forced, the bootstrap account locks itself out, until the operator
	// restarts the server with the key in its environment.
	boot := bootstrapClient(s)
	keysWant(t, boot, 204, "", "DELETE", "/v1/access-keys/"+s.KeyID, url.Values{"force": {"true"}})
	keysWant(t, boot, 401, "Auth.UnknownAccessKey", "GET", "/v1/gateways", nil)
	s.Stop()
	s.Start()
	if got := keysListed(t, boot); got[s.KeyID]["status"] != "enabled" {
		t.Fatalf("after a restart the configured key is %v", got)
	}
}
