package spool

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"flowlog/internal/flow"
)

// Records are encoded field by field in a fixed order. A text field equal
// to the previous record's in the same frame is written as one zero byte:
// the records of one flow log repeat their ids.
//
// The first byte is the record version with extBit set: the record goes on
// with the fields of layout 6 (interfaces, GeoIP, ASN). Spools written
// before have records without it, which decode with those fields empty.
const extBit = 0x80

var errCorrupt = errors.New("spool: corrupt record")

// appendRecords encodes recs onto buf.
func appendRecords(buf []byte, recs []flow.Record) []byte {
	prev := &flow.Record{}
	for i := range recs {
		r := &recs[i]
		buf = append(buf, r.Version|extBit, r.Protocol, uint8(r.FlowDirection), r.IPVersion, r.TOS,
			r.ICMPType, r.ICMPCode, uint8(r.EndReason))
		buf = binary.LittleEndian.AppendUint16(buf, r.SrcPort)
		buf = binary.LittleEndian.AppendUint16(buf, r.DstPort)
		buf = binary.LittleEndian.AppendUint16(buf, r.TCPFlags)
		buf = binary.LittleEndian.AppendUint16(buf, r.VLANID)
		buf = binary.LittleEndian.AppendUint32(buf, r.SamplingInterval)
		buf = binary.LittleEndian.AppendUint32(buf, r.InputIfIndex)
		buf = binary.LittleEndian.AppendUint32(buf, r.OutputIfIndex)
		buf = binary.LittleEndian.AppendUint64(buf, r.Packets)
		buf = binary.LittleEndian.AppendUint64(buf, r.Bytes)
		buf = binary.LittleEndian.AppendUint64(buf, uint64(r.Start))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(r.End))
		buf = appendAddr(buf, r.SrcAddr)
		buf = appendAddr(buf, r.DstAddr)
		buf = appendAddr(buf, r.ExporterAddr)
		buf = appendText(buf, r.AccountID, prev.AccountID)
		buf = appendText(buf, r.FlowLogID, prev.FlowLogID)
		buf = appendText(buf, r.GatewayID, prev.GatewayID)
		buf = appendText(buf, r.InterfaceID, prev.InterfaceID)
		buf = appendText(buf, r.Action, prev.Action)
		buf = appendText(buf, r.LogStatus, prev.LogStatus)
		buf = appendExt(buf, r, prev)
		prev = r
	}
	return buf
}

// appendExt encodes the fields of layout 6.
func appendExt(buf []byte, r, prev *flow.Record) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, r.SrcAS)
	buf = binary.LittleEndian.AppendUint32(buf, r.DstAS)
	buf = binary.LittleEndian.AppendUint64(buf, r.InIfSpeed)
	buf = binary.LittleEndian.AppendUint64(buf, r.OutIfSpeed)
	buf = appendText(buf, r.SrcCountry, prev.SrcCountry)
	buf = appendText(buf, r.DstCountry, prev.DstCountry)
	buf = appendText(buf, r.SrcASName, prev.SrcASName)
	buf = appendText(buf, r.DstASName, prev.DstASName)
	buf = appendText(buf, r.InIfName, prev.InIfName)
	return appendText(buf, r.OutIfName, prev.OutIfName)
}

func appendAddr(buf []byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return append(buf, 0)
	case a.Is4():
		b := a.As4()
		return append(append(buf, 4), b[:]...)
	default:
		b := a.As16()
		return append(append(buf, 16), b[:]...)
	}
}

// appendText writes 0 for "same as before", else the length plus one and
// the bytes.
func appendText(buf []byte, s, prev string) []byte {
	if s == prev {
		return append(buf, 0)
	}
	buf = binary.AppendUvarint(buf, uint64(len(s))+1)
	return append(buf, s...)
}

// decoder reads records back; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

// fixedLen is the size of a record's fixed-width part.
const fixedLen = 8 + 4*2 + 3*4 + 4*8

func (d *decoder) records(out []flow.Record, n int) []flow.Record {
	var prev flow.Record
	for range n {
		if len(d.b) < fixedLen {
			d.err = errCorrupt
			return out
		}
		b := d.b
		r := flow.Record{Version: b[0] &^ extBit, Protocol: b[1], FlowDirection: flow.Direction(b[2]), IPVersion: b[3], TOS: b[4],
			ICMPType: b[5], ICMPCode: b[6], EndReason: flow.EndReason(b[7])}
		r.SrcPort = binary.LittleEndian.Uint16(b[8:])
		r.DstPort = binary.LittleEndian.Uint16(b[10:])
		r.TCPFlags = binary.LittleEndian.Uint16(b[12:])
		r.VLANID = binary.LittleEndian.Uint16(b[14:])
		r.SamplingInterval = binary.LittleEndian.Uint32(b[16:])
		r.InputIfIndex = binary.LittleEndian.Uint32(b[20:])
		r.OutputIfIndex = binary.LittleEndian.Uint32(b[24:])
		r.Packets = binary.LittleEndian.Uint64(b[28:])
		r.Bytes = binary.LittleEndian.Uint64(b[36:])
		r.Start = int64(binary.LittleEndian.Uint64(b[44:]))
		r.End = int64(binary.LittleEndian.Uint64(b[52:]))
		d.b = b[fixedLen:]
		r.SrcAddr = d.addr()
		r.DstAddr = d.addr()
		r.ExporterAddr = d.addr()
		r.AccountID = d.text(prev.AccountID)
		r.FlowLogID = d.text(prev.FlowLogID)
		r.GatewayID = d.text(prev.GatewayID)
		r.InterfaceID = d.text(prev.InterfaceID)
		r.Action = d.text(prev.Action)
		r.LogStatus = d.text(prev.LogStatus)
		if b[0]&extBit != 0 {
			d.ext(&r, &prev)
		}
		if d.err != nil {
			return out
		}
		out = append(out, r)
		prev = r
	}
	return out
}

// extLen is the size of the fixed-width part of the layout 6 fields.
const extLen = 2*4 + 2*8

// ext decodes what appendExt encodes.
func (d *decoder) ext(r, prev *flow.Record) {
	if d.err != nil || len(d.b) < extLen {
		d.err = errCorrupt
		return
	}
	b := d.b
	r.SrcAS = binary.LittleEndian.Uint32(b)
	r.DstAS = binary.LittleEndian.Uint32(b[4:])
	r.InIfSpeed = binary.LittleEndian.Uint64(b[8:])
	r.OutIfSpeed = binary.LittleEndian.Uint64(b[16:])
	d.b = b[extLen:]
	r.SrcCountry = d.text(prev.SrcCountry)
	r.DstCountry = d.text(prev.DstCountry)
	r.SrcASName = d.text(prev.SrcASName)
	r.DstASName = d.text(prev.DstASName)
	r.InIfName = d.text(prev.InIfName)
	r.OutIfName = d.text(prev.OutIfName)
}

func (d *decoder) addr() netip.Addr {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCorrupt
		return netip.Addr{}
	}
	n := int(d.b[0])
	if len(d.b) < 1+n {
		d.err = errCorrupt
		return netip.Addr{}
	}
	var a netip.Addr
	switch n {
	case 0:
	case 4:
		a = netip.AddrFrom4([4]byte(d.b[1:5]))
	case 16:
		a = netip.AddrFrom16([16]byte(d.b[1:17]))
	default:
		d.err = errCorrupt
	}
	d.b = d.b[1+n:]
	return a
}

func (d *decoder) text(prev string) string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n-min(n, 1) {
		d.err = errCorrupt
		return ""
	}
	d.b = d.b[k:]
	if n == 0 {
		return prev
	}
	s := string(d.b[:n-1])
	d.b = d.b[n-1:]
	return s
}
