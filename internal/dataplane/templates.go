package dataplane

import (
	"context"
	"net/netip"
	"slices"

	"flowlog/internal/collect"
	"flowlog/internal/desired"
	"flowlog/internal/netflow"
)

// sharedTemplates are the templates of the plane's exporters that the
// control plane gives, learned by this plane's collector or another's.
type sharedTemplates map[netip.Addr][]netflow.SavedTemplate

// shareTemplates is the collector's Share: it passes on what the collector
// learned through the control plane.
func (p *Plane) shareTemplates(ctx context.Context, ts []collect.Shared) error {
	out := make([]desired.ExporterTemplates, len(ts))
	for i, s := range ts {
		out[i] = desired.ExporterTemplates{Exporter: s.Exporter.String(), Templates: s.Templates}
	}
	return p.cfg.Control.ShareTemplates(ctx, p.cfg.Name, out)
}

// sharedTemplates is the collector's Seed: what a new exporter state starts with.
func (p *Plane) sharedTemplates(src netip.Addr) []netflow.SavedTemplate {
	return (*p.shared.Load())[src]
}

// adoptTemplates keeps the templates of the desired state, and gives the
// collector those that changed, for the data sets it holds.
func (p *Plane) adoptTemplates(ts []desired.ExporterTemplates) {
	old := *p.shared.Load()
	now := make(sharedTemplates, len(ts))
	for _, t := range ts {
		if a, err := netip.ParseAddr(t.Exporter); err == nil {
			now[a.Unmap()] = t.Templates
		}
	}
	p.shared.Store(&now)
	if p.collector == nil {
		return
	}
	for a, t := range now {
		if !slices.EqualFunc(old[a], t, netflow.SavedTemplate.Equal) {
			p.collector.Adopt(a, t)
		}
	}
}
