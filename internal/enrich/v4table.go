package enrich

import (
	"fmt"
	"math"
	"net/netip"
	"sort"

	"github.com/oschwald/maxminddb-golang/v2"
)

// v4Table answers IPv4 lookups from a flat copy of a database's IPv4
// networks: sorted range starts with the record of each range, and an
// index by the address's first 16 bits. A lookup reads the index and
// searches the few ranges of one /16, where walking the database's tree
// reads a node per bit, each likely a cache miss in a large database.
type v4Table struct {
	index  []uint32 // index[h]: the range holding address h<<16; index[65536]: the last range
	starts []uint32
	vals   []uint32 // 0: no record; else infos[val-1]
	infos  []info
}

// buildV4 reads every IPv4 network of r; records are decoded once each
// and kept once per distinct value.
func buildV4(r *maxminddb.Reader) (*v4Table, error) {
	t := &v4Table{starts: []uint32{0}, vals: []uint32{0}}
	byOffset := map[uintptr]uint32{}
	byValue := map[info]uint32{}
	var next uint64 // first address after the last network
	for res := range r.NetworksWithin(netip.MustParsePrefix("0.0.0.0/0")) {
		p := res.Prefix()
		if !p.Addr().Is4() {
			continue
		}
		v, ok := byOffset[res.Offset()]
		if !ok {
			var in info
			if err := res.Decode(&in); err != nil {
				return nil, fmt.Errorf("network %s: %w", p, err)
			}
			if v, ok = byValue[in]; !ok && in != (info{}) {
				t.infos = append(t.infos, in)
				v = uint32(len(t.infos))
				byValue[in] = v
			}
			byOffset[res.Offset()] = v
		}
		b := p.Masked().Addr().As4()
		start := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		if start < next {
			return nil, fmt.Errorf("network %s out of order", p)
		}
		if start > next {
			t.add(uint32(next), 0)
		}
		t.add(uint32(start), v)
		next = start + 1<<(32-p.Bits())
	}
	if next <= math.MaxUint32 {
		t.add(uint32(next), 0)
	}
	t.index = make([]uint32, 1<<16+1)
	for h := range t.index {
		at := uint64(h) << 16
		t.index[h] = uint32(sort.Search(len(t.starts), func(i int) bool { return uint64(t.starts[i]) > at }) - 1)
	}
	return t, nil
}

// add appends a range from start, merged with the one before if it has
// the same record.
func (t *v4Table) add(start, v uint32) {
	n := len(t.starts)
	if t.starts[n-1] == start {
		t.vals[n-1] = v
		if n > 1 && t.vals[n-2] == v {
			t.starts, t.vals = t.starts[:n-1], t.vals[:n-1]
		}
		return
	}
	if t.vals[n-1] == v {
		return
	}
	t.starts, t.vals = append(t.starts, start), append(t.vals, v)
}

// lookup returns the record of a, an IPv4 address as a number.
func (t *v4Table) lookup(a uint32) (info, bool) {
	h := a >> 16
	lo, hi := int(t.index[h]), int(t.index[h+1])
	for lo < hi { // the last range starting at or before a
		mid := int(uint(lo+hi+1) >> 1)
		if t.starts[mid] <= a {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if v := t.vals[lo]; v != 0 {
		return t.infos[v-1], true
	}
	return info{}, false
}
