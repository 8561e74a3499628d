package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// testStreams checks QueryStreams: over two written streams, a stream
// created but never written, one that does not exist and a repeated id,
// every query case answers as the oracle over both streams' records, the
// sums equal those of each stream queried alone, and raw records page
// across the streams.
func testStreams(ctx context.Context, t *testing.T, s store.Store) {
	a := store.StreamID{Account: "acct-ms", Stream: "ls-a"}
	b := store.StreamID{Account: "acct-ms", Stream: "ls-b"}
	empty := store.StreamID{Account: "acct-ms", Stream: "ls-empty"}
	absent := store.StreamID{Account: "acct-ms-other", Stream: "ls-a"}
	recsA, recsB := Records(12000, 30*time.Hour, 21), Records(8000, 30*time.Hour, 22)
	for id, recs := range map[store.StreamID][]flow.Record{a: recsA, b: recsB, empty: nil} {
		if err := s.CreateStream(ctx, store.Stream{StreamID: id, Group: "lg"}); err != nil {
			t.Fatal(err)
		}
		for c := range slices.Chunk(recs, 3000) {
			if err := s.Append(ctx, id, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := []store.StreamID{a, empty, b, absent, a}
	both := slices.Concat(recsA, recsB)
	for i, q := range append(Cases(), streamCases()...) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, err := s.QueryStreams(ctx, ids, q)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			want, err := Answer(q, both)
			if err != nil {
				t.Fatal(err)
			}
			Equal(t, q, got, want)
		})
	}
	t.Run("SumOfEach", func(t *testing.T) {
		for _, q := range streamCases() {
			got, err := s.QueryStreams(ctx, ids, q)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]uint64{}
			for _, id := range []store.StreamID{a, b} {
				one, err := s.Query(ctx, id, q)
				if err != nil {
					t.Fatal(err)
				}
				addRows(want, q, one)
			}
			sums := map[string]uint64{}
			addRows(sums, q, got)
			if len(sums) == 0 || !maps.Equal(sums, want) {
				t.Errorf("%+v: %d keys over both streams, %d summed over each; they differ", q, len(sums), len(want))
			}
		}
	})
	t.Run("Empty", func(t *testing.T) {
		q := query.Request{Since: Base, Until: Base.Add(30 * time.Hour), Aggregates: []query.Aggregate{{Func: "count"}}}
		resp, err := s.QueryStreams(ctx, []store.StreamID{empty, absent}, q)
		if err != nil || resp.Rows[0][0] != uint64(0) {
			t.Errorf("streams without records: %v %v, want a count of 0", resp, err)
		}
		if resp, err := s.QueryStreams(ctx, nil, q); err != nil || resp.Rows[0][0] != uint64(0) {
			t.Errorf("no streams: %v %v, want a count of 0", resp, err)
		}
	})
	t.Run("Paging", func(t *testing.T) {
		checkPaging(t, both, func(q query.Request) (*query.Response, error) { return s.QueryStreams(ctx, ids, q) })
	})
}

// streamCases are sums the console asks for, over every group: totals, top
// keys, series by key, in windows that are and are not whole hours (the
// DuckDB rollups answer the whole steps, the records the ends).
func streamCases() []query.Request {
	bytes := []query.Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}}
	odd, oddEnd := Base.Add(95*time.Second), Base.Add(25*time.Hour+31*time.Minute)
	return []query.Request{
		{Since: Base, Until: Base.Add(30 * time.Hour), Aggregates: bytes},
		{Since: odd, Until: oddEnd, GroupBy: []string{"srcaddr"}, Aggregates: bytes, Limit: query.MaxLimit},
		{Since: odd, Until: oddEnd, GroupBy: []string{"protocol", "dstport"}, Aggregates: bytes, Limit: query.MaxLimit},
		{Since: odd, Until: oddEnd, GroupBy: []string{"srcaddr"}, Interval: "1h", Aggregates: bytes, Limit: query.MaxLimit},
		{Since: odd, Until: oddEnd, GroupBy: []string{"dstport"}, Interval: "10m", Aggregates: []query.Aggregate{{Func: "sum", Field: "packets"}}, Limit: query.MaxLimit},
	}
}

// addRows adds each row's aggregates to sums, keyed by its group columns
// and the aggregate's name.
func addRows(sums map[string]uint64, q query.Request, r *query.Response) {
	isAgg := func(name string) bool {
		return slices.ContainsFunc(q.Aggregates, func(a query.Aggregate) bool { return a.Name() == name })
	}
	for _, row := range r.Rows {
		var key []any
		for i, c := range r.Columns {
			if !isAgg(c.Name) {
				key = append(key, row[i])
			}
		}
		for i, c := range r.Columns {
			if isAgg(c.Name) {
				sums[fmt.Sprint(key, c.Name)] += row[i].(uint64)
			}
		}
	}
}
