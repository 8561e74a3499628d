package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"flowlog/internal/packet"
	"flowlog/internal/testutil"
)

func corpus(t testing.TB, name string) string {
	return filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap", name)
}

// TestOpenFileMatchesTshark reads pcap and pcapng files and compares the
// packet count and timestamps with tshark's reading.
func TestOpenFileMatchesTshark(t *testing.T) {
	tshark := testutil.Peer(t, "tshark")
	for _, name := range []string{"ovpn.pcap" /* pcapng */, "gre.pcap", "ipv6-udp-fragmented.pcap"} {
		out, err := exec.Command(tshark, "-r", corpus(t, name), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len").Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Split(strings.TrimSpace(string(out)), "\n")
		f, err := OpenFile(corpus(t, name))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		err = f.Run(func(ts time.Time, lt packet.LinkType, frame []byte) {
			if lt != packet.LinkEthernet {
				t.Fatalf("%s: link type %d", name, lt)
			}
			got = append(got, strconv.FormatFloat(float64(ts.UnixNano())/1e9, 'f', 6, 64))
		})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d packets, tshark %d", name, len(got), len(want))
		}
		for i := range got {
			tsw, _ := strconv.ParseFloat(strings.Fields(want[i])[0], 64)
			if got[i] != strconv.FormatFloat(tsw, 'f', 6, 64) {
				t.Fatalf("%s #%d: time %s, tshark %s", name, i+1, got[i], want[i])
			}
		}
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("this is not a capture file"), 0o644)
	if _, err := OpenFile(junk); !errors.Is(err, ErrFormat) {
		t.Errorf("junk: %v", err)
	}
	if _, err := OpenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	// A corrupt length must be an error, not a gigabyte allocation.
	huge := make([]byte, 24+16)
	binary.LittleEndian.PutUint32(huge, 0xa1b2c3d4)
	binary.LittleEndian.PutUint32(huge[16:], 0xffffffff)
	binary.LittleEndian.PutUint32(huge[20:], 1)
	binary.LittleEndian.PutUint32(huge[24+8:], 1<<30)
	hp := filepath.Join(dir, "huge.pcap")
	os.WriteFile(hp, huge, 0o644)
	if f, err := OpenFile(hp); err != nil {
		t.Error(err)
	} else if _, _, _, err := f.Next(); !errors.Is(err, errFrameTooLong) {
		t.Errorf("huge frame: %v", err)
	}
	// A file cut inside its last packet: earlier packets arrive, then an error.
	data, _ := os.ReadFile(corpus(t, "icmp.pcap"))
	cut := filepath.Join(dir, "cut.pcap")
	os.WriteFile(cut, data[:len(data)-10], 0o644)
	f, err := OpenFile(cut)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = f.Run(func(time.Time, packet.LinkType, []byte) { n++ })
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 7 {
		t.Errorf("cut file: %d packets, %v; want 7 and unexpected EOF", n, err)
	}
}

// TestLinkTypes writes files of other link types and a pcapng file with
// two interfaces of different link types.
func TestLinkTypes(t *testing.T) {
	dir := t.TempDir()
	ipPkt := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0}
	for _, lt := range []layers.LinkType{layers.LinkTypeRaw, layers.LinkTypeLinuxSLL, layers.LinkTypeNull, 276} {
		p := filepath.Join(dir, "f.pcap")
		fh, _ := os.Create(p)
		w := pcapgo.NewWriter(fh)
		w.WriteFileHeader(65535, lt)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(ipPkt), Length: len(ipPkt)}, ipPkt)
		fh.Close()
		f, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, got, _, err := f.Next()
		f.Close()
		if err != nil || got != packet.LinkType(lt) {
			t.Errorf("link %d: read %d, %v", lt, got, err)
		}
	}

	p := filepath.Join(dir, "two.pcapng")
	fh, _ := os.Create(p)
	w, err := pcapgo.NewNgWriterInterface(fh, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 65535},
		pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := w.AddInterface(pcapgo.NgInterface{Name: "tun0", LinkType: layers.LinkTypeRaw, SnapLength: 65535})
	eth := append(make([]byte, 12), 0x08, 0x00)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: 42, Length: 42}, append(eth, ipPkt...))
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(2, 0), CaptureLength: 28, Length: 28, InterfaceIndex: raw}, ipPkt)
	w.Flush()
	fh.Close()
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lts []packet.LinkType
	if err := f.Run(func(_ time.Time, lt packet.LinkType, _ []byte) { lts = append(lts, lt) }); err != nil {
		t.Fatal(err)
	}
	if len(lts) != 2 || lts[0] != packet.LinkEthernet || lts[1] != packet.LinkRaw {
		t.Errorf("pcapng link types %v", lts)
	}
}

func TestParseFilter(t *testing.T) {
	prog, err := ParseFilter("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n")
	if err != nil || len(prog) != 4 || prog[1].Op != 0x15 || prog[1].Jf != 1 || prog[1].K != 0x800 {
		t.Fatalf("%v %+v", err, prog)
	}
	for _, bad := range []string{"", "{ 0x28, 0, 0 }", "{ 0x28, 0, 300, 1 }", "{ x, 0, 0, 1 }"} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzFile feeds arbitrary bytes as a capture file: an error or packets,
// never a panic.
func FuzzFile(f *testing.F) {
	for _, name := range []string{"icmp.pcap", "ovpn.pcap"} {
		data, err := os.ReadFile(corpus(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 600)])
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.pcap")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fl, err := OpenFile(p)
		if err != nil {
			return
		}
		var info packet.Info
		var one, batched int
		err1 := fl.Run(func(_ time.Time, lt packet.LinkType, frame []byte) { one++; packet.Decode(lt, frame, &info) })
		fl.Close()
		fl, _ = OpenFile(p)
		err2 := fl.RunBatch(func(frames []packet.Frame) {
			for _, f := range frames {
				batched++
				packet.Decode(f.Link, f.Data, &info)
			}
		})
		fl.Close()
		if one != batched || (err1 == nil) != (err2 == nil) {
			t.Fatalf("Run: %d frames, %v; RunBatch: %d frames, %v", one, err1, batched, err2)
		}
	})
}

// swapPcap rewrites a little-endian pcap file as big-endian.
func swapPcap(le []byte) []byte {
	be := append([]byte{}, le...)
	sw32 := func(b []byte) { b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0] }
	sw16 := func(b []byte) { b[0], b[1] = b[1], b[0] }
	sw32(be[0:])
	sw16(be[4:])
	sw16(be[6:])
	for _, o := range []int{8, 12, 16, 20} {
		sw32(be[o:])
	}
	for off := 24; off+16 <= len(be); {
		caplen := int(binary.LittleEndian.Uint32(le[off+8:]))
		for o := 0; o < 16; o += 4 {
			sw32(be[off+o:])
		}
		off += 16 + caplen
	}
	return be
}

// TestPcapReaderMatchesPcapgo reads every classic pcap of the corpus, and
// big-endian and nanosecond variants, with our reader and with pcapgo.
func TestPcapReaderMatchesPcapgo(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap/*.pcap"))
	dir := t.TempDir()
	var paths []string
	for _, p := range files {
		data, _ := os.ReadFile(p)
		if binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 {
			continue // pcapng
		}
		paths = append(paths, p)
		be := filepath.Join(dir, filepath.Base(p)+".be")
		os.WriteFile(be, swapPcap(data), 0o644)
		paths = append(paths, be)
	}
	// Nanosecond resolution, and frames larger than the read buffer.
	ns := filepath.Join(dir, "ns.pcap")
	fh, _ := os.Create(ns)
	w := pcapgo.NewWriterNanos(fh)
	w.WriteFileHeader(1<<22, layers.LinkTypeEthernet)
	for i, n := range []int{60, 3 << 20, 1500} {
		data := make([]byte, n)
		data[n-1] = byte(i)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, int64(i)*123456789), CaptureLength: n, Length: n}, data)
	}
	fh.Close()
	paths = append(paths, ns)
	if len(paths) < 90 {
		t.Fatalf("only %d files", len(paths))
	}
	for _, p := range paths {
		fh, _ := os.Open(p)
		ref, err := pcapgo.NewReader(fh)
		if err != nil {
			t.Fatalf("%s: pcapgo: %v", p, err)
		}
		f, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; ; i++ {
			wantData, ci, wantErr := ref.ReadPacketData()
			ts, lt, data, err := f.Next()
			if wantErr == io.EOF || err == io.EOF {
				if wantErr != err {
					t.Fatalf("%s #%d: end: %v, pcapgo %v", p, i, err, wantErr)
				}
				break
			}
			if err != nil || wantErr != nil {
				t.Fatalf("%s #%d: %v, pcapgo %v", p, i, err, wantErr)
			}
			if !ts.Equal(ci.Timestamp) || lt != packet.LinkType(ref.LinkType()) || !bytes.Equal(data, wantData) {
				t.Fatalf("%s #%d: frame differs (time %v vs %v, link %d vs %d, %d vs %d bytes)",
					p, i, ts, ci.Timestamp, lt, ref.LinkType(), len(data), len(wantData))
			}
		}
		fh.Close()
		f.Close()
		checkBatches(t, p)
	}
}

// checkBatches reads p with RunBatch and compares each frame with pcapgo's.
func checkBatches(t *testing.T, p string) {
	fh, _ := os.Open(p)
	defer fh.Close()
	ref, _ := pcapgo.NewReader(fh)
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	err = f.RunBatch(func(frames []packet.Frame) {
		for _, fr := range frames {
			n++
			want, ci, err := ref.ReadPacketData()
			if err != nil || fr.TS != ci.Timestamp.UnixNano() || fr.Link != packet.LinkType(ref.LinkType()) || !bytes.Equal(fr.Data, want) {
				t.Fatalf("%s #%d: batch frame differs from pcapgo's (%v)", p, n, err)
			}
		}
	})
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if _, _, err := ref.ReadPacketData(); err != io.EOF {
		t.Fatalf("%s: RunBatch stopped after %d frames", p, n)
	}
}
