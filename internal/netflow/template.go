package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"flowlog/internal/flow"
)

// Information elements this package reads or writes (IANA IPFIX numbers;
// v9 field types 1–127 share them).
const (
	ieOctetDelta        = 1
	iePacketDelta       = 2
	ieProtocol          = 4
	ieTOS               = 5
	ieTCPFlags          = 6
	ieSrcPort           = 7
	ieSrcIPv4           = 8
	ieIngressIf         = 10
	ieDstPort           = 11
	ieDstIPv4           = 12
	ieEgressIf          = 14
	ieIfName            = 82 // interfaceName, in options data
	ieIfDesc            = 83 // interfaceDescription, in options data
	ieEndSysUp          = 21
	ieStartSysUp        = 22
	ieSrcIPv6           = 27
	ieDstIPv6           = 28
	ieICMPTypeCode4     = 32
	ieSamplingInterval  = 34
	ieSamplingAlgorithm = 35
	ieSamplerID         = 48
	ieSamplerMode       = 49
	ieSamplerRandom     = 50
	ieVLAN              = 58
	ieIPVersion         = 60
	ieDirection         = 61
	ieOctetTotal        = 85
	iePacketTotal       = 86
	ieEndReason         = 136
	ieICMPTypeCode6     = 139
	ieStartSec          = 150
	ieEndSec            = 151
	ieStartMs           = 152
	ieEndMs             = 153
	ieStartUs           = 154
	ieEndUs             = 155
	ieStartNs           = 156
	ieEndNs             = 157
	ieSysInitMs         = 160
	ieICMPType4         = 176
	ieICMPCode4         = 177
	ieICMPType6         = 178
	ieICMPCode6         = 179
	ieDot1qVLAN         = 243
	ieSelectorID        = 302
	ieSamplingPktInt    = 305
	ieSamplingPktSpace  = 306
)

// varLen marks a variable-length field in a template (RFC 7011 §7).
const varLen = 0xFFFF

// Field is one template field: an element id, its length on the wire, and
// its enterprise number (0 for IANA elements).
type Field struct {
	ID  uint16 `json:"id"`
	Len uint16 `json:"len"`
	PEN uint32 `json:"pen,omitempty"`
}

// Template is a (options) template as received or sent. ScopeCount > 0
// marks an options template whose first ScopeCount fields are its scope.
type Template struct {
	ID         uint16  `json:"id"`
	ScopeCount int     `json:"scope,omitempty"`
	Fields     []Field `json:"fields"`
}

// target says where a field's value goes.
type target uint8

const (
	tSkip target = iota
	tBytes
	tPackets
	tBytesTotal
	tPacketsTotal
	tProto
	tTOS
	tTCPFlags
	tSrcPort
	tDstPort
	tSrc4
	tDst4
	tSrc6
	tDst6
	tIn
	tOut
	tStartSysUp
	tEndSysUp
	tStartSec
	tEndSec
	tStartMs
	tEndMs
	tStartNTP // micro- and nanoseconds: NTP timestamp format
	tEndNTP
	tSysInit
	tVLAN
	tICMPTypeCode
	tICMPType
	tICMPCode
	tIPVersion
	tDirection
	tEndReason
	tSampInterval // a 1:N rate
	tSamplerID
	tPktInterval // 305: packets selected
	tPktSpace    // 306: packets skipped
	tIfName      // options data: 82, any length
	tIfDesc      // options data: 83, any length
)

// v9ScopeInterface is the v9 options scope type whose value is an ifIndex
// (RFC 3954 §6.1; v9 scope types are not information elements).
const v9ScopeInterface = 2

// optionsTarget maps the fields that only options records use, which
// targetOf does not take: interface names and descriptions (strings of any
// length) and the v9 interface scope.
func optionsTarget(f Field, version int, scope bool) target {
	switch {
	case f.PEN != 0 || f.Len == 0:
	case scope && version == V9:
		if f.ID == v9ScopeInterface && f.Len <= 8 {
			return tIn
		}
	case f.ID == ieIfName:
		return tIfName
	case f.ID == ieIfDesc:
		return tIfDesc
	}
	return tSkip
}

// targetOf maps an IANA element and length to a target. Elements with a
// length the record cannot hold are skipped.
func targetOf(f Field) target {
	if f.PEN != 0 || f.Len == varLen || f.Len == 0 {
		return tSkip
	}
	t := tSkip
	size := uint16(0) // the only length the element is read at; 0: an unsigned of up to 8 bytes
	switch f.ID {
	case ieOctetDelta:
		t = tBytes
	case iePacketDelta:
		t = tPackets
	case ieOctetTotal:
		t = tBytesTotal
	case iePacketTotal:
		t = tPacketsTotal
	case ieProtocol:
		t = tProto
	case ieTOS:
		t = tTOS
	case ieTCPFlags:
		t = tTCPFlags
	case ieSrcPort:
		t = tSrcPort
	case ieDstPort:
		t = tDstPort
	case ieSrcIPv4:
		t, size = tSrc4, 4
	case ieDstIPv4:
		t, size = tDst4, 4
	case ieSrcIPv6:
		t, size = tSrc6, 16
	case ieDstIPv6:
		t, size = tDst6, 16
	case ieIngressIf:
		t = tIn
	case ieEgressIf:
		t = tOut
	case ieStartSysUp:
		t = tStartSysUp
	case ieEndSysUp:
		t = tEndSysUp
	case ieStartSec:
		t = tStartSec
	case ieEndSec:
		t = tEndSec
	case ieStartMs:
		t = tStartMs
	case ieEndMs:
		t = tEndMs
	case ieStartUs, ieStartNs:
		t, size = tStartNTP, 8
	case ieEndUs, ieEndNs:
		t, size = tEndNTP, 8
	case ieSysInitMs:
		t = tSysInit
	case ieVLAN, ieDot1qVLAN:
		t = tVLAN
	case ieICMPTypeCode4, ieICMPTypeCode6:
		t = tICMPTypeCode
	case ieICMPType4, ieICMPType6:
		t = tICMPType
	case ieICMPCode4, ieICMPCode6:
		t = tICMPCode
	case ieIPVersion:
		t = tIPVersion
	case ieDirection:
		t = tDirection
	case ieEndReason:
		t = tEndReason
	case ieSamplingInterval, ieSamplerRandom:
		t = tSampInterval
	case ieSamplerID, ieSelectorID:
		t = tSamplerID
	case ieSamplingPktInt:
		t = tPktInterval
	case ieSamplingPktSpace:
		t = tPktSpace
	}
	if size != 0 && f.Len != size || size == 0 && f.Len > 8 {
		return tSkip
	}
	return t
}

type op struct {
	t   target
	len uint16 // varLen for variable-length fields
	off uint16 // offset in the record when the template is fixed-length
}

// plan is a template compiled for decoding.
type plan struct {
	tpl      Template
	ops      []op
	fixedLen int // record length, or -1 when a field is variable-length
	minLen   int // smallest possible record length
	options  bool
	learned  int64 // Unix seconds when last (re)announced
}

// maxFields bounds a template's field count, so a hostile template cannot
// make a plan large.
const maxFields = 512

// compile checks a template and builds its decoding plan. In v9 the scope
// fields of an options template have their own numbering (system, interface,
// …) and are not information elements, so they are skipped, but for the
// interface scope, which keys interface names.
func compile(t Template, version int) (*plan, error) {
	if t.ID < 256 {
		return nil, fmt.Errorf("%w: id %d below 256", ErrTemplate, t.ID)
	}
	if len(t.Fields) > maxFields {
		return nil, fmt.Errorf("%w: %d fields", ErrTemplate, len(t.Fields))
	}
	if t.ScopeCount > len(t.Fields) {
		return nil, fmt.Errorf("%w: %d scope fields of %d", ErrTemplate, t.ScopeCount, len(t.Fields))
	}
	p := &plan{tpl: t, ops: make([]op, 0, len(t.Fields)), options: t.ScopeCount > 0}
	for _, f := range t.Fields {
		if f.Len == varLen {
			p.fixedLen = -1
		}
	}
	off := 0
	for i, f := range t.Fields {
		o := op{t: targetOf(f), len: f.Len, off: uint16(off)}
		if scope := i < t.ScopeCount; p.options {
			if ot := optionsTarget(f, version, scope); ot != tSkip || version == V9 && scope {
				o.t = ot
			}
		}
		if f.Len == varLen {
			p.minLen++
		} else {
			p.minLen += int(f.Len)
		}
		if off += int(f.Len); p.fixedLen >= 0 && off > 0xFFFF {
			return nil, fmt.Errorf("%w: record longer than 65535", ErrTemplate)
		}
		// Skipped fields need no op when the record is fixed-length; keep
		// them otherwise, to advance over them.
		if o.t == tSkip && p.fixedLen >= 0 {
			continue
		}
		p.ops = append(p.ops, o)
	}
	if p.fixedLen >= 0 {
		p.fixedLen = off
	}
	if p.minLen == 0 {
		// A record of no bytes would loop forever over a data set.
		return nil, fmt.Errorf("%w: zero-length records", ErrTemplate)
	}
	return p, nil
}

// raw holds what a record carries besides the flow.Record fields: times in
// their wire forms and sampling information.
type raw struct {
	startUp, endUp   uint32
	startMs, endMs   int64
	sysInit          int64
	hasUp            uint8 // bit 0 start, bit 1 end
	rate             uint64
	samplerID        uint64
	pktInt, pktSpace uint64
	hasSampler       bool
	ifName, ifDesc   []byte // options data only; they point into the packet
}

// record decodes one record into r and x and returns its length, or -1 if
// the record does not fit in b. The field switch is inline: this loop is
// the collector's hot path.
func (p *plan) record(b []byte, r *flow.Record, x *raw) int {
	fixed := p.fixedLen >= 0
	if fixed && len(b) < p.fixedLen {
		return -1
	}
	off := 0
	for i := range p.ops {
		o := &p.ops[i]
		var v []byte
		if fixed {
			v = b[o.off : int(o.off)+int(o.len)]
		} else {
			n := int(o.len)
			if o.len == varLen {
				if off >= len(b) {
					return -1
				}
				n = int(b[off])
				off++
				if n == 255 {
					if off+2 > len(b) {
						return -1
					}
					n = int(binary.BigEndian.Uint16(b[off:]))
					off += 2
				}
			}
			if off+n > len(b) {
				return -1
			}
			v = b[off : off+n]
			off += n
		}
		switch o.t {
		case tBytes:
			r.Bytes = beUint(v)
		case tPackets:
			r.Packets = beUint(v)
		case tBytesTotal:
			if r.Bytes == 0 {
				r.Bytes = beUint(v)
			}
		case tPacketsTotal:
			if r.Packets == 0 {
				r.Packets = beUint(v)
			}
		case tProto:
			r.Protocol = uint8(beUint(v))
		case tTOS:
			r.TOS = uint8(beUint(v))
		case tTCPFlags:
			r.TCPFlags = uint16(beUint(v))
		case tSrcPort:
			r.SrcPort = uint16(beUint(v))
		case tDstPort:
			r.DstPort = uint16(beUint(v))
		case tSrc4:
			setAddr(&r.SrcAddr, netip.AddrFrom4([4]byte(v)))
		case tDst4:
			setAddr(&r.DstAddr, netip.AddrFrom4([4]byte(v)))
		case tSrc6:
			setAddr(&r.SrcAddr, netip.AddrFrom16([16]byte(v)))
		case tDst6:
			setAddr(&r.DstAddr, netip.AddrFrom16([16]byte(v)))
		case tIn:
			r.InputIfIndex = uint32(beUint(v))
		case tOut:
			r.OutputIfIndex = uint32(beUint(v))
		case tStartSysUp:
			x.startUp = uint32(beUint(v))
			x.hasUp |= 1
		case tEndSysUp:
			x.endUp = uint32(beUint(v))
			x.hasUp |= 2
		case tStartSec:
			x.startMs = int64(beUint(v)) * 1000
		case tEndSec:
			x.endMs = int64(beUint(v)) * 1000
		case tStartMs:
			x.startMs = int64(beUint(v))
		case tEndMs:
			x.endMs = int64(beUint(v))
		case tStartNTP:
			x.startMs = ntpToMs(binary.BigEndian.Uint64(v))
		case tEndNTP:
			x.endMs = ntpToMs(binary.BigEndian.Uint64(v))
		case tSysInit:
			x.sysInit = int64(beUint(v))
		case tVLAN:
			if r.VLANID == 0 {
				r.VLANID = uint16(beUint(v)) & 0x0FFF
			}
		case tICMPTypeCode:
			tc := uint16(beUint(v))
			r.ICMPType, r.ICMPCode = uint8(tc>>8), uint8(tc)
		case tICMPType:
			r.ICMPType = uint8(beUint(v))
		case tICMPCode:
			r.ICMPCode = uint8(beUint(v))
		case tIPVersion:
			r.IPVersion = uint8(beUint(v))
		case tDirection:
			switch beUint(v) {
			case 0:
				r.FlowDirection = flow.Ingress
			case 1:
				r.FlowDirection = flow.Egress
			}
		case tEndReason:
			r.EndReason = flow.EndReason(beUint(v))
		case tSampInterval:
			x.rate = beUint(v)
		case tSamplerID:
			x.samplerID = beUint(v)
			x.hasSampler = true
		case tPktInterval:
			x.pktInt = beUint(v)
		case tPktSpace:
			x.pktSpace = beUint(v)
		case tIfName:
			x.ifName = v
		case tIfDesc:
			x.ifDesc = v
		}
	}
	if fixed {
		return p.fixedLen
	}
	return off
}

// ntpEpochOffset is the seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const ntpEpochOffset = 2208988800

func ntpToMs(v uint64) int64 {
	sec := int64(v>>32) - ntpEpochOffset
	frac := int64((v & 0xFFFFFFFF) * 1000 >> 32)
	return sec*1000 + frac
}

// samplingRate turns what options or data carry into a 1:N rate.
func (x *raw) samplingRate() uint32 {
	if x.pktInt > 0 && x.pktSpace > 0 {
		return uint32((x.pktInt + x.pktSpace) / x.pktInt)
	}
	if x.rate > 0 && x.rate <= 0xFFFFFFFF {
		return uint32(x.rate)
	}
	return 0
}

// setAddr stores a, unless a is unspecified and an address is already
// set: some exporters send both IPv4 and IPv6 fields, one of them zero.
func setAddr(dst *netip.Addr, a netip.Addr) {
	if a.IsUnspecified() && dst.IsValid() {
		return
	}
	*dst = a
}
