package enrich

import (
	"encoding/binary"
	"net/netip"
)

// answer is what the databases say of one address.
type answer struct {
	country string
	as      uint32
	asName  string
}

var noAnswer answer

// cacheBits sizes an addrCache: 4096 entries of 64 bytes, which stay in
// a core's L2 cache.
const cacheBits = 12

// addrCache remembers the answers for recent addresses: flows repeat their
// addresses (a busy server, a resolver), and a hit costs a hash and a
// compare where a lookup walks a tree per database. It is direct-mapped,
// used by one Enrich call at a time (from a pool), and valid for one
// generation of the databases.
type addrCache struct {
	gen uint64
	e   [1 << cacheBits]cacheEntry
}

type cacheEntry struct {
	addr netip.Addr
	ans  answer
}

// counts are one Enrich call's counters, added to the Enricher's at the end.
type counts struct{ lookups, misses uint64 }

func (c *addrCache) reset(gen uint64) {
	if c.gen != gen {
		clear(c.e[:])
		c.gen = gen
	}
}

// answer returns what the databases of st say of a; private, special and
// invalid addresses are known to none.
func (c *addrCache) answer(st *databases, a netip.Addr, n *counts) *answer {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return &noAnswer
	}
	n.lookups++
	b := a.As16()
	h := (binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	e := &c.e[h>>(64-cacheBits)]
	if e.addr != a {
		e.addr, e.ans = a, lookupAll(st, a)
	}
	if e.ans.country == "" && e.ans.as == 0 {
		n.misses++
	}
	return &e.ans
}

// lookupAll merges the databases' answers: the first that knows a's
// country gives it, the first that knows its AS gives number and name.
func lookupAll(st *databases, a netip.Addr) answer {
	var ans answer
	for _, db := range st.list {
		if ans.country != "" && ans.as != 0 {
			break
		}
		if ans.country != "" && !db.asn || ans.as != 0 && !db.geo {
			continue
		}
		in, ok := db.lookup(a)
		if !ok {
			continue
		}
		if ans.country == "" {
			ans.country = in.country
		}
		if ans.as == 0 {
			ans.as, ans.asName = in.as, in.asName
		}
	}
	return ans
}
