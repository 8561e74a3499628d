package packet

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"flowlog/internal/testutil"
)

// corpusFrames reads every Ethernet frame of the flowtest corpus.
func corpusFrames(t testing.TB) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap/*.pcap"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus pcaps: %v", err)
	}
	out := map[string][][]byte{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var magic [4]byte
		if _, err := fh.ReadAt(magic[:], 0); err != nil {
			t.Fatal(err)
		}
		var r interface {
			ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
			LinkType() layers.LinkType
		}
		if binary.BigEndian.Uint32(magic[:]) == 0x0a0d0d0a {
			r, err = pcapgo.NewNgReader(fh, pcapgo.DefaultNgReaderOptions)
		} else {
			r, err = pcapgo.NewReader(fh)
		}
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if r.LinkType() != layers.LinkTypeEthernet {
			t.Fatalf("%s: link type %v", f, r.LinkType())
		}
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], data)
		}
		fh.Close()
	}
	return out
}

// reference decodes a frame with gopacket into the fields Decode returns:
// the outermost IP header, the IPv6 extension chain after it, and the
// transport header right after that chain.
func reference(frame []byte) (Info, bool) {
	var want Info
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ls := p.Layers()
	i := 0
	for ; i < len(ls); i++ {
		if d, ok := ls[i].(*layers.Dot1Q); ok && want.VLAN == 0 {
			want.VLAN = d.VLANIdentifier
		}
		if ls[i].LayerType() == layers.LayerTypeIPv4 || ls[i].LayerType() == layers.LayerTypeIPv6 {
			break
		}
	}
	if i == len(ls) {
		return want, false
	}
	switch ip := ls[i].(type) {
	case *layers.IPv4:
		want.IPVersion = 4
		copy(want.Src[:], ip.SrcIP.To4())
		copy(want.Dst[:], ip.DstIP.To4())
		want.Protocol = uint8(ip.Protocol)
		want.TOS = ip.TOS
		want.IPLen = uint32(ip.Length)
		if ip.FragOffset != 0 {
			want.Frag, want.FragID = LaterFragment, uint32(ip.Id)
		} else if ip.Flags&layers.IPv4MoreFragments != 0 {
			want.Frag, want.FragID = FirstFragment, uint32(ip.Id)
		}
	case *layers.IPv6:
		want.IPVersion = 6
		copy(want.Src[:], ip.SrcIP)
		copy(want.Dst[:], ip.DstIP)
		want.Protocol = uint8(ip.NextHeader)
		want.TOS = ip.TrafficClass
		want.IPLen = uint32(40 + int(ip.Length))
	}
	for i++; i < len(ls); i++ {
		switch e := ls[i].(type) {
		case *layers.IPv6HopByHop:
			want.Protocol = uint8(e.NextHeader)
			continue
		case *layers.IPv6Routing:
			want.Protocol = uint8(e.NextHeader)
			continue
		case *layers.IPv6Destination:
			want.Protocol = uint8(e.NextHeader)
			continue
		case *layers.IPSecAH:
			want.Protocol = uint8(e.NextHeader)
			continue
		case *layers.IPv6Fragment:
			want.Protocol = uint8(e.NextHeader)
			want.FragID = e.Identification
			if e.FragmentOffset != 0 {
				want.Frag = LaterFragment
				return want, true
			}
			if e.MoreFragments {
				want.Frag = FirstFragment
			}
			continue
		case *gopacket.Fragment:
			// gopacket leaves a first fragment's transport header undecoded;
			// decode it on its own, as the meter needs its ports.
			if want.Frag == FirstFragment {
				lt := map[uint8]gopacket.LayerType{6: layers.LayerTypeTCP, 17: layers.LayerTypeUDP}[want.Protocol]
				if lt != 0 {
					sub := gopacket.NewPacket(*e, lt, gopacket.Default).Layers()
					if len(sub) > 0 {
						ls = append(ls[:i+1], sub...)
						continue
					}
				}
			}
		case *gopacket.DecodeFailure:
			// gopacket does not know the Mobility header (135) as an IPv6
			// extension header; its first byte is the next header (59 here).
			if want.Protocol == 135 && len(e.LayerContents()) > 0 {
				want.Protocol = e.LayerContents()[0]
			}
		case *layers.TCP:
			want.SrcPort, want.DstPort = uint16(e.SrcPort), uint16(e.DstPort)
			f := uint16(0)
			for bit, set := range []bool{e.FIN, e.SYN, e.RST, e.PSH, e.ACK, e.URG, e.ECE, e.CWR, e.NS} {
				if set {
					f |= 1 << bit
				}
			}
			want.TCPFlags = f
		case *layers.UDP:
			want.SrcPort, want.DstPort = uint16(e.SrcPort), uint16(e.DstPort)
		case *layers.ICMPv4:
			want.ICMPType, want.ICMPCode = e.TypeCode.Type(), e.TypeCode.Code()
			want.DstPort = uint16(e.TypeCode)
		case *layers.ICMPv6:
			want.ICMPType, want.ICMPCode = e.TypeCode.Type(), e.TypeCode.Code()
			want.DstPort = uint16(e.TypeCode)
		}
		break
	}
	return want, true
}

// TestDecodeMatchesGopacket decodes every frame of the corpus both ways.
func TestDecodeMatchesGopacket(t *testing.T) {
	n := 0
	for name, frames := range corpusFrames(t) {
		for i, fr := range frames {
			want, isIP := reference(fr)
			var got Info
			err := Decode(LinkEthernet, fr, &got)
			if !isIP {
				if !errors.Is(err, ErrNotIP) {
					t.Errorf("%s #%d: gopacket finds no IP, Decode says %v", name, i+1, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s #%d: %v", name, i+1, err)
				continue
			}
			if got != want {
				t.Errorf("%s #%d:\n got %+v\nwant %+v", name, i+1, got, want)
			}
			n++
		}
	}
	if n < 500 {
		t.Fatalf("only %d IP frames compared", n)
	}
}

// reframe rewraps the IP packet of an untagged Ethernet frame in another
// link type's framing.
func reframe(lt LinkType, eth []byte) []byte {
	et, ip := eth[12:14], eth[14:]
	var h []byte
	switch lt {
	case LinkRaw, LinkIPv4, LinkIPv6:
	case LinkLinuxSLL:
		h = make([]byte, 16)
		binary.BigEndian.PutUint16(h[12:], 6)
		copy(h[14:], et)
	case LinkLinuxSLL2:
		h = make([]byte, 20)
		copy(h[0:], et)
		binary.BigEndian.PutUint16(h[8:], 1)
	case LinkNull:
		h = make([]byte, 4)
		fam := uint32(2)
		if ip[0]>>4 == 6 {
			fam = 10
		}
		binary.LittleEndian.PutUint32(h, fam)
	case LinkLoop:
		h = make([]byte, 4)
		fam := uint32(2)
		if ip[0]>>4 == 6 {
			fam = 24
		}
		binary.BigEndian.PutUint32(h, fam)
	}
	return append(h, ip...)
}

func TestDecodeLinkTypes(t *testing.T) {
	frames := corpusFrames(t)
	for _, lt := range []LinkType{LinkRaw, LinkIPv4, LinkLinuxSLL, LinkLinuxSLL2, LinkNull, LinkLoop} {
		n := 0
		for name, fs := range frames {
			for i, fr := range fs {
				if binary.BigEndian.Uint16(fr[12:]) != etherIPv4 && binary.BigEndian.Uint16(fr[12:]) != etherIPv6 {
					continue
				}
				var want, got Info
				if Decode(LinkEthernet, fr, &want) != nil {
					continue
				}
				if err := Decode(lt, reframe(lt, fr), &got); err != nil || got != want {
					t.Fatalf("link %d, %s #%d: %v\n got %+v\nwant %+v", lt, name, i+1, err, got, want)
				}
				n++
			}
		}
		if n == 0 {
			t.Fatalf("link %d: nothing compared", lt)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	ipv4 := []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	cases := []struct {
		name  string
		lt    LinkType
		frame []byte
		want  error
	}{
		{"short ethernet", LinkEthernet, make([]byte, 13), ErrTruncated},
		{"arp", LinkEthernet, append(make([]byte, 12), 0x08, 0x06, 0, 1), ErrNotIP},
		{"vlan cut", LinkEthernet, append(make([]byte, 12), 0x81, 0x00, 0), ErrTruncated},
		{"ipv4 header cut", LinkRaw, ipv4[:19], ErrTruncated},
		{"ipv4 ihl < 5", LinkRaw, append([]byte{0x44}, ipv4[1:]...), ErrMalformed},
		{"tcp header missing", LinkRaw, ipv4, ErrTruncated},
		{"ipv6 cut", LinkRaw, append([]byte{0x60}, make([]byte, 30)...), ErrTruncated},
		{"version 5", LinkRaw, []byte{0x50, 0, 0}, ErrNotIP},
		{"empty", LinkRaw, nil, ErrTruncated},
		{"unknown link", LinkType(9999), ipv4, ErrUnsupported},
		{"mpls endless", LinkEthernet, append(append(make([]byte, 12), 0x88, 0x47), make([]byte, 100)...), ErrMalformed},
		{"loopback other family", LinkNull, []byte{7, 0, 0, 0, 0x45}, ErrNotIP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var info Info
			if err := Decode(c.lt, c.frame, &info); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestDecodeAllocs(t *testing.T) {
	frames := corpusFrames(t)["tls12.pcap"]
	var info Info
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			_ = Decode(LinkEthernet, f, &info)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	for _, fs := range corpusFrames(f) {
		f.Add(uint16(LinkEthernet), fs[0])
	}
	f.Add(uint16(LinkRaw), []byte{0x60, 0, 0, 0, 0, 8, 44, 64})
	f.Fuzz(func(t *testing.T, lt uint16, frame []byte) {
		var info Info
		err := Decode(LinkType(lt), frame, &info)
		if err == nil && info.IPVersion != 4 && info.IPVersion != 6 {
			t.Fatalf("no error but IP version %d", info.IPVersion)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	// tls12.pcap's frames carry an 802.1Q tag, http_get.pcap's none.
	for _, name := range []string{"tls12.pcap", "http_get.pcap"} {
		b.Run(name, func(b *testing.B) {
			frames := corpusFrames(b)[name]
			var info Info
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_ = Decode(LinkEthernet, frames[i%len(frames)], &info)
			}
		})
	}
}

// TestDecodeIPv4Options checks a header with options (IHL > 5) and a QinQ
// stack built by gopacket, against gopacket's own decoding.
func TestDecodeIPv4Options(t *testing.T) {
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv4{Version: 4, TTL: 9, TOS: 0x2e, Protocol: layers.IPProtocolUDP,
		SrcIP: []byte{192, 0, 2, 1}, DstIP: []byte{198, 51, 100, 2},
		Options: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6), EthernetType: layers.EthernetTypeQinQ},
		&layers.Dot1Q{VLANIdentifier: 300, Type: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload([]byte("abcd")))
	if err != nil {
		t.Fatal(err)
	}
	var got Info
	if err := Decode(LinkEthernet, buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want, _ := reference(buf.Bytes())
	if got != want || got.IPLen != 24+8+4 || got.SrcPort != 5353 || got.VLAN != 300 {
		t.Fatalf("\n got %+v\nwant %+v", got, want)
	}
}
