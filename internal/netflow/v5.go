package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"flowlog/internal/flow"
)

const (
	v5HeaderLen = 24
	v5RecordLen = 48
	// V5MaxRecords is the most records a v5 packet may carry.
	V5MaxRecords = 30
)

// Clock relates absolute times to the system uptime that v5 and v9 carry:
// the exporter "booted" at BootMs, and the packet is sent at ExportMs (both
// Unix ms). ExportMs is used in whole seconds, as the v9 header has no finer
// field, so that every decoder computes the same record times.
type Clock struct {
	BootMs   int64
	ExportMs int64
}

func (c Clock) exportMs() int64        { return c.ExportMs - c.ExportMs%1000 }
func (c Clock) uptime(ms int64) uint32 { return uint32(ms - c.BootMs) }
func (c Clock) sysUptime() uint32      { return c.uptime(c.exportMs()) }
func (c Clock) exportSecs() uint32     { return uint32(c.exportMs() / 1000) }

// V5Header holds the v5 header fields the encoder cannot derive.
type V5Header struct {
	Clock
	Sequence         uint32 // flows sent before this packet
	EngineType       uint8
	EngineID         uint8
	SamplingInterval uint16 // low 14 bits: 1:N; top 2 bits: mode
}

// AppendV5 appends a v5 packet holding recs to dst. Every record must be
// IPv4 and there may be at most V5MaxRecords. Counters are what was counted
// (see flow.Record.Counted), so the records should share the interval the
// header announces; counters over 32 bits are capped at 2^32-1 (v5 cannot
// carry more).
func AppendV5(dst []byte, h V5Header, recs []flow.Record) ([]byte, error) {
	if len(recs) > V5MaxRecords {
		return dst, fmt.Errorf("%w: %d records in a v5 packet", ErrLimit, len(recs))
	}
	dst = binary.BigEndian.AppendUint16(dst, V5)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(recs)))
	dst = binary.BigEndian.AppendUint32(dst, h.sysUptime())
	dst = binary.BigEndian.AppendUint32(dst, h.exportSecs())
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, h.Sequence)
	dst = append(dst, h.EngineType, h.EngineID)
	dst = binary.BigEndian.AppendUint16(dst, h.SamplingInterval)
	for i := range recs {
		r := &recs[i]
		if !r.SrcAddr.Is4() || !r.DstAddr.Is4() {
			return dst, fmt.Errorf("%w: v5 carries only IPv4 flows", ErrVersion)
		}
		s, d := r.SrcAddr.As4(), r.DstAddr.As4()
		dst = append(dst, s[:]...)
		dst = append(dst, d[:]...)
		dst = append(dst, 0, 0, 0, 0) // next hop
		dst = binary.BigEndian.AppendUint16(dst, uint16(r.InputIfIndex))
		dst = binary.BigEndian.AppendUint16(dst, uint16(r.OutputIfIndex))
		packets, bytes := r.Counted()
		dst = binary.BigEndian.AppendUint32(dst, cap32(packets))
		dst = binary.BigEndian.AppendUint32(dst, cap32(bytes))
		dst = binary.BigEndian.AppendUint32(dst, h.uptime(r.Start))
		dst = binary.BigEndian.AppendUint32(dst, h.uptime(r.End))
		dst = binary.BigEndian.AppendUint16(dst, r.SrcPort)
		dst = binary.BigEndian.AppendUint16(dst, v5DstPort(r))
		dst = append(dst, 0, uint8(r.TCPFlags), r.Protocol, r.TOS)
		dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // AS numbers, masks, pad
	}
	return dst, nil
}

// v5DstPort carries ICMP type and code in the destination port, as v5
// exporters do.
func v5DstPort(r *flow.Record) uint16 {
	if (r.Protocol == 1 || r.Protocol == 58) && r.DstPort == 0 {
		return uint16(r.ICMPType)<<8 | uint16(r.ICMPCode)
	}
	return r.DstPort
}

func cap32(v uint64) uint32 {
	if v > 0xFFFFFFFF {
		return 0xFFFFFFFF
	}
	return uint32(v)
}

func (s *Session) decodeV5(pkt []byte, out []flow.Record, res Result) ([]flow.Record, Result, error) {
	if len(pkt) < v5HeaderLen {
		return out, res, fmt.Errorf("v5 header: %w", ErrShort)
	}
	count := int(binary.BigEndian.Uint16(pkt[2:]))
	if count == 0 || count > V5MaxRecords || len(pkt) < v5HeaderLen+count*v5RecordLen {
		return out, res, fmt.Errorf("v5 count %d in %d bytes: %w", count, len(pkt), ErrLength)
	}
	h := header{version: V5, sysUp: binary.BigEndian.Uint32(pkt[4:]),
		exportMs: int64(binary.BigEndian.Uint32(pkt[8:]))*1000 + int64(binary.BigEndian.Uint32(pkt[12:])/1e6),
		rate:     uint32(binary.BigEndian.Uint16(pkt[22:]) & 0x3FFF)}
	seq := binary.BigEndian.Uint32(pkt[16:])
	key := domainKey{V5, uint32(pkt[20])<<8 | uint32(pkt[21])}
	res.Domain = key.id
	d, err := s.domain(key)
	if err != nil {
		return out, res, err
	}
	for i := 0; i < count; i++ {
		b := pkt[v5HeaderLen+i*v5RecordLen:][:v5RecordLen]
		out = append(out, flow.Record{
			SrcAddr:       netip.AddrFrom4([4]byte(b[0:4])),
			DstAddr:       netip.AddrFrom4([4]byte(b[4:8])),
			InputIfIndex:  uint32(binary.BigEndian.Uint16(b[12:])),
			OutputIfIndex: uint32(binary.BigEndian.Uint16(b[14:])),
			Packets:       uint64(binary.BigEndian.Uint32(b[16:])),
			Bytes:         uint64(binary.BigEndian.Uint32(b[20:])),
			Start:         h.upToMs(binary.BigEndian.Uint32(b[24:]), 0),
			End:           h.upToMs(binary.BigEndian.Uint32(b[28:]), 0),
			SrcPort:       binary.BigEndian.Uint16(b[32:]),
			DstPort:       binary.BigEndian.Uint16(b[34:]),
			TCPFlags:      uint16(b[37]),
			Protocol:      b[38],
			TOS:           b[39],
			IPVersion:     4,
		})
		r := &out[len(out)-1]
		if r.Protocol == 1 {
			r.ICMPType, r.ICMPCode = uint8(r.DstPort>>8), uint8(r.DstPort)
		}
		r.SamplingInterval = h.rate
	}
	res.Lost = d.sequence(seq, seq+uint32(count), true)
	return out, res, nil
}
