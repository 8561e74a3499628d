package export

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// nfdumpFlow is the part of `nfdump -o json` output the tests compare.
type nfdumpFlow struct {
	Src4     string `json:"src4_addr"`
	Dst4     string `json:"dst4_addr"`
	Src6     string `json:"src6_addr"`
	Dst6     string `json:"dst6_addr"`
	SrcPort  uint16 `json:"src_port"`
	DstPort  uint16 `json:"dst_port"`
	Proto    uint8  `json:"proto"`
	Packets  uint64 `json:"in_packets"`
	Bytes    uint64 `json:"in_bytes"`
	ICMPType uint8  `json:"icmp_type"`
	ICMPCode uint8  `json:"icmp_code"`
	First    string `json:"first"`
	Last     string `json:"last"`
}

// startNfcapd runs nfcapd on a free port writing into a temp dir, and
// returns the port and a function that stops it and returns the flows
// nfdump reads back.
func startNfcapd(t *testing.T) (int, func() ([]nfdumpFlow, string)) {
	t.Helper()
	nfcapd := testutil.Peer(t, "nfcapd")
	nfdump := testutil.Peer(t, "nfdump")
	dir := t.TempDir()
	port := testutil.FreeUDPPort(t)
	cmd := exec.Command(nfcapd, "-b", "127.0.0.1", "-p", fmt.Sprint(port), "-w", dir, "-B", "8000000", "-t", "3600")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	time.Sleep(300 * time.Millisecond) // let it bind
	return port, func() ([]nfdumpFlow, string) {
		time.Sleep(300 * time.Millisecond) // let it drain its socket
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("nfcapd did not stop: %s", out.String())
		}
		files, _ := filepath.Glob(filepath.Join(dir, "nfcapd.*"))
		if len(files) == 0 {
			t.Fatalf("nfcapd wrote no file: %s", out.String())
		}
		dump := exec.Command(nfdump, "-R", dir, "-o", "json")
		dump.Env = append(os.Environ(), "TZ=UTC")
		js, err := dump.Output()
		if err != nil {
			t.Fatalf("nfdump: %v", err)
		}
		var flows []nfdumpFlow
		if len(strings.TrimSpace(string(js))) > 0 {
			if err := json.Unmarshal(js, &flows); err != nil {
				t.Fatalf("nfdump json: %v: %.300s", err, js)
			}
		}
		info, _ := exec.Command(nfdump, "-E", files[0]).CombinedOutput()
		return flows, string(info)
	}
}

// TestNfcapdReceivesExport: nfdump reports the flows, packets, bytes and
// times we export, for each version.
func TestNfcapdReceivesExport(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	for _, tc := range []struct {
		version int
		rate    uint32
	}{{netflow.V5, 0}, {netflow.V9, 0}, {netflow.IPFIX, 0}} {
		t.Run(fmt.Sprintf("v%d_rate%d", tc.version, tc.rate), func(t *testing.T) {
			port, stop := startNfcapd(t)
			recs := testRecords(300, base)
			e, err := New(Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: tc.version,
				Domain: 3, SamplingInterval: tc.rate})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Export(recs); err != nil {
				t.Fatal(err)
			}
			e.Close()
			flows, info := stop()
			// nfdump checks sequence numbers per exporter and domain.
			if !strings.Contains(info, "Sequence failures: 0") {
				t.Errorf("nfdump reports sequence failures:\n%s", info)
			}
			scale := uint64(max(tc.rate, 1))
			var want, got []string
			for _, r := range recs {
				if tc.version == netflow.V5 && r.IPVersion == 6 {
					continue
				}
				ports := fmt.Sprintf("%d>%d", r.SrcPort, r.DstPort)
				if r.Protocol == 1 || r.Protocol == 58 {
					ports = fmt.Sprintf("icmp=%d/%d", r.ICMPType, r.ICMPCode)
				}
				want = append(want, fmt.Sprintf("%v %v %s p%d %d %d %s %s", r.SrcAddr, r.DstAddr, ports, r.Protocol,
					r.Packets*scale, r.Bytes*scale, nfdumpTime(r.Start), nfdumpTime(r.End)))
			}
			for _, f := range flows {
				src, dst := f.Src4, f.Dst4
				if src == "" {
					src, dst = f.Src6, f.Dst6
				}
				ports := fmt.Sprintf("%d>%d", f.SrcPort, f.DstPort)
				if f.Proto == 1 || f.Proto == 58 {
					ports = fmt.Sprintf("icmp=%d/%d", f.ICMPType, f.ICMPCode)
				}
				got = append(got, fmt.Sprintf("%s %s %s p%d %d %d %s %s", src, dst, ports, f.Proto, f.Packets, f.Bytes, f.First, f.Last))
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("nfdump reports %d flows, want %d; first difference:\n%s", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

func nfdumpTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000")
}
