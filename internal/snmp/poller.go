package snmp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Poller keeps one router's interface table fresh.
type Poller struct {
	target Target
	cfg    Config
	log    *slog.Logger

	table  atomic.Pointer[map[uint32]Interface] // the last good poll; never changed in place
	status atomic.Pointer[Status]

	// An ifIndex missing from the table (an interface added since the
	// last poll) asks for an early poll through kick, at most once per
	// Backoff; earliest is when the next may be asked, in Unix ns.
	kick     chan struct{}
	earliest atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Status is how a router's polling goes.
type Status struct {
	Target     string    `json:"target"` // without secrets
	Interfaces int       `json:"interfaces"`
	PolledAt   time.Time `json:"polled_at,omitzero"` // the last good poll
	NextAt     time.Time `json:"next_at,omitzero"`
	Failures   int       `json:"failures,omitempty"` // in a row; > 0: the breaker is open until NextAt
	FailedAt   time.Time `json:"failed_at,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// New returns a Poller of t; Start starts it.
func New(t Target, cfg Config, log *slog.Logger) (*Poller, error) {
	cfg = cfg.Defaults()
	if _, err := t.client(cfg); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Poller{target: t, cfg: cfg, log: log.With("snmp", t.String()), done: make(chan struct{}),
		kick: make(chan struct{}, 1)}
	p.status.Store(&Status{Target: t.String()})
	return p, nil
}

// Target returns what the poller polls.
func (p *Poller) Target() Target { return p.target }

// Start polls now and then every Refresh, backing off after failures, until
// Stop.
func (p *Poller) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
}

// Stop ends polling and waits for a poll under way to end.
func (p *Poller) Stop() {
	p.once.Do(func() {
		if p.cancel == nil {
			close(p.done)
			return
		}
		p.cancel()
		<-p.done
	})
}

func (p *Poller) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
			t.Stop()
		}
		t.Reset(p.poll(ctx))
	}
}

// poll polls once and returns how long to wait before the next poll.
func (p *Poller) poll(ctx context.Context) time.Duration {
	ifs, err := Poll(ctx, p.target, p.cfg)
	st := *p.status.Load()
	wait := p.cfg.Refresh
	now := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			return wait
		}
		st.Failures++
		wait = min(p.cfg.Backoff<<min(st.Failures-1, 20), max(p.cfg.MaxBackoff, p.cfg.Backoff))
		st.LastError, st.FailedAt = err.Error(), now
		p.log.Warn("interface poll failed; keeping the last table", "err", err, "failures", st.Failures,
			"retry_in", wait)
	} else {
		p.table.Store(&ifs)
		st.Failures, st.LastError, st.PolledAt, st.Interfaces = 0, "", now, len(ifs)
	}
	st.NextAt = now.Add(wait)
	p.status.Store(&st)
	// No early poll sooner than Backoff after a good poll, nor before the
	// back-off ends after a failure.
	hold := p.cfg.Backoff
	if st.Failures > 0 {
		hold = max(hold, wait)
	}
	p.earliest.Store(now.Add(hold).UnixNano())
	return wait
}

// missed asks for an early poll, for an ifIndex the table lacks.
func (p *Poller) missed() {
	e := p.earliest.Load()
	if e == 0 || time.Now().UnixNano() < e || !p.earliest.CompareAndSwap(e, 0) {
		return // before the first poll, too soon, or asked already
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Interface returns what the router said of ifIndex at its last good poll.
func (p *Poller) Interface(ifIndex uint32) (Interface, bool) {
	m := p.table.Load()
	if m == nil {
		return Interface{}, false
	}
	i, ok := (*m)[ifIndex]
	if !ok {
		p.missed()
	}
	return i, ok
}

// Interfaces returns the last good table (nil before one); callers must not
// change it.
func (p *Poller) Interfaces() map[uint32]Interface {
	if m := p.table.Load(); m != nil {
		return *m
	}
	return nil
}

// Status returns how polling goes.
func (p *Poller) Status() Status { return *p.status.Load() }

// Set holds the pollers of many routers, by exporter address, and answers
// lookups without locks.
type Set struct {
	mu      sync.Mutex // serialises Replace
	pollers atomic.Pointer[map[netip.Addr]*Poller]
}

// Replace makes ps the set's pollers, starting those that are new and
// stopping those no longer present. A poller whose target is unchanged
// keeps running, with its table.
func (s *Set) Replace(targets []Target, cfg Config, log *slog.Logger) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	next := make(map[netip.Addr]*Poller, len(targets))
	var errs []error
	for _, t := range targets {
		key := t.Addr.Unmap()
		if p, ok := old[key]; ok && p.target == t && p.cfg == cfg.Defaults() {
			next[key] = p
			continue
		}
		p, err := New(t, cfg, log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Start()
		next[key] = p
	}
	s.pollers.Store(&next)
	for a, p := range old {
		if next[a] != p {
			p.Stop()
		}
	}
	return errs
}

// Stop stops every poller.
func (s *Set) Stop() { s.Replace(nil, Config{}, nil) }

func (s *Set) load() map[netip.Addr]*Poller {
	if m := s.pollers.Load(); m != nil {
		return *m
	}
	return nil
}

// Poller returns the poller of an exporter.
func (s *Set) Poller(exporter netip.Addr) (*Poller, bool) {
	p, ok := s.load()[exporter.Unmap()]
	return p, ok
}

// All returns the set's pollers.
func (s *Set) All() []*Poller {
	m := s.load()
	out := make([]*Poller, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

// Interface answers the enrichment stage: the name and speed of an
// exporter's interface, as last polled.
func (s *Set) Interface(exporter netip.Addr, ifIndex uint32) (name string, speedBps uint64, ok bool) {
	p, ok := s.load()[exporter]
	if !ok {
		if !exporter.Is4In6() {
			return "", 0, false
		}
		if p, ok = s.load()[exporter.Unmap()]; !ok {
			return "", 0, false
		}
	}
	i, ok := p.Interface(ifIndex)
	return i.Name, i.SpeedBps, ok
}
