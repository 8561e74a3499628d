package clickhouse

import (
	"context"
	"testing"

	"flowlog/internal/store"
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

// TestReopen opens a new Store on the same server each time: a new
// process, with nothing but what the server holds.
func TestReopen(t *testing.T) {
	url := chtest.Start(t)
	storetest.RunReopen(t, func(t *testing.T) store.Store {
		s, err := New(context.Background(), Config{URL: url, Database: "flowlog_reopen"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
