// Package netflowtest holds test helpers for the NetFlow packages: it wraps
// export payloads in a pcap and reads tshark's decode of them back.
package netflowtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// WritePcap writes payloads as UDP datagrams from 192.0.2.1:40000 to
// 192.0.2.2 on dstPort, one per packet, in a classic Ethernet pcap file.
func WritePcap(path string, payloads [][]byte, dstPort uint16) error {
	ds := make([]Datagram, len(payloads))
	for i, p := range payloads {
		ds[i] = Datagram{Src: 1, SrcPort: 40000, Payload: p}
	}
	return WriteDatagrams(path, ds, dstPort)
}

// Datagram is one UDP payload from 192.0.2.Src:SrcPort.
type Datagram struct {
	Src     byte
	SrcPort uint16
	Payload []byte
}

// WriteDatagrams writes datagrams to 192.0.2.2:dstPort in a pcap file.
func WriteDatagrams(path string, ds []Datagram, dstPort uint16) error {
	frames := make([][]byte, len(ds))
	for i, d := range ds {
		frames[i] = udpFrame(d, dstPort)
	}
	return WriteFrames(path, frames)
}

// WriteFrames writes Ethernet frames, one per packet a second apart, to a
// classic little-endian pcap file.
func WriteFrames(path string, frames [][]byte) error {
	b := binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)                 // time zone, accuracy
	b = binary.LittleEndian.AppendUint32(b, 65535+64) // snap length: any UDP datagram
	b = binary.LittleEndian.AppendUint32(b, 1)        // Ethernet
	for i, f := range frames {
		b = binary.LittleEndian.AppendUint32(b, uint32(1700000000+i))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return os.WriteFile(path, b, 0o644)
}

func udpFrame(d Datagram, port uint16) []byte {
	p := d.Payload
	f := make([]byte, 14+20+8, 42+len(p))
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 1})
	f[12], f[13] = 0x08, 0x00
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(p)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], []byte{192, 0, 2, d.Src})
	copy(ip[16:], []byte{192, 0, 2, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp, d.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], port)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(p)))
	return append(f, p...)
}

// Flow is one flow record as tshark shows it: field name → values (a
// field may repeat, e.g. padding).
type Flow map[string][]string

// Get returns the first value of a field, or "".
func (f Flow) Get(name string) string {
	if v := f[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Packet is one decoded packet: its flows and header fields.
type Packet struct {
	Flows     []Flow
	Header    map[string]string
	Malformed bool // tshark gave up on part of the packet
}

// Tshark decodes the pcap at path as NetFlow/IPFIX on port and returns each
// packet's flows (in no particular order within a packet).
func Tshark(t testing.TB, tshark, path string, port uint16) []Packet {
	t.Helper()
	out := run(t, tshark, "-r", path, "-d", fmt.Sprintf("udp.port==%d,cflow", port), "-T", "json", "--no-duplicate-keys", "-V")
	var pkts []struct {
		Source struct {
			Layers map[string]json.RawMessage `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &pkts); err != nil {
		t.Fatalf("tshark json: %v", err)
	}
	res := make([]Packet, len(pkts))
	for i, p := range pkts {
		var tree any
		if raw, ok := p.Source.Layers["cflow"]; ok {
			json.Unmarshal(raw, &tree)
		}
		res[i].Header = map[string]string{}
		walk(tree, &res[i], nil)
		_, res[i].Malformed = p.Source.Layers["_ws.malformed"]
	}
	return res
}

// TsharkBroken returns tshark's summary lines of the packets it finds
// malformed or with an expert error; empty means none.
func TsharkBroken(t testing.TB, tshark, path string, port uint16) string {
	t.Helper()
	out := run(t, tshark, "-r", path, "-d", fmt.Sprintf("udp.port==%d,cflow", port),
		"-Y", "_ws.malformed || _ws.expert.severity >= error")
	return strings.TrimSpace(string(out))
}

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", name, err, stderr.String())
	}
	return out
}

// walk collects every object whose key starts with "Flow " (tshark's
// per-record subtree) as a Flow, and cflow.* scalars outside flows as
// header fields.
func walk(v any, p *Packet, cur Flow) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, c := range m {
		switch x := c.(type) {
		case map[string]any:
			if strings.HasPrefix(k, "Flow ") || strings.HasPrefix(k, "pdu ") {
				f := Flow{}
				p.Flows = append(p.Flows, f)
				walk(x, p, f)
				continue
			}
			walk(x, p, cur)
		case string:
			if cur != nil {
				cur[k] = append(cur[k], x)
			} else if strings.HasPrefix(k, "cflow.") {
				p.Header[k] = x
			}
		case []any:
			for _, e := range x {
				if s, ok := e.(string); ok && cur != nil {
					cur[k] = append(cur[k], s)
				} else {
					walk(e, p, cur)
				}
			}
		}
	}
}

// HasTemplates says whether an IPFIX message holds a template or options
// template set.
func HasTemplates(msg []byte) bool {
	for off := 16; off+4 <= len(msg); {
		id, l := binary.BigEndian.Uint16(msg[off:]), int(binary.BigEndian.Uint16(msg[off+2:]))
		if id == 2 || id == 3 {
			return true
		}
		if l < 4 {
			return false
		}
		off += l
	}
	return false
}
