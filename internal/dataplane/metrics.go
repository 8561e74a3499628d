package dataplane

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"flowlog/internal/capture"
	"flowlog/internal/desired"
	"flowlog/internal/ingest"
	"flowlog/internal/meter"
	"flowlog/internal/store"
)

// snapshot is what runs, as the Run goroutine last left it, with copies of
// the totals' bases of that moment; metrics read it from other goroutines.
type snapshot struct {
	flows    []flowSnap
	taps     []*tap
	streams  []streamSnap
	captures map[string]capture.IfaceStats // of closed taps
}

type flowSnap struct {
	id     string
	tot    *flowTotals
	base   flowBase
	out    *outputs // nil while the flow log does not run
	meters []*meter.Meter
	files  []func() (done, total int64) // imports' progress
}

type streamSnap struct {
	id   store.StreamID
	pipe *ingest.Pipeline // nil while closed
	base ingestBase
}

func (p *Plane) snapshot() *snapshot {
	s := &snapshot{captures: maps.Clone(p.totals.captures)}
	for id, tot := range p.totals.flows {
		fs := flowSnap{id: id, tot: tot, base: tot.base}
		if f := p.flows[id]; f != nil {
			fs.out = f.out.Load()
			for _, u := range f.units {
				if u.meter != nil {
					fs.meters = append(fs.meters, u.meter)
				}
				if u.progress != nil {
					fs.files = append(fs.files, u.progress)
				}
			}
		}
		s.flows = append(s.flows, fs)
	}
	for _, t := range p.taps {
		s.taps = append(s.taps, t)
	}
	for id, base := range p.totals.streams {
		if p.streams[id] == nil {
			s.streams = append(s.streams, streamSnap{id: id, base: base})
		}
	}
	for id, st := range p.streams {
		s.streams = append(s.streams, streamSnap{id: id, pipe: st.pipe, base: p.totals.streams[id]})
	}
	slices.SortFunc(s.flows, func(a, b flowSnap) int { return strings.Compare(a.id, b.id) })
	return s
}

// meterCounts are what the flow log's meters counted, stopped ones
// included, and the flows they hold now.
func (f *flowSnap) meterCounts() (packets, evicted uint64, active int) {
	st := f.meterStats()
	return st.Packets, st.Evicted(), st.ActiveFlows
}

// meterStats are the counters of the flow log's meters, stopped ones
// included.
func (f *flowSnap) meterStats() meter.Stats {
	st := f.base.meter
	for _, m := range f.meters {
		st.Add(m.Stats())
	}
	return st
}

// ingestCounts are what the log stream's pipelines committed and failed,
// closed ones included, and what the open one holds.
func (s *streamSnap) ingestCounts() (committed, failures, queued uint64) {
	committed, failures = s.base.committed, s.base.failures
	if s.pipe != nil {
		st := s.pipe.Stats()
		committed, failures, queued = committed+st.Committed, failures+st.Failures, st.Queued
	}
	return committed, failures, queued
}

// components are the data plane's parts and their counters, for reports.
func (p *Plane) components() []desired.Component {
	s := p.snap.Load()
	var out []desired.Component
	for _, f := range s.flows {
		packets, evicted, active := f.meterCounts()
		out = append(out, desired.Component{Kind: "meter", Name: f.id, Counters: map[string]uint64{
			"packets": packets, "evictions": evicted, "active_flows": uint64(active)}})
	}
	for _, st := range s.streams {
		committed, failures, queued := st.ingestCounts()
		out = append(out, desired.Component{Kind: "ingest", Name: st.id.Stream, Counters: map[string]uint64{
			"committed": committed, "failures": failures, "queued": queued}})
	}
	for _, t := range s.taps {
		c := desired.Component{Kind: "capture", Name: t.iface}
		if err := t.failure(); err != nil {
			c.Error = err.Error()
		}
		if st, err := t.live.Stats(); err == nil && len(st) == 1 {
			c.Counters = map[string]uint64{"packets": st[0].Packets, "kernel_drops": st[0].Drops}
		}
		out = append(out, c)
	}
	if p.collector != nil {
		out = append(out, desired.Component{Kind: "collector", Name: "collector", Counters: map[string]uint64{
			"unattributed": p.routes.unrouted.Load(), "unclaimed": p.collector.Unclaimed(),
			"refused": p.collector.Refused()}})
	}
	return out
}

var (
	descRecords = prometheus.NewDesc("flowlog_flow_log_records_total",
		"Flow records a flow log handed to an output.", []string{"flow_log", "output"}, nil)
	descBytes = prometheus.NewDesc("flowlog_flow_log_bytes_total",
		"Traffic bytes accounted by the records a flow log handed to an output.", []string{"flow_log", "output"}, nil)
	descDropped = prometheus.NewDesc("flowlog_flow_log_dropped_records_total",
		"Records an output could not take (full log-stream queue, failed NetFlow sends, records the NetFlow version cannot carry).",
		[]string{"flow_log", "output"}, nil)
	descMeterPackets = prometheus.NewDesc("flowlog_meter_packets_total",
		"Packets fed to a flow log's meters.", []string{"flow_log"}, nil)
	descMeterFlows = prometheus.NewDesc("flowlog_meter_active_flows",
		"Flows in a flow log's meter caches.", []string{"flow_log"}, nil)
	descMeterEvicted = prometheus.NewDesc("flowlog_meter_evictions_total",
		"Flows ended early because a meter cache was full.", []string{"flow_log"}, nil)
	descKernelPackets = prometheus.NewDesc("flowlog_capture_packets_total",
		"Packets the kernel passed to a live capture.", []string{"interface"}, nil)
	descKernelDrops = prometheus.NewDesc("flowlog_capture_kernel_drops_total",
		"Packets the kernel dropped because a capture ring was full.", []string{"interface"}, nil)
	descQueue = prometheus.NewDesc("flowlog_store_queue_records",
		"Records accepted into a log stream's spool and not yet in the store.", []string{"log_stream"}, nil)
	descSpoolBytes = prometheus.NewDesc("flowlog_spool_bytes",
		"Bytes the spool holds on disk for all log streams.", nil, nil)
	descCommitted = prometheus.NewDesc("flowlog_store_committed_records_total",
		"Records durably written to a log stream.", []string{"log_stream"}, nil)
	descFailures = prometheus.NewDesc("flowlog_store_append_failures_total",
		"Failed (and retried) writes to a log stream.", []string{"log_stream"}, nil)
	descExpPackets = prometheus.NewDesc("flowlog_exporter_packets_total",
		"Datagrams received from an exporter.", []string{"exporter"}, nil)
	descExpRecords = prometheus.NewDesc("flowlog_exporter_records_total",
		"Flow records decoded from an exporter.", []string{"exporter"}, nil)
	descExpErrors = prometheus.NewDesc("flowlog_exporter_errors_total",
		"Datagrams from an exporter rejected wholly or partly.", []string{"exporter"}, nil)
	descExpLost = prometheus.NewDesc("flowlog_exporter_sequence_lost_total",
		"Flows (v5), packets (v9) or records (IPFIX) an exporter's sequence numbers say were lost.",
		[]string{"exporter"}, nil)
	descExpNoTemplate = prometheus.NewDesc("flowlog_exporter_dropped_sets_total",
		"Data sets from an exporter given up on for want of their template.", []string{"exporter"}, nil)
	descExpHeld = prometheus.NewDesc("flowlog_exporter_held_sets_total",
		"Data sets from an exporter that arrived before their template and were held for it.", []string{"exporter"}, nil)
	descExpRefusedTpl = prometheus.NewDesc("flowlog_exporter_refused_templates_total",
		"Templates from an exporter refused because they exceeded its template, field or byte limits.",
		[]string{"exporter"}, nil)
	descExpClamped = prometheus.NewDesc("flowlog_exporter_clamped_records_total",
		"Records from an exporter that ended too long ago or too far ahead, moved to their receive time.",
		[]string{"exporter"}, nil)
	descUnrouted = prometheus.NewDesc("flowlog_collector_unattributed_records_total",
		"Collected records from exporters that no gateway names.", nil, nil)
	descUnclaimed = prometheus.NewDesc("flowlog_collector_unclaimed_datagrams_total",
		"Datagrams from sources that no running exporter gateway claims, ignored.", nil, nil)
	descRefusedDgrams = prometheus.NewDesc("flowlog_collector_refused_datagrams_total",
		"Datagrams from claimed sources ignored because the collector's exporter table was full.", nil, nil)
	descSNMPInterfaces = prometheus.NewDesc("flowlog_snmp_interfaces",
		"Interfaces in an exporter's last good SNMP poll.", []string{"exporter"}, nil)
	descSNMPFailures = prometheus.NewDesc("flowlog_snmp_poll_failures",
		"SNMP polls of an exporter that failed in a row; above 0 it is left alone until a back-off ends.",
		[]string{"exporter"}, nil)
	descSNMPPolled = prometheus.NewDesc("flowlog_snmp_last_success_timestamp_seconds",
		"When an exporter last answered an SNMP poll (Unix seconds; 0: never).", []string{"exporter"}, nil)
	descEnrichLookups = prometheus.NewDesc("flowlog_enrich_lookups_total",
		"Public addresses of records looked up in the GeoIP/ASN databases.", nil, nil)
	descEnrichMisses = prometheus.NewDesc("flowlog_enrich_misses_total",
		"Addresses looked up that no GeoIP/ASN database knew.", nil, nil)
	descEnrichReloads = prometheus.NewDesc("flowlog_enrich_reloads_total",
		"GeoIP/ASN database files loaded again after they changed.", nil, nil)
	descEnrichReloadErrors = prometheus.NewDesc("flowlog_enrich_reload_errors_total",
		"Changed GeoIP/ASN database files that could not be read or loaded; the database loaded before stays.", nil, nil)
	descShareErrors = prometheus.NewDesc("flowlog_collector_template_share_failures_total",
		"Failed (and retried) shares of learned templates with the control plane.", nil, nil)
)

// Describe implements prometheus.Collector.
func (p *Plane) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descBytes, descDropped, descMeterPackets,
		descMeterFlows, descMeterEvicted, descKernelPackets, descKernelDrops, descQueue, descSpoolBytes, descCommitted,
		descFailures, descExpPackets, descExpRecords, descExpErrors, descExpLost, descExpNoTemplate, descExpRefusedTpl,
		descExpHeld, descExpClamped, descUnrouted, descUnclaimed, descRefusedDgrams, descShareErrors,
		descSNMPInterfaces, descSNMPFailures, descSNMPPolled,
		descEnrichLookups, descEnrichMisses, descEnrichReloads, descEnrichReloadErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *Plane) Collect(ch chan<- prometheus.Metric) {
	s := p.snap.Load()
	for _, f := range s.flows {
		collectFlow(ch, f)
	}
	for _, t := range s.taps {
		if st, err := t.live.Stats(); err == nil && len(st) == 1 {
			counter(ch, descKernelPackets, st[0].Packets, t.iface)
			counter(ch, descKernelDrops, st[0].Drops, t.iface)
		}
	}
	if p.cfg.Spool != nil {
		ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(p.cfg.Spool.Used()))
	}
	for _, st := range s.streams {
		committed, failures, queued := st.ingestCounts()
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(queued), st.id.Stream)
		counter(ch, descCommitted, committed, st.id.Stream)
		counter(ch, descFailures, failures, st.id.Stream)
	}
	if p.collector != nil {
		p.collectExporters(ch)
	}
	p.collectPollers(ch)
	if e := p.cfg.Enricher; e != nil {
		st := e.Stats()
		counter(ch, descEnrichLookups, st.Lookups)
		counter(ch, descEnrichMisses, st.Misses)
		counter(ch, descEnrichReloads, st.Reloads)
		counter(ch, descEnrichReloadErrors, st.ReloadErrors)
	}
}

// collectPollers reports the SNMP pollers of exporters.
func (p *Plane) collectPollers(ch chan<- prometheus.Metric) {
	for _, poller := range p.pollers.All() {
		a, st := poller.Target().Addr.String(), poller.Status()
		var polled float64
		if !st.PolledAt.IsZero() {
			polled = float64(st.PolledAt.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(descSNMPInterfaces, prometheus.GaugeValue, float64(st.Interfaces), a)
		ch <- prometheus.MustNewConstMetric(descSNMPFailures, prometheus.GaugeValue, float64(st.Failures), a)
		ch <- prometheus.MustNewConstMetric(descSNMPPolled, prometheus.GaugeValue, polled, a)
	}
}

// collectExporters reports the collector. Exporters get series of their own
// only while claimed, so that labels cannot grow with spoofed sources.
func (p *Plane) collectExporters(ch chan<- prometheus.Metric) {
	for _, c := range p.collector.Stats() {
		if _, ok := p.routes.claim(c.Exporter); !ok {
			continue
		}
		a := c.Exporter.String()
		counter(ch, descExpPackets, c.Packets, a)
		counter(ch, descExpRecords, c.Records, a)
		counter(ch, descExpErrors, c.DecodeErrors, a)
		counter(ch, descExpLost, c.SequenceLost, a)
		counter(ch, descExpNoTemplate, c.Dropped, a)
		counter(ch, descExpHeld, c.UnknownTemplates, a)
		counter(ch, descExpRefusedTpl, c.TemplatesRefused, a)
		counter(ch, descExpClamped, c.Clamped, a)
	}
	counter(ch, descUnrouted, p.routes.unrouted.Load())
	counter(ch, descUnclaimed, p.collector.Unclaimed())
	counter(ch, descRefusedDgrams, p.collector.Refused())
	counter(ch, descShareErrors, p.collector.ShareErrors())
}

func collectFlow(ch chan<- prometheus.Metric, f flowSnap) {
	o := f.out
	if o == nil {
		o = &outputs{}
	}
	if handed := f.tot.sls.records.Load(); o.sls != nil || handed > 0 {
		dropped := f.base.slsDropped
		if o.sls != nil {
			dropped += o.sls.Dropped()
		}
		outputSeries(ch, f.id, "sls", handed, f.tot.sls.bytes.Load(), dropped)
	}
	if handed := f.tot.nf.records.Load(); o.netflow != nil || handed > 0 {
		sent := f.base.nf.Records
		if o.netflow != nil {
			sent += o.netflow.Stats().Records
		}
		outputSeries(ch, f.id, "netflow", handed, f.tot.nf.bytes.Load(), handed-min(handed, sent))
	}
	if handed := f.tot.file.records.Load(); o.file != nil || handed > 0 {
		lost := f.base.fileLost
		if o.file != nil {
			lost += o.file.lost()
		}
		outputSeries(ch, f.id, "file", handed, f.tot.file.bytes.Load(), lost)
	}
	packets, evicted, active := f.meterCounts()
	counter(ch, descMeterPackets, packets, f.id)
	counter(ch, descMeterEvicted, evicted, f.id)
	ch <- prometheus.MustNewConstMetric(descMeterFlows, prometheus.GaugeValue, float64(active), f.id)
}

// outputSeries are a flow log's series of one output.
func outputSeries(ch chan<- prometheus.Metric, flowLog, output string, records, bytes, dropped uint64) {
	counter(ch, descRecords, records, flowLog, output)
	counter(ch, descBytes, bytes, flowLog, output)
	counter(ch, descDropped, dropped, flowLog, output)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

// MetricsHandler serves the plane's metrics, with the Go runtime's and the
// process's, in the Prometheus text format.
func (p *Plane) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(p, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
