package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"flowlog/internal/flow"
	"flowlog/internal/store"
)

// Log is one stream's log. Appends may come from several goroutines; one
// reader takes the records out in order.
type Log struct {
	sp  *Spool
	id  store.StreamID
	dir string

	mu     sync.Mutex
	segs   []segment // by first position; the last is written to
	w      *os.File  // the last segment, open for appending
	end    uint64    // position of the next record appended
	closed bool
	buf    []byte
	offset uint64 // the store's position of the log's position 0
	placed bool   // offset is known
}

// open recovers the log from its directory: every segment's size is that
// of its valid frames, and a torn frame at the end of the last is cut off.
// A new log starts at start or, not known (nil), at 0, unplaced.
func (l *Log) open(start *uint64) error {
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	for i := range segs {
		end, size, err := scanSegment(segs[i])
		if err != nil {
			return err
		}
		if size != segs[i].size { // a torn or corrupt tail
			if err := os.Truncate(segs[i].path, size); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			l.sp.used.Add(size - segs[i].size)
			segs[i].size = size
		}
		l.end = end
	}
	l.segs = segs
	if err := l.readOffset(); err != nil {
		return err
	}
	if len(segs) == 0 { // new: an offset noted before has no records to apply to
		l.offset, l.placed = 0, start != nil
		if err := l.writeOffset(); err != nil {
			return err
		}
		at := uint64(0)
		if start != nil {
			at = *start
		}
		if err := l.reset(at); err != nil {
			return err
		}
	}
	return l.openLast()
}

// offsetFile, in a log's directory, holds what the store's positions add
// to the log's: "unplaced" while not known (the log was created while the
// store did not answer); no file: 0.
const offsetFile = "offset"

const unplaced = "unplaced"

func (l *Log) readOffset() error {
	b, err := os.ReadFile(filepath.Join(l.dir, offsetFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		l.offset, l.placed = 0, true
		return nil
	case err != nil:
		return fmt.Errorf("spool: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if text == unplaced {
		l.placed = false
		return nil
	}
	l.offset, err = strconv.ParseUint(text, 10, 64)
	if err != nil {
		return fmt.Errorf("spool: %s: %w", filepath.Join(l.dir, offsetFile), err)
	}
	l.placed = true
	return nil
}

// writeOffset notes the offset, or that it is not known, durably: a
// crash leaves the old note or the new one.
func (l *Log) writeOffset() error {
	path := filepath.Join(l.dir, offsetFile)
	if l.placed && l.offset == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		return nil
	}
	text := unplaced
	if l.placed {
		text = strconv.FormatUint(l.offset, 10)
	}
	tmp := filepath.Join(l.dir, offsetFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.WriteString(text + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Place ties the log's numbering to the store's: next is the store's
// position after its last record from this log. An unplaced log's records
// are all new to the store, so they follow next; a placed log's records
// before next are stored, and if all are, the log starts over at next. It
// returns the log's position of the first record the store lacks.
func (l *Log) Place(next uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.placed {
		l.offset, l.placed = next-min(next, l.segs[0].first), true
		if err := l.writeOffset(); err != nil {
			l.placed = false
			return 0, err
		}
	}
	pos := next - min(next, l.offset)
	if l.end < pos { // nothing the store lacks
		if l.w != nil {
			if err := l.w.Close(); err != nil {
				return 0, fmt.Errorf("spool: %w", err)
			}
			l.w = nil
		}
		if err := l.reset(pos); err != nil {
			return 0, err
		}
		if err := l.openLast(); err != nil {
			return 0, err
		}
	}
	return max(pos, l.segs[0].first), nil
}

// Offset returns what the store's positions add to the log's, and false
// while the log is unplaced.
func (l *Log) Offset() (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.offset, l.placed
}

// First returns the position of the first record the log holds.
func (l *Log) First() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[0].first
}

// scanSegment reads a segment's frame headers and checksums, returning
// the position after its last valid frame and that frame's end offset.
func scanSegment(sg segment) (end uint64, size int64, err error) {
	f, err := os.Open(sg.path)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	end = sg.first
	hdr := make([]byte, headerLen)
	var payload []byte
	for {
		if readFull(r, hdr) != nil {
			return end, size, nil
		}
		h := parseHeader(hdr)
		if h.first != end || h.size > maxFrame {
			return end, size, nil
		}
		payload = grow(payload, int(h.size))
		if readFull(r, payload) != nil || frameSum(hdr, payload) != h.crc {
			return end, size, nil
		}
		end += uint64(h.count)
		size += headerLen + int64(h.size)
	}
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// reset drops every segment and starts an empty one at position start.
func (l *Log) reset(start uint64) error {
	for _, sg := range l.segs {
		if err := os.Remove(sg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		l.sp.used.Add(-sg.size)
	}
	l.segs = []segment{{first: start, path: filepath.Join(l.dir, segName(start))}}
	l.end = start
	return nil
}

// openLast opens the last segment for appending.
func (l *Log) openLast() error {
	last := l.segs[len(l.segs)-1]
	f, err := os.OpenFile(last.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	l.w = f
	return nil
}

var zeroHeader [headerLen]byte

// Append spools recs: all of them, or none with an error (ErrFull,
// ErrDiskFull, ErrClosed or the file system's). When it returns nil the
// records are in the file system and survive the process.
func (l *Log) Append(recs []flow.Record) error {
	if len(recs) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	buf := append(l.buf[:0], zeroHeader[:]...)
	buf = appendRecords(buf, recs)
	l.buf = buf
	n := int64(len(buf))
	if l.sp.used.Load()+n > l.sp.cfg.MaxBytes {
		return ErrFull
	}
	if free, err := l.sp.free.available(n); err != nil {
		return fmt.Errorf("spool: %w", err)
	} else if free < l.sp.cfg.Reserve {
		return ErrDiskFull
	}
	binary.LittleEndian.PutUint32(buf, uint32(n-headerLen))
	binary.LittleEndian.PutUint64(buf[8:], l.end)
	binary.LittleEndian.PutUint32(buf[16:], uint32(len(recs)))
	binary.LittleEndian.PutUint32(buf[4:], frameSum(buf[:headerLen], buf[headerLen:]))
	if err := l.roll(); err != nil {
		return err
	}
	last := &l.segs[len(l.segs)-1]
	if _, err := l.w.Write(buf); err != nil {
		// Cut what was written off, so the next frame follows the
		// last good one; if that fails, start a new segment.
		if l.w.Truncate(last.size) != nil {
			l.w.Close()
			l.w = nil
		}
		return fmt.Errorf("spool: %w", err)
	}
	last.size += n
	l.sp.used.Add(n)
	l.end += uint64(len(recs))
	return nil
}

// roll starts a new segment when the last is full (or unwritable).
func (l *Log) roll() error {
	last := l.segs[len(l.segs)-1]
	if l.w != nil && last.size < l.sp.cfg.SegmentBytes {
		return nil
	}
	if l.w != nil {
		if err := l.w.Close(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		l.w = nil
	}
	if last.first == l.end && last.size == 0 { // empty: reuse it
		if err := os.Truncate(last.path, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		return l.openLast()
	}
	l.segs = append(l.segs, segment{first: l.end, path: filepath.Join(l.dir, segName(l.end))})
	return l.openLast()
}

// End returns the position after the last record spooled.
func (l *Log) End() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

// Trim deletes the segments whose records all come before position next:
// they are stored.
func (l *Log) Trim(next uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.segs) > 1 && l.segs[1].first <= next {
		if err := os.Remove(l.segs[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		l.sp.used.Add(-l.segs[0].size)
		l.segs = l.segs[1:]
	}
	if next >= l.end && l.segs[0].size > 0 && l.w != nil { // all stored: start the last segment over
		if err := l.w.Close(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		l.w = nil
		if err := l.reset(l.end); err != nil {
			return err
		}
		return l.openLast()
	}
	return nil
}

// Close closes the log; what it holds stays on disk.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.sp.mu.Lock()
	delete(l.sp.logs, l.id)
	l.sp.mu.Unlock()
	if l.w != nil {
		return l.w.Close()
	}
	return nil
}

// Reader reads a log in order from a position on.
type Reader struct {
	l         *Log
	next      uint64 // position of the next record to return
	seg       segment
	f         *os.File
	r         *bufio.Reader
	off       int64 // offset in f of the next frame
	hdr       []byte
	payload   []byte
	pending   []flow.Record // decoded, not yet returned
	pendingAt uint64        // position of pending[0]
	skip      bool          // the open segment was finished: go past it
	err       error
}

// NewReader reads from position next on.
func (l *Log) NewReader(next uint64) *Reader {
	return &Reader{l: l, next: next, hdr: make([]byte, headerLen)}
}

// Read appends up to max records from the reader's position to out and
// returns them with the position of the first. It returns fewer (maybe
// none) when the log holds no more yet, and stops before a gap in the
// positions (records the spool lost), so that the records returned are
// numbered from first on without a hole.
func (r *Reader) Read(out []flow.Record, max int) ([]flow.Record, uint64, error) {
	start := len(out)
	if r.err != nil { // the log cannot be read past this point
		return out, r.next, r.err
	}
	for len(out)-start < max {
		if len(r.pending) == 0 {
			ok, err := r.frame()
			if err != nil || !ok {
				break
			}
			continue
		}
		if r.pendingAt != r.next { // a gap
			if len(out) > start {
				break
			}
			r.next = r.pendingAt
		}
		n := min(max-(len(out)-start), len(r.pending))
		out = append(out, r.pending[:n]...)
		r.pending = r.pending[n:]
		r.next += uint64(n)
		r.pendingAt = r.next
	}
	return out, r.next - uint64(len(out)-start), r.err
}

// frame decodes the next frame holding records at or after r.next into
// pending; false when the log holds nothing more yet or on an error,
// which is kept in r.err.
func (r *Reader) frame() (bool, error) {
	r.l.mu.Lock()
	end, segs := r.l.end, slices.Clone(r.l.segs) // Append grows the last one's size
	r.l.mu.Unlock()
	for r.next < end {
		if r.err = r.seek(segs); r.err != nil {
			return false, r.err
		}
		if r.off >= r.seg.size { // this segment is done: the next holds r.next
			if r.seg.path == segs[len(segs)-1].path {
				r.err = fmt.Errorf("spool: %s ends before position %d", r.seg.path, r.next)
				return false, r.err
			}
			r.close()
			r.skip = true
			continue
		}
		h, err := r.readFrame()
		if err != nil {
			r.err = err
			return false, err
		}
		if h.first+uint64(h.count) <= r.next {
			continue
		}
		recs, err := scanRecords(r.pending[:0], r.payload, h.count)
		if err != nil {
			r.err = fmt.Errorf("spool: %s: %w", r.seg.path, err)
			return false, r.err
		}
		r.pending, r.pendingAt = recs, h.first
		if h.first < r.next {
			r.pending, r.pendingAt = recs[r.next-h.first:], r.next
		}
		return true, nil
	}
	return false, nil
}

// readFrame reads and checks the frame at r.off.
func (r *Reader) readFrame() (frameHeader, error) {
	if err := readFull(r.r, r.hdr); err != nil {
		return frameHeader{}, fmt.Errorf("spool: read %s: %w", r.seg.path, err)
	}
	h := parseHeader(r.hdr)
	if h.size > maxFrame {
		return h, fmt.Errorf("spool: %s: corrupt frame at %d", r.seg.path, r.off)
	}
	r.payload = grow(r.payload, int(h.size))
	if err := readFull(r.r, r.payload); err != nil {
		return h, fmt.Errorf("spool: read %s: %w", r.seg.path, err)
	}
	if frameSum(r.hdr, r.payload) != h.crc {
		return h, fmt.Errorf("spool: %s: checksum mismatch at %d", r.seg.path, r.off)
	}
	r.off += headerLen + int64(h.size)
	return h, nil
}

// seek opens the segment holding r.next if none is open (after a
// finished one, the one after it), and refreshes the size of the open
// one: the last segment grows.
func (r *Reader) seek(segs []segment) error {
	if r.f != nil {
		for _, sg := range segs {
			if sg.path == r.seg.path {
				r.seg.size = sg.size
			}
		}
		return nil
	}
	i := len(segs) - 1
	for i > 0 && segs[i].first > r.next {
		i--
	}
	if r.skip && segs[i].path == r.seg.path && i+1 < len(segs) {
		i++
	}
	r.skip = false
	f, err := os.Open(segs[i].path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	r.seg, r.f, r.off = segs[i], f, 0
	if r.r == nil {
		r.r = bufio.NewReaderSize(f, 1<<20)
	} else {
		r.r.Reset(f)
	}
	return nil
}

func (r *Reader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Close releases the reader's file.
func (r *Reader) Close() { r.close() }
