package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// Layout6Columns are the stored columns record layout 6 added.
var Layout6Columns = query.Columns[query.ColumnIndex("in_if_index"):]

// RunUpgrade checks that a store written by record layout 5 is upgraded
// when opened: open opens the store (a new process); downgrade, called
// with the store closed, drops the columns of layout 6 from the stream's
// tables, which leaves them as layout 5 made them. The records stored
// before stay, with the new fields empty, and records of layout 6 are
// stored and queried by the new fields.
func RunUpgrade(t *testing.T, open func(t *testing.T) store.Store, downgrade func(t *testing.T)) {
	ctx := context.Background()
	id := store.StreamID{Account: "acct-u", Stream: "ls-upgrade"}
	old := Records(3000, 30*time.Hour, 21)
	for i := range old {
		old[i] = layout5(old[i])
	}
	recs := Records(3000, 30*time.Hour, 22)
	s := open(t)
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		t.Fatal(err)
	}
	commit(ctx, t, s, id, 0, old)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downgrade(t)
	s = open(t)
	defer s.Close()
	wantStored(ctx, t, s, id, old)
	commit(ctx, t, s, id, uint64(len(old)), recs)
	all := append(slices.Clone(old), recs...)
	wantStored(ctx, t, s, id, all)
	for _, q := range []query.Request{
		{Where: "src_country = 'DE'", GroupBy: []string{"src_as"}, Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}},
		{Where: "src_country = ''", GroupBy: []string{"in_if_name", "dst_as"}, Aggregates: []query.Aggregate{{Func: "count"}}},
	} {
		q.Since, q.Until = Base, Base.Add(30*time.Hour)
		got, err := s.Query(ctx, id, q)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Answer(q, all)
		if len(want.Rows) < 2 {
			t.Fatalf("%s: the data set has too few groups", q.Where)
		}
		Equal(t, q, got, want)
	}
}

// layout5 is r with only the fields of record layout 5.
func layout5(r flow.Record) flow.Record {
	r.InputIfIndex, r.OutputIfIndex = 0, 0
	r.InIfName, r.OutIfName, r.InIfSpeed, r.OutIfSpeed = "", "", 0, 0
	r.SrcCountry, r.DstCountry, r.SrcAS, r.DstAS, r.SrcASName, r.DstASName = "", "", 0, 0, "", ""
	return r
}
