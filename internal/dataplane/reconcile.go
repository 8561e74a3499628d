package dataplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"flowlog/internal/desired"
	"flowlog/internal/flow"
	"flowlog/internal/meter"
)

// reconcile makes what runs match the desired state, and records per flow
// log whether it runs or why not.
func (p *Plane) reconcile(ctx context.Context) {
	want := wanted(&p.state)
	for id, f := range p.flows {
		if d := want[id]; d == nil || len(d.points) == 0 || d.reason != "" {
			p.stopFlow(id, f) // which also drops its routes
		}
	}
	p.totals.keep(want)
	applied := make(map[string]string, len(want))
	for id, d := range want {
		applied[id] = p.applyFlow(ctx, d)
	}
	p.setRoutes()
	p.logChanges(p.applied, applied)
	p.applied = applied
}

// applyFlow starts, changes or keeps one flow log's units and outputs, and
// returns why it cannot run as configured ("" when it does).
func (p *Plane) applyFlow(ctx context.Context, d *want) string {
	if d.reason != "" || len(d.points) == 0 {
		return d.reason
	}
	f := p.flows[d.fl.ID]
	if f == nil {
		o, err := p.openOutputs(ctx, d.fl)
		if err != nil {
			return err.Error()
		}
		f = &flowRun{fl: d.fl, units: map[unitKey]*unit{}, tot: p.totals.of(d.fl.ID), enrich: p.cfg.Enricher,
			tap: p.cfg.Tap, noData: !p.cfg.NoNoData}
		f.out.Store(o)
		p.flows[d.fl.ID] = f
		p.log.Info("flow log started", "flow_log", d.fl.ID, "output", d.fl.OutputType)
	} else if err := p.change(ctx, f, d.fl); err != nil {
		p.stopFlow(d.fl.ID, f)
		return err.Error()
	}
	return p.applyUnits(f, d.points)
}

// change applies new settings to a running flow log: new outputs are
// swapped in, new timeouts re-time the meters, and a new sampling rate
// restarts them.
func (p *Plane) change(ctx context.Context, f *flowRun, fl desired.FlowLog) error {
	old := f.fl
	f.fl = fl
	if outputsOf(old) != outputsOf(fl) {
		o, err := p.openOutputs(ctx, fl)
		if err != nil {
			return err
		}
		p.closeOutputs(f, f.swap(o))
	}
	if old.Sampling != fl.Sampling {
		for k, u := range f.units {
			p.stopUnit(u)
			delete(f.units, k)
		}
		return nil
	}
	if p.meterConfig(old) != p.meterConfig(fl) {
		c := p.meterConfig(fl)
		for _, u := range f.units {
			if u.meter != nil {
				if err := u.meter.SetTimeouts(c.ActiveTimeout, c.InactiveTimeout); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// outputsOf is what a flow log's outputs depend on (not its sampling:
// records carry their own interval).
func outputsOf(fl desired.FlowLog) [6]any {
	var file desired.FileOutput
	if fl.File != nil {
		file = *fl.File
	}
	return [6]any{fl.OutputType, fl.LogStreamID, fl.NetflowServerIP, fl.NetflowServerPort,
		fl.NetflowVersion, file}
}

// applyUnits starts missing units, restarts changed or failed ones and
// stops those no longer wanted. It returns the first reason a unit cannot
// run.
func (p *Plane) applyUnits(f *flowRun, points map[unitKey]point) string {
	for k, u := range f.units {
		pt, ok := points[k]
		if !ok || !pt.same(u.pt) || (u.err() != nil && u.restartable()) {
			p.stopUnit(u)
			delete(f.units, k)
		}
	}
	var reasons []string
	for k, pt := range points {
		u := f.units[k]
		if u == nil {
			var err error
			if u, err = p.startUnit(f, k, pt); err != nil {
				reasons = append(reasons, err.Error())
				continue
			}
			f.units[k] = u
		}
		if err := u.err(); err != nil {
			reasons = append(reasons, err.Error())
		}
	}
	return firstSorted(reasons)
}

// startUnit starts observing one point for a flow log.
func (p *Plane) startUnit(f *flowRun, k unitKey, pt point) (*unit, error) {
	u := &unit{key: k, pt: pt, run: f, winStart: time.Now(), stop: func() {}, err: func() error { return nil }}
	if pt.kind == desired.KindExporter {
		if p.collector == nil {
			return nil, errors.New("the collector is off: start flowlog serve with --netflow-listen or --sflow-listen")
		}
		return u, nil
	}
	m, err := meter.New(p.meterConfig(f.fl), func(recs []flow.Record) {
		stamp(recs, u)
		f.deliver(recs)
	})
	if err != nil {
		return nil, err
	}
	u.meter = m
	switch pt.kind {
	case desired.KindCapture:
		if pt.iface == "" {
			return nil, fmt.Errorf("attachment %s names no interface", pt.att)
		}
		err = p.attachTap(u, pt.iface)
	case desired.KindPcap:
		switch err = p.mayReplay(pt); {
		case err != nil:
		case p.cfg.Imported != nil:
			err = p.attachImport(u, pt.pcapPath)
		default:
			err = p.attachReplay(u, pt.pcapPath, pt.pcapPace)
		}
	default:
		err = fmt.Errorf("gateway %s has unknown kind %q", pt.gateway, pt.kind)
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// meterConfig is the meter a flow log runs: Config.Meter if set.
func (p *Plane) meterConfig(fl desired.FlowLog) meter.Config {
	if p.cfg.Meter != nil {
		return *p.cfg.Meter
	}
	return meterConfig(fl)
}

// restartable says whether a failed unit should be started again: a live
// capture should (its interface may come back); a replay that failed would
// only fail again.
func (u *unit) restartable() bool { return u.pt.kind == desired.KindCapture }

// stopUnit detaches a unit from its source, then delivers the flows its
// meter still holds; what the meter counted is kept in the flow log's
// totals.
func (p *Plane) stopUnit(u *unit) {
	u.stop()
	if u.meter != nil {
		u.meter.Flush()
		u.run.tot.retireMeter(u.meter.Stats())
	}
}

// stopFlow stops a flow log: its units deliver what is in flight, then its
// outputs close.
func (p *Plane) stopFlow(id string, f *flowRun) {
	for _, u := range f.units {
		p.stopUnit(u)
	}
	delete(p.flows, id)
	p.log.Info("flow log stopped", "flow_log", id)
	p.setRoutes()
	p.closeOutputs(f, f.swap(&outputs{}))
}

// logChanges logs the flow logs whose reason for not running appeared,
// changed or went away, and nothing else, so that the log stays quiet.
func (p *Plane) logChanges(before, after map[string]string) {
	for id, reason := range after {
		switch old := before[id]; {
		case old == reason:
		case reason != "":
			p.log.Warn("flow log cannot run", "flow_log", id, "reason", reason)
		default:
			p.log.Info("flow log recovered", "flow_log", id)
		}
	}
}

// firstSorted returns the first of reasons in sorted order, so that a flow
// log's reason does not flip between runs; "" when there are none.
func firstSorted(reasons []string) string {
	if len(reasons) == 0 {
		return ""
	}
	return slices.Min(reasons)
}
