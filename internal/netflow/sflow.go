package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"flowlog/internal/flow"
)

// SFlowResult describes one decoded sFlow datagram.
type SFlowResult struct {
	Agent          netip.Addr
	SubAgent       uint32
	Sequence       uint32
	FlowSamples    int
	CounterSamples int
	Skipped        int // flow samples without a decodable packet header
}

// maxSFlowSamples bounds the samples claimed by one datagram.
const maxSFlowSamples = 4096

// DecodeSFlow decodes an sFlow v5 datagram. Each flow sample becomes one
// record of what was counted (one packet, its IP length) with the sample's
// sampling rate as SamplingInterval (0 when none), stamped with the
// receive time; the collector scales it. Counter samples are counted.
func DecodeSFlow(pkt []byte, now time.Time, out []flow.Record) ([]flow.Record, SFlowResult, error) {
	var res SFlowResult
	d := xdr{b: pkt}
	if v := d.u32(); v != 5 {
		if d.err != nil {
			return out, res, fmt.Errorf("sflow header: %w", ErrShort)
		}
		return out, res, fmt.Errorf("%w: sflow %d", ErrVersion, v)
	}
	switch d.u32() {
	case 1:
		res.Agent = netip.AddrFrom4([4]byte(d.fixed(4)))
	case 2:
		res.Agent = netip.AddrFrom16([16]byte(d.fixed(16)))
	default:
		if d.err == nil {
			return out, res, fmt.Errorf("%w: sflow agent address type", ErrVersion)
		}
	}
	res.SubAgent = d.u32()
	res.Sequence = d.u32()
	d.u32() // uptime
	n := d.u32()
	if d.err != nil {
		return out, res, fmt.Errorf("sflow header: %w", d.err)
	}
	if n > maxSFlowSamples {
		return out, res, fmt.Errorf("%w: %d sflow samples", ErrLength, n)
	}
	ms := now.UnixMilli()
	for i := uint32(0); i < n; i++ {
		tag, length := d.u32(), d.u32()
		body := d.next(int(length))
		if d.err != nil {
			return out, res, fmt.Errorf("sflow sample %d: %w", i, d.err)
		}
		var err error
		switch tag {
		case 1, 3: // flow sample, expanded flow sample
			res.FlowSamples++
			var ok bool
			out, ok, err = flowSample(body, tag == 3, ms, out)
			if !ok && err == nil {
				res.Skipped++
			}
		case 2, 4:
			res.CounterSamples++
		}
		if err != nil {
			return out, res, fmt.Errorf("sflow sample %d: %w", i, err)
		}
	}
	return out, res, nil
}

// flowSample decodes a flow sample; ok says whether it produced a record.
func flowSample(b []byte, expanded bool, ms int64, out []flow.Record) ([]flow.Record, bool, error) {
	d := xdr{b: b}
	d.u32() // sequence
	if expanded {
		d.u32()
		d.u32()
	} else {
		d.u32() // source id
	}
	rate := d.u32()
	d.u32() // pool
	d.u32() // drops
	var in, outIf uint32
	if expanded {
		if d.u32() == 0 {
			in = d.u32()
		} else {
			d.u32()
		}
		if d.u32() == 0 {
			outIf = d.u32()
		} else {
			d.u32()
		}
	} else {
		if v := d.u32(); v>>30 == 0 {
			in = v & 0x3FFFFFFF
		}
		if v := d.u32(); v>>30 == 0 {
			outIf = v & 0x3FFFFFFF
		}
	}
	n := d.u32()
	if d.err != nil {
		return out, false, d.err
	}
	if n > 64 {
		return out, false, fmt.Errorf("%w: %d flow records", ErrLength, n)
	}
	r := flow.Record{Start: ms, End: ms, SamplingInterval: rate, InputIfIndex: in, OutputIfIndex: outIf}
	var ipLen uint32
	found := false
	for i := uint32(0); i < n; i++ {
		tag, length := d.u32(), d.u32()
		body := d.next(int(length))
		if d.err != nil {
			return out, false, d.err
		}
		switch tag {
		case 1: // raw packet header
			h := xdr{b: body}
			proto, frameLen, stripped, hl := h.u32(), h.u32(), h.u32(), h.u32()
			hdr := h.next(int(hl))
			if h.err != nil {
				return out, false, h.err
			}
			l, err := decodeSampledHeader(proto, hdr, &r)
			if err != nil {
				continue // counted as skipped by the caller
			}
			if l == 0 && frameLen > stripped {
				l = frameLen - stripped
			}
			ipLen, found = l, true
		case 3, 4: // sampled IPv4 / IPv6
			if found {
				continue
			}
			h := xdr{b: body}
			l, proto := h.u32(), h.u32()
			if tag == 3 {
				r.SrcAddr = netip.AddrFrom4([4]byte(h.fixed(4)))
				r.DstAddr = netip.AddrFrom4([4]byte(h.fixed(4)))
				r.IPVersion = 4
			} else {
				r.SrcAddr = netip.AddrFrom16([16]byte(h.fixed(16)))
				r.DstAddr = netip.AddrFrom16([16]byte(h.fixed(16)))
				r.IPVersion = 6
			}
			r.SrcPort, r.DstPort = uint16(h.u32()), uint16(h.u32())
			r.TCPFlags = uint16(h.u32())
			r.TOS = uint8(h.u32())
			r.Protocol = uint8(proto)
			if h.err != nil {
				return out, false, h.err
			}
			ipLen, found = l, true
		}
	}
	if !found {
		return out, false, nil
	}
	r.Packets, r.Bytes = 1, uint64(ipLen)
	return append(out, r), true, nil
}

// xdr reads big-endian XDR words; the first overrun sets err and makes
// every later read return zeros.
type xdr struct {
	b   []byte
	err error
}

func (d *xdr) u32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

// next returns n bytes and skips them and their padding to 4 bytes.
func (d *xdr) next(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	pad := (4 - n%4) % 4
	if n+pad > len(d.b) {
		pad = len(d.b) - n
	}
	d.b = d.b[n+pad:]
	return v
}

// bytes returns n bytes, or zero if they are not there.
func (d *xdr) fixed(n int) []byte {
	v := d.next(n)
	if v == nil {
		return make([]byte, n)
	}
	return v
}

func (d *xdr) fail() {
	if d.err == nil {
		d.err = ErrShort
	}
	d.b = nil
}
