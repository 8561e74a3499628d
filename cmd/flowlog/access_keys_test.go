package main

import (
	"encoding/json"
	"strings"
	"testing"

	"flowlog/internal/testutil"
)

// keyStatuses lists the account's keys as id → status.
func keyStatuses(t *testing.T, srv *testutil.Server) map[string]string {
	t.Helper()
	out, errOut, code := runCLI(t, srv, "access-keys", "list", "-o", "json")
	var lst struct {
		Keys []map[string]any `json:"access_keys"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &lst) != nil {
		t.Fatalf("access-keys list -o json: exit %d: %s%s", code, out, errOut)
	}
	st := map[string]string{}
	for _, k := range lst.Keys {
		st[k["access_key_id"].(string)], _ = k["status"].(string)
	}
	return st
}

func TestCLIAccessKeys(t *testing.T) {
	srv := testutil.StartServer(t)
	out, errOut, code := runCLI(t, srv, "access-keys", "create", "-o", "json")
	var k struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &k) != nil || k.ID == "" {
		t.Fatalf("access-keys create: exit %d: %s%s", code, out, errOut)
	}
	if _, errOut, code := runCLIAs(t, srv, k.ID, k.Secret, "gateways", "list"); code != 0 {
		t.Fatalf("the new key does not work: %s", errOut)
	}

	out, _, code = runCLI(t, srv, "access-keys", "list")
	if code != 0 || !strings.Contains(out, "ACCESS_KEY_ID") || !strings.Contains(out, "LAST_USED_AT") ||
		!strings.Contains(out, srv.KeyID) || !strings.Contains(out, k.ID) {
		t.Fatalf("access-keys list table:\n%s", out)
	}
	for _, o := range []string{"table", "json", "id"} {
		out, _, _ := runCLI(t, srv, "access-keys", "list", "-o", o)
		if strings.Contains(out, k.Secret) || strings.Contains(out, srv.Secret) || strings.Contains(out, "secret") {
			t.Fatalf("access-keys list -o %s shows a secret:\n%s", o, out)
		}
	}
	if out, _, _ := runCLI(t, srv, "access-keys", "list", "-o", "id"); out != srv.KeyID+"\n"+k.ID+"\n" {
		t.Fatalf("access-keys list -o id printed %q", out)
	}

	if _, errOut, code := runCLI(t, srv, "access-keys", "disable", k.ID); code != 0 {
		t.Fatalf("disable: %s", errOut)
	}
	if st := keyStatuses(t, srv); st[k.ID] != "disabled" || st[srv.KeyID] != "enabled" {
		t.Fatalf("after disable: %v", st)
	}
	if _, errOut, code := runCLIAs(t, srv, k.ID, k.Secret, "gateways", "list"); code == 0 ||
		!strings.Contains(errOut, "Auth.AccessKeyDisabled") {
		t.Fatalf("disabled key: exit %d: %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, srv, "access-keys", "enable", k.ID); code != 0 {
		t.Fatalf("enable: %s", errOut)
	}
	if _, errOut, code := runCLIAs(t, srv, k.ID, k.Secret, "gateways", "list"); code != 0 {
		t.Fatalf("enabled again, still refused: %s", errOut)
	}

	// With the second key gone, the bootstrap key is the last enabled one.
	if _, errOut, code := runCLI(t, srv, "access-keys", "delete", k.ID); code != 0 {
		t.Fatalf("delete: %s", errOut)
	}
	if st := keyStatuses(t, srv); len(st) != 1 {
		t.Fatalf("after delete: %v", st)
	}
	for _, verb := range []string{"disable", "delete"} {
		_, errOut, code := runCLI(t, srv, "access-keys", verb, srv.KeyID)
		if code == 0 || !strings.Contains(errOut, "Conflict.LastAccessKey") || !strings.Contains(errOut, "--force") {
			t.Fatalf("%s of the last key: exit %d: %s", verb, code, errOut)
		}
	}
	if _, errOut, code := runCLI(t, srv, "access-keys", "disable", "--force", srv.KeyID); code != 0 {
		t.Fatalf("forced disable: %s", errOut)
	}
	if _, errOut, code := runCLI(t, srv, "gateways", "list"); code == 0 || !strings.Contains(errOut, "Auth.AccessKeyDisabled") {
		t.Fatalf("after a forced disable of the last key: exit %d: %s", code, errOut)
	}
}
