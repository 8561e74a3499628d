package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"flowlog/internal/flow"
)

// ErrInvalid is returned (wrapped) for a request that cannot be answered.
var ErrInvalid = errors.New("invalid query")

// Limits on the rows one request returns.
const (
	DefaultLimit = 100
	MaxLimit     = 100000
)

// Request is one question to a log stream, as the API and CLI send it.
// With no GroupBy, Aggregates or Interval it asks for raw records, paged by
// Limit and Offset; otherwise it groups and aggregates. Records belong to
// the window by their end time: Since <= end < Until.
//
// Top-N: GroupBy [field], Aggregates [sum bytes], Limit N.
// Time series: Interval "1m" (plus optional GroupBy).
type Request struct {
	Since      time.Time   `json:"since"`
	Until      time.Time   `json:"until"`
	Where      string      `json:"where,omitempty"`
	GroupBy    []string    `json:"group_by,omitempty"`
	Aggregates []Aggregate `json:"aggregates,omitempty"`
	Interval   string      `json:"interval,omitempty"` // Go duration, e.g. "1m"
	OrderBy    string      `json:"order_by,omitempty"` // an output column; default: first aggregate
	Ascending  bool        `json:"ascending,omitempty"`
	Limit      int         `json:"limit,omitempty"`
	Offset     int         `json:"offset,omitempty"`
}

// Aggregate is one aggregate column: sum of a numeric field, count of
// records, or count of distinct values of a field.
type Aggregate struct {
	Func  string `json:"func"` // sum | count | count_distinct
	Field string `json:"field,omitempty"`
}

// Name is the aggregate's output column name: sum_bytes, count, ….
func (a Aggregate) Name() string {
	if a.Func == "count" {
		return "count"
	}
	return a.Func + "_" + a.Field
}

// Column describes one column of an aggregated response. Kind is the
// field kind of a group key, KindUint for aggregates, KindTime for the
// series bucket ("time").
type Column struct {
	Name string    `json:"name"`
	Kind flow.Kind `json:"-"`
	Type string    `json:"type"` // string | addr | uint | time
}

// Response answers a Request: Records for a raw query, Columns and Rows
// otherwise. Row values are string (strings and addresses), uint64
// (counters, aggregates) or int64 (times, Unix ms). NextOffset is set when
// a further page may exist.
type Response struct {
	Columns    []Column      `json:"columns,omitempty"`
	Rows       [][]any       `json:"rows,omitempty"`
	Records    []flow.Record `json:"records,omitempty"`
	NextOffset int           `json:"next_offset,omitempty"`
}

// UnmarshalJSON restores typed row values (JSON numbers become uint64 or
// int64 by the column type), so a decoded Response equals the original.
func (r *Response) UnmarshalJSON(b []byte) error {
	type plain Response
	var p struct {
		plain
		Rows [][]json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = Response(p.plain)
	r.Rows = nil
	for i := range r.Columns {
		r.Columns[i].Kind = kindOfType(r.Columns[i].Type)
	}
	for _, raw := range p.Rows {
		if len(raw) != len(r.Columns) {
			return fmt.Errorf("row has %d values for %d columns", len(raw), len(r.Columns))
		}
		row := make([]any, len(raw))
		for i, v := range raw {
			var err error
			switch r.Columns[i].Kind {
			case flow.KindUint:
				var u uint64
				err = json.Unmarshal(v, &u)
				row[i] = u
			case flow.KindTime:
				var t int64
				err = json.Unmarshal(v, &t)
				row[i] = t
			default:
				var s string
				err = json.Unmarshal(v, &s)
				row[i] = s
			}
			if err != nil {
				return fmt.Errorf("column %s: %w", r.Columns[i].Name, err)
			}
		}
		r.Rows = append(r.Rows, row)
	}
	return nil
}

var typeNames = map[flow.Kind]string{flow.KindString: "string", flow.KindAddr: "addr", flow.KindUint: "uint", flow.KindTime: "time"}

func kindOfType(s string) flow.Kind {
	for k, n := range typeNames {
		if n == s {
			return k
		}
	}
	return flow.KindString
}

func newColumn(name string, k flow.Kind) Column {
	return Column{Name: name, Kind: k, Type: typeNames[k]}
}

// Raw reports whether the request asks for records rather than aggregates.
func (q *Request) Raw() bool {
	return len(q.GroupBy) == 0 && len(q.Aggregates) == 0 && q.Interval == ""
}

// IntervalMS returns the series interval in milliseconds (0 for none).
func (q *Request) IntervalMS() (int64, error) {
	if q.Interval == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(q.Interval)
	if err != nil || d < time.Millisecond {
		return 0, fmt.Errorf("%w: interval %q is not a duration of at least 1ms", ErrInvalid, q.Interval)
	}
	return d.Milliseconds(), nil
}

// Validate checks the request without running it.
func (q *Request) Validate() error {
	if !q.Since.Before(q.Until) {
		return fmt.Errorf("%w: since (%s) must be before until (%s)", ErrInvalid, q.Since, q.Until)
	}
	if q.Limit < 0 || q.Limit > MaxLimit || q.Offset < 0 {
		return fmt.Errorf("%w: limit must be 0..%d and offset ≥ 0", ErrInvalid, MaxLimit)
	}
	if _, err := q.IntervalMS(); err != nil {
		return err
	}
	if _, err := Parse(q.Where); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, g := range q.GroupBy {
		if _, ok := flow.FieldByName(g); !ok {
			return fmt.Errorf("%w: unknown group_by field %q", ErrInvalid, g)
		}
	}
	for _, a := range q.Aggregates {
		if err := a.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (a Aggregate) validate() error {
	switch a.Func {
	case "count":
		return nil
	case "sum", "count_distinct":
		f, ok := flow.FieldByName(a.Field)
		if !ok {
			return fmt.Errorf("%w: unknown field %q in %s", ErrInvalid, a.Field, a.Func)
		}
		if a.Func == "sum" && f.Kind != flow.KindUint {
			return fmt.Errorf("%w: sum needs a numeric field, %s is not", ErrInvalid, a.Field)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown aggregate %q (sum, count, count_distinct)", ErrInvalid, a.Func)
}
