package duckdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"flowlog/internal/store/storetest"
)

// BenchmarkFeed measures what DuckDB alone costs per batch: records
// already laid out in columns, copied into a day table through the table
// function and committed. It is the ceiling for Append, which also lays
// the records out and writes rollups.
func BenchmarkFeed(b *testing.B) {
	for _, size := range []int{100_000, 500_000} {
		for _, threads := range []int{0, 1} {
			b.Run(fmt.Sprintf("batch=%d/threads=%d", size, threads), func(b *testing.B) { benchFeed(b, size, threads) })
		}
	}
}

func benchFeed(b *testing.B, size, threads int) {
	s, err := New(Config{Dir: b.TempDir(), Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	recs := storetest.Records(size, time.Hour, 1)
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	cs := s.recordColumns(recs, idx)
	if err := s.saveDictionary(ctx); err != nil {
		b.Fatal(err)
	}
	if err := s.createDay(ctx, "f0_d0"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		for _, step := range []func() error{
			func() error { _, err := s.w.ExecContext(ctx, "BEGIN TRANSACTION"); return err },
			func() error { return s.feeds.insert(ctx, s.w, "f0_d0", cs) },
			func() error { _, err := s.w.ExecContext(ctx, "COMMIT"); return err },
		} {
			if err := step(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}
