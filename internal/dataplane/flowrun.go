package dataplane

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"flowlog/internal/desired"
	"flowlog/internal/enrich"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/ingest"
	"flowlog/internal/meter"
	"flowlog/internal/store"
)

// flowRun is one running flow log: its observation points (units) and where
// their records go.
type flowRun struct {
	fl    desired.FlowLog // as applied
	units map[unitKey]*unit
	tot   *flowTotals
	// enrich fills the fields the store has and flows lack (nil: none).
	enrich *enrich.Enricher
	tap    func([]flow.Record) // Config.Tap
	noData bool                // NODATA records for idle observation points
	out    atomic.Pointer[outputs]
	// outMu keeps outputs from closing while records are written to them:
	// deliver holds it shared, swap exclusively.
	outMu sync.RWMutex
}

// outputs are a flow log's sinks; a nil one is not used.
type outputs struct {
	stream  store.StreamID
	sls     *ingest.Source
	netflow *export.Exporter
	file    *fileSink
}

// deliver hands records to every output of the flow log. It never blocks on
// a slow sink: the log stream's queue counts what it cannot hold as dropped.
// It may be called from several goroutines at once.
func (f *flowRun) deliver(recs []flow.Record) {
	if len(recs) == 0 {
		return
	}
	if f.tap != nil {
		f.tap(recs)
	}
	f.outMu.RLock()
	defer f.outMu.RUnlock()
	o := f.out.Load()
	if o.sls != nil {
		f.enrich.Enrich(recs)
		f.tot.sls.add(recs)
		o.sls.Write(context.Background(), recs) // a live source never waits
	}
	if o.file != nil {
		f.tot.file.add(recs)
		o.file.write(recs)
	}
	if o.netflow != nil {
		if recs = flowsOnly(recs); len(recs) > 0 {
			f.tot.nf.add(recs)
			o.netflow.Export(recs) // failures are counted by the exporter
		}
	}
}

// swap installs new outputs and returns the old ones, which no record
// reaches any more: they may be closed.
func (f *flowRun) swap(o *outputs) *outputs {
	f.outMu.Lock()
	defer f.outMu.Unlock()
	return f.out.Swap(o)
}

// flowsOnly drops NODATA records, which NetFlow cannot carry. It returns
// recs itself when there are none.
func flowsOnly(recs []flow.Record) []flow.Record {
	n := 0
	for i := range recs {
		if recs[i].LogStatus == flow.StatusNoData {
			n++
		}
	}
	if n == 0 {
		return recs
	}
	out := make([]flow.Record, 0, len(recs)-n)
	for i := range recs {
		if recs[i].LogStatus != flow.StatusNoData {
			out = append(out, recs[i])
		}
	}
	return out
}

// age moves the clocks of the flow log's meters to now and reports idle
// observation points.
func (f *flowRun) age(now time.Time) {
	interval := time.Duration(f.fl.AggregationInterval) * time.Second
	for _, u := range f.units {
		if u.ownClock {
			continue
		}
		if u.meter != nil {
			u.meter.Advance(now)
		}
		if !f.noData {
			continue
		}
		if rec, ok := u.window(now, interval); ok {
			f.deliver([]flow.Record{rec})
		}
	}
}

// unit meters (or, for exporters, routes) one observation point.
type unit struct {
	key   unitKey
	pt    point
	run   *flowRun
	meter *meter.Meter // nil for exporter units
	seen  atomic.Uint64
	stop  func() // detaches the unit from its source
	err   func() error
	// ownClock: the packets' times age the meter, not the plane's clock
	// (an import).
	ownClock bool
	progress func() (done, total int64) // of an import's file; nil for others

	winStart time.Time
	winSeen  uint64
}

// traffic is how much the unit has observed so far: packets for a meter,
// records for an exporter.
func (u *unit) traffic() uint64 {
	if u.meter != nil {
		return u.meter.Stats().Packets
	}
	return u.seen.Load()
}

// window closes the unit's aggregation intervals that have ended by now and,
// if the last of them saw no traffic, returns its NODATA record (as AWS flow
// logs report an interface with no traffic).
func (u *unit) window(now time.Time, interval time.Duration) (flow.Record, bool) {
	if now.Sub(u.winStart) < interval {
		return flow.Record{}, false
	}
	start := u.winStart
	for now.Sub(u.winStart) >= interval {
		start = u.winStart
		u.winStart = u.winStart.Add(interval)
	}
	seen := u.traffic()
	idle := seen == u.winSeen
	u.winSeen = seen
	if !idle {
		return flow.Record{}, false
	}
	rec := flow.Record{Version: flow.RecordVersion, LogStatus: flow.StatusNoData,
		Start: start.UnixMilli(), End: start.Add(interval).UnixMilli()}
	recs := []flow.Record{rec}
	stamp(recs, u)
	return recs[0], true
}

// meterConfig is the meter a flow log asks for. The inactive timeout is
// capped by the aggregation interval, so that a flow's record is delivered
// no later than one aggregation interval after the flow ends.
func meterConfig(fl desired.FlowLog) meter.Config {
	c := meter.DefaultConfig()
	c.ActiveTimeout = time.Duration(fl.ActiveAging) * time.Second
	c.InactiveTimeout = time.Duration(min(fl.InactiveAging, fl.AggregationInterval-2)) * time.Second
	c.Sampling = uint32(max(fl.Sampling, 1))
	return c
}
