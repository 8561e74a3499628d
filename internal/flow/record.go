// Package flow defines the one record type every part of flowlog speaks:
// meters and collectors produce Records, sinks (log store, NetFlow exporter)
// consume them. Field names follow AWS VPC Flow Logs with '_' for '-'.
package flow

import (
	"math"
	"math/bits"
	"net/netip"
)

// EndReason says why a flow record was emitted. The values are the IPFIX
// flowEndReason (IE 136) codes, so they travel unchanged on the wire.
type EndReason uint8

const (
	EndUnknown         EndReason = 0
	EndIdle            EndReason = 1 // inactive timeout
	EndActive          EndReason = 2 // active timeout: the flow goes on
	EndOfFlow          EndReason = 3 // TCP FIN or RST
	EndForced          EndReason = 4 // meter stopped or flushed
	EndLackOfResources EndReason = 5 // cache full, flow evicted
)

var endReasonNames = [...]string{"", "idle", "active", "end_of_flow", "forced", "lack_of_resources"}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return "unknown"
}

// ParseEndReason is the inverse of EndReason.String.
func ParseEndReason(s string) (EndReason, bool) {
	for i, n := range endReasonNames {
		if n == s && i > 0 {
			return EndReason(i), true
		}
	}
	return EndUnknown, s == ""
}

// Direction is the flow direction relative to the observed interface.
type Direction uint8

const (
	DirUnknown Direction = 0
	Ingress    Direction = 1
	Egress     Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return ""
}

// ParseDirection is the inverse of Direction.String.
func ParseDirection(s string) (Direction, bool) {
	switch s {
	case "ingress":
		return Ingress, true
	case "egress":
		return Egress, true
	case "":
		return DirUnknown, true
	}
	return DirUnknown, false
}

// Log status values, as AWS defines them.
const (
	StatusOK       = "OK"
	StatusNoData   = "NODATA"
	StatusSkipData = "SKIPDATA"
)

// Actions, as AWS defines them. A meter sees only what passed, so ACCEPT.
const (
	ActionAccept = "ACCEPT"
	ActionReject = "REJECT"
)

// RecordVersion is the version of the record layout flowlog writes.
const RecordVersion = 6

// Record is one unidirectional flow (or a delta of one, after an active
// timeout). Counters are 64-bit; times are Unix milliseconds. Packets and
// Bytes are estimates of the traffic: what was counted times
// SamplingInterval, scaled once where the record enters flowlog (see Scale).
type Record struct {
	Version     uint8
	AccountID   string
	FlowLogID   string
	GatewayID   string
	InterfaceID string // attachment id

	SrcAddr  netip.Addr
	DstAddr  netip.Addr
	SrcPort  uint16
	DstPort  uint16
	Protocol uint8

	Packets uint64
	Bytes   uint64 // IP bytes: IP header + payload
	Start   int64  // first packet, Unix ms
	End     int64  // last packet, Unix ms

	Action        string
	LogStatus     string
	TCPFlags      uint16 // OR of the flags of all packets
	FlowDirection Direction

	IPVersion uint8
	VLANID    uint16
	TOS       uint8
	ICMPType  uint8
	ICMPCode  uint8
	EndReason EndReason
	// SamplingInterval is the effective 1:N packet sampling the counters
	// were scaled by: the router's announced rate, the gateway's override
	// or the flow log's meter sampling; 1 when unsampled (0 in records
	// not yet scaled, read as 1).
	SamplingInterval uint32

	// Observation point: the exporter attributes collected records to
	// gateways and attachments (not stored); the ifIndexes are stored.
	ExporterAddr  netip.Addr
	InputIfIndex  uint32
	OutputIfIndex uint32

	// Filled at ingest from the exporter's interfaces (SNMP): names and
	// speeds in bits/s; empty and 0 when unknown.
	InIfName   string
	OutIfName  string
	InIfSpeed  uint64
	OutIfSpeed uint64

	// Filled at ingest from GeoIP/ASN databases: ISO 3166 alpha-2 country
	// codes, AS numbers and names; empty and 0 for private or unknown
	// addresses.
	SrcCountry string
	DstCountry string
	SrcAS      uint32
	DstAS      uint32
	SrcASName  string
	DstASName  string
}

// Key is the 5-tuple that identifies a unidirectional flow (for ICMP, the
// destination port holds type<<8|code).
type Key struct {
	SrcAddr  netip.Addr
	DstAddr  netip.Addr
	SrcPort  uint16
	DstPort  uint16
	Protocol uint8
}

// Key returns the record's 5-tuple.
func (r *Record) Key() Key {
	return Key{r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Protocol}
}

// NormalizeICMP gives an ICMP record both forms of its type and code: the
// ICMPType/ICMPCode fields, and the destination port type<<8|code that
// NetFlow v5 and most collectors use. Exporters fill one or the other.
func (r *Record) NormalizeICMP() {
	if r.Protocol != 1 && r.Protocol != 58 {
		return
	}
	switch {
	case r.DstPort == 0 && (r.ICMPType != 0 || r.ICMPCode != 0):
		r.DstPort = uint16(r.ICMPType)<<8 | uint16(r.ICMPCode)
	case r.DstPort != 0 && r.ICMPType == 0 && r.ICMPCode == 0:
		r.ICMPType, r.ICMPCode = uint8(r.DstPort>>8), uint8(r.DstPort)
	}
}

// Scale turns counted values into estimates: it multiplies Packets and
// Bytes by n (0 is read as 1) and records n as the SamplingInterval. It is
// applied once, where a record enters flowlog; counters saturate rather
// than wrap.
func (r *Record) Scale(n uint32) {
	n = max(n, 1)
	r.SamplingInterval = n
	r.Packets, r.Bytes = mulSat(r.Packets, n), mulSat(r.Bytes, n)
}

// Counted returns the packets and bytes that were counted: the estimates
// divided by the SamplingInterval (exact for a record Scale made).
func (r *Record) Counted() (packets, bytes uint64) {
	n := uint64(max(r.SamplingInterval, 1))
	return r.Packets / n, r.Bytes / n
}

func mulSat(v uint64, n uint32) uint64 {
	hi, lo := bits.Mul64(v, uint64(n))
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}
