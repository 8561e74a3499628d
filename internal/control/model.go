// Package control is the control plane's domain: accounts and their access
// keys, gateways and attachments, log groups and streams, and flow logs, with
// their validation rules, states, quotas and idempotent creation. Every API
// dialect (native /v1, Alibaba, Huawei) is a thin translation over Service.
package control

import (
	"time"

	"flowlog/internal/desired"
)

// Gateway kinds.
const (
	KindCapture  = desired.KindCapture
	KindPcap     = desired.KindPcap
	KindExporter = desired.KindExporter
)

// Output types, as the seeds name them.
const (
	OutputSLS     = desired.OutputSLS
	OutputNetflow = desired.OutputNetflow
	OutputAll     = desired.OutputAll
	OutputFile    = desired.OutputFile
)

// NetFlow versions, as the seeds name them (V10 is IPFIX).
const (
	NetflowV5  = "V5"
	NetflowV9  = "V9"
	NetflowV10 = "V10"
)

// Flow-log states, as Huawei defines them.
const (
	StatePending   = "pending"
	StateAvailable = "available"
	StateModifying = "modifying"
	StateDeleting  = "deleting"
	StateDeleted   = "deleted"
	StateFailed    = "failed"
)

// Defaults and ranges from the seeds' API pages.
const (
	DefaultActiveAging   = 300
	DefaultInactiveAging = 15
	DefaultAggregation   = 600
	DefaultNetflowPort   = 9995
	DefaultNetflowVer    = NetflowV9
	DefaultRetentionDays = 7
	DefaultQuota         = 20
)

// Account is a tenant. It owns everything else.
type Account struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

// AccessKey authenticates API calls of one account.
type AccessKey struct {
	ID        string    `json:"access_key_id"`
	Secret    string    `json:"-"`
	AccountID string    `json:"account_id"`
	Status    string    `json:"status"` // KeyEnabled or KeyDisabled
	CreatedAt time.Time `json:"created_at"`
	// LastUsedAt is the last request the key signed correctly; nil if none.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Access-key statuses: a disabled key is refused until enabled again.
const (
	KeyEnabled  = "enabled"
	KeyDisabled = "disabled"
)

// Gateway is an observation point.
type Gateway struct {
	ID          string `json:"id"`
	AccountID   string `json:"account_id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Kind        string `json:"kind"`
	PcapPath    string `json:"pcap_path,omitempty"`     // pcap: the file replayed
	PcapPace    string `json:"pcap_pace,omitempty"`     // pcap: "realtime" or "fast"
	Exporter    string `json:"exporter_addr,omitempty"` // exporter: its source address
	Agent       string `json:"agent"`                   // the agent running it; "" for the server
	// SNMPConfigured and SNMP say whether and how the exporter is polled
	// for its interfaces, without the secrets, which only snmp holds:
	// unexported, it never reaches a response or a log.
	SNMPConfigured bool      `json:"snmp_configured"`
	SNMP           *SNMPView `json:"snmp,omitempty"`
	snmp           *desired.SNMP
	// exporter: the 1:N sampling of records whose router announces no
	// rate (an announced rate wins); 0 for none: they are taken as unsampled.
	SamplingInterval int       `json:"sampling_interval,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// SNMPView is what a gateway shows of its SNMP settings: all but secrets.
type SNMPView struct {
	Version      string `json:"version"`
	Port         int    `json:"port"`
	User         string `json:"user,omitempty"`
	AuthProtocol string `json:"auth_protocol,omitempty"`
	PrivProtocol string `json:"priv_protocol,omitempty"`
}

// setSNMP sets a gateway's SNMP settings and their view.
func (g *Gateway) setSNMP(c *desired.SNMP) {
	g.snmp, g.SNMPConfigured, g.SNMP = c, c != nil, nil
	if c != nil {
		g.SNMP = &SNMPView{Version: c.Version, Port: c.Port, User: c.User, AuthProtocol: c.AuthProtocol,
			PrivProtocol: c.PrivProtocol}
	}
}

// Attachment is one interface (or ifIndex, for exporters) of a gateway.
type Attachment struct {
	ID        string    `json:"id"`
	GatewayID string    `json:"gateway_id"`
	AccountID string    `json:"account_id"`
	Name      string    `json:"name"`
	Interface string    `json:"interface,omitempty"`
	IfIndex   uint32    `json:"if_index,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// LogGroup is a namespace of log streams in the log store.
type LogGroup struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// LogStream is where a flow log's records are stored.
type LogStream struct {
	ID            string    `json:"id"`
	LogGroupID    string    `json:"log_group_id"`
	AccountID     string    `json:"account_id"`
	Name          string    `json:"name"`
	RetentionDays int       `json:"retention_days"`
	CreatedAt     time.Time `json:"created_at"`
}

// Target is what a flow log observes: a whole gateway, or one attachment.
type Target struct {
	GatewayID    string `json:"gateway_id"`
	AttachmentID string `json:"attachment_id,omitempty"`
}

// FlowLog is the superset of the Alibaba SAG and Huawei ER flow logs.
type FlowLog struct {
	ID              string `json:"id"`
	AccountID       string `json:"account_id"`
	Name            string `json:"name"`
	Description     string `json:"description"`
	Region          string `json:"region"`
	ResourceGroupID string `json:"resource_group_id"`

	ActiveAging         int `json:"active_aging"`
	InactiveAging       int `json:"inactive_aging"`
	AggregationInterval int `json:"aggregation_interval"`
	Sampling            int `json:"sampling"` // 1:N; 1 = every packet

	OutputType        string `json:"output_type"`
	LogGroupID        string `json:"log_group_id,omitempty"`
	LogStreamID       string `json:"log_stream_id,omitempty"`
	SLSRegionID       string `json:"sls_region_id,omitempty"`
	NetflowServerIP   string `json:"netflow_server_ip,omitempty"`
	NetflowServerPort int    `json:"netflow_server_port,omitempty"`
	NetflowVersion    string `json:"netflow_version,omitempty"`

	Targets     []Target  `json:"targets"`
	Enabled     bool      `json:"enabled"`
	State       string    `json:"state"`
	StateReason string    `json:"state_reason,omitempty"`
	ClientToken string    `json:"-"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`

	// File is where output type file delivers; nil for other types.
	File *desired.FileOutput `json:"file,omitempty"`
}

// Outputs says which output kinds the flow log uses.
func (f *FlowLog) Outputs() (sls, netflow bool) { return desired.Outputs(f.OutputType) }
