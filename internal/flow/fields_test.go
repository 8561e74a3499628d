package flow

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func TestRecordJSONRoundTrip(t *testing.T) {
	in := Record{
		Version: RecordVersion, AccountID: "acc-1", FlowLogID: "fl-1", GatewayID: "gw-1", InterfaceID: "att-1",
		SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("2001:db8::1"),
		SrcPort: 443, DstPort: 51000, Protocol: 6, Packets: 1 << 40, Bytes: 1<<63 + 5,
		Start: 1700000000123, End: 1700000001456, Action: ActionAccept, LogStatus: StatusOK,
		TCPFlags: 0x1b, FlowDirection: Egress, IPVersion: 4, VLANID: 100, TOS: 0xb8,
		ICMPType: 3, ICMPCode: 1, EndReason: EndLackOfResources, SamplingInterval: 100,
		InputIfIndex: 7, OutputIfIndex: 1 << 31, InIfName: "xe-0/0/1", OutIfName: "ae0", InIfSpeed: 100e9, OutIfSpeed: 1e9,
		SrcCountry: "DE", DstCountry: "US", SrcAS: 3320, DstAS: 4200000000, SrcASName: "Deutsche Telekom AG", DstASName: "é",
	}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out Record
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if out != in {
		t.Fatalf("round trip changed the record:\n in=%+v\nout=%+v", in, out)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if len(m) != len(Fields) || m["end_reason"] != "lack_of_resources" || m["flow_direction"] != "egress" {
		t.Fatalf("unexpected JSON: %s", b)
	}
}

func TestRecordJSONRejects(t *testing.T) {
	for _, in := range []string{
		`{"nope":1}`, `{"srcport":70000}`, `{"srcaddr":"1.2.3"}`,
		`{"end_reason":"tired"}`, `{"flow_direction":"up"}`, `{"packets":-1}`,
	} {
		var r Record
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

func TestJSONControlCharacters(t *testing.T) {
	r := Record{Action: "nul\x00 tab\t quote\" back\\ é", FlowLogID: "bad\xffutf8"}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if back.Action != r.Action || back.FlowLogID != "bad\ufffdutf8" {
		t.Errorf("round trip: %q %q", back.Action, back.FlowLogID)
	}
}

// TestTypedGetters checks that each field's typed getter returns what Get
// returns, so bulk writers that use them store the same values.
func TestTypedGetters(t *testing.T) {
	r := Record{
		Version: RecordVersion, AccountID: "acc-1", FlowLogID: "fl-1", GatewayID: "gw-1", InterfaceID: "att-1",
		SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("2001:db8::1"),
		SrcPort: 443, DstPort: 51000, Protocol: 6, Packets: 1 << 40, Bytes: 1<<63 + 5,
		Start: 1700000000123, End: 1700000001456, Action: ActionReject, LogStatus: StatusOK,
		TCPFlags: 0x1b, FlowDirection: Egress, IPVersion: 4, VLANID: 100, TOS: 0xb8,
		ICMPType: 3, ICMPCode: 1, EndReason: EndLackOfResources, SamplingInterval: 100,
	}
	for _, f := range Fields {
		var typed any
		switch f.Kind {
		case KindUint:
			typed = f.Uint(&r)
		case KindTime:
			typed = f.Time(&r)
		case KindString:
			typed = f.Str(&r)
		case KindAddr:
			typed = f.Addr(&r)
		}
		if typed != f.Get(&r) {
			t.Errorf("%s: typed getter %v, Get %v", f.Name, typed, f.Get(&r))
		}
	}
}
