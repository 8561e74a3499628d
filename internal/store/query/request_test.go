package query

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestRequestJSON decodes a request as the HTTP API receives it.
func TestRequestJSON(t *testing.T) {
	body := `{"since":"2026-03-14T10:00:00Z","until":"2026-03-14T11:00:00Z","where":"srcaddr in 10.0.0.0/8",
		"group_by":["srcaddr"],"aggregates":[{"func":"sum","field":"bytes"},{"func":"count"}],"limit":10}`
	var q Request
	if err := json.Unmarshal([]byte(body), &q); err != nil {
		t.Fatal(err)
	}
	want := Request{Since: time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC), Until: time.Date(2026, 3, 14, 11, 0, 0, 0, time.UTC),
		Where: "srcaddr in 10.0.0.0/8", GroupBy: []string{"srcaddr"}, Limit: 10,
		Aggregates: []Aggregate{{Func: "sum", Field: "bytes"}, {Func: "count"}}}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("got %+v\nwant %+v", q, want)
	}
	if err := q.Validate(); err != nil {
		t.Error(err)
	}
	for _, bad := range []Request{
		{Since: want.Until, Until: want.Since},
		{Since: want.Since, Until: want.Until, Limit: MaxLimit + 1},
		{Since: want.Since, Until: want.Until, Interval: "soon"},
		{Since: want.Since, Until: want.Until, Aggregates: []Aggregate{{Func: "avg", Field: "bytes"}}},
		{Since: want.Since, Until: want.Until, Aggregates: []Aggregate{{Func: "count_distinct", Field: "nope"}}},
		{Since: want.Since, Until: want.Until, Where: "bytes >"},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}
