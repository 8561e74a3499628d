package netflow

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"flowlog/internal/flow"
	"flowlog/internal/netflow/netflowtest"
	"flowlog/internal/testutil"
)

// ethernetFrames reads the frames of a classic little-endian Ethernet pcap,
// or returns nil for any other kind of file.
func ethernetFrames(t *testing.T, path string) [][]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		return nil
	}
	var frames [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		frames = append(frames, b[off:off+n])
		off += n
	}
	return frames
}

// TestSampledHeaderMatchesTshark decodes every frame of the FlowTest
// captures as an sFlow sampled header would carry it and compares the
// addresses, ports, IPv4 protocol and IP length with tshark's decode of
// the same frames (reassembly off, outermost headers).
func TestSampledHeaderMatchesTshark(t *testing.T) {
	tshark := testutil.Peer(t, "tshark")
	files, _ := filepath.Glob(filepath.Join(testutil.SharedDir(t), "testdata", "flowtest", "pcap", "*.pcap"))
	// One capture of every Ethernet frame, so tshark runs once.
	var frames [][]byte
	for _, f := range files {
		frames = append(frames, ethernetFrames(t, f)...)
	}
	all := filepath.Join(t.TempDir(), "frames.pcap")
	if err := netflowtest.WriteFrames(all, frames); err != nil {
		t.Fatal(err)
	}
	compared, tsharkIP := 0, 0
	out, err := exec.Command(tshark, "-r", all, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-T", "fields", "-E", "occurrence=f", "-E", "separator=|",
		"-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
		"-e", "ip.proto", "-e", "ip.len", "-e", "ipv6.plen", "-e", "mpls.label", "-e", "pppoe.session_id").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(frames) {
		t.Fatalf("tshark %d frames, pcap %d", len(lines), len(frames))
	}
	for i, line := range lines {
		v := strings.Split(line, "|")
		if v[0] == "" && v[2] == "" || v[11] != "" || v[12] != "" {
			continue // not IP, or IP behind MPLS/PPPoE, which this decoder leaves out
		}
		tsharkIP++
		var r flow.Record
		ipLen, err := decodeSampledHeader(hdrEthernet, frames[i], &r)
		if err != nil {
			t.Errorf("frame %d: %v", i+1, err)
			continue
		}
		src, dst, length, proto := v[0], v[1], v[9], v[8]
		if src == "" {
			src, dst, proto = v[2], v[3], ""
			if v[10] != "" {
				var pl int
				fmt.Sscan(v[10], &pl)
				length = fmt.Sprint(pl + 40)
			}
		}
		sport, dport := v[4]+v[6], v[5]+v[7]
		if sport == "" {
			sport, dport = "0", "0"
		}
		want := fmt.Sprintf("%s>%s %s>%s p%s len=%s", src, dst, sport, dport, proto, length)
		gotProto := fmt.Sprint(r.Protocol)
		if proto == "" {
			gotProto = ""
		}
		got := fmt.Sprintf("%v>%v %d>%d p%s len=%d", r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, gotProto, ipLen)
		if got != want {
			t.Errorf("frame %d:\n got %s\nwant %s", i+1, got, want)
		}
		compared++
	}
	if compared == 0 || compared != tsharkIP {
		t.Fatalf("compared %d of %d IP frames", compared, tsharkIP)
	}
	t.Logf("%d frames compared", compared)
}
