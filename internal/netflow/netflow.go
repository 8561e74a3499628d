// Package netflow encodes and decodes NetFlow v5, NetFlow v9 and IPFIX
// export packets and decodes sFlow v5 datagrams. It does no I/O: callers hand
// it payloads and get flow.Records back.
//
// Decoding of template-based formats (v9, IPFIX) is stateful; the state lives
// in a Session, one per exporter address, which keeps templates, sampling
// options and sequence numbers per observation domain (source id).
package netflow

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol versions as they appear in the first two bytes of a packet.
const (
	V5    = 5
	V9    = 9
	IPFIX = 10
)

// Sentinel errors; decode errors wrap one of them.
var (
	ErrShort    = errors.New("truncated packet")
	ErrVersion  = errors.New("unsupported version")
	ErrLength   = errors.New("bad length")
	ErrTemplate = errors.New("bad template")
	ErrLimit    = errors.New("limit reached")
	ErrCount    = errors.New("bad record count")
)

// Version returns the export protocol version of a NetFlow/IPFIX payload.
func Version(pkt []byte) (int, error) {
	if len(pkt) < 2 {
		return 0, ErrShort
	}
	v := int(binary.BigEndian.Uint16(pkt))
	switch v {
	case V5, V9, IPFIX:
		return v, nil
	}
	return v, fmt.Errorf("%w: %d", ErrVersion, v)
}

// beUint reads a big-endian unsigned integer of 1 to 8 bytes (reduced-size
// encoding, RFC 7011 §6.2). Longer inputs use their last 8 bytes.
func beUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	if len(b) > 8 {
		b = b[len(b)-8:]
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
