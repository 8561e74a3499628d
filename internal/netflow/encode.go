package netflow

import (
	"encoding/binary"
	"fmt"

	"flowlog/internal/flow"
)

// Template ids of what flowlog exports.
const (
	TemplateIPv4    = 256
	TemplateIPv6    = 257
	TemplateOptions = 258
)

// The fixed templates flowlog exports. v9 carries times as uptime
// (FIRST/LAST_SWITCHED), IPFIX as absolute milliseconds. Counters are what
// was counted, with each record's own samplingInterval (IE 34): records
// of different routers and rates can share a message.
var (
	ipfixV4 = Template{ID: TemplateIPv4, Fields: []Field{
		{ID: ieSrcIPv4, Len: 4}, {ID: ieDstIPv4, Len: 4}, {ID: ieSrcPort, Len: 2}, {ID: ieDstPort, Len: 2},
		{ID: ieProtocol, Len: 1}, {ID: ieTOS, Len: 1}, {ID: ieTCPFlags, Len: 2},
		{ID: ieOctetDelta, Len: 8}, {ID: iePacketDelta, Len: 8}, {ID: ieStartMs, Len: 8}, {ID: ieEndMs, Len: 8},
		{ID: ieIngressIf, Len: 4}, {ID: ieEgressIf, Len: 4}, {ID: ieVLAN, Len: 2}, {ID: ieICMPTypeCode4, Len: 2},
		{ID: ieDirection, Len: 1}, {ID: ieEndReason, Len: 1}, {ID: ieSamplingInterval, Len: 4}}}
	ipfixV6 = Template{ID: TemplateIPv6, Fields: []Field{
		{ID: ieSrcIPv6, Len: 16}, {ID: ieDstIPv6, Len: 16}, {ID: ieSrcPort, Len: 2}, {ID: ieDstPort, Len: 2},
		{ID: ieProtocol, Len: 1}, {ID: ieTOS, Len: 1}, {ID: ieTCPFlags, Len: 2},
		{ID: ieOctetDelta, Len: 8}, {ID: iePacketDelta, Len: 8}, {ID: ieStartMs, Len: 8}, {ID: ieEndMs, Len: 8},
		{ID: ieIngressIf, Len: 4}, {ID: ieEgressIf, Len: 4}, {ID: ieVLAN, Len: 2}, {ID: ieICMPTypeCode6, Len: 2},
		{ID: ieDirection, Len: 1}, {ID: ieEndReason, Len: 1}, {ID: ieSamplingInterval, Len: 4}}}
	v9V4 = Template{ID: TemplateIPv4, Fields: []Field{
		{ID: ieSrcIPv4, Len: 4}, {ID: ieDstIPv4, Len: 4}, {ID: ieSrcPort, Len: 2}, {ID: ieDstPort, Len: 2},
		{ID: ieProtocol, Len: 1}, {ID: ieTOS, Len: 1}, {ID: ieTCPFlags, Len: 1},
		{ID: ieOctetDelta, Len: 8}, {ID: iePacketDelta, Len: 8}, {ID: ieStartSysUp, Len: 4}, {ID: ieEndSysUp, Len: 4},
		{ID: ieIngressIf, Len: 4}, {ID: ieEgressIf, Len: 4}, {ID: ieVLAN, Len: 2}, {ID: ieICMPTypeCode4, Len: 2},
		{ID: ieDirection, Len: 1}, {ID: ieEndReason, Len: 1}, {ID: ieSamplingInterval, Len: 4}}}
	v9V6 = Template{ID: TemplateIPv6, Fields: []Field{
		{ID: ieSrcIPv6, Len: 16}, {ID: ieDstIPv6, Len: 16}, {ID: ieSrcPort, Len: 2}, {ID: ieDstPort, Len: 2},
		{ID: ieProtocol, Len: 1}, {ID: ieTOS, Len: 1}, {ID: ieTCPFlags, Len: 1},
		{ID: ieOctetDelta, Len: 8}, {ID: iePacketDelta, Len: 8}, {ID: ieStartSysUp, Len: 4}, {ID: ieEndSysUp, Len: 4},
		{ID: ieIngressIf, Len: 4}, {ID: ieEgressIf, Len: 4}, {ID: ieVLAN, Len: 2}, {ID: ieICMPTypeCode4, Len: 2},
		{ID: ieDirection, Len: 1}, {ID: ieEndReason, Len: 1}, {ID: ieSamplingInterval, Len: 4}}}
	// Sampling options: scope is the system (v9) or the observation domain
	// (IPFIX); samplingInterval and samplingAlgorithm are what most
	// collectors read.
	v9Options = Template{ID: TemplateOptions, ScopeCount: 1, Fields: []Field{
		{ID: 1, Len: 4}, {ID: ieSamplingInterval, Len: 4}, {ID: ieSamplingAlgorithm, Len: 1}}}
	ipfixOptions = Template{ID: TemplateOptions, ScopeCount: 1, Fields: []Field{
		{ID: 149, Len: 4}, {ID: ieSamplingInterval, Len: 4}, {ID: ieSamplingAlgorithm, Len: 1}}}
)

func recordLen(t Template) int {
	n := 0
	for _, f := range t.Fields {
		n += int(f.Len)
	}
	return n
}

var (
	lenIPFIXV4, lenIPFIXV6 = recordLen(ipfixV4), recordLen(ipfixV6)
	lenV9V4, lenV9V6       = recordLen(v9V4), recordLen(v9V6)
)

// MessageHeader holds the v9/IPFIX header fields the builder cannot derive.
type MessageHeader struct {
	Sequence uint32 // v9: packets sent before; IPFIX: data records sent before
	Domain   uint32 // v9 source id / IPFIX observation domain
}

// Builder assembles one v9 or IPFIX message at a time from flowlog's fixed
// templates. Use Reset, then the Append methods, then Finish.
type Builder struct {
	version  int
	buf      []byte
	setStart int    // offset of the open set's header, or -1
	setID    uint16 // id of the open set
	count    int    // v9 header count: template and data records
	data     int    // data records, options data included
	clock    Clock
}

// NewBuilder returns a Builder for version V9 or IPFIX.
func NewBuilder(version int) (*Builder, error) {
	if version != V9 && version != IPFIX {
		return nil, fmt.Errorf("%w: builder for %d", ErrVersion, version)
	}
	return &Builder{version: version, setStart: -1}, nil
}

func (b *Builder) headerLen() int {
	if b.version == V9 {
		return 20
	}
	return 16
}

// Reset starts a new message in dst[:0]; clock gives v9 uptimes.
func (b *Builder) Reset(dst []byte, clock Clock) {
	b.buf = append(dst[:0], make([]byte, b.headerLen())...)
	b.setStart, b.count, b.data, b.clock = -1, 0, 0, clock
}

// Len is the message length so far, including the open set's padding.
func (b *Builder) Len() int { return len(b.buf) + b.pad() }

// Records is the number of data records (options data included) so far.
func (b *Builder) Records() int { return b.data }

func (b *Builder) pad() int {
	if b.version != V9 || b.setStart < 0 {
		return 0
	}
	return (4 - (len(b.buf)-b.setStart)%4) % 4
}

func (b *Builder) openSet(id uint16) {
	if b.setStart >= 0 && b.setID == id {
		return
	}
	b.closeSet()
	b.setStart, b.setID = len(b.buf), id
	b.buf = append(b.buf, byte(id>>8), byte(id), 0, 0)
}

func (b *Builder) closeSet() {
	if b.setStart < 0 {
		return
	}
	b.buf = append(b.buf, make([]byte, b.pad())...)
	binary.BigEndian.PutUint16(b.buf[b.setStart+2:], uint16(len(b.buf)-b.setStart))
	b.setStart = -1
}

// AppendTemplates adds the IPv4 and IPv6 templates, and the sampling
// options template when withOptions is set.
func (b *Builder) AppendTemplates(withOptions bool) {
	tid, oid := uint16(0), uint16(1)
	v4, v6, opt := v9V4, v9V6, v9Options
	if b.version == IPFIX {
		tid, oid = 2, 3
		v4, v6, opt = ipfixV4, ipfixV6, ipfixOptions
	}
	b.openSet(tid)
	for _, t := range []Template{v4, v6} {
		b.buf = binary.BigEndian.AppendUint16(b.buf, t.ID)
		b.buf = binary.BigEndian.AppendUint16(b.buf, uint16(len(t.Fields)))
		b.buf = appendFields(b.buf, t.Fields)
		b.count++
	}
	if !withOptions {
		return
	}
	b.openSet(oid)
	b.buf = binary.BigEndian.AppendUint16(b.buf, opt.ID)
	if b.version == V9 {
		b.buf = binary.BigEndian.AppendUint16(b.buf, uint16(4*opt.ScopeCount))
		b.buf = binary.BigEndian.AppendUint16(b.buf, uint16(4*(len(opt.Fields)-opt.ScopeCount)))
	} else {
		b.buf = binary.BigEndian.AppendUint16(b.buf, uint16(len(opt.Fields)))
		b.buf = binary.BigEndian.AppendUint16(b.buf, uint16(opt.ScopeCount))
	}
	b.buf = appendFields(b.buf, opt.Fields)
	b.count++
}

func appendFields(dst []byte, fs []Field) []byte {
	for _, f := range fs {
		dst = binary.BigEndian.AppendUint16(dst, f.ID)
		dst = binary.BigEndian.AppendUint16(dst, f.Len)
	}
	return dst
}

// AppendSampling adds an options data record announcing a 1:rate
// systematic sampling for the message's domain, as routers do (flowlog's
// exporter sends each record's rate in the record instead); records whose
// samplingInterval is 0 take it.
func (b *Builder) AppendSampling(domain, rate uint32) {
	b.openSet(TemplateOptions)
	b.buf = binary.BigEndian.AppendUint32(b.buf, domain)
	b.buf = binary.BigEndian.AppendUint32(b.buf, rate)
	b.buf = append(b.buf, 1) // deterministic / systematic count-based
	b.count++
	b.data++
}

// RecordSize returns how many bytes appending r would add at most
// (its record, plus a set header if it opens a new set, plus padding).
func (b *Builder) RecordSize(r *flow.Record) int {
	n, id := b.sizeOf(r)
	if b.setStart < 0 || b.setID != id {
		n += 4
	}
	if b.version == V9 {
		n += 3
	}
	return n
}

func (b *Builder) sizeOf(r *flow.Record) (int, uint16) {
	v6 := r.SrcAddr.Is6() && !r.SrcAddr.Is4In6()
	switch {
	case b.version == V9 && v6:
		return lenV9V6, TemplateIPv6
	case b.version == V9:
		return lenV9V4, TemplateIPv4
	case v6:
		return lenIPFIXV6, TemplateIPv6
	}
	return lenIPFIXV4, TemplateIPv4
}

// AppendRecord adds one flow record: its counted values (estimates divided
// by its SamplingInterval) and the interval. Records whose addresses are
// not of one family are rejected.
func (b *Builder) AppendRecord(r *flow.Record) error {
	_, id := b.sizeOf(r)
	src, dst := r.SrcAddr.Unmap(), r.DstAddr.Unmap()
	if src.Is4() != dst.Is4() || !src.IsValid() || !dst.IsValid() {
		return fmt.Errorf("%w: record addresses %v → %v", ErrVersion, r.SrcAddr, r.DstAddr)
	}
	b.openSet(id)
	if id == TemplateIPv4 {
		s, d := src.As4(), dst.As4()
		b.buf = append(b.buf, s[:]...)
		b.buf = append(b.buf, d[:]...)
	} else {
		s, d := src.As16(), dst.As16()
		b.buf = append(b.buf, s[:]...)
		b.buf = append(b.buf, d[:]...)
	}
	b.buf = binary.BigEndian.AppendUint16(b.buf, r.SrcPort)
	b.buf = binary.BigEndian.AppendUint16(b.buf, r.DstPort)
	b.buf = append(b.buf, r.Protocol, r.TOS)
	if b.version == V9 {
		b.buf = append(b.buf, uint8(r.TCPFlags))
	} else {
		b.buf = binary.BigEndian.AppendUint16(b.buf, r.TCPFlags)
	}
	packets, bytes := r.Counted()
	b.buf = binary.BigEndian.AppendUint64(b.buf, bytes)
	b.buf = binary.BigEndian.AppendUint64(b.buf, packets)
	if b.version == V9 {
		b.buf = binary.BigEndian.AppendUint32(b.buf, b.clock.uptime(r.Start))
		b.buf = binary.BigEndian.AppendUint32(b.buf, b.clock.uptime(r.End))
	} else {
		b.buf = binary.BigEndian.AppendUint64(b.buf, uint64(r.Start))
		b.buf = binary.BigEndian.AppendUint64(b.buf, uint64(r.End))
	}
	b.buf = binary.BigEndian.AppendUint32(b.buf, r.InputIfIndex)
	b.buf = binary.BigEndian.AppendUint32(b.buf, r.OutputIfIndex)
	b.buf = binary.BigEndian.AppendUint16(b.buf, r.VLANID)
	b.buf = binary.BigEndian.AppendUint16(b.buf, uint16(r.ICMPType)<<8|uint16(r.ICMPCode))
	b.buf = append(b.buf, direction(r.FlowDirection), uint8(r.EndReason))
	b.buf = binary.BigEndian.AppendUint32(b.buf, r.SamplingInterval) // 0: not known, options data may say
	b.count++
	b.data++
	return nil
}

// direction encodes flowDirection (IE 61): 0 ingress, 1 egress. Unknown
// directions are sent as ingress, the observation point's default.
func direction(d flow.Direction) uint8 {
	if d == flow.Egress {
		return 1
	}
	return 0
}

// Finish closes the message, writes its header and returns it. The result
// aliases the buffer given to Reset.
func (b *Builder) Finish(h MessageHeader) []byte {
	b.closeSet()
	p := b.buf
	if b.version == V9 {
		binary.BigEndian.PutUint16(p, V9)
		binary.BigEndian.PutUint16(p[2:], uint16(b.count))
		binary.BigEndian.PutUint32(p[4:], b.clock.sysUptime())
		binary.BigEndian.PutUint32(p[8:], b.clock.exportSecs())
		binary.BigEndian.PutUint32(p[12:], h.Sequence)
		binary.BigEndian.PutUint32(p[16:], h.Domain)
	} else {
		binary.BigEndian.PutUint16(p, IPFIX)
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint32(p[4:], b.clock.exportSecs())
		binary.BigEndian.PutUint32(p[8:], h.Sequence)
		binary.BigEndian.PutUint32(p[12:], h.Domain)
	}
	return p
}
