package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// BenchmarkAppenderShape measures DuckDB's Appender alone (no flowlog
// code) on tables shaped like the record, to show what bounds ingest:
// 29 integer columns, then the same with 8 of them VARCHAR as stored.
func BenchmarkAppenderShape(b *testing.B) {
	for _, strs := range []int{0, 8} {
		b.Run(fmt.Sprintf("strings=%d", strs), func(b *testing.B) {
			c, err := duckdb.NewConnector(filepath.Join(b.TempDir(), "x.duckdb"), nil)
			if err != nil {
				b.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			const ncol = 29
			cols := make([]string, ncol)
			row := make([]driver.Value, ncol)
			for i := range cols {
				cols[i] = fmt.Sprintf("c%d UBIGINT", i)
				row[i] = uint64(i * 1000)
				if i < strs {
					cols[i] = fmt.Sprintf("c%d VARCHAR", i)
					row[i] = "fl-0123456"
				}
			}
			if _, err := db.Exec("CREATE TABLE t (" + strings.Join(cols, ", ") + ")"); err != nil {
				b.Fatal(err)
			}
			conn, err := db.Conn(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			b.ResetTimer()
			for b.Loop() {
				err := conn.Raw(func(dc any) error {
					a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "t")
					if err != nil {
						return err
					}
					for range batch {
						if err := a.AppendRow(row...); err != nil {
							return err
						}
					}
					return a.Close()
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
