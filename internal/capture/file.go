// Package capture reads packets from pcap/pcapng files and from live Linux
// interfaces (AF_PACKET with a TPACKET_V3 ring), handing each frame with its
// timestamp and link type to a handler, one by one or in batches.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"flowlog/internal/packet"
)

// Handler receives one frame. The frame's bytes are only valid during the
// call.
type Handler func(ts time.Time, lt packet.LinkType, frame []byte)

// ErrFormat reports a file that is neither pcap nor pcapng.
var ErrFormat = errors.New("capture: not a pcap or pcapng file")

// File reads a pcap or pcapng file.
type File struct {
	f     *os.File
	cr    countingReader
	next  func() (time.Time, packet.LinkType, []byte, error)
	pcap  *pcapReader // nil for pcapng
	size  int64
	count uint64
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// OpenFile opens a capture file, telling pcap from pcapng by its magic.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fl := &File{f: f}
	if st, err := f.Stat(); err == nil {
		fl.size = st.Size()
	}
	fl.cr.r = f
	br := bufio.NewReaderSize(&fl.cr, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrFormat)
	}
	if binary.BigEndian.Uint32(magic) == 0x0a0d0d0a {
		// Interfaces of one pcapng file may differ in link type.
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w: %w", path, ErrFormat, err)
		}
		fl.next = func() (time.Time, packet.LinkType, []byte, error) {
			data, ci, err := r.ZeroCopyReadPacketData()
			if err != nil {
				return time.Time{}, 0, nil, err
			}
			ifc, err := r.Interface(ci.InterfaceIndex)
			if err != nil {
				return time.Time{}, 0, nil, err
			}
			return ci.Timestamp, packet.LinkType(ifc.LinkType), data, nil
		}
	} else {
		r, err := newPcapReader(br, &fl.cr)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		fl.next, fl.pcap = r.next, r
	}
	return fl, nil
}

// Next returns the next frame, valid until the following call, or io.EOF.
func (f *File) Next() (ts time.Time, lt packet.LinkType, frame []byte, err error) {
	ts, lt, frame, err = f.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return ts, 0, nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return ts, 0, nil, fmt.Errorf("capture: file ends inside a packet after %d packets: %w", f.count, err)
		}
		return ts, 0, nil, fmt.Errorf("capture: after %d packets: %w", f.count, err)
	}
	f.count++
	return ts, lt, frame, nil
}

// Run hands every frame of the file to h, until the end of the file.
func (f *File) Run(h Handler) error {
	for {
		ts, lt, data, err := f.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		h(ts, lt, data)
	}
}

// RunBatch hands every frame of the file to h in batches, which are valid
// only during the call. Classic pcap frames come straight from the read
// buffer; pcapng frames come one per batch.
func (f *File) RunBatch(h func([]packet.Frame)) error {
	frames := make([]packet.Frame, 64)
	if f.pcap == nil {
		return f.Run(func(ts time.Time, lt packet.LinkType, data []byte) {
			frames[0] = packet.Frame{TS: ts.UnixNano(), Link: lt, Data: data}
			h(frames[:1])
		})
	}
	for {
		n, err := f.pcap.nextBatch(frames)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("capture: after %d packets: %w", f.count, err)
		}
		f.count += uint64(n)
		h(frames[:n])
	}
}

// Progress returns how many bytes of the file have been read, of its size.
func (f *File) Progress() (done, total int64) { return f.cr.n, f.size }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }
