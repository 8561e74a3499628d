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

// BenchmarkIngest appends batches of 100k records (and, into DuckDB, also
// of 500k); the metric is records/s. Into ClickHouse it also commits them
// as the spool's committer does, in batches of 100k and of 5k.
func BenchmarkIngest(b *testing.B) {
	id := store.StreamID{Account: "bench", Stream: "ingest"}
	ctx := context.Background()
	run := func(b *testing.B, s store.Store, size int, cpu func() time.Duration, commit bool) {
		data := Chunk(0, size)
		if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
			b.Fatal(err)
		}
		c0 := cpu()
		for pos := uint64(0); b.Loop(); pos += uint64(size) {
			put := func() error { return s.Append(ctx, id, data) }
			if commit {
				put = func() error { return s.Commit(ctx, id, store.Batch{First: pos, Records: data}) }
			}
			if err := put(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
		// records per CPU-second: what an idle core would do
		b.ReportMetric(float64(b.N*size)/(cpu()-c0).Seconds(), "records/cpu-s")
	}
	// DuckDB with its default threads (one per core), and with one: the
	// caller's thread then does the work itself, where with two it waits
	// in a busy loop while DuckDB's other thread appends.
	for _, c := range []struct{ size, threads int }{{batch, 0}, {batch, 1}, {5 * batch, 0}} {
		b.Run(fmt.Sprintf("duckdb/batch=%d/threads=%d", c.size, c.threads), func(b *testing.B) {
			s, err := duckdb.New(duckdb.Config{Dir: b.TempDir(), Threads: c.threads})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			run(b, s, c.size, cpuSelf, false)
		})
	}
	for _, c := range []struct {
		name   string
		size   int
		commit bool
	}{{"clickhouse", batch, false}, {"clickhouse-commit", batch, true}, {"clickhouse-commit", batch / 20, true}} {
		b.Run(fmt.Sprintf("%s/batch=%d", c.name, c.size), func(b *testing.B) {
			url := chtest.Start(b)
			s, err := clickhouse.New(ctx, clickhouse.Config{URL: url})
			if err != nil {
				b.Fatal(err)
			}
			pid := chtest.PID(url)
			run(b, s, c.size, func() time.Duration { return cpuSelf() + cpuPID(pid) }, c.commit)
		})
	}
}
