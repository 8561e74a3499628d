// Command demopcap writes demo/lab.pcap: two minutes of made-up traffic on a
// small office network (DNS, HTTPS, SSH, ping), the same bytes every run, for
// the README's quick start and for demos of pcap gateways.
//
//	go run ./tools/demopcap -o demo/lab.pcap
package main

import (
	"cmp"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var (
	start   = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	gateway = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dns     = net.IP{192, 0, 2, 53}
	web     = []net.IP{{198, 51, 100, 10}, {198, 51, 100, 20}, {203, 0, 113, 80}}
	ssh     = net.IP{203, 0, 113, 22}
)

// snaplen keeps the file small: headers are all a flow meter reads.
const snaplen = 96

// packet is one frame to write at a time offset.
type packet struct {
	at   time.Duration
	data []byte
}

func main() {
	out := flag.String("o", "demo/lab.pcap", "file to write")
	flag.Parse()
	rng := rand.New(rand.NewPCG(1, 2))
	var pkts []packet
	for host := 10; host < 16; host++ {
		client := net.IP{10, 0, 0, byte(host)}
		for i := 0; i < 8; i++ {
			at := time.Duration(rng.IntN(110_000)) * time.Millisecond
			port := uint16(40000 + host*100 + i)
			pkts = append(pkts, dnsLookup(client, port, at)...)
			pkts = append(pkts, https(rng, client, port+50, web[rng.IntN(len(web))], at+20*time.Millisecond)...)
		}
		pkts = append(pkts, ping(client, net.IP{192, 0, 2, 1}, time.Duration(host)*time.Second, 5)...)
	}
	pkts = append(pkts, https(rng, net.IP{10, 0, 0, 12}, 52022, ssh, 3*time.Second)...)
	if err := write(*out, pkts); err != nil {
		log.Fatal(err)
	}
}

func write(path string, pkts []packet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(snaplen, layers.LinkTypeEthernet); err != nil {
		return err
	}
	slices.SortStableFunc(pkts, func(a, b packet) int { return cmp.Compare(a.at, b.at) })
	for _, p := range pkts {
		data := p.data[:min(len(p.data), snaplen)]
		ci := gopacket.CaptureInfo{Timestamp: start.Add(p.at), CaptureLength: len(data), Length: len(p.data)}
		if err := w.WritePacket(ci, data); err != nil {
			return err
		}
	}
	return nil
}

// frame serializes an Ethernet/IPv4 frame around l4 and payload.
func frame(src, dst net.IP, l4 gopacket.SerializableLayer, payload []byte) []byte {
	mac := func(ip net.IP) net.HardwareAddr {
		if ip[0] == 10 {
			return net.HardwareAddr{0x02, 0, 10, 0, 0, ip[3]}
		}
		return gateway
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src, DstIP: dst}
	switch l := l4.(type) {
	case *layers.TCP:
		ip.Protocol = layers.IPProtocolTCP
		l.SetNetworkLayerForChecksum(ip)
	case *layers.UDP:
		ip.Protocol = layers.IPProtocolUDP
		l.SetNetworkLayerForChecksum(ip)
	case *layers.ICMPv4:
		ip.Protocol = layers.IPProtocolICMPv4
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	eth := &layers.Ethernet{SrcMAC: mac(src), DstMAC: mac(dst), EthernetType: layers.EthernetTypeIPv4}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		panic(fmt.Sprintf("serializing a made-up frame: %v", err))
	}
	return buf.Bytes()
}

func dnsLookup(client net.IP, port uint16, at time.Duration) []packet {
	q := &layers.UDP{SrcPort: layers.UDPPort(port), DstPort: 53}
	a := &layers.UDP{SrcPort: 53, DstPort: layers.UDPPort(port)}
	return []packet{
		{at, frame(client, dns, q, make([]byte, 32))},
		{at + 8*time.Millisecond, frame(dns, client, a, make([]byte, 96))},
	}
}

// https is a TCP connection: handshake, a request, a response of a random
// number of full segments, and the close.
func https(rng *rand.Rand, client net.IP, port uint16, server net.IP, at time.Duration) []packet {
	dport := layers.TCPPort(443)
	if server.Equal(ssh) {
		dport = 22
	}
	up := func(f func(*layers.TCP)) *layers.TCP {
		t := &layers.TCP{SrcPort: layers.TCPPort(port), DstPort: dport, Window: 64240}
		f(t)
		return t
	}
	down := func(f func(*layers.TCP)) *layers.TCP {
		t := &layers.TCP{SrcPort: dport, DstPort: layers.TCPPort(port), Window: 65160}
		f(t)
		return t
	}
	ms := time.Millisecond
	p := []packet{
		{at, frame(client, server, up(func(t *layers.TCP) { t.SYN = true }), nil)},
		{at + 15*ms, frame(server, client, down(func(t *layers.TCP) { t.SYN, t.ACK = true, true }), nil)},
		{at + 30*ms, frame(client, server, up(func(t *layers.TCP) { t.ACK = true }), nil)},
		{at + 31*ms, frame(client, server, up(func(t *layers.TCP) { t.ACK, t.PSH = true, true }), make([]byte, 517))},
	}
	t := at + 50*ms
	for i := 0; i < 2+rng.IntN(30); i++ {
		p = append(p, packet{t, frame(server, client, down(func(t *layers.TCP) { t.ACK = true }), make([]byte, 1448))})
		if i%2 == 1 {
			p = append(p, packet{t + ms, frame(client, server, up(func(t *layers.TCP) { t.ACK = true }), nil)})
		}
		t += 2 * ms
	}
	return append(p,
		packet{t + 10*ms, frame(client, server, up(func(t *layers.TCP) { t.FIN, t.ACK = true, true }), nil)},
		packet{t + 25*ms, frame(server, client, down(func(t *layers.TCP) { t.FIN, t.ACK = true, true }), nil)},
		packet{t + 40*ms, frame(client, server, up(func(t *layers.TCP) { t.ACK = true }), nil)})
}

func ping(src, dst net.IP, at time.Duration, n int) []packet {
	var p []packet
	for i := 0; i < n; i++ {
		req := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: uint16(i)}
		rep := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: 7, Seq: uint16(i)}
		t := at + time.Duration(i)*time.Second
		p = append(p, packet{t, frame(src, dst, req, make([]byte, 56))},
			packet{t + 4*time.Millisecond, frame(dst, src, rep, make([]byte, 56))})
	}
	return p
}
