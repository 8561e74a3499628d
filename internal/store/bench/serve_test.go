package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/bench/recording"
	"flowlog/internal/client"
	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// The two questions of the query benchmark, each over its own data set
// and log stream: top 10 sources by bytes over an hour, and bytes and
// records per minute over a day.
var (
	topHour   = Start
	seriesDay = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
)

// question is one question, asked of flowlog's API, of ClickHouse (the
// same request, compiled for it) and of nfdump over nfcapd's files.
type question struct {
	name    string
	records int       // records in its data set
	since   time.Time // its window, [since, since+span), which the data set spans
	span    time.Duration
	req     query.Request
	nfdump  func(nfdump, dir string) (answer, error)
	stream  string // log stream id
	group   string
	nfDir   string
}

// answer is a question's answer in a form every engine's can be compared
// in: rows of text, in order.
type answer []string

func questions() []*question {
	top := &question{name: "top10", records: envInt("FLOWLOG_BENCH_TOP_RECORDS", 10_000_000), since: topHour, span: time.Hour,
		nfdump: nfdumpTopAnswer}
	top.req = query.Request{Since: top.since, Until: top.since.Add(top.span), GroupBy: []string{"srcaddr"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, Limit: 10}
	series := &question{name: "series", records: envInt("FLOWLOG_BENCH_SERIES_RECORDS", 100_000_000), since: seriesDay,
		span: 24 * time.Hour, nfdump: nfdumpSeries}
	series.req = query.Request{Since: series.since, Until: series.since.Add(series.span), Interval: "1m",
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}}, Limit: 1440}
	return []*question{top, series}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// served is a running `flowlog serve` whose data dir holds the data sets,
// the same records in ClickHouse, and nfcapd's files of them.
type served struct {
	srv    *testutil.Server
	api    *client.Client
	ch     *clickhouse.Store
	chPID  int
	nfdump string
	qs     []*question
}

// BenchmarkServeQuery asks the two questions through a running `flowlog
// serve` (its query API, signed as the CLI signs), of ClickHouse 18.16
// holding the same records (through flowlog's ClickHouse store, with its
// rollups and from the records alone), and of nfdump over nfcapd's files
// of them.
// The records are the flows of a real exporter's export, replayed (see
// Recorded.Replay): FLOWLOG_BENCH_TOP_RECORDS (default 10M) over one
// hour, FLOWLOG_BENCH_SERIES_RECORDS (default 100M) over one day. They
// are written into the server's data dir directly, not through its
// collector, whose rate is another benchmark's subject. All engines must
// give the same answers before anything is timed; each then answers
// FLOWLOG_BENCH_RUNS times (default 7) after one untimed run, and the
// median wall and CPU time are reported.
//
//	scripts/bench-query.sh
func BenchmarkServeQuery(b *testing.B) {
	s := loadServed(b)
	runs := envInt("FLOWLOG_BENCH_RUNS", 7)
	var table strings.Builder
	table.WriteString("| question | records | engine | wall ms (median) | CPU ms (median) | CPU vs flowlog | wall vs flowlog |\n|---|---|---|---|---|---|---|\n")
	for _, q := range s.qs {
		engines := s.engines(q)
		want, err := engines[0].ask()
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range engines[1:] {
			got, err := e.ask()
			if err != nil {
				b.Fatalf("%s, %s: %v", q.name, e.name, err)
			}
			if !slices.Equal(got, want) {
				b.Fatalf("%s: %s and flowlog answer differently (%d and %d rows); first rows that differ:\n%s",
					q.name, e.name, len(got), len(want), diff(got, want))
			}
		}
		b.Logf("%s over %d records: %d rows, all engines agree; first: %s", q.name, q.records, len(want), brief(want))
		var base timing
		for i, e := range engines {
			var t timing
			b.Run(q.name+"/"+e.name, func(b *testing.B) {
				for range b.N {
					t = measure(b, e, runs)
				}
				b.ReportMetric(t.wall, "wall-ms")
				b.ReportMetric(t.cpu, "cpu-ms")
			})
			if i == 0 {
				base = t
			}
			fmt.Fprintf(&table, "| %s | %d | %s | %.1f | %.1f | %.1f× | %.1f× |\n", q.name, q.records, e.name,
				t.wall, t.cpu, t.cpu/base.cpu, t.wall/base.wall)
		}
	}
	s.exploreDay(b, runs, &table)
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("load average %s\n%s", strings.Join(strings.Fields(string(load))[:3], " "), table.String())
}

// exploreDay times the console's 24 h view of the day's data set through
// POST /v1/explore: the top 10 sources by bytes and Other, with their
// series at the automatic interval (15 min) and statistics. Its top keys,
// Other and total are first checked against the query endpoint's.
func (s *served) exploreDay(b *testing.B, runs int, table *strings.Builder) {
	ctx := context.Background()
	day := s.qs[1]
	since, until := day.since, day.since.Add(day.span)
	req := map[string]any{"log_stream_ids": []string{day.stream}, "since": since, "until": until,
		"dimensions": []string{"srcaddr"}, "measure": "bytes", "top": 10}
	var got struct {
		Total uint64
		Times []int64
		Top   []struct {
			Key   []string
			Total uint64
			Rates []float64
		}
		Other struct{ Total uint64 }
	}
	ask := func() (answer, error) {
		err := s.api.JSON(ctx, "POST", "/v1/explore", nil, req, &got)
		out := answer{line("total", got.Total), line("other", got.Other.Total)}
		for _, t := range got.Top {
			out = append(out, line(t.Key[0], t.Total))
		}
		return out, err
	}
	var top, all query.Response
	bytes := []query.Aggregate{{Func: "sum", Field: "bytes"}}
	for r, q := range map[*query.Response]query.Request{
		&top: {Since: since, Until: until, GroupBy: []string{"srcaddr"}, Aggregates: bytes, Limit: 10},
		&all: {Since: since, Until: until, Aggregates: bytes},
	} {
		if err := s.api.JSON(ctx, "POST", "/v1/log-streams/"+day.stream+"/query", nil, q, r); err != nil {
			b.Fatal(err)
		}
	}
	want := answer{line("total", all.Rows[0][0]), ""}
	var inTop uint64
	for _, r := range top.Rows {
		want = append(want, line(r...))
		inTop += r[1].(uint64)
	}
	want[1] = line("other", all.Rows[0][0].(uint64)-inTop)
	if answer, err := ask(); err != nil || !slices.Equal(answer, want) || len(got.Times) != 96 || len(got.Top[0].Rates) != 96 {
		b.Fatalf("explore over the day: %v, %d buckets; the query endpoint's answer:\n%s\nexplore's:\n%s", err, len(got.Times),
			strings.Join(want, "\n"), strings.Join(answer, "\n"))
	}
	e := engine{"flowlog serve (DuckDB)", ask, func() time.Duration { return cpuTasks(s.srv.PID()) }}
	var t timing
	b.Run("explore24h/"+e.name, func(b *testing.B) {
		for range b.N {
			t = measure(b, e, runs)
		}
		b.ReportMetric(t.wall, "wall-ms")
		b.ReportMetric(t.cpu, "cpu-ms")
	})
	fmt.Fprintf(table, "| explore 24 h (top 10 + Other, 96 buckets) | %d | %s, POST /v1/explore | %.1f | %.1f | | |\n",
		day.records, e.name, t.wall, t.cpu)
}

// engine answers one question, and says how much CPU it has used so far.
type engine struct {
	name string
	ask  func() (answer, error)
	cpu  func() time.Duration
}

func (s *served) engines(q *question) []engine {
	ctx := context.Background()
	servePID, chPID := s.srv.PID(), s.chPID
	chAsk := func() (answer, error) {
		resp, err := s.ch.Query(ctx, store.StreamID{Account: s.srv.Account, Stream: q.stream}, q.req)
		if err != nil {
			return nil, err
		}
		return rows(resp), nil
	}
	chCPU := func() time.Duration { return cpuPID(chPID) } // its query threads come and go
	return []engine{
		{"flowlog serve (DuckDB)", func() (answer, error) {
			var resp query.Response
			err := s.api.JSON(ctx, "POST", "/v1/log-streams/"+q.stream+"/query", nil, q.req, &resp)
			return rows(&resp), err
		}, func() time.Duration { return cpuTasks(servePID) }},
		{"ClickHouse 18.16", chAsk, chCPU},
		{"ClickHouse 18.16, records only", func() (answer, error) { // as before it had rollups
			s.ch.UseRollups(false)
			defer s.ch.UseRollups(true)
			return chAsk()
		}, chCPU},
		{"nfdump 1.7.1", func() (answer, error) { return q.nfdump(s.nfdump, q.nfDir) }, cpuChildren},
	}
}

type timing struct{ wall, cpu float64 } // ms

// measure runs e once untimed, then runs times, and returns the medians.
func measure(b *testing.B, e engine, runs int) timing {
	if _, err := e.ask(); err != nil {
		b.Fatal(err)
	}
	walls, cpus := make([]float64, runs), make([]float64, runs)
	for i := range runs {
		c0, t0 := e.cpu(), time.Now()
		if _, err := e.ask(); err != nil {
			b.Fatal(err)
		}
		walls[i] = float64(time.Since(t0)) / float64(time.Millisecond)
		cpus[i] = float64(e.cpu()-c0) / float64(time.Millisecond)
	}
	return timing{median(walls), median(cpus)}
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// rows renders an aggregated response as text rows.
func rows(resp *query.Response) answer {
	out := make(answer, len(resp.Rows))
	for i, r := range resp.Rows {
		out[i] = line(r...)
	}
	return out
}

// diff lists the first rows that differ between two answers.
func diff(got, want answer) string {
	var b strings.Builder
	for i, n := 0, 0; i < max(len(got), len(want)) && n < 10; i++ {
		g, w := "-", "-"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "row %d: %s; flowlog: %s\n", i, g, w)
			n++
		}
	}
	return b.String()
}

// line is values separated by spaces.
func line(vals ...any) string { return strings.TrimSuffix(fmt.Sprintln(vals...), "\n") }

func brief(a answer) string {
	if len(a) > 12 {
		return strings.Join(a[:12], "\n") + fmt.Sprintf("\n… (%d rows)", len(a))
	}
	return strings.Join(a, "\n")
}

// nfdumpTopAnswer is nfdump's top 10 as flowlog's rows: address and bytes.
func nfdumpTopAnswer(nfdump, dir string) (answer, error) {
	top, err := nfdumpTop(nfdump, dir)
	if err != nil {
		return nil, err
	}
	out := make(answer, len(top))
	for i, e := range top {
		out[i] = line(e.addr, e.bytes)
	}
	return out, nil
}

// nfdumpSeries is nfdump's nearest to a time series: the statistics of
// each per-minute file of the window (nfdump -g, one line per file, read
// from the file's header without reading its flows), as NfSen graphs
// them. The rows are flowlog's: minute (Unix ms), bytes, records.
func nfdumpSeries(nfdump, dir string) (answer, error) {
	cmd := exec.Command(nfdump, "-R", dir, "-g")
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nfdump -g: %v: %s", err, out)
	}
	var rows answer
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "#") { // yyyy-mm-dd HH:MM:SS,flows,packets,bytes
			continue
		}
		f := strings.Split(l, ",")
		if len(f) != 4 {
			return nil, fmt.Errorf("nfdump -g line %q", l)
		}
		at, err1 := time.Parse(time.DateTime, f[0])
		flows, err2 := strconv.ParseUint(f[1], 10, 64)
		bytes, err3 := strconv.ParseUint(f[3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("nfdump -g line %q", l)
		}
		rows = append(rows, line(at.Truncate(time.Minute).UnixMilli(), bytes, flows))
	}
	return rows, nil
}

// loadServed sets up the server and its peers with both data sets.
func loadServed(b *testing.B) *served {
	ctx := context.Background()
	s := &served{qs: questions(), nfdump: testutil.Peer(b, "nfdump")}
	s.srv = testutil.StartServer(b)
	s.api = client.New(s.srv.URL, s.srv.KeyID, s.srv.Secret)
	var group struct{ ID string }
	if err := s.api.JSON(ctx, "POST", "/v1/log-groups", nil, map[string]any{"name": "bench"}, &group); err != nil {
		b.Fatal(err)
	}
	for _, q := range s.qs {
		var ls struct{ ID string }
		if err := s.api.JSON(ctx, "POST", "/v1/log-groups/"+group.ID+"/log-streams", nil,
			map[string]any{"name": q.name, "retention_days": 3650}, &ls); err != nil {
			b.Fatal(err)
		}
		q.stream, q.group = ls.ID, group.ID
	}
	s.srv.Stop()
	duck, err := duckdb.New(duckdb.Config{Dir: s.srv.DataDir})
	if err != nil {
		b.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			duck.Close()
		}
	}()
	url := chtest.Start(b)
	s.chPID = chtest.PID(url)
	if s.ch, err = clickhouse.New(ctx, clickhouse.Config{URL: url}); err != nil {
		b.Fatal(err)
	}
	path := os.Getenv("FLOWLOG_BENCH_IPFIX")
	if path == "" {
		path = recording.DefaultFile
	}
	rec, err := LoadRecorded(path, b.Logf)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range s.qs {
		q.nfDir = filepath.Join(b.TempDir(), "nfcapd")
		start := time.Now()
		if err := s.load(ctx, b, duck, rec, q); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: %d records (%d passes over the recording's %d flows) into DuckDB, ClickHouse and nfcapd in %v",
			q.name, q.records, (q.records+rec.Flows()-1)/rec.Flows(), rec.Flows(), time.Since(start).Round(time.Second))
	}
	closed = true
	if err := duck.Close(); err != nil {
		b.Fatal(err)
	}
	s.srv.Start()
	return s
}

// load writes q's data set into the stores and nfcapd's files, and checks
// nfcapd kept every flow.
func (s *served) load(ctx context.Context, b *testing.B, duck *duckdb.Store, rec *Recorded, q *question) error {
	st := store.Stream{StreamID: store.StreamID{Account: s.srv.Account, Stream: q.stream}, Group: q.group, RetentionDays: 3650}
	for _, db := range []store.Store{duck, s.ch} {
		if err := db.CreateStream(ctx, st); err != nil {
			return err
		}
	}
	files := newMinuteFiles(b, q.nfDir, rec.lag)
	stamp := flow.Record{AccountID: s.srv.Account, FlowLogID: "fl-replay", GatewayID: "gw-replay",
		Action: flow.ActionAccept, LogStatus: flow.StatusOK}
	err := rec.Replay(q.records, q.since, q.span, 500_000, stamp, func(batch []flow.Record) error {
		if err := duck.Append(ctx, st.StreamID, batch); err != nil {
			return err
		}
		if err := s.ch.Append(ctx, st.StreamID, batch); err != nil {
			return err
		}
		files.add(batch)
		return nil
	})
	if err = errors.Join(err, files.close()); err != nil {
		return err
	}
	n, err := nfdumpFlows(s.nfdump, q.nfDir)
	if err == nil && n != q.records {
		err = fmt.Errorf("nfcapd stored %d of %d flows", n, q.records)
	}
	return err
}
