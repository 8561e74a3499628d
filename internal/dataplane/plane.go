// Package dataplane makes flow logs happen. It turns the control plane's
// state into running captures, pcap replays and collector routes feeding
// meters, and meters and exporters feeding sinks (log streams and NetFlow
// collectors); it re-applies that state after every change and reports back,
// per flow log, whether it runs or why not.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"flowlog/internal/collect"
	"flowlog/internal/control"
	"flowlog/internal/flow"
	"flowlog/internal/ingest"
	"flowlog/internal/netflow"
	"flowlog/internal/spool"
	"flowlog/internal/store"
)

// Config configures a Plane.
type Config struct {
	Control *control.Service
	Store   store.Store // where sls output goes
	// Spool is where log streams' records wait for the store; Memory
	// bounds the records their pipelines hold in memory (nil: each its
	// own). Needed with Store.
	Spool  *spool.Spool
	Memory *ingest.Memory
	// Collector listeners for exporter gateways; empty for none.
	NetflowListen string
	SFlowListen   string
	// PcapDir is where accounts other than the bootstrap (operator) account
	// may replay capture files from; empty: nowhere. The operator may
	// replay any file the server can read.
	PcapDir string
	Session netflow.SessionConfig // the collector's per-exporter limits and leniencies
	DataDir string                // where the collector keeps templates; empty: memory only
	Tick    time.Duration         // period of reconciling and aging; default 500 ms
	Logger  *slog.Logger
}

// Plane is the running data plane.
type Plane struct {
	cfg       Config
	log       *slog.Logger
	collector *collect.Collector
	routes    routeTable

	// Owned by the Run goroutine.
	flows   map[string]*flowRun // by flow log id
	taps    map[string]*tap     // by interface name
	streams map[store.StreamID]*stream
	owners  map[netip.Addr]owner // the last claimant of every address ever claimed

	mu      sync.Mutex
	applied map[string]string // flow log id → reason it cannot run ("" when it runs)

	snap atomic.Pointer[snapshot] // what runs, for metrics
}

// New prepares a Plane and starts its collector listeners, if any.
func New(cfg Config) (*Plane, error) {
	if cfg.Control == nil {
		return nil, errors.New("dataplane: no control plane")
	}
	if cfg.Store != nil && cfg.Spool == nil {
		return nil, errors.New("dataplane: a log store needs a spool")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Plane{cfg: cfg, log: cfg.Logger, flows: map[string]*flowRun{}, taps: map[string]*tap{},
		streams: map[store.StreamID]*stream{}, applied: map[string]string{}, owners: map[netip.Addr]owner{}}
	p.routes.set(nil)
	p.snap.Store(&snapshot{})
	if cfg.NetflowListen != "" || cfg.SFlowListen != "" {
		// Only the exporters of running flow logs get decoding state, so
		// that spoofed sources cannot take it from them.
		c, err := collect.New(collect.Config{Listen: cfg.NetflowListen, SFlowListen: cfg.SFlowListen,
			DataDir: cfg.DataDir, Session: cfg.Session, Claimed: p.routes.claim}, p.routes.deliver)
		if err != nil {
			return nil, fmt.Errorf("dataplane: collector: %w", err)
		}
		p.collector = c
	}
	return p, nil
}

// CollectorAddrs returns the collector's bound addresses: NetFlow/IPFIX
// first (if any), then sFlow.
func (p *Plane) CollectorAddrs() []string {
	if p.collector == nil {
		return nil
	}
	var out []string
	for _, a := range p.collector.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// Run reconciles until ctx ends: after every control-plane change and every
// tick. It then stops every flow log, delivering what is in flight, and
// closes the sinks.
func (p *Plane) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	p.resumeSpools(ctx)
	for {
		p.age(time.Now())
		if err := p.reconcile(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("applying flow logs", "err", err)
		}
		p.closeIdleStreams(ctx)
		p.snap.Store(p.snapshot())
		if err := p.cfg.Control.Settle(ctx, p.check); err != nil && ctx.Err() == nil {
			p.log.Error("settling flow-log states", "err", err)
		}
		select {
		case <-ctx.Done():
			p.shutdown()
			return
		case <-p.cfg.Control.Changed():
		case <-t.C:
		}
	}
}

// check reports a flow log's state to the control plane: the reason it
// cannot run, or "" when it runs (or is disabled, which it does as asked).
// A flow log the plane has not applied yet stays where it is.
func (p *Plane) check(_ context.Context, f control.FlowLog) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	reason, ok := p.applied[f.ID]
	return reason, ok
}

// age moves every meter's clock and emits NODATA records for observation
// points that saw no traffic in an aggregation interval.
func (p *Plane) age(now time.Time) {
	for _, f := range p.flows {
		f.age(now)
	}
}

func (p *Plane) shutdown() {
	for id, f := range p.flows {
		p.stopFlow(id, f)
	}
	for id, s := range p.streams {
		p.closeStream(id, s)
	}
	for name, t := range p.taps {
		t.close()
		delete(p.taps, name)
	}
	if p.collector != nil {
		p.collector.Close()
	}
}

// stamp gives records the identity of the flow log and observation point
// that produced them.
func stamp(recs []flow.Record, u *unit) {
	for i := range recs {
		r := &recs[i]
		r.AccountID, r.FlowLogID, r.GatewayID = u.key.account, u.key.flowLog, u.key.gateway
		if r.InterfaceID == "" {
			r.InterfaceID = u.key.attachment
		}
	}
}
