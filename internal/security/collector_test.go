package security

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/client"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// collectorRig is a `flowlog serve` with its NetFlow/IPFIX and sFlow
// collectors on loopback, and bootstrap-account exporter gateways feeding
// one flow log into one log stream.
type collectorRig struct {
	t       *testing.T
	srv     *testutil.Server
	api     *client.Client
	netflow string // collector addresses
	sflow   string
	stream  string
}

func collectorStart(t *testing.T, exporters ...string) *collectorRig {
	t.Helper()
	r := &collectorRig{t: t}
	r.netflow = fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	r.sflow = fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	r.srv = startServer(t, "FLOWLOG_NETFLOW_LISTEN="+r.netflow, "FLOWLOG_SFLOW_LISTEN="+r.sflow)
	r.api = bootstrapClient(r.srv)
	lg := r.id("/v1/log-groups", map[string]any{"name": "routers"})
	r.stream = r.id("/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": "routers"})
	var targets []map[string]any
	for i, a := range exporters {
		gw := r.id("/v1/gateways", map[string]any{"name": fmt.Sprintf("router%d", i), "kind": "exporter", "exporter_addr": a})
		targets = append(targets, map[string]any{"gateway_id": gw})
	}
	fl := r.id("/v1/flow-logs", map[string]any{"name": "routers", "output_type": "sls", "log_stream_id": r.stream,
		"targets": targets})
	waitFor(t, "the flow log to become available", 10*time.Second, func() bool {
		var out map[string]any
		return r.api.JSON(context.Background(), "GET", "/v1/flow-logs/"+fl, nil, nil, &out) == nil && out["state"] == "available"
	})
	return r
}

func (r *collectorRig) id(path string, body any) string {
	r.t.Helper()
	var out map[string]any
	if err := r.api.JSON(context.Background(), "POST", path, nil, body, &out); err != nil {
		r.t.Fatalf("POST %s: %v", path, err)
	}
	return out["id"].(string)
}

// records returns the log stream's records that end within an hour of now.
func (r *collectorRig) records() []flow.Record {
	r.t.Helper()
	var resp query.Response
	req := query.Request{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour), Limit: 10000}
	if err := r.api.JSON(context.Background(), "POST", "/v1/log-streams/"+r.stream+"/query", nil, req, &resp); err != nil {
		r.t.Fatalf("query: %v", err)
	}
	return resp.Records
}

// metrics returns /metrics as series → value.
func (r *collectorRig) metrics() map[string]float64 { return r.srv.Metrics() }

// waitMetric waits until series reaches want, and fails saying what it is.
func (r *collectorRig) waitMetric(series string, want float64) {
	r.t.Helper()
	var got float64
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got = r.metrics()[series]; got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("%s = %v, want %v", series, got, want)
}

// collectorSend sends datagrams from the local address from (any 127/8
// address can be bound on Linux) to the collector at to.
func collectorSend(t *testing.T, from, to string, pkts ...[]byte) {
	raddr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Error(err)
		return
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, raddr)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	for _, p := range pkts {
		if _, err := c.Write(p); err != nil {
			t.Error(err)
			return
		}
	}
}

// collectorExport encodes recs as one v9 or IPFIX message, with flowlog's
// templates first when templates is set.
func collectorExport(t *testing.T, version int, domain uint32, templates bool, recs []flow.Record) []byte {
	t.Helper()
	b, err := netflow.NewBuilder(version)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	b.Reset(nil, netflow.Clock{BootMs: now - 3_600_000, ExportMs: now})
	if templates {
		b.AppendTemplates(false)
	}
	for i := range recs {
		if err := b.AppendRecord(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return append([]byte(nil), b.Finish(netflow.MessageHeader{Domain: domain})...)
}

// collectorFlows makes n TCP records with source ports from port up,
// ending a second ago.
func collectorFlows(n int, port uint16) []flow.Record {
	now := time.Now().UnixMilli()
	recs := make([]flow.Record, n)
	for i := range recs {
		recs[i] = flow.Record{SrcAddr: netip.MustParseAddr("10.9.0.1"), DstAddr: netip.MustParseAddr("10.9.0.2"),
			SrcPort: port + uint16(i), DstPort: 443, Protocol: 6, Packets: 3, Bytes: 300,
			Start: now - 3000, End: now - 1000}
	}
	return recs
}

// collectorPorts returns the source ports of recs.
func collectorPorts(recs []flow.Record) map[uint16]flow.Record {
	m := map[uint16]flow.Record{}
	for _, r := range recs {
		m[r.SrcPort] = r
	}
	return m
}

// TestCollectorLockout floods both collector ports with spoofed sources
// (5,000 on NetFlow, more than the collector ever kept state for, and 500
// on sFlow), each announcing templates, and then the claimed router sends
// IPFIX and v9 with their templates: its records are decoded and stored,
// the flood is counted in one unlabelled counter, and /metrics has no
// series for any spoofed source.
func TestCollectorLockout(t *testing.T) {
	r := collectorStart(t, "127.0.0.1")
	spoof := collectorExport(t, netflow.IPFIX, 1, true, collectorFlows(1, 9000))
	const netflowSources, sflowSources = 5000, 500
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < netflowSources+sflowSources; i += 4 {
				from := fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)
				to := r.netflow
				if i >= netflowSources {
					to = r.sflow
				}
				collectorSend(t, from, to, spoof)
			}
		}()
	}
	wg.Wait()

	ipfix := collectorFlows(5, 1000)
	v9 := collectorFlows(5, 2000)
	collectorSend(t, "127.0.0.1", r.netflow,
		collectorExport(t, netflow.IPFIX, 7, true, nil), collectorExport(t, netflow.IPFIX, 7, false, ipfix),
		collectorExport(t, netflow.V9, 8, true, nil), collectorExport(t, netflow.V9, 8, false, v9))
	want := collectorPorts(append(ipfix, v9...))
	waitFor(t, "the claimed router's 10 records in the log stream", 20*time.Second, func() bool {
		got := collectorPorts(r.records())
		for p := range want {
			if _, ok := got[p]; !ok {
				return false
			}
		}
		return len(got) == len(want)
	})

	r.waitMetric("flowlog_collector_unclaimed_datagrams_total", netflowSources+sflowSources)
	m := r.metrics()
	if v := m[`flowlog_exporter_records_total{exporter="127.0.0.1"}`]; v != 10 {
		t.Errorf("records of the claimed router: %v, want 10", v)
	}
	if v := m["flowlog_collector_refused_datagrams_total"]; v != 0 {
		t.Errorf("refused datagrams: %v", v)
	}
	for series := range m {
		if strings.Contains(series, `exporter="127.1.`) {
			t.Fatalf("a spoofed source has a series: %s", series)
		}
	}
}

// collectorTemplateFlood encodes IPFIX messages announcing templates
// 256…256+n-1 of fields fields each, as many per message as fit in one
// datagram.
func collectorTemplateFlood(n, fields int) [][]byte {
	recLen := 4 + 4*fields
	perMsg := (65507 - 16 - 4) / recLen
	var out [][]byte
	for first := 0; first < n; first += perMsg {
		msg := binary.BigEndian.AppendUint16(nil, netflow.IPFIX)
		msg = binary.BigEndian.AppendUint16(msg, 0) // length, below
		msg = binary.BigEndian.AppendUint32(msg, uint32(time.Now().Unix()))
		msg = binary.BigEndian.AppendUint32(msg, 0)
		msg = binary.BigEndian.AppendUint32(msg, 1)
		k := min(perMsg, n-first)
		msg = binary.BigEndian.AppendUint16(msg, 2)
		msg = binary.BigEndian.AppendUint16(msg, uint16(4+k*recLen))
		for id := first; id < first+k; id++ {
			msg = binary.BigEndian.AppendUint16(msg, uint16(256+id))
			msg = binary.BigEndian.AppendUint16(msg, uint16(fields))
			for f := range fields {
				msg = binary.BigEndian.AppendUint16(msg, uint16(100+f))
				msg = binary.BigEndian.AppendUint16(msg, 4)
			}
		}
		binary.BigEndian.PutUint16(msg[2:], uint16(len(msg)))
		out = append(out, msg)
	}
	return out
}

// TestTemplateAmplification: 41 sources, the claimed router among them,
// each announce 1,024 templates of 512 fields (about 2 MB each). The
// claimed router's templates over its limits are refused and counted, the
// others' datagrams are counted as unclaimed, another claimed router is
// still decoded, the server's memory stays bounded, and the templates it
// writes to its data dir stay small.
func TestTemplateAmplification(t *testing.T) {
	r := collectorStart(t, "127.0.0.1", "127.0.0.3")
	rss0, _ := memory(t, r.srv.PID())
	flood := collectorTemplateFlood(1024, 512)
	sources := []string{"127.0.0.1"}
	for i := 1; i <= 40; i++ {
		sources = append(sources, fmt.Sprintf("127.2.0.%d", i))
	}
	for _, src := range sources {
		collectorSend(t, src, r.netflow, flood...)
		time.Sleep(30 * time.Millisecond) // ~2 MB a source: well within the socket buffer
	}
	// 8 templates of 512 fields fill the default 4,096 fields.
	r.waitMetric(`flowlog_exporter_refused_templates_total{exporter="127.0.0.1"}`, 1024-8)
	r.waitMetric("flowlog_collector_unclaimed_datagrams_total", float64(40*len(flood)))

	recs := collectorFlows(5, 3000)
	collectorSend(t, "127.0.0.3", r.netflow, collectorExport(t, netflow.IPFIX, 1, true, recs))
	waitFor(t, "the other router's records", 20*time.Second, func() bool {
		return len(collectorPorts(r.records())) == len(recs)
	})
	rss, peak := memory(t, r.srv.PID())
	t.Logf("RSS %d MB before, %d MB after, peak %d MB", rss0>>20, rss>>20, peak>>20)
	if peak > 300<<20 {
		t.Errorf("peak RSS %d MB, want under 300 MB", peak>>20)
	}

	// Templates are written when they change (every minute) and at exit.
	r.srv.Stop()
	var total int64
	filepath.Walk(r.srv.DataDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(path, "template") && info.Mode().IsRegular() {
			total += info.Size()
			t.Logf("%s: %d bytes", strings.TrimPrefix(path, r.srv.DataDir), info.Size())
		}
		return nil
	})
	if total == 0 || total > 512<<10 {
		t.Errorf("template files hold %d bytes, want some, under 512 KB", total)
	}
}

// collectorDays returns the distinct days of the DuckDB store's day tables
// (and their rollups), read from the database file of a stopped server.
func collectorDays(t *testing.T, dataDir string) map[int64]bool {
	t.Helper()
	db, err := sql.Open("duckdb", filepath.Join(dataDir, duckdb.FileName)+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT table_name FROM duckdb_tables()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	dayRE := regexp.MustCompile(`^f\d+_d(-?\d+)`)
	days := map[int64]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if m := dayRE.FindStringSubmatch(name); m != nil {
			d, _ := strconv.ParseInt(m[1], 10, 64)
			days[d] = true
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return days
}

// TestScatteredExporterTimestamps: about 40 KB of IPFIX whose records end
// anywhere from 300 years ago to 300 years ahead (and at the extremes of
// the 64-bit field) are stored at their receive time, with their duration,
// and counted as clamped; records with sane times keep them. The store
// holds one or two days, aggregate queries answer, and after a restart
// every record is still there.
func TestScatteredExporterTimestamps(t *testing.T) {
	r := collectorStart(t, "127.0.0.1")
	rng := rand.New(rand.NewPCG(11, 4))
	const year = int64(365 * 86_400_000)
	sane := collectorFlows(20, 100)
	wild := collectorFlows(580, 1000)
	for i := range wild {
		w := &wild[i]
		switch i {
		case 0:
			w.Start, w.End = 1, 1 // 0 would mean "not sent": the export time
		case 1:
			w.Start, w.End = math.MinInt64, math.MaxInt64 // as unsigned: 2^63 and 2^63-1
		case 2:
			w.Start, w.End = -1, -1 // 2^64-1
		default:
			w.End = rng.Int64N(600*year) - 300*year
			w.Start = w.End - rng.Int64N(60_000)
		}
		w.Bytes = rng.Uint64N(1 << 40)
	}
	before := time.Now()
	all := append(append([]flow.Record(nil), sane...), wild...)
	var pkts [][]byte
	size := 0
	for i := 0; i < len(all); i += 20 {
		pkts = append(pkts, collectorExport(t, netflow.IPFIX, 1, i == 0, all[i:i+20]))
		size += len(pkts[len(pkts)-1])
	}
	t.Logf("%d records in %d bytes of IPFIX", len(all), size)
	collectorSend(t, "127.0.0.1", r.netflow, pkts...)

	var got map[uint16]flow.Record
	waitFor(t, "every record in the log stream", 20*time.Second, func() bool {
		got = collectorPorts(r.records())
		return len(got) == len(all)
	})
	after := time.Now()
	for _, s := range sane {
		if g := got[s.SrcPort]; g.Start != s.Start || g.End != s.End {
			t.Errorf("sane record %d: %d..%d, want %d..%d", s.SrcPort, g.Start, g.End, s.Start, s.End)
		}
	}
	for i, w := range wild {
		g := got[w.SrcPort]
		end := time.UnixMilli(g.End)
		if end.Before(before.Truncate(time.Millisecond)) || end.After(after) {
			t.Errorf("record %d (end %d) stored ending %v, not at its receive time", w.SrcPort, w.End, end)
		}
		if d := w.End - w.Start; i >= 3 && g.End-g.Start != d {
			t.Errorf("record %d: duration %d ms, want %d", w.SrcPort, g.End-g.Start, d)
		}
	}
	r.waitMetric(`flowlog_exporter_clamped_records_total{exporter="127.0.0.1"}`, float64(len(wild)))

	// Aggregates over the window answer.
	for _, q := range []query.Request{
		{GroupBy: []string{"srcport"}, Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, Limit: 10},
		{Interval: "1m", Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}}},
	} {
		q.Since, q.Until = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		var resp query.Response
		if err := r.api.JSON(context.Background(), "POST", "/v1/log-streams/"+r.stream+"/query", nil, q, &resp); err != nil {
			t.Errorf("query %+v: %v", q, err)
		}
	}

	r.srv.Stop()
	if days := collectorDays(t, r.srv.DataDir); len(days) > 2 {
		t.Errorf("the store has tables for %d days, want today's (and yesterday's at midnight)", len(days))
	}
	r.srv.Start()
	if n := len(collectorPorts(r.records())); n != len(all) {
		t.Errorf("after a restart: %d records, want %d", n, len(all))
	}
}
