package awsformat

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"flowlog/internal/flow"
)

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ format, want string }{
		{"${version} ${srcaddr} ${nosuch-field}", `unknown field "nosuch-field" in "${nosuch-field}"`},
		{"${version} $srcaddr", `"$srcaddr" is not a ${field-name} token`},
		{"${version},${srcaddr}", `"${version},${srcaddr}" is not a ${field-name} token`},
		{"${version} ${Srcaddr}", `"${Srcaddr}" is not a ${field-name} token`},
		{"${srcaddr} ${srcaddr}", `field "srcaddr" appears twice`},
		{"${src_addr}", `"${src_addr}" is not a ${field-name} token`},
	} {
		_, err := Parse(c.format, "")
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v; want an error saying %s", c.format, err, c.want)
		}
	}
}

func TestParseRegion(t *testing.T) {
	for _, r := range []string{"../x", "a/b", ".", "eu west"} {
		if _, err := Parse("", r); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "region") {
			t.Errorf("region %q: %v", r, err)
		}
	}
	if f, err := Parse("", "eu-west-1"); err != nil || f.Region() != "eu-west-1" {
		t.Errorf("eu-west-1: %v", err)
	}
}

func record() flow.Record {
	return flow.Record{AccountID: "acct", FlowLogID: "fl-1", GatewayID: "gw-1", InterfaceID: "att-1",
		SrcAddr: netip.MustParseAddr("10.0.0.5"), DstAddr: netip.MustParseAddr("192.0.2.7"), SrcPort: 443, DstPort: 51000,
		Protocol: 6, Packets: 12, Bytes: 3400, Start: 1_700_000_000_999, End: 1_700_000_059_001,
		TCPFlags: 0x1b, FlowDirection: flow.Egress, IPVersion: 4}
}

func TestText(t *testing.T) {
	r := record()
	f, err := Parse("", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(f.AppendText(nil, &r)), "2 acct att-1 10.0.0.5 192.0.2.7 443 51000 6 12 3400 1700000000 1700000059 ACCEPT OK"; got != want {
		t.Errorf("default format:\n%s\nwant\n%s", got, want)
	}
	if f.Header() != "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status" {
		t.Errorf("header %q", f.Header())
	}

	// Every field: version is the highest one named, what flowlog does not
	// know is '-', ICMP has no ports, tcp-flags keeps FIN/SYN/RST only.
	f, err = Parse(strings.Join(wrap(FieldNames()), " "), "eu-lab")
	if err != nil {
		t.Fatal(err)
	}
	r.Action = flow.ActionReject
	want := "7 acct att-1 10.0.0.5 192.0.2.7 443 51000 6 12 3400 1700000000 1700000059 REJECT OK gw-1 - - 3 IPv4 10.0.0.5 192.0.2.7 eu-lab - - - - - egress -" + strings.Repeat(" -", 10)
	if got := string(f.AppendText(nil, &r)); got != want {
		t.Errorf("all fields:\n%s\nwant\n%s", got, want)
	}
	f, _ = Parse("${version} ${srcport} ${dstport} ${type} ${flow-direction} ${region} ${tcp-flags}", "")
	icmp := flow.Record{SrcAddr: netip.MustParseAddr("2001:db8::1"), DstAddr: netip.MustParseAddr("2001:db8::2"), Protocol: 58, DstPort: 0x8000, IPVersion: 6}
	if got := string(f.AppendText(nil, &icmp)); got != "5 0 0 IPv6 - local 0" {
		t.Errorf("ICMPv6: %q", got)
	}
	// An interval without traffic, as AWS writes it.
	f, _ = Parse("", "")
	nodata := flow.Record{AccountID: "acct", InterfaceID: "att-1", Start: 1_700_000_000_000, End: 1_700_000_600_000, LogStatus: flow.StatusNoData}
	if got := string(f.AppendText(nil, &nodata)); got != "2 acct att-1 - - - - - - - 1700000000 1700000600 - NODATA" {
		t.Errorf("NODATA: %q", got)
	}
}

func wrap(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "${" + n + "}"
	}
	return out
}

func TestRow(t *testing.T) {
	r := record()
	f, _ := Parse("${version} ${srcport} ${packets} ${pkt-dstaddr} ${subnet-id} ${traffic-path}", "")
	row := f.AppendRow(nil, &r)
	if row[0] != int32(5) || row[1] != int32(443) || row[2] != int64(12) || string(row[3].([]byte)) != "192.0.2.7" || row[4] != nil || row[5] != nil {
		t.Errorf("row %#v", row)
	}
	cols := f.Columns()
	if cols[3] != (Column{"pkt_dstaddr", String}) || cols[2].Type != Int64 || cols[5] != (Column{"traffic_path", Int32}) {
		t.Errorf("columns %v", cols)
	}
}
