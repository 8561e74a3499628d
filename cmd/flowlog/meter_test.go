package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"

	"flowlog/internal/flow"
	"flowlog/internal/testutil"
)

func TestMeterFileFormats(t *testing.T) {
	bin := testutil.Binary(t)
	pcap := filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap/icmp.pcap")
	for _, c := range []struct{ format, want string }{
		{"jsonl", `"srcaddr":"192.168.158.139","dstaddr":"174.137.42.77"`},
		{"csv", "version,account_id,"},
		{"table", "end_reason"},
	} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "meter", "--pcap", pcap, "--format", c.format)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", c.format, err, stderr.String())
		}
		if !strings.Contains(stdout.String(), c.want) {
			t.Errorf("%s output lacks %q:\n%s", c.format, c.want, stdout.String())
		}
		if !strings.Contains(stderr.String(), "8 packets") || !strings.Contains(stderr.String(), "2 flows, 2 records") {
			t.Errorf("%s summary: %s", c.format, stderr.String())
		}
	}
	if err := exec.Command(bin, "meter", "--pcap", pcap, "--format", "xml").Run(); err == nil {
		t.Error("unknown format accepted")
	}
	if err := exec.Command(bin, "meter", "--pcap", "/nonexistent").Run(); err == nil {
		t.Error("missing file accepted")
	}
}

// vethPair makes two network namespaces joined by a veth pair,
// 10.231.0.1/24 (A) and 10.231.0.2/24 (B), removed when the test ends.
func vethPair(t testing.TB) (nsA, nsB, vA, vB string) {
	nsA, nsB = testutil.Netns(t), testutil.Netns(t)
	vA, vB = testutil.Veth(t, nsA, "10.231.0.1/24", nsB, "10.231.0.2/24")
	return nsA, nsB, vA, vB
}

// liveMeter is a running `flowlog meter --interface …` in a namespace.
type liveMeter struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func startMeter(t testing.TB, bin, ns string, args ...string) *liveMeter {
	t.Helper()
	m := &liveMeter{}
	m.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin, "meter", "--format", "jsonl"}, args...)...)
	m.cmd.Stdout = &m.stdout
	pr, pw, _ := os.Pipe()
	m.cmd.Stderr = pw
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "capturing on") {
				ready <- true
			}
			m.stderr.WriteString(sc.Text() + "\n")
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			m.cmd.Wait()
			t.Fatalf("meter did not start: %s", m.stderr.String())
		}
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		t.Fatal("meter did not start in time")
	}
	t.Cleanup(func() { m.cmd.Process.Kill() })
	return m
}

// stop interrupts the meter and returns its per-5-tuple packet counts.
func (m *liveMeter) stop(t testing.TB) map[string]uint64 {
	t.Helper()
	m.cmd.Process.Signal(syscall.SIGINT)
	if err := m.cmd.Wait(); err != nil {
		t.Fatalf("meter: %v\n%s", err, m.stderr.String())
	}
	time.Sleep(50 * time.Millisecond) // let the stderr reader finish
	if !strings.Contains(m.stderr.String(), " 0 dropped by the kernel") {
		t.Errorf("kernel drops or no stats: %s", m.stderr.String())
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(m.stdout.String()), "\n") {
		if line == "" {
			continue
		}
		var r flow.Record
		if err := r.UnmarshalJSON([]byte(line)); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		out[fmt.Sprintf("%v:%d>%v:%d/%d", r.SrcAddr, r.SrcPort, r.DstAddr, r.DstPort, r.Protocol)] += r.Packets
	}
	return out
}

// udpOnlyFilter is `ip and udp` for Ethernet, in tcpdump -dd's format.
func udpOnlyFilter(t *testing.T) string {
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 23, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 17, SkipTrue: 1},
		bpf.RetConstant{Val: 0x40000},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ins := range prog {
		fmt.Fprintf(&b, "{ 0x%x, %d, %d, 0x%08x },\n", ins.Op, ins.Jt, ins.Jf, ins.K)
	}
	return b.String()
}

// TestMeterLive joins two network namespaces with a veth pair, captures on
// one end while ping, nc (UDP and TCP) talk across it, and checks every
// flow's packet count: exact for ICMP and UDP, and equal to what dumpcap
// captured at the same time for TCP. A second meter with a BPF filter in
// promiscuous mode must see only the UDP flow.
func TestMeterLive(t *testing.T) {
	testutil.Root(t)
	for _, tool := range []string{"ip", "ping", "nc", "dumpcap", "tshark"} {
		testutil.Peer(t, tool)
	}
	bin := testutil.Binary(t)
	nsA, nsB, vA, _ := vethPair(t)
	bpfFile := filepath.Join(t.TempDir(), "udp.bpf")
	os.WriteFile(bpfFile, []byte(udpOnlyFilter(t)), 0o644)

	pcap := filepath.Join(t.TempDir(), "truth.pcap")
	dump := exec.Command("ip", "netns", "exec", nsA, "dumpcap", "-q", "-i", vA, "-w", pcap)
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	all := startMeter(t, bin, nsA, "--interface", vA, "--interface", "lo", "--inactive-timeout", "60")
	udpOnly := startMeter(t, bin, nsA, "--interface", vA, "--promisc", "--bpf", bpfFile)
	time.Sleep(time.Second) // dumpcap has no ready signal

	testutil.InNetns(t, nsA, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.231.0.2")
	testutil.InNetns(t, nsA, "ping", "-c", "2", "-i", "0.2", "127.0.0.1")
	udpSrv := exec.Command("ip", "netns", "exec", nsB, "nc", "-u", "-l", "5001")
	tcpSrv := exec.Command("ip", "netns", "exec", nsB, "nc", "-l", "5002")
	var tcpGot bytes.Buffer
	tcpSrv.Stdout = &tcpGot
	udpSrv.Start()
	tcpSrv.Start()
	t.Cleanup(func() { udpSrv.Process.Kill(); tcpSrv.Process.Kill() })
	time.Sleep(300 * time.Millisecond)
	// One nc, three writes apart in time: three datagrams.
	udp := exec.Command("ip", "netns", "exec", nsA, "nc", "-u", "-q", "0", "-p", "40001", "10.231.0.2", "5001")
	udpIn, _ := udp.StdinPipe()
	if err := udp.Start(); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"one\n", "two\n", "three\n"} {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(udpIn, msg)
	}
	time.Sleep(100 * time.Millisecond)
	udpIn.Close()
	if err := udp.Wait(); err != nil {
		t.Fatalf("nc udp: %v", err)
	}
	c := exec.Command("ip", "netns", "exec", nsA, "nc", "-N", "-p", "40002", "10.231.0.2", "5002")
	c.Stdin = strings.NewReader(strings.Repeat("flowlog ", 20000))
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("nc tcp: %v %s", err, out)
	}
	tcpSrv.Wait()
	if tcpGot.Len() != 8*20000 {
		t.Fatalf("tcp server got %d bytes", tcpGot.Len())
	}
	time.Sleep(300 * time.Millisecond)

	got := all.stop(t)
	filtered := udpOnly.stop(t)
	dump.Process.Signal(syscall.SIGINT)
	dump.Wait()

	exact := map[string]uint64{
		"10.231.0.1:0>10.231.0.2:2048/1":      5, // echo requests
		"10.231.0.2:0>10.231.0.1:0/1":         5, // echo replies
		"127.0.0.1:0>127.0.0.1:2048/1":        2, // on lo, the second interface
		"127.0.0.1:0>127.0.0.1:0/1":           2,
		"10.231.0.1:40001>10.231.0.2:5001/17": 3,
	}
	for k, n := range exact {
		if got[k] != n {
			t.Errorf("%s: %d packets, want %d", k, got[k], n)
		}
	}
	truth := testutil.CapTruth(t, pcap)
	if n := truth["10.231.0.1:40001>10.231.0.2:5001/17"]; n != 3 {
		t.Fatalf("traffic: dumpcap saw %d UDP datagrams from nc, not 3", n)
	}
	for _, k := range []string{"10.231.0.1:40002>10.231.0.2:5002/6", "10.231.0.2:5002>10.231.0.1:40002/6"} {
		if truth[k] == 0 || got[k] != truth[k] {
			t.Errorf("%s: %d packets, dumpcap saw %d", k, got[k], truth[k])
		}
	}
	if len(filtered) != 1 || filtered["10.231.0.1:40001>10.231.0.2:5001/17"] != 3 {
		t.Errorf("filtered meter: %v, want only the UDP flow with 3 packets\n%s", filtered, udpOnly.stderr.String())
	}
}

// BenchmarkMeterLive replays small UDP frames with tcpreplay at top speed
// across a veth pair while `flowlog meter` captures on the other end, and
// reports the rate offered and the kernel's drop count (needs root).
//
//	go test -run '^$' -bench BenchmarkMeterLive -benchtime 1x ./cmd/flowlog/
func BenchmarkMeterLive(b *testing.B) {
	testutil.Root(b)
	testutil.Peer(b, "tcpreplay")
	bin := testutil.Binary(b)
	nsA, nsB, vA, vB := vethPair(b)
	const n = 1_000_000
	pcap := filepath.Join(b.TempDir(), "udp.pcap")
	writeUDPFrames(b, pcap, n)
	for b.Loop() {
		m := startMeter(b, bin, nsA, "--interface", vA, "--inactive-timeout", "5")
		m.cmd.Stdout = io.Discard
		out, err := exec.Command("ip", "netns", "exec", nsB, "tcpreplay", "-i", vB, "--topspeed", pcap).CombinedOutput()
		if err != nil {
			b.Fatalf("tcpreplay: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
		m.stop(b)
		var rate float64
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 6 && f[0] == "Rated:" {
				rate, _ = strconv.ParseFloat(f[5], 64)
			}
		}
		var recv, drops uint64
		fmt.Sscanf(m.stderr.String()[strings.Index(m.stderr.String(), "interface "):], "interface "+vA+": %d packets received, %d dropped", &recv, &drops)
		b.ReportMetric(rate/1e6, "Mpps-offered")
		b.ReportMetric(float64(recv), "received")
		b.ReportMetric(float64(drops), "kernel-drops")
		cpu := m.cmd.ProcessState.UserTime() + m.cmd.ProcessState.SystemTime()
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(recv, 1)), "meter-cpu-ns/pkt")
		b.Logf("tcpreplay: %s\nmeter: %s", strings.TrimSpace(string(out)), m.stderr.String())
	}
}

// writeUDPFrames writes n minimal Ethernet/IPv4/UDP frames over 10k flows.
func writeUDPFrames(b testing.TB, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	w := pcapgo.NewWriter(bw)
	w.WriteFileHeader(128, layers.LinkTypeEthernet)
	fr := make([]byte, 60)
	copy(fr, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0,
		10, 231, 0, 2, 10, 231, 0, 1})
	for i := range n {
		fr[35+2] = 0
		binary.BigEndian.PutUint16(fr[34:], uint16(10000+i%10000))
		binary.BigEndian.PutUint16(fr[36:], 9)
		binary.BigEndian.PutUint16(fr[38:], 26)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(0, int64(i)*1000), CaptureLength: 60, Length: 60}, fr)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
}
