// Package collect receives NetFlow v5/v9, IPFIX and sFlow over UDP and turns
// them into flow records. Decoding state is kept only for claimed sources
// (inside serve: those an exporter gateway names), per exporter address and
// observation domain (never per source port), bounded per exporter and in
// number, and persisted per exporter in a data directory across restarts.
package collect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
)

// Config configures a Collector. Zero fields take the defaults.
type Config struct {
	Listen      string // ADDR:PORT for NetFlow v5/v9 and IPFIX (auto-detected); empty for none
	SFlowListen string // ADDR:PORT for sFlow v5; empty for none
	Workers     int    // sockets (SO_REUSEPORT) per listener; default min(NumCPU, 4)
	ReadBuffer  int    // socket receive buffer bytes; default 128 MiB: a second of 1M flows/s while the store takes the CPU
	Batch       int    // datagrams per read call; default 64
	DataDir     string // where templates persist; empty keeps them in memory only
	// MaxExporters bounds the sources with decoding state; default 1024.
	// When it is reached, a new source takes the place of those idle for
	// IdleEvict (default 1 minute), or is refused and counted.
	MaxExporters int
	IdleEvict    time.Duration
	// Claimed says whether some gateway claims src, and on what terms.
	// Sources it does not claim get no state: their datagrams are only
	// counted. nil claims every source on the default terms (flowlog
	// collect).
	Claimed func(src netip.Addr) (Claim, bool)
	Times   TimeWindow
	Session netflow.SessionConfig
	Now     func() time.Time
	// Share, if set, is given the templates of exporters whose templates
	// changed, for the other collectors receiving them; Seed gives a new
	// exporter's state the templates they shared. See Adopt.
	Share func(ctx context.Context, ts []Shared) error
	Seed  func(src netip.Addr) []netflow.SavedTemplate
}

// Claim is what the collector is told of a claimed source.
type Claim struct {
	MaxAge time.Duration // records may end this long before they arrive; 0: Config.Times.Past
	// Sampling is the 1:N interval applied to records whose router
	// announces none (the gateway's override); 0: such records are taken
	// as unsampled and counted as SamplingMissing. An announced rate
	// always wins.
	Sampling uint32
}

// TimeWindow is the range of record end times, around the time a datagram
// arrives, that the collector takes from a router as they are. A record
// ending outside it is clamped (see clamp) and counted.
type TimeWindow struct {
	Past  time.Duration // default 7 days, a log stream's default retention
	Ahead time.Duration // default 5 minutes
}

// DefaultTimeWindow is the window used when Config.Times is zero.
var DefaultTimeWindow = TimeWindow{Past: 7 * 24 * time.Hour, Ahead: 5 * time.Minute}

// Handler receives decoded records. It is called from several goroutines
// at once and must not keep recs after it returns.
type Handler func(recs []flow.Record)

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("collect: bad config")

// ErrUnclaimed reports a datagram from a source no gateway claims.
var ErrUnclaimed = errors.New("collect: source not claimed by any gateway")

// Counters are one exporter's statistics.
type Counters struct {
	Exporter         netip.Addr
	Packets          uint64 // datagrams received
	Records          uint64 // flow records produced
	DecodeErrors     uint64 // datagrams rejected (wholly or partly)
	UnknownTemplates uint64 // data sets that arrived before their template
	Dropped          uint64 // such sets given up on (held too long or too many)
	SequenceLost     uint64 // flows (v5), packets (v9) or records (IPFIX) missing
	CounterSamples   uint64 // sFlow counter samples
	TemplatesRefused uint64 // templates over the session's limits
	Clamped          uint64 // records whose times were outside the TimeWindow

	Protocol  string // of the last datagram: ProtoV5, ProtoV9, ProtoIPFIX or ProtoSFlow; "" before one decoded
	Templates int    // templates (options templates included) the session holds now
	// The sampling intervals (1:N) the router announced for the last
	// datagram's records, lowest and highest; 0 when some had none.
	SamplingMin, SamplingMax uint32
	// Records that arrived with no rate announced and no override, taken
	// as unsampled (counters as counted), in all and in the last datagram.
	SamplingMissing     uint64
	LastSamplingMissing bool
	First, Last         time.Time // first and last datagram since the state was made

	// When things last went wrong, zero if never: a rejected datagram (and
	// why), a sequence gap, a template refused or a data set dropped.
	ErrorAt, LossAt, TemplateTroubleAt time.Time
	LastError                          string
}

// Protocols as Counters.Protocol names them.
const (
	ProtoV5    = "netflow-v5"
	ProtoV9    = "netflow-v9"
	ProtoIPFIX = "ipfix"
	ProtoSFlow = "sflow-v5"
)

// protocols by the version netflow.Version reads.
var protocols = map[int]string{netflow.V5: ProtoV5, netflow.V9: ProtoV9, netflow.IPFIX: ProtoIPFIX}

// maxErrorText bounds the rejection reason kept per exporter.
const maxErrorText = 200

type exporter struct {
	mu   sync.Mutex
	sess *netflow.Session
	c    Counters
	last atomic.Int64 // Unix ns of the last datagram

	// Interface names from options data: a copy made when they change,
	// read without the lock; ifSeen is the session's change count copied.
	ifs    atomic.Pointer[map[uint32]netflow.IfName]
	ifSeen uint64

	// Persistence, under mu.
	gone    bool      // evicted: its file is removed and must not be written
	saved   uint64    // sess.Changes() as last written
	savedAt time.Time // when last written
	shared  uint64    // sess.Changes() as last shared
}

// Collector owns the sockets and per-exporter state.
type Collector struct {
	cfg     Config
	handler Handler
	conns   []*net.UDPConn
	addrs   []net.Addr
	wg      sync.WaitGroup

	mu        sync.RWMutex
	exporters map[netip.Addr]*exporter
	sweepAt   time.Time // no eviction sweep before this, after one freed nothing

	unclaimed   atomic.Uint64 // datagrams from sources no gateway claims
	refused     atomic.Uint64 // datagrams from sources over MaxExporters
	shareErrors atomic.Uint64
	shareWake   chan struct{}

	stop      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New binds the listeners, tidies persisted templates and starts the
// receive workers.
func New(cfg Config, h Handler) (*Collector, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = min(runtime.NumCPU(), 4)
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 128 << 20
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.MaxExporters <= 0 {
		cfg.MaxExporters = 1024
	}
	if cfg.IdleEvict <= 0 {
		cfg.IdleEvict = time.Minute
	}
	if cfg.Times.Past <= 0 {
		cfg.Times.Past = DefaultTimeWindow.Past
	}
	if cfg.Times.Ahead <= 0 {
		cfg.Times.Ahead = DefaultTimeWindow.Ahead
	}
	if cfg.Session.TemplateTTL <= 0 {
		cfg.Session.TemplateTTL = netflow.DefaultSessionConfig().TemplateTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Listen == "" && cfg.SFlowListen == "" {
		return nil, fmt.Errorf("%w: nothing to listen on", ErrConfig)
	}
	c := &Collector{cfg: cfg, handler: h, exporters: make(map[netip.Addr]*exporter), stop: make(chan struct{}),
		shareWake: make(chan struct{}, 1)}
	if err := c.tidy(); err != nil {
		return nil, err
	}
	for _, l := range []struct {
		addr  string
		sflow bool
	}{{cfg.Listen, false}, {cfg.SFlowListen, true}} {
		if l.addr == "" {
			continue
		}
		conns, err := listen(l.addr, cfg.Workers, cfg.ReadBuffer)
		if err != nil {
			c.closeConns()
			return nil, err
		}
		c.addrs = append(c.addrs, conns[0].LocalAddr())
		for _, conn := range conns {
			c.conns = append(c.conns, conn)
			c.wg.Add(1)
			go c.worker(conn, l.sflow)
		}
	}
	c.wg.Add(1)
	go c.maintainLoop()
	if cfg.Share != nil {
		c.wg.Add(1)
		go c.shareLoop()
	}
	return c, nil
}

// Addrs returns the bound addresses: the NetFlow/IPFIX listener first (if
// any), then the sFlow one.
func (c *Collector) Addrs() []net.Addr { return c.addrs }

// Close stops the workers and saves the templates. Later calls return the
// first call's result.
func (c *Collector) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.closeConns()
		c.wg.Wait()
		c.closeErr = c.save(c.cfg.Now())
	})
	return c.closeErr
}

func (c *Collector) closeConns() {
	for _, conn := range c.conns {
		conn.Close()
	}
}

// favour gives the calling goroutine a thread of its own that the kernel
// runs ahead of the store's (nice -5, where permitted): a datagram not read
// in time is lost in the kernel, while the store can catch up from the
// spool. Unprivileged, the thread keeps the process's priority.
func favour() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), -5)
}

// listen opens n sockets on addr sharing the port with SO_REUSEPORT.
func listen(addr string, n, rcvbuf int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
			// SO_RCVBUFFORCE passes rmem_max when privileged.
			if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, rcvbuf) != nil {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var conns []*net.UDPConn
	for i := 0; i < n; i++ {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("collect: listen %s: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		conns = append(conns, conn)
		addr = conn.LocalAddr().String() // later sockets join the same port
	}
	return conns, nil
}

// worker reads batches of datagrams and decodes them.
func (c *Collector) worker(conn *net.UDPConn, sflow bool) {
	defer c.wg.Done()
	favour()
	pc := ipv4.NewPacketConn(conn) // recvmmsg; works on IPv6 sockets too
	msgs := make([]ipv4.Message, c.cfg.Batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 65536)}
	}
	var out []flow.Record
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			select {
			case <-c.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		now := c.cfg.Now()
		out = out[:0]
		for i := 0; i < n; i++ {
			m := &msgs[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			src, _ := netip.AddrFromSlice(ua.IP)
			out = c.packet(src.Unmap(), m.Buffers[0][:m.N], sflow, now, out)
		}
		if len(out) > 0 && c.handler != nil {
			c.handler(out)
		}
	}
}

// Decode runs one datagram from src through the collector's state as if it
// had been received, and returns the records it produced and the error, if
// any. It is what the workers do; tests and replays use it directly.
func (c *Collector) Decode(src netip.Addr, pkt []byte, sflow bool) ([]flow.Record, error) {
	return c.receive(src, pkt, sflow, c.cfg.Now(), nil)
}

func (c *Collector) packet(src netip.Addr, pkt []byte, sflow bool, now time.Time, out []flow.Record) []flow.Record {
	out, _ = c.receive(src, pkt, sflow, now, out)
	return out
}

// receive decodes a datagram from a claimed source with state.
func (c *Collector) receive(src netip.Addr, pkt []byte, sflow bool, now time.Time, out []flow.Record) ([]flow.Record, error) {
	tm, ok := c.terms(src)
	if !ok {
		c.unclaimed.Add(1)
		return out, fmt.Errorf("%w: %v", ErrUnclaimed, src)
	}
	e := c.exporter(src, now)
	if e == nil {
		return out, fmt.Errorf("%w: %d exporters, none idle for %v; %v refused", netflow.ErrLimit,
			c.cfg.MaxExporters, c.cfg.IdleEvict, src)
	}
	return c.decode(e, src, pkt, sflow, now, tm, out)
}

// terms is how a claimed source's records are taken in.
type terms struct {
	win      TimeWindow
	sampling uint32 // override when the router announces no rate; 0: none
}

// terms are src's terms, if src is claimed.
func (c *Collector) terms(src netip.Addr) (terms, bool) {
	t := terms{win: c.cfg.Times}
	cl, ok := c.claimed(src)
	if ok && cl.MaxAge > 0 {
		t.win.Past = cl.MaxAge
	}
	t.sampling = cl.Sampling
	return t, ok
}

func (c *Collector) decode(e *exporter, src netip.Addr, pkt []byte, sflow bool, now time.Time, tm terms, out []flow.Record) ([]flow.Record, error) {
	before := len(out)
	var err error
	e.mu.Lock()
	e.c.Packets++
	if sflow {
		var res netflow.SFlowResult
		out, res, err = netflow.DecodeSFlow(pkt, now, out)
		e.c.CounterSamples += uint64(res.CounterSamples)
		e.c.Protocol = ProtoSFlow
	} else {
		var res netflow.Result
		out, res, err = e.sess.Decode(pkt, now, out)
		if n := e.sess.InterfaceChanges(); n != e.ifSeen {
			e.ifSeen = n
			m := e.sess.Interfaces()
			e.ifs.Store(&m)
		}
		e.c.UnknownTemplates += uint64(res.Unknown)
		e.c.Dropped += uint64(res.Dropped)
		e.c.SequenceLost += res.Lost
		e.c.TemplatesRefused += uint64(res.Refused)
		if p := protocols[res.Version]; p != "" {
			e.c.Protocol = p
		}
		if res.Lost > 0 {
			e.c.LossAt = now
		}
		if res.Refused > 0 || res.Dropped > 0 {
			e.c.TemplateTroubleAt = now
		}
		if c.cfg.Share != nil && e.sess.Changes() != e.shared {
			c.wakeShare()
		}
	}
	if err != nil {
		e.c.DecodeErrors++
		e.c.ErrorAt, e.c.LastError = now, truncate(err.Error(), maxErrorText)
	}
	c.finish(e, src, out[before:], now, tm)
	e.mu.Unlock()
	return out, err
}

// finish gives records decoded from src their exporter, scales them,
// clamps their times, and counts them. Called with e.mu held.
func (c *Collector) finish(e *exporter, src netip.Addr, recs []flow.Record, now time.Time, tm terms) {
	e.c.Records += uint64(len(recs))
	if len(recs) > 0 {
		e.c.SamplingMin, e.c.SamplingMax = samplingRange(recs)
		e.c.LastSamplingMissing = false
	}
	nowMs := now.UnixMilli()
	for i := range recs {
		recs[i].ExporterAddr = src
		recs[i].NormalizeICMP()
		if scale(&recs[i], tm.sampling) {
			e.c.SamplingMissing++
			e.c.LastSamplingMissing = true
		}
		if tm.win.clamp(&recs[i], nowMs) {
			e.c.Clamped++
		}
	}
}

// scale makes a decoded record's counters estimates, once: by the rate its
// router announced, else by the gateway's override. It reports a record
// with neither, taken as unsampled.
func scale(r *flow.Record, override uint32) (missing bool) {
	n := r.SamplingInterval
	if n == 0 {
		n, missing = override, override == 0
	}
	r.Scale(n)
	return missing
}

// samplingRange returns the lowest and highest sampling interval of recs.
func samplingRange(recs []flow.Record) (lo, hi uint32) {
	lo = recs[0].SamplingInterval
	for i := range recs {
		lo, hi = min(lo, recs[i].SamplingInterval), max(hi, recs[i].SamplingInterval)
	}
	return lo, hi
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// clamp is the collector's one rule for router times. A record whose end is
// outside [now−Past, now+Ahead] ends at now (the time it arrived) instead,
// keeping its duration when that is within [0, Past]; a start before
// now−Past or after the end is moved to it. Routers with a wrong clock, bad
// uptime arithmetic or hostile values thus cannot place records in days
// the log stream does not keep, or years ahead. It reports whether r
// changed.
func (w TimeWindow) clamp(r *flow.Record, now int64) bool {
	past := w.Past.Milliseconds()
	lo, hi := now-past, now+w.Ahead.Milliseconds()
	changed := false
	if r.End < lo || r.End > hi {
		d := r.End - r.Start // negative also when it overflows
		sane := r.Start <= r.End && d >= 0 && d <= past
		r.End, r.Start = now, now
		if sane {
			r.Start = now - d
		}
		changed = true
	}
	if r.Start < lo {
		r.Start, changed = lo, true
	}
	if r.Start > r.End {
		r.Start, changed = r.End, true
	}
	return changed
}

// exporter returns src's state, creating it within MaxExporters (after
// evicting idle ones if need be); nil when the table is full.
func (c *Collector) exporter(src netip.Addr, now time.Time) *exporter {
	c.mu.RLock()
	e := c.exporters[src]
	c.mu.RUnlock()
	if e == nil {
		c.mu.Lock()
		if e = c.exporters[src]; e == nil {
			if len(c.exporters) >= c.cfg.MaxExporters && !c.evictIdle(now) {
				c.mu.Unlock()
				c.refused.Add(1)
				return nil
			}
			e = c.newExporter(src, now)
			c.exporters[src] = e
		}
		c.mu.Unlock()
	}
	e.last.Store(now.UnixNano())
	return e
}

// evictIdle drops the sources idle for IdleEvict, and reports whether any
// went. A sweep that frees nothing is not tried again for a second, so a
// flood of new sources costs no more than a map lookup each. Called with
// c.mu held.
func (c *Collector) evictIdle(now time.Time) bool {
	if now.Before(c.sweepAt) {
		return false
	}
	limit := now.Add(-c.cfg.IdleEvict).UnixNano()
	freed := c.drop(func(a netip.Addr, e *exporter) bool { return e.last.Load() <= limit })
	if freed == 0 {
		c.sweepAt = now.Add(time.Second)
	}
	return freed > 0
}

// drop forgets the exporters for which gone says so, with their persisted
// templates, and returns how many went. Called with c.mu held.
func (c *Collector) drop(gone func(netip.Addr, *exporter) bool) int {
	n := 0
	for a, e := range c.exporters {
		if !gone(a, e) {
			continue
		}
		delete(c.exporters, a)
		e.mu.Lock()
		e.gone = true
		if c.cfg.DataDir != "" {
			_ = os.Remove(c.templatePath(a))
		}
		e.mu.Unlock()
		n++
	}
	return n
}

// Stats returns every exporter's counters, ordered by address.
func (c *Collector) Stats() []Counters {
	c.mu.RLock()
	out := make([]Counters, 0, len(c.exporters))
	for _, e := range c.exporters {
		out = append(out, e.counters())
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Exporter.Less(out[j].Exporter) })
	return out
}

// Exporter returns src's counters, if the collector keeps state for it.
func (c *Collector) Exporter(src netip.Addr) (Counters, bool) {
	c.mu.RLock()
	e := c.exporters[src.Unmap()]
	c.mu.RUnlock()
	if e == nil {
		return Counters{}, false
	}
	return e.counters(), true
}

// Interface returns what src's options data (interfaceName and
// interfaceDescription) said of ifIndex. It takes no exporter lock, so that
// it can be asked once per record.
func (c *Collector) Interface(src netip.Addr, ifIndex uint32) (netflow.IfName, bool) {
	c.mu.RLock()
	e := c.exporters[src.Unmap()]
	c.mu.RUnlock()
	if e == nil {
		return netflow.IfName{}, false
	}
	m := e.ifs.Load()
	if m == nil {
		return netflow.IfName{}, false
	}
	n, ok := (*m)[ifIndex]
	return n, ok
}

// Forget drops src's state (counters and templates), so that what a new
// owner of the address is shown starts with its own datagrams.
func (c *Collector) Forget(src netip.Addr) {
	src = src.Unmap()
	c.mu.Lock()
	c.drop(func(a netip.Addr, _ *exporter) bool { return a == src })
	c.mu.Unlock()
}

func (e *exporter) counters() Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.c
	c.Templates = e.sess.TemplateCount()
	c.Last = time.Unix(0, e.last.Load())
	return c
}

// Refused is the number of datagrams ignored because MaxExporters sources
// had state and none was idle.
func (c *Collector) Refused() uint64 { return c.refused.Load() }

// Unclaimed is the number of datagrams ignored because no gateway claims
// their source.
func (c *Collector) Unclaimed() uint64 { return c.unclaimed.Load() }

// maintainLoop forgets sources that are no longer claimed or whose
// templates have all expired, and writes changed templates, every minute.
func (c *Collector) maintainLoop() {
	defer c.wg.Done()
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.maintain(c.cfg.Now())
		}
	}
}

const maintainEvery = time.Minute

func (c *Collector) maintain(now time.Time) {
	stale := now.Add(-c.cfg.Session.TemplateTTL).UnixNano()
	c.mu.Lock()
	c.drop(func(a netip.Addr, e *exporter) bool {
		if e.last.Load() <= stale {
			return true
		}
		_, ok := c.claimed(a)
		return !ok
	})
	c.mu.Unlock()
	_ = c.save(now)
}

func (c *Collector) claimed(a netip.Addr) (Claim, bool) {
	if c.cfg.Claimed == nil {
		return Claim{}, true
	}
	return c.cfg.Claimed(a)
}
