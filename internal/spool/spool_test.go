package spool

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/storetest"
)

var id = store.StreamID{Account: "acct/../x", Stream: "ls-1"}

// numbered returns n records whose Bytes count from from.
func numbered(from, n int) []flow.Record {
	recs := storetest.Records(n, time.Hour, uint64(from))
	for i := range recs {
		recs[i].Bytes = uint64(from + i)
	}
	return recs
}

func openSpool(t *testing.T, dir string, cfg Config) *Spool {
	t.Helper()
	cfg.Dir = dir
	if cfg.Reserve == 0 {
		cfg.Reserve = 1 // the test machine's disk may be fuller than the default reserve
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readAll reads what the log holds from position from on.
func readAll(t *testing.T, l *Log, from uint64) ([]flow.Record, uint64) {
	t.Helper()
	r := l.NewReader(from)
	defer r.Close()
	var out []flow.Record
	first := from
	for {
		n := len(out)
		var got uint64
		var err error
		out, got, err = r.Read(out, 7)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && len(out) > 0 {
			first = got
		}
		if len(out) == n {
			return out, first
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	recs := numbered(0, 300)
	recs[1].SrcAddr = netip.MustParseAddr("2001:db8::1")
	recs[1].ExporterAddr = netip.MustParseAddr("::ffff:10.0.0.1")
	recs[2].SrcAddr = netip.Addr{}
	recs[3].FlowLogID = "fl-other"
	recs[4].Action, recs[4].LogStatus = "", "NODATA"
	recs[5].Start, recs[5].End, recs[5].Packets = -5, -1, ^uint64(0)
	recs[6].InputIfIndex, recs[6].OutputIfIndex, recs[6].SamplingInterval = 7, 1<<31, 1000
	recs[7].SrcCountry, recs[7].DstCountry, recs[7].SrcAS, recs[7].DstAS = "DE", "US", 3320, 1<<32-1
	recs[7].SrcASName, recs[7].DstASName, recs[7].InIfName, recs[7].OutIfName = "DTAG", "x", "xe-0/0/1", "ae0"
	recs[7].InIfSpeed, recs[7].OutIfSpeed = 100e9, 1
	recs[8].SrcCountry, recs[8].InIfName = "DE", "xe-0/0/1" // same as before
	buf := appendRecords(nil, recs)
	got, err := scanRecords(nil, buf, uint32(len(recs)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatal("records differ after encoding and decoding")
	}
	for cut := 0; cut < len(buf); cut += 97 { // truncated payloads are errors, not panics
		if _, err := scanRecords(nil, buf[:cut], uint32(len(recs))); err == nil {
			t.Fatalf("payload cut at %d decoded", cut)
		}
	}
}

// TestCodecLayout5: spools written before layout 6 (no extBit) decode,
// with the newer fields empty.
func TestCodecLayout5(t *testing.T) {
	recs := numbered(0, 3)
	for i, r := range recs {
		recs[i] = flow.Record{Version: 5, AccountID: r.AccountID, FlowLogID: r.FlowLogID, SrcAddr: r.SrcAddr,
			Bytes: r.Bytes, End: r.End, Action: r.Action, InputIfIndex: r.InputIfIndex}
	}
	buf := appendRecords(nil, recs)
	// Strip the layout 6 part the way an older flowlog wrote the records.
	var old []byte
	d := decoder{b: buf}
	for range recs {
		start := len(buf) - len(d.b)
		d.b[0] &^= extBit
		d.records(nil, 1)
		d.b = d.b[:len(d.b):len(d.b)]
		old = append(old, buf[start:len(buf)-len(d.b)]...)
		d.ext(&flow.Record{}, &flow.Record{})
	}
	if d.err != nil || len(d.b) != 0 {
		t.Fatalf("re-encoding: %v, %d bytes left", d.err, len(d.b))
	}
	got, err := scanRecords(nil, old, uint32(len(recs)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("layout 5 records differ:\n%+v\n%+v", got, recs)
	}
}

// TestAppendReadReopen: records come back in order across segments and
// after reopening, and a torn last frame is cut off.
func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, Config{SegmentBytes: 4096})
	l, err := s.Log(id, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := numbered(0, 500)
	for i := 0; i < len(want); i += 50 {
		if err := l.Append(want[i : i+50]); err != nil {
			t.Fatal(err)
		}
	}
	if l.End() != 600 {
		t.Fatalf("end %d, want 600", l.End())
	}
	got, first := readAll(t, l, 100)
	if first != 100 || !reflect.DeepEqual(got, want) {
		t.Fatalf("read %d records from %d, want 500 from 100", len(got), first)
	}
	if got, _ := readAll(t, l, 333); len(got) != 267 || got[0].Bytes != 233 {
		t.Fatalf("read from 333: %d records, first bytes %d", len(got), got[0].Bytes)
	}
	used := s.Used()
	l.Close()

	// A torn frame at the end, as a crash mid-write leaves it.
	segs, _ := listSegments(s.dirOf(id))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	last := segs[len(segs)-1].path
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3})
	f.Close()

	s = openSpool(t, dir, Config{SegmentBytes: 4096})
	if ids, _ := s.Pending(); len(ids) != 1 || ids[0] != id {
		t.Fatalf("pending %v, want %v", ids, id)
	}
	l, err = s.Log(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.End() != 600 || s.Used() != used {
		t.Fatalf("after reopen: end %d, used %d; want 600, %d", l.End(), s.Used(), used)
	}
	if err := l.Append(numbered(500, 10)); err != nil {
		t.Fatal(err)
	}
	got, _ = readAll(t, l, 590)
	if len(got) != 20 || got[19].Bytes != 509 {
		t.Fatalf("read past the cut tail: %d records", len(got))
	}
	if err := l.Trim(590); err != nil {
		t.Fatal(err)
	}
	if s.Used() >= used {
		t.Errorf("trim freed nothing: used %d", s.Used())
	}
	if got, first := readAll(t, l, 590); first != 590 || len(got) != 20 {
		t.Errorf("after trim: %d records from %d", len(got), first)
	}
}

// TestStartBeyond: a log that holds only records the store has already
// starts over at the store's position.
func TestStartBeyond(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, Config{})
	l, _ := s.Log(id, 0)
	l.Append(numbered(0, 10))
	l.Close()
	l, err := s.Log(id, 50)
	if err != nil {
		t.Fatal(err)
	}
	if l.End() != 50 || s.Used() != 0 {
		t.Fatalf("end %d used %d, want 50 and 0", l.End(), s.Used())
	}
	l.Append(numbered(0, 5))
	if _, first := readAll(t, l, 50); first != 50 {
		t.Fatalf("first %d, want 50", first)
	}
}

// TestUnplaced: a log opened while the store's position is unknown keeps
// what it holds; a new one numbers from 0 and, across a restart, stays
// unplaced until Place ties its records to the store's position after
// them, for good. A placed log opened so keeps its numbering.
func TestUnplaced(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, Config{})
	l, err := s.LogUnplaced(id)
	if err != nil {
		t.Fatal(err)
	}
	l.Append(numbered(0, 3))
	l.Close()
	l, err = openSpool(t, dir, Config{}).LogUnplaced(id) // a restart
	if err != nil {
		t.Fatal(err)
	}
	if _, placed := l.Offset(); placed || l.End() != 3 {
		t.Fatalf("reopened: placed %v, end %d; want unplaced, 3", placed, l.End())
	}
	if pos, err := l.Place(100); err != nil || pos != 0 {
		t.Fatalf("placed at 100: %d, %v; want 0", pos, err)
	}
	l.Append(numbered(3, 2))
	l.Close()
	s = openSpool(t, dir, Config{})
	l, err = s.Log(id, 101) // the store took one record of the log
	if err != nil {
		t.Fatal(err)
	}
	if off, placed := l.Offset(); !placed || off != 100 || l.End() != 5 {
		t.Fatalf("after a restart: offset %d placed %v end %d; want 100, true, 5", off, placed, l.End())
	}
	if got, first := readAll(t, l, 1); first != 1 || len(got) != 4 || got[0].Bytes != 1 || got[3].Bytes != 4 {
		t.Fatalf("from 1: first %d, %d records", first, len(got))
	}
	l.Close()

	other := store.StreamID{Account: "acct", Stream: "placed"}
	l, _ = s.Log(other, 50)
	l.Append(numbered(0, 2))
	l.Close()
	l, _ = s.LogUnplaced(other)
	if off, placed := l.Offset(); !placed || off != 0 || l.End() != 52 {
		t.Fatalf("a placed log opened unplaced: offset %d placed %v end %d", off, placed, l.End())
	}
	if pos, err := l.Place(60); err != nil || pos != 60 || l.End() != 60 {
		t.Fatalf("placed beyond its records: %d, %v, end %d; want 60, 60", pos, err, l.End())
	}
}

// TestFull: past MaxBytes every log refuses whole appends, and trimming
// makes room again.
func TestFull(t *testing.T) {
	s := openSpool(t, t.TempDir(), Config{MaxBytes: 20000, SegmentBytes: 5000})
	a, _ := s.Log(id, 0)
	b, _ := s.Log(store.StreamID{Account: "acct", Stream: "other"}, 0)
	var err error
	n := 0
	for err == nil {
		if err = a.Append(numbered(n, 20)); err == nil {
			n += 20
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append to a full spool: %v", err)
	}
	if err := b.Append(numbered(0, 20)); !errors.Is(err, ErrFull) {
		t.Fatalf("another stream's append: %v, want ErrFull (one bound for all)", err)
	}
	if a.End() != uint64(n) {
		t.Fatalf("end %d after %d accepted", a.End(), n)
	}
	a.Trim(uint64(n))
	if err := b.Append(numbered(0, 20)); err != nil {
		t.Fatalf("after trim: %v", err)
	}
}

// TestDiskReserve: a reserve larger than the free space refuses records.
func TestDiskReserve(t *testing.T) {
	s := openSpool(t, t.TempDir(), Config{Reserve: 1 << 62})
	l, _ := s.Log(id, 0)
	if err := l.Append(numbered(0, 1)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append under the reserve: %v", err)
	}
	if l.End() != 0 {
		t.Fatal("a refused append moved the end")
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, Config{})
	l, _ := s.Log(id, 0)
	l.Append(numbered(0, 10))
	if err := s.Remove(id); err == nil {
		t.Fatal("removed an open log")
	}
	l.Close()
	if err := s.Remove(id); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.Pending(); len(ids) != 0 || s.Used() != 0 {
		t.Fatalf("after remove: pending %v, used %d", ids, s.Used())
	}
}

// FuzzRecords: a corrupt frame payload is an error, never a panic or a
// huge allocation.
func FuzzRecords(f *testing.F) {
	f.Add(appendRecords(nil, numbered(0, 3)), uint32(3))
	f.Add([]byte{}, uint32(1))
	f.Fuzz(func(t *testing.T, payload []byte, count uint32) {
		recs, err := scanRecords(nil, payload, count%1024)
		if err == nil && len(recs) != int(count%1024) {
			t.Fatalf("%d records decoded, %d asked", len(recs), count%1024)
		}
	})
}
