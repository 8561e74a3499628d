package netflow

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"flowlog/internal/flow"
)

// msg builds v9 or IPFIX messages by hand for tests.
type msg struct {
	version int
	b       []byte
}

func newMsg(version int, exportSecs, sysUp, domain uint32) *msg {
	m := &msg{version: version}
	if version == V9 {
		m.b = binary.BigEndian.AppendUint16(nil, V9)
		m.b = binary.BigEndian.AppendUint16(m.b, 0)
		m.b = binary.BigEndian.AppendUint32(m.b, sysUp)
		m.b = binary.BigEndian.AppendUint32(m.b, exportSecs)
		m.b = binary.BigEndian.AppendUint32(m.b, 0)
		m.b = binary.BigEndian.AppendUint32(m.b, domain)
	} else {
		m.b = binary.BigEndian.AppendUint16(nil, IPFIX)
		m.b = binary.BigEndian.AppendUint16(m.b, 0)
		m.b = binary.BigEndian.AppendUint32(m.b, exportSecs)
		m.b = binary.BigEndian.AppendUint32(m.b, 0)
		m.b = binary.BigEndian.AppendUint32(m.b, domain)
	}
	return m
}

// set appends a set with the given id and body; a v9 header counts sets,
// as some exporters do.
func (m *msg) set(id uint16, body []byte) *msg {
	if m.version == V9 {
		binary.BigEndian.PutUint16(m.b[2:], binary.BigEndian.Uint16(m.b[2:])+1)
	}
	m.b = binary.BigEndian.AppendUint16(m.b, id)
	m.b = binary.BigEndian.AppendUint16(m.b, uint16(4+len(body)))
	m.b = append(m.b, body...)
	return m
}

// tpl encodes a template record (an options template when scope > 0).
func (m *msg) tpl(id uint16, scope int, fields ...Field) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	switch {
	case scope == 0:
		b = binary.BigEndian.AppendUint16(b, uint16(len(fields)))
	case m.version == V9:
		b = binary.BigEndian.AppendUint16(b, uint16(4*scope))
		b = binary.BigEndian.AppendUint16(b, uint16(4*(len(fields)-scope)))
	default:
		b = binary.BigEndian.AppendUint16(b, uint16(len(fields)))
		b = binary.BigEndian.AppendUint16(b, uint16(scope))
	}
	for _, f := range fields {
		id := f.ID
		if f.PEN != 0 {
			id |= 0x8000
		}
		b = binary.BigEndian.AppendUint16(b, id)
		b = binary.BigEndian.AppendUint16(b, f.Len)
		if f.PEN != 0 {
			b = binary.BigEndian.AppendUint32(b, f.PEN)
		}
	}
	return b
}

func (m *msg) done() []byte {
	if m.version == IPFIX {
		binary.BigEndian.PutUint16(m.b[2:], uint16(len(m.b)))
	}
	return m.b
}

func be(n int, v uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, v)
	return b[8-n:]
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var (
	addrA = netip.MustParseAddr("198.51.100.1")
	addrB = netip.MustParseAddr("198.51.100.2")
)

// TestTemplateFeatures covers enterprise fields, variable-length fields
// (short and long form), reduced-size counters, padding and the time
// elements, each with values written by hand.
func TestTemplateFeatures(t *testing.T) {
	const exportSecs = 1_772_366_400 // 2026-03-01T12:00:00Z
	now := time.Unix(exportSecs, 0)
	long := make([]byte, 300)
	cases := []struct {
		name string
		pkt  []byte
		want flow.Record
	}{{
		name: "ipfix enterprise, varlen short+long, reduced counters, padding",
		pkt: func() []byte {
			m := newMsg(IPFIX, exportSecs, 0, 1)
			m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 1, Len: 4}, Field{ID: 2, Len: 2},
				Field{ID: 42, Len: 4, PEN: 29305}, Field{ID: 82, Len: varLen}, Field{ID: 83, Len: varLen},
				Field{ID: 150, Len: 4}, Field{ID: 151, Len: 4}, Field{ID: 4, Len: 1}))
			rec := cat(addrA.AsSlice(), addrB.AsSlice(), be(4, 123456), be(2, 77), be(4, 0xdeadbeef),
				[]byte{3}, []byte("eth"), []byte{255, 1, 44}, long, be(4, exportSecs-10), be(4, exportSecs-1), []byte{17})
			m.set(300, cat(rec, []byte{0, 0, 0})) // 3 bytes of padding
			return m.done()
		}(),
		want: flow.Record{SrcAddr: addrA, DstAddr: addrB, Bytes: 123456, Packets: 77, Protocol: 17, IPVersion: 4,
			Start: (exportSecs - 10) * 1000, End: (exportSecs - 1) * 1000},
	}, {
		name: "ipfix flowStart/EndSysUpTime with systemInitTimeMilliseconds in options data",
		pkt: func() []byte {
			m := newMsg(IPFIX, exportSecs, 0, 1)
			m.set(3, m.tpl(400, 1, Field{ID: 149, Len: 4}, Field{ID: 160, Len: 8}))
			m.set(400, cat(be(4, 1), be(8, (exportSecs-3600)*1000)))
			m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 22, Len: 4}, Field{ID: 21, Len: 4}))
			m.set(300, cat(addrA.AsSlice(), addrB.AsSlice(), be(4, 1000), be(4, 5000)))
			return m.done()
		}(),
		want: flow.Record{SrcAddr: addrA, DstAddr: addrB, IPVersion: 4,
			Start: (exportSecs-3600)*1000 + 1000, End: (exportSecs-3600)*1000 + 5000},
	}, {
		name: "ipfix microseconds and nanoseconds (NTP format)",
		pkt: func() []byte {
			m := newMsg(IPFIX, exportSecs, 0, 1)
			m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 154, Len: 8}, Field{ID: 157, Len: 8}))
			ntp := func(sec uint64, frac uint64) []byte { return be(8, (sec+ntpEpochOffset)<<32|frac) }
			m.set(300, cat(addrA.AsSlice(), addrB.AsSlice(), ntp(exportSecs-2, 1<<31), ntp(exportSecs-1, 1<<30)))
			return m.done()
		}(),
		want: flow.Record{SrcAddr: addrA, DstAddr: addrB, IPVersion: 4,
			Start: (exportSecs-2)*1000 + 500, End: (exportSecs-1)*1000 + 250},
	}, {
		name: "v9 uptime that wrapped between the flow and the export",
		pkt: func() []byte {
			m := newMsg(V9, exportSecs, 1500, 7) // uptime 1.5 s after a wrap
			m.set(0, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 22, Len: 4}, Field{ID: 21, Len: 4}))
			m.set(300, cat(addrA.AsSlice(), addrB.AsSlice(), be(4, 1<<32-500), be(4, 1000)))
			return m.done()
		}(),
		want: flow.Record{SrcAddr: addrA, DstAddr: addrB, IPVersion: 4,
			Start: exportSecs*1000 - 2000, End: exportSecs*1000 - 500},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, res, err := NewSession(SessionConfig{}).Decode(c.pkt, now, nil)
			if err != nil || len(recs) != 1 {
				t.Fatalf("%d records (%+v), %v", len(recs), res, err)
			}
			if recs[0] != c.want {
				t.Errorf("\n got %+v\nwant %+v", recs[0], c.want)
			}
		})
	}
}

// TestSamplingPerSampler: rates from options data are kept per domain and
// per sampler/selector id, from every IE family that carries them.
func TestSamplingPerSampler(t *testing.T) {
	const exportSecs = 1_772_366_400
	now := time.Unix(exportSecs, 0)
	s := NewSession(SessionConfig{})
	// IPFIX domain 1: selector 5 is 1:100 (305/306), selector 6 is 1:1000.
	m := newMsg(IPFIX, exportSecs, 0, 1)
	m.set(3, m.tpl(400, 1, Field{ID: 302, Len: 4}, Field{ID: 305, Len: 4}, Field{ID: 306, Len: 4}))
	m.set(400, cat(be(4, 5), be(4, 1), be(4, 99), be(4, 6), be(4, 1), be(4, 999)))
	m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 302, Len: 4}))
	m.set(300, cat(addrA.AsSlice(), addrB.AsSlice(), be(4, 6), addrA.AsSlice(), addrB.AsSlice(), be(4, 5)))
	recs, _, err := s.Decode(m.done(), now, nil)
	if err != nil || len(recs) != 2 || recs[0].SamplingInterval != 1000 || recs[1].SamplingInterval != 100 {
		t.Fatalf("selectors: %v %+v", err, recs)
	}
	// v9 source 2: sampler 3 at 1:64 (48/49/50), data naming sampler 3 as a
	// one-byte FLOW_SAMPLER_ID; and a record without sampler id takes the
	// only sampler of its domain.
	m = newMsg(V9, exportSecs, 100000, 2)
	m.set(1, m.tpl(401, 1, Field{ID: 1, Len: 4}, Field{ID: 48, Len: 1}, Field{ID: 49, Len: 1}, Field{ID: 50, Len: 4}))
	m.set(401, cat(be(4, 0), []byte{3, 2}, be(4, 64), []byte{0, 0}))
	m.set(0, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 48, Len: 1}))
	m.set(300, cat(addrA.AsSlice(), addrB.AsSlice(), []byte{3}))
	m.set(0, m.tpl(301, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}))
	m.set(301, cat(addrA.AsSlice(), addrB.AsSlice()))
	recs, _, err = s.Decode(m.done(), now, nil)
	if err != nil || len(recs) != 2 || recs[0].SamplingInterval != 64 || recs[1].SamplingInterval != 64 {
		t.Fatalf("v9 sampler: %v %+v", err, recs)
	}
	// Domain 3 of the same exporter has no sampling: the rates stay in
	// their domains.
	m = newMsg(IPFIX, exportSecs, 0, 3)
	m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 302, Len: 4}))
	m.set(300, cat(addrA.AsSlice(), addrB.AsSlice(), be(4, 5)))
	recs, _, err = s.Decode(m.done(), now, nil)
	if err != nil || len(recs) != 1 || recs[0].SamplingInterval != 0 {
		t.Fatalf("unsampled domain: %v %+v", err, recs)
	}
	// Huawei sends samplingInterval (34) in the data records themselves.
	m = newMsg(V9, exportSecs, 100000, 4)
	m.set(0, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4}, Field{ID: 34, Len: 4}))
	m.set(300, cat(addrA.AsSlice(), addrB.AsSlice(), be(4, 512)))
	recs, _, err = s.Decode(m.done(), now, nil)
	if err != nil || len(recs) != 1 || recs[0].SamplingInterval != 512 {
		t.Fatalf("rate in data: %v %+v", err, recs)
	}
}

// TestTemplateErrors: malformed templates and sets are errors.
func TestTemplateErrors(t *testing.T) {
	cases := map[string][]byte{
		"template id below 256": func() []byte {
			m := newMsg(IPFIX, 1, 0, 1)
			return m.set(2, m.tpl(255, 0, Field{ID: 8, Len: 4})).done()
		}(),
		"set longer than the message": func() []byte {
			m := newMsg(IPFIX, 1, 0, 1)
			m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 4}))
			b := m.done()
			binary.BigEndian.PutUint16(b[18:], 200)
			return b
		}(),
		"template cut in its fields": func() []byte {
			m := newMsg(V9, 1, 0, 1)
			return m.set(0, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4})[:8]).done()
		}(),
		"ipfix length beyond the packet": func() []byte {
			b := newMsg(IPFIX, 1, 0, 1).done()
			binary.BigEndian.PutUint16(b[2:], 100)
			return b
		}(),
		"options template with more scope fields than fields": func() []byte {
			m := newMsg(IPFIX, 1, 0, 1)
			t := m.tpl(300, 1, Field{ID: 149, Len: 4})
			binary.BigEndian.PutUint16(t[4:], 2)
			return m.set(3, t).done()
		}(),
		"template of zero-length fields": func() []byte {
			m := newMsg(IPFIX, 1, 0, 1)
			return m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 0})).done()
		}(),
		"unknown version": {0, 8, 0, 0},
	}
	for name, pkt := range cases {
		if _, _, err := NewSession(SessionConfig{}).Decode(pkt, time.Now(), nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestExpiry: a template not re-announced within the TTL is forgotten, and
// a data set held past the pending TTL is dropped and counted.
func TestExpiry(t *testing.T) {
	t0 := time.Unix(1_772_366_400, 0)
	s := NewSession(SessionConfig{TemplateTTL: time.Minute, PendingTTL: 5 * time.Second})
	tplMsg := func() []byte {
		m := newMsg(IPFIX, 1_772_366_400, 0, 1)
		return m.set(2, m.tpl(300, 0, Field{ID: 8, Len: 4}, Field{ID: 12, Len: 4})).done()
	}
	dataMsg := func() []byte {
		m := newMsg(IPFIX, 1_772_366_400, 0, 1)
		return m.set(300, cat(addrA.AsSlice(), addrB.AsSlice())).done()
	}
	s.Decode(tplMsg(), t0, nil)
	if recs, _, _ := s.Decode(dataMsg(), t0.Add(59*time.Second), nil); len(recs) != 1 {
		t.Fatalf("within the TTL: %d records", len(recs))
	}
	recs, res, _ := s.Decode(dataMsg(), t0.Add(61*time.Second), nil)
	if len(recs) != 0 || res.Unknown != 1 {
		t.Fatalf("after the TTL: %d records, %+v", len(recs), res)
	}
	// The set is held; 6 s later it is dropped, so the template that then
	// arrives releases nothing.
	_, res, _ = s.Decode(tplMsg(), t0.Add(67*time.Second), nil)
	if res.Dropped != 1 || res.Records != 0 {
		t.Fatalf("held past its TTL: %+v", res)
	}
}

// TestTemplateLimits: templates over the field or byte budget of a session
// are refused and counted while the rest of the set is learned; replacing
// a template frees its share; a re-announcement is no change.
func TestTemplateLimits(t *testing.T) {
	now := time.Unix(1_772_366_400, 0)
	s := NewSession(SessionConfig{MaxFields: 10, MaxTemplateSize: 60})
	four := []Field{{ID: 8, Len: 4}, {ID: 12, Len: 4}, {ID: 7, Len: 2}, {ID: 11, Len: 2}}
	m := newMsg(IPFIX, 1, 0, 1)
	pkt := m.set(2, cat(m.tpl(300, 0, four...), m.tpl(301, 0, four...), m.tpl(302, 0, four...),
		m.tpl(303, 0, four[:2]...))).done()
	_, res, err := s.Decode(pkt, now, nil)
	if !errors.Is(err, ErrLimit) || res.Refused != 1 || len(s.Templates()) != 3 {
		t.Fatalf("fields over 10: %v, %+v, %d templates", err, res, len(s.Templates()))
	}
	changes := s.Changes()
	if _, res, err = s.Decode(pkt, now.Add(time.Second), nil); res.Refused != 1 || s.Changes() != changes {
		t.Fatalf("re-announced: %v %+v, changes %d → %d", err, res, changes, s.Changes())
	}
	// 300 and 301 shrink to two fields each: 302 fits now (10 fields, 56 bytes).
	m = newMsg(IPFIX, 1, 0, 1)
	pkt = m.set(2, cat(m.tpl(300, 0, four[:2]...), m.tpl(301, 0, four[:2]...), m.tpl(302, 0, four...))).done()
	if _, res, err = s.Decode(pkt, now, nil); err != nil || res.Refused != 0 || len(s.Templates()) != 4 {
		t.Fatalf("after shrinking: %v %+v", err, res)
	}
	// An enterprise field costs 8 bytes: 12 > 10.
	b := NewSession(SessionConfig{MaxTemplateSize: 10})
	m = newMsg(IPFIX, 1, 0, 1)
	pkt = m.set(2, cat(m.tpl(304, 0, Field{ID: 1, Len: 4, PEN: 9}), m.tpl(305, 0, Field{ID: 1, Len: 4}))).done()
	if _, res, err = b.Decode(pkt, now, nil); !errors.Is(err, ErrLimit) || res.Refused != 1 || len(b.Templates()) != 1 {
		t.Fatalf("bytes over 10: %v %+v", err, res)
	}
	// Restoring obeys the same limits.
	r := NewSession(SessionConfig{MaxFields: 4})
	if _, _, err := r.Restore(s.Templates(), now, nil); !errors.Is(err, ErrLimit) || r.fields > 4 || len(r.Templates()) == 0 {
		t.Fatalf("restore over the limit: %v, %d templates", err, len(r.Templates()))
	}
}

// TestRestoreShared covers templates another collector of the exporter
// shared: data sets held for want of their template are decoded once it is
// restored, and of two templates under one id the later announced wins.
func TestRestoreShared(t *testing.T) {
	const exportSecs = 1_772_366_400
	now := time.Unix(exportSecs, 0)
	fields := []Field{{ID: 8, Len: 4}, {ID: 12, Len: 4}, {ID: 2, Len: 4}}
	data := func(m *msg) []byte {
		return m.set(256, cat(addrA.AsSlice(), addrB.AsSlice(), be(4, 7))).done()
	}
	first := NewSession(SessionConfig{})
	if _, _, err := first.Decode(newMsg(IPFIX, exportSecs, 0, 3).set(2, newMsg(IPFIX, 0, 0, 0).tpl(256, 0, fields...)).done(), now, nil); err != nil {
		t.Fatal(err)
	}
	second := NewSession(SessionConfig{})
	recs, res, err := second.Decode(data(newMsg(IPFIX, exportSecs, 0, 3)), now, nil)
	if err != nil || len(recs) != 0 || res.Unknown != 1 {
		t.Fatalf("data before its template: %d records, %+v, %v", len(recs), res, err)
	}
	recs, res, err = second.Restore(first.Templates(), now, nil)
	if err != nil || len(recs) != 1 || res.Records != 1 || recs[0].Packets != 7 || recs[0].SrcAddr != addrA {
		t.Fatalf("held data after the shared template: %+v, %+v, %v", recs, res, err)
	}
	if recs, _, _ = second.Decode(data(newMsg(IPFIX, exportSecs, 0, 3)), now, nil); len(recs) != 1 {
		t.Fatalf("data after the shared template: %d records", len(recs))
	}

	// The exporter redefines 256 on the second collector later: an older
	// share of the first definition does not undo it.
	later := now.Add(time.Minute)
	swapped := []Field{{ID: 12, Len: 4}, {ID: 8, Len: 4}, {ID: 2, Len: 4}}
	if _, _, err := second.Decode(newMsg(IPFIX, exportSecs+60, 0, 3).set(2, newMsg(IPFIX, 0, 0, 0).tpl(256, 0, swapped...)).done(), later, nil); err != nil {
		t.Fatal(err)
	}
	changes := second.Changes()
	if _, _, err := second.Restore(first.Templates(), later, nil); err != nil || second.Changes() != changes {
		t.Fatalf("an older share replaced a later template: %v, changes %d → %d", err, changes, second.Changes())
	}
	if recs, _, _ = second.Decode(data(newMsg(IPFIX, exportSecs+60, 0, 3)), later, nil); len(recs) != 1 || recs[0].SrcAddr != addrB {
		t.Fatalf("decoded with the older template: %+v", recs)
	}
	// ...while a share announced after it does.
	if _, _, err := first.Decode(newMsg(IPFIX, exportSecs+120, 0, 3).set(2, newMsg(IPFIX, 0, 0, 0).tpl(256, 0, fields...)).done(), later.Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := second.Restore(first.Templates(), later.Add(time.Minute), nil); err != nil || second.Changes() == changes {
		t.Fatalf("a later share was not taken: %v", err)
	}
}
