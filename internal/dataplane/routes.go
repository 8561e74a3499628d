package dataplane

import (
	"net/netip"
	"sync/atomic"
	"time"

	"flowlog/internal/collect"
	"flowlog/internal/flow"
)

// routeTable sends collected records to the exporter units of the gateways
// whose exporter address they came from. The collector's workers read it
// without a lock; the plane replaces it whole. Its addresses are the ones
// the collector keeps state for (claims).
type routeTable struct {
	v        atomic.Pointer[routes]
	unrouted atomic.Uint64 // records from exporters no gateway names
	// inFlight, if set (by tests), runs between reading the routes and
	// delivering along them.
	inFlight atomic.Pointer[func()]
}

type routes struct {
	units  map[netip.Addr][]*unit
	claims map[netip.Addr]collect.Claim
	owners map[netip.Addr]owner // who claims each address
}

// owner is the exporter gateway that claims an address, and its account.
type owner struct{ account, gateway string }

func (t *routeTable) set(r *routes) {
	if r == nil {
		r = &routes{}
	}
	t.v.Store(r)
}

// claim tells the collector whether a running exporter unit observes src,
// how old its records may be (the longest retention of the log streams
// they go to), and its gateway's sampling override.
func (t *routeTable) claim(src netip.Addr) (collect.Claim, bool) {
	c, ok := t.v.Load().claims[src.Unmap()]
	return c, ok
}

// deliver is the collector's handler. It may run on several goroutines.
func (t *routeTable) deliver(recs []flow.Record) {
	table := t.v.Load().units
	if hook := t.inFlight.Load(); hook != nil {
		(*hook)()
	}
	for start := 0; start < len(recs); {
		addr := recs[start].ExporterAddr
		end := start + 1
		for end < len(recs) && recs[end].ExporterAddr == addr {
			end++
		}
		units := table[addr.Unmap()]
		if len(units) == 0 {
			t.unrouted.Add(uint64(end - start))
		}
		for _, u := range units {
			u.route(recs[start:end])
		}
		start = end
	}
}

// route delivers the records an exporter unit observes: those through its
// attachment's ifIndex, or all of them for a whole gateway, attributed to
// the attachment of their input (else output) ifIndex.
func (u *unit) route(recs []flow.Record) {
	out := make([]flow.Record, 0, len(recs))
	for _, r := range recs {
		r.Version = flow.RecordVersion
		if r.LogStatus == "" {
			r.LogStatus = flow.StatusOK
		}
		if pt := u.pt; pt.att != "" {
			if r.InputIfIndex != pt.ifIndex && r.OutputIfIndex != pt.ifIndex {
				continue
			}
			r.InterfaceID = pt.att
		} else {
			r.InterfaceID = u.pt.attachmentOf(r.InputIfIndex)
			if r.InterfaceID == "" {
				r.InterfaceID = u.pt.attachmentOf(r.OutputIfIndex)
			}
		}
		out = append(out, r)
	}
	u.seen.Add(uint64(len(out)))
	stamp(out, u)
	u.run.deliver(out)
}

func (pt *point) attachmentOf(ifIndex uint32) string {
	if ifIndex == 0 {
		return ""
	}
	return pt.byIfIndex[ifIndex]
}

// exporterRoutes builds the route table of the running exporter units, and
// their claims. Records may be as old as the longest retention of the log
// streams an exporter's records go to (the collector's default when they go
// to none).
func (p *Plane) exporterRoutes() *routes {
	r := &routes{units: map[netip.Addr][]*unit{}, claims: map[netip.Addr]collect.Claim{},
		owners: map[netip.Addr]owner{}}
	for _, f := range p.flows {
		var age time.Duration
		if ls, ok := p.logStream(f.out.Load().stream); ok {
			age = time.Duration(ls.RetentionDays) * 24 * time.Hour // as the control plane has it now
		}
		for _, u := range f.units {
			if u.meter != nil {
				continue
			}
			addr, err := netip.ParseAddr(u.pt.exporter)
			if err != nil {
				continue
			}
			addr = addr.Unmap()
			r.units[addr] = append(r.units[addr], u)
			r.claims[addr] = collect.Claim{MaxAge: max(r.claims[addr].MaxAge, age), Sampling: u.pt.sampling}
			r.owners[addr] = owner{account: u.key.account, gateway: u.pt.gateway}
		}
	}
	return r
}

// setRoutes applies the running exporter units' routes. An address that
// another gateway claimed before loses its collector state, so that its new
// owner is never shown counters (or decodes with templates) of the old one.
func (p *Plane) setRoutes() {
	r := p.exporterRoutes()
	for addr, o := range r.owners {
		if prev, ok := p.owners[addr]; ok && prev != o && p.collector != nil {
			p.collector.Forget(addr)
		}
		p.owners[addr] = o
	}
	p.routes.set(r)
}

// ExporterStats returns what the collector knows of the router at addr, and
// whether a running flow log of account's claims it. A router claimed by
// another account's gateway, or by none, is reported as unclaimed and
// without counters: the collector ignores its datagrams.
func (p *Plane) ExporterStats(account string, addr netip.Addr) (collect.Counters, bool) {
	addr = addr.Unmap()
	if o, ok := p.routes.v.Load().owners[addr]; !ok || o.account != account {
		return collect.Counters{Exporter: addr}, false
	}
	if p.collector == nil {
		return collect.Counters{Exporter: addr}, true
	}
	c, _ := p.collector.Exporter(addr)
	c.Exporter = addr
	return c, true
}
