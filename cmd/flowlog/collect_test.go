package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// TestCollectCommand runs `flowlog collect` and checks that records
// exported to it come out as JSON lines.
func TestCollectCommand(t *testing.T) {
	port := testutil.FreeUDPPort(t)
	cmd := exec.Command(testutil.Binary(t), "collect", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--format", "jsonl")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(300 * time.Millisecond)

	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	want := make([]flow.Record, 50)
	for i := range want {
		want[i] = flow.Record{SrcAddr: netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), DstAddr: netip.MustParseAddr("192.0.2.1"),
			SrcPort: uint16(3000 + i), DstPort: 80, Protocol: 6, Packets: uint64(i + 1), Bytes: uint64(1000 + i),
			Start: base, End: base + 1000, IPVersion: 4, InputIfIndex: 2, OutputIfIndex: 3}
	}
	e, err := export.New(export.Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: netflow.IPFIX})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Export(want); err != nil {
		t.Fatal(err)
	}
	e.Close()

	sc := bufio.NewScanner(stdout)
	var got []flow.Record
	done := make(chan struct{})
	go func() {
		for len(got) < len(want) && sc.Scan() {
			// The record layout plus the observation point.
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("line %q: %v", sc.Text(), err)
				break
			}
			if m["exporter_addr"] != "127.0.0.1" || m["input_ifindex"] != 2.0 || m["output_ifindex"] != 3.0 {
				t.Errorf("observation point in %q", sc.Text())
			}
			delete(m, "exporter_addr")
			delete(m, "input_ifindex")
			delete(m, "output_ifindex")
			rest, _ := json.Marshal(m)
			var r flow.Record
			if err := r.UnmarshalJSON(rest); err != nil {
				t.Errorf("line %q: %v", sc.Text(), err)
				break
			}
			got = append(got, r)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d of %d records printed", len(got), len(want))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.SrcAddr != w.SrcAddr || g.SrcPort != w.SrcPort || g.Packets != w.Packets || g.Bytes != w.Bytes || g.Start != w.Start || g.End != w.End {
			t.Errorf("record %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestCollectV9FlowCount: softflowd's v9 export (its header count covers
// only flow records) is rejected by `flowlog collect` and decoded with
// --v9-flow-count.
func TestCollectV9FlowCount(t *testing.T) {
	softflowd := testutil.Peer(t, "softflowd")
	bin := testutil.Binary(t)
	pcap := filepath.Join(testutil.SharedDir(t), "testdata", "flowtest", "pcap", "ovpn.pcap")
	for _, flag := range []bool{false, true} {
		port := testutil.FreeUDPPort(t)
		cmd := exec.Command(bin, "collect", "--listen", fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("--v9-flow-count=%v", flag))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		out, err := exec.Command(softflowd, "-p", filepath.Join(t.TempDir(), "pid"), "-v", "9",
			"-n", fmt.Sprintf("127.0.0.1:%d", port), "-r", pcap).CombinedOutput()
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("softflowd: %v: %s", err, out)
		}
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit: %v: %s", err, stderr.String())
		}
		lines := bytes.Count(stdout.Bytes(), []byte("\n"))
		rejected := strings.Contains(stderr.String(), "decode_errors 1 ")
		if flag && (lines == 0 || rejected) || !flag && (lines != 0 || !rejected) {
			t.Errorf("--v9-flow-count=%v: %d records; %s", flag, lines, stderr.String())
		}
	}
}
