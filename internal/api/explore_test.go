package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/client"
	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/storetest"
)

// exploreAnswer is the explore endpoint's answer, as a client reads it.
type exploreAnswer struct {
	LogStreamIDs []string `json:"log_stream_ids"`
	IntervalMS   int64    `json:"interval_ms"`
	Times        []int64  `json:"times"`
	Total        uint64   `json:"total"`
	Top          []row    `json:"top"`
	Other        row      `json:"other"`
	Sankey       *struct {
		Links []struct {
			Source, Target struct {
				Dimension, Value string
				Other            bool
			}
			Value uint64
		}
	}
}

type row struct {
	Key   []string
	Total uint64
	Rates []float64
	Stats *struct{ Min, Avg, P95, Max float64 }
}

// TestExplore checks POST /v1/explore over two log streams with records
// (and one without) against the query endpoint over each stream: the top
// keys' totals, Other, the window's total, every bucket's rate and the
// Sankey links; then what it refuses.
func TestExplore(t *testing.T) {
	e := newEnv(t)
	lg := str(e.must(201, "POST", "/v1/log-groups", map[string]any{"name": "explore"}), "id")
	stream := func(name string) string {
		return str(e.must(201, "POST", "/v1/log-groups/"+lg+"/log-streams", map[string]any{"name": name, "retention_days": 3650}), "id")
	}
	a, b, empty := stream("a"), stream("b"), stream("empty")
	e.srv.Stop()
	st, err := duckdb.New(duckdb.Config{Dir: e.srv.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One record of b has no addresses (as a NODATA record): the top source.
	noAddr := flow.Record{Packets: 1, Bytes: 1 << 40, Start: storetest.Base.UnixMilli(), End: storetest.Base.Add(time.Hour).UnixMilli()}
	for ls, recs := range map[string][]flow.Record{a: storetest.Records(3000, 6*time.Hour, 31),
		b: append(storetest.Records(2000, 6*time.Hour, 32), noAddr)} {
		id := store.StreamID{Account: e.srv.Account, Stream: ls}
		if err := st.CreateStream(ctx, store.Stream{StreamID: id, Group: lg, RetentionDays: 3650}); err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, id, recs); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	e.srv.Start()

	// A window that is not whole hours, so rollups answer the middle and
	// records the ends.
	since, until := storetest.Base.Add(95*time.Second), storetest.Base.Add(5*time.Hour+31*time.Minute)
	req := func(kv ...any) map[string]any {
		m := map[string]any{"since": since, "until": until, "dimensions": []string{"srcaddr"}, "top": 5, "interval": "10m",
			"include": []string{"series", "sankey"}, "log_stream_ids": []string{a, empty, b}}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	longFilter := "not srcport in (1"
	for p := 2; len(longFilter) < 16<<10-300; p++ {
		longFilter += ", " + strconv.Itoa(p)
	}
	longFilter += ")"
	for _, c := range []struct {
		name    string
		body    map[string]any
		agg     map[string]any
		factor  float64
		dims    []string
		streams []string
	}{
		{"bytes", req(), sum("bytes"), 8, []string{"srcaddr"}, []string{a, b}},
		{"packets", req("measure", "packets", "where", "protocol = 6"), sum("packets"), 1, []string{"srcaddr"}, []string{a, b}},
		{"flows", req("measure", "flows", "dimensions", []string{"action", "protocol"}), map[string]any{"func": "count"}, 1, []string{"action", "protocol"}, []string{a, b}},
		{"three dims", req("dimensions", []string{"dstport", "srcaddr", "action"}, "top", 50, "where", "dstport != 22"), sum("bytes"), 8, []string{"dstport", "srcaddr", "action"}, []string{a, b}},
		// A filter so long that with the top keys it exceeds the filter's limit.
		{"long filter", req("top", 50, "where", longFilter), sum("bytes"), 8, []string{"srcaddr"}, []string{a, b}},
		{"one stream", req("log_stream_ids", []string{b}), sum("bytes"), 8, []string{"srcaddr"}, []string{b}},
		{"all streams", req("log_stream_ids", nil), sum("bytes"), 8, []string{"srcaddr"}, []string{a, b}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := explore(t, e.c, 200, c.body)
			where, _ := c.body["where"].(string)
			checkExplore(t, e, got, c.streams, c.dims, where, c.agg, c.factor, since, until)
		})
	}

	t.Run("AutoInterval", func(t *testing.T) {
		got := explore(t, e.c, 200, req("interval", nil, "until", since.Add(24*time.Hour)))
		if got.IntervalMS != 15*60_000 || len(got.Times) != 97 || len(got.Other.Rates) != 97 {
			t.Errorf("24 h: interval %d ms, %d buckets; want 15 min, 97 (the first starts before since)", got.IntervalMS, len(got.Times))
		}
	})

	t.Run("TotalsOnly", func(t *testing.T) {
		full := explore(t, e.c, 200, req())
		got := explore(t, e.c, 200, req("include", []string{}))
		if len(got.Times) != 0 || got.Other.Rates != nil || got.Sankey != nil {
			t.Errorf("include [] answered series or a Sankey: %d buckets", len(got.Times))
		}
		if got.Total != full.Total || got.Other.Total != full.Other.Total || len(got.Top) != len(full.Top) {
			t.Fatalf("totals only: total %d other %d, %d keys; with series: %d %d %d",
				got.Total, got.Other.Total, len(got.Top), full.Total, full.Other.Total, len(full.Top))
		}
		for i := range got.Top {
			if got.Top[i].Total != full.Top[i].Total || !slices.Equal(got.Top[i].Key, full.Top[i].Key) {
				t.Errorf("top %d: %v %d, with series %v %d", i, got.Top[i].Key, got.Top[i].Total, full.Top[i].Key, full.Top[i].Total)
			}
		}
	})

	t.Run("Refused", func(t *testing.T) {
		k := e.must(201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
		other := e.clientFor(str(k, "access_key_id"), str(k, "access_key_secret"))
		wantErrC(t, other, 404, "NotFound.LogStream", "POST", "/v1/explore", req("log_stream_ids", []string{a}))
		if got := explore(t, other, 200, req("log_stream_ids", nil)); got.Total != 0 || len(got.Top) != 0 || len(got.LogStreamIDs) != 0 {
			t.Errorf("another account's explore over all its (no) streams: %+v", got)
		}
		for code, body := range map[string]map[string]any{
			"NotFound.LogStream":          req("log_stream_ids", []string{a, "ls-none"}),
			"InvalidParameter.dimensions": req("dimensions", []string{}),
			"InvalidParameter.measure":    req("measure", "bits"),
			"InvalidParameter.top":        req("top", 51),
			"InvalidParameter.interval":   req("interval", "1ms"),
			"InvalidParameter.include":    req("include", []string{"pie"}),
			"InvalidQuery":                req("where", "srcaddr = = 1"),
			"UnknownField.group_by":       req("group_by", []string{"srcaddr"}),
		} {
			status := 400
			if strings.HasPrefix(code, "NotFound") {
				status = 404
			}
			e.wantErr(status, code, "POST", "/v1/explore", body)
		}
		e.wantErr(400, "InvalidParameter.dimensions", "POST", "/v1/explore", req("dimensions", []string{"srcaddr", "srcaddr"}))
		e.wantErr(400, "InvalidParameter.interval", "POST", "/v1/explore", req("interval", "1s", "until", since.Add(2*time.Hour)))
		e.wantErr(400, "InvalidQuery", "POST", "/v1/explore", req("until", since))
	})
}

func sum(field string) map[string]any { return map[string]any{"func": "sum", "field": field} }

func explore(t *testing.T, c *client.Client, status int, body map[string]any) exploreAnswer {
	t.Helper()
	resp, err := c.Do(context.Background(), "POST", "/v1/explore", nil, body, nil)
	if err != nil || resp.Status != status {
		t.Fatalf("explore %.300v: %v %d %.300s", body, err, resp.Status, resp.Body)
	}
	var out exploreAnswer
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExplore compares an explore answer with what the query endpoint says
// of each stream, summed.
func checkExplore(t *testing.T, e *env, got exploreAnswer, streams, dims []string, where string, agg map[string]any,
	factor float64, since, until time.Time) {
	t.Helper()
	totals := map[string]uint64{}  // key → total
	buckets := map[string]uint64{} // key, bucket start → sum
	windowBy := map[int64]uint64{} // bucket start → the window's sum
	for _, ls := range streams {
		for _, r := range rows(t, e, ls, map[string]any{"since": since, "until": until, "where": where, "group_by": dims,
			"aggregates": []any{agg}, "limit": 100000}) {
			totals[fmt.Sprint(r[:len(dims)])] += uint64(r[len(dims)].(float64))
		}
		for _, r := range rows(t, e, ls, map[string]any{"since": since, "until": until, "where": where, "group_by": dims,
			"interval": "10m", "aggregates": []any{agg}, "limit": 100000}) {
			buckets[fmt.Sprint(r[1:1+len(dims)], int64(r[0].(float64)))] += uint64(r[1+len(dims)].(float64))
			windowBy[int64(r[0].(float64))] += uint64(r[1+len(dims)].(float64))
		}
	}
	var total, inTop uint64
	for _, v := range totals {
		total += v
	}
	if got.Total != total || total == 0 {
		t.Fatalf("total %d, the query endpoint's %d", got.Total, total)
	}
	if len(got.Top) == 0 || len(got.Top) > 50 {
		t.Fatalf("%d top keys", len(got.Top))
	}
	least := got.Top[len(got.Top)-1].Total
	seen := map[string]bool{}
	for i, r := range got.Top {
		k := fmt.Sprint(r.Key)
		seen[k] = true
		if r.Total != totals[k] || i > 0 && r.Total > got.Top[i-1].Total {
			t.Errorf("top %d %v: %d, the query endpoint's %d (or out of order)", i, r.Key, r.Total, totals[k])
		}
		inTop += r.Total
	}
	for k, v := range totals {
		if !seen[k] && v > least {
			t.Errorf("%s (%d) is not in the top, whose least is %d", k, v, least)
		}
	}
	if got.Other.Total != total-inTop {
		t.Errorf("other %d, want %d − %d", got.Other.Total, total, inTop)
	}
	// Every bucket: each key's rate, and Other's as the window's less the top's.
	const ms = 600_000
	if got.IntervalMS != ms || got.Times[0] > since.UnixMilli() || got.Times[len(got.Times)-1]+ms < until.UnixMilli() {
		t.Fatalf("buckets of %d ms from %d to %d, for the window %v – %v", got.IntervalMS, got.Times[0], got.Times[len(got.Times)-1], since, until)
	}
	rate := func(v uint64) float64 { return float64(v) * factor * 1000 / ms }
	for bi, tm := range got.Times {
		rest := windowBy[tm]
		for _, r := range got.Top {
			v := buckets[fmt.Sprint(r.Key, tm)]
			rest -= v
			if !near(r.Rates[bi], rate(v)) {
				t.Errorf("%v at %d: rate %v, want %v", r.Key, tm, r.Rates[bi], rate(v))
			}
		}
		if !near(got.Other.Rates[bi], rate(rest)) {
			t.Errorf("other at %d: rate %v, want %v", tm, got.Other.Rates[bi], rate(rest))
		}
	}
	for _, r := range append(slices.Clone(got.Top), got.Other) {
		sorted := slices.Sorted(slices.Values(r.Rates))
		if s := r.Stats; s == nil || s.Min != sorted[0] || s.Max != sorted[len(sorted)-1] || s.P95 < s.Min || s.P95 > s.Max ||
			!near(s.Avg, rate(r.Total)/float64(len(r.Rates))) {
			t.Errorf("%v: stats %+v of rates %v", r.Key, r.Stats, r.Rates)
		}
	}
	checkSankey(t, got, dims)
}

// checkSankey: each pair of consecutive values of the top keys is a link
// with the sum of their totals, and the rest flows between Other nodes.
func checkSankey(t *testing.T, got exploreAnswer, dims []string) {
	t.Helper()
	if len(dims) < 2 {
		if got.Sankey != nil {
			t.Errorf("a Sankey of one dimension: %+v", got.Sankey)
		}
		return
	}
	want := map[string]uint64{}
	for i := 0; i+1 < len(dims); i++ {
		for _, r := range got.Top {
			want[dims[i]+" "+r.Key[i]+" → "+dims[i+1]+" "+r.Key[i+1]] += r.Total
		}
		want[dims[i]+" Other → "+dims[i+1]+" Other"] = got.Other.Total
	}
	links := map[string]uint64{}
	for _, l := range got.Sankey.Links {
		name := func(dim, v string, other bool) string {
			if other {
				return dim + " Other"
			}
			return dim + " " + v
		}
		links[name(l.Source.Dimension, l.Source.Value, l.Source.Other)+" → "+name(l.Target.Dimension, l.Target.Value, l.Target.Other)] += l.Value
	}
	if got.Other.Total == 0 || fmt.Sprint(links) != fmt.Sprint(want) {
		t.Errorf("sankey %v, want %v", links, want)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// rows runs the query endpoint over one stream and returns its rows.
func rows(t *testing.T, e *env, ls string, body map[string]any) [][]any {
	t.Helper()
	m := e.must(200, "POST", "/v1/log-streams/"+ls+"/query", body)
	var out [][]any
	rs, _ := m["rows"].([]any)
	for _, r := range rs {
		out = append(out, r.([]any))
	}
	return out
}
