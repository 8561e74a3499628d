package durability

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"flowlog/internal/client"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// rig is a `flowlog serve` whose collector takes IPFIX from an exporter
// gateway for 127.0.0.1, with one flow log writing to one log stream, and
// an exporter sending it records numbered 1, 2, … by their byte counts.
type rig struct {
	t         *testing.T
	srv       *testutil.Server
	collector string // its NetFlow/IPFIX address
	api       *client.Client
	stream    string
	flowLog   string
	exp       *export.Exporter
	sent      uint64 // the last number sent
	// Of the records sent, how many the running process did not decode
	// (sent to an earlier one, or before its collector routed them), and
	// how many the processes that have ended accepted: the server's
	// counters start from zero at each start.
	undecoded, acceptedBefore uint64
}

// newRig starts the server on dataDir (a temp dir if empty) with env, and
// wires the flow log.
func newRig(t *testing.T, dataDir string, env ...string) *rig {
	t.Helper()
	collector := fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	srv := testutil.NewServer(t, append(env, "FLOWLOG_NETFLOW_LISTEN="+collector)...)
	if dataDir != "" {
		srv.DataDir = dataDir
	}
	srv.UseTestKey()
	srv.Start()
	r := &rig{t: t, srv: srv, collector: collector, api: client.New(srv.URL, srv.KeyID, srv.Secret)}
	gw := r.create("/v1/gateways", map[string]any{"name": "router", "kind": "exporter", "exporter_addr": "127.0.0.1"})
	lg := r.create("/v1/log-groups", map[string]any{"name": "routers"})
	r.stream = r.create("/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "routers"})
	r.flowLog = r.create("/v1/flow-logs", map[string]any{"name": "routers", "output_type": "sls",
		"log_stream_id": r.stream, "targets": []map[string]any{{"gateway_id": gw}}})
	waitFor(t, "the flow log to become available", 30*time.Second, func() bool {
		var out map[string]any
		return r.api.JSON(context.Background(), "GET", "/v1/flow-logs/"+r.flowLog, nil, nil, &out) == nil &&
			out["state"] == "available"
	})
	r.export()
	return r
}

// export makes a new exporter, which sends its templates first, and
// waits until the collector routes its records.
func (r *rig) export() {
	r.t.Helper()
	exp, err := export.New(export.Config{Collector: r.collector, Version: netflow.IPFIX, Domain: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { exp.Close() })
	r.exp = exp
	r.warmUp()
}

// restart stops the server, with SIGKILL if kill is set, right after
// reading its intake, which it returns, and starts it again on the same
// data dir. The collector of the new process has not seen the templates:
// a new exporter sends them.
func (r *rig) restart(kill bool) intake {
	r.t.Helper()
	in := r.intake()
	if kill {
		r.srv.Kill()
	} else {
		r.srv.Stop()
	}
	r.acceptedBefore += in.accepted()
	r.undecoded = r.sent
	r.srv.Start()
	r.exp.Close()
	r.export()
	return in
}

func (r *rig) create(path string, body map[string]any) string {
	r.t.Helper()
	var out map[string]any
	if err := r.api.JSON(context.Background(), "POST", path, nil, body, &out); err != nil {
		r.t.Fatalf("POST %s: %v", path, err)
	}
	return out["id"].(string)
}

// warmUp sends one record at a time until the flow log hands one to its
// log stream: a datagram may come before the collector routes the gateway,
// and is then ignored. From here on every record sent is the flow log's.
func (r *rig) warmUp() {
	r.t.Helper()
	var in intake
	waitFor(r.t, "the collector to route the gateway's records", 20*time.Second, func() bool {
		r.send(1)
		time.Sleep(100 * time.Millisecond)
		in = r.intake()
		return in.handed > 0
	})
	r.undecoded = r.sent - uint64(in.decoded)
}

// send exports the next n numbered records, ending a second ago, in
// bursts the collector's socket takes without loss.
func (r *rig) send(n int) {
	r.t.Helper()
	const burst = 500
	recs := make([]flow.Record, 0, burst)
	for n > 0 {
		now := time.Now().UnixMilli()
		recs = recs[:0]
		for range min(n, burst) {
			r.sent++
			recs = append(recs, flow.Record{SrcAddr: netip.AddrFrom4([4]byte{10, 1, byte(r.sent >> 8), byte(r.sent)}),
				DstAddr: netip.MustParseAddr("192.0.2.1"), SrcPort: uint16(1024 + r.sent%60000), DstPort: 443,
				Protocol: 6, Packets: 1, Bytes: r.sent, Start: now - 2000, End: now - 1000})
		}
		if err := r.exp.Export(recs); err != nil {
			r.t.Fatalf("export: %v", err)
		}
		n -= len(recs)
		time.Sleep(time.Millisecond)
	}
}

// intake is what the server says of the flow log's records.
type intake struct {
	decoded float64 // records the collector decoded from 127.0.0.1
	handed  float64 // records the flow log handed to its log stream
	dropped float64 // of those, refused by the spool
	queued  float64 // in the spool, not yet stored
	failed  float64 // failed (retried) commits
}

func (in intake) accepted() uint64 { return uint64(in.handed - in.dropped) }

// accepted is what all the processes so far accepted.
func (r *rig) accepted() uint64 { return r.acceptedBefore + r.intake().accepted() }

func (r *rig) intake() intake {
	r.t.Helper()
	m := r.metrics()
	fl := fmt.Sprintf(`{flow_log=%q,output="sls"}`, r.flowLog)
	ls := fmt.Sprintf(`{log_stream=%q}`, r.stream)
	return intake{decoded: m[`flowlog_exporter_records_total{exporter="127.0.0.1"}`],
		handed: m["flowlog_flow_log_records_total"+fl], dropped: m["flowlog_flow_log_dropped_records_total"+fl],
		queued: m["flowlog_store_queue_records"+ls], failed: m["flowlog_store_append_failures_total"+ls]}
}

// metrics returns /metrics as series → value.
func (r *rig) metrics() map[string]float64 { return r.srv.Metrics() }

// waitSent waits until the collector has decoded every record sent.
func (r *rig) waitSent() {
	r.t.Helper()
	var in intake
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if in = r.intake(); uint64(in.decoded) == r.sent-r.undecoded {
			return
		}
	}
	_, logs := r.srv.Logs()
	r.t.Fatalf("the collector decoded %v of the %d records sent (%v lost by their sequence numbers)\n%s", in.decoded,
		r.sent-r.undecoded, r.metrics()[`flowlog_exporter_sequence_lost_total{exporter="127.0.0.1"}`], logs)
}

// stored is what the log stream holds: raw counts the records, distinct
// their numbers, sum adds the numbers up, rollup counts them from the
// per-minute rollup.
type stored struct {
	raw, distinct, sum, rollup uint64
}

func (s stored) String() string {
	return fmt.Sprintf("%d records (%d distinct numbers, sum %d; rollup %d)", s.raw, s.distinct, s.sum, s.rollup)
}

// consistent reports what is wrong with s: duplicates, or rollups that
// disagree with the records.
func (s stored) consistent() error {
	var errs []error
	if s.distinct != s.raw {
		errs = append(errs, fmt.Errorf("%d records but %d distinct numbers: stored twice", s.raw, s.distinct))
	}
	if s.rollup != s.raw {
		errs = append(errs, fmt.Errorf("the rollup counts %d records, the records are %d", s.rollup, s.raw))
	}
	return errors.Join(errs...)
}

// stored reads the records and the rollup, until no commit came between
// the two queries.
func (r *rig) stored() stored {
	r.t.Helper()
	count := query.Aggregate{Func: "count"}
	for range 50 {
		raw := r.query("srcport >= 0", count, query.Aggregate{Func: "count_distinct", Field: "bytes"},
			query.Aggregate{Func: "sum", Field: "bytes"})
		rollup := r.query("", count)
		if again := r.query("srcport >= 0", count); again[0] == raw[0] {
			return stored{raw: raw[0], distinct: raw[1], sum: raw[2], rollup: rollup[0]}
		}
	}
	r.t.Fatal("the store never stood still for two queries")
	return stored{}
}

// storedUpTo is what the store holds of the records numbered up to last,
// which may have been committed before a restart: the records only, with
// no rollup count.
func (r *rig) storedUpTo(last uint64) stored {
	r.t.Helper()
	raw := r.query(fmt.Sprintf("bytes <= %d", last), query.Aggregate{Func: "count"},
		query.Aggregate{Func: "count_distinct", Field: "bytes"}, query.Aggregate{Func: "sum", Field: "bytes"})
	return stored{raw: raw[0], distinct: raw[1], sum: raw[2]}
}

// wantKept fails unless the store holds what it held before a restart
// (was), when last was the last number sent.
func (r *rig) wantKept(was stored, last uint64, when string) {
	r.t.Helper()
	was.rollup = 0
	if got := r.storedUpTo(last); got != was {
		r.t.Errorf("%s the store holds %d records up to number %d (%d distinct, sum %d); before, %d (%d distinct, sum %d)",
			when, got.raw, last, got.distinct, got.sum, was.raw, was.distinct, was.sum)
	}
}

// storedRange counts the records numbered lo to hi.
func (r *rig) storedRange(lo, hi uint64) uint64 {
	r.t.Helper()
	return r.query(fmt.Sprintf("bytes >= %d and bytes <= %d", lo, hi), query.Aggregate{Func: "count"})[0]
}

// query runs one aggregate query over the last and the next hour.
func (r *rig) query(where string, aggs ...query.Aggregate) []uint64 {
	r.t.Helper()
	q := query.Request{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour), Where: where, Aggregates: aggs}
	var resp query.Response
	if err := r.api.JSON(context.Background(), "POST", "/v1/log-streams/"+r.stream+"/query", nil, q, &resp); err != nil {
		r.t.Fatalf("query %q: %v", where, err)
	}
	if len(resp.Rows) != 1 {
		r.t.Fatalf("query %q: %d rows", where, len(resp.Rows))
	}
	out := make([]uint64, len(aggs))
	for i, v := range resp.Rows[0] {
		out[i] = v.(uint64)
	}
	return out
}

// waitStored waits until the spool is empty and the store holds every
// record accepted, and returns what it holds.
func (r *rig) waitStored(within time.Duration) stored {
	r.t.Helper()
	var in intake
	var s stored
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if in = r.intake(); in.queued == 0 {
			if s = r.stored(); s.raw == r.accepted() {
				return s
			}
		}
	}
	r.t.Fatalf("the store did not catch up: %+v, %s", in, s)
	return s
}

// sum is 1 + 2 + … + n.
func sum(n uint64) uint64 { return n * (n + 1) / 2 }

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
