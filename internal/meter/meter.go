// Package meter turns packets into unidirectional flow records: it decodes
// each frame, accounts it in a flow cache, and ages flows out with inactive
// and active timeouts, TCP FIN/RST, a full cache, or a flush.
//
// Time is whatever the caller passes with each packet: packet timestamps
// for files (replay is deterministic and as fast as the disk), the clock for
// live capture (with Advance called periodically so idle flows still age).
//
// A flow is keyed by addresses, ports, protocol, IP version and outer VLAN.
// For ICMP the destination port carries type<<8|code, as NetFlow does, and
// the record's icmp_type/icmp_code say the same. Later IP fragments count in
// the flow of their first fragment. A record after an active timeout holds
// the packets since the previous one (a delta).
//
// Use:
//
//	m, err := meter.New(cfg, func(recs []flow.Record) { /* copy or consume */ })
//	for each packet: m.Feed(ts, linkType, frame)
//	m.Flush() // at the end: remaining flows end as "forced"
package meter

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/packet"
)

// Config sets up a Meter. Zero values take the defaults of DefaultConfig.
type Config struct {
	ActiveTimeout   time.Duration // a running flow reports every ActiveTimeout
	InactiveTimeout time.Duration // a flow without packets for this long ends
	MaxFlows        int           // cache size; a full cache evicts (lack_of_resources)
	Sampling        uint32        // meter 1 packet in N (records' counters are scaled by N); 0 or 1 meters all
	RandomSampling  bool          // pick packets at random (1/N) instead of every Nth
	Seed            uint64        // seeds random sampling and the flow hash
	BatchSize       int           // records per call of the emit function
}

// DefaultConfig returns the defaults: 300 s active, 15 s inactive (the
// defaults of Alibaba's flow logs), 256k flows, no sampling.
func DefaultConfig() Config {
	return Config{
		ActiveTimeout:   300 * time.Second,
		InactiveTimeout: 15 * time.Second,
		MaxFlows:        1 << 18,
		BatchSize:       512,
	}
}

// ErrConfig reports an invalid configuration or timeout.
var ErrConfig = errors.New("meter: invalid configuration")

// EmitFunc receives finished records in batches. The slice is reused once
// the call returns: copy what must be kept. It is called with the meter
// locked, so it must not call back into the meter.
type EmitFunc func([]flow.Record)

// Stats counts what the meter saw. Packets = Sampled + every drop counter +
// the packets accounted in flows.
type Stats struct {
	Packets        uint64    // frames fed
	Sampled        uint64    // frames skipped by 1:N sampling
	NonIP          uint64    // frames carrying no IP packet
	Truncated      uint64    // frames ending inside a needed header
	Malformed      uint64    // frames with impossible header values
	Unsupported    uint64    // frames of a link type the decoder does not know
	OrphanFragment uint64    // later IP fragments whose first fragment was not seen (metered with ports 0)
	Flows          uint64    // flows created
	Records        uint64    // records emitted
	ByReason       [6]uint64 // records by flow.EndReason
	ActiveFlows    int       // flows in the cache now
}

// Evicted is the number of flows ended because the cache was full.
func (s Stats) Evicted() uint64 { return s.ByReason[flow.EndLackOfResources] }

// Add adds o's counters to s, to total several meters.
func (s *Stats) Add(o Stats) {
	s.Packets += o.Packets
	s.Sampled += o.Sampled
	s.NonIP += o.NonIP
	s.Truncated += o.Truncated
	s.Malformed += o.Malformed
	s.Unsupported += o.Unsupported
	s.OrphanFragment += o.OrphanFragment
	s.Flows += o.Flows
	s.Records += o.Records
	for i := range s.ByReason {
		s.ByReason[i] += o.ByReason[i]
	}
	s.ActiveFlows += o.ActiveFlows
}

// Meter is a flow cache. It is safe for concurrent use.
type Meter struct {
	mu       sync.Mutex
	active   int64 // ms
	inactive int64 // ms
	sweepGap int64 // ns between full sweeps of the cache
	nextSwp  int64
	now      int64 // latest time seen, ns
	epoch    int64 // ms; entries keep their times relative to it
	epochSet bool

	sampling uint32
	skip     uint32
	rng      *rand.Rand
	info     packet.Info
	// batchState holds FeedBatch's decoded frames and their keys' hashes,
	// computed once.
	batchState struct {
		keep    [batchLen]bool // picked by sampling
		infos   [batchLen]packet.Info
		hashes  [batchLen]uint64
		errs    [batchLen]error
		buckets [batchLen]uint32
		sink    uint32 // keeps the warming loads from being optimised away
	}

	tab   table
	frags fragTable

	emit  EmitFunc
	batch []flow.Record
	stats Stats
}

// New returns a meter that hands its records to emit.
func New(cfg Config, emit EmitFunc) (*Meter, error) {
	def := DefaultConfig()
	if cfg.ActiveTimeout == 0 {
		cfg.ActiveTimeout = def.ActiveTimeout
	}
	if cfg.InactiveTimeout == 0 {
		cfg.InactiveTimeout = def.InactiveTimeout
	}
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = def.MaxFlows
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = def.BatchSize
	}
	if cfg.MaxFlows < 1 || cfg.MaxFlows > 1<<30 || cfg.BatchSize < 1 {
		return nil, fmt.Errorf("%w: MaxFlows %d, BatchSize %d", ErrConfig, cfg.MaxFlows, cfg.BatchSize)
	}
	if emit == nil {
		return nil, fmt.Errorf("%w: no emit function", ErrConfig)
	}
	m := &Meter{
		sampling: max(cfg.Sampling, 1),
		emit:     emit,
		batch:    make([]flow.Record, 0, cfg.BatchSize),
		tab:      newTable(cfg.MaxFlows, cfg.Seed),
	}
	if cfg.RandomSampling {
		m.rng = rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	}
	if err := m.setTimeouts(cfg.ActiveTimeout, cfg.InactiveTimeout); err != nil {
		return nil, err
	}
	return m, nil
}

// SetTimeouts changes the timeouts of a running meter; flows already in
// the cache age by the new values from now on.
func (m *Meter) SetTimeouts(active, inactive time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setTimeouts(active, inactive)
}

func (m *Meter) setTimeouts(active, inactive time.Duration) error {
	if active < time.Millisecond || inactive < time.Millisecond || active > maxTimeout || inactive > maxTimeout {
		return fmt.Errorf("%w: timeouts must be between 1ms and %v (active %v, inactive %v)",
			ErrConfig, maxTimeout, active, inactive)
	}
	m.active, m.inactive = active.Milliseconds(), inactive.Milliseconds()
	// Sweep often enough that a flow ends within a tenth of its timeout.
	m.sweepGap = min(max(min(active, inactive)/10, 10*time.Millisecond), time.Second).Nanoseconds()
	m.nextSwp = m.now + m.sweepGap
	return nil
}

// Feed meters one frame of link type lt captured at ts.
func (m *Meter) Feed(ts time.Time, lt packet.LinkType, frame []byte) {
	now := ts.UnixNano()
	m.mu.Lock()
	m.feed(now, lt, frame)
	m.mu.Unlock()
}

func (m *Meter) feed(now int64, lt packet.LinkType, frame []byte) {
	m.tick(now)
	if !m.sample() {
		return
	}
	err := packet.Decode(lt, frame, &m.info)
	if err != nil {
		m.countDrop(err)
		return
	}
	m.meter(now, m.tab.hash(&m.info.Key), &m.info)
}

// tick counts a packet and moves the clock.
func (m *Meter) tick(now int64) {
	m.stats.Packets++
	if !m.epochSet {
		m.epoch, m.epochSet = now/1e6-epochSlack, true
	}
	if now > m.now {
		m.now = now
	}
	if m.now >= m.nextSwp {
		m.sweep(m.now)
	}
}

// sample applies 1:N sampling: whether to meter the packet.
func (m *Meter) sample() bool {
	if m.sampling > 1 && !m.pick() {
		m.stats.Sampled++
		return false
	}
	return true
}

// meter accounts one decoded packet, whose key's hash is h.
func (m *Meter) meter(now int64, h uint64, info *packet.Info) {
	k := &info.Key
	switch info.Frag {
	case packet.FirstFragment:
		m.frags.put(k, info.FragID, now)
	case packet.LaterFragment:
		if m.frags.get(k, info.FragID, now) {
			h = m.tab.hash(k) // the ports changed
		} else {
			m.stats.OrphanFragment++
		}
	}
	m.account(k, h, now, info)
}

// batchLen is how many frames FeedBatch works on at a time.
const batchLen = 32

// FeedBatch meters frames as Feed would, one after the other. On a large
// cache it is faster: it decodes the frames and loads their cache slots
// first, so that the memory loads of the batch overlap instead of stalling
// one packet at a time.
func (m *Meter) FeedBatch(frames []packet.Frame) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(frames) > 0 {
		n := min(len(frames), batchLen)
		m.feedBatch(frames[:n])
		frames = frames[n:]
	}
}

// feedBatch works in passes so that each pass's memory loads are
// independent of one another and the CPU can have many in flight: sample,
// decode and hash, load the hash buckets, load the entries they point to,
// then account. Sampling picks the same packets as Feed would (it depends
// on nothing but the order of packets), and the packets it skips are not
// decoded.
func (m *Meter) feedBatch(frames []packet.Frame) {
	b := &m.batchState
	for i := range frames {
		b.keep[i] = m.sample()
		if !b.keep[i] {
			b.hashes[i] = 0 // its warming loads only bucket 0
			continue
		}
		b.errs[i] = packet.Decode(frames[i].Link, frames[i].Data, &b.infos[i])
		b.hashes[i] = m.tab.hash(&b.infos[i].Key)
	}
	for i := range frames {
		b.buckets[i] = m.tab.warmBucket(b.hashes[i])
	}
	var sink uint32
	for i := range frames {
		sink += m.tab.warmEntry(b.buckets[i])
	}
	b.sink = sink
	for i := range frames {
		m.tick(frames[i].TS)
		if !b.keep[i] {
			continue
		}
		if b.errs[i] != nil {
			m.countDrop(b.errs[i])
			continue
		}
		m.meter(frames[i].TS, b.hashes[i], &b.infos[i])
	}
}

// pick decides whether sampling meters this packet.
func (m *Meter) pick() bool {
	if m.rng != nil {
		return m.rng.Uint32N(m.sampling) == 0
	}
	m.skip++
	if m.skip < m.sampling {
		return false
	}
	m.skip = 0
	return true
}

func (m *Meter) countDrop(err error) {
	switch err {
	case packet.ErrNotIP:
		m.stats.NonIP++
	case packet.ErrTruncated:
		m.stats.Truncated++
	case packet.ErrMalformed:
		m.stats.Malformed++
	default:
		m.stats.Unsupported++
	}
}

const tcpFIN, tcpRST = 0x01, 0x04

// maxTimeout bounds the timeouts so that a flow's times, kept in 32-bit
// milliseconds, never need more than 2^31 ms (24.8 days).
const maxTimeout = 24 * 24 * time.Hour

// epochSlack puts the epoch before the first packet, for packets that
// arrive out of order; times before the epoch count as the epoch.
const epochSlack = 60_000

// rel converts a time in ns to ms since the epoch, as entries keep it.
func (m *Meter) rel(now int64) uint32 {
	return uint32(min(max(now/1e6-m.epoch, 0), math.MaxUint32))
}

// age is how long ago (ms) an entry time was, at now (ns).
func (m *Meter) age(now int64, t uint32) int64 { return now/1e6 - m.epoch - int64(t) }

// account adds one decoded packet to its flow (key k, hash h).
func (m *Meter) account(k *key, h uint64, now int64, info *packet.Info) {
	i, found := m.tab.find(k, h)
	if found {
		e := &m.tab.entries[i]
		switch {
		case m.age(now, e.last) >= m.inactive:
			m.export(e, flow.EndIdle)
			e.reset(m.rel(now))
		case m.age(now, e.first) >= m.active || e.packets == math.MaxUint32:
			m.export(e, flow.EndActive)
			e.reset(m.rel(now))
		}
	} else {
		if m.tab.full() {
			m.makeRoom(now)
		}
		i = m.tab.insert(k, h, m.rel(now))
		m.stats.Flows++
	}
	e := &m.tab.entries[i]
	e.packets++
	e.bytes += uint64(info.IPLen)
	e.tcpFlags |= info.TCPFlags
	e.tos = info.TOS
	if r := m.rel(now); r > e.last {
		e.last = r
	}
	if info.Protocol == 6 && info.TCPFlags&(tcpFIN|tcpRST) != 0 {
		m.export(e, flow.EndOfFlow)
		m.tab.removeHashed(i, h)
	}
}

// makeRoom frees a cache slot: idle flows first, then the least recently
// seen of a few candidates, which ends with lack_of_resources.
func (m *Meter) makeRoom(now int64) {
	m.sweep(now)
	if !m.tab.full() {
		return
	}
	i := m.tab.victim()
	m.export(&m.tab.entries[i], flow.EndLackOfResources)
	m.tab.remove(i)
}

// sweep ends every flow whose inactive or active timeout has passed.
func (m *Meter) sweep(now int64) {
	m.nextSwp = now + m.sweepGap
	for i := range m.tab.entries {
		e := &m.tab.entries[i]
		if !e.used() {
			continue
		}
		switch {
		case m.age(now, e.last) >= m.inactive:
			m.export(e, flow.EndIdle)
		case m.age(now, e.first) >= m.active:
			m.export(e, flow.EndActive)
		default:
			continue
		}
		m.tab.remove(uint32(i))
	}
	if now/1e6-m.epoch > math.MaxInt32 {
		m.rebase(now)
	}
}

// rebase moves the epoch up (after 24 days of packet time) so that entry
// times keep fitting in 32 bits, but not past any flow's first packet. As
// timeouts are at most 24 days, a sweep leaves no flow older than that.
func (m *Meter) rebase(now int64) {
	delta := now/1e6 - epochSlack - m.epoch
	for i := range m.tab.entries {
		if e := &m.tab.entries[i]; e.used() {
			delta = min(delta, int64(e.first))
		}
	}
	for i := range m.tab.entries {
		if e := &m.tab.entries[i]; e.used() {
			e.first -= uint32(delta)
			e.last -= uint32(delta)
		}
	}
	m.epoch += delta
}

// Advance moves the meter's clock to now (live capture calls it
// periodically), ages flows, and hands out records waiting in the batch.
func (m *Meter) Advance(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := now.UnixNano(); n > m.now {
		m.now = n
	}
	m.sweep(m.now)
	m.flushBatch()
}

// Flush ends every flow with end reason forced and hands out all records;
// the meter can be fed again afterwards.
func (m *Meter) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.tab.entries {
		if e := &m.tab.entries[i]; e.used() {
			m.export(e, flow.EndForced)
			m.tab.remove(uint32(i))
		}
	}
	m.flushBatch()
}

// Stats returns the counters so far.
func (m *Meter) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.ActiveFlows = m.tab.n
	return s
}

func (m *Meter) export(e *entry, reason flow.EndReason) {
	r := flow.Record{
		Version:   flow.RecordVersion,
		SrcPort:   e.SrcPort,
		DstPort:   e.DstPort,
		Protocol:  e.Protocol,
		Packets:   uint64(e.packets),
		Bytes:     e.bytes,
		Start:     m.epoch + int64(e.first),
		End:       m.epoch + int64(e.last),
		Action:    flow.ActionAccept,
		LogStatus: flow.StatusOK,
		TCPFlags:  e.tcpFlags,
		IPVersion: e.IPVersion,
		VLANID:    e.VLAN,
		TOS:       e.tos,
		EndReason: reason,
	}
	r.Scale(m.sampling) // a metered 1-in-N packet stands for N
	if e.IPVersion == 4 {
		r.SrcAddr = netipFrom4(e.Src)
		r.DstAddr = netipFrom4(e.Dst)
	} else {
		r.SrcAddr = netipFrom16(e.Src)
		r.DstAddr = netipFrom16(e.Dst)
	}
	if e.Protocol == 1 || e.Protocol == 58 {
		r.ICMPType, r.ICMPCode = uint8(e.DstPort>>8), uint8(e.DstPort)
	}
	m.stats.Records++
	m.stats.ByReason[reason]++
	m.batch = append(m.batch, r)
	if len(m.batch) == cap(m.batch) {
		m.flushBatch()
	}
}

func (m *Meter) flushBatch() {
	if len(m.batch) > 0 {
		m.emit(m.batch)
		clear(m.batch)
		m.batch = m.batch[:0]
	}
}
