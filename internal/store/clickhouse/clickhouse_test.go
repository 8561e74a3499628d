package clickhouse

import (
	"context"
	"testing"

	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/storetest"
)

func TestSuite(t *testing.T) {
	url := chtest.Start(t)
	s, err := New(context.Background(), Config{URL: url, Database: "flowlog_test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Run(t, s)
}
