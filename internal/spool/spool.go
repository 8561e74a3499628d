// Package spool is the write-ahead spool of the log streams: a record a
// stream accepts is appended to the stream's log on disk before the
// producer is told so, and the store takes the records from there, in
// order, at its own pace. A full spool (its size bound, or the disk's
// reserve) refuses records, and the caller counts them; records in the
// spool survive a crash of the process and are stored after a restart.
//
// Each stream's log is a directory of segment files named after the
// position of their first record. A segment is a run of frames, one per
// Append: a header (payload length, CRC-32C, first position, record count)
// and the records. Opening a log cuts a torn last frame off.
package spool

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
)

// DirName is the spool's directory in a data dir.
const DirName = "spool"

// Errors of Append; the records were not spooled.
var (
	ErrFull     = errors.New("spool full")
	ErrDiskFull = errors.New("disk space below the reserve")
	ErrClosed   = errors.New("spool log closed")
)

// Config bounds the spool.
type Config struct {
	Dir          string // where the logs live, one directory per stream
	MaxBytes     int64  // all logs together; default 16 GiB
	SegmentBytes int64  // a log starts a new segment past this size; default 32 MiB
	// Reserve is the free space left on Dir's file system for the
	// store: Append refuses records that would eat into it. Default
	// 256 MiB.
	Reserve int64
}

func (c *Config) defaults() {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 16 << 30
	}
	if c.SegmentBytes <= 0 { // small enough that trimming frees the spool bit by bit
		c.SegmentBytes = min(32<<20, max(4096, c.MaxBytes/16))
	}
	if c.Reserve <= 0 {
		c.Reserve = 256 << 20
	}
}

// Spool holds the logs of all streams under one size bound.
type Spool struct {
	cfg  Config
	used atomic.Int64 // bytes in all segments
	free freeSpace

	mu   sync.Mutex
	logs map[store.StreamID]*Log
}

// Open opens the spool in cfg.Dir, creating it, and counts what it holds.
func Open(cfg Config) (*Spool, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{cfg: cfg, logs: map[store.StreamID]*Log{}}
	s.free.dir = cfg.Dir
	ids, err := s.Pending()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		segs, err := listSegments(s.dirOf(id))
		if err != nil {
			return nil, err
		}
		for _, sg := range segs {
			s.used.Add(sg.size)
		}
	}
	return s, nil
}

// Used returns the bytes the spool holds on disk.
func (s *Spool) Used() int64 { return s.used.Load() }

// dirOf names a stream's directory; ids are hex-encoded so that any id
// makes one safe file name.
func (s *Spool) dirOf(id store.StreamID) string { return streamDir(s.cfg.Dir, id) }

func streamDir(root string, id store.StreamID) string {
	return filepath.Join(root, hex.EncodeToString([]byte(id.Account))+"-"+hex.EncodeToString([]byte(id.Stream)))
}

// Waiting returns the bytes of a stream's log in the spool directory dir,
// without opening it: records that may not be in the store yet (the
// server stores them when it next runs).
func Waiting(dir string, id store.StreamID) (int64, error) {
	segs, err := listSegments(streamDir(dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	var n int64
	for _, sg := range segs {
		n += sg.size
	}
	return n, err
}

// Pending lists the streams that have a log on disk.
func (s *Spool) Pending() ([]store.StreamID, error) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var ids []store.StreamID
	for _, e := range ents {
		a, b, ok := strings.Cut(e.Name(), "-")
		acct, err1 := hex.DecodeString(a)
		stream, err2 := hex.DecodeString(b)
		if e.IsDir() && ok && err1 == nil && err2 == nil {
			ids = append(ids, store.StreamID{Account: string(acct), Stream: string(stream)})
		}
	}
	return ids, nil
}

// Log opens the stream's log, creating it, and places it (Log.Place) at
// start, where the store's records end: a new log numbers its records
// from start. One Log per stream is open at a time.
func (s *Spool) Log(id store.StreamID, start uint64) (*Log, error) {
	l, err := s.openLog(id, &start)
	if err != nil {
		return nil, err
	}
	if _, err := l.Place(start); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// LogUnplaced opens the stream's log, creating it, while where the
// store's records end is not known (the store does not answer): it keeps
// what the log holds, and a new log numbers its records from 0 until
// Place ties that numbering to the store's.
func (s *Spool) LogUnplaced(id store.StreamID) (*Log, error) { return s.openLog(id, nil) }

func (s *Spool) openLog(id store.StreamID, start *uint64) (*Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs[id] != nil {
		return nil, fmt.Errorf("spool: log of %s is already open", id)
	}
	l := &Log{sp: s, id: id, dir: s.dirOf(id)}
	if err := l.open(start); err != nil {
		return nil, err
	}
	s.logs[id] = l
	return l, nil
}

// Remove deletes a stream's log, which must not be open: its records are
// not wanted any more (the stream was deleted).
func (s *Spool) Remove(id store.StreamID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs[id] != nil {
		return fmt.Errorf("spool: log of %s is open", id)
	}
	dir := s.dirOf(id)
	segs, err := listSegments(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, sg := range segs {
		s.used.Add(-sg.size)
	}
	return os.RemoveAll(dir)
}

// segment is one file of a log; size counts its valid frames.
type segment struct {
	first uint64
	size  int64
	path  string
}

const segSuffix = ".seg"

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// listSegments returns a directory's segments by first position, with
// their file sizes.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var segs []segment
	for _, e := range ents {
		first, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), segSuffix), 10, 64)
		if err != nil || !strings.HasSuffix(e.Name(), segSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		segs = append(segs, segment{first: first, size: info.Size(), path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmpU64(a.first, b.first) })
	return segs, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Frame header: payload length, CRC-32C of the rest, first position,
// record count.
const headerLen = 4 + 4 + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type frameHeader struct {
	size  uint32
	crc   uint32
	first uint64
	count uint32
}

func parseHeader(b []byte) frameHeader {
	return frameHeader{size: binary.LittleEndian.Uint32(b), crc: binary.LittleEndian.Uint32(b[4:]),
		first: binary.LittleEndian.Uint64(b[8:]), count: binary.LittleEndian.Uint32(b[16:])}
}

// frameSum is the CRC over the header's position and count and the
// payload.
func frameSum(hdr, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(hdr[8:headerLen], castagnoli), castagnoli, payload)
}

// maxFrame bounds a frame's payload when reading, so a corrupt length
// cannot make a huge allocation.
const maxFrame = 64 << 20

// freeSpace caches the file system's free space for a short while; the
// bytes written since are taken off.
type freeSpace struct {
	dir     string
	mu      sync.Mutex
	at      time.Time
	bytes   int64
	written int64
}

func (f *freeSpace) available(n int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.at) > 100*time.Millisecond {
		var st syscall.Statfs_t
		if err := syscall.Statfs(f.dir, &st); err != nil {
			return 0, err
		}
		f.at, f.bytes, f.written = time.Now(), int64(st.Bavail)*int64(st.Bsize), 0
	}
	f.written += n
	return f.bytes - f.written, nil
}

// Free returns the free space on the spool's file system.
func (s *Spool) Free() (int64, error) { return s.free.available(0) }

// Reserve returns the free space the spool leaves to the store.
func (s *Spool) Reserve() int64 { return s.cfg.Reserve }

// readFull reads exactly len(b) bytes or reports io.ErrUnexpectedEOF.
func readFull(r io.Reader, b []byte) error {
	_, err := io.ReadFull(r, b)
	return err
}

// scanRecords is the records of a frame payload, appended to out.
func scanRecords(out []flow.Record, payload []byte, count uint32) ([]flow.Record, error) {
	d := decoder{b: payload}
	out = d.records(out, int(count))
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return out, d.err
}
