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

// pcapReader reads a classic pcap file out of its own buffer: a frame is
// handed out as a slice of that buffer, and a batch of frames is parsed in
// one pass over it, so reading costs no copy and no call per frame.
// (pcapgo copies every frame; tests check that both read the same frames.)
type pcapReader struct {
	src    io.Reader
	buf    []byte // buf[off:end] is read but not yet handed out
	off    int
	end    int
	big    bool // big-endian file
	nanos  bool
	maxLen uint32
	link   packet.LinkType
	one    [1]packet.Frame // next's batch
}

// A frame's captured length may reach the header's snaplen, at least
// minSnap (as libpcap allows) and at most maxSnap, so that a corrupt file
// cannot make us allocate gigabytes.
const (
	minSnap = 262144
	maxSnap = 16 << 20
)

// pcapBuffer is the read buffer's size; it grows for larger frames.
const pcapBuffer = 1 << 20

// newPcapReader reads the file header from br, which has buffered the
// start of src, and then reads src directly: through br, bytes would be
// copied twice.
func newPcapReader(br *bufio.Reader, src io.Reader) (*pcapReader, error) {
	h, err := br.Peek(24)
	if err != nil {
		return nil, fmt.Errorf("%w: short file header", ErrFormat)
	}
	r := &pcapReader{src: src}
	switch binary.LittleEndian.Uint32(h) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		r.nanos = true
	case 0xd4c3b2a1:
		r.big = true
	case 0x4d3cb2a1:
		r.big, r.nanos = true, true
	default:
		return nil, fmt.Errorf("%w: unknown magic %#x", ErrFormat, binary.LittleEndian.Uint32(h))
	}
	r.maxLen = min(max(r.u32(h[16:]), minSnap), maxSnap)
	r.link = packet.LinkType(r.u32(h[20:]) & 0xffff) // upper bits: FCS info
	br.Discard(24)
	rest, _ := br.Peek(br.Buffered())
	r.buf = make([]byte, max(pcapBuffer, len(rest)))
	r.end = copy(r.buf, rest)
	return r, nil
}

// u32 reads a header field in the file's byte order; unlike a call through
// binary.ByteOrder, it is inlined.
func (r *pcapReader) u32(b []byte) uint32 {
	if r.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

var errFrameTooLong = errors.New("captured length exceeds the snapshot length")

// next returns the next frame, valid until the following call.
func (r *pcapReader) next() (time.Time, packet.LinkType, []byte, error) {
	if _, err := r.nextBatch(r.one[:]); err != nil {
		return time.Time{}, 0, nil, err
	}
	f := &r.one[0]
	return time.Unix(0, f.TS), f.Link, f.Data, nil
}

// nextBatch fills frames with up to len(frames) frames straight from the
// read buffer, all valid until the following call; it returns how many.
// It reads more only before handing out the first frame, as reading may
// move the buffered bytes.
func (r *pcapReader) nextBatch(frames []packet.Frame) (int, error) {
	n := 0
	for n < len(frames) {
		b := r.buf[r.off:r.end]
		need := 16
		if len(b) >= 16 {
			caplen := r.u32(b[8:])
			if caplen > r.maxLen {
				if n > 0 {
					break // report it on the next call
				}
				return 0, fmt.Errorf("%w: %d > %d", errFrameTooLong, caplen, r.maxLen)
			}
			need += int(caplen)
		}
		if len(b) < need {
			if n > 0 {
				break
			}
			if err := r.fill(need); err != nil {
				return 0, err
			}
			continue
		}
		ns := int64(r.u32(b[4:]))
		if !r.nanos {
			ns *= 1000
		}
		frames[n] = packet.Frame{TS: int64(r.u32(b))*1e9 + ns, Link: r.link, Data: b[16:need]}
		n++
		r.off += need
	}
	return n, nil
}

// fill moves the unread bytes to the front of the buffer, growing it if a
// record needs more, and reads until need bytes are there: io.EOF at a
// clean end, io.ErrUnexpectedEOF inside a record.
func (r *pcapReader) fill(need int) error {
	if need > len(r.buf) {
		r.buf = append(r.buf[:r.end], make([]byte, need-r.end)...)
	}
	r.end = copy(r.buf, r.buf[r.off:r.end])
	r.off = 0
	for r.end < need {
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if err == io.EOF {
			if r.end == 0 {
				return io.EOF
			}
			if r.end < need {
				return io.ErrUnexpectedEOF
			}
		} else if err != nil {
			return err
		}
	}
	return nil
}
