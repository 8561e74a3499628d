package capture

import (
	"context"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"flowlog/internal/packet"
	"flowlog/internal/testutil"
)

// TestLiveWaitsForDownInterface: a capture opened on an interface that is
// down neither fails nor spins; once the interface comes up it captures.
func TestLiveWaitsForDownInterface(t *testing.T) {
	testutil.Root(t)
	name := testutil.UniqueName("fdn")
	testutil.Run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })

	l, err := OpenLive(LiveConfig{Interfaces: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var frames atomic.Int64
	done := make(chan error, 1)
	go func() { done <- l.RunBatch(ctx, func(f []packet.Frame) { frames.Add(int64(len(f))) }) }()

	select {
	case err := <-done:
		t.Fatalf("capture on a down interface ended: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	testutil.Run(t, "ip", "addr", "add", "10.250.0.1/24", "dev", name+"p")
	testutil.Run(t, "ip", "link", "set", name+"p", "up")
	testutil.Run(t, "ip", "link", "set", name, "up")
	// Pinging a neighbour through the peer sends ARP requests across the
	// pair: any frame shows the ring was bound afresh.
	deadline := time.Now().Add(10 * time.Second)
	for frames.Load() == 0 && time.Now().Before(deadline) {
		exec.Command("ping", "-c", "1", "-W", "0.2", "-I", name+"p", "10.250.0.2").Run()
	}
	if frames.Load() == 0 {
		t.Fatal("no frame captured after the interface came up")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("capture ended with %v", err)
	}
}
