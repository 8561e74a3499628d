package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// dataset is the same flows in DuckDB, ClickHouse and nfcapd's files.
type dataset struct {
	n      int
	chPID  int
	duck   *duckdb.Store
	ch     *clickhouse.Store
	nfdump string // nfdump binary
	nfDir  string
}

var (
	setupOnce sync.Once
	shared    *dataset
	setupErr  error
)

var topID = store.StreamID{Account: "bench", Stream: "top"}

// records is the data set size: FLOWLOG_BENCH_RECORDS, default 10M.
func records() int {
	if n, err := strconv.Atoi(os.Getenv("FLOWLOG_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 10_000_000
}

// load builds the data set once per process; the ClickHouse server and
// files live until the process ends.
func load(b *testing.B) *dataset {
	setupOnce.Do(func() { shared, setupErr = build(b) })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	return shared
}

// benchDir holds the data set's files; TestMain removes it.
var benchDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.duck.Close()
	}
	if filterStore != nil {
		filterStore.Close()
	}
	for _, d := range []string{benchDir, filterDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

func build(b *testing.B) (*dataset, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "flowlog-bench-")
	if err != nil {
		return nil, err
	}
	benchDir = dir
	d := &dataset{n: records(), nfDir: filepath.Join(dir, "nfcapd")}
	if d.duck, err = duckdb.New(duckdb.Config{Dir: filepath.Join(dir, "duckdb")}); err != nil {
		return nil, err
	}
	url := chtest.Start(b)
	d.chPID = chtest.PID(url)
	if d.ch, err = clickhouse.New(ctx, clickhouse.Config{URL: url}); err != nil {
		return nil, err
	}
	for _, s := range []store.Store{d.duck, d.ch} {
		if err := s.CreateStream(ctx, store.Stream{StreamID: topID}); err != nil {
			return nil, err
		}
	}
	nfcapd := testutil.Peer(b, "nfcapd")
	d.nfdump = testutil.Peer(b, "nfdump")
	os.MkdirAll(d.nfDir, 0o755)
	port := testutil.FreeUDPPort(b)
	cmd := exec.Command(nfcapd, "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-w", d.nfDir, "-t", "3600", "-B", "8000000")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	for i := 0; i*batch < d.n; i++ {
		recs := Chunk(i, min(batch, d.n-i*batch))
		if err := d.duck.Append(ctx, topID, recs); err != nil {
			return nil, err
		}
		if err := d.ch.Append(ctx, topID, recs); err != nil {
			return nil, err
		}
		if err := sendPaced(fmt.Sprintf("127.0.0.1:%d", port), v5(recs, uint32(i*batch)), 10000); err != nil {
			return nil, err
		}
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM) // nfcapd writes its file when it ends
	cmd.Wait()
	stored, err := d.nfdumpFlows()
	if err != nil {
		return nil, err
	}
	if stored != d.n {
		return nil, fmt.Errorf("nfcapd stored %d of %d flows (UDP loss); slow the sender", stored, d.n)
	}
	b.Logf("loaded %d records into DuckDB, ClickHouse and nfcapd in %v", d.n, time.Since(start).Round(time.Second))
	return d, nil
}

func (d *dataset) nfdumpFlows() (int, error) { return nfdumpFlows(d.nfdump, d.nfDir) }

// nfdumpFlows counts the flows nfdump reads from the files in dir.
func nfdumpFlows(nfdump, dir string) (int, error) {
	out, err := exec.Command(nfdump, "-R", dir, "-I").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("nfdump -I: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Flows: "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("nfdump -I: no flow count in %s", out)
}

type entry struct {
	addr  string
	bytes uint64
}

func (d *dataset) nfdumpTop() ([]entry, error) { return nfdumpTop(d.nfdump, d.nfDir) }

// nfdumpTop runs nfdump -s srcip/bytes -n 10 over the files in dir and
// parses its table.
func nfdumpTop(nfdump, dir string) ([]entry, error) {
	out, err := exec.Command(nfdump, "-R", dir, "-s", "srcip/bytes", "-n", "10", "-q", "-N").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nfdump: %v: %s", err, out)
	}
	var top []entry
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(l))
		// date time duration proto addr flows (%) packets (%) bytes (%) …
		if len(f) < 11 {
			continue
		}
		if _, err := netip.ParseAddr(f[4]); err != nil {
			continue
		}
		by, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("nfdump line %q: %v", l, err)
		}
		top = append(top, entry{f[4], by})
	}
	return top, nil
}

var topQuery = query.Request{Since: Start, Until: Start.Add(time.Hour), GroupBy: []string{"srcaddr"},
	Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, Limit: 10}

// offMinutes is the same question over a window that starts and ends
// half-way through a minute: 59 minutes from the rollup, two half
// minutes from the records.
var offMinutes = func() query.Request {
	q := topQuery
	q.Since, q.Until = Start.Add(30*time.Second), Start.Add(59*time.Minute+30*time.Second)
	return q
}()

func storeTop(s store.Store) ([]entry, error) { return storeQuery(s, topQuery) }

func storeQuery(s store.Store, q query.Request) ([]entry, error) {
	resp, err := s.Query(context.Background(), topID, q)
	if err != nil {
		return nil, err
	}
	var top []entry
	for _, r := range resp.Rows {
		top = append(top, entry{r[0].(string), r[1].(uint64)})
	}
	return top, nil
}

// BenchmarkTop10 answers "top 10 srcaddr by bytes in this hour" over the
// same flows: flowlog on DuckDB (from its rollup, and from the records
// alone) and on ClickHouse, and nfdump over nfcapd's files. All must agree
// before anything is timed.
func BenchmarkTop10(b *testing.B) {
	d := load(b)
	want, err := storeTop(d.duck)
	if err != nil {
		b.Fatal(err)
	}
	fromRecords := func(q query.Request) func() ([]entry, error) {
		return func() ([]entry, error) {
			d.duck.UseRollups(false)
			defer d.duck.UseRollups(true)
			return storeQuery(d.duck, q)
		}
	}
	for name, top := range map[string]func() ([]entry, error){"clickhouse": func() ([]entry, error) { return storeTop(d.ch) },
		"nfdump": d.nfdumpTop, "duckdb-records": fromRecords(topQuery)} {
		got, err := top()
		if err != nil {
			b.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			b.Fatalf("%s top 10 = %v\nDuckDB's = %v", name, got, want)
		}
	}
	off, err := storeQuery(d.duck, offMinutes)
	if err != nil {
		b.Fatal(err)
	}
	if offRecords, err := fromRecords(offMinutes)(); err != nil || fmt.Sprint(off) != fmt.Sprint(offRecords) {
		b.Fatalf("off the minutes, from the rollup %v, from the records %v (%v)", off, offRecords, err)
	}
	b.Logf("top 10 over %d records: %v", d.n, want)
	bench := func(name string, cpu func() time.Duration, top func() ([]entry, error)) {
		b.Run(name, func(b *testing.B) {
			c0 := cpu()
			for b.Loop() {
				if _, err := top(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpu()-c0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
	bench("duckdb", cpuSelf, func() ([]entry, error) { return storeTop(d.duck) })
	bench("duckdb-off-minutes", cpuSelf, func() ([]entry, error) { return storeQuery(d.duck, offMinutes) })
	bench("duckdb-records", cpuSelf, fromRecords(topQuery))
	bench("clickhouse", func() time.Duration { return cpuPID(d.chPID) }, func() ([]entry, error) { return storeTop(d.ch) })
	bench("nfdump", cpuChildren, d.nfdumpTop)
}
