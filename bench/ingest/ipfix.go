package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// message is one IPFIX datagram of the recording, indexed so the replay
// can make it current: where its time fields are, how many data records
// it carries (for the sequence numbers) and its latest time.
type message struct {
	raw      []byte
	domain   uint32
	records  int   // data records (what a sequence number counts)
	flows    int   // flow records: data records of templates with flow times
	template bool  // carries a template set
	times    []int // offsets of 8-byte millisecond times (152, 153, 160)
	secs     []int // offsets of 4-byte second times (150, 151)
	addrs    []int // offsets of IPv4 addresses (8, 12)
	latestMS int64
}

// template is what the replay needs of an IPFIX template: the record
// length and the offsets of time fields in a record.
type template struct {
	length     int
	times      []int
	secs       []int
	addrs      []int
	flowRecord bool // has flow start/end times: a flow, not an options record
}

// index parses the recording. Templates are per observation domain; a data
// set whose template has not been seen yet is an error, as are
// variable-length fields (softflowd sends neither).
func index(grams [][]byte) ([]message, error) {
	tmpls := map[[2]uint32]template{} // (domain, template id)
	msgs := make([]message, 0, len(grams))
	for i, g := range grams {
		m, err := indexMessage(g, tmpls)
		if err != nil {
			return nil, fmt.Errorf("datagram %d: %w", i, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func indexMessage(g []byte, tmpls map[[2]uint32]template) (message, error) {
	if len(g) < 16 || binary.BigEndian.Uint16(g) != 10 || int(binary.BigEndian.Uint16(g[2:])) != len(g) {
		return message{}, errors.New("not an IPFIX message")
	}
	m := message{raw: g, domain: binary.BigEndian.Uint32(g[12:])}
	for off := 16; off < len(g); {
		if off+4 > len(g) {
			return m, errors.New("truncated set header")
		}
		id, n := binary.BigEndian.Uint16(g[off:]), int(binary.BigEndian.Uint16(g[off+2:]))
		if n < 4 || off+n > len(g) {
			return m, fmt.Errorf("set %d: bad length %d", id, n)
		}
		body := g[off+4 : off+n]
		switch {
		case id == 2 || id == 3:
			m.template = true
			if err := parseTemplates(body, id == 3, m.domain, tmpls); err != nil {
				return m, err
			}
		case id >= 256:
			t, ok := tmpls[[2]uint32{m.domain, uint32(id)}]
			if !ok {
				return m, fmt.Errorf("data set %d before its template", id)
			}
			for r := 0; r+t.length <= len(body); r += t.length {
				base := off + 4 + r
				for _, o := range t.times {
					m.times = append(m.times, base+o)
				}
				for _, o := range t.secs {
					m.secs = append(m.secs, base+o)
				}
				for _, o := range t.addrs {
					m.addrs = append(m.addrs, base+o)
				}
				m.records++
				if t.flowRecord { // the latest flow time; an options record's times (softflowd's start) do not count
					m.flows++
					for _, o := range t.times {
						m.latestMS = max(m.latestMS, int64(binary.BigEndian.Uint64(g[base+o:])))
					}
					for _, o := range t.secs {
						m.latestMS = max(m.latestMS, 1000*int64(binary.BigEndian.Uint32(g[base+o:])))
					}
				}
			}
		}
		off += n
	}
	return m, nil
}

// parseTemplates reads the template records of a template (or options
// template) set into tmpls.
func parseTemplates(b []byte, options bool, domain uint32, tmpls map[[2]uint32]template) error {
	for len(b) >= 4 {
		id, count := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		b = b[4:]
		if options {
			if len(b) < 2 {
				return errors.New("truncated options template")
			}
			b = b[2:] // scope field count
		}
		var t template
		for range count {
			if len(b) < 4 {
				return fmt.Errorf("template %d: truncated", id)
			}
			ie, size := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
			b = b[4:]
			if ie&0x8000 != 0 { // enterprise number follows
				if len(b) < 4 {
					return fmt.Errorf("template %d: truncated", id)
				}
				b = b[4:]
				ie = 0 // not an IANA time field
			}
			if size == 0xffff {
				return fmt.Errorf("template %d: variable-length field %d is not supported", id, ie)
			}
			switch {
			case (ie == 152 || ie == 153 || ie == 160) && size == 8:
				t.times = append(t.times, t.length)
			case (ie == 150 || ie == 151) && size == 4:
				t.secs = append(t.secs, t.length)
			case (ie == 8 || ie == 12) && size == 4:
				t.addrs = append(t.addrs, t.length)
			case ie >= 21 && ie <= 22, ie >= 154 && ie <= 157:
				return fmt.Errorf("template %d: time field %d is not supported (record with -A milli)", id, ie)
			}
			if ie >= 150 && ie <= 153 {
				t.flowRecord = true
			}
			t.length += size
		}
		if t.length == 0 {
			return fmt.Errorf("template %d: empty", id) // a withdrawal; softflowd sends none
		}
		tmpls[[2]uint32{domain, uint32(id)}] = t
	}
	return nil
}

// stamp writes m into dst made current: its times moved so that its latest
// one is nowMS, its export time now and its sequence number seq.
func (m *message) stamp(dst []byte, nowMS int64, seq uint32) []byte {
	dst = append(dst[:0], m.raw...)
	binary.BigEndian.PutUint32(dst[4:], uint32(nowMS/1000))
	binary.BigEndian.PutUint32(dst[8:], seq)
	shift := nowMS - m.latestMS
	for _, o := range m.times {
		binary.BigEndian.PutUint64(dst[o:], uint64(int64(binary.BigEndian.Uint64(dst[o:]))+shift))
	}
	for _, o := range m.secs {
		binary.BigEndian.PutUint32(dst[o:], uint32(int64(binary.BigEndian.Uint32(dst[o:]))+shift/1000))
	}
	return dst
}

// publicOctets are first octets of public IPv4 space (not 10/8, 100/8,
// 127/8, 169/8, 172/8, 192/8, 198/8, 203/8 or multicast).
var publicOctets = func() []byte {
	var out []byte
	for o := 1; o < 224; o++ {
		switch o {
		case 10, 100, 127, 169, 172, 192, 198, 203:
			continue
		}
		out = append(out, byte(o))
	}
	return out
}()

// makePublic moves the recording's private IPv4 addresses (the synthetic
// capture's 10.x.y.z and 172.16.y.z) into public space, keeping them
// distinct: the first octet is chosen by the other three, the second
// octet of a 172.16 address becomes its third's.
func makePublic(msgs []message) {
	for _, m := range msgs {
		for _, o := range m.addrs {
			a := m.raw[o : o+4]
			if a[0] == 172 {
				a[1] = a[2] ^ 0x5a
			}
			a[0] = publicOctets[(int(a[1])*7+int(a[2])*13+int(a[3]))%len(publicOctets)]
		}
	}
}

// checkSequence reports flow records missing from the recording, by the
// sequence numbers of each observation domain. softflowd 1.1.0 numbers
// differently from RFC 7011 (which the replay follows): a message's number
// counts the flow records sent up to and including it, options records
// not.
func checkSequence(msgs []message) (lost int64) {
	last := map[uint32]uint32{}
	for _, m := range msgs {
		seq := binary.BigEndian.Uint32(m.raw[8:])
		if prev, ok := last[m.domain]; ok && seq != prev+uint32(m.flows) {
			lost += int64(int32(seq - prev - uint32(m.flows)))
		}
		last[m.domain] = seq
	}
	return lost
}
