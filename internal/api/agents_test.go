package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"flowlog/internal/agent"
	"flowlog/internal/desired"
)

// TestAgentEndpoints: the operator registers an agent; its key is good
// only on that agent's endpoints (not on any account's routes, nor on
// another agent's); the agent's long poll answers when the version moves;
// its report shows in GET /v1/agents, which only the operator may read.
func TestAgentEndpoints(t *testing.T) {
	e := newEnv(t)
	k := e.must(201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	tenant := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))
	wantErrC(t, tenant, 403, "Forbidden", "POST", "/v1/agents", map[string]any{"name": "edge1"})
	e.wantErr(400, "InvalidParameter.name", "POST", "/v1/agents", map[string]any{"name": "Edge 1"})
	a := e.must(201, "POST", "/v1/agents", map[string]any{"name": "edge1"})
	e.must(201, "POST", "/v1/agents", map[string]any{"name": "edge2"})
	e.wantErr(409, "Conflict.AlreadyExists", "POST", "/v1/agents", map[string]any{"name": "edge1"})
	ag := e.clientFor(str(a, "access_key_id"), str(a, "access_key_secret"))

	// The agent key is no access key.
	wantErrC(t, ag, 401, "Auth.UnknownAccessKey", "GET", "/v1/gateways", nil)
	wantErrC(t, ag, 403, "Forbidden.Agent", "GET", "/v1/agents/edge2/desired", nil)
	wantErrC(t, tenant, 401, "Auth.UnknownAccessKey", "GET", "/v1/agents/edge1/desired", nil)

	// A tenant assigns its gateway to an agent only with the grant.
	gw := map[string]any{"name": "r", "kind": "pcap", "pcap_path": "/dev/null", "agent": "edge1"}
	e.wantErr(404, "NotFound.Agent", "POST", "/v1/gateways", map[string]any{"name": "r", "kind": "capture", "agent": "edge9"})
	wantErrC(t, tenant, 403, "Forbidden.Agent", "POST", "/v1/gateways",
		map[string]any{"name": "r", "kind": "capture", "agent": "edge1"})
	g := e.must(201, "POST", "/v1/gateways", gw)
	if g["agent"] != "edge1" {
		t.Fatalf("gateway: %v", g)
	}

	ctx := context.Background()
	r := agent.New(ag, "edge1", t.TempDir(), nil)
	st, err := r.Snapshot(ctx, "edge1")
	if err != nil || len(st.Gateways) != 1 || st.Gateways[0].ID != str(g, "id") {
		t.Fatalf("agent's snapshot: %+v, %v", st, err)
	}
	// The long poll waits for a change, and answers with it.
	moved := make(chan uint64, 1)
	go func() {
		v, err := r.Watch(ctx, st.Version)
		if err != nil {
			t.Error(err)
		}
		moved <- v
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case v := <-moved:
		t.Fatalf("the long poll answered %d without a change", v)
	default:
	}
	e.must(200, "PATCH", "/v1/gateways/"+str(g, "id"), map[string]any{"pcap_pace": "fast"})
	select {
	case v := <-moved:
		if v <= st.Version {
			t.Fatalf("long poll answered version %d after %d", v, st.Version)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not answer the change")
	}

	err = r.Report(ctx, desired.Status{Plane: "edge2", Version: st.Version + 1,
		Components: []desired.Component{{Kind: "capture", Name: "x", Error: "no such device"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantErrC(t, tenant, 403, "Forbidden", "GET", "/v1/agents", nil)
	list := e.must(http.StatusOK, "GET", "/v1/agents", nil)["agents"].([]any)
	first := list[0].(map[string]any)
	if len(list) != 2 || first["name"] != "edge1" || first["version_applied"] != float64(st.Version+1) ||
		first["last_seen"] == nil || first["gateways"] != float64(1) {
		t.Fatalf("agents: %v", list)
	}
	if errs := first["errors"].([]any); len(errs) != 1 || errs[0] != "capture/x: no such device" {
		t.Fatalf("agent errors: %v", errs)
	}
	if list[1].(map[string]any)["last_seen"] != nil {
		t.Fatalf("edge2 was never seen: %v", list[1])
	}
	e.wantErr(409, "Conflict.InUse", "DELETE", "/v1/agents/edge1", nil)
	e.must(204, "DELETE", "/v1/agents/edge2", nil)
}
