package aliyun

import (
	"container/heap"
	"sync"
	"time"
)

// nonceCache remembers each accepted SignatureNonce until the request that
// carried it could no longer pass the timestamp check, so a replay inside the
// window is refused and memory stays bounded by the request rate. When it
// holds max live nonces it refuses new ones rather than forget old ones.
type nonceCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
	q    expiryHeap
}

func newNonceCache(max int) *nonceCache {
	return &nonceCache{max: max, seen: make(map[string]time.Time)}
}

// errors returned by add
type nonceResult int

const (
	nonceFresh nonceResult = iota
	nonceUsed
	nonceFull
)

// add records key until expiry unless it is already live.
func (c *nonceCache) add(key string, expiry, now time.Time) nonceResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.q) > 0 && !c.q[0].at.After(now) {
		e := heap.Pop(&c.q).(expiring)
		if at, ok := c.seen[e.key]; ok && !at.After(now) {
			delete(c.seen, e.key)
		}
	}
	if _, ok := c.seen[key]; ok {
		return nonceUsed
	}
	if len(c.seen) >= c.max {
		return nonceFull
	}
	c.seen[key] = expiry
	heap.Push(&c.q, expiring{key: key, at: expiry})
	return nonceFresh
}

func (c *nonceCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiring struct {
	key string
	at  time.Time
}

// expiryHeap is a min-heap on expiry time.
type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
