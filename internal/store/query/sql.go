package query

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"flowlog/internal/flow"
)

// Both backends store a record in the same columns: one per field, except
// addresses, which are two unsigned 64-bit halves (<name>_hi, <name>_lo) of
// the 16-byte form (IPv4 as ::ffff:a.b.c.d). Integers make grouping fast
// and turn a CIDR match into a range test, on every server version.

// SQLType is the type of one stored or selected SQL column.
type SQLType uint8

const (
	SQLUint   SQLType = iota // UBIGINT / UInt64
	SQLInt                   // BIGINT / Int64
	SQLString                // VARCHAR / String
)

// StoredColumn is one column of the stored table.
type StoredColumn struct {
	Name  string
	Type  SQLType
	Field int // index in flow.Fields
}

// Columns lists the stored columns in table order.
var Columns = func() []StoredColumn {
	var cs []StoredColumn
	for i, f := range flow.Fields {
		switch f.Kind {
		case flow.KindAddr:
			cs = append(cs, StoredColumn{f.Name + "_hi", SQLUint, i}, StoredColumn{f.Name + "_lo", SQLUint, i})
		case flow.KindUint:
			cs = append(cs, StoredColumn{f.Name, SQLUint, i})
		case flow.KindTime:
			cs = append(cs, StoredColumn{f.Name, SQLInt, i})
		default:
			cs = append(cs, StoredColumn{f.Name, SQLString, i})
		}
	}
	return cs
}()

// ColumnIndex is the index of a stored column in Columns, or -1.
func ColumnIndex(name string) int {
	return slices.IndexFunc(Columns, func(c StoredColumn) bool { return c.Name == name })
}

// TimeColumn is the column that places a record in time (its last packet).
const TimeColumn = "end"

// AddrParts splits an address into the stored halves; the zero Addr is 0, 0.
func AddrParts(a netip.Addr) (hi, lo uint64) {
	if !a.IsValid() {
		return 0, 0
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// AddrFromParts is the inverse of AddrParts (IPv4-mapped comes back as IPv4).
func AddrFromParts(hi, lo uint64) netip.Addr {
	if hi == 0 && lo == 0 {
		return netip.Addr{}
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b).Unmap()
}

// Quote quotes an SQL identifier. Identifiers come from flow.Fields or the
// backends, never from users, but quoting also protects keywords ("end").
func Quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Dialect is what differs between the SQL of the backends.
type Dialect interface {
	// Bind returns SQL standing for v (uint64, int64 or string): either a
	// placeholder, appending v to args, or a safely escaped literal.
	Bind(args *[]any, v any) string
	// Uint casts an expression to an unsigned 64-bit integer.
	Uint(expr string) string
	// Sum sums an unsigned 64-bit column.
	Sum(col string) string
	// CountDistinct counts distinct tuples of the expressions.
	CountDistinct(exprs []string) string
	// Bucket rounds the time expression down to a multiple of ms.
	Bucket(expr string, ms int64) string
	// InSet tests whether the tuple of exprs is one of the tuples given
	// column by column (cols[i] holds the values of exprs[i]; uint64,
	// int64 or string). Lists are long (a filter may hold thousands of
	// values): the engine should hash them once, not compare one by one.
	// InLiterals is a portable form.
	InSet(exprs []string, cols [][]any, args *[]any) string
}

// InLiterals writes an InSet condition as an IN list of bound values:
// x IN (v, …) or (x, y) IN ((v, w), …).
func InLiterals(d Dialect, exprs []string, cols [][]any, args *[]any) string {
	tuples := make([]string, len(cols[0]))
	for i := range tuples {
		vals := make([]string, len(exprs))
		for j := range exprs {
			vals[j] = d.Bind(args, cols[j][i])
		}
		tuples[i] = strings.Join(vals, ", ")
		if len(exprs) > 1 {
			tuples[i] = "(" + tuples[i] + ")"
		}
	}
	lhs := strings.Join(exprs, ", ")
	if len(exprs) > 1 {
		lhs = "(" + lhs + ")"
	}
	return "(" + lhs + " IN (" + strings.Join(tuples, ", ") + "))"
}

// setMin is the shortest in list compiled with Dialect.InSet; shorter
// lists stay plain comparisons, which engines also use to skip data.
const setMin = 16

// Plan is a compiled request: the SQL, its arguments, the types of the
// selected columns (for scanning), and how to turn scanned rows back into
// the response.
type Plan struct {
	SQL      string
	Args     []any
	Types    []SQLType
	raw      bool
	columns  []Column
	outWidth []int // SQL columns per output column
	limit    int
	offset   int
}

// Filter compiles a parsed filter to an SQL condition (always true for nil).
func Filter(e Expr, d Dialect, args *[]any) string {
	switch e := e.(type) {
	case nil:
		return "(1 = 1)"
	case And:
		return "(" + strings.Join(compileAll(foldAnd(chain(e)), d, args), " AND ") + ")"
	case Or:
		return "(" + strings.Join(compileAll(foldOr(chain(e)), d, args), " OR ") + ")"
	case Not:
		return "(NOT " + Filter(e.X, d, args) + ")"
	case Cmp:
		return "(" + Quote(e.Field.Name) + " " + e.Op + " " + d.Bind(args, e.Value.Typed(e.Field)) + ")"
	case In:
		if e.Field.Kind == flow.KindAddr {
			return prefixesCond(e.Field.Name, e.Values, d, args)
		}
		if len(e.Values) >= setMin {
			vals := make([]any, len(e.Values))
			for i, v := range e.Values {
				vals[i] = v.Typed(e.Field)
			}
			return d.InSet([]string{Quote(e.Field.Name)}, [][]any{vals}, args)
		}
		parts := make([]string, len(e.Values))
		for i, v := range e.Values {
			parts[i] = d.Bind(args, v.Typed(e.Field))
		}
		return "(" + Quote(e.Field.Name) + " IN (" + strings.Join(parts, ", ") + "))"
	}
	panic(fmt.Sprintf("query: unknown node %T", e))
}

func compileAll(es []Expr, d Dialect, args *[]any) []string {
	out := make([]string, len(es))
	for i, x := range es {
		out[i] = Filter(x, d, args)
	}
	return out
}

// chain flattens a run of the same operator (a and b and c …) into one
// list, so long filters do not nest deeply in SQL.
func chain(e Expr) []Expr {
	var l, r Expr
	switch x := e.(type) {
	case And:
		l, r = x.L, x.R
	case Or:
		l, r = x.L, x.R
	}
	var out []Expr
	if sameOp(l, e) {
		out = chain(l)
	} else {
		out = []Expr{l}
	}
	return append(out, r)
}

// foldOr merges the equality tests of one field in an or-chain (a = 1 or
// a = 2 or a in (3, 4)) into one in list, which compiles to a set rather
// than a comparison per value.
func foldOr(es []Expr) []Expr {
	return fold(es, func(e Expr) (In, bool) {
		switch e := e.(type) {
		case In:
			return e, true
		case Cmp:
			return In{e.Field, []Value{e.Value}}, e.Op == "="
		}
		return In{}, false
	}, func(in In) Expr { return in })
}

// foldAnd is foldOr for an and-chain of inequalities (a != 1 and not a in
// (2, 3)), merged into not in.
func foldAnd(es []Expr) []Expr {
	return fold(es, func(e Expr) (In, bool) {
		switch e := e.(type) {
		case Not:
			in, ok := e.X.(In)
			return in, ok
		case Cmp:
			return In{e.Field, []Value{e.Value}}, e.Op == "!="
		}
		return In{}, false
	}, func(in In) Expr { return Not{in} })
}

// fold merges the operands asIn accepts by field, in order of first
// appearance; wrap turns a merged list back into an operand.
func fold(es []Expr, asIn func(Expr) (In, bool), wrap func(In) Expr) []Expr {
	merged := map[string]int{} // field name → index in out
	var out []Expr
	var lists []*In
	for _, e := range es {
		in, ok := asIn(e)
		if !ok {
			out, lists = append(out, e), append(lists, nil)
			continue
		}
		if i, seen := merged[in.Field.Name]; seen {
			lists[i].Values = append(lists[i].Values, in.Values...)
			continue
		}
		merged[in.Field.Name] = len(out)
		cp := In{in.Field, slices.Clone(in.Values)}
		out, lists = append(out, nil), append(lists, &cp)
	}
	for i, l := range lists {
		if l != nil {
			out[i] = wrap(*l)
		}
	}
	return out
}

func sameOp(a, b Expr) bool {
	switch a.(type) {
	case And:
		_, ok := b.(And)
		return ok
	case Or:
		_, ok := b.(Or)
		return ok
	}
	return false
}

// prefixCond matches an address column against a prefix as a range over
// its two halves.
func prefixCond(name string, p netip.Prefix, d Dialect, args *[]any) string {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	lh, ll := AddrParts(p.Addr())
	hiCol, loCol := Quote(name+"_hi"), Quote(name+"_lo")
	var c string
	switch {
	case bits == 0:
		c = "(1 = 1)"
	case bits >= 64:
		mask := hostMask(bits - 64)
		c = "(" + hiCol + " = " + d.Bind(args, lh) + " AND " + loCol + " BETWEEN " +
			d.Bind(args, ll) + " AND " + d.Bind(args, ll|mask) + ")"
	default:
		c = "(" + hiCol + " BETWEEN " + d.Bind(args, lh) + " AND " + d.Bind(args, lh|hostMask(bits)) + ")"
	}
	if p.Addr().Is6() && p.Overlaps(v4Mapped) {
		// IPv4 is stored IPv4-mapped; an IPv6 prefix must not match it.
		c = "(" + c + " AND NOT (" + hiCol + " = " + d.Bind(args, uint64(0)) + " AND " + loCol + " BETWEEN " +
			d.Bind(args, uint64(0xffff00000000)) + " AND " + d.Bind(args, uint64(0xffffffffffff)) + "))"
	}
	return c
}

var v4Mapped = netip.MustParsePrefix("::ffff:0:0/96")

// prefixesCond matches an address column against a list of prefixes. A
// long list compiles to one set test per prefix length, whatever its
// number of prefixes: the address halves, host bits cleared, are looked
// up in the set of the list's prefixes of that length.
func prefixesCond(name string, vals []Value, d Dialect, args *[]any) string {
	var parts []string
	if len(vals) < setMin {
		for _, v := range vals {
			parts = append(parts, prefixCond(name, v.Prefix, d, args))
		}
		return "(" + strings.Join(parts, " OR ") + ")"
	}
	type set struct{ his, los []any }
	sets := map[int]*set{}
	seen := map[netip.Prefix]bool{}
	for _, v := range vals {
		p := v.Prefix
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		switch {
		case seen[p]:
			continue
		case p.Addr().Is6() && p.Overlaps(v4Mapped): // at most 97 of these; includes ::/0
			parts = append(parts, prefixCond(name, p, d, args))
		default:
			hi, lo := AddrParts(p.Addr())
			if sets[bits] == nil {
				sets[bits] = &set{}
			}
			sets[bits].his = append(sets[bits].his, hi)
			sets[bits].los = append(sets[bits].los, lo)
		}
		seen[p] = true
	}
	hiCol, loCol := Quote(name+"_hi"), Quote(name+"_lo")
	for bits := 1; bits <= 128; bits++ {
		s := sets[bits]
		switch {
		case s == nil:
		case bits <= 64:
			parts = append(parts, d.InSet([]string{network(hiCol, 64-bits)}, [][]any{s.his}, args))
		default:
			parts = append(parts, d.InSet([]string{hiCol, network(loCol, 128-bits)}, [][]any{s.his, s.los}, args))
		}
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// network clears the low host bits (< 64) of an unsigned column. The
// modulus is the compiler's own number, written as a literal.
func network(col string, host int) string {
	if host == 0 {
		return col
	}
	return "(" + col + " - " + col + " % " + strconv.FormatUint(uint64(1)<<host, 10) + ")"
}

// hostMask has the low 64-bits bits set.
func hostMask(bits int) uint64 {
	if bits >= 64 {
		return 0
	}
	return ^uint64(0) >> bits
}

// Options adapts Compile to a source other than the stored records.
type Options struct {
	// Count names a column holding how many records each source row
	// stands for (a rollup); count(*) then sums it instead.
	Count string
}

// Compile turns a validated request into SQL over from (a table name or a
// parenthesised subquery holding the stored columns).
func Compile(q Request, from string, d Dialect) (*Plan, error) {
	return CompileWith(q, from, d, Options{})
}

// CompileWith is Compile over a source described by o.
func CompileWith(q Request, from string, d Dialect, o Options) (*Plan, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	e, _ := Parse(q.Where)
	p := &Plan{raw: q.Raw(), limit: q.Limit, offset: q.Offset}
	if p.limit == 0 {
		p.limit = DefaultLimit
	}
	var args []any
	where := Quote(TimeColumn) + " >= " + d.Bind(&args, q.Since.UnixMilli()) +
		" AND " + Quote(TimeColumn) + " < " + d.Bind(&args, q.Until.UnixMilli()) +
		" AND " + Filter(e, d, &args)
	var sql string
	if p.raw {
		sql = p.rawSQL(from, where)
	} else {
		var err error
		if sql, err = p.aggSQL(q, from, where, d, o); err != nil {
			return nil, err
		}
	}
	p.SQL = sql + fmt.Sprintf(" LIMIT %d OFFSET %d", p.limit, p.offset)
	p.Args = args
	return p, nil
}

// RawOrder is the order of raw records: by time and 5-tuple first, then
// by every other column, so pages never overlap or skip, whatever order
// the engine would give to ties.
var RawOrder = func() []string {
	order := []string{"end", "start", "srcaddr_hi", "srcaddr_lo", "dstaddr_hi", "dstaddr_lo",
		"srcport", "dstport", "protocol", "bytes", "packets"}
	for _, c := range Columns {
		if !slices.Contains(order, c.Name) {
			order = append(order, c.Name)
		}
	}
	return order
}()

func (p *Plan) rawSQL(from, where string) string {
	names := make([]string, len(Columns))
	for i, c := range Columns {
		names[i] = Quote(c.Name)
		p.Types = append(p.Types, c.Type)
	}
	order := make([]string, len(RawOrder))
	for i, n := range RawOrder {
		order[i] = Quote(n)
	}
	return "SELECT " + strings.Join(names, ", ") + " FROM " + from + " WHERE " + where +
		" ORDER BY " + strings.Join(order, ", ")
}

// fieldExprs returns the SQL columns of a field and their types.
func fieldExprs(f flow.Field) ([]string, []SQLType) {
	switch f.Kind {
	case flow.KindAddr:
		return []string{Quote(f.Name + "_hi"), Quote(f.Name + "_lo")}, []SQLType{SQLUint, SQLUint}
	case flow.KindUint:
		return []string{Quote(f.Name)}, []SQLType{SQLUint}
	case flow.KindTime:
		return []string{Quote(f.Name)}, []SQLType{SQLInt}
	}
	return []string{Quote(f.Name)}, []SQLType{SQLString}
}

func (p *Plan) aggSQL(q Request, from, where string, d Dialect, o Options) (string, error) {
	var sel, group, keyOrder []string
	addOut := func(c Column, exprs []string, types []SQLType) {
		p.columns = append(p.columns, c)
		p.outWidth = append(p.outWidth, len(exprs))
		sel = append(sel, exprs...)
		p.Types = append(p.Types, types...)
	}
	ms, _ := q.IntervalMS()
	if ms > 0 {
		b := d.Bucket(Quote(TimeColumn), ms)
		addOut(newColumn("time", flow.KindTime), []string{b}, []SQLType{SQLInt})
		group = append(group, b)
		keyOrder = append(keyOrder, b)
	}
	for _, g := range q.GroupBy {
		f, _ := flow.FieldByName(g)
		exprs, types := fieldExprs(f)
		addOut(newColumn(f.Name, f.Kind), exprs, types)
		group = append(group, exprs...)
		keyOrder = append(keyOrder, exprs...)
	}
	aggs := q.Aggregates
	if len(aggs) == 0 {
		aggs = []Aggregate{{Func: "count"}}
	}
	aggExpr := map[string]string{}
	for _, a := range aggs {
		var x string
		switch a.Func {
		case "count":
			x = d.Uint("count(*)")
			if o.Count != "" {
				x = d.Uint("coalesce(" + d.Sum(Quote(o.Count)) + ", 0)")
			}
		case "sum":
			x = d.Uint("coalesce(" + d.Sum(Quote(a.Field)) + ", 0)")
		case "count_distinct":
			f, _ := flow.FieldByName(a.Field)
			exprs, _ := fieldExprs(f)
			x = d.Uint(d.CountDistinct(exprs))
		}
		aggExpr[a.Name()] = x
		addOut(newColumn(a.Name(), flow.KindUint), []string{x}, []SQLType{SQLUint})
	}
	dir := " DESC"
	if q.Ascending {
		dir = " ASC"
	}
	var order []string
	switch {
	case q.OrderBy != "":
		if x, ok := aggExpr[q.OrderBy]; ok {
			order = append(order, x+dir)
		} else if i := p.columnIndex(q.OrderBy); i >= 0 && i < len(p.columns)-len(aggs) {
			for _, x := range p.keyExprs(i, sel) {
				order = append(order, x+dir)
			}
		} else {
			return "", fmt.Errorf("%w: order_by %q is not an output column", ErrInvalid, q.OrderBy)
		}
	case ms > 0:
		order = append(order, keyOrder[0]) // series: by time, then biggest first
		order = append(order, aggExpr[aggs[0].Name()]+dir)
	default:
		order = append(order, aggExpr[aggs[0].Name()]+dir)
	}
	order = append(order, keyOrder...) // ties in a stable order on every backend
	s := "SELECT " + strings.Join(sel, ", ") + " FROM " + from + " WHERE " + where
	if len(group) > 0 {
		s += " GROUP BY " + strings.Join(group, ", ")
	}
	return s + " ORDER BY " + strings.Join(order, ", "), nil
}

func (p *Plan) columnIndex(name string) int {
	for i, c := range p.columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func (p *Plan) keyExprs(col int, sel []string) []string {
	start := 0
	for i := 0; i < col; i++ {
		start += p.outWidth[i]
	}
	return sel[start : start+p.outWidth[col]]
}

// Response starts an empty response of the plan's shape.
func (p *Plan) Response() *Response {
	return &Response{Columns: p.columns}
}

// Add appends one scanned row (values typed as Types: uint64, int64,
// string) to the response.
func (p *Plan) Add(resp *Response, vals []any) error {
	if len(vals) != len(p.Types) {
		return fmt.Errorf("query: got %d values, want %d", len(vals), len(p.Types))
	}
	if p.raw {
		r, err := RecordFromColumns(vals)
		if err != nil {
			return err
		}
		resp.Records = append(resp.Records, r)
	} else {
		row := make([]any, len(p.columns))
		i := 0
		for j, c := range p.columns {
			if c.Kind == flow.KindAddr {
				a := AddrFromParts(vals[i].(uint64), vals[i+1].(uint64))
				row[j] = addrText(a)
			} else {
				row[j] = vals[i]
			}
			i += p.outWidth[j]
		}
		resp.Rows = append(resp.Rows, row)
	}
	return nil
}

// Finish sets NextOffset when the page was full.
func (p *Plan) Finish(resp *Response) {
	if n := len(resp.Rows) + len(resp.Records); n == p.limit {
		resp.NextOffset = p.offset + n
	}
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// RecordColumns returns the stored column values of r, in Columns order,
// typed uint64, int64 or string. Strings are stored as valid UTF-8: an
// invalid byte becomes U+FFFD rather than failing the whole batch.
func RecordColumns(r *flow.Record, out []any) []any {
	out = out[:0]
	for _, f := range flow.Fields {
		switch v := f.Get(r).(type) {
		case netip.Addr:
			hi, lo := AddrParts(v)
			out = append(out, hi, lo)
		case string:
			out = append(out, StoredString(v))
		default:
			out = append(out, v)
		}
	}
	return out
}

// StoredString is s as the stores keep it: valid UTF-8, an invalid byte
// replaced by U+FFFD.
func StoredString(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// RecordFromColumns is the inverse of RecordColumns.
func RecordFromColumns(vals []any) (flow.Record, error) {
	var r flow.Record
	i := 0
	for _, f := range flow.Fields {
		var v any
		if f.Kind == flow.KindAddr {
			v = AddrFromParts(vals[i].(uint64), vals[i+1].(uint64))
			i += 2
		} else {
			v = vals[i]
			i++
		}
		if err := f.Set(&r, v); err != nil {
			return r, fmt.Errorf("stored record: %w", err)
		}
	}
	return r, nil
}
