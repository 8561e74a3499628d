package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"flowlog/internal/packet"
)

// pcapReader reads a classic pcap file straight out of a bufio.Reader's
// buffer: a frame is handed out as a slice of that buffer, so reading costs
// no copy and no call per field. (pcapgo copies every frame; tests check
// that both read the same frames.)
type pcapReader struct {
	br      *bufio.Reader
	order   binary.ByteOrder
	nanos   bool
	maxLen  uint32
	link    packet.LinkType
	pending int    // bytes of the previous frame still to discard
	big     []byte // frames larger than the buffer are copied here
}

// A frame's captured length may reach the header's snaplen, at least
// minSnap (as libpcap allows) and at most maxSnap, so that a corrupt file
// cannot make us allocate gigabytes.
const (
	minSnap = 262144
	maxSnap = 16 << 20
)

func newPcapReader(br *bufio.Reader) (*pcapReader, error) {
	h, err := br.Peek(24)
	if err != nil {
		return nil, fmt.Errorf("%w: short file header", ErrFormat)
	}
	r := &pcapReader{br: br}
	switch binary.LittleEndian.Uint32(h) {
	case 0xa1b2c3d4:
		r.order = binary.LittleEndian
	case 0xa1b23c4d:
		r.order, r.nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		r.order = binary.BigEndian
	case 0x4d3cb2a1:
		r.order, r.nanos = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: unknown magic %#x", ErrFormat, binary.LittleEndian.Uint32(h))
	}
	r.maxLen = min(max(r.order.Uint32(h[16:]), minSnap), maxSnap)
	r.link = packet.LinkType(r.order.Uint32(h[20:]) & 0xffff) // upper bits: FCS info
	br.Discard(24)
	return r, nil
}

var errFrameTooLong = errors.New("captured length exceeds the snapshot length")

// next returns the next frame, valid until the following call.
func (r *pcapReader) next() (time.Time, packet.LinkType, []byte, error) {
	if r.pending > 0 {
		r.br.Discard(r.pending)
		r.pending = 0
	}
	h, err := r.br.Peek(16)
	if err != nil {
		if len(h) == 0 && err == io.EOF {
			return time.Time{}, 0, nil, io.EOF
		}
		return time.Time{}, 0, nil, io.ErrUnexpectedEOF
	}
	sec, frac, caplen := r.order.Uint32(h), r.order.Uint32(h[4:]), r.order.Uint32(h[8:])
	if caplen > r.maxLen {
		return time.Time{}, 0, nil, fmt.Errorf("%w: %d > %d", errFrameTooLong, caplen, r.maxLen)
	}
	ns := int64(frac)
	if !r.nanos {
		ns *= 1000
	}
	ts := time.Unix(int64(sec), ns)
	total := 16 + int(caplen)
	if total <= r.br.Size() {
		b, err := r.br.Peek(total)
		if err != nil {
			return time.Time{}, 0, nil, io.ErrUnexpectedEOF
		}
		r.pending = total
		return ts, r.link, b[16:], nil
	}
	r.br.Discard(16)
	if cap(r.big) < int(caplen) {
		r.big = make([]byte, caplen)
	}
	data := r.big[:caplen]
	if _, err := io.ReadFull(r.br, data); err != nil {
		return time.Time{}, 0, nil, io.ErrUnexpectedEOF
	}
	return ts, r.link, data, nil
}

// nextBatch fills frames with up to len(frames) frames straight from the
// read buffer, all valid until the following call; it returns how many.
func (r *pcapReader) nextBatch(frames []packet.Frame) (int, error) {
	if r.pending > 0 {
		r.br.Discard(r.pending)
		r.pending = 0
	}
	// Walk the headers first: peeking further may move the buffered bytes,
	// so the frames are sliced only from the last peek.
	var offs [64]int
	n, off := 0, 0
	for n < len(frames) && n < len(offs) {
		h, err := r.br.Peek(off + 16)
		if err != nil {
			if n > 0 || (len(h) == off && err == io.EOF) {
				break
			}
			return 0, io.ErrUnexpectedEOF
		}
		caplen := r.order.Uint32(h[off+8:])
		if caplen > r.maxLen {
			if n > 0 {
				break // report it on the next call
			}
			return 0, fmt.Errorf("%w: %d > %d", errFrameTooLong, caplen, r.maxLen)
		}
		end := off + 16 + int(caplen)
		if end > r.br.Size() {
			break
		}
		if _, err := r.br.Peek(end); err != nil {
			if n > 0 {
				break
			}
			return 0, io.ErrUnexpectedEOF
		}
		offs[n] = off
		n++
		off = end
	}
	if n == 0 { // a frame larger than the buffer, or the end
		ts, lt, data, err := r.next()
		if err != nil {
			return 0, err
		}
		frames[0] = packet.Frame{TS: ts.UnixNano(), Link: lt, Data: data}
		return 1, nil
	}
	buf, _ := r.br.Peek(off)
	for i := range n {
		h := buf[offs[i]:]
		ns := int64(r.order.Uint32(h[4:]))
		if !r.nanos {
			ns *= 1000
		}
		caplen := int(r.order.Uint32(h[8:]))
		frames[i] = packet.Frame{TS: int64(r.order.Uint32(h))*1e9 + ns, Link: r.link, Data: h[16 : 16+caplen]}
	}
	r.pending = off
	return n, nil
}
