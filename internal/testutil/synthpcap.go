package testutil

import (
	"bufio"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// SynthWindow is how many flows of WriteSyntheticPcap send at any moment.
const SynthWindow = 20_000

// WriteSyntheticPcap writes the deterministic capture the meter and ingest
// benchmarks use: packets at 1 µs intervals over IPv4 flows (half TCP ending
// with FIN, half UDP) of 1–18 packets each, interleaved across SynthWindow
// concurrent flows (5M packets make about 537k flows). Frames are cut after
// the transport header, as a header-only capture would be; the IP length
// says the real size. It returns the number of flows that sent packets.
func WriteSyntheticPcap(path string, packets int) (flows int, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(128, layers.LinkTypeEthernet); err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(42, 4242))
	type fl struct {
		id, left, sport, dport int
		tcp, sent              bool
	}
	nextID := 0
	newFlow := func() fl {
		nextID++
		return fl{id: nextID, left: 1 + rng.IntN(18), sport: 1024 + rng.IntN(60000),
			dport: []int{53, 80, 443, 123, 8080}[rng.IntN(5)], tcp: rng.IntN(2) == 0}
	}
	window := make([]fl, SynthWindow)
	for i := range window {
		window[i] = newFlow()
	}
	frame := make([]byte, 14+20+20)
	copy(frame, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	t0 := time.Unix(1_700_000_000, 0)
	for n := range packets {
		x := &window[rng.IntN(SynthWindow)]
		x.left--
		if !x.sent {
			x.sent = true
			flows++
		}
		ipLen := 40 + rng.IntN(1460)
		ip := frame[14:]
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
		copy(ip[12:], []byte{10, byte(x.id >> 16), byte(x.id >> 8), byte(x.id)})
		copy(ip[16:], []byte{172, 16, byte(x.id >> 8), byte(x.id)})
		l4 := ip[20:]
		binary.BigEndian.PutUint16(l4, uint16(x.sport))
		binary.BigEndian.PutUint16(l4[2:], uint16(x.dport))
		caplen := 14 + 20 + 8
		if x.tcp {
			ip[9] = 6
			l4[12], l4[13] = 0x50, 0x10 // ACK
			if x.left == 0 {
				l4[13] |= 0x01 // FIN
			}
			caplen = 14 + 20 + 20
		}
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(n) * time.Microsecond),
			CaptureLength: caplen, Length: 14 + ipLen}
		if err := w.WritePacket(ci, frame[:caplen]); err != nil {
			return 0, err
		}
		if x.left == 0 {
			*x = newFlow()
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return flows, f.Close()
}
