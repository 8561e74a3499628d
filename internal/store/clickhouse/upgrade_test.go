package clickhouse

import (
	"context"
	"strings"
	"testing"

	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

// TestUpgradeLayout5: a stream's table made by record layout 5 gains the
// columns of layout 6 when a Store opens the database.
func TestUpgradeLayout5(t *testing.T) {
	url := chtest.Start(t)
	runUpgrade(t, func(t *testing.T) *Store {
		s, err := New(context.Background(), Config{URL: url, Database: "flowlog_upgrade"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestClusterUpgradeLayout5 is TestUpgradeLayout5 on a cluster: the
// replicated tables and the Distributed ones over them are upgraded.
func TestClusterUpgradeLayout5(t *testing.T) {
	c := chtest.StartCluster(t)
	runUpgrade(t, func(t *testing.T) *Store { return newClusterStore(t, c.URLs, "flowlog_upgrade") })
	for _, u := range c.URLs {
		s := newClusterStore(t, []string{u}, "flowlog_upgrade")
		have, err := s.streamTableColumns(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(have) != 2 {
			t.Errorf("%s: tables %v, want a stream's table and its Distributed table", u, have)
		}
		for table, cols := range have {
			if len(cols) != len(query.Columns)+2 {
				t.Errorf("%s: %s has %d columns, want %d", u, table, len(cols), len(query.Columns)+2)
			}
		}
	}
}

func runUpgrade(t *testing.T, open func(t *testing.T) *Store) {
	storetest.RunUpgrade(t, func(t *testing.T) store.Store { return open(t) }, func(t *testing.T) {
		s := open(t)
		have, err := s.streamTableColumns(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for table := range have {
			if strings.HasSuffix(table, "_all") {
				continue
			}
			if s.cluster != "" { // made anew from the table of layout 5, as createReadTable did
				if err := s.dropTable(context.Background(), table+"_all"); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range storetest.Layout6Columns {
				stmt := "ALTER TABLE " + s.table(table) + s.onCluster() + " DROP COLUMN " + query.Quote(c.Name)
				if err := s.ddl(context.Background(), stmt, "1"); err != nil {
					t.Fatal(err)
				}
			}
			if s.cluster != "" {
				if err := s.createDistributed(context.Background(), table); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, _ := s.streamTableColumns(context.Background())
		if cols := got[tableID(store.StreamID{Account: "acct-u", Stream: "ls-upgrade"})]; len(cols) != len(query.Columns)+2-len(storetest.Layout6Columns) {
			t.Fatalf("downgraded table: %v", cols)
		}
	})
}
