package clickhouse

import (
	"context"
	"testing"
	"time"

	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/query"
)

// TestDeadline checks that a query's deadline reaches the server, which
// stops the query once its caller has given up on it (hanging up alone
// leaves it running on 18.16).
func TestDeadline(t *testing.T) {
	url := chtest.Start(t)
	s, err := New(context.Background(), Config{URL: url, Database: "flowlog_deadline"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	qctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	const slow = "SELECT sleepEachRow(0.5) FROM numbers(12) SETTINGS max_block_size = 1"
	if _, err := s.c.selectTSV(qctx, slow, []query.SQLType{query.SQLUint}); err == nil {
		t.Fatal("a 6s query ended within its 0.9s deadline")
	}
	time.Sleep(1500 * time.Millisecond)
	rows, err := s.c.selectTSV(ctx, "SELECT count() FROM system.processes WHERE query LIKE '%sleepEachRow(0.5)%' AND query NOT LIKE '%system.processes%'",
		[]query.SQLType{query.SQLUint})
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != uint64(0) {
		t.Errorf("the server still runs the query its caller gave up on")
	}
}
