package dataplane

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flowlog/internal/control"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// TestReexportKeepsRouterRate: a Juniper MX80 sends v5 sampled 1:1000 to a
// flow log that samples 1:8 and re-exports as v5 to a real nfcapd. The log
// stream holds 1000 × what the router counted, with sampling_interval
// 1000; the re-export announces the router's 1000 (not the flow log's 8)
// with the counted values, so nfdump, which scales by the announced
// interval, stores the same estimates: scaled once.
func TestReexportKeepsRouterRate(t *testing.T) {
	port := testutil.FreeUDPPort(t)
	collector := fmt.Sprintf("127.0.0.1:%d", port)
	r := newRig(t, collector)
	nfPort, stop := testutil.StartNfcapd(t)
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr("127.0.0.1")})
	ls := r.stream()
	f := r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputAll), LogStreamID: &ls, Sampling: ptr(8),
		NetflowServerIP: ptr("127.0.0.1"), NetflowServerPort: &nfPort, NetflowVersion: ptr(control.NetflowV5),
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	if got := r.state(f.ID); got.State != control.StateAvailable {
		t.Fatalf("state %s %q", got.State, got.StateReason)
	}

	const file = "netflow5_test_juniper_mx80.dat"
	raw, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors", file))
	r.must(err)
	counted, _, err := netflow.NewSession(netflow.SessionConfig{}).Decode(raw, time.Now(), nil)
	r.must(err)
	var wantPackets, wantBytes uint64
	for _, x := range counted {
		wantPackets, wantBytes = wantPackets+1000*x.Packets, wantBytes+1000*x.Bytes
	}

	testutil.SendCorpus(t, "127.0.0.1", collector, file)
	recs := r.records(ls, time.Now())
	for deadline := time.Now().Add(5 * time.Second); len(recs) < len(counted) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		recs = r.records(ls, time.Now())
	}
	var packets, bytes uint64
	for _, x := range recs {
		if x.SamplingInterval != 1000 {
			t.Fatalf("stored record with sampling_interval %d, want the router's 1000", x.SamplingInterval)
		}
		packets, bytes = packets+x.Packets, bytes+x.Bytes
	}
	if len(recs) != len(counted) || packets != wantPackets || bytes != wantBytes {
		t.Fatalf("stored %d records, %d packets, %d bytes; want %d, %d, %d", len(recs), packets, bytes,
			len(counted), wantPackets, wantBytes)
	}

	time.Sleep(200 * time.Millisecond) // the export went with the delivery; let nfcapd read it
	flows, _ := stop()
	packets, bytes = 0, 0
	for _, x := range flows {
		packets, bytes = packets+x.Packets, bytes+x.Bytes
	}
	if len(flows) != len(counted) || packets != wantPackets || bytes != wantBytes {
		t.Fatalf("nfdump stored %d flows, %d packets, %d bytes; want %d, %d, %d", len(flows), packets, bytes,
			len(counted), wantPackets, wantBytes)
	}
}
