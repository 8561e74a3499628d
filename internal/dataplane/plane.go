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
	"sync/atomic"
	"time"

	"flowlog/internal/capture"
	"flowlog/internal/collect"
	"flowlog/internal/desired"
	"flowlog/internal/enrich"
	"flowlog/internal/flow"
	"flowlog/internal/ingest"
	"flowlog/internal/meter"
	"flowlog/internal/netflow"
	"flowlog/internal/snmp"
	"flowlog/internal/spool"
	"flowlog/internal/store"
)

// Control is the control plane as a data plane sees it: a versioned
// desired state to watch, and where to report what runs.
type Control interface {
	Snapshot(ctx context.Context, plane string) (desired.State, error)
	Watch(ctx context.Context, after uint64) (uint64, error)
	Report(ctx context.Context, st desired.Status) error
	// ShareTemplates passes on what the plane's collector learned of
	// exporters, for the other planes receiving them.
	ShareTemplates(ctx context.Context, plane string, ts []desired.ExporterTemplates) error
}

// Config configures a Plane.
type Config struct {
	Control Control
	Name    string      // the data plane's name in the desired state; "" for the server's own
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
	// FileDir is where flow logs of output type file write, each account
	// in a directory of its own; empty: output type file cannot run.
	FileDir string
	Session netflow.SessionConfig // the collector's per-exporter limits and leniencies
	DataDir string                // where the collector keeps templates; empty: memory only
	Tick    time.Duration         // period of aging meters; default 500 ms
	// Retry is how often what failed (an interface that went away, a
	// report or a snapshot the control plane refused) is tried again;
	// default 2 s.
	Retry time.Duration
	// SNMP tunes the polling of exporters' interfaces (exporter gateways
	// with SNMP settings); zero fields take snmp's defaults.
	SNMP snmp.Config
	// Enricher fills the GeoIP, ASN and interface fields of the records
	// that go to log streams; nil: interface fields only (from SNMP and
	// options data).
	Enricher *enrich.Enricher
	Logger   *slog.Logger

	// What a plane running a fixed state in the foreground (flowlog meter)
	// needs. Tap, if set, is handed every batch of records a flow log
	// delivers, on any goroutine; it must not keep recs.
	Tap func(recs []flow.Record)
	// Meter, if set, configures every flow log's meters in place of their
	// aging and sampling.
	Meter *meter.Config
	// Capture, if set, is how interfaces are captured (its Interfaces
	// aside); nil: promiscuous, unfiltered.
	Capture *capture.LiveConfig
	// NoNoData: idle observation points get no NODATA records.
	NoNoData bool
	// Imported, if set, makes pcap gateways imports: a file is read once, as
	// fast as it can be, at its own times, which alone age its meter; its
	// records wait for room in a log stream rather than being dropped; and
	// Imported is called when the file is read (err: why not to its end).
	Imported func(flowLog string, err error)
	// NoResume leaves the spools of log streams no flow log writes to
	// alone at start, neither stored nor dropped: the plane shares the
	// spool's directory with others.
	NoResume bool
}

// Plane is the running data plane.
type Plane struct {
	cfg       Config
	log       *slog.Logger
	collector *collect.Collector
	routes    routeTable
	pollers   snmp.Set // exporters' interface tables, by exporter address

	// Owned by the Run goroutine.
	state      desired.State                        // as last applied
	logStreams map[store.StreamID]desired.LogStream // those of state
	stale      bool                                 // the last snapshot failed: state is older than the control plane's
	resumed    bool                                 // spools left by an earlier run are open again
	flows      map[string]*flowRun                  // by flow log id
	taps       map[string]*tap                      // by interface name
	streams    map[store.StreamID]*stream
	owners     map[netip.Addr]owner // the last claimant of every address ever claimed
	applied    map[string]string    // flow log id → reason it cannot run ("" when it runs)
	reported   *reported            // what the control plane last took; nil: none since the start, or the last report failed
	totals     totals               // counters that outlive what they count
	tried      time.Time            // when state was last applied

	snap   atomic.Pointer[snapshot] // what runs, for metrics
	shared atomic.Pointer[sharedTemplates]
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
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Plane{cfg: cfg, log: cfg.Logger, flows: map[string]*flowRun{}, taps: map[string]*tap{},
		streams: map[store.StreamID]*stream{}, applied: map[string]string{}, owners: map[netip.Addr]owner{},
		totals: newTotals()}
	p.routes.set(nil)
	p.snap.Store(&snapshot{})
	p.shared.Store(&sharedTemplates{})
	if err := p.enrichInterfaces(); err != nil {
		return nil, err
	}
	if cfg.NetflowListen != "" || cfg.SFlowListen != "" {
		// Only the exporters of running flow logs get decoding state, so
		// that spoofed sources cannot take it from them.
		c, err := collect.New(collect.Config{Listen: cfg.NetflowListen, SFlowListen: cfg.SFlowListen,
			DataDir: cfg.DataDir, Session: cfg.Session, Claimed: p.routes.claim,
			Share: p.shareTemplates, Seed: p.sharedTemplates}, p.routes.deliver)
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

// Run applies the desired state until ctx ends: a new snapshot whenever the
// control plane's version moves, and again what failed every Retry. It
// ages the meters every Tick. It then stops everything, inputs first, so
// that what is in flight reaches the sinks.
func (p *Plane) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	p.sync(ctx)
	changed := p.watch(ctx, p.state.Version)
	for {
		select {
		case <-ctx.Done():
			p.shutdown()
			return
		case <-changed:
			p.sync(ctx)
		case now := <-t.C:
			p.age(now)
			if p.closeIdleStreams(ctx) {
				p.snap.Store(p.snapshot())
			}
			p.retry(ctx, now)
		}
	}
}

// watch signals on the returned channel when the desired state's version
// moves past after; signals not yet taken merge into one.
func (p *Plane) watch(ctx context.Context, after uint64) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		for {
			v, err := p.cfg.Control.Watch(ctx, after)
			if ctx.Err() != nil {
				return
			}
			if err != nil { // a remote control plane away: keep what runs, ask again
				p.log.Warn("watching the desired state", "err", err)
				sleep(ctx, p.cfg.Retry)
				continue
			}
			after = v
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch
}

// sync reads the desired state and applies it.
func (p *Plane) sync(ctx context.Context) {
	st, err := p.cfg.Control.Snapshot(ctx, p.cfg.Name)
	if p.stale = err != nil; p.stale {
		if ctx.Err() == nil {
			p.log.Error("reading the desired state", "err", err)
		}
		return
	}
	p.setState(st)
	if !p.resumed && !p.cfg.NoResume {
		p.resumeSpools(ctx)
		p.resumed = true
	}
	p.apply(ctx)
	p.adoptTemplates(st.Templates)
}

// apply makes what runs match p.state and reports it.
func (p *Plane) apply(ctx context.Context) {
	p.tried = time.Now()
	p.pollInterfaces()
	p.reconcile(ctx)
	p.closeIdleStreams(ctx)
	p.snap.Store(p.snapshot())
	p.report(ctx)
}

// retry applies the desired state again when something failed: a snapshot
// or a report the control plane refused, a flow log that could not run, a
// unit whose source failed. It reads nothing from the control plane unless
// the last snapshot failed.
func (p *Plane) retry(ctx context.Context, now time.Time) {
	if now.Sub(p.tried) < p.cfg.Retry {
		return
	}
	switch {
	case p.stale:
		p.sync(ctx)
	case p.failing():
		p.apply(ctx)
	case p.reported == nil || p.reported.version != p.state.Version:
		p.report(ctx)
	}
}

// failing says whether a flow log cannot run, or a unit's source failed.
func (p *Plane) failing() bool {
	for _, r := range p.applied {
		if r != "" {
			return true
		}
	}
	for _, f := range p.flows {
		for _, u := range f.units {
			if u.err() != nil {
				return true
			}
		}
	}
	return false
}

// report tells the control plane the state of the flow logs of the version
// applied that it may not know: all of them in a first report (or after
// one failed), else those whose reason changed or that changed since the
// last report's version.
func (p *Plane) report(ctx context.Context) {
	st := desired.Status{Plane: p.cfg.Name, Version: p.state.Version}
	all := make(map[string]string, len(p.state.FlowLogs))
	for _, f := range p.state.FlowLogs {
		all[f.ID] = p.applied[f.ID]
		if last := p.reported; last == nil || f.Revision > last.version || last.reasons[f.ID] != all[f.ID] {
			st.FlowLogs = append(st.FlowLogs, desired.FlowLogStatus{ID: f.ID, Reason: all[f.ID]})
		}
	}
	if p.reported != nil && p.reported.version == st.Version && len(st.FlowLogs) == 0 {
		return
	}
	st.Components = p.components()
	if err := p.cfg.Control.Report(ctx, st); err != nil {
		if ctx.Err() == nil {
			p.log.Error("reporting flow-log states", "err", err)
		}
		p.reported = nil
		return
	}
	p.reported = &reported{version: st.Version, reasons: all}
}

// reported is what the control plane last took from this data plane.
type reported struct {
	version uint64
	reasons map[string]string // by flow log
}

// age moves every meter's clock and emits NODATA records for observation
// points that saw no traffic in an aggregation interval.
func (p *Plane) age(now time.Time) {
	for _, f := range p.flows {
		f.age(now)
	}
}

// shutdown stops inputs before what they feed: the collector first (what it
// decoded is delivered when Close returns), then every flow log's sources
// and meters, whose flows are delivered to their outputs, then the log
// streams' pipelines, which write out what they hold or leave it spooled.
func (p *Plane) shutdown() {
	if p.collector != nil {
		p.collector.Close()
	}
	p.pollers.Stop()
	for id, f := range p.flows {
		p.stopFlow(id, f)
	}
	for _, t := range p.taps {
		p.closeTap(t)
	}
	for id, s := range p.streams {
		p.closeStream(id, s)
	}
	p.snap.Store(p.snapshot()) // the final counts
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
