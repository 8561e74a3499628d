package storetest

import (
	"context"
	"math"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// RollupRecords are the data set of the backends' rollup tests: three
// hours across midnight, led by records whose counters sum past 64 bits
// in the same minute and key.
func RollupRecords() []flow.Record {
	recs := Records(30000, 3*time.Hour, 5)
	big := recs[0]
	big.Bytes, big.Packets = 1<<63+5, 3
	huge := big
	huge.Bytes, huge.Packets = math.MaxUint64-1, math.MaxUint64/2
	return append([]flow.Record{big, big, huge, huge}, recs...)
}

// RollupCases are questions over RollupRecords that a rollup answers, in
// windows on and off minute and hour boundaries, and last one that none
// does (no whole minute in its window).
func RollupCases() []query.Request {
	base := Base
	odd := func(d time.Duration) time.Time { return base.Add(d + 61*time.Second + 7*time.Millisecond) }
	sum := func(f string) query.Aggregate { return query.Aggregate{Func: "sum", Field: f} }
	count := query.Aggregate{Func: "count"}
	return []query.Request{
		{Since: base, Until: base.Add(3 * time.Hour), GroupBy: []string{"srcaddr"}, Aggregates: []query.Aggregate{sum("packets"), count, sum("bytes")}, Limit: 10},
		{Since: odd(0), Until: odd(2 * time.Hour), GroupBy: []string{"srcaddr"}, Aggregates: []query.Aggregate{sum("packets")}, Limit: 10},
		{Since: odd(time.Hour), Until: base.Add(3 * time.Hour), Where: "srcaddr in 10.1.0.0/16", Aggregates: []query.Aggregate{count}},
		{Since: base, Until: odd(150 * time.Minute), Interval: "1h", Where: "srcaddr in 10.0.0.0/8", Aggregates: []query.Aggregate{sum("packets")}, Limit: 1000},
		{Since: odd(0), Until: odd(160 * time.Minute), Interval: "1h", GroupBy: []string{"protocol"}, Aggregates: []query.Aggregate{count, sum("packets")}, Limit: 1000},
		{Since: base, Until: base.Add(3 * time.Hour), GroupBy: []string{"dstport"}, Where: "protocol = 6 and dstport in (80, 443)", Aggregates: []query.Aggregate{count}, OrderBy: "dstport", Ascending: true},
		{Since: odd(30 * time.Minute), Until: odd(90 * time.Minute), GroupBy: []string{"dstport"}, Where: "protocol != 1", Aggregates: []query.Aggregate{count}, Limit: 5},
		{Since: odd(0), Until: odd(170 * time.Minute), Interval: "1m", Aggregates: []query.Aggregate{sum("bytes"), count}, Limit: 1000},
		{Since: base.Add(30 * time.Second), Until: base.Add(50 * time.Second), Aggregates: []query.Aggregate{count}}, // no whole minute
	}
}

// Rolled is a store whose rollups can be turned off.
type Rolled interface {
	Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error)
	UseRollups(on bool)
}

// SameBothWays checks that q over recs gets the oracle's answer from s
// both with its rollups and from its records alone.
func SameBothWays(t *testing.T, s Rolled, id store.StreamID, q query.Request, recs []flow.Record) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Query(ctx, id, q)
	if err != nil {
		t.Fatal(err)
	}
	s.UseRollups(false)
	fromRecords, err := s.Query(ctx, id, q)
	s.UseRollups(true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Answer(q, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Rows) == 0 {
		t.Fatalf("%+v selects nothing", q)
	}
	Equal(t, q, got, want)
	Equal(t, q, fromRecords, want)
}
