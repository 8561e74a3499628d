package capture

import (
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
		defer fl.Close()
		var info packet.Info
		fl.Run(func(_ time.Time, lt packet.LinkType, frame []byte) { packet.Decode(lt, frame, &info) })
	})
}
