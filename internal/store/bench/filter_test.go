package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
)

// filterRecords is the size of the big-filter data set, as in the review
// that measured it.
const filterRecords = 440_000

var (
	filterOnce  sync.Once
	filterStore *duckdb.Store
	filterErr   error
)

// filterData loads filterRecords flows of the benchmark hour into a
// DuckDB store of its own, once per process; TestMain removes it.
func filterData(b testing.TB) *duckdb.Store {
	filterOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowlog-filter-bench-")
		if err != nil {
			filterErr = err
			return
		}
		filterDir = dir
		s, err := duckdb.New(duckdb.Config{Dir: filepath.Join(dir, "duckdb")})
		if err != nil {
			filterErr = err
			return
		}
		ctx := context.Background()
		if filterErr = s.CreateStream(ctx, store.Stream{StreamID: topID}); filterErr != nil {
			return
		}
		for i := 0; i*batch < filterRecords; i++ {
			if filterErr = s.Append(ctx, topID, Chunk(i, min(batch, filterRecords-i*batch))); filterErr != nil {
				return
			}
		}
		filterStore = s
	})
	if filterErr != nil {
		b.Fatal(filterErr)
	}
	return filterStore
}

var filterDir string

// bigList builds "field in (v0, v1, …)" from values of gen as long as the
// filter stays within query.MaxFilterLen: the largest filter the parser
// accepts.
func bigList(field string, gen func(i int) string) string {
	var sb strings.Builder
	sb.WriteString(field + " in (")
	for i := 0; ; i++ {
		v := gen(i)
		if sb.Len()+len(v)+2 > query.MaxFilterLen {
			break
		}
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(v)
	}
	sb.WriteString(")")
	return sb.String()
}

// BigFilters are the largest accepted `in` lists: plain numbers, IPv4
// addresses, IPv4 /24 prefixes and IPv6 addresses each in a /64 of its own.
var BigFilters = map[string]string{
	"ports":     bigList("dstport", func(i int) string { return fmt.Sprint(i) }),
	"addrs":     bigList("srcaddr", func(i int) string { return fmt.Sprintf("10.0.%d.%d", i/256%256, i%256) }),
	"prefixes":  bigList("srcaddr", func(i int) string { return fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256) }),
	"ipv6addrs": bigList("srcaddr", func(i int) string { return fmt.Sprintf("%x::1", i+1) }),
}

// BenchmarkBigFilter runs a top-10 source query over filterRecords records
// with the largest `in` list the parser accepts, from the records (no
// rollup), on DuckDB.
func BenchmarkBigFilter(b *testing.B) {
	s := filterData(b)
	s.UseRollups(false)
	defer s.UseRollups(true)
	for _, name := range []string{"ports", "addrs", "prefixes", "ipv6addrs"} {
		b.Run(name, func(b *testing.B) {
			q := topQuery
			q.Where = BigFilters[name]
			for b.Loop() {
				if _, err := s.Query(context.Background(), topID, q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/query")
		})
	}
}
