package console

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxTracked bounds the key ids and addresses the throttle remembers at
// once (about 100 bytes each).
const maxTracked = 1 << 16

// Throttle counts failed sign-ins per access key id and per client address
// in fixed windows. Once either is over its limit, sign-in with that key id
// or from that address is refused, right secret or not, until the window
// ends: guessing a secret gets MaxFailures tries per window.
type Throttle struct {
	maxKey, maxAddr int
	window          time.Duration
	mu              sync.Mutex
	seen            map[string]*failures // "k:" + key id, "a:" + address
}

type failures struct {
	start time.Time
	n     int
}

// NewThrottle returns a throttle with cfg's limits (defaults filled).
func NewThrottle(cfg Config) *Throttle {
	cfg = cfg.WithDefaults()
	return &Throttle{maxKey: cfg.MaxFailures, maxAddr: 3 * cfg.MaxFailures, window: cfg.FailureWindow,
		seen: map[string]*failures{}}
}

// Allow reports whether a sign-in with keyID from addr may be tried now,
// and if not, how long until it may.
func (t *Throttle) Allow(keyID, addr string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, c := range [...]struct {
		k   string
		max int
	}{{"k:" + keyID, t.maxKey}, {"a:" + addr, t.maxAddr}} {
		f := t.seen[c.k]
		if f != nil && now.Sub(f.start) < t.window && f.n >= c.max {
			wait = max(wait, f.start.Add(t.window).Sub(now))
		}
	}
	if wait == 0 && len(t.seen) >= maxTracked && t.sweep(now) >= maxTracked {
		// Under a flood of failures from everywhere, refuse rather than
		// forget the counts that hold guessers back.
		wait = t.window
	}
	return wait == 0, wait
}

// Failed counts a failed sign-in against keyID and addr.
func (t *Throttle) Failed(keyID, addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range [...]string{"k:" + keyID, "a:" + addr} {
		f := t.seen[k]
		if f == nil || now.Sub(f.start) >= t.window {
			if f == nil && len(t.seen) >= maxTracked && t.sweep(now) >= maxTracked {
				continue
			}
			f = &failures{start: now}
			t.seen[k] = f
		}
		f.n++
	}
}

// sweep forgets ended windows and returns how many are left.
func (t *Throttle) sweep(now time.Time) int {
	for k, f := range t.seen {
		if now.Sub(f.start) >= t.window {
			delete(t.seen, k)
		}
	}
	return len(t.seen)
}

// ClientAddr is the address failures are counted against: the peer's IP
// (not a forwarded header, which the client writes), IPv6 by /64, since
// one host commonly holds a whole /64.
func ClientAddr(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}
