package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	run := func(b *testing.B, s store.Store, cpu func() time.Duration) {
		if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
			b.Fatal(err)
		}
		c0 := cpu()
		for b.Loop() {
			if err := s.Append(ctx, id, data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		// records per CPU-second: what an idle core would do
		b.ReportMetric(float64(b.N*batch)/(cpu()-c0).Seconds(), "records/cpu-s")
	}
	// DuckDB with its default threads (one per core), and with one: the
	// caller's thread then does the work itself, where with two it waits
	// in a busy loop while DuckDB's other thread appends.
	for _, threads := range []int{0, 1} {
		name := "duckdb"
		if threads > 0 {
			name = fmt.Sprintf("duckdb-threads=%d", threads)
		}
		b.Run(name, func(b *testing.B) {
			s, err := duckdb.New(duckdb.Config{Dir: b.TempDir(), Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			run(b, s, cpuSelf)
		})
	}
	b.Run("clickhouse", func(b *testing.B) {
		url := chtest.Start(b)
		s, err := clickhouse.New(ctx, clickhouse.Config{URL: url})
		if err != nil {
			b.Fatal(err)
		}
		pid := chtest.PID(url)
		run(b, s, func() time.Duration { return cpuSelf() + cpuPID(pid) })
	})
}
