package testutil

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NfdumpFlow is the part of `nfdump -o json` output the tests compare.
type NfdumpFlow struct {
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

// StartNfcapd runs nfcapd on a free port writing into a temp dir, and
// returns the port and a function that stops it and returns the flows
// nfdump reads back.
func StartNfcapd(t testing.TB) (int, func() ([]NfdumpFlow, string)) {
	t.Helper()
	nfcapd := Peer(t, "nfcapd")
	nfdump := Peer(t, "nfdump")
	dir := t.TempDir()
	port := FreeUDPPort(t)
	cmd := exec.Command(nfcapd, "-b", "127.0.0.1", "-p", fmt.Sprint(port), "-w", dir, "-B", "8000000", "-t", "3600")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	time.Sleep(300 * time.Millisecond) // let it bind
	return port, func() ([]NfdumpFlow, string) {
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
		var flows []NfdumpFlow
		if len(strings.TrimSpace(string(js))) > 0 {
			if err := json.Unmarshal(js, &flows); err != nil {
				t.Fatalf("nfdump json: %v: %.300s", err, js)
			}
		}
		info, _ := exec.Command(nfdump, "-E", files[0]).CombinedOutput()
		return flows, string(info)
	}
}
