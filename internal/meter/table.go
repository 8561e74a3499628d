package meter

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"flowlog/internal/packet"
)

// key identifies a unidirectional flow: the fields packet.Decode fills.
// ICMP type and code travel in DstPort.
type key = packet.Key

// entry is one flow in the cache: one 64-byte cache line, plus 4 bytes in
// the bucket array and 4 in the chain array. A free entry has ipv 0.
type entry struct {
	packet.Key
	bytes       uint64
	packets     uint32 // a record is cut before it overflows
	first, last uint32 // ms since the meter's epoch: first and last packet of the record
	tcpFlags    uint16
	tos         uint8
	_           uint8
}

func (e *entry) used() bool { return e.IPVersion != 0 }

func (e *entry) reset(now uint32) {
	e.packets, e.bytes, e.tcpFlags = 0, 0, 0
	e.first, e.last = now, now
}

// table is a chained hash table whose entries live in one slice, so a flow
// costs no allocation of its own and freed slots are reused.
type table struct {
	buckets []uint32 // index+1 of the first entry of each chain
	mask    uint64
	entries []entry
	next    []uint32 // next entry in each entry's hash chain, index+1; 0 ends it
	free    []uint32 // freed entry indexes
	n, max  int
	seed    uint64
	cursor  int // where the eviction search resumes
}

func newTable(maxFlows int, seed uint64) table {
	const size = 1024
	return table{
		buckets: make([]uint32, size),
		mask:    uint64(size - 1),
		max:     maxFlows,
		seed:    seed ^ 0x243f6a8885a308d3,
	}
}

// grow doubles the bucket array when flows outnumber buckets, so the array
// stays as small as the cache's content allows (it is touched at random).
func (t *table) grow() {
	size := 2 * len(t.buckets)
	t.buckets = make([]uint32, size)
	t.mask = uint64(size - 1)
	for i := range t.entries {
		if e := &t.entries[i]; e.used() {
			b := &t.buckets[t.hash(&e.Key)&t.mask]
			t.next[i] = *b
			*b = uint32(i) + 1
		}
	}
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (t *table) hash(k *key) uint64 {
	const c1, c2, c3 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3
	le := binary.LittleEndian
	ports := uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.VLAN)<<32 | uint64(k.Protocol)<<48 | uint64(k.IPVersion)<<56
	h := mix(le.Uint64(k.Src[0:])^t.seed, le.Uint64(k.Dst[0:])^c1)
	if k.IPVersion != 4 { // IPv4 addresses fit in the first words
		h ^= mix(le.Uint64(k.Src[8:])^c2, le.Uint64(k.Dst[8:])^c3)
	}
	return mix(h^ports, c1)
}

func (t *table) full() bool { return t.n >= t.max }

// equal compares two keys word by word, cheaper than a call to the
// runtime's memory comparison for a 40-byte struct.
func equal(k, o *key) bool {
	le := binary.LittleEndian
	return le.Uint64(k.Src[0:]) == le.Uint64(o.Src[0:]) && le.Uint64(k.Dst[0:]) == le.Uint64(o.Dst[0:]) &&
		le.Uint64(k.Src[8:]) == le.Uint64(o.Src[8:]) && le.Uint64(k.Dst[8:]) == le.Uint64(o.Dst[8:]) &&
		k.SrcPort == o.SrcPort && k.DstPort == o.DstPort && k.VLAN == o.VLAN && k.Protocol == o.Protocol && k.IPVersion == o.IPVersion
}

// find returns the index of k's entry; h is k's hash.
func (t *table) find(k *key, h uint64) (uint32, bool) {
	for i := t.buckets[h&t.mask]; i != 0; i = t.next[i-1] {
		if equal(&t.entries[i-1].Key, k) {
			return i - 1, true
		}
	}
	return 0, false
}

// warmBucket loads the bucket of hash h ahead of its lookup (see FeedBatch).
func (t *table) warmBucket(h uint64) uint32 { return t.buckets[h&t.mask] }

// warmEntry loads the first entry of a bucket's chain ahead of its lookup.
func (t *table) warmEntry(b uint32) uint32 {
	if b == 0 || int(b) > len(t.entries) {
		return 0
	}
	return t.entries[b-1].first
}

// insert adds a new flow for k (hash h), first seen at now.
func (t *table) insert(k *key, h uint64, now uint32) uint32 {
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.entries = append(t.entries, entry{})
		t.next = append(t.next, 0)
		i = uint32(len(t.entries) - 1)
	}
	if t.n >= len(t.buckets) {
		t.grow()
	}
	b := &t.buckets[h&t.mask]
	t.entries[i] = entry{Key: *k, first: now, last: now}
	t.next[i] = *b
	*b = i + 1
	t.n++
	return i
}

// remove unlinks entry i and frees its slot.
func (t *table) remove(i uint32) { t.removeHashed(i, t.hash(&t.entries[i].Key)) }

// removeHashed is remove when the entry's hash h is at hand.
func (t *table) removeHashed(i uint32, h uint64) {
	e := &t.entries[i]
	p := &t.buckets[h&t.mask]
	for *p != i+1 {
		p = &t.next[*p-1]
	}
	*p = t.next[i]
	*e = entry{}
	t.free = append(t.free, i)
	t.n--
}

// victim picks the flow to evict from a full cache: the least recently
// seen of the next few flows after a rotating cursor.
func (t *table) victim() uint32 {
	best, seen := -1, 0
	for seen < 8 {
		t.cursor++
		if t.cursor >= len(t.entries) {
			t.cursor = 0
		}
		e := &t.entries[t.cursor]
		if !e.used() {
			continue
		}
		if best < 0 || e.last < t.entries[best].last {
			best = t.cursor
		}
		seen++
	}
	return uint32(best)
}

func netipFrom4(a [16]byte) netip.Addr  { return netip.AddrFrom4([4]byte(a[:4])) }
func netipFrom16(a [16]byte) netip.Addr { return netip.AddrFrom16(a) }

// fragTable remembers the ports of first fragments so that later
// fragments, which carry no transport header, join the same flow.
type fragTable struct {
	slots [4096]fragEntry
}

type fragEntry struct {
	src, dst     [16]byte
	id           uint32
	proto, ipv   uint8
	sport, dport uint16
	ts           int64
}

// fragMaxAge bounds how long a first fragment's ports are remembered.
const fragMaxAge = int64(30e9)

func (f *fragTable) slot(k *key, id uint32) *fragEntry {
	le := binary.LittleEndian
	h := mix(le.Uint64(k.Src[0:])^le.Uint64(k.Src[8:])^uint64(id), le.Uint64(k.Dst[0:])^le.Uint64(k.Dst[8:])^0x9e3779b97f4a7c15)
	return &f.slots[h&uint64(len(f.slots)-1)]
}

func (f *fragTable) put(k *key, id uint32, now int64) {
	*f.slot(k, id) = fragEntry{src: k.Src, dst: k.Dst, id: id, proto: k.Protocol, ipv: k.IPVersion,
		sport: k.SrcPort, dport: k.DstPort, ts: now}
}

// get fills k's ports from its first fragment, if it was seen recently.
func (f *fragTable) get(k *key, id uint32, now int64) bool {
	s := f.slot(k, id)
	if s.ts == 0 || s.id != id || s.src != k.Src || s.dst != k.Dst || s.proto != k.Protocol ||
		s.ipv != k.IPVersion || now-s.ts > fragMaxAge {
		return false
	}
	k.SrcPort, k.DstPort = s.sport, s.dport
	return true
}
