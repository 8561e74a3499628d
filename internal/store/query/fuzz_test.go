package query_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/clickhouse"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
	"flowlog/internal/store/storetest"
)

// placeholders stands for any value with "?" and records it.
type placeholders struct{ clickhouse.Dialect }

func (placeholders) Bind(args *[]any, v any) string { *args = append(*args, v); return "?" }

func (p placeholders) InSet(exprs []string, cols [][]any, args *[]any) string {
	return query.InLiterals(p, exprs, cols, args)
}

var chLiteral = regexp.MustCompile(`^(unhex\('[0-9A-F]*'\)|-?[0-9]+)$`)

// FuzzFilter feeds arbitrary text to the filter language. Whatever the
// input, the parser returns a tree or an ErrSyntax, never panics; a tree
// runs on a real DuckDB store (values bound as parameters) and matches
// exactly the records the Go evaluator matches, so no input changes the
// shape of the SQL; and in the ClickHouse SQL every value is a decimal or
// hex literal in a place a placeholder would hold.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		"srcaddr in 10.0.0.0/8",
		"srcaddr in (10.1.0.0/16, 2001:db8::/32) and not dstport in (22, 80)",
		"protocol = 6 and (dstport = 443 or dstport = 80) or bytes > 100000",
		`action = 'it''s' or action = "a""b" or action in ('x\y', 'ünï')`,
		"action = 'x'); DROP TABLE streams; --",
		"action = 'x' OR 1=1 --",
		`action = "x" UNION SELECT * FROM streams`,
		"action = unhex('41') or action = '\\') or (1=1'",
		"start >= 2026-03-15T02:00:00Z and end < 1773547200000",
		"srcaddr in ::/0", "dstaddr != 192.168.0.1", "flow_direction = ingress",
		"not not not tos = 0", "((((vlan_id = 100))))", "", "srcaddr in (", "bytes = 18446744073709551615",
		"dstport in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 22, 80) or srcaddr in (10.0.0.1, 10.0.0.2, " +
			"10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9, 10.1.0.0/16, 2001:db8::/32, ::/0, 8000::/1, " +
			"2001:db8::1, 2001:db8::2, 2001:db8::3, 10.2.0.0/24)",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	s, err := duckdb.New(duckdb.Config{Dir: dir})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	id := store.StreamID{Account: "a", Stream: "s"}
	if err := s.CreateStream(ctx, store.Stream{StreamID: id}); err != nil {
		f.Fatal(err)
	}
	recs := storetest.Records(2000, 3*time.Hour, 5)
	if err := s.Append(ctx, id, recs); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, where string) {
		e, err := query.Parse(where)
		if err != nil {
			if !errors.Is(err, query.ErrSyntax) {
				t.Fatalf("Parse(%q): %v does not wrap ErrSyntax", where, err)
			}
			return
		}
		q := query.Request{Since: storetest.Base, Until: storetest.Base.Add(3 * time.Hour), Where: where,
			Aggregates: []query.Aggregate{{Func: "count"}}}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := s.Query(qctx, id, q)
		if err != nil {
			t.Fatalf("query %q: %v", where, err)
		}
		var want uint64
		for i := range recs {
			if storetest.Match(e, &recs[i]) {
				want++
			}
		}
		if got := resp.Rows[0][0]; got != want {
			t.Fatalf("%q matched %v records in DuckDB, %d in Go", where, got, want)
		}
		checkClickHouseSQL(t, e)
	})
}

func checkClickHouseSQL(t *testing.T, e query.Expr) {
	var args, none []any
	shape := query.Filter(e, placeholders{}, &args)
	ch := query.Filter(e, clickhouse.Dialect{}, &none)
	var b strings.Builder
	parts := strings.Split(shape, "?")
	if len(parts) != len(args)+1 {
		t.Fatalf("SQL shape %q has %d placeholders for %d values", shape, len(parts)-1, len(args))
	}
	for i, p := range parts {
		b.WriteString(p)
		if i < len(args) {
			lit := clickhouse.Dialect{}.Bind(nil, args[i])
			if !chLiteral.MatchString(lit) {
				t.Fatalf("literal %q for %#v is not a plain number or hex string", lit, args[i])
			}
			b.WriteString(lit)
		}
	}
	if b.String() != ch {
		t.Fatalf("ClickHouse SQL differs from its shape:\n%s\n%s", ch, b.String())
	}
}

// TestFieldsAreColumns checks that every record field is queryable.
func TestFieldsAreColumns(t *testing.T) {
	for _, f := range flow.Fields {
		if _, err := query.Parse(f.Name + " in (" + map[flow.Kind]string{flow.KindAddr: "::1", flow.KindUint: "1", flow.KindTime: "1", flow.KindString: "'x'"}[f.Kind] + ")"); err != nil {
			t.Errorf("field %s: %v", f.Name, err)
		}
	}
}
