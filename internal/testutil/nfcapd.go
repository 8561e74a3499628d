package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// StartNfcapd runs nfcapd on a free port writing into a temp dir, waits
// until it listens, and returns the port and a function that waits until
// nfcapd has read everything sent to it, stops it and returns the flows
// nfdump reads back, with `nfdump -E`'s statistics of its file.
func StartNfcapd(t testing.TB) (int, func() ([]NfdumpFlow, string)) {
	t.Helper()
	nfcapd := Peer(t, "nfcapd")
	nfdump := Peer(t, "nfdump")
	dir := t.TempDir()
	port, cmd, log, exited := startNfcapd(t, nfcapd, dir)
	t.Cleanup(func() { cmd.Process.Kill() })
	return port, func() ([]NfdumpFlow, string) {
		waitUDPDrained(t, port)
		time.Sleep(100 * time.Millisecond) // let nfcapd store what it read
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("nfcapd: %v\n%s", err, log.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nfcapd did not stop: %s", log.String())
		}
		files, _ := filepath.Glob(filepath.Join(dir, "nfcapd.*"))
		if len(files) == 0 {
			t.Fatalf("nfcapd wrote no file: %s", log.String())
		}
		dump := exec.Command(nfdump, "-R", dir, "-o", "json")
		dump.Env = append(os.Environ(), "TZ=UTC")
		js, err := dump.Output()
		if err != nil {
			t.Fatalf("nfdump: %v", err)
		}
		var flows []NfdumpFlow
		if len(bytes.TrimSpace(js)) > 0 && !bytes.Contains(js, []byte("No matching flows")) {
			if err := json.Unmarshal(js, &flows); err != nil {
				t.Fatalf("nfdump json: %v: %.300s", err, js)
			}
		}
		info, _ := exec.Command(nfdump, "-E", files[0]).CombinedOutput()
		return flows, string(info)
	}
}

// usedPorts keeps parallel tests from picking the same port.
var usedPorts sync.Map

// startNfcapd starts nfcapd on a free port, trying another port when the
// chosen one is taken before nfcapd binds it, and waits until it listens.
func startNfcapd(t testing.TB, nfcapd, dir string) (int, *exec.Cmd, *syncBuffer, chan error) {
	t.Helper()
attempts:
	for attempt := 0; ; attempt++ {
		port := FreeUDPPort(t)
		if _, dup := usedPorts.LoadOrStore(port, true); dup {
			continue
		}
		log := &syncBuffer{}
		cmd := exec.Command(nfcapd, "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-w", dir, "-B", "8000000", "-t", "3600")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		hex := fmt.Sprintf(":%04X ", port)
		for range 1000 {
			select {
			case err := <-exited:
				if attempt < 5 && strings.Contains(log.String(), "Address already in use") {
					continue attempts
				}
				t.Fatalf("nfcapd exited: %v\n%s", err, log.String())
			default:
			}
			if b, _ := os.ReadFile("/proc/net/udp"); bytes.Contains(b, []byte(hex)) && strings.Contains(log.String(), "Startup") {
				return port, cmd, log, exited
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("nfcapd does not listen on udp port %d:\n%s", port, log.String())
	}
}

// waitUDPDrained waits until the receive queue of the UDP port is empty.
func waitUDPDrained(t testing.TB, port int) {
	t.Helper()
	for range 200 {
		if UDPDrained(port) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("udp port %d not drained", port)
}

// UDPDrained says whether the receive queues of the IPv4 UDP sockets on
// port are empty (as /proc/net/udp shows them), i.e. whether their reader
// has taken everything sent so far.
func UDPDrained(port int) bool {
	local := fmt.Sprintf(":%04X", port)
	b, _ := os.ReadFile("/proc/net/udp")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasSuffix(f[1], local) && !strings.HasSuffix(f[4], ":00000000") {
			return false
		}
	}
	return true
}
