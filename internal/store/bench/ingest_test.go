package bench

import (
	"context"
	"testing"

	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/duckdb"
)

const batch = 100_000

// BenchmarkIngest appends batches of 100k records; the metric is records/s.
func BenchmarkIngest(b *testing.B) {
	data := Chunk(0, batch)
	id := store.StreamID{Account: "bench", Stream: "ingest"}
	ctx := context.Background()
	run := func(b *testing.B, s store.Store) {
		if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			if err := s.Append(ctx, id, data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("duckdb", func(b *testing.B) {
		s, err := duckdb.New(duckdb.Config{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s)
	})
	b.Run("clickhouse", func(b *testing.B) {
		s, err := clickhouse.New(ctx, clickhouse.Config{URL: chtest.Start(b)})
		if err != nil {
			b.Fatal(err)
		}
		run(b, s)
	})
}
