package agent_test

import (
	"context"
	"testing"

	"flowlog/internal/agent"
	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// TestKeptState: the desired state an agent was given is kept in its data
// dir; an agent starting while the server is away runs on it, while one
// that was already given a state reports the outage (and keeps what runs).
// A refusal by the server is no outage: the kept state is not used.
func TestKeptState(t *testing.T) {
	srv := testutil.StartServer(t)
	ctx := context.Background()
	op := client.New(srv.URL, srv.KeyID, srv.Secret)
	var a struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	if err := op.JSON(ctx, "POST", "/v1/agents", nil, map[string]string{"name": "edge1"}, &a); err != nil {
		t.Fatal(err)
	}
	var gw struct{ ID string }
	if err := op.JSON(ctx, "POST", "/v1/gateways", nil, map[string]string{"name": "r", "kind": "pcap",
		"pcap_path": "/dev/null", "agent": "edge1"}, &gw); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := client.New(srv.URL, a.ID, a.Secret)
	first := agent.New(c, "edge1", dir, nil)
	st, err := first.Snapshot(ctx, "edge1")
	if err != nil || len(st.Gateways) != 1 || st.Gateways[0].ID != gw.ID {
		t.Fatalf("snapshot: %+v, %v", st, err)
	}

	wrongKey := agent.New(client.New(srv.URL, a.ID, "not-the-secret"), "edge1", dir, nil)
	if _, err := wrongKey.Snapshot(ctx, "edge1"); err == nil {
		t.Fatal("a refused snapshot fell back to the kept state")
	}

	srv.Stop()
	if _, err := first.Snapshot(ctx, "edge1"); err == nil {
		t.Fatal("a running agent's snapshot with the server away succeeded")
	}
	if _, err := first.Watch(ctx, st.Version); err == nil {
		t.Fatal("a watch with the server away succeeded")
	}
	restarted := agent.New(c, "edge1", dir, nil)
	kept, err := restarted.Snapshot(ctx, "edge1")
	if err != nil || kept.Version != st.Version || len(kept.Gateways) != 1 || kept.Gateways[0].ID != gw.ID {
		t.Fatalf("restarted with the server away: %+v, %v; want the kept state %+v", kept, err, st)
	}
	if _, err := agent.New(c, "edge1", t.TempDir(), nil).Snapshot(ctx, "edge1"); err == nil {
		t.Fatal("an agent with nothing kept got a state with the server away")
	}
}
