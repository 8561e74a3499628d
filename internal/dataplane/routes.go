package dataplane

import (
	"net/netip"
	"sync/atomic"

	"flowlog/internal/flow"
)

// routeTable sends collected records to the exporter units of the gateways
// whose exporter address they came from. The collector's workers read it
// without a lock; the plane replaces it whole.
type routeTable struct {
	v        atomic.Pointer[map[netip.Addr][]*unit]
	unrouted atomic.Uint64 // records from exporters no gateway names
}

func (t *routeTable) set(m map[netip.Addr][]*unit) {
	if m == nil {
		m = map[netip.Addr][]*unit{}
	}
	t.v.Store(&m)
}

// deliver is the collector's handler. It may run on several goroutines.
func (t *routeTable) deliver(recs []flow.Record) {
	table := *t.v.Load()
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
		if a := u.pt.att; a.ID != "" {
			if r.InputIfIndex != a.IfIndex && r.OutputIfIndex != a.IfIndex {
				continue
			}
			r.InterfaceID = a.ID
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

// exporterRoutes builds the route table of the running exporter units.
func (p *Plane) exporterRoutes() map[netip.Addr][]*unit {
	m := map[netip.Addr][]*unit{}
	for _, f := range p.flows {
		for _, u := range f.units {
			if u.meter == nil {
				addr, err := netip.ParseAddr(u.pt.gw.Exporter)
				if err == nil {
					m[addr.Unmap()] = append(m[addr.Unmap()], u)
				}
			}
		}
	}
	return m
}
