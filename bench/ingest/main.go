// Command ingest is the end-to-end ingest benchmark: routers → `flowlog
// serve` → log store, with nfcapd as the peer.
//
// It records softflowd's IPFIX export of a capture once (by default the
// synthetic 5M-packet capture of BENCHMARKS.md's meter section, written on
// first use), then, for each rate, starts a fresh `flowlog serve` set up as
// a user would (an exporter gateway for 127.0.0.1, a log group and stream,
// an sls flow log on the gateway), replays the recording to its collector
// paced at that many flows per second, with times, export times and
// sequence numbers made current, and counts what the server stored (the
// query API) and what it counted as dropped (/metrics). The same replay
// then goes to nfcapd, counted with nfdump. It prints a markdown table.
// With -agent, serve is the control plane only and a `flowlog agent` runs
// the gateway, writing to the same ClickHouse: the replay goes to the
// agent's collector, and CPU and /metrics are the agent's.
//
//	go run ./bench/ingest -rates 200000,500000,1000000 -duration 60s
//	go run ./bench/ingest -agent -rates 100000 -duration 30s -store clickhouse://127.0.0.1:8123/bench
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"flowlog/bench/recording"
)

type config struct {
	rates    []int
	duration time.Duration
	pcap     string
	capture  string
	bin      string
	workDir  string
	peer     bool
	perfDir  string
	out      string
	store    string // serve's --store; "": the embedded one
	agent    bool   // the gateway on an agent of serve
	mmdb     []string
	public   bool
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(context.Background(), cfg); err != nil {
		log.Fatal(err)
	}
}

func parseFlags() (config, error) {
	var c config
	rates := flag.String("rates", "200000,500000,1000000", "offered rates, flows per second, comma-separated")
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "how long each replay lasts")
	flag.StringVar(&c.pcap, "pcap", recording.DefaultPcap,
		"capture softflowd meters; the synthetic 5M-packet capture is written there if missing")
	flag.StringVar(&c.capture, "capture", "", "recording of softflowd's IPFIX export (default: PCAP.ipfix; made if missing)")
	flag.StringVar(&c.bin, "bin", "", "flowlog binary (default: go build ./cmd/flowlog)")
	flag.StringVar(&c.workDir, "workdir", "", "where data dirs go (default: a temp dir, removed afterwards)")
	flag.BoolVar(&c.peer, "nfcapd", true, "replay to nfcapd too")
	flag.StringVar(&c.perfDir, "perf", "", "record `perf` profiles of flowlog serve (or the agent) into this dir, one per rate")
	flag.StringVar(&c.out, "o", "", "also write the markdown table to this file")
	flag.StringVar(&c.store, "store", "", "serve's log store, e.g. clickhouse://127.0.0.1:8123/bench (default: the embedded one)")
	flag.BoolVar(&c.agent, "agent", false, "run the gateway on a flowlog agent (needs -store clickhouse://…) and measure the agent")
	flag.Func("mmdb", "GeoIP/ASN database for --mmdb of the process running the gateway; repeatable (go run ./bench/mmdb writes synthetic ones)", func(v string) error {
		c.mmdb = append(c.mmdb, v)
		return nil
	})
	flag.BoolVar(&c.public, "public", false, "move the recording's private IPv4 addresses into public space (so --mmdb looks them up)")
	flag.Parse()
	if c.agent && !strings.HasPrefix(c.store, "clickhouse://") {
		return c, errors.New("-agent needs -store clickhouse://…: an agent writes to the shared log store")
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return c, fmt.Errorf("-rates: %q is not a positive number", r)
		}
		c.rates = append(c.rates, n)
	}
	if c.capture == "" {
		c.capture = c.pcap + ".ipfix"
	}
	return c, nil
}

// result is one rate's row.
type result struct {
	rate        int
	flowlog     sent
	decoded     int64         // records the collector decoded from the exporter
	stored      int64         // records the query API counts
	rollup      int64         // the same count, answered from the store's rollup
	dropped     int64         // flowlog_flow_log_dropped_records_total
	liveStored  int64         // records in the store when the replay ended
	drain       time.Duration // from the end of the replay until the store held every record
	spoolPeak   float64       // largest flowlog_spool_bytes seen
	queryP50    time.Duration // top-10 query latency during the replay
	queryMax    time.Duration
	queryFailed int
	seqLost     int64         // flowlog_exporter_sequence_lost_total
	sockDrops   int64         // kernel UDP receive-buffer drops (machine-wide) during the run
	planeCPU    time.Duration // of the process running the gateway: serve or the agent
	senderCPU   time.Duration
	peer        sent
	peerStored  int64
	peerCPU     time.Duration
	peerSkipped bool
}

func run(ctx context.Context, cfg config) error {
	logf := log.New(os.Stderr, "bench-ingest: ", log.Ltime).Printf
	grams, err := recording.LoadOrCapture(cfg.pcap, cfg.capture, logf)
	if err != nil {
		return err
	}
	msgs, err := index(grams)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.capture, err)
	}
	var flows int
	for _, m := range msgs {
		flows += m.flows
	}
	if lost := checkSequence(msgs); lost != 0 {
		return fmt.Errorf("%s: the recording misses %d records by its sequence numbers; remove it to record again", cfg.capture, lost)
	}
	if cfg.public {
		makePublic(msgs)
	}
	logf("recording: %d datagrams, %d flows per pass", len(msgs), flows)
	work := cfg.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "flowlog-bench-ingest-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	bin := cfg.bin
	if bin == "" {
		logf("building flowlog")
		if bin, err = buildFlowlog(work); err != nil {
			return err
		}
	}
	rp := newReplay(msgs)
	var results []result
	for _, rate := range cfg.rates {
		r := result{rate: rate, peerSkipped: !cfg.peer}
		if err := runFlowlog(ctx, cfg, bin, work, rp, &r, logf); err != nil {
			return err
		}
		if cfg.peer {
			if err := runNfcapd(cfg, work, rp, &r, logf); err != nil {
				return err
			}
		}
		results = append(results, r)
	}
	table := markdown(cfg, results)
	fmt.Print(table)
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(table), 0o644)
	}
	return nil
}

// runFlowlog replays at r.rate to a fresh flowlog serve (and agent) and
// fills in its side of r.
func runFlowlog(ctx context.Context, cfg config, bin, work string, rp *replay, r *result, logf func(string, ...any)) error {
	dataDir := filepath.Join(work, fmt.Sprintf("flowlog-%d", r.rate))
	defer os.RemoveAll(dataDir)
	defer os.RemoveAll(dataDir + "-agent")
	srv, err := startServer(ctx, bin, dataDir, cfg.store, cfg.agent, cfg.mmdb)
	if err != nil {
		return err
	}
	defer srv.stop()
	plane := srv.plane
	pid := plane.cmd.Process.Pid
	stopPerf := startPerf(cfg.perfDir, plane.name, pid, r.rate, logf)
	cpu0, _ := procCPU(pid)
	self0, sock0 := selfCPU(), udpRcvbufErrors()
	logf("flowlog: replaying %d flows/s for %v to %s's collector %s", r.rate, cfg.duration, plane.name, plane.collector)
	mon := watch(ctx, srv)
	if r.flowlog, err = rp.send(plane.collector, r.rate, cfg.duration); err != nil {
		mon.end()
		return fmt.Errorf("replay to flowlog: %w", err)
	}
	sentAt := time.Now()
	r.senderCPU = selfCPU() - self0
	if m, err := plane.metrics(); err == nil {
		r.liveStored = int64(m["flowlog_store_committed_records_total"])
	}
	waitDrained(plane.collector, 30*time.Second)
	r.sockDrops = udpRcvbufErrors() - sock0
	m, moved, err := plane.settle(5*time.Second, 10*cfg.duration+2*time.Minute)
	mon.end()
	if err != nil {
		return err
	}
	r.drain = max(0, moved.Sub(sentAt))
	r.spoolPeak, r.queryP50, r.queryMax, r.queryFailed = mon.peak, mon.percentile(50), mon.percentile(100), mon.failures
	cpu1, _ := procCPU(pid)
	r.planeCPU = cpu1 - cpu0
	stopPerf()
	if r.stored, r.rollup, err = srv.stored(ctx); err != nil {
		return fmt.Errorf("count query: %w", err)
	}
	r.decoded = int64(m["flowlog_exporter_records_total"])
	r.dropped = int64(m["flowlog_flow_log_dropped_records_total"])
	r.seqLost = int64(m["flowlog_exporter_sequence_lost_total"])
	logf("flowlog: offered %d at %.0f/s, decoded %d, stored %d (rollup count %d), dropped %d, sequence lost %d; metrics %s",
		r.flowlog.flows, r.flowlog.rate(), r.decoded, r.stored, r.rollup, r.dropped, r.seqLost, exporterMetrics(m))
	return nil
}

// exporterMetrics lists the flowlog_exporter_* and store metrics, for the
// log.
func exporterMetrics(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		if strings.HasPrefix(k, "flowlog_exporter_") || strings.HasPrefix(k, "flowlog_store_") ||
			strings.HasPrefix(k, "flowlog_flow_log_") || strings.HasPrefix(k, "flowlog_collector_") {
			parts = append(parts, fmt.Sprintf("%s=%.0f", k, v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// runNfcapd replays at r.rate to a fresh nfcapd and fills in its side of r.
func runNfcapd(cfg config, work string, rp *replay, r *result, logf func(string, ...any)) error {
	dir := filepath.Join(work, fmt.Sprintf("nfcapd-%d", r.rate))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	nf, err := startNfcapd(dir)
	if err != nil {
		return err
	}
	logf("nfcapd: replaying %d flows/s for %v to %s", r.rate, cfg.duration, nf.addr)
	if r.peer, err = rp.send(nf.addr, r.rate, cfg.duration); err != nil {
		nf.cmd.Process.Kill()
		return fmt.Errorf("replay to nfcapd: %w", err)
	}
	if r.peerStored, r.peerCPU, err = nf.finish(); err != nil {
		return err
	}
	logf("nfcapd: offered %d at %.0f/s, stored %d", r.peer.flows, r.peer.rate(), r.peerStored)
	return nil
}

// startPerf records a call-graph profile of pid (flowlog name) into dir
// until the returned function is called; without dir it does nothing.
func startPerf(dir, name string, pid, rate int, logf func(string, ...any)) func() {
	if dir == "" {
		return func() {}
	}
	os.MkdirAll(dir, 0o755)
	out := filepath.Join(dir, fmt.Sprintf("%s-%d.perf.data", name, rate))
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", out)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		logf("perf: %v", err)
		return func() {}
	}
	return func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		logf("perf profile: %s (perf report -i %s --no-children)", out, out)
	}
}
