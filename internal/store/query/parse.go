// Package query is the query model of the log store: a filter language over
// the record fields (parsed into a tree), a JSON request/response pair, and
// the compiler from both to SQL shared by the DuckDB and ClickHouse backends.
package query

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"flowlog/internal/flow"
)

// ErrSyntax is returned (wrapped) for any filter that does not parse.
var ErrSyntax = errors.New("filter syntax error")

// SyntaxError is the error Parse returns: what is wrong and where, so that
// an editor can point at it. It wraps ErrSyntax.
type SyntaxError struct {
	// Offset is the byte offset of the problem in the filter (its length
	// when the filter ends too soon), or -1 when it is not at one place.
	Offset int
	AtEnd  bool // the filter ends where more was expected
	Msg    string
}

func (e *SyntaxError) Error() string {
	switch {
	case e.AtEnd:
		return fmt.Sprintf("%v at end: %s", ErrSyntax, e.Msg)
	case e.Offset >= 0:
		return fmt.Sprintf("%v at %d: %s", ErrSyntax, e.Offset, e.Msg)
	}
	return fmt.Sprintf("%v: %s", ErrSyntax, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return ErrSyntax }

func syntaxAt(offset int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: offset, Msg: fmt.Sprintf(format, args...)}
}

// Expr is a node of a parsed filter.
type Expr interface{ expr() }

// And, Or and Not combine filters.
type (
	And struct{ L, R Expr }
	Or  struct{ L, R Expr }
	Not struct{ X Expr }
)

// Cmp compares a field with one value: = != < <= > >=.
type Cmp struct {
	Field flow.Field
	Op    string
	Value Value
}

// In tests a field against a list of values; for addresses a value may be
// a CIDR prefix.
type In struct {
	Field  flow.Field
	Values []Value
}

// FilterFields returns the names of the fields a filter refers to, each
// once, in order of first use.
func FilterFields(e Expr) []string {
	var names []string
	var walk func(Expr)
	walk = func(e Expr) {
		var name string
		switch e := e.(type) {
		case And:
			walk(e.L)
			walk(e.R)
		case Or:
			walk(e.L)
			walk(e.R)
		case Not:
			walk(e.X)
		case Cmp:
			name = e.Field.Name
		case In:
			name = e.Field.Name
		}
		if name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	walk(e)
	return names
}

func (And) expr() {}
func (Or) expr()  {}
func (Not) expr() {}
func (Cmp) expr() {}
func (In) expr()  {}

// Value is a literal typed by the field it is compared with: Uint for
// KindUint, Int (Unix ms) for KindTime, Str for KindString and Prefix for
// KindAddr (a single address is a full-length prefix).
type Value struct {
	Uint   uint64
	Int    int64
	Str    string
	Prefix netip.Prefix
}

// Typed returns the value as f's values are typed (see flow.Field.Get):
// uint64 for KindUint, int64 for KindTime, string for KindString. For an
// address field, use Prefix.
func (v Value) Typed(f flow.Field) any {
	switch f.Kind {
	case flow.KindUint:
		return v.Uint
	case flow.KindTime:
		return v.Int
	}
	return v.Str
}

// Limits that keep hostile input from exhausting the stack or the server:
// nesting of parentheses and not, and the filter's length.
const (
	maxDepth     = 64
	MaxFilterLen = 16 << 10
)

// Parse parses a filter such as
//
//	srcaddr in 10.0.0.0/8 and not (dstport in (22, 3389) or protocol = 1)
//
// An empty filter yields a nil Expr, which matches everything.
func Parse(s string) (Expr, error) {
	if len(s) > MaxFilterLen {
		return nil, syntaxAt(-1, "filter longer than %d bytes", MaxFilterLen)
	}
	if !utf8.ValidString(s) {
		return nil, syntaxAt(invalidUTF8(s), "filter is not valid UTF-8")
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, nil
	}
	p := &parser{toks: toks, end: len(s)}
	e, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, p.errorf("unexpected %s", p.toks[p.pos])
	}
	return e, nil
}

type tokKind uint8

const (
	tWord tokKind = iota // identifier, number, address, bare value
	tString
	tOp
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func (t token) String() string {
	if t.kind == tString {
		return strconv.Quote(t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == '\'' || c == '"':
			str, n, err := lexString(s[i:])
			if err != nil {
				return nil, syntaxAt(i, "%v", err)
			}
			toks = append(toks, token{tString, str, i})
			i += n
		case strings.IndexByte("=!<>", c) >= 0:
			op := string(c)
			if i+1 < len(s) && s[i+1] == '=' || c == '<' && i+1 < len(s) && s[i+1] == '>' {
				op = s[i : i+2]
			}
			switch op {
			case "=", "==", "!=", "<>", "<", "<=", ">", ">=":
			default:
				return nil, syntaxAt(i, "unknown operator %q", op)
			}
			toks = append(toks, token{tOp, op, i})
			i += len(op)
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r(),'\"=!<>", rune(s[j])) {
				j++
			}
			toks = append(toks, token{tWord, s[i:j], i})
			i = j
		}
	}
	return toks, nil
}

// lexString reads a quoted string; the quote character is escaped by
// doubling it. It returns the value and the bytes consumed.
func lexString(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != q {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == q {
			b.WriteByte(q)
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, errors.New("unterminated string")
}

// invalidUTF8 is the offset of the first byte of s that is not UTF-8.
func invalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return -1
}

type parser struct {
	toks []token
	pos  int
	end  int // the filter's length
}

// errorf reports a problem at the current token, or at the end.
func (p *parser) errorf(format string, args ...any) error {
	if p.pos < len(p.toks) {
		return syntaxAt(p.toks[p.pos].pos, format, args...)
	}
	e := syntaxAt(p.end, format, args...)
	e.AtEnd = true
	return e
}

func (p *parser) peekKeyword(kw string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == tWord && strings.EqualFold(p.toks[p.pos].text, kw)
}

func (p *parser) next() (token, bool) {
	if p.pos >= len(p.toks) {
		return token{}, false
	}
	t := p.toks[p.pos]
	p.pos++
	return t, true
}

func (p *parser) or(depth int) (Expr, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.peekKeyword("or") {
		p.pos++
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = Or{l, r}
	}
	return l, nil
}

func (p *parser) and(depth int) (Expr, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.peekKeyword("and") {
		p.pos++
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = And{l, r}
	}
	return l, nil
}

func (p *parser) unary(depth int) (Expr, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	if p.peekKeyword("not") {
		p.pos++
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return Not{x}, nil
	}
	if p.pos < len(p.toks) && p.toks[p.pos].kind == tLParen {
		p.pos++
		e, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if t, ok := p.next(); !ok || t.kind != tRParen {
			if ok {
				p.pos--
			}
			return nil, p.errorf("missing )")
		}
		return e, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (Expr, error) {
	t, ok := p.next()
	if !ok {
		return nil, p.errorf("expected a field name")
	}
	if t.kind != tWord {
		p.pos--
		return nil, p.errorf("expected a field name, got %s", t)
	}
	f, ok := flow.FieldByName(strings.ToLower(t.text))
	if !ok {
		p.pos--
		return nil, p.errorf("unknown field %q", t.text)
	}
	negate := false
	if p.peekKeyword("not") {
		p.pos++
		negate = true
		if !p.peekKeyword("in") {
			return nil, p.errorf("expected in after not")
		}
	}
	if p.peekKeyword("in") {
		p.pos++
		in, err := p.inList(f)
		if err != nil {
			return nil, err
		}
		if negate {
			return Not{in}, nil
		}
		return in, nil
	}
	op, ok := p.next()
	if !ok || op.kind != tOp {
		if ok {
			p.pos--
		}
		return nil, p.errorf("expected an operator after %s", f.Name)
	}
	v, err := p.value(f)
	if err != nil {
		return nil, err
	}
	switch op.text {
	case "==":
		op.text = "="
	case "<>":
		op.text = "!="
	}
	if f.Kind == flow.KindAddr {
		switch op.text {
		case "=":
			return In{f, []Value{v}}, nil
		case "!=":
			return Not{In{f, []Value{v}}}, nil
		}
		return nil, syntaxAt(op.pos, "operator %s does not apply to address field %s (use = or in)", op.text, f.Name)
	}
	return Cmp{f, op.text, v}, nil
}

func (p *parser) inList(f flow.Field) (Expr, error) {
	if p.pos < len(p.toks) && p.toks[p.pos].kind != tLParen {
		v, err := p.value(f) // a single value: srcaddr in 10.0.0.0/8
		if err != nil {
			return nil, err
		}
		return In{f, []Value{v}}, nil
	}
	p.pos++ // (
	var vals []Value
	for {
		v, err := p.value(f)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		t, ok := p.next()
		if !ok {
			return nil, p.errorf("missing ) after in list")
		}
		if t.kind == tRParen {
			return In{f, vals}, nil
		}
		if t.kind != tComma {
			p.pos--
			return nil, p.errorf("expected , or ) in list, got %s", t)
		}
	}
}

func (p *parser) value(f flow.Field) (Value, error) {
	t, ok := p.next()
	if !ok {
		return Value{}, p.errorf("expected a value for %s", f.Name)
	}
	if t.kind != tWord && t.kind != tString {
		p.pos--
		return Value{}, p.errorf("expected a value for %s, got %s", f.Name, t)
	}
	v, err := ParseValue(f, t.text)
	if err != nil {
		p.pos--
		return Value{}, p.errorf("%v", err)
	}
	return v, nil
}

// ParseValue reads text as a value of field f.
func ParseValue(f flow.Field, s string) (Value, error) {
	switch f.Kind {
	case flow.KindUint:
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%s: %q is not an unsigned integer", f.Name, s)
		}
		return Value{Uint: u}, nil
	case flow.KindTime:
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return Value{Int: i}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Value{}, fmt.Errorf("%s: %q is neither Unix milliseconds nor RFC 3339", f.Name, s)
		}
		return Value{Int: t.UnixMilli()}, nil
	case flow.KindAddr:
		pfx, err := ParsePrefix(s)
		if err != nil {
			return Value{}, fmt.Errorf("%s: %w", f.Name, err)
		}
		return Value{Prefix: pfx}, nil
	}
	return Value{Str: s}, nil
}

// ParsePrefix reads an address or a CIDR prefix; an address becomes a
// full-length prefix. Zones are refused: they are not stored.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
