package auth

import (
	"container/heap"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ReplayConfig bounds a ReplayCache.
type ReplayConfig struct {
	// MaxPerAccount bounds the requests remembered for one account. An
	// account that has this many live entries has its further requests that
	// need one refused (ReplayFull) until old ones expire; other accounts are
	// not affected. Default 65536 (about 100 requests a second sustained over
	// a ten-minute signature life; about 10 MB).
	MaxPerAccount int
}

// DefaultMaxPerAccount is ReplayConfig.MaxPerAccount's default.
const DefaultMaxPerAccount = 1 << 16

// ReplayCache remembers accepted requests, per account, until they could no
// longer pass the date check, so that a replay inside the window is refused.
// Only correctly signed requests reach it, so an account's memory fills only
// with that account's own traffic.
type ReplayCache struct {
	mu        sync.Mutex
	max       int
	accounts  map[string]*replaySet
	nextSweep time.Time
}

type replaySet struct {
	seen map[[32]byte]time.Time
	q    expiryHeap
}

// NewReplayCache returns an empty cache.
func NewReplayCache(cfg ReplayConfig) *ReplayCache {
	if cfg.MaxPerAccount <= 0 {
		cfg.MaxPerAccount = DefaultMaxPerAccount
	}
	return &ReplayCache{max: cfg.MaxPerAccount, accounts: make(map[string]*replaySet)}
}

// ReplayResult is what Claim found.
type ReplayResult int

const (
	ReplayFresh ReplayResult = iota // recorded now
	ReplayUsed                      // already live: a replay
	ReplayFull                      // the account's memory is full; not recorded
)

// sweepEvery is how often Claim also expires the entries of idle accounts.
const sweepEvery = time.Minute

// Claim records key for account until expiry unless it is already live.
func (c *ReplayCache) Claim(account string, key [32]byte, expiry, now time.Time) ReplayResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.After(c.nextSweep) {
		for a, s := range c.accounts {
			if s.expire(now) == 0 {
				delete(c.accounts, a)
			}
		}
		c.nextSweep = now.Add(sweepEvery)
	}
	s := c.accounts[account]
	if s == nil {
		s = &replaySet{seen: make(map[[32]byte]time.Time)}
		c.accounts[account] = s
	}
	s.expire(now)
	if _, ok := s.seen[key]; ok {
		return ReplayUsed
	}
	if len(s.seen) >= c.max {
		return ReplayFull
	}
	s.seen[key] = expiry
	heap.Push(&s.q, expiring{key: key, at: expiry})
	return ReplayFresh
}

// Len is how many entries account holds.
func (c *ReplayCache) Len(account string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.accounts[account]; s != nil {
		return len(s.seen)
	}
	return 0
}

// expire drops the entries whose time has passed and returns how many live.
func (s *replaySet) expire(now time.Time) int {
	for len(s.q) > 0 && !s.q[0].at.After(now) {
		e := heap.Pop(&s.q).(expiring)
		delete(s.seen, e.key)
	}
	return len(s.seen)
}

// Mutating says whether a request with this method changes state, and so
// may be accepted only once. Reads may repeat: SDKs resend identical GETs.
func Mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// Claim refuses a mutating request whose signature c has already accepted;
// call it after Finish. A nil cache accepts everything.
func (p *Pending) Claim(c *ReplayCache, method string, now time.Time) error {
	if c == nil || !Mutating(method) {
		return nil
	}
	key := sha256.Sum256([]byte(strings.ToLower(p.sig)))
	switch c.Claim(p.Key.AccountID, key, p.Date.Add(MaxSkew), now) {
	case ReplayUsed:
		return fail(Replay, "this signed %s request was already accepted; a changing request is accepted once. "+
			"Sign each request anew (identical calls within one second need a unique signed header, e.g. %s)",
			method, NonceHeader)
	case ReplayFull:
		return fail(TooManyRequests, "the account made more changing requests within %v than the server "+
			"remembers (%d); retry shortly", 2*MaxSkew, c.max)
	}
	return nil
}

type expiring struct {
	key [32]byte
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

// NewNonce returns 32 random hex digits for NonceHeader.
func NewNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
