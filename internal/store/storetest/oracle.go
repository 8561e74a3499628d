package storetest

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"flowlog/internal/flow"
	"flowlog/internal/store/query"
)

// Match evaluates a filter on one record in Go, independently of SQL.
func Match(e query.Expr, r *flow.Record) bool {
	switch e := e.(type) {
	case nil:
		return true
	case query.And:
		return Match(e.L, r) && Match(e.R, r)
	case query.Or:
		return Match(e.L, r) || Match(e.R, r)
	case query.Not:
		return !Match(e.X, r)
	case query.In:
		v := e.Field.Get(r)
		for _, x := range e.Values {
			if a, ok := v.(netip.Addr); ok {
				if a.IsValid() && x.Prefix.Contains(a) {
					return true
				}
			} else if compare(v, x.Typed(e.Field)) == 0 {
				return true
			}
		}
		return false
	case query.Cmp:
		c := compare(e.Field.Get(r), e.Value.Typed(e.Field))
		switch e.Op {
		case "=":
			return c == 0
		case "!=":
			return c != 0
		case "<":
			return c < 0
		case "<=":
			return c <= 0
		case ">":
			return c > 0
		case ">=":
			return c >= 0
		}
	}
	panic(fmt.Sprintf("storetest: unknown node %T", e))
}

func compare(a, b any) int {
	switch a := a.(type) {
	case uint64:
		return cmp.Compare(a, b.(uint64))
	case int64:
		return cmp.Compare(a, b.(int64))
	case string:
		return strings.Compare(a, b.(string))
	case netip.Addr: // as stored: the 16-byte form
		ah, al := query.AddrParts(a)
		bh, bl := query.AddrParts(b.(netip.Addr))
		if c := cmp.Compare(ah, bh); c != 0 {
			return c
		}
		return cmp.Compare(al, bl)
	}
	panic(fmt.Sprintf("storetest: cannot compare %T", a))
}

func compareRows(a, b []any) int {
	for i := range a {
		if c := compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// Answer answers a request by scanning recs in Go: the oracle the SQL
// backends are checked against.
func Answer(q query.Request, recs []flow.Record) (*query.Response, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	e, _ := query.Parse(q.Where)
	var sel []*flow.Record
	for i := range recs {
		r := &recs[i]
		if r.End >= q.Since.UnixMilli() && r.End < q.Until.UnixMilli() && Match(e, r) {
			sel = append(sel, r)
		}
	}
	limit := q.Limit
	if limit == 0 {
		limit = query.DefaultLimit
	}
	resp := &query.Response{}
	if q.Raw() {
		var order []string // query.RawOrder by field: an address's halves compare as the address
		for _, c := range query.RawOrder {
			n := strings.TrimSuffix(strings.TrimSuffix(c, "_hi"), "_lo")
			if _, ok := flow.FieldByName(n); !ok {
				n = c
			}
			if !slices.Contains(order, n) {
				order = append(order, n)
			}
		}
		slices.SortStableFunc(sel, func(a, b *flow.Record) int {
			for _, n := range order {
				f, _ := flow.FieldByName(n)
				if c := compare(f.Get(a), f.Get(b)); c != 0 {
					return c
				}
			}
			return 0
		})
		for _, r := range page(sel, q.Offset, limit) {
			resp.Records = append(resp.Records, *r)
		}
		if len(resp.Records) == limit {
			resp.NextOffset = q.Offset + limit
		}
		return resp, nil
	}
	return aggregate(q, sel, limit)
}

func page[T any](s []T, off, limit int) []T {
	if off >= len(s) {
		return nil
	}
	return s[off:min(len(s), off+limit)]
}

type group struct {
	key      []any
	sums     []uint64
	distinct []map[any]bool
}

func aggregate(q query.Request, sel []*flow.Record, limit int) (*query.Response, error) {
	ms, _ := q.IntervalMS()
	aggs := q.Aggregates
	if len(aggs) == 0 {
		aggs = []query.Aggregate{{Func: "count"}}
	}
	groups := map[string]*group{}
	var order []*group
	for _, r := range sel {
		var key []any
		if ms > 0 {
			key = append(key, r.End/ms*ms)
		}
		for _, g := range q.GroupBy {
			f, _ := flow.FieldByName(g)
			key = append(key, f.Get(r))
		}
		k := fmt.Sprint(key...)
		g := groups[k]
		if g == nil {
			g = &group{key: key, sums: make([]uint64, len(aggs)), distinct: make([]map[any]bool, len(aggs))}
			groups[k] = g
			order = append(order, g)
		}
		for i, a := range aggs {
			switch a.Func {
			case "count":
				g.sums[i]++
			case "sum":
				f, _ := flow.FieldByName(a.Field)
				g.sums[i] = SaturatingAdd(g.sums[i], f.Get(r).(uint64))
			case "count_distinct":
				f, _ := flow.FieldByName(a.Field)
				if g.distinct[i] == nil {
					g.distinct[i] = map[any]bool{}
				}
				g.distinct[i][f.Get(r)] = true
				g.sums[i] = uint64(len(g.distinct[i]))
			}
		}
	}
	if len(q.GroupBy) == 0 && ms == 0 && len(order) == 0 { // SQL aggregates with no GROUP BY give one row
		order = append(order, &group{sums: make([]uint64, len(aggs))})
	}
	nkeys := len(q.GroupBy)
	if ms > 0 {
		nkeys++
	}
	sortKey := func(g *group) []any { // what ORDER BY sees, before the key tiebreak
		row := append(append([]any{}, g.key...), toAny(g.sums)...)
		switch {
		case q.OrderBy != "":
			for i, a := range aggs {
				if a.Name() == q.OrderBy {
					return []any{g.sums[i]}
				}
			}
			return []any{row[columnIndex(q, q.OrderBy)]}
		case ms > 0:
			return []any{g.key[0], g.sums[0]}
		}
		return []any{g.sums[0]}
	}
	slices.SortStableFunc(order, func(a, b *group) int {
		ka, kb := sortKey(a), sortKey(b)
		for i := range ka {
			c := compare(ka[i], kb[i])
			desc := !q.Ascending
			if ms > 0 && q.OrderBy == "" && i == 0 {
				desc = false // series: time ascending
			}
			if desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return compareRows(a.key, b.key)
	})
	resp := &query.Response{}
	if ms > 0 {
		resp.Columns = append(resp.Columns, query.Column{Name: "time", Kind: flow.KindTime, Type: "time"})
	}
	for _, g := range q.GroupBy {
		f, _ := flow.FieldByName(g)
		resp.Columns = append(resp.Columns, query.Column{Name: g, Kind: f.Kind, Type: map[flow.Kind]string{flow.KindString: "string", flow.KindAddr: "addr", flow.KindUint: "uint", flow.KindTime: "time"}[f.Kind]})
	}
	for _, a := range aggs {
		resp.Columns = append(resp.Columns, query.Column{Name: a.Name(), Kind: flow.KindUint, Type: "uint"})
	}
	for _, g := range page(order, q.Offset, limit) {
		row := make([]any, 0, nkeys+len(aggs))
		for _, k := range g.key {
			if a, ok := k.(netip.Addr); ok {
				k = ""
				if a.IsValid() {
					k = a.String()
				}
			}
			row = append(row, k)
		}
		resp.Rows = append(resp.Rows, append(row, toAny(g.sums)...))
	}
	if len(resp.Rows) == limit {
		resp.NextOffset = q.Offset + limit
	}
	return resp, nil
}

func columnIndex(q query.Request, name string) int {
	i := 0
	if q.Interval != "" {
		if name == "time" {
			return 0
		}
		i = 1
	}
	return i + slices.Index(q.GroupBy, name)
}

func toAny(u []uint64) []any {
	out := make([]any, len(u))
	for i, v := range u {
		out[i] = v
	}
	return out
}

// SaturatingAdd is a + b, or 2^64−1 when that does not fit: how the
// backends report a sum beyond 64 bits.
func SaturatingAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
