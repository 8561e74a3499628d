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

// proc is a flowlog process: serve, or an agent, which answers /healthz
// and /metrics at url.
type proc struct {
	name      string // "serve" or "agent"
	cmd       *exec.Cmd
	done      chan struct{}
	url       string
	collector string // host:port of its NetFlow/IPFIX collector, or off
	stderr    bytes.Buffer
}

// server is a `flowlog serve` process set up as a user would for one
// router: an exporter gateway for 127.0.0.1, a log group and stream, and an
// sls flow log on the gateway. The gateway runs on plane: serve itself, or
// an agent of it.
type server struct {
	serve  *proc
	plane  *proc // the process whose collector receives and whose store queue writes
	api    *client.Client
	stream string // log stream id
}

// agentName is the agent the benchmark registers in -agent mode.
const agentName = "bench"

// startServer starts bin serve with a fresh data dir (and the log store
// named by store, if any) and sets it up; with agent, serve is the control
// plane only and an agent (data dir dataDir-agent) runs the gateway. The
// process running the gateway is given the GeoIP/ASN databases mmdb.
func startServer(ctx context.Context, bin, dataDir, store string, agent bool, mmdb []string) (*server, error) {
	args := []string{"serve", "--data-dir", dataDir}
	if store != "" {
		args = append(args, "--store", store)
	}
	var enrich []string
	for _, f := range mmdb {
		enrich = append(enrich, "--mmdb", f)
	}
	if !agent {
		args = append(args, enrich...)
	}
	env := []string{"FLOWLOG_ACCESS_KEY_ID=" + keyID, "FLOWLOG_ACCESS_KEY_SECRET=" + secret, "FLOWLOG_ACCOUNT_ID=" + account}
	serve, err := startProc("serve", bin, args, env, !agent)
	if err != nil {
		return nil, err
	}
	s := &server{serve: serve, plane: serve, api: client.New(serve.url, keyID, secret)}
	gwAgent := ""
	if agent {
		plane, err := s.startAgent(ctx, bin, dataDir+"-agent", store, enrich)
		if err != nil {
			serve.stop()
			return nil, err
		}
		s.plane, gwAgent = plane, agentName
	}
	if err := s.setUp(ctx, gwAgent); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startAgent registers the agent and starts `flowlog agent` with its key.
func (s *server) startAgent(ctx context.Context, bin, dataDir, store string, extra []string) (*proc, error) {
	var key struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	if err := s.api.JSON(ctx, "POST", "/v1/agents", nil, map[string]string{"name": agentName}, &key); err != nil {
		return nil, fmt.Errorf("POST /v1/agents: %w", err)
	}
	args := append([]string{"agent", "--server", s.serve.url, "--name", agentName, "--data-dir", dataDir, "--store", store}, extra...)
	return startProc("agent", bin, args, []string{"FLOWLOG_ACCESS_KEY_ID=" + key.ID, "FLOWLOG_ACCESS_KEY_SECRET=" + key.Secret}, true)
}

// startProc starts bin with args and env on top of the environment without
// its FLOWLOG_ settings (the defaults, not the caller's), on free loopback
// ports: its HTTP listener and, with collector, its NetFlow/IPFIX
// collector (else none); and waits until it answers /healthz.
func startProc(name, bin string, args, env []string, collector bool) (*proc, error) {
	httpPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort), collector: "off", done: make(chan struct{})}
	if collector {
		udpPort, err := freePort("udp")
		if err != nil {
			return nil, err
		}
		p.collector = fmt.Sprintf("127.0.0.1:%d", udpPort)
	}
	listen := "--listen" // serve's API, or an agent's /metrics
	if name == "agent" {
		listen = "--metrics-listen"
	}
	p.cmd = exec.Command(bin, append(args, listen, strings.TrimPrefix(p.url, "http://"))...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWLOG_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(append(p.cmd.Env, "FLOWLOG_NETFLOW_LISTEN="+p.collector, "FLOWLOG_SFLOW_LISTEN=off"), env...)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	if err := p.waitHealthy(60 * time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("flowlog %s: %w\n%s", name, err, p.stderr.String())
	}
	return p, nil
}

func (p *proc) waitHealthy(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-p.done:
			return errors.New("exited")
		default:
		}
		if resp, err := http.Get(p.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("no answer on %s/healthz within %v", p.url, timeout)
}

// setUp creates the gateway (run by agent, "" for serve), log group, log
// stream and flow log, and waits until the flow log is available.
func (s *server) setUp(ctx context.Context, agent string) error {
	var ids [4]string
	calls := []struct {
		path string
		body func() map[string]any
	}{
		{"/v1/gateways", func() map[string]any {
			gw := map[string]any{"name": "router", "kind": "exporter", "exporter_addr": "127.0.0.1"}
			if agent != "" {
				gw["agent"] = agent
			}
			return gw
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
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
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
func (p *proc) metrics() (map[string]float64, error) {
	resp, err := http.Get(p.url + "/metrics")
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
func (p *proc) settle(quiet, timeout time.Duration) (map[string]float64, time.Time, error) {
	var last map[string]float64
	stable := time.Now()
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		m, err := p.metrics()
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

// stop ends the agent, if any, then serve.
func (s *server) stop() {
	if s.plane != s.serve {
		s.plane.stop()
	}
	s.serve.stop()
}

// stop ends the process with SIGTERM (SIGKILL after 60 s).
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
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
