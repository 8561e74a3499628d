package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/testutil"
)

// minuteFiles stores flows in nfcapd files of one minute each, by flow
// end, named as `nfcapd -t 60` names them (nfcapd.YYYYMMDDhhmm): the files
// nfcapd writes when the flows arrive in real time, which nfdump reads a
// time range of, or the statistics of file by file (-g), as NfSen does.
// Each minute goes to its own short nfcapd run, as NetFlow v5 over
// loopback, on another goroutine while the caller carries on.
type minuteFiles struct {
	b       testing.TB
	nfcapd  string
	nfdump  string
	dir     string
	lag     int64                   // how long before the latest end seen a flow still to come may end, ms
	pending map[int64][]flow.Record // by minute
	latest  int64
	work    chan minuteBatch
	done    chan error
}

type minuteBatch struct {
	minute int64
	recs   []flow.Record
}

func newMinuteFiles(b testing.TB, dir string, lag int64) *minuteFiles {
	m := &minuteFiles{b: b, nfcapd: testutil.Peer(b, "nfcapd"), nfdump: testutil.Peer(b, "nfdump"), dir: dir, lag: lag,
		pending: map[int64][]flow.Record{}, work: make(chan minuteBatch, 4), done: make(chan error, 1)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	go func() {
		var err error
		for w := range m.work {
			if err == nil {
				err = m.writeChecked(w)
			}
		}
		m.done <- err
	}()
	return m
}

// add takes a batch of records (copied) and hands over the minutes no
// later record can belong to.
func (m *minuteFiles) add(recs []flow.Record) {
	for _, r := range recs {
		at := r.End - r.End%60_000
		m.pending[at] = append(m.pending[at], r)
		m.latest = max(m.latest, r.End)
	}
	m.flush(m.latest - m.lag)
}

// flush hands over the minutes that end at or before until.
func (m *minuteFiles) flush(until int64) {
	var ready []int64
	for at := range m.pending {
		if at+60_000 <= until {
			ready = append(ready, at)
		}
	}
	slices.Sort(ready)
	for _, at := range ready {
		m.work <- minuteBatch{at, m.pending[at]}
		delete(m.pending, at)
	}
}

// close writes what is left and waits for every file.
func (m *minuteFiles) close() error {
	m.flush(1 << 62)
	close(m.work)
	return <-m.done
}

// writeChecked writes one minute's file, and again should nfcapd have
// missed a datagram (the last one read as it was told to stop).
func (m *minuteFiles) writeChecked(w minuteBatch) error {
	for try := 0; ; try++ {
		path, err := m.write(w)
		if err != nil {
			return err
		}
		n, err := nfdumpFlows(m.nfdump, path)
		if err != nil || n == len(w.recs) {
			return err
		}
		if try == 2 {
			return fmt.Errorf("%s: nfcapd stored %d of %d flows, three times", path, n, len(w.recs))
		}
	}
}

// write runs nfcapd for one minute's flows and moves its file into dir.
func (m *minuteFiles) write(w minuteBatch) (string, error) {
	tmp, err := os.MkdirTemp(m.dir, ".minute-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	port := testutil.FreeUDPPort(m.b)
	var log bytes.Buffer
	cmd := exec.Command(m.nfcapd, "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-w", tmp, "-t", "3600", "-B", "33554432")
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	if err := waitListening(port, exited); err != nil {
		return "", fmt.Errorf("nfcapd: %w: %s", err, log.String())
	}
	if err := sendPaced(fmt.Sprintf("127.0.0.1:%d", port), v5(w.recs, 0), 20000); err != nil {
		return "", err
	}
	for deadline := time.Now().Add(30 * time.Second); !testutil.UDPDrained(port) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)   // let nfcapd store the last datagram it read
	cmd.Process.Signal(syscall.SIGTERM) // nfcapd writes its file when it ends
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("nfcapd did not stop: %s", log.String())
	}
	files, _ := filepath.Glob(filepath.Join(tmp, "nfcapd.2*"))
	if len(files) != 1 {
		return "", fmt.Errorf("nfcapd wrote %d files: %s", len(files), log.String())
	}
	path := filepath.Join(m.dir, "nfcapd."+time.UnixMilli(w.minute).UTC().Format("200601021504"))
	return path, os.Rename(files[0], path)
}

// waitListening waits until a UDP socket is bound to port on loopback.
func waitListening(port int, exited <-chan struct{}) error {
	hex := []byte(fmt.Sprintf(":%04X ", port))
	for range 1000 {
		select {
		case <-exited:
			return fmt.Errorf("exited")
		default:
		}
		if b, _ := os.ReadFile("/proc/net/udp"); bytes.Contains(b, hex) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("not listening on port %d", port)
}
