package api

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// exploreRequest is the body of POST /v1/explore: the console's question,
// over one, several or all of the caller's log streams.
type exploreRequest struct {
	LogStreamIDs []string  `json:"log_stream_ids"` // none: all of the account's
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until"`
	Where        string    `json:"where"`
	Dimensions   []string  `json:"dimensions"`
	Measure      string    `json:"measure"`  // default bytes
	Top          int       `json:"top"`      // default 10
	Interval     string    `json:"interval"` // default: a round step giving at most maxPoints
	Include      []string  `json:"include"`  // series, sankey; absent: series; []: neither
}

// exploreResponse answers it. Totals are in the measure's units (bytes,
// packets, records); rates per second (bits for bytes) over each bucket.
type exploreResponse struct {
	LogStreamIDs []string      `json:"log_stream_ids"`
	Since        time.Time     `json:"since"`
	Until        time.Time     `json:"until"`
	Dimensions   []string      `json:"dimensions"`
	Measure      string        `json:"measure"`
	Unit         string        `json:"unit"` // of the rates
	Interval     string        `json:"interval,omitempty"`
	IntervalMS   int64         `json:"interval_ms,omitempty"`
	Times        []int64       `json:"times,omitempty"` // bucket starts, Unix ms
	Total        uint64        `json:"total"`
	Top          []exploreRow  `json:"top"`
	Other        exploreRow    `json:"other"` // everything not in Top: Total less theirs
	Sankey       *exploreFlows `json:"sankey,omitempty"`
}

// exploreRow is one top key (or Other, without one): its total and, when
// series were asked for, its rate in each bucket and their statistics.
type exploreRow struct {
	Key   []string   `json:"key,omitempty"`
	Total uint64     `json:"total"`
	Rates []float64  `json:"rates,omitempty"`
	Stats *rateStats `json:"stats,omitempty"`
}

type rateStats struct {
	Min float64 `json:"min"`
	Avg float64 `json:"avg"`
	P95 float64 `json:"p95"` // nearest rank
	Max float64 `json:"max"`
}

// exploreFlows links the top keys' values dimension to next dimension; the
// rest of the window flows between the Other nodes.
type exploreFlows struct {
	Links []flowLink `json:"links"`
}

type flowLink struct {
	Source flowNode `json:"source"`
	Target flowNode `json:"target"`
	Value  uint64   `json:"value"`
}

type flowNode struct {
	Dimension string `json:"dimension"`
	Value     string `json:"value,omitempty"`
	Other     bool   `json:"other,omitempty"`
}

// measure is how a measure is summed and drawn as a rate.
type measure struct {
	agg    query.Aggregate
	factor float64 // units to the rate's units
	unit   string
}

var measures = map[string]measure{
	"bytes":   {query.Aggregate{Func: "sum", Field: "bytes"}, 8, "bit/s"},
	"packets": {query.Aggregate{Func: "sum", Field: "packets"}, 1, "packet/s"},
	"flows":   {query.Aggregate{Func: "count"}, 1, "flow/s"},
}

// Bounds of an explore request.
const (
	maxDimensions = 4
	maxTop        = 50
	maxPoints     = 120  // of an automatic interval
	maxBuckets    = 1000 // of a given one
)

// autoSteps are the round intervals an automatic one is chosen from.
var autoSteps = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute,
	15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// explore answers POST /v1/explore.
func (s *Server) explore(w http.ResponseWriter, r *http.Request, c caller) {
	if !s.hasStore(w, r) {
		return
	}
	var req exploreRequest
	if !decode(w, r, c.body, &req) {
		return
	}
	if code, msg := req.check(); code != "" {
		writeError(w, r, http.StatusBadRequest, code, msg)
		return
	}
	base := query.Request{Since: req.Since, Until: req.Until, Where: req.Where, Aggregates: []query.Aggregate{measures[req.Measure].agg}}
	if err := base.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidQuery", err.Error())
		return
	}
	ids, names, err := s.exploreStreams(r.Context(), c.account, req.LogStreamIDs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.runQuery(w, r, c, func(ctx context.Context) (any, error) {
		resp, err := exploreRun(ctx, s.cfg.Store, ids, req, base)
		if resp != nil {
			resp.LogStreamIDs = names
		}
		return resp, err
	})
}

// check validates and completes the request; it returns the error code
// and message of a bad one.
func (q *exploreRequest) check() (code, msg string) {
	if q.Measure == "" {
		q.Measure = "bytes"
	}
	if q.Top == 0 {
		q.Top = 10
	}
	if q.Include == nil { // absent; an empty list asks for the top and totals only
		q.Include = []string{"series"}
	}
	if n := len(q.Dimensions); n < 1 || n > maxDimensions {
		return "InvalidParameter.dimensions", fmt.Sprintf("dimensions: give 1 to %d record fields", maxDimensions)
	}
	for i, d := range q.Dimensions {
		f, ok := flow.FieldByName(d)
		if !ok || f.Kind == flow.KindTime || slices.Contains(q.Dimensions[:i], d) {
			return "InvalidParameter.dimensions", fmt.Sprintf("dimensions: %q is not a record field to group by, or is listed twice", d)
		}
	}
	if _, ok := measures[q.Measure]; !ok {
		return "InvalidParameter.measure", fmt.Sprintf("measure: %q is not bytes, packets or flows", q.Measure)
	}
	if q.Top < 1 || q.Top > maxTop {
		return "InvalidParameter.top", fmt.Sprintf("top: %d is not 1 to %d", q.Top, maxTop)
	}
	for _, w := range q.Include {
		if w != "series" && w != "sankey" {
			return "InvalidParameter.include", fmt.Sprintf("include: %q is not series or sankey", w)
		}
	}
	if q.Interval != "" && q.Since.Before(q.Until) {
		d, err := time.ParseDuration(q.Interval)
		if err != nil || d < time.Second || d%time.Second != 0 || q.Until.Sub(q.Since)/d > maxBuckets {
			return "InvalidParameter.interval", fmt.Sprintf(
				"interval: %q is not a whole number of seconds giving at most %d buckets over the window", q.Interval, maxBuckets)
		}
	}
	return "", ""
}

// step is the series interval: the one asked for, or the shortest round
// one that gives at most maxPoints buckets.
func (q *exploreRequest) step() time.Duration {
	if q.Interval != "" {
		d, _ := time.ParseDuration(q.Interval)
		return d
	}
	span := q.Until.Sub(q.Since)
	for _, d := range autoSteps {
		if span/d <= maxPoints {
			return d
		}
	}
	return autoSteps[len(autoSteps)-1]
}

// exploreStreams resolves the caller's log streams: those listed (any not
// the caller's is not found, as in the query endpoint), or all of them.
func (s *Server) exploreStreams(ctx context.Context, account string, listed []string) ([]store.StreamID, []string, error) {
	var ids []store.StreamID
	names := []string{}
	if len(listed) == 0 {
		all, err := s.svc.AccountLogStreams(ctx, account)
		if err != nil {
			return nil, nil, err
		}
		for _, ls := range all {
			ids, names = append(ids, ls.StoreStream().StreamID), append(names, ls.ID)
		}
		return ids, names, nil
	}
	for _, id := range listed {
		ls, err := s.svc.GetLogStream(ctx, account, id)
		if err != nil {
			return nil, nil, err
		}
		if !slices.Contains(names, ls.ID) {
			ids, names = append(ids, ls.StoreStream().StreamID), append(names, ls.ID)
		}
	}
	return ids, names, nil
}

// exploreRun asks the store for the top keys, then either their series and
// the window's series (totals are the sums of their buckets, so Other is
// exact in every bucket) or the window's total.
func exploreRun(ctx context.Context, st Querier, ids []store.StreamID, req exploreRequest, base query.Request) (*exploreResponse, error) {
	m := measures[req.Measure]
	resp := &exploreResponse{Since: req.Since, Until: req.Until, Dimensions: req.Dimensions, Measure: req.Measure, Unit: m.unit, Top: []exploreRow{}}
	top := base
	top.GroupBy, top.Limit = req.Dimensions, req.Top
	tr, err := st.QueryStreams(ctx, ids, top)
	if err != nil {
		return nil, err
	}
	for _, row := range tr.Rows {
		resp.Top = append(resp.Top, exploreRow{Key: keyOf(row, len(req.Dimensions)), Total: row[len(req.Dimensions)].(uint64)})
	}
	if slices.Contains(req.Include, "series") {
		err = exploreSeries(ctx, st, ids, req, base, resp)
	} else {
		var all *query.Response
		if all, err = st.QueryStreams(ctx, ids, base); err == nil {
			resp.Total = all.Rows[0][0].(uint64)
		}
	}
	if err != nil {
		return nil, err
	}
	var inTop uint64
	for _, t := range resp.Top {
		inTop += t.Total
	}
	resp.Other.Total = resp.Total - min(inTop, resp.Total)
	if slices.Contains(req.Include, "sankey") && len(req.Dimensions) > 1 {
		resp.Sankey = sankeyOf(req.Dimensions, resp.Top, resp.Other.Total)
	}
	return resp, nil
}

// exploreSeries fills in the buckets: the top keys' (read by a filter
// narrowed to them), then the whole window's, whose difference is Other.
// The window's is read last, so records stored meanwhile can only add to it.
func exploreSeries(ctx context.Context, st Querier, ids []store.StreamID, req exploreRequest, base query.Request, resp *exploreResponse) error {
	step := req.step()
	ms := step.Milliseconds()
	first := floorDiv(req.Since.UnixMilli(), ms) * ms
	n := int((req.Until.UnixMilli() - first + ms - 1) / ms)
	resp.Interval, resp.IntervalMS = step.String(), ms
	resp.Times = make([]int64, n)
	for i := range resp.Times {
		resp.Times[i] = first + int64(i)*ms
	}
	series := base
	series.Interval, series.Limit = step.String(), query.MaxLimit
	sums := make([][]uint64, len(resp.Top)+1) // the top keys', then the window's
	for i := range sums {
		sums[i] = make([]uint64, n)
	}
	index := map[string]int{}
	for i, t := range resp.Top {
		index[strings.Join(t.Key, "\x00")] = i
	}
	q := series
	q.GroupBy = req.Dimensions
	for _, where := range narrowed(req.Where, req.Dimensions, resp.Top) {
		q.Where = where
		r, err := st.QueryStreams(ctx, ids, q)
		if err != nil {
			return err
		}
		addBuckets(r, len(req.Dimensions), first, ms, func(row []any) []uint64 {
			if i, ok := index[strings.Join(keyOf(row, len(req.Dimensions)), "\x00")]; ok {
				return sums[i]
			}
			return nil
		})
	}
	r, err := st.QueryStreams(ctx, ids, series)
	if err != nil {
		return err
	}
	all := sums[len(resp.Top)]
	addBuckets(r, 0, first, ms, func([]any) []uint64 { return all })
	other := slices.Clone(all)
	for i := range resp.Top {
		resp.Top[i].Total = 0
		for b, v := range sums[i] {
			resp.Top[i].Total += v
			other[b] -= min(v, other[b])
		}
		resp.Top[i].Rates, resp.Top[i].Stats = rates(sums[i], req.Measure, ms)
	}
	for _, v := range all {
		resp.Total += v
	}
	resp.Other.Rates, resp.Other.Stats = rates(other, req.Measure, ms)
	return nil
}

// addBuckets adds each series row (the bucket, dims group columns, the
// measure) to the bucket of the series into picks by the group columns.
func addBuckets(r *query.Response, dims int, first, ms int64, into func(key []any) []uint64) {
	for _, row := range r.Rows {
		b := (row[0].(int64) - first) / ms
		if s := into(row[1:]); s != nil && b >= 0 && b < int64(len(s)) {
			s[b] += row[dims+1].(uint64)
		}
	}
}

// rates turns bucket sums into per-second rates and their statistics.
func rates(sums []uint64, measureName string, ms int64) ([]float64, *rateStats) {
	scale := measures[measureName].factor * 1000 / float64(ms)
	out := make([]float64, len(sums))
	for i, v := range sums {
		out[i] = float64(v) * scale
	}
	sorted := slices.Sorted(slices.Values(out))
	st := &rateStats{Min: sorted[0], Max: sorted[len(sorted)-1], P95: sorted[int(math.Ceil(0.95*float64(len(sorted))))-1]}
	for _, v := range out {
		st.Avg += v
	}
	st.Avg /= float64(len(out))
	return out, st
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// keyOf is a row's group key, each value as text.
func keyOf(row []any, dims int) []string {
	key := make([]string, dims)
	for i := range key {
		key[i] = fmt.Sprint(row[i])
	}
	return key
}

// narrowed returns the filter narrowed to the top keys: one filter, or
// several that each fit the filter's length limit.
func narrowed(where string, dims []string, top []exploreRow) []string {
	var out []string
	for len(top) > 0 {
		n := len(top)
		for n > 1 && len(onlyKeys(where, dims, top[:n])) > query.MaxFilterLen {
			n /= 2
		}
		out = append(out, onlyKeys(where, dims, top[:n]))
		top = top[n:]
	}
	return out
}

// onlyKeys narrows a filter to the keys.
func onlyKeys(where string, dims []string, top []exploreRow) string {
	lit := make([]func(string) string, len(dims))
	for i, d := range dims {
		switch f, _ := flow.FieldByName(d); f.Kind {
		case flow.KindString:
			lit[i] = func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
		case flow.KindAddr: // a record without the address is stored as ::, and shown as ""
			lit[i] = func(v string) string { return cmp.Or(v, "::") }
		default:
			lit[i] = func(v string) string { return v }
		}
	}
	var keys []string
	for _, t := range top {
		if len(dims) == 1 {
			keys = append(keys, lit[0](t.Key[0]))
			continue
		}
		conds := make([]string, len(dims))
		for i, d := range dims {
			conds[i] = d + " = " + lit[i](t.Key[i])
		}
		keys = append(keys, "("+strings.Join(conds, " and ")+")")
	}
	only := dims[0] + " in (" + strings.Join(keys, ", ") + ")"
	if len(dims) > 1 {
		only = strings.Join(keys, " or ")
	}
	if strings.TrimSpace(where) == "" {
		return only
	}
	return "(" + where + ") and (" + only + ")"
}

// sankeyOf links the top keys' values between consecutive dimensions, each
// pair once with the sum of its keys' totals, and the Other nodes with the
// rest.
func sankeyOf(dims []string, top []exploreRow, other uint64) *exploreFlows {
	out := &exploreFlows{Links: []flowLink{}}
	for i := 0; i+1 < len(dims); i++ {
		at := map[[2]string]int{}
		for _, t := range top {
			pair := [2]string{t.Key[i], t.Key[i+1]}
			j, ok := at[pair]
			if !ok {
				j = len(out.Links)
				at[pair] = j
				out.Links = append(out.Links, flowLink{Source: flowNode{Dimension: dims[i], Value: pair[0]},
					Target: flowNode{Dimension: dims[i+1], Value: pair[1]}})
			}
			out.Links[j].Value += t.Total
		}
		if other > 0 {
			out.Links = append(out.Links, flowLink{Source: flowNode{Dimension: dims[i], Other: true},
				Target: flowNode{Dimension: dims[i+1], Other: true}, Value: other})
		}
	}
	return out
}
