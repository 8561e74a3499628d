package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"flowlog/internal/store/query"
)

// streamTableRE matches the names of the streams' tables and their
// Distributed tables: those whose columns are the records' (staging tables
// are made from them as needed; rollups hold sums of a few keys).
const streamTableRE = `^f_[0-9a-f]{24}(_all)?$`

// upgradeTables gives the streams' tables made by an earlier record layout
// the columns added since, in the place new tables have them, with the
// value of an empty field (layouts only ever append fields). On a cluster,
// the replicated tables are altered (ON CLUSTER: ZooKeeper passes the
// change to every replica), and the Distributed tables made anew over
// them: 18.16 runs no ALTER … ON CLUSTER of a table that is not
// replicated, and they hold no rows.
func (s *Store) upgradeTables(ctx context.Context) error {
	have, err := s.streamTableColumns(ctx)
	if err != nil {
		return fmt.Errorf("clickhouse store: upgrade: %w", err)
	}
	full := len(query.Columns) + 2 // with day and seq
	for table, cols := range have {
		if strings.HasSuffix(table, "_all") {
			continue
		}
		if len(cols) != full {
			err = s.addColumns(ctx, table, cols)
		}
		if err == nil && s.cluster != "" && (len(cols) != full || len(have[table+"_all"]) != full) {
			if err = s.dropTable(ctx, table+"_all"); err == nil {
				err = s.createDistributed(ctx, table)
			}
		}
		if err != nil {
			return fmt.Errorf("clickhouse store: upgrade %s: %w", table, err)
		}
	}
	return nil
}

// addColumns adds the columns table lacks of query.Columns.
func (s *Store) addColumns(ctx context.Context, table string, cols map[string]bool) error {
	var add []string
	for j, c := range query.Columns[1:] {
		if !cols[c.Name] {
			add = append(add, "ADD COLUMN "+query.Quote(c.Name)+" "+chType[c.Type]+" AFTER "+query.Quote(query.Columns[j].Name))
		}
	}
	last := query.Columns[len(query.Columns)-1].Name
	err := s.ddl(ctx, "ALTER TABLE "+s.table(table)+s.onCluster()+" "+strings.Join(add, ", "),
		"(SELECT count() FROM system.columns WHERE database = "+literal(s.db)+" AND table = "+literal(table)+
			" AND name = "+literal(last)+") = 1")
	if err != nil && s.hasColumn(ctx, table, last) { // another process has just added them
		return nil
	}
	return err
}

// streamTableColumns returns the column names of each stream table.
func (s *Store) streamTableColumns(ctx context.Context) (map[string]map[string]bool, error) {
	rows, err := s.c.selectTSV(ctx, "SELECT table, name FROM system.columns WHERE database = "+literal(s.db)+
		" AND match(table, "+literal(streamTableRE)+")", []query.SQLType{query.SQLString, query.SQLString})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for _, r := range rows {
		t := r[0].(string)
		if out[t] == nil {
			out[t] = map[string]bool{}
		}
		out[t][r[1].(string)] = true
	}
	return out, nil
}

func (s *Store) hasColumn(ctx context.Context, table, col string) bool {
	have, err := s.streamTableColumns(ctx)
	return err == nil && have[table][col]
}
