package dataplane

import (
	"maps"
	"slices"

	"flowlog/internal/capture"
	"flowlog/internal/export"
	"flowlog/internal/meter"
	"flowlog/internal/store"
)

// FlowStats are what a flow log's parts counted, stopped ones included:
// after Run returns, the final counts.
type FlowStats struct {
	Meter        meter.Stats
	Netflow      export.Stats
	StoreDropped uint64 // records its log stream's spool refused
	// Read and Size are the bytes read so far of the pcap files it is
	// importing (Config.Imported), and their sizes.
	Read, Size int64
}

// FlowStats returns the counters of the flow log id.
func (p *Plane) FlowStats(id string) FlowStats {
	s := p.snap.Load()
	i := slices.IndexFunc(s.flows, func(f flowSnap) bool { return f.id == id })
	if i < 0 {
		return FlowStats{}
	}
	f := &s.flows[i]
	st := FlowStats{Meter: f.meterStats(), Netflow: f.base.nf, StoreDropped: f.base.slsDropped}
	if o := f.out; o != nil && o.netflow != nil {
		st.Netflow = addExport(st.Netflow, o.netflow.Stats())
	}
	if o := f.out; o != nil && o.sls != nil {
		st.StoreDropped += o.sls.Dropped()
	}
	for _, progress := range f.files {
		done, total := progress()
		st.Read, st.Size = st.Read+done, st.Size+total
	}
	return st
}

// Stored returns how many records the log stream's pipelines committed.
func (p *Plane) Stored(id store.StreamID) uint64 {
	for _, s := range p.snap.Load().streams {
		if s.id == id {
			committed, _, _ := s.ingestCounts()
			return committed
		}
	}
	return 0
}

// CaptureStats returns the kernel's counters of every interface captured
// on, closed captures included, sorted by interface.
func (p *Plane) CaptureStats() []capture.IfaceStats {
	s := p.snap.Load()
	all := make(map[string]capture.IfaceStats, len(s.captures)+len(s.taps))
	for name, st := range s.captures {
		all[name] = st
	}
	for _, t := range s.taps {
		if t.failure() != nil {
			continue // closed: its counts are in s.captures, or lost with it
		}
		if st, err := t.live.Stats(); err == nil {
			for _, c := range st {
				all[c.Interface] = addCapture(all[c.Interface], c)
			}
		}
	}
	out := make([]capture.IfaceStats, 0, len(all))
	for _, name := range slices.Sorted(maps.Keys(all)) {
		out = append(out, all[name])
	}
	return out
}
