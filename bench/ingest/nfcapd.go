package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nfcapd is the peer collector: nfcapd writing flows into files in dir.
type nfcapd struct {
	cmd  *exec.Cmd
	dir  string
	addr string
	log  bytes.Buffer
	done chan struct{}
}

// startNfcapd starts nfcapd on a free port with the same 32 MiB socket
// buffer flowlog's collector asks for, and waits until it listens.
func startNfcapd(dir string) (*nfcapd, error) {
	port, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	n := &nfcapd{dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan struct{})}
	n.cmd = exec.Command("nfcapd", "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-w", dir, "-t", "3600", "-B", "33554432")
	n.cmd.Stdout, n.cmd.Stderr = &n.log, &n.log
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	hex := fmt.Sprintf(":%04X ", port)
	for range 500 {
		select {
		case <-n.done:
			return nil, fmt.Errorf("nfcapd exited: %s", n.log.String())
		default:
		}
		if b, _ := os.ReadFile("/proc/net/udp"); bytes.Contains(b, []byte(hex)) {
			return n, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.cmd.Process.Kill()
	return nil, fmt.Errorf("nfcapd does not listen on %s", n.addr)
}

// finish lets nfcapd read what is queued, stops it (it writes its file on
// SIGTERM) and returns the flows nfdump counts in its files and the CPU
// time nfcapd used.
func (n *nfcapd) finish() (flows int64, cpu time.Duration, err error) {
	waitDrained(n.addr, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		return 0, 0, fmt.Errorf("nfcapd did not stop: %s", n.log.String())
	}
	cpu = n.cmd.ProcessState.UserTime() + n.cmd.ProcessState.SystemTime()
	out, err := exec.Command("nfdump", "-R", n.dir, "-I").CombinedOutput()
	if err != nil {
		return 0, cpu, fmt.Errorf("nfdump -I: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Flows: "); ok {
			flows, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return flows, cpu, err
		}
	}
	return 0, cpu, fmt.Errorf("nfdump -I: no flow count in %s", out)
}
