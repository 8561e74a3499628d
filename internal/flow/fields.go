package flow

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
)

// Field describes one stored/printed field of a Record.
type Field struct {
	Name string
	Kind Kind
	set  func(*Record, any) error
	// The getter of the field's Kind (the others are nil): bulk writers
	// call it without boxing the value; Get, Text and MarshalJSON go
	// through it too.
	uint func(*Record) uint64
	str  func(*Record) string
	addr func(*Record) netip.Addr
	time func(*Record) int64
}

// Kind is the value type of a field, for stores and query compilers.
type Kind uint8

const (
	KindString Kind = iota
	KindAddr
	KindUint // unsigned integer (up to 64 bits)
	KindTime // Unix milliseconds
)

// Fields lists every field of the record layout, in output order.
var Fields = []Field{
	uintField("version", func(r *Record) *uint8 { return &r.Version }),
	strField("account_id", func(r *Record) *string { return &r.AccountID }),
	strField("flow_log_id", func(r *Record) *string { return &r.FlowLogID }),
	strField("gateway_id", func(r *Record) *string { return &r.GatewayID }),
	strField("interface_id", func(r *Record) *string { return &r.InterfaceID }),
	addrField("srcaddr", func(r *Record) *netip.Addr { return &r.SrcAddr }),
	addrField("dstaddr", func(r *Record) *netip.Addr { return &r.DstAddr }),
	uintField("srcport", func(r *Record) *uint16 { return &r.SrcPort }),
	uintField("dstport", func(r *Record) *uint16 { return &r.DstPort }),
	uintField("protocol", func(r *Record) *uint8 { return &r.Protocol }),
	uintField("packets", func(r *Record) *uint64 { return &r.Packets }),
	uintField("bytes", func(r *Record) *uint64 { return &r.Bytes }),
	timeField("start", func(r *Record) *int64 { return &r.Start }),
	timeField("end", func(r *Record) *int64 { return &r.End }),
	strField("action", func(r *Record) *string { return &r.Action }),
	strField("log_status", func(r *Record) *string { return &r.LogStatus }),
	uintField("tcp_flags", func(r *Record) *uint16 { return &r.TCPFlags }),
	{Name: "flow_direction", Kind: KindString,
		str: func(r *Record) string { return r.FlowDirection.String() },
		set: func(r *Record, v any) error {
			d, ok := ParseDirection(fmt.Sprint(v))
			if !ok {
				return fmt.Errorf("flow_direction: unknown value %q", v)
			}
			r.FlowDirection = d
			return nil
		}},
	uintField("ip_version", func(r *Record) *uint8 { return &r.IPVersion }),
	uintField("vlan_id", func(r *Record) *uint16 { return &r.VLANID }),
	uintField("tos", func(r *Record) *uint8 { return &r.TOS }),
	uintField("icmp_type", func(r *Record) *uint8 { return &r.ICMPType }),
	uintField("icmp_code", func(r *Record) *uint8 { return &r.ICMPCode }),
	{Name: "end_reason", Kind: KindString,
		str: func(r *Record) string { return r.EndReason.String() },
		set: func(r *Record, v any) error {
			e, ok := ParseEndReason(fmt.Sprint(v))
			if !ok {
				return fmt.Errorf("end_reason: unknown value %q", v)
			}
			r.EndReason = e
			return nil
		}},
	uintField("sampling_interval", func(r *Record) *uint32 { return &r.SamplingInterval }),
	// Added in record version 6; stores add them to older tables.
	uintField("in_if_index", func(r *Record) *uint32 { return &r.InputIfIndex }),
	uintField("out_if_index", func(r *Record) *uint32 { return &r.OutputIfIndex }),
	strField("in_if_name", func(r *Record) *string { return &r.InIfName }),
	strField("out_if_name", func(r *Record) *string { return &r.OutIfName }),
	uintField("in_if_speed", func(r *Record) *uint64 { return &r.InIfSpeed }),
	uintField("out_if_speed", func(r *Record) *uint64 { return &r.OutIfSpeed }),
	strField("src_country", func(r *Record) *string { return &r.SrcCountry }),
	strField("dst_country", func(r *Record) *string { return &r.DstCountry }),
	uintField("src_as", func(r *Record) *uint32 { return &r.SrcAS }),
	uintField("dst_as", func(r *Record) *uint32 { return &r.DstAS }),
	strField("src_as_name", func(r *Record) *string { return &r.SrcASName }),
	strField("dst_as_name", func(r *Record) *string { return &r.DstASName }),
}

var fieldIndex = func() map[string]int {
	m := make(map[string]int, len(Fields))
	for i, f := range Fields {
		m[f.Name] = i
	}
	return m
}()

// FieldByName returns the field called name.
func FieldByName(name string) (Field, bool) {
	i, ok := fieldIndex[name]
	if !ok {
		return Field{}, false
	}
	return Fields[i], true
}

// Get returns the field's value: string, netip.Addr, uint64 or int64.
func (f Field) Get(r *Record) any {
	switch f.Kind {
	case KindUint:
		return f.uint(r)
	case KindTime:
		return f.time(r)
	case KindAddr:
		return f.addr(r)
	}
	return f.str(r)
}

// Uint returns the value of a KindUint field.
func (f Field) Uint(r *Record) uint64 { return f.uint(r) }

// Time returns the value of a KindTime field (Unix ms).
func (f Field) Time(r *Record) int64 { return f.time(r) }

// Str returns the value of a KindString field.
func (f Field) Str(r *Record) string { return f.str(r) }

// Addr returns the value of a KindAddr field.
func (f Field) Addr(r *Record) netip.Addr { return f.addr(r) }

// Set stores v (as Get returns it, or a string) into the field.
func (f Field) Set(r *Record, v any) error { return f.set(r, v) }

// Text returns the field's value as text, as CSV and tables print it.
func (f Field) Text(r *Record) string {
	switch f.Kind {
	case KindUint:
		return strconv.FormatUint(f.uint(r), 10)
	case KindTime:
		return strconv.FormatInt(f.time(r), 10)
	case KindAddr:
		if a := f.addr(r); a.IsValid() {
			return a.String()
		}
		return ""
	}
	return f.str(r)
}

// MarshalJSON writes the record as one flat object keyed by field name.
func (r *Record) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 512)
	b = append(b, '{')
	for i, f := range Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.Name)
		b = append(b, ':')
		switch f.Kind {
		case KindUint:
			b = strconv.AppendUint(b, f.uint(r), 10)
		case KindTime:
			b = strconv.AppendInt(b, f.time(r), 10)
		case KindAddr:
			if a := f.addr(r); a.IsValid() {
				b = strconv.AppendQuote(b, a.String())
			} else {
				b = append(b, `""`...)
			}
		default:
			b = appendJSONString(b, f.str(r))
		}
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes; unknown keys are errors.
func (r *Record) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*r = Record{}
	for k, raw := range m {
		f, ok := FieldByName(k)
		if !ok {
			return fmt.Errorf("unknown field %q", k)
		}
		var v any
		switch f.Kind {
		case KindUint:
			var u uint64
			if err := json.Unmarshal(raw, &u); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			v = u
		case KindTime:
			var t int64
			if err := json.Unmarshal(raw, &t); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			v = t
		default:
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			v = s
		}
		if err := f.set(r, v); err != nil {
			return err
		}
	}
	return nil
}

type unsigned interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64
}

func uintField[T unsigned](name string, p func(*Record) *T) Field {
	return Field{Name: name, Kind: KindUint,
		uint: func(r *Record) uint64 { return uint64(*p(r)) },
		set: func(r *Record, v any) error {
			u, err := toUint(v)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if uint64(T(u)) != u {
				return fmt.Errorf("%s: %d out of range", name, u)
			}
			*p(r) = T(u)
			return nil
		}}
}

func toUint(v any) (uint64, error) {
	switch x := v.(type) {
	case uint64:
		return x, nil
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("negative value %d", x)
		}
		return uint64(x), nil
	case string:
		return strconv.ParseUint(x, 10, 64)
	}
	return 0, fmt.Errorf("not an unsigned integer: %v", v)
}

func timeField(name string, p func(*Record) *int64) Field {
	return Field{Name: name, Kind: KindTime,
		time: func(r *Record) int64 { return *p(r) },
		set: func(r *Record, v any) error {
			switch x := v.(type) {
			case int64:
				*p(r) = x
			case uint64:
				*p(r) = int64(x)
			case string:
				t, err := strconv.ParseInt(x, 10, 64)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				*p(r) = t
			default:
				return fmt.Errorf("%s: not a time: %v", name, v)
			}
			return nil
		}}
}

func strField(name string, p func(*Record) *string) Field {
	return Field{Name: name, Kind: KindString,
		str: func(r *Record) string { return *p(r) },
		set: func(r *Record, v any) error { *p(r) = fmt.Sprint(v); return nil }}
}

func addrField(name string, p func(*Record) *netip.Addr) Field {
	return Field{Name: name, Kind: KindAddr,
		addr: func(r *Record) netip.Addr { return *p(r) },
		set: func(r *Record, v any) error {
			switch x := v.(type) {
			case netip.Addr:
				*p(r) = x
			case string:
				if x == "" {
					*p(r) = netip.Addr{}
					return nil
				}
				a, err := netip.ParseAddr(x)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				*p(r) = a
			default:
				return fmt.Errorf("%s: not an address: %v", name, v)
			}
			return nil
		}}
}

// appendJSONString quotes s as JSON requires: control characters and
// invalid UTF-8 escaped (strconv.Quote's \x00 is not JSON).
func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\'
	}
	if plain {
		return append(append(append(b, '"'), s...), '"')
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}
