package netflow

import (
	"maps"
	"testing"
	"time"
)

func varStr(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func padded(s string, n int) []byte { return append([]byte(s), make([]byte, n-len(s))...) }

// TestInterfaceNames: interfaceName (82) and interfaceDescription (83) in
// options data name the interface of the record's scope (IPFIX ingress or
// egress interface, the v9 interface scope) or of its ingress interface
// field, over all of an exporter's domains.
func TestInterfaceNames(t *testing.T) {
	const exportSecs = 1_772_366_400
	now := time.Unix(exportSecs, 0)
	s := NewSession(SessionConfig{})
	decode := func(pkt []byte) {
		t.Helper()
		if _, _, err := s.Decode(pkt, now, nil); err != nil {
			t.Fatal(err)
		}
	}
	// IPFIX domain 1: ingressInterface scope, variable-length strings.
	m := newMsg(IPFIX, exportSecs, 0, 1)
	m.set(3, m.tpl(400, 1, Field{ID: 10, Len: 4}, Field{ID: 82, Len: varLen}, Field{ID: 83, Len: varLen}))
	m.set(400, cat(be(4, 3), varStr("ge-0/0/1"), varStr("uplink to isp-1"), be(4, 5), varStr("ge-0/0/3"), varStr("")))
	// egressInterface scope, name only.
	m.set(3, m.tpl(401, 1, Field{ID: 14, Len: 2}, Field{ID: 82, Len: varLen}))
	m.set(401, cat(be(2, 9), varStr("xe-1/0/0")))
	decode(m.done())
	// v9 source 2: the interface scope (type 2), NUL-padded fixed strings.
	m = newMsg(V9, exportSecs, 100000, 2)
	m.set(1, m.tpl(402, 1, Field{ID: v9ScopeInterface, Len: 4}, Field{ID: 82, Len: 16}, Field{ID: 83, Len: 32}))
	m.set(402, cat(be(4, 7), padded("Gi0/7", 16), padded("to core", 32)))
	// System scope with the ifIndex as INPUT_SNMP (10), as some exporters send.
	m.set(1, m.tpl(403, 1, Field{ID: 1, Len: 4}, Field{ID: 10, Len: 4}, Field{ID: 82, Len: 8}))
	m.set(403, cat(be(4, 0), be(4, 8), padded("Gi0/8", 8)))
	decode(m.done())

	want := map[uint32]IfName{
		3: {"ge-0/0/1", "uplink to isp-1"}, 5: {Name: "ge-0/0/3"}, 9: {Name: "xe-1/0/0"},
		7: {"Gi0/7", "to core"}, 8: {Name: "Gi0/8"},
	}
	if got := s.Interfaces(); !maps.Equal(got, want) {
		t.Errorf("\n got %v\nwant %v", got, want)
	}

	// The same names again change nothing; a renamed interface does.
	changes := s.InterfaceChanges()
	m = newMsg(IPFIX, exportSecs, 0, 1)
	m.set(400, cat(be(4, 3), varStr("ge-0/0/1"), varStr("uplink to isp-1")))
	decode(m.done())
	if s.InterfaceChanges() != changes {
		t.Error("a repeated name counted as a change")
	}
	m = newMsg(IPFIX, exportSecs, 0, 1)
	m.set(400, cat(be(4, 3), varStr("ge-0/0/1"), varStr("uplink to isp-2")))
	decode(m.done())
	if s.InterfaceChanges() == changes || s.Interfaces()[3].Description != "uplink to isp-2" {
		t.Errorf("rename not seen: %v", s.Interfaces()[3])
	}
}
