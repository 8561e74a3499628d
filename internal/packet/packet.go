// Package packet decodes the L2–L4 headers of one captured frame into the
// few fields a flow meter keys and counts on. It is hand-written for speed
// (no allocation, no reflection) and checked against gopacket in tests.
//
// Tunnels (GRE, VXLAN, IP-in-IP) are not entered: the outer flow is what
// is decoded, as a router's flow meter sees it.
package packet

import (
	"encoding/binary"
	"errors"
)

// LinkType is a pcap LINKTYPE_ value: the framing of a captured frame.
type LinkType uint16

// Link types a Decode understands.
const (
	LinkNull      LinkType = 0   // BSD loopback, host-order address family
	LinkEthernet  LinkType = 1   // Ethernet II (802.1Q, QinQ, MPLS inside)
	LinkRawAlt    LinkType = 12  // raw IP, as some systems number DLT_RAW
	LinkRawAlt14  LinkType = 14  // raw IP, OpenBSD's DLT_RAW
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkLoop      LinkType = 108 // OpenBSD loopback, network-order family
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1
	LinkIPv4      LinkType = 228
	LinkIPv6      LinkType = 229
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2
)

// Errors Decode returns; a meter counts each kind of drop.
var (
	ErrNotIP       = errors.New("packet: not an IP packet")
	ErrTruncated   = errors.New("packet: truncated")
	ErrMalformed   = errors.New("packet: malformed")
	ErrUnsupported = errors.New("packet: unsupported link type")
)

// Frame is one captured frame: its time (Unix ns), framing and bytes.
type Frame struct {
	TS   int64
	Link LinkType
	Data []byte
}

// Fragment says where a packet sits among the fragments of an IP datagram.
type Fragment uint8

const (
	NotFragment   Fragment = iota
	FirstFragment          // offset 0, more fragments follow: ports are known
	LaterFragment          // offset > 0: no transport header, ports unknown
)

// Key holds the fields of a packet that name its flow. Addresses are 16
// bytes; an IPv4 address fills the first 4. It is its own type so that a
// flow cache can key on it as decoded, without copying it field by field.
type Key struct {
	Src, Dst  [16]byte
	SrcPort   uint16
	DstPort   uint16 // for ICMP: type<<8 | code, as NetFlow does
	VLAN      uint16 // outermost 802.1Q id, 0 when untagged
	Protocol  uint8  // IP protocol (after IPv6 extension headers)
	IPVersion uint8  // 4 or 6
}

// Info holds the decoded fields of one packet: its flow key and the rest.
type Info struct {
	Key
	TOS      uint8 // IPv4 TOS or IPv6 traffic class
	TCPFlags uint16
	ICMPType uint8
	ICMPCode uint8
	IPLen    uint32 // IP header + payload, from the IP header
	Frag     Fragment
	FragID   uint32 // IPv4 identification or IPv6 fragment id
}

const (
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	etherVLAN  = 0x8100
	etherQinQ  = 0x88a8
	etherQinQ9 = 0x9100
	etherMPLS  = 0x8847
	etherMPLSm = 0x8848
)

// Decode decodes one frame of link type lt into info, which it overwrites.
// It returns ErrNotIP for frames that carry no IP packet, ErrTruncated when
// the frame ends inside a header Decode needs, ErrMalformed for impossible
// header values, and ErrUnsupported for an unknown link type.
func Decode(lt LinkType, frame []byte, info *Info) error {
	*info = Info{}
	switch lt {
	case LinkEthernet:
		if len(frame) > 14 && binary.BigEndian.Uint16(frame[12:]) == etherIPv4 && frame[14]>>4 == 4 {
			return decodeIPv4(frame[14:], info) // most frames: no tags to walk
		}
		return decodeEthernet(frame, info)
	case LinkRaw, LinkRawAlt, LinkRawAlt14, LinkIPv4, LinkIPv6:
		return decodeIP(frame, info)
	case LinkLinuxSLL:
		if len(frame) < 16 {
			return ErrTruncated
		}
		return decodeEtherType(binary.BigEndian.Uint16(frame[14:]), frame[16:], info)
	case LinkLinuxSLL2:
		if len(frame) < 20 {
			return ErrTruncated
		}
		return decodeEtherType(binary.BigEndian.Uint16(frame[0:]), frame[20:], info)
	case LinkNull, LinkLoop:
		if len(frame) < 4 {
			return ErrTruncated
		}
		fam := binary.LittleEndian.Uint32(frame)
		if lt == LinkLoop || fam > 0xffff {
			fam = binary.BigEndian.Uint32(frame)
		}
		switch fam {
		case 2: // AF_INET
			return decodeIP(frame[4:], info)
		case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS
			return decodeIP(frame[4:], info)
		}
		return ErrNotIP
	}
	return ErrUnsupported
}

func decodeEthernet(b []byte, info *Info) error {
	if len(b) < 14 {
		return ErrTruncated
	}
	return decodeEtherType(binary.BigEndian.Uint16(b[12:]), b[14:], info)
}

// decodeEtherType follows VLAN tags and MPLS labels down to IP.
func decodeEtherType(et uint16, b []byte, info *Info) error {
	for tags := 0; ; tags++ {
		switch et {
		case etherIPv4, etherIPv6:
			return decodeIP(b, info)
		case etherVLAN, etherQinQ, etherQinQ9:
			if len(b) < 4 {
				return ErrTruncated
			}
			if tags > 8 {
				return ErrMalformed
			}
			if info.VLAN == 0 {
				info.VLAN = binary.BigEndian.Uint16(b) & 0x0fff
			}
			et = binary.BigEndian.Uint16(b[2:])
			b = b[4:]
		case etherMPLS, etherMPLSm:
			return decodeMPLS(b, info)
		default:
			return ErrNotIP
		}
	}
}

// decodeMPLS skips the label stack; the payload is IP when its first
// nibble says so (no control word).
func decodeMPLS(b []byte, info *Info) error {
	for n := 0; ; n++ {
		if len(b) < 4 {
			return ErrTruncated
		}
		if n > 16 {
			return ErrMalformed
		}
		bottom := b[2]&1 != 0
		b = b[4:]
		if bottom {
			break
		}
	}
	if len(b) == 0 {
		return ErrTruncated
	}
	switch b[0] >> 4 {
	case 4, 6:
		return decodeIP(b, info)
	}
	return ErrNotIP
}

func decodeIP(b []byte, info *Info) error {
	if len(b) == 0 {
		return ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return decodeIPv4(b, info)
	case 6:
		return decodeIPv6(b, info)
	}
	return ErrNotIP
}

func decodeIPv4(b []byte, info *Info) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 {
		return ErrMalformed
	}
	if total == 0 { // segmentation offload on live capture leaves it zero
		total = len(b)
	}
	if total < ihl {
		return ErrMalformed
	}
	if len(b) < ihl {
		return ErrTruncated
	}
	info.IPVersion = 4
	info.TOS = b[1]
	info.Protocol = b[9]
	info.IPLen = uint32(total)
	copy(info.Src[:4], b[12:16])
	copy(info.Dst[:4], b[16:20])
	fragField := binary.BigEndian.Uint16(b[6:])
	more, offset := fragField&0x2000 != 0, fragField&0x1fff
	if offset != 0 {
		info.Frag = LaterFragment
		info.FragID = uint32(binary.BigEndian.Uint16(b[4:]))
		return nil
	}
	if more {
		info.Frag = FirstFragment
		info.FragID = uint32(binary.BigEndian.Uint16(b[4:]))
	}
	end := min(total, len(b))
	return decodeTransport(b[ihl:end], info)
}

// IPv6 extension headers Decode walks through.
func isIPv6Ext(nh uint8) bool {
	switch nh {
	case 0, 43, 44, 51, 60, 135, 139, 140:
		return true
	}
	return false
}

func decodeIPv6(b []byte, info *Info) error {
	if len(b) < 40 {
		return ErrTruncated
	}
	info.IPVersion = 6
	info.TOS = uint8(binary.BigEndian.Uint16(b) >> 4)
	payload := int(binary.BigEndian.Uint16(b[4:]))
	if payload == 0 { // jumbogram or offload: take what was captured
		payload = len(b) - 40
	}
	info.IPLen = uint32(40 + payload)
	copy(info.Src[:], b[8:24])
	copy(info.Dst[:], b[24:40])
	nh := b[6]
	b = b[40:min(len(b), 40+payload)]
	for hops := 0; isIPv6Ext(nh); hops++ {
		if hops > 16 {
			return ErrMalformed
		}
		if len(b) < 8 {
			return ErrTruncated
		}
		var n int
		switch nh {
		case 44: // fragment
			info.FragID = binary.BigEndian.Uint32(b[4:])
			offset := binary.BigEndian.Uint16(b[2:]) >> 3
			if offset != 0 {
				info.Protocol = b[0]
				info.Frag = LaterFragment
				return nil
			}
			if b[3]&1 != 0 {
				info.Frag = FirstFragment
			}
			n = 8
		case 51: // AH counts in 4-byte units, minus 2
			n = (int(b[1]) + 2) * 4
		default:
			n = (int(b[1]) + 1) * 8
		}
		if len(b) < n {
			return ErrTruncated
		}
		nh = b[0]
		b = b[n:]
	}
	info.Protocol = nh
	return decodeTransport(b, info)
}

func decodeTransport(b []byte, info *Info) error {
	switch info.Protocol {
	case 6: // TCP
		if len(b) < 14 {
			return ErrTruncated
		}
		info.SrcPort = binary.BigEndian.Uint16(b)
		info.DstPort = binary.BigEndian.Uint16(b[2:])
		info.TCPFlags = binary.BigEndian.Uint16(b[12:]) & 0x01ff
	case 17, 132, 136: // UDP, SCTP, UDP-Lite: ports first
		if len(b) < 4 {
			return ErrTruncated
		}
		info.SrcPort = binary.BigEndian.Uint16(b)
		info.DstPort = binary.BigEndian.Uint16(b[2:])
	case 1, 58: // ICMP, ICMPv6
		if len(b) < 2 {
			return ErrTruncated
		}
		info.ICMPType, info.ICMPCode = b[0], b[1]
		info.DstPort = uint16(b[0])<<8 | uint16(b[1])
	}
	return nil
}
