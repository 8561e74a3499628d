// Package desired is the contract between the control plane and data
// planes. The control plane owns a versioned desired state: every change to
// what should run (flow logs, gateways and their attachments, log streams,
// grants) makes a new version. A data plane watches it, applies each State
// it is given whole, and reports a Status for the version it applied. The
// types are plain data, so that a remote data plane can receive them as JSON.
package desired

import (
	"time"

	"flowlog/internal/netflow"
	"flowlog/internal/store"
)

// Gateway kinds.
const (
	KindCapture  = "capture"  // this host's interfaces
	KindPcap     = "pcap"     // replays a capture file
	KindExporter = "exporter" // a third-party NetFlow/IPFIX/sFlow exporter
)

// Output types of flow logs.
const (
	OutputSLS     = "sls"
	OutputNetflow = "netflow"
	OutputAll     = "all"
	OutputFile    = "file" // AWS VPC Flow Logs files in a directory
)

// File formats of output type file, as AWS names them.
const (
	FilePlainText = "plain-text"
	FileParquet   = "parquet"
)

// State is everything data planes should run at one version, read in one
// transaction. It holds only what running depends on: a name or a
// description changes no field here.
type State struct {
	Version    uint64      `json:"version"`
	FlowLogs   []FlowLog   `json:"flow_logs"`
	Gateways   []Gateway   `json:"gateways"`
	LogStreams []LogStream `json:"log_streams"`
	// Templates are what the collectors of the data planes learned of
	// exporters, for the others receiving the same exporter.
	Templates []ExporterTemplates `json:"templates,omitempty"`
}

// ExporterTemplates are the NetFlow v9 / IPFIX templates collectors learned
// of one exporter of an account (the latest announcement of each).
type ExporterTemplates struct {
	AccountID string                  `json:"account_id,omitempty"` // set by the control plane
	Exporter  string                  `json:"exporter_addr"`
	Templates []netflow.SavedTemplate `json:"templates"`
}

// FlowLog is a flow log to run (or, disabled, to keep stopped). Flow logs
// being deleted are not part of the state.
type FlowLog struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Enabled   bool   `json:"enabled"`
	// Revision is the version of the flow log's last change: a report
	// settles its state only from a version that includes that change.
	Revision uint64 `json:"revision"`
	// Refused says why the control plane does not let it run (a grant
	// it relies on was withdrawn); "" when it may.
	Refused string `json:"refused,omitempty"`

	ActiveAging         int `json:"active_aging"`
	InactiveAging       int `json:"inactive_aging"`
	AggregationInterval int `json:"aggregation_interval"`
	Sampling            int `json:"sampling"`

	OutputType        string   `json:"output_type"`
	LogStreamID       string   `json:"log_stream_id,omitempty"`
	NetflowServerIP   string   `json:"netflow_server_ip,omitempty"`
	NetflowServerPort int      `json:"netflow_server_port,omitempty"`
	NetflowVersion    string   `json:"netflow_version,omitempty"`
	Targets           []Target `json:"targets"`

	// File is where output type file delivers.
	File *FileOutput `json:"file,omitempty"`
}

// FileOutput is how a flow log of output type file delivers its records:
// as AWS VPC Flow Logs files in the S3 layout under OutputDir, which is
// relative to the data plane's file directory for the flow log's account.
type FileOutput struct {
	OutputDir        string `json:"output_dir"`
	LogFormat        string `json:"log_format"`  // AWS's ${field} syntax
	FileFormat       string `json:"file_format"` // FilePlainText or FileParquet
	PerHourPartition bool   `json:"per_hour_partition"`
	// Region is the flow log's region, for the records and the layout;
	// set in the desired state only.
	Region string `json:"region,omitempty"`
}

// Outputs says which output kinds the flow log uses.
func (f *FlowLog) Outputs() (sls, netflow bool) { return Outputs(f.OutputType) }

// Outputs says which output kinds an output type names.
func Outputs(outputType string) (sls, netflow bool) {
	return outputType == OutputSLS || outputType == OutputAll,
		outputType == OutputNetflow || outputType == OutputAll
}

// Target is what a flow log observes: a whole gateway, or one attachment.
type Target struct {
	GatewayID    string `json:"gateway_id"`
	AttachmentID string `json:"attachment_id,omitempty"`
}

// Gateway is an observation point, with its attachments.
type Gateway struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	// Plane is the data plane that runs the gateway; "" for the one
	// inside the server.
	Plane    string `json:"plane,omitempty"`
	Kind     string `json:"kind"`
	PcapPath string `json:"pcap_path,omitempty"`
	PcapPace string `json:"pcap_pace,omitempty"`
	// PcapFenced: the file must lie inside the data plane's pcap
	// directory (the account is not the operator's).
	PcapFenced  bool         `json:"pcap_fenced,omitempty"`
	Exporter    string       `json:"exporter_addr,omitempty"`
	Attachments []Attachment `json:"attachments"`
	// SNMP, for exporters, is how to ask the router for its interfaces'
	// names and speeds; nil: not asked.
	SNMP *SNMP `json:"snmp,omitempty"`
	// SamplingInterval (exporter): 1:N for records whose router
	// announces no rate; 0 for none.
	SamplingInterval int `json:"sampling_interval,omitempty"`
}

// SNMP is how a data plane polls an exporter (at its exporter address) for
// its interfaces. It carries secrets: it reaches data planes only.
type SNMP struct {
	Version      string `json:"version"`        // "2c" or "3"
	Port         int    `json:"port,omitempty"` // default 161
	Community    string `json:"community,omitempty"`
	User         string `json:"user,omitempty"`
	AuthProtocol string `json:"auth_protocol,omitempty"`
	AuthPassword string `json:"auth_password,omitempty"`
	PrivProtocol string `json:"priv_protocol,omitempty"`
	PrivPassword string `json:"priv_password,omitempty"`
}

// Attachment is one interface (or ifIndex, for exporters) of a gateway.
type Attachment struct {
	ID        string `json:"id"`
	Interface string `json:"interface,omitempty"`
	IfIndex   uint32 `json:"if_index,omitempty"`
}

// LogStream is where flow logs' records are stored.
type LogStream struct {
	ID            string    `json:"id"`
	AccountID     string    `json:"account_id"`
	LogGroupID    string    `json:"log_group_id"`
	RetentionDays int       `json:"retention_days"`
	CreatedAt     time.Time `json:"created_at"`
}

// For returns the part of s that the data plane called plane runs: its
// gateways, the flow logs that target them (with only those targets), the
// templates of their exporters, and the log streams of their accounts,
// which outlive the flow logs writing to them (a stopped flow log's records
// may wait in a spool). The server's own
// data plane ("") also settles unbound flow logs, and sees every log stream.
func (s State) For(plane string) State {
	out := State{Version: s.Version, FlowLogs: []FlowLog{}, Gateways: []Gateway{}, LogStreams: []LogStream{}}
	mine, accounts, exporters := map[string]bool{}, map[string]bool{}, map[[2]string]bool{}
	for _, g := range s.Gateways {
		if g.Plane == plane {
			mine[g.ID], accounts[g.AccountID] = true, true
			exporters[[2]string{g.AccountID, g.Exporter}] = g.Kind == KindExporter
			out.Gateways = append(out.Gateways, g)
		}
	}
	for _, t := range s.Templates {
		if exporters[[2]string{t.AccountID, t.Exporter}] {
			out.Templates = append(out.Templates, t)
		}
	}
	for _, f := range s.FlowLogs {
		var ts []Target
		for _, t := range f.Targets {
			if mine[t.GatewayID] {
				ts = append(ts, t)
			}
		}
		if len(ts) == 0 && (len(f.Targets) > 0 || plane != "") {
			continue
		}
		f.Targets = append([]Target{}, ts...)
		out.FlowLogs = append(out.FlowLogs, f)
	}
	for _, ls := range s.LogStreams {
		if plane == "" || accounts[ls.AccountID] {
			out.LogStreams = append(out.LogStreams, ls)
		}
	}
	return out
}

// Status is what a data plane reports after applying a version.
type Status struct {
	Plane   string `json:"plane"`
	Version uint64 `json:"version"` // of the State applied
	// FlowLogs has the state of the flow logs of that State that the
	// control plane may not know: every one in a data plane's first
	// report, then those changed since its last report's version or whose
	// reason changed. The others keep the state last reported.
	FlowLogs   []FlowLogStatus `json:"flow_logs"`
	Components []Component     `json:"components,omitempty"`
}

// FlowLogStatus is how a flow log runs on a data plane.
type FlowLogStatus struct {
	ID string `json:"id"`
	// Reason is why it cannot run as configured, as users can act on it;
	// "" when it runs (or is disabled, as asked).
	Reason string `json:"reason,omitempty"`
}

// Component is one running part of a data plane (a meter, the collector,
// a log stream's ingest) and what it counted. Counters only grow while the
// data plane runs, also across restarts of what they count.
type Component struct {
	Kind     string            `json:"kind"` // meter, capture, collector, ingest
	Name     string            `json:"name"` // a flow log id, an interface, "collector", a log stream id
	Error    string            `json:"error,omitempty"`
	Counters map[string]uint64 `json:"counters,omitempty"`
}

// StoreStream is the log stream as the log store knows it.
func (ls LogStream) StoreStream() store.Stream {
	return store.Stream{StreamID: store.StreamID{Account: ls.AccountID, Stream: ls.ID}, Group: ls.LogGroupID,
		RetentionDays: ls.RetentionDays, Created: ls.CreatedAt}
}
