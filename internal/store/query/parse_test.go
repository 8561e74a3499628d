package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"flowlog/internal/flow"
)

// show prints a tree in a fully parenthesised form.
func show(e Expr) string {
	switch e := e.(type) {
	case nil:
		return "<all>"
	case And:
		return "(" + show(e.L) + " AND " + show(e.R) + ")"
	case Or:
		return "(" + show(e.L) + " OR " + show(e.R) + ")"
	case Not:
		return "NOT " + show(e.X)
	case Cmp:
		return fmt.Sprintf("%s %s %s", e.Field.Name, e.Op, showValue(e.Field.Kind, e.Value))
	case In:
		var vs []string
		for _, v := range e.Values {
			vs = append(vs, showValue(e.Field.Kind, v))
		}
		return e.Field.Name + " IN [" + strings.Join(vs, " ") + "]"
	}
	return "?"
}

func showValue(k flow.Kind, v Value) string {
	switch k {
	case flow.KindUint:
		return fmt.Sprint(v.Uint)
	case flow.KindTime:
		return fmt.Sprint(v.Int)
	case flow.KindAddr:
		return v.Prefix.String()
	}
	return strconv.Quote(v.Str)
}

func TestParse(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "<all>"},
		{"  ", "<all>"},
		{"srcaddr in 10.0.0.0/8", "srcaddr IN [10.0.0.0/8]"},
		{"srcaddr in 10.1.2.3/8", "srcaddr IN [10.0.0.0/8]"},
		{"SRCADDR IN (10.0.0.1, 2001:db8::/32)", "srcaddr IN [10.0.0.1/32 2001:db8::/32]"},
		{"dstaddr = ::1", "dstaddr IN [::1/128]"},
		{"dstaddr != 1.2.3.4", "NOT dstaddr IN [1.2.3.4/32]"},
		{"dstaddr not in (1.2.3.4)", "NOT dstaddr IN [1.2.3.4/32]"},
		{"dstport==443", "dstport = 443"},
		{"dstport<>443", "dstport != 443"},
		{"bytes >= 18446744073709551615", "bytes >= 18446744073709551615"},
		{"a_or_b", "error"},
		{"protocol = 6 and dstport = 80 or dstport = 443", "((protocol = 6 AND dstport = 80) OR dstport = 443)"},
		{"protocol = 6 and (dstport = 80 or dstport = 443)", "(protocol = 6 AND (dstport = 80 OR dstport = 443))"},
		{"not not protocol = 1", "NOT NOT protocol = 1"},
		{"not protocol = 1 and tos = 0", "(NOT protocol = 1 AND tos = 0)"},
		{"action = 'it''s'", `action = "it's"`},
		{`action = "say ""hi"""`, `action = "say \"hi\""`},
		{"action in (ACCEPT, 'REJECT')", `action IN ["ACCEPT" "REJECT"]`},
		{"start >= 2026-03-15T02:00:00Z", "start >= 1773540000000"},
		{"end < 1773547200000", "end < 1773547200000"},
		// errors
		{"srcaddr < 10.0.0.1", "error"},
		{"srcaddr in 10.0.0.0/33", "error"},
		{"srcaddr = fe80::1%eth0", "error"},
		{"dstport = -1", "error"},
		{"dstport = 65536x", "error"},
		{"bytes = 18446744073709551616", "error"},
		{"nosuch = 1", "error"},
		{"dstport", "error"},
		{"dstport =", "error"},
		{"dstport = 1 and", "error"},
		{"(dstport = 1", "error"},
		{"dstport = 1)", "error"},
		{"dstport in ()", "error"},
		{"dstport in (1,", "error"},
		{"dstport in (1 2)", "error"},
		{"action = 'open", "error"},
		{"dstport ! 1", "error"},
		{"dstport => 1", "error"},
		{"dstport not = 1", "error"},
		{"1 = dstport", "error"},
		{"start > yesterday", "error"},
		{strings.Repeat("(", 100) + "tos = 0" + strings.Repeat(")", 100), "error"},
		{strings.Repeat("not ", 100) + "tos = 0", "error"},
	}
	for _, tt := range tests {
		e, err := Parse(tt.in)
		got := "error"
		if err == nil {
			got = show(e)
		} else if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): error %v does not wrap ErrSyntax", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %s (err %v), want %s", tt.in, got, err, tt.want)
		}
	}
}

// Errors say where the problem is, so that an editor can underline it.
func TestSyntaxErrorOffsets(t *testing.T) {
	for _, tt := range []struct {
		in     string
		offset int
		atEnd  bool
		msg    string
	}{
		{"nosuch = 1", 0, false, `unknown field "nosuch"`},
		{"dstport = 1 and srcaddr < 10.0.0.1", 24, false, "operator < does not apply"},
		{"dstport = 65536x", 10, false, "not an unsigned integer"},
		{"dstport in (1 2)", 14, false, "expected , or )"},
		{"action = 'open", 9, false, "unterminated string"},
		{"dstport => 1", 9, false, "expected a value"},
		{"dstport = 1 and", 15, true, "expected a field name"},
		{"(dstport = 1", 12, true, "missing )"},
		{"dstport = 1)", 11, false, `unexpected ")"`},
		{"action = '\xff'", 10, false, "not valid UTF-8"},
		{strings.Repeat(" ", MaxFilterLen+1), -1, false, "longer than"},
	} {
		_, err := Parse(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.40q): %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if se.Offset != tt.offset || se.AtEnd != tt.atEnd || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Parse(%.40q) = offset %d, at end %v, %q; want %d, %v, …%s…", tt.in, se.Offset, se.AtEnd,
				se.Msg, tt.offset, tt.atEnd, tt.msg)
		}
	}
}

func TestLongChain(t *testing.T) {
	in := "tos = 0" + strings.Repeat(" or tos = 1 and tos = 2", 600)
	e, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	sql := Filter(e, placeholderDialect{}, &args)
	if depth := maxParens(sql); depth > 4 {
		t.Errorf("SQL nests %d deep for a flat chain", depth)
	}
	if _, err := Parse(strings.Repeat("tos = 0 or ", 2000) + "tos = 0"); !errors.Is(err, ErrSyntax) {
		t.Errorf("over-long filter: %v, want ErrSyntax", err)
	}
}

func maxParens(s string) int {
	d, m := 0, 0
	for _, c := range s {
		switch c {
		case '(':
			d++
			m = max(m, d)
		case ')':
			d--
		}
	}
	return m
}

type placeholderDialect struct{}

func (placeholderDialect) Bind(args *[]any, v any) string   { *args = append(*args, v); return "?" }
func (placeholderDialect) Uint(x string) string             { return x }
func (placeholderDialect) Sum(x string) string              { return x }
func (placeholderDialect) CountDistinct(x []string) string  { return strings.Join(x, ",") }
func (placeholderDialect) Bucket(x string, ms int64) string { return x }
func (p placeholderDialect) InSet(e []string, c [][]any, args *[]any) string {
	return InLiterals(p, e, c, args)
}

func TestFilterFields(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "[]",
		"srcaddr in 10.0.0.0/8": "[srcaddr]",
		"not (dstport = 1 or protocol = 6) and dstport in (2, 3)":  "[dstport protocol]",
		"action = 'x' and (srcaddr = 1.2.3.4 or not action = 'y')": "[action srcaddr]",
	} {
		e, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(FilterFields(e)); got != want {
			t.Errorf("FilterFields(%q) = %s, want %s", in, got, want)
		}
	}
}
