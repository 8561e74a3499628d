// Package awsformat renders flow records as AWS VPC Flow Logs records: a
// custom format of ${field} tokens, text lines with '-' for what is
// absent, and typed Parquet columns (package delivery lays the files out
// as AWS delivers them to S3).
//
// How flowlog's model maps onto AWS's fields:
//   - vpc-id is the gateway (the network a flow log observes) and
//     interface-id its attachment; subnet-id and instance-id are '-'.
//   - pkt-srcaddr and pkt-dstaddr are the addresses: flowlog sees packets
//     as they are, with no NAT in between.
//   - tcp-flags keeps FIN, SYN and RST of the record's flags. flowlog ORs
//     the flags of every packet, so a SYN-ACK cannot be told from a SYN
//     followed by ACKs: ACK (hence SYN-ACK's 18) is not reported.
//   - srcport and dstport are 0 for ICMP, as AWS writes them; NODATA and
//     SKIPDATA records have '-' for every field about packets.
//   - region is the configured region name; az-id, sublocation-*,
//     pkt-*-aws-service, traffic-path (flowlog does not know the route) and
//     the ECS fields are '-'.
package awsformat

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"flowlog/internal/flow"
)

// DefaultFormat is AWS's default format: the version 2 fields.
const DefaultFormat = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"

// DefaultRegion names the region when none is configured.
const DefaultRegion = "local"

// ErrFormat is returned for a format string (or region name) that cannot
// be used.
var ErrFormat = errors.New("aws log format")

// Type is the Parquet type AWS gives a field.
type Type uint8

const (
	String Type = iota
	Int32
	Int64
)

// value is one field of one record: a number, a text, or absent ('-').
type value struct {
	num    int64
	str    string
	absent bool
}

func num[T int64 | uint64 | uint32 | uint16 | uint8](n T) value { return value{num: int64(n)} }

func text(s string) value {
	if s == "" {
		return value{absent: true}
	}
	return value{str: s}
}

var absent = value{absent: true}

// field is one AWS field: its name, the version that introduced it, its
// type, and how a record gives its value.
type field struct {
	name    string
	version int
	typ     Type
	get     func(*flow.Record, *Format) value
}

// traffic names the fields about packets, which a NODATA or SKIPDATA
// record has none of: AWS writes '-' for them.
var traffic = map[string]bool{"srcaddr": true, "dstaddr": true, "srcport": true, "dstport": true,
	"protocol": true, "packets": true, "bytes": true, "action": true, "tcp-flags": true, "type": true,
	"pkt-srcaddr": true, "pkt-dstaddr": true, "flow-direction": true}

// value is the field's value in the record.
func (fd *field) value(r *flow.Record, f *Format) value {
	if (r.LogStatus == flow.StatusNoData || r.LogStatus == flow.StatusSkipData) && traffic[fd.name] {
		return absent
	}
	return fd.get(r, f)
}

func none(*flow.Record, *Format) value { return absent }

func isICMP(r *flow.Record) bool { return r.Protocol == 1 || r.Protocol == 58 }

func port(p func(*flow.Record) uint16) func(*flow.Record, *Format) value {
	return func(r *flow.Record, _ *Format) value {
		if isICMP(r) {
			return num(uint16(0))
		}
		return num(p(r))
	}
}

func addr(r *flow.Record, src bool) value {
	a := r.DstAddr
	if src {
		a = r.SrcAddr
	}
	if !a.IsValid() {
		return absent
	}
	return value{str: a.String()}
}

func or(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// TCP flag bits AWS reports.
const awsTCPFlags = 0x01 | 0x02 | 0x04 // FIN, SYN, RST

func ipType(r *flow.Record) value {
	switch {
	case r.IPVersion == 6 || r.IPVersion == 0 && r.SrcAddr.Is6() && !r.SrcAddr.Is4In6():
		return value{str: "IPv6"}
	case r.IPVersion == 4 || r.SrcAddr.IsValid():
		return value{str: "IPv4"}
	}
	return absent
}

var fields = []field{
	{"version", 2, Int32, func(_ *flow.Record, f *Format) value { return num(int64(f.version)) }},
	{"account-id", 2, String, func(r *flow.Record, _ *Format) value { return text(r.AccountID) }},
	{"interface-id", 2, String, func(r *flow.Record, _ *Format) value { return text(r.InterfaceID) }},
	{"srcaddr", 2, String, func(r *flow.Record, _ *Format) value { return addr(r, true) }},
	{"dstaddr", 2, String, func(r *flow.Record, _ *Format) value { return addr(r, false) }},
	{"srcport", 2, Int32, port(func(r *flow.Record) uint16 { return r.SrcPort })},
	{"dstport", 2, Int32, port(func(r *flow.Record) uint16 { return r.DstPort })},
	{"protocol", 2, Int32, func(r *flow.Record, _ *Format) value { return num(r.Protocol) }},
	{"packets", 2, Int64, func(r *flow.Record, _ *Format) value { return num(r.Packets) }},
	{"bytes", 2, Int64, func(r *flow.Record, _ *Format) value { return num(r.Bytes) }},
	{"start", 2, Int64, func(r *flow.Record, _ *Format) value { return num(floorDiv(r.Start, 1000)) }},
	{"end", 2, Int64, func(r *flow.Record, _ *Format) value { return num(floorDiv(r.End, 1000)) }},
	{"action", 2, String, func(r *flow.Record, _ *Format) value { return text(or(r.Action, flow.ActionAccept)) }},
	{"log-status", 2, String, func(r *flow.Record, _ *Format) value { return text(or(r.LogStatus, flow.StatusOK)) }},
	{"vpc-id", 3, String, func(r *flow.Record, _ *Format) value { return text(r.GatewayID) }},
	{"subnet-id", 3, String, none},
	{"instance-id", 3, String, none},
	{"tcp-flags", 3, Int32, func(r *flow.Record, _ *Format) value { return num(r.TCPFlags & awsTCPFlags) }},
	{"type", 3, String, func(r *flow.Record, _ *Format) value { return ipType(r) }},
	{"pkt-srcaddr", 3, String, func(r *flow.Record, _ *Format) value { return addr(r, true) }},
	{"pkt-dstaddr", 3, String, func(r *flow.Record, _ *Format) value { return addr(r, false) }},
	{"region", 4, String, func(_ *flow.Record, f *Format) value { return text(f.region) }},
	{"az-id", 4, String, none},
	{"sublocation-type", 4, String, none},
	{"sublocation-id", 4, String, none},
	{"pkt-src-aws-service", 5, String, none},
	{"pkt-dst-aws-service", 5, String, none},
	{"flow-direction", 5, String, func(r *flow.Record, _ *Format) value { return text(r.FlowDirection.String()) }},
	{"traffic-path", 5, Int32, none},
	{"ecs-cluster-arn", 7, String, none},
	{"ecs-cluster-name", 7, String, none},
	{"ecs-container-instance-arn", 7, String, none},
	{"ecs-container-instance-id", 7, String, none},
	{"ecs-container-id", 7, String, none},
	{"ecs-second-container-id", 7, String, none},
	{"ecs-service-name", 7, String, none},
	{"ecs-task-definition-arn", 7, String, none},
	{"ecs-task-arn", 7, String, none},
	{"ecs-task-id", 7, String, none},
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

var byName = func() map[string]*field {
	m := make(map[string]*field, len(fields))
	for i := range fields {
		m[fields[i].name] = &fields[i]
	}
	return m
}()

// FieldNames lists every field a format may name, in AWS's order.
func FieldNames() []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return names
}

// Format is a parsed custom format, for one region.
type Format struct {
	fields  []*field
	version int
	region  string
}

var (
	token      = regexp.MustCompile(`^\$\{([a-z0-9-]+)\}$`)
	regionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// Parse reads a custom format: ${field} tokens separated by spaces, at
// least one, each field once. An empty string is the default format; an
// empty region is DefaultRegion.
func Parse(format, region string) (*Format, error) {
	if strings.TrimSpace(format) == "" {
		format = DefaultFormat
	}
	f := &Format{region: or(region, DefaultRegion)}
	if !regionName.MatchString(f.region) {
		// It names a directory of the delivery layout.
		return nil, fmt.Errorf("%w: region %q is not a name of letters, digits, '-', '_' and '.'", ErrFormat, region)
	}
	seen := map[string]bool{}
	for _, tok := range strings.Fields(format) {
		m := token.FindStringSubmatch(tok)
		if m == nil {
			return nil, fmt.Errorf("%w: %q is not a ${field-name} token", ErrFormat, tok)
		}
		fd := byName[m[1]]
		if fd == nil {
			return nil, fmt.Errorf("%w: unknown field %q in %q", ErrFormat, m[1], tok)
		}
		if seen[fd.name] {
			return nil, fmt.Errorf("%w: field %q appears twice", ErrFormat, fd.name)
		}
		seen[fd.name] = true
		f.fields = append(f.fields, fd)
		f.version = max(f.version, fd.version)
	}
	return f, nil
}

// String is the format in AWS's syntax.
func (f *Format) String() string {
	toks := make([]string, len(f.fields))
	for i, fd := range f.fields {
		toks[i] = "${" + fd.name + "}"
	}
	return strings.Join(toks, " ")
}

// Version is the format's version: the highest among its fields.
func (f *Format) Version() int { return f.version }

// Region is the region name the records carry.
func (f *Format) Region() string { return f.region }

// Header is the first line of a text file: the field names.
func (f *Format) Header() string {
	names := make([]string, len(f.fields))
	for i, fd := range f.fields {
		names[i] = fd.name
	}
	return strings.Join(names, " ")
}

// AppendText appends the record as one text line, without the newline.
func (f *Format) AppendText(b []byte, r *flow.Record) []byte {
	for i, fd := range f.fields {
		if i > 0 {
			b = append(b, ' ')
		}
		v := fd.value(r, f)
		switch {
		case v.absent:
			b = append(b, '-')
		case fd.typ == String:
			b = appendToken(b, v.str)
		default:
			b = strconv.AppendInt(b, v.num, 10)
		}
	}
	return b
}

// appendToken appends s as one space-delimited token: blanks and control
// characters (never in AWS's values, possible in a collected record's)
// become '_'.
func appendToken(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// Column is a Parquet column: AWS names it as the field with '_' for '-'.
type Column struct {
	Name string
	Type Type
}

// Columns are the Parquet columns of the format.
func (f *Format) Columns() []Column {
	cols := make([]Column, len(f.fields))
	for i, fd := range f.fields {
		cols[i] = Column{Name: strings.ReplaceAll(fd.name, "-", "_"), Type: fd.typ}
	}
	return cols
}

// AppendRow appends the record's Parquet values to row: int32, int64,
// []byte for text, nil where AWS writes '-'.
func (f *Format) AppendRow(row []driver.Value, r *flow.Record) []driver.Value {
	for _, fd := range f.fields {
		v := fd.value(r, f)
		switch {
		case v.absent:
			row = append(row, nil)
		case fd.typ == Int32:
			row = append(row, int32(v.num))
		case fd.typ == Int64:
			row = append(row, v.num)
		default:
			row = append(row, []byte(v.str))
		}
	}
	return row
}
