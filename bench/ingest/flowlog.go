package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"flowlog/internal/client"
	"flowlog/internal/store/query"
)

// The bootstrap account the benchmark gives the server.
const (
	keyID   = "BENCHBOOTSTRAPKEY001"
	secret  = "bench-bootstrap-secret-0123456789abcdefgh"
	account = "0123456789abcdef0123456789abcdef"
)

// server is a `flowlog serve` process set up as a user would for one
// router: an exporter gateway for 127.0.0.1, a log group and stream, and an
// sls flow log on the gateway.
type server struct {
	cmd       *exec.Cmd
	done      chan struct{}
	url       string
	collector string // host:port of its NetFlow/IPFIX collector
	api       *client.Client
	stream    string // log stream id
	stderr    bytes.Buffer
}

// startServer starts bin serve with a fresh data dir (and args, such as
// the log store) and sets it up.
func startServer(ctx context.Context, bin, dataDir string, args []string) (*server, error) {
	httpPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	udpPort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	s := &server{url: fmt.Sprintf("http://127.0.0.1:%d", httpPort), collector: fmt.Sprintf("127.0.0.1:%d", udpPort),
		done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", httpPort), "--data-dir", dataDir)
	s.cmd.Args = append(s.cmd.Args, args...)
	for _, kv := range os.Environ() { // the defaults, not the caller's FLOWLOG_ settings
		if !strings.HasPrefix(kv, "FLOWLOG_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Env = append(s.cmd.Env, "FLOWLOG_NETFLOW_LISTEN="+s.collector, "FLOWLOG_SFLOW_LISTEN=off",
		"FLOWLOG_ACCESS_KEY_ID="+keyID, "FLOWLOG_ACCESS_KEY_SECRET="+secret, "FLOWLOG_ACCOUNT_ID="+account)
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, &s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	if err := s.waitHealthy(60 * time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("flowlog serve: %w\n%s", err, s.stderr.String())
	}
	s.api = client.New(s.url, keyID, secret)
	if err := s.setUp(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) waitHealthy(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-s.done:
			return errors.New("exited")
		default:
		}
		if resp, err := http.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("no answer on %s/healthz within %v", s.url, timeout)
}

// setUp creates the gateway, log group, log stream and flow log, and waits
// until the flow log is available.
func (s *server) setUp(ctx context.Context) error {
	var ids [4]string
	calls := []struct {
		path string
		body func() map[string]any
	}{
		{"/v1/gateways", func() map[string]any {
			return map[string]any{"name": "router", "kind": "exporter", "exporter_addr": "127.0.0.1"}
		}},
		{"/v1/log-groups", func() map[string]any { return map[string]any{"name": "bench"} }},
		{"", func() map[string]any { return map[string]any{"name": "ipfix"} }},
		{"/v1/flow-logs", func() map[string]any {
			return map[string]any{"name": "router", "output_type": "sls", "log_stream_id": ids[2],
				"targets": []map[string]any{{"gateway_id": ids[0]}}}
		}},
	}
	for i, c := range calls {
		path := c.path
		if i == 2 {
			path = "/v1/log-groups/" + ids[1] + "/log-streams"
		}
		var out struct{ ID string }
		if err := s.api.JSON(ctx, "POST", path, nil, c.body(), &out); err != nil {
			return fmt.Errorf("POST %s: %w", path, err)
		}
		ids[i] = out.ID
	}
	s.stream = ids[2]
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var fl struct{ State string }
		if err := s.api.JSON(ctx, "GET", "/v1/flow-logs/"+ids[3], nil, nil, &fl); err != nil {
			return err
		}
		if fl.State == "available" {
			return nil
		}
	}
	return errors.New("the flow log did not become available")
}

// stored counts the stream's records through the query API, twice: as a
// user would ask (which the store answers from its per-minute rollup), and
// with a filter on a field no rollup keeps, so that the records themselves
// are counted.
func (s *server) stored(ctx context.Context) (records, rollup int64, err error) {
	if records, err = s.count(ctx, "srcport >= 0"); err != nil {
		return 0, 0, err
	}
	rollup, err = s.count(ctx, "")
	return records, rollup, err
}

func (s *server) count(ctx context.Context, where string) (int64, error) {
	now := time.Now()
	req := query.Request{Since: now.Add(-24 * time.Hour), Until: now.Add(time.Hour), Where: where,
		Aggregates: []query.Aggregate{{Func: "count"}}}
	var resp query.Response
	if err := s.api.JSON(ctx, "POST", "/v1/log-streams/"+s.stream+"/query", nil, req, &resp); err != nil {
		return 0, err
	}
	if len(resp.Rows) == 0 {
		return 0, nil
	}
	n, ok := resp.Rows[0][0].(uint64)
	if !ok {
		return 0, fmt.Errorf("count query answered %v", resp.Rows)
	}
	return int64(n), nil
}

// metrics reads /metrics and sums each metric over its labels.
func (s *server) metrics() (map[string]float64, error) {
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			rest = line[strings.LastIndexByte(line, '}')+1:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			sums[name] += v
		}
	}
	return sums, sc.Err()
}

// settle waits until the store has taken what the collector accepted: the
// committed and dropped counts stop moving and the queue is empty, for
// quiet in a row, or until timeout. It returns the last metrics and when
// they last moved.
func (s *server) settle(quiet, timeout time.Duration) (map[string]float64, time.Time, error) {
	var last map[string]float64
	stable := time.Now()
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		m, err := s.metrics()
		if err != nil {
			return nil, stable, err
		}
		moved := last == nil || m["flowlog_store_committed_records_total"] != last["flowlog_store_committed_records_total"] ||
			m["flowlog_flow_log_dropped_records_total"] != last["flowlog_flow_log_dropped_records_total"] ||
			m["flowlog_exporter_records_total"] != last["flowlog_exporter_records_total"] ||
			m["flowlog_store_queue_records"] > 0
		if moved {
			stable = time.Now()
		}
		last = m
		if time.Since(stable) >= quiet || time.Now().After(deadline) {
			return m, stable, nil
		}
	}
}

// stop ends the server with SIGTERM (SIGKILL after 60 s).
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// buildFlowlog builds cmd/flowlog of the module around the working
// directory into dir.
func buildFlowlog(dir string) (string, error) {
	root, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for ; ; root = filepath.Dir(root) {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		if root == "/" {
			return "", errors.New("go.mod not found: run from the repository")
		}
	}
	bin := filepath.Join(dir, "flowlog")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/flowlog")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}
