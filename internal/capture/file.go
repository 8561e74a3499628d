// Package capture reads packets from pcap/pcapng files and from live Linux
// interfaces (AF_PACKET with a TPACKET_V3 ring), handing each frame with its
// timestamp and link type to a Handler.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"flowlog/internal/packet"
)

// Handler receives one frame. The frame's bytes are only valid during the
// call. Live capture on several interfaces calls it from several goroutines.
type Handler func(ts time.Time, lt packet.LinkType, frame []byte)

// ErrFormat reports a file that is neither pcap nor pcapng.
var ErrFormat = errors.New("capture: not a pcap or pcapng file")

// File reads a pcap or pcapng file.
type File struct {
	f     *os.File
	cr    countingReader
	read  func() ([]byte, gopacket.CaptureInfo, error)
	link  func(ifIndex int) packet.LinkType
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
		fl.read = r.ZeroCopyReadPacketData
		fl.link = func(ifIndex int) packet.LinkType {
			if ifc, err := r.Interface(ifIndex); err == nil {
				return packet.LinkType(ifc.LinkType)
			}
			return packet.LinkType(r.LinkType())
		}
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w: %w", path, ErrFormat, err)
		}
		lt := packet.LinkType(r.LinkType())
		fl.read = r.ZeroCopyReadPacketData
		fl.link = func(int) packet.LinkType { return lt }
	}
	return fl, nil
}

// Next returns the next frame, valid until the following call, or io.EOF.
func (f *File) Next() (ts time.Time, lt packet.LinkType, frame []byte, err error) {
	data, ci, err := f.read()
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
	return ci.Timestamp, f.link(ci.InterfaceIndex), data, nil
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

// Progress returns how many bytes of the file have been read, of its size.
func (f *File) Progress() (done, total int64) { return f.cr.n, f.size }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }
