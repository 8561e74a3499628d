package desired

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"flowlog/internal/netflow"
)

func sample() State {
	return State{Version: 7,
		FlowLogs: []FlowLog{
			{ID: "fl-a", AccountID: "acc1", Enabled: true, Revision: 5, OutputType: OutputAll, LogStreamID: "ls-1",
				NetflowServerIP: "192.0.2.1", NetflowServerPort: 9995, NetflowVersion: "V9",
				Targets: []Target{{GatewayID: "gw-here"}, {GatewayID: "gw-there", AttachmentID: "att-1"}}},
			{ID: "fl-b", AccountID: "acc2", OutputType: OutputSLS, LogStreamID: "ls-2", Targets: []Target{}},
		},
		Gateways: []Gateway{
			{ID: "gw-here", AccountID: "acc1", Kind: KindCapture, Attachments: []Attachment{{ID: "att-0", Interface: "eth0"}}},
			{ID: "gw-there", AccountID: "acc1", Plane: "agent-1", Kind: KindExporter, Exporter: "192.0.2.9",
				Attachments: []Attachment{{ID: "att-1", IfIndex: 3}}},
		},
		LogStreams: []LogStream{
			{ID: "ls-1", AccountID: "acc1", LogGroupID: "lg-1", RetentionDays: 7, CreatedAt: time.Unix(1700000000, 0).UTC()},
			{ID: "ls-2", AccountID: "acc2", LogGroupID: "lg-2", RetentionDays: 1, CreatedAt: time.Unix(1700000000, 0).UTC()},
		},
		Templates: []ExporterTemplates{
			{AccountID: "acc1", Exporter: "192.0.2.9", Templates: []netflow.SavedTemplate{{Version: netflow.IPFIX, Domain: 1,
				Learned: 1700000000, Template: netflow.Template{ID: 256, Fields: []netflow.Field{{ID: 8, Len: 4}}}}}},
			{AccountID: "acc2", Exporter: "192.0.2.9"}, // another account's, once
		},
	}
}

// TestJSON: a State and a Status cross a process boundary unchanged.
func TestJSON(t *testing.T) {
	roundTrip := func(in, out any) {
		t.Helper()
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
		if got := reflect.ValueOf(out).Elem().Interface(); !reflect.DeepEqual(got, in) {
			t.Fatalf("round trip:\n%+v\n%+v", in, got)
		}
	}
	roundTrip(sample(), &State{})
	roundTrip(Status{Plane: "agent-1", Version: 7, FlowLogs: []FlowLogStatus{{ID: "fl-a", Reason: "interface eth0 does not exist"}},
		Components: []Component{{Kind: "meter", Name: "fl-a", Counters: map[string]uint64{"packets": 3}}}}, &Status{})
}

// TestFor: a data plane is given its gateways, the flow logs over them
// with only their targets there, its exporters' templates, and its
// accounts' log streams; the
// server's own also gets unbound flow logs and every log stream.
func TestFor(t *testing.T) {
	agent := sample().For("agent-1")
	if len(agent.Gateways) != 1 || agent.Gateways[0].ID != "gw-there" || len(agent.FlowLogs) != 1 ||
		!reflect.DeepEqual(agent.FlowLogs[0].Targets, []Target{{GatewayID: "gw-there", AttachmentID: "att-1"}}) ||
		len(agent.LogStreams) != 1 || agent.LogStreams[0].ID != "ls-1" || agent.Version != 7 ||
		len(agent.Templates) != 1 || agent.Templates[0].AccountID != "acc1" {
		t.Fatalf("agent-1's state: %+v", agent)
	}
	server := sample().For("")
	if len(server.Gateways) != 1 || server.Gateways[0].ID != "gw-here" || len(server.FlowLogs) != 2 ||
		!reflect.DeepEqual(server.FlowLogs[0].Targets, []Target{{GatewayID: "gw-here"}}) || len(server.LogStreams) != 2 {
		t.Fatalf("the server's state: %+v", server)
	}
	if len(server.Templates) != 0 {
		t.Fatalf("templates of exporters the server does not receive: %+v", server.Templates)
	}
	if none := sample().For("agent-2"); len(none.Gateways)+len(none.FlowLogs)+len(none.LogStreams)+len(none.Templates) != 0 {
		t.Fatalf("an agent with no gateways: %+v", none)
	}
}
