// Package rollup says which summaries of the records every log store
// keeps, and which questions they answer. A rollup holds, for each step
// (a minute or an hour, by record end) and key, the sum of packets and
// bytes and the number of records. A top-N or time series over whole
// steps reads it instead of the records, and the records only for the
// parts of a step at either end of the window. How a store keeps and
// reads its rollups is its own.
package rollup

import (
	"slices"
	"strings"

	"flowlog/internal/flow"
	"flowlog/internal/store/query"
)

// Rollup is one summary of the records by a few key fields.
type Rollup struct {
	Name  string   // table suffix
	Step  int64    // ms
	Keys  []string // key fields: numbers and addresses only
	Parts []Part   // the key's stored columns
}

// Part is one stored column of a rollup key.
type Part struct {
	Column string
	Index  int // in query.Columns
}

// MaxParts bounds a key's stored columns, so keys are small arrays.
const MaxParts = 2

// CountColumn holds how many records a rollup row sums.
const CountColumn = "flows"

const (
	MinuteMS = 60_000
	HourMS   = 60 * MinuteMS
)

// All lists the rollups, smallest first: a question is answered from the
// first that can. Ports are few, so they are summed per minute. Sources
// are summed per hour: where each source sends a flow every few minutes
// (a scan, many clients, a large network) a per-minute rollup would hold
// a row per record and cost ingest as much as it saved, while an hour
// holds a row per source. Destinations are not rolled up: spread too
// evenly to save much. Steps divide a day.
var All = []Rollup{
	newRollup("port", MinuteMS, "protocol", "dstport"),
	newRollup("src", HourMS, "srcaddr"),
}

func newRollup(name string, step int64, keys ...string) Rollup {
	r := Rollup{Name: name, Step: step, Keys: keys}
	for _, k := range keys {
		f, ok := flow.FieldByName(k)
		switch {
		case !ok || f.Kind == flow.KindString || f.Kind == flow.KindTime:
			panic("rollup: key " + k + " is not a number or an address")
		case f.Kind == flow.KindAddr:
			r.Parts = append(r.Parts, part(k+"_hi"), part(k+"_lo"))
		default:
			r.Parts = append(r.Parts, part(k))
		}
	}
	if len(r.Parts) > MaxParts {
		panic("rollup: " + name + " has too many key columns")
	}
	return r
}

func part(column string) Part {
	i := query.ColumnIndex(column)
	if i < 0 {
		panic("rollup: no stored column " + column)
	}
	return Part{column, i}
}

// KeyColumns returns the quoted key columns, comma-separated.
func (r Rollup) KeyColumns() string {
	cols := make([]string, len(r.Parts))
	for i, p := range r.Parts {
		cols[i] = query.Quote(p.Column)
	}
	return strings.Join(cols, ", ")
}

// Floor rounds a time down to a multiple of step, also before 1970.
func Floor(ms, step int64) int64 {
	m := ms % step
	if m < 0 {
		m += step
	}
	return ms - m
}

// Answers reports whether the rollup holds everything q asks about: its
// groups and filter use only key fields, and it sums bytes or packets or
// counts records, per whole steps.
func (r Rollup) Answers(q query.Request) bool {
	if q.Raw() {
		return false
	}
	if ms, err := q.IntervalMS(); err != nil || ms%r.Step != 0 {
		return false
	}
	for _, a := range q.Aggregates {
		if a.Func != "count" && (a.Func != "sum" || a.Field != "bytes" && a.Field != "packets") {
			return false
		}
	}
	e, err := query.Parse(q.Where)
	if err != nil {
		return false
	}
	for _, f := range append(query.FilterFields(e), q.GroupBy...) {
		if !slices.Contains(r.Keys, f) {
			return false
		}
	}
	return true
}

// Span is a time range [From, To), Unix ms.
type Span struct{ From, To int64 }

// Plan is how a query reads a rollup: its whole steps from the rollup,
// and the parts of a step at either end of the window (Edges, none, one
// or two, each within one day) from the records.
type Plan struct {
	Rollup
	Steps Span
	Edges []Span
}

// For returns the plan over the first rollup that answers q and has a
// whole step in its window.
func For(q query.Request) (Plan, bool) {
	since, until := q.Since.UnixMilli(), q.Until.UnixMilli()
	if since < 0 {
		return Plan{}, false
	}
	for _, r := range All {
		from, to := Floor(since+r.Step-1, r.Step), Floor(until, r.Step)
		if from >= to || !r.Answers(q) {
			continue
		}
		p := Plan{Rollup: r, Steps: Span{from, to}}
		if since < from {
			p.Edges = append(p.Edges, Span{since, from})
		}
		if until > to {
			p.Edges = append(p.Edges, Span{to, until})
		}
		return p, true
	}
	return Plan{}, false
}
