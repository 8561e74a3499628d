package dataplane

import (
	"sync/atomic"

	"flowlog/internal/capture"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/ingest"
	"flowlog/internal/meter"
	"flowlog/internal/store"
)

// totals are the counters of flow logs and log streams that outlive the
// meters, exporters and pipelines doing the counting: what a stopped one
// counted is kept as a base, so that a counter never goes down while its
// flow log (or log stream) exists, however often its parts restart. The
// bases change on the Run goroutine only; metrics read copies of them.
type totals struct {
	flows    map[string]*flowTotals
	streams  map[store.StreamID]ingestBase
	captures map[string]capture.IfaceStats // of closed taps, by interface
}

func newTotals() totals {
	return totals{flows: map[string]*flowTotals{}, streams: map[store.StreamID]ingestBase{},
		captures: map[string]capture.IfaceStats{}}
}

// flowTotals count for one flow log.
type flowTotals struct {
	sls, nf, file outputCounters // handed to each output, by every flowRun of the flow log
	base          flowBase
}

// flowBase is what the flow log's stopped meters and closed outputs counted.
type flowBase struct {
	meter      meter.Stats  // meters
	slsDropped uint64       // ingest sources
	nf         export.Stats // NetFlow exporters
	fileLost   uint64       // file outputs
}

type ingestBase struct{ committed, failures uint64 }

// outputCounters count what a flow log handed to one output.
type outputCounters struct {
	records, bytes atomic.Uint64
}

func (c *outputCounters) add(recs []flow.Record) {
	var b uint64
	for i := range recs {
		b += recs[i].Bytes
	}
	c.records.Add(uint64(len(recs)))
	c.bytes.Add(b)
}

// of returns the totals of a flow log, made on first use.
func (t *totals) of(id string) *flowTotals {
	if t.flows[id] == nil {
		t.flows[id] = &flowTotals{}
	}
	return t.flows[id]
}

// keep forgets the totals of flow logs no longer desired (deleted).
func (t *totals) keep(want map[string]*want) {
	for id := range t.flows {
		if want[id] == nil {
			delete(t.flows, id)
		}
	}
}

func (f *flowTotals) retireMeter(st meter.Stats) {
	st.ActiveFlows = 0 // a stopped meter holds none
	f.base.meter.Add(st)
}

func (f *flowTotals) retireOutputs(o *outputs) {
	if o.sls != nil {
		f.base.slsDropped += o.sls.Dropped()
	}
	if o.netflow != nil {
		f.base.nf = addExport(f.base.nf, o.netflow.Stats())
	}
	if o.file != nil {
		f.base.fileLost += o.file.lost()
	}
}

func addExport(a, b export.Stats) export.Stats {
	return export.Stats{Packets: a.Packets + b.Packets, Bytes: a.Bytes + b.Bytes, Records: a.Records + b.Records,
		Skipped: a.Skipped + b.Skipped, Errors: a.Errors + b.Errors}
}

func (t *totals) retireStream(id store.StreamID, st ingest.Stats) {
	b := t.streams[id]
	t.streams[id] = ingestBase{committed: b.committed + st.Committed, failures: b.failures + st.Failures}
}

func (t *totals) retireTap(st []capture.IfaceStats) {
	for _, s := range st {
		t.captures[s.Interface] = addCapture(t.captures[s.Interface], s)
	}
}

func addCapture(a, b capture.IfaceStats) capture.IfaceStats {
	return capture.IfaceStats{Interface: b.Interface, Packets: a.Packets + b.Packets, Drops: a.Drops + b.Drops,
		QueueFreezes: a.QueueFreezes + b.QueueFreezes}
}

func (t *totals) dropStream(id store.StreamID) { delete(t.streams, id) }
