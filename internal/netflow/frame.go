package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"flowlog/internal/flow"
)

// sFlow header_protocol values this decoder understands.
const (
	hdrEthernet = 1
	hdrIPv4     = 11
	hdrIPv6     = 12
)

// decodeSampledHeader fills r's flow key, TOS, VLAN, TCP flags and ICMP
// type/code from the first bytes of a sampled packet, and returns the
// packet's IP length (header + payload) as its IP header states it.
//
// It is a deliberately small L2–L4 decoder (Ethernet, 802.1Q/802.1ad,
// IPv4, IPv6 with common extension headers, TCP, UDP, ICMP); it stands
// alone so that a fuller packet decoder can replace it.
func decodeSampledHeader(proto uint32, b []byte, r *flow.Record) (uint32, error) {
	switch proto {
	case hdrEthernet:
		if len(b) < 14 {
			return 0, fmt.Errorf("ethernet header: %w", ErrShort)
		}
		et := binary.BigEndian.Uint16(b[12:])
		b = b[14:]
		for et == 0x8100 || et == 0x88a8 {
			if len(b) < 4 {
				return 0, fmt.Errorf("vlan tag: %w", ErrShort)
			}
			if r.VLANID == 0 {
				r.VLANID = binary.BigEndian.Uint16(b) & 0x0FFF
			}
			et = binary.BigEndian.Uint16(b[2:])
			b = b[4:]
		}
		switch et {
		case 0x0800:
			return decodeIPv4(b, r)
		case 0x86DD:
			return decodeIPv6(b, r)
		}
		return 0, fmt.Errorf("%w: ethertype %#04x", ErrVersion, et)
	case hdrIPv4:
		return decodeIPv4(b, r)
	case hdrIPv6:
		return decodeIPv6(b, r)
	}
	return 0, fmt.Errorf("%w: sampled header protocol %d", ErrVersion, proto)
}

func decodeIPv4(b []byte, r *flow.Record) (uint32, error) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return 0, fmt.Errorf("ipv4 header: %w", ErrShort)
	}
	ihl := int(b[0]&0x0F) * 4
	if ihl < 20 || len(b) < ihl {
		return 0, fmt.Errorf("ipv4 header length %d: %w", ihl, ErrLength)
	}
	r.IPVersion = 4
	r.TOS = b[1]
	r.Protocol = b[9]
	r.SrcAddr = netip.AddrFrom4([4]byte(b[12:16]))
	r.DstAddr = netip.AddrFrom4([4]byte(b[16:20]))
	ipLen := uint32(binary.BigEndian.Uint16(b[2:]))
	// Only the first fragment carries the transport header.
	if binary.BigEndian.Uint16(b[6:])&0x1FFF == 0 {
		transport(b[ihl:], r)
	}
	return ipLen, nil
}

func decodeIPv6(b []byte, r *flow.Record) (uint32, error) {
	if len(b) < 40 || b[0]>>4 != 6 {
		return 0, fmt.Errorf("ipv6 header: %w", ErrShort)
	}
	r.IPVersion = 6
	r.TOS = uint8(binary.BigEndian.Uint16(b) >> 4)
	r.SrcAddr = netip.AddrFrom16([16]byte(b[8:24]))
	r.DstAddr = netip.AddrFrom16([16]byte(b[24:40]))
	ipLen := uint32(binary.BigEndian.Uint16(b[4:])) + 40
	next, p := b[6], b[40:]
	for {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(p) < 8 {
				r.Protocol = next
				return ipLen, nil
			}
			n := (int(p[1]) + 1) * 8
			if len(p) < n {
				r.Protocol = next
				return ipLen, nil
			}
			next, p = p[0], p[n:]
			continue
		case 44: // fragment: only the first carries ports
			if len(p) < 8 {
				r.Protocol = next
				return ipLen, nil
			}
			first := binary.BigEndian.Uint16(p[2:])&0xFFF8 == 0
			next, p = p[0], p[8:]
			r.Protocol = next
			if first {
				transport(p, r)
			}
			return ipLen, nil
		}
		r.Protocol = next
		transport(p, r)
		return ipLen, nil
	}
}

// transport reads ports, TCP flags or ICMP type/code when present.
func transport(b []byte, r *flow.Record) {
	switch r.Protocol {
	case 6:
		if len(b) >= 14 {
			r.TCPFlags = uint16(b[13])
		}
		fallthrough
	case 17, 132:
		if len(b) >= 4 {
			r.SrcPort = binary.BigEndian.Uint16(b)
			r.DstPort = binary.BigEndian.Uint16(b[2:])
		}
	case 1, 58:
		if len(b) >= 2 {
			r.ICMPType, r.ICMPCode = b[0], b[1]
		}
	}
}
