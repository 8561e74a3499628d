package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// Run is the suite every backend passes: namespaces, lossless round trip,
// the query cases (each compared with the Go oracle, so the backends give
// the same answers), paging, retention, and Commit's positions.
func Run(t *testing.T, s store.Store) {
	ctx := context.Background()
	t.Run("Namespaces", func(t *testing.T) { testNamespaces(ctx, t, s) })
	t.Run("Commit", func(t *testing.T) { testCommit(ctx, t, s) })
	t.Run("Queries", func(t *testing.T) { testQueries(ctx, t, s) })
	t.Run("Streams", func(t *testing.T) { testStreams(ctx, t, s) })
	t.Run("HandChecked", func(t *testing.T) { testHandChecked(ctx, t, s) })
	t.Run("HugeCounters", func(t *testing.T) { testHugeCounters(ctx, t, s) })
	t.Run("Retention", func(t *testing.T) { testRetention(ctx, t, s) })
}

func testNamespaces(ctx context.Context, t *testing.T, s store.Store) {
	a := store.StreamID{Account: "acct-ns-a", Stream: "ls-1"}
	b := store.StreamID{Account: "acct-ns-b", Stream: "ls-1"} // same id, other account
	for _, st := range []store.Stream{{StreamID: a, Group: "lg-1"}, {StreamID: b, Group: "lg-x", RetentionDays: 7},
		{StreamID: store.StreamID{Account: "acct-ns-a", Stream: "ls-0"}, Group: "lg-1"}} {
		if err := s.CreateStream(ctx, st); err != nil {
			t.Fatalf("create %v: %v", st.StreamID, err)
		}
	}
	if err := s.CreateStream(ctx, store.Stream{StreamID: a, Group: "lg-2", RetentionDays: 3}); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err := s.Stream(ctx, a)
	if err != nil || got.Group != "lg-2" || got.RetentionDays != 3 || got.Created.IsZero() {
		t.Fatalf("Stream(%v) = %+v, %v; want group lg-2, retention 3", a, got, err)
	}
	list, err := s.Streams(ctx, "acct-ns-a")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range list {
		names = append(names, st.Stream)
	}
	if !slices.Equal(names, []string{"ls-0", "ls-1"}) {
		t.Errorf("Streams(acct-ns-a) = %v, want [ls-0 ls-1]", names)
	}
	if _, err := s.Stream(ctx, store.StreamID{Account: "acct-ns-c", Stream: "ls-1"}); !errors.Is(err, store.ErrNoStream) {
		t.Errorf("Stream of unknown account: %v, want ErrNoStream", err)
	}
	if err := s.CreateStream(ctx, store.Stream{StreamID: store.StreamID{Account: "", Stream: "x"}}); !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("empty account: %v, want ErrInvalidName", err)
	}
	if err := s.CreateStream(ctx, store.Stream{StreamID: a, RetentionDays: -1}); !errors.Is(err, store.ErrInvalidRetention) {
		t.Errorf("negative retention: %v, want ErrInvalidRetention", err)
	}
	recs := Records(100, time.Hour, 7)
	if err := s.Append(ctx, a, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, store.StreamID{Account: "acct-ns-c", Stream: "ls-1"}, recs); !errors.Is(err, store.ErrNoStream) {
		t.Errorf("append to unknown stream: %v, want ErrNoStream", err)
	}
	q := query.Request{Since: Base, Until: Base.Add(time.Hour), Aggregates: []query.Aggregate{{Func: "count"}}}
	for id, want := range map[store.StreamID]uint64{a: 100, b: 0} {
		resp, err := s.Query(ctx, id, q)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Rows[0][0]; got != want {
			t.Errorf("count in %v = %v, want %d (accounts must not see each other)", id, got, want)
		}
	}
	if err := s.DeleteStream(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stream(ctx, a); !errors.Is(err, store.ErrNoStream) {
		t.Errorf("Stream of deleted stream: %v, want ErrNoStream", err)
	}
	if resp, err := s.Query(ctx, a, q); err != nil || resp.Rows[0][0] != uint64(0) {
		t.Errorf("query of deleted stream: %v %v, want an empty answer", resp, err)
	}
	if _, err := s.Stream(ctx, a); !errors.Is(err, store.ErrNoStream) {
		t.Errorf("a query re-created the deleted stream: %v", err)
	}
	if err := s.CreateStream(ctx, store.Stream{StreamID: a}); err != nil {
		t.Fatal(err)
	}
	if resp, err := s.Query(ctx, a, q); err != nil || resp.Rows[0][0] != uint64(0) {
		t.Errorf("re-created stream: %v %v, want an empty stream", resp, err)
	}
}

// Cases are the query suite, over Records(20000, 30h, 1) appended in
// batches: the window crosses midnight, so two days are involved.
func Cases() []query.Request {
	all := func(q query.Request) query.Request {
		if q.Since.IsZero() {
			q.Since, q.Until = Base, Base.Add(30*time.Hour)
		}
		return q
	}
	sum := func(f string) []query.Aggregate { return []query.Aggregate{{Func: "sum", Field: f}} }
	hour := func(h int) time.Time { return Base.Add(time.Duration(h) * time.Hour) }
	qs := []query.Request{
		{GroupBy: []string{"srcaddr"}, Aggregates: sum("bytes"), Limit: 10},
		{Since: hour(1), Until: hour(2), GroupBy: []string{"srcaddr"}, Aggregates: sum("bytes"), Limit: 10},
		{Where: "protocol = 6 and dstport in (80, 443)", GroupBy: []string{"srcaddr"}, Aggregates: sum("packets"), Limit: 10},
		{GroupBy: []string{"flow_log_id", "interface_id"}, Aggregates: []query.Aggregate{{Func: "count"}, {Func: "sum", Field: "bytes"}}},
		{Interval: "10m", Where: "srcaddr in 10.1.0.0/16", Aggregates: sum("bytes"), Limit: 1000},
		{Interval: "1h", GroupBy: []string{"protocol"}, Aggregates: sum("bytes"), Limit: 1000},
		{GroupBy: []string{"dstport"}, Aggregates: []query.Aggregate{{Func: "count_distinct", Field: "srcaddr"}}},
		{Where: "not (srcaddr in 10.0.0.0/8)", Aggregates: []query.Aggregate{{Func: "count"}}},
		{Where: "srcaddr in 2001:db8::/32 and srcaddr != 2001:db8::5", GroupBy: []string{"srcaddr"}, Aggregates: sum("bytes"), Limit: 20},
		{Where: "srcaddr in ::/0", Aggregates: []query.Aggregate{{Func: "count"}}},
		{Where: "dstaddr in (192.168.0.0/24, 2001:db8:ffff::1) or srcaddr = 10.2.0.7", GroupBy: []string{"dstaddr"}, Aggregates: sum("bytes"), Limit: 5},
		{Where: `action = 'it''s' or action = "a""b" or action in ('x\y', 'tab	here', 'ünï')`, GroupBy: []string{"action"}, Aggregates: []query.Aggregate{{Func: "count"}}},
		{Where: "action > 'REJECT' and action <= 'x'", GroupBy: []string{"action"}},
		{Where: "start >= 2026-03-15T02:00:00Z and end < 1773547200000", Aggregates: []query.Aggregate{{Func: "count"}, {Func: "sum", Field: "packets"}}},
		{Where: "end_reason = 'idle' and (flow_direction = ingress or flow_direction = '')", GroupBy: []string{"end_reason", "flow_direction"}},
		{Where: "tcp_flags >= 32 and not tos in (0, 8) and vlan_id != 100", Limit: 50, Offset: 20},
		{Where: "bytes > 1000000", Limit: 30},
		{GroupBy: []string{"dstport"}, Aggregates: sum("bytes"), OrderBy: "dstport", Ascending: true},
		{GroupBy: []string{"srcaddr"}, Aggregates: []query.Aggregate{{Func: "count"}}, OrderBy: "srcaddr", Limit: 7, Offset: 3},
		{GroupBy: []string{"icmp_type", "icmp_code"}, Where: "protocol = 1", Aggregates: []query.Aggregate{{Func: "count"}}, OrderBy: "count", Ascending: true},
		{Since: Base.Add(-48 * time.Hour), Until: Base.Add(-24 * time.Hour), GroupBy: []string{"srcaddr"}, Aggregates: sum("bytes")},
		{Since: Base.Add(-48 * time.Hour), Until: Base.Add(-24 * time.Hour), Aggregates: sum("bytes")},
		// Long in lists, compiled to sets: numbers, strings, times, and
		// addresses and prefixes of every kind.
		{Where: "dstport in (" + numbers(0, 100) + ")", GroupBy: []string{"dstport"}},
		{Where: "not dstport in (" + numbers(3000, 3400) + ") and action in ('ACCEPT', 'it''s', " + quoted(30) + ")", GroupBy: []string{"action"}},
		{Where: "end in (" + ends(25) + ")", Limit: 100},
		{Where: "srcaddr in (" + bigAddrList + ")", GroupBy: []string{"srcaddr"}, Aggregates: sum("bytes"), Limit: 1000},
		{Where: "not srcaddr in (" + bigAddrList + ") and dstaddr in (" + bigAddrList + ")", Aggregates: []query.Aggregate{{Func: "count"}}},
		{Where: "dstport = 22 or protocol = 1 or dstport = 80 or dstport in (53, 443) or srcaddr = 10.0.0.3 or srcaddr = 10.0.0.4",
			GroupBy: []string{"dstport", "protocol"}},
		{Where: "dstport != 22 and dstport != 80 and not dstport in (53) and protocol != 1", GroupBy: []string{"dstport"}},
		// The fields filled at ingest (interfaces, GeoIP, ASN).
		{Where: "src_country = 'DE'", GroupBy: []string{"src_as"}, Aggregates: sum("bytes")},
		{Where: "dst_country in ('US', '') and src_as_name != ''", GroupBy: []string{"src_as_name", "dst_as"}, Aggregates: sum("packets")},
		{Where: "in_if_speed >= 10000000000 and out_if_index = 2", GroupBy: []string{"in_if_name", "out_if_name"}, Aggregates: []query.Aggregate{{Func: "count"}}},
		{Where: "dst_as > 4200000000", GroupBy: []string{"dst_country"}, Aggregates: []query.Aggregate{{Func: "count_distinct", Field: "src_as"}}},
	}
	for i := range qs {
		qs[i] = all(qs[i])
	}
	return qs
}

// numbers lists the integers [from, to) for an in list.
func numbers(from, to int) string {
	var l []string
	for i := from; i < to; i++ {
		l = append(l, strconv.Itoa(i))
	}
	return strings.Join(l, ", ")
}

// quoted lists n strings that match nothing.
func quoted(n int) string {
	var l []string
	for i := range n {
		l = append(l, fmt.Sprintf("'none-%d'", i))
	}
	return strings.Join(l, ", ")
}

// ends lists the end times of the first n records of the query data set.
func ends(n int) string {
	var l []string
	for _, r := range Records(n, 30*time.Hour, 1) {
		l = append(l, strconv.FormatInt(r.End, 10))
	}
	return strings.Join(l, ", ")
}

// bigAddrList mixes IPv4 and IPv6 addresses and prefixes of many lengths,
// IPv6 prefixes that hold the IPv4-mapped range, and duplicates.
var bigAddrList = func() string {
	l := []string{"10.0.0.0/30", "10.1.0.0/28", "10.2.0.9", "10.2.0.9", "192.168.1.0/25", "::/1", "::ffff:0:0/96",
		"2001:db8::/127", "2001:db8::3", "2001:db8::100:0:0:1", "2001:db8:ffff::1/128", "2001:db8::/64", "2001:d00::/24", "8000::/1", "2001:db8::/65", "10.2.0.0/31"}
	for i := range 40 {
		l = append(l, fmt.Sprintf("10.0.0.%d", 20+i), fmt.Sprintf("2001:db8:%x::5", i), fmt.Sprintf("172.%d.0.0/%d", 16+i%16, 12+i%21))
	}
	return strings.Join(l, ", ")
}()

func testQueries(ctx context.Context, t *testing.T, s store.Store) {
	id := store.StreamID{Account: "acct-q", Stream: "ls-q"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id, Group: "lg"}); err != nil {
		t.Fatal(err)
	}
	recs := Records(20000, 30*time.Hour, 1)
	for b := range slices.Chunk(recs, 3000) {
		if err := s.Append(ctx, id, b); err != nil {
			t.Fatal(err)
		}
	}
	for i, q := range Cases() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, err := s.Query(ctx, id, q)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			want, err := Answer(q, recs)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Rows)+len(want.Records) == 0 && !q.Since.Before(Base) {
				t.Fatalf("case %d selects nothing; it tests nothing", i)
			}
			Equal(t, q, got, want)
		})
	}
	t.Run("Paging", func(t *testing.T) {
		checkPaging(t, recs, func(q query.Request) (*query.Response, error) { return s.Query(ctx, id, q) })
	})
	t.Run("RoundTrip", func(t *testing.T) { // every field comes back as written
		q := query.Request{Since: Base, Until: Base.Add(30 * time.Hour), Limit: query.MaxLimit}
		resp, err := s.Query(ctx, id, q)
		if err != nil {
			t.Fatal(err)
		}
		SameRecords(t, resp.Records, recs)
	})
	t.Run("BadRequest", func(t *testing.T) {
		for _, q := range []query.Request{
			{Since: Base, Until: Base, Limit: 1},
			{Since: Base, Until: Base.Add(time.Hour), Where: "srcaddr in (10.0.0.0/8"},
			{Since: Base, Until: Base.Add(time.Hour), Where: "nosuch = 1"},
			{Since: Base, Until: Base.Add(time.Hour), GroupBy: []string{"bytes; DROP TABLE x"}},
			{Since: Base, Until: Base.Add(time.Hour), Aggregates: []query.Aggregate{{Func: "sum", Field: "action"}}},
			{Since: Base, Until: Base.Add(time.Hour), GroupBy: []string{"srcaddr"}, OrderBy: "bytes"},
		} {
			if _, err := s.Query(ctx, id, q); !errors.Is(err, query.ErrInvalid) {
				t.Errorf("%+v: err %v, want ErrInvalid", q, err)
			}
		}
	})
}

// testHandChecked uses three records whose answers are worked out by hand.
func testHandChecked(ctx context.Context, t *testing.T, s store.Store) {
	id := store.StreamID{Account: "acct-h", Stream: "ls-h"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	mk := func(src string, bytes uint64, min int) flow.Record {
		var r flow.Record
		f, _ := flow.FieldByName("srcaddr")
		f.Set(&r, src)
		r.Bytes, r.Packets, r.End = bytes, 1, Base.Add(time.Duration(min)*time.Minute).UnixMilli()
		return r
	}
	recs := []flow.Record{mk("10.0.0.1", 100, 1), mk("10.0.0.2", 300, 2), mk("10.0.0.1", 250, 61), mk("fe80::1", 1, 3)}
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	q := query.Request{Since: Base, Until: Base.Add(2 * time.Hour), GroupBy: []string{"srcaddr"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, Where: "srcaddr in 10.0.0.0/8", Limit: 10}
	resp, err := s.Query(ctx, id, q)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]any{{"10.0.0.1", uint64(350)}, {"10.0.0.2", uint64(300)}}
	if !reflect.DeepEqual(resp.Rows, want) {
		t.Errorf("top srcaddr = %v, want %v", resp.Rows, want)
	}
	big := mk("10.9.9.9", 1<<63+5, 5) // a counter beyond int64 still sums exactly
	big2 := mk("10.9.9.9", 7, 6)
	if err := s.Append(ctx, id, []flow.Record{big, big2}); err != nil {
		t.Fatal(err)
	}
	q.Limit = 1
	resp, err = s.Query(ctx, id, q)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]any{{"10.9.9.9", uint64(1<<63 + 12)}}; !reflect.DeepEqual(resp.Rows, want) {
		t.Errorf("top srcaddr with a huge counter = %v, want %v", resp.Rows, want)
	}
	q = query.Request{Since: Base, Until: Base.Add(2 * time.Hour), Interval: "1h", Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}},
		Where: "bytes < 1000"}
	resp, err = s.Query(ctx, id, q)
	if err != nil {
		t.Fatal(err)
	}
	want = [][]any{{Base.UnixMilli(), uint64(100 + 300 + 1 + 7)}, {Base.Add(time.Hour).UnixMilli(), uint64(250)}}
	if !reflect.DeepEqual(resp.Rows, want) {
		t.Errorf("hourly bytes = %v, want %v", resp.Rows, want)
	}
}

// testHugeCounters stores records whose counters sum beyond 64 bits:
// every aggregate over them answers, saturated at 2^64−1, and agrees with
// the oracle.
func testHugeCounters(ctx context.Context, t *testing.T, s store.Store) {
	id := store.StreamID{Account: "acct-huge", Stream: "ls-huge"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	recs := Records(200, time.Hour, 9)
	for i := range 3 { // one source, two minutes, counters near 2^64
		r := recs[i]
		r.SrcAddr = netip.MustParseAddr("10.77.0.1")
		r.Bytes, r.Packets = math.MaxUint64-uint64(i), math.MaxUint64/2+uint64(i)
		r.End = Base.Add(time.Duration(10+i/2) * time.Minute).UnixMilli()
		recs = append(recs, r)
	}
	for _, b := range [][]flow.Record{recs[:100], recs[100:]} { // the huge ones in one batch
		if err := s.Append(ctx, id, b); err != nil {
			t.Fatal(err)
		}
	}
	sums := []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "sum", Field: "packets"}, {Func: "count"}}
	for _, q := range []query.Request{
		{GroupBy: []string{"srcaddr"}, Aggregates: sums, Limit: 5},
		{GroupBy: []string{"srcaddr"}, Aggregates: sums[:1], Where: "srcaddr in 10.0.0.0/8", Limit: 5},
		{Interval: "1m", Aggregates: sums, Limit: 100},
		{Interval: "10m", GroupBy: []string{"protocol"}, Aggregates: sums[:2], Limit: 100},
		{Aggregates: sums},
		{Since: Base.Add(10 * time.Minute), Until: Base.Add(11 * time.Minute), Aggregates: sums},
	} {
		if q.Since.IsZero() {
			q.Since, q.Until = Base, Base.Add(time.Hour)
		}
		got, err := s.Query(ctx, id, q)
		Check(t, q, got, err, recs)
	}
	q := query.Request{Since: Base, Until: Base.Add(time.Hour), Aggregates: sums[:1], Where: "srcaddr = 10.77.0.1"}
	if resp, err := s.Query(ctx, id, q); err != nil || resp.Rows[0][0] != uint64(math.MaxUint64) {
		t.Errorf("sum of bytes beyond 2^64 = %v, %v; want 2^64−1", resp, err)
	}
}

func testRetention(ctx context.Context, t *testing.T, s store.Store) {
	id := store.StreamID{Account: "acct-r", Stream: "ls-r"}
	keep := store.StreamID{Account: "acct-r", Stream: "ls-forever"}
	for _, st := range []store.Stream{{StreamID: id, RetentionDays: 2}, {StreamID: keep}} {
		if err := s.CreateStream(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	day := Base.Truncate(24 * time.Hour)
	var recs []flow.Record
	for d := range 5 { // days day-4 … day, 10 records each
		for _, r := range Records(10, 12*time.Hour, uint64(d)) {
			r.End = r.End - Base.UnixMilli() + day.AddDate(0, 0, d-4).UnixMilli()
			recs = append(recs, r)
		}
	}
	for _, sid := range []store.StreamID{id, keep} {
		if err := s.Append(ctx, sid, recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Expire(ctx, day.Add(13*time.Hour)); err != nil {
		t.Fatal(err)
	}
	q := query.Request{Since: day.AddDate(0, 0, -10), Until: day.AddDate(0, 0, 1), Interval: "24h"}
	for sid, want := range map[store.StreamID]int{id: 2, keep: 5} {
		resp, err := s.Query(ctx, sid, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Rows) != want || resp.Rows[len(resp.Rows)-1][0] != day.UnixMilli() {
			t.Errorf("%v after expiry: days %v, want the last %d", sid, resp.Rows, want)
		}
	}
}

// commitRecords are the records of the Commit tests: commitRecords[i] is
// spool position i.
func commitRecords() []flow.Record { return Records(10000, 30*time.Hour, 13) }

// testCommit commits batches, re-commits overlapping ones with other
// boundaries, and skips positions: each record is stored once and
// Committed follows the highest position.
func testCommit(ctx context.Context, t *testing.T, s store.Store) {
	id := store.StreamID{Account: "acct-c", Stream: "ls-c"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	wantCommitted(ctx, t, s, id, 0)
	recs := commitRecords()
	commit(ctx, t, s, id, 0, recs[:3000], recs[3000:6000])
	wantCommitted(ctx, t, s, id, 6000)
	// Again, cut elsewhere: only 6000…6999 are new.
	commit(ctx, t, s, id, 0, recs[:2500])
	commit(ctx, t, s, id, 2500, recs[2500:4000], recs[4000:7000])
	wantCommitted(ctx, t, s, id, 7000)
	// Append keeps no position.
	extra := Records(50, time.Hour, 14)
	if err := s.Append(ctx, id, extra); err != nil {
		t.Fatal(err)
	}
	wantCommitted(ctx, t, s, id, 7000)
	// A gap: the spool lost 7000…7999.
	commit(ctx, t, s, id, 8000, recs[8000:9000])
	wantCommitted(ctx, t, s, id, 9000)
	commit(ctx, t, s, id, 7000, recs[7000:8500]) // all before the position: skipped
	// An empty batch past the position moves it.
	commit(ctx, t, s, id, 9500, nil)
	wantCommitted(ctx, t, s, id, 9500)
	commit(ctx, t, s, id, 9000, recs[9000:])
	wantCommitted(ctx, t, s, id, 10000)
	wantStored(ctx, t, s, id, slices.Concat(recs[:7000], recs[8000:9000], recs[9500:], extra))

	unknown := store.StreamID{Account: "acct-c", Stream: "nosuch"}
	if err := s.Commit(ctx, unknown, store.Batch{Records: recs[:10]}); !errors.Is(err, store.ErrNoStream) {
		t.Errorf("commit to unknown stream: %v, want ErrNoStream", err)
	}
	wantCommitted(ctx, t, s, unknown, 0)
	// A deleted stream, made again, starts from 0.
	if err := s.DeleteStream(ctx, id); err != nil {
		t.Fatal(err)
	}
	wantCommitted(ctx, t, s, id, 0)
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	wantCommitted(ctx, t, s, id, 0)
	commit(ctx, t, s, id, 0, recs[:100])
	wantStored(ctx, t, s, id, recs[:100])
}

// RunReopen checks what Commit stored survives the store being closed
// and opened again: open opens the same store each time (a new process).
func RunReopen(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	id := store.StreamID{Account: "acct-c", Stream: "ls-reopen"}
	recs := commitRecords()
	s := open(t)
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	commit(ctx, t, s, id, 0, recs[:4000], recs[4000:6000])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	wantCommitted(ctx, t, s, id, 6000)
	commit(ctx, t, s, id, 1000, recs[1000:3000], recs[3000:8000], recs[8000:])
	wantCommitted(ctx, t, s, id, 10000)
	wantStored(ctx, t, s, id, recs)
}

// commit commits batches one after another, the first at position first.
func commit(ctx context.Context, t *testing.T, s store.Store, id store.StreamID, first uint64, batches ...[]flow.Record) {
	t.Helper()
	for _, recs := range batches {
		b := store.Batch{First: first, Records: recs}
		if err := s.Commit(ctx, id, b); err != nil {
			t.Fatalf("commit %d…%d: %v", b.First, b.Next(), err)
		}
		first = b.Next()
	}
}

func wantCommitted(ctx context.Context, t *testing.T, s store.Store, id store.StreamID, want uint64) {
	t.Helper()
	if got, err := s.Committed(ctx, id); err != nil || got != want {
		t.Errorf("Committed(%v) = %d, %v; want %d", id, got, err, want)
	}
}

// wantStored fails unless the stream holds want, each record once.
func wantStored(ctx context.Context, t *testing.T, s store.Store, id store.StreamID, want []flow.Record) {
	t.Helper()
	resp, err := s.Query(ctx, id, query.Request{Since: Base, Until: Base.Add(30 * time.Hour), Limit: query.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	SameRecords(t, resp.Records, want)
}

// Equal fails the test unless a backend's response equals the oracle's,
// after both went through JSON as the API sends them.
// Check fails unless a store's answer to q (got, err) is the oracle's
// answer over recs.
func Check(t *testing.T, q query.Request, got *query.Response, err error, recs []flow.Record) {
	t.Helper()
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	want, err := Answer(q, recs)
	if err != nil {
		t.Fatal(err)
	}
	Equal(t, q, got, want)
}

func Equal(t *testing.T, q query.Request, got, want *query.Response) {
	t.Helper()
	if !reflect.DeepEqual(viaJSON(t, got), viaJSON(t, want)) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%+v:\n got %.2000s\nwant %.2000s", q, g, w)
	}
}

func viaJSON(t *testing.T, r *query.Response) *query.Response {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out query.Response
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// SameRecords fails unless got and want hold the same records, in any order.
func SameRecords(t *testing.T, got, want []flow.Record) {
	t.Helper()
	key := func(r flow.Record) string { b, _ := json.Marshal(&r); return string(b) }
	count := map[string]int{}
	for _, r := range want {
		count[key(r)]++
	}
	for _, r := range got {
		count[key(r)]--
	}
	bad := 0
	for k, n := range count {
		if n != 0 {
			if bad < 3 {
				t.Errorf("record %s: %+d too many", k, -n)
			}
			bad++
		}
	}
	if bad > 0 || len(got) != len(want) {
		t.Errorf("got %d records, want %d; %d differ", len(got), len(want), bad)
	}
}

// checkPaging pages through the records of dstport 443 with ask and
// checks that they are exactly those of recs.
func checkPaging(t *testing.T, recs []flow.Record, ask func(query.Request) (*query.Response, error)) {
	t.Helper()
	q := query.Request{Since: Base, Until: Base.Add(30 * time.Hour), Where: "dstport = 443", Limit: 997}
	var got []flow.Record
	for {
		resp, err := ask(q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.Records...)
		if resp.NextOffset == 0 {
			break
		}
		q.Offset = resp.NextOffset
	}
	var want []flow.Record
	for _, r := range recs {
		if r.DstPort == 443 {
			want = append(want, r)
		}
	}
	SameRecords(t, got, want)
}
