package collect

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// totals are what the collectors are compared on.
type totals struct{ flows, packets, bytes uint64 }

// softflowdPcaps are the largest captures of the FlowTest corpus, enough
// for a few hundred flows of TCP, UDP, ICMP, IPv4 and IPv6.
func softflowdPcaps(t *testing.T) []string {
	files, _ := filepath.Glob(filepath.Join(testutil.SharedDir(t), "testdata", "flowtest", "pcap", "*.pcap"))
	if len(files) == 0 {
		t.Fatal("no FlowTest pcaps")
	}
	sort.Strings(files)
	return files
}

func runSoftflowd(t *testing.T, softflowd, pcap string, version, port int, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// -m 262144: softflowd's default table also bounds its batch between
	// expiry checks and would split flows early.
	args = append([]string{"-p", filepath.Join(t.TempDir(), "pid"), "-m", "262144", "-v", fmt.Sprint(version),
		"-n", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	cmd := exec.CommandContext(ctx, softflowd, append(args, "-r", pcap)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softflowd %s: %v: %s", filepath.Base(pcap), err, out)
	}
}

// againstNfcapd runs softflowd (with args) over pcaps, exporting version,
// to a collector of ours and to nfcapd, and returns our collector, its
// records and nfcapd's totals.
func againstNfcapd(t *testing.T, softflowd string, pcaps []string, version int, args ...string) (*Collector, []flow.Record, totals) {
	t.Helper()
	// softflowd's v9 header count covers only flow records.
	c, s := start(t, Config{Workers: 2, Session: netflow.SessionConfig{V9FlowCount: version == 9}})
	ourPort := c.Addrs()[0].(*net.UDPAddr).Port
	nfPort, stopNfcapd := testutil.StartNfcapd(t)
	for _, p := range pcaps {
		runSoftflowd(t, softflowd, p, version, ourPort, args...)
		runSoftflowd(t, softflowd, p, version, nfPort, args...)
	}
	recs := s.wait(0)
	flows, _ := stopNfcapd()
	var theirs totals
	for _, f := range flows {
		theirs.flows++
		theirs.packets += f.Packets
		theirs.bytes += f.Bytes
	}
	return c, recs, theirs
}

func totalsOf(recs []flow.Record) totals {
	var t totals
	for _, r := range recs {
		t.flows++
		t.packets += r.Packets
		t.bytes += r.Bytes
	}
	return t
}

// TestSoftflowdToCollectorMatchesNfcapd: softflowd reading the FlowTest
// captures and exporting v5, v9 and IPFIX gives our collector the same
// flow, packet and byte totals as it gives nfcapd.
func TestSoftflowdToCollectorMatchesNfcapd(t *testing.T) {
	softflowd := testutil.Peer(t, "softflowd")
	pcaps := softflowdPcaps(t)
	for _, version := range []int{5, 9, 10} {
		t.Run(fmt.Sprint("v", version), func(t *testing.T) {
			c, recs, theirs := againstNfcapd(t, softflowd, pcaps, version)
			ours := totalsOf(recs)
			if ours != theirs || ours.flows == 0 {
				t.Fatalf("ours %+v, nfcapd %+v; counters %+v", ours, theirs, c.Stats())
			}
			st := c.Stats()[0]
			if st.DecodeErrors != 0 || st.UnknownTemplates != 0 {
				t.Errorf("counters %+v", st)
			}
			// softflowd announces its (1:1) rate in v9 options data only:
			// its v5 and IPFIX records are taken as unsampled and counted
			// as missing a rate.
			missing := ours.flows
			if version == 9 {
				missing = 0
			}
			if st.SamplingMissing != missing || st.LastSamplingMissing != (missing > 0) ||
				version == 9 && st.SamplingMin != 1 {
				t.Errorf("softflowd v%d: %d records without a rate (last %v), announced 1:%d; want %d",
					version, st.SamplingMissing, st.LastSamplingMissing, st.SamplingMin, missing)
			}
			t.Logf("%d pcaps: %+v", len(pcaps), ours)
		})
	}
}

// TestSoftflowdV9CountRejected: softflowd's v9 packets that carry templates
// count only their flow records in the header, fewer than their flowsets;
// without V9FlowCount the collector rejects each one as a decode error.
func TestSoftflowdV9CountRejected(t *testing.T) {
	softflowd := testutil.Peer(t, "softflowd")
	c, s := start(t, Config{Workers: 1})
	pcap := filepath.Join(testutil.SharedDir(t), "testdata", "flowtest", "pcap", "ovpn.pcap")
	runSoftflowd(t, softflowd, pcap, 9, c.Addrs()[0].(*net.UDPAddr).Port)
	deadline := time.Now().Add(5 * time.Second)
	for len(c.Stats()) == 0 || c.Stats()[0].Packets == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no packet from softflowd")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	st := c.Stats()[0]
	if st.DecodeErrors != st.Packets || len(s.wait(0)) != 0 {
		t.Fatalf("counters %+v: want every packet rejected and no records", st)
	}
}

// TestSoftflowdSampledMatchesNfcapd: softflowd sampling 1:4 (-s 4) counts
// one packet in four and announces the rate (v5 header, v9/IPFIX options
// data); our collector stores 4 × what it counted, each record with
// sampling_interval 4. nfcapd 1.7.1 scales v5 by its header, so there the
// totals agree; it does not apply v9/IPFIX options data, so there it holds
// what softflowd counted: a quarter of ours, exactly.
func TestSoftflowdSampledMatchesNfcapd(t *testing.T) {
	softflowd := testutil.Peer(t, "softflowd")
	pcaps := softflowdPcaps(t)
	for _, version := range []int{5, 9, 10} {
		t.Run(fmt.Sprint("v", version), func(t *testing.T) {
			_, recs, theirs := againstNfcapd(t, softflowd, pcaps, version, "-s", "4")
			ours := totalsOf(recs)
			rates := map[uint32]uint64{}
			for _, r := range recs {
				rates[r.SamplingInterval]++
			}
			if version != 5 {
				theirs.packets, theirs.bytes = 4*theirs.packets, 4*theirs.bytes
			}
			if ours != theirs || ours.flows == 0 {
				t.Fatalf("ours %+v, nfcapd (v9/IPFIX: × 4) %+v", ours, theirs)
			}
			if len(rates) != 1 || rates[4] != ours.flows {
				t.Fatalf("sampling intervals %v, want 4 for all %d records", rates, ours.flows)
			}
		})
	}
}
