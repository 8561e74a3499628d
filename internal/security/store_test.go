package security

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flowlog/internal/client"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/store/query"
	"flowlog/internal/testutil"
)

// TestHugeCounters: a router reports two flows of nearly 2^64 bytes and
// packets each (a broken or hostile exporter). Top-N and series over their
// window answer 200, with the sums saturated at 2^64−1 as documented,
// rather than failing every query over that window.
func TestHugeCounters(t *testing.T) {
	srv, port := storeServer(t)
	c := bootstrapClient(srv)
	stream := storeExporterStream(t, c)
	now := time.Now()
	huge := []flow.Record{
		storeRecord("10.99.0.1", math.MaxUint64-5, math.MaxUint64-7, now),
		storeRecord("10.99.0.1", math.MaxUint64-9, math.MaxUint64-11, now),
		storeRecord("10.99.0.2", 1500, 3, now),
	}
	window := query.Request{Since: now.Add(-time.Hour), Until: now.Add(time.Hour)}
	n := storeFeed(t, c, port, stream, window, huge) // copies of the datagram that arrived
	sums := []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "sum", Field: "packets"}, {Func: "count"}}

	top := window
	top.GroupBy, top.Aggregates = []string{"srcaddr"}, sums
	resp, err := storeQuery(c, stream, top)
	if err != nil {
		t.Fatalf("top-N over huge counters: %v", err)
	}
	want := [][]any{
		{"10.99.0.1", uint64(math.MaxUint64), uint64(math.MaxUint64), uint64(2 * n)},
		{"10.99.0.2", uint64(1500 * n), uint64(3 * n), uint64(n)},
	}
	if fmt.Sprint(resp.Rows) != fmt.Sprint(want) {
		t.Errorf("top-N rows %v, want %v (sums saturated at 2^64−1)", resp.Rows, want)
	}

	series := window
	series.Interval, series.Aggregates = "1h", sums
	if resp, err = storeQuery(c, stream, series); err != nil {
		t.Fatalf("series over huge counters: %v", err)
	}
	if len(resp.Rows) != 1 || resp.Rows[0][1] != uint64(math.MaxUint64) || resp.Rows[0][2] != uint64(math.MaxUint64) ||
		resp.Rows[0][3] != uint64(3*n) {
		t.Errorf("series rows %v, want one bucket with bytes and packets 2^64−1 and %d records", resp.Rows, 3*n)
	}
}

// TestHugeInListFilter: the largest filter the parser accepts, an `in`
// list of 16 KiB of addresses, answers promptly and correctly; one byte
// more is refused with a clear 400.
func TestHugeInListFilter(t *testing.T) {
	srv, port := storeServer(t)
	c := bootstrapClient(srv)
	stream := storeExporterStream(t, c)
	now := time.Now()
	var recs []flow.Record
	for i := range 200 {
		recs = append(recs, storeRecord(fmt.Sprintf("10.0.%d.%d", i/100, i%100), 1000, 1, now))
	}
	window := query.Request{Since: now.Add(-time.Hour), Until: now.Add(time.Hour)}
	n := storeFeed(t, c, port, stream, window, recs)

	// Addresses 10.0.0.0 … 10.0.x.y in order: the list holds every source
	// sent with an even last number, and many that were not sent.
	where := storeLargestList("srcaddr in (", func(i int) string { return fmt.Sprintf("10.0.%d.%d", i/50, i%50*2) })
	q := window
	q.Where, q.Aggregates = where, []query.Aggregate{{Func: "count"}}
	start := time.Now()
	resp, err := storeQuery(c, stream, q)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("largest accepted filter (%d bytes): %v", len(where), err)
	}
	if took > 2*time.Second {
		t.Errorf("largest accepted filter took %v, want well under 2s", took)
	}
	if want := uint64(100 * n); resp.Rows[0][0] != want { // sources 10.0.0.0, .2, … .98, 10.0.1.0, … .98
		t.Errorf("count %v, want %d", resp.Rows[0][0], want)
	}
	t.Logf("a %d-byte in list answered in %v", len(where), took)

	q.Where = where[:len(where)-1] + ", 10.1.0.1)"
	for len(q.Where) <= query.MaxFilterLen {
		q.Where = q.Where[:len(q.Where)-1] + ", 10.1.0.1)"
	}
	_, err = storeQuery(c, stream, q)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "InvalidQuery" ||
		!strings.Contains(ae.Message, fmt.Sprint(query.MaxFilterLen)) {
		t.Errorf("a filter of %d bytes: %v; want 400 InvalidQuery naming the %d-byte limit", len(q.Where), err, query.MaxFilterLen)
	}
}

// TestQueryConcurrencyLimit: one account floods the query endpoint; the
// queries beyond its limit are refused with 429 Throttling.Query, while
// another account's queries are served all along.
func TestQueryConcurrencyLimit(t *testing.T) {
	srv, port := storeServer(t, "FLOWLOG_QUERY_CONCURRENCY=1")
	c := bootstrapClient(srv)
	stream := storeExporterStream(t, c)
	now := time.Now()
	window := query.Request{Since: now.Add(-time.Hour), Until: now.Add(time.Hour)}
	storeFeed(t, c, port, stream, window, storeMany(now, 2000))
	other, otherStream := storeOtherAccount(t, srv)

	slow := window
	slow.Where, slow.GroupBy = storeSlowFilter(), []string{"srcaddr"}
	var wg sync.WaitGroup
	var ok, throttled, bad atomic.Int32
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := storeQuery(c, stream, slow)
			var ae *client.APIError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests && ae.Code == "Throttling.Query":
				throttled.Add(1)
			default:
				bad.Add(1)
				t.Errorf("flooding query: %v", err)
			}
		}()
	}
	// Meanwhile the other account's queries are served, one at a time.
	for range 5 {
		q := window
		q.Aggregates = []query.Aggregate{{Func: "count"}}
		if _, err := storeQuery(other, otherStream, q); err != nil {
			t.Errorf("another account's query during the flood: %v", err)
		}
	}
	wg.Wait()
	t.Logf("12 concurrent queries: %d answered, %d throttled", ok.Load(), throttled.Load())
	if throttled.Load() == 0 || ok.Load() == 0 {
		t.Errorf("12 concurrent queries with a limit of 1: %d answered, %d throttled; want both", ok.Load(), throttled.Load())
	}
	if _, err := storeQuery(c, stream, slow); err != nil { // the slots are free again
		t.Errorf("a query after the flood: %v", err)
	}
}

// TestQueryTimeout: a query running past the server's time limit is
// stopped and answered 503 QueryTimeout, not left to run; the server keeps
// serving.
func TestQueryTimeout(t *testing.T) {
	srv := startServer(t, "FLOWLOG_QUERY_TIMEOUT=1ms")
	c := bootstrapClient(srv)
	stream := storeLogStream(t, c, "timeout")
	now := time.Now()
	window := query.Request{Since: now.Add(-time.Hour), Until: now.Add(time.Hour)}

	slow := window
	slow.Where, slow.GroupBy = storeSlowFilter(), []string{"srcaddr"}
	start := time.Now()
	_, err := storeQuery(c, stream, slow)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "QueryTimeout" ||
		!strings.Contains(ae.Message, "1ms") {
		t.Fatalf("a query past the 1ms limit: %v; want 503 QueryTimeout naming the limit", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the timed-out query answered after %v", took)
	}
	if err := c.JSON(context.Background(), "GET", "/v1/log-groups", nil, nil, nil); err != nil {
		t.Errorf("the server after a timed-out query: %v", err)
	}
}

// storeServer starts a server whose collector listens on a free loopback
// port, and returns the port.
func storeServer(t *testing.T, env ...string) (*testutil.Server, int) {
	t.Helper()
	port := testutil.FreeUDPPort(t)
	return startServer(t, append(env, fmt.Sprintf("FLOWLOG_NETFLOW_LISTEN=127.0.0.1:%d", port))...), port
}

// storeExporterStream makes an exporter gateway for 127.0.0.1 and a flow
// log that writes its records to a new log stream; it returns the stream.
func storeExporterStream(t *testing.T, c *client.Client) string {
	t.Helper()
	gw := storeCreate(t, c, "/v1/gateways", map[string]any{"name": "router", "kind": "exporter", "exporter_addr": "127.0.0.1"})
	stream := storeLogStream(t, c, "router")
	fl := storeCreate(t, c, "/v1/flow-logs", map[string]any{"name": "router", "output_type": "sls",
		"log_stream_id": stream, "targets": []map[string]any{{"gateway_id": gw}}})
	waitFor(t, "the flow log to become available", 30*time.Second, func() bool {
		var got map[string]any
		return c.JSON(context.Background(), "GET", "/v1/flow-logs/"+fl, nil, nil, &got) == nil && got["state"] == "available"
	})
	return stream
}

// storeLogStream makes a log group and a log stream in it.
func storeLogStream(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	lg := storeCreate(t, c, "/v1/log-groups", map[string]any{"name": name})
	return storeCreate(t, c, "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": name})
}

func storeCreate(t *testing.T, c *client.Client, path string, body map[string]any) string {
	t.Helper()
	var out map[string]any
	if err := c.JSON(context.Background(), "POST", path, nil, body, &out); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return out["id"].(string)
}

// storeOtherAccount makes a second account (by the bootstrap key) with a
// log stream of its own.
func storeOtherAccount(t *testing.T, srv *testutil.Server) (*client.Client, string) {
	t.Helper()
	c, _ := newAccount(t, srv)
	return c, storeLogStream(t, c, "other")
}

// storeRecord is a flow from src that ended at end.
func storeRecord(src string, bytes, packets uint64, end time.Time) flow.Record {
	return flow.Record{SrcAddr: netip.MustParseAddr(src), DstAddr: netip.MustParseAddr("192.0.2.1"),
		SrcPort: 40000, DstPort: 443, Protocol: 6, Bytes: bytes, Packets: packets,
		Start: end.Add(-time.Second).UnixMilli(), End: end.UnixMilli()}
}

// storeMany is n flows from n sources.
func storeMany(end time.Time, n int) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		recs[i] = storeRecord(fmt.Sprintf("10.1.%d.%d", i/250, i%250), uint64(100+i), 1, end)
		recs[i].DstPort = uint16(i)
	}
	return recs
}

// storeFeed sends recs as IPFIX from 127.0.0.1 to the collector, all in
// one datagram per 20 records, until they are all in the stream; it
// returns how many times each was stored (a datagram sent before the flow
// log was wired may be dropped, so sending repeats until the records show).
func storeFeed(t *testing.T, c *client.Client, port int, stream string, window query.Request, recs []flow.Record) int {
	t.Helper()
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := netflow.NewBuilder(netflow.IPFIX)
	if err != nil {
		t.Fatal(err)
	}
	count := window
	count.Aggregates = []query.Aggregate{{Func: "count"}}
	var seq uint32
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		for i := 0; i < len(recs); i += 20 {
			b.Reset(nil, netflow.Clock{ExportMs: time.Now().UnixMilli()})
			b.AppendTemplates(false)
			for j := i; j < min(i+20, len(recs)); j++ {
				if err := b.AppendRecord(&recs[j]); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := conn.Write(b.Finish(netflow.MessageHeader{Sequence: seq, Domain: 1})); err != nil {
				t.Fatal(err)
			}
			seq += uint32(b.Records())
			time.Sleep(time.Millisecond) // paced, so the socket buffer never drops
		}
		for range 15 {
			time.Sleep(200 * time.Millisecond)
			resp, err := storeQuery(c, stream, count)
			if err != nil {
				t.Fatal(err)
			}
			if got := int(resp.Rows[0][0].(uint64)); got > 0 && got%len(recs) == 0 {
				return got / len(recs)
			}
		}
	}
	t.Fatalf("the %d records sent never all reached the log stream", len(recs))
	return 0
}

// storeQuery runs q on a log stream.
func storeQuery(c *client.Client, stream string, q query.Request) (*query.Response, error) {
	if q.Limit == 0 {
		q.Limit = query.MaxLimit
	}
	var resp query.Response
	err := c.JSON(context.Background(), "POST", "/v1/log-streams/"+stream+"/query", nil, q, &resp)
	return &resp, err
}

// storeLargestList is the longest "prefix v0, v1, …)" of values of gen the
// parser accepts.
func storeLargestList(prefix string, gen func(int) string) string {
	s := prefix + gen(0)
	for i := 1; ; i++ {
		next := s + ", " + gen(i)
		if len(next)+1 > query.MaxFilterLen {
			return s + ")"
		}
		s = next
	}
}

// storeSlowFilter is a 16 KiB chain of comparisons that cannot be
// merged into a set: the costliest filter to evaluate per record.
func storeSlowFilter() string {
	var sb strings.Builder
	sb.WriteString("bytes < 1")
	for i := 0; sb.Len() < query.MaxFilterLen-40; i++ {
		fmt.Fprintf(&sb, " or dstport > %d and bytes < %d", 60000+i%5000, i%90)
	}
	return sb.String()
}
