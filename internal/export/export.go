// Package export sends flow records to a NetFlow v5, v9 or IPFIX collector
// over UDP, as an exporting process: it packs records into packets no
// larger than the MTU, resends templates periodically, and numbers packets
// as each version defines.
//
// Records hold estimates (counted values times their SamplingInterval);
// each is sent as what was counted with its own interval, so a collector
// that scales by the announced rate gets the estimate back, once. v9 and
// IPFIX carry the interval in every data record (samplingInterval, IE 34).
// v5 has one interval per packet: a packet holds records of one interval
// (a new packet starts when it changes); an interval v5 cannot express
// (over 16383) is sent as unsampled with the estimates.
package export

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
)

// Config configures an Exporter. Zero fields take the defaults.
type Config struct {
	Collector        string        // host:port of the collector (IPv4 or IPv6)
	Source           string        // local address to send from; empty: the system's choice
	Version          int           // netflow.V5, netflow.V9 or netflow.IPFIX
	MTU              int           // maximum UDP payload bytes; default 1400
	TemplatePackets  int           // resend templates after this many packets; default 20
	TemplateInterval time.Duration // and after this long; default 600 s
	Domain           uint32        // v9 source id / IPFIX observation domain; v5 engine id (low byte)
	Now              func() time.Time
}

// Defaults: 20 packets as Cisco IOS, FortiGate and ipt-netflow use; 600 s
// as RFC 6728's templateRefreshTimeout.
const (
	DefaultMTU              = 1400
	DefaultTemplatePackets  = 20
	DefaultTemplateInterval = 600 * time.Second
)

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("export: bad config")

// ParseVersion reads a version as users write it: V5, V9, V10, IPFIX, 5, 9, 10.
func ParseVersion(s string) (int, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "V5", "5":
		return netflow.V5, nil
	case "V9", "9":
		return netflow.V9, nil
	case "V10", "10", "IPFIX":
		return netflow.IPFIX, nil
	}
	return 0, fmt.Errorf("%w: unknown NetFlow version %q (want V5, V9 or V10)", ErrConfig, s)
}

// DomainID derives a stable observation domain id from a flow log id, so
// each flow log exports in its own domain.
func DomainID(flowLogID string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(flowLogID))
	return h.Sum32()
}

// Stats counts what an Exporter did.
type Stats struct {
	Packets uint64 // UDP packets sent
	Bytes   uint64 // payload bytes sent
	Records uint64 // flow records sent
	Skipped uint64 // records the version cannot carry (IPv6 in v5, bad addresses)
	Errors  uint64 // failed sends
}

// Exporter sends records to one collector. It is safe for concurrent use.
type Exporter struct {
	cfg  Config
	conn *net.UDPConn

	mu       sync.Mutex
	b        *netflow.Builder
	buf      []byte
	bootMs   int64
	seq      uint32 // v5: flows; v9: packets; IPFIX: data records
	sinceTpl int    // packets since templates were last sent
	lastTpl  time.Time
	stats    Stats
	scratch  []flow.Record
}

// New connects an Exporter to cfg.Collector.
func New(cfg Config) (*Exporter, error) {
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.TemplatePackets <= 0 {
		cfg.TemplatePackets = DefaultTemplatePackets
	}
	if cfg.TemplateInterval <= 0 {
		cfg.TemplateInterval = DefaultTemplateInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MTU < 200 || cfg.MTU > 65507 {
		return nil, fmt.Errorf("%w: MTU %d outside 200..65507", ErrConfig, cfg.MTU)
	}
	e := &Exporter{cfg: cfg, buf: make([]byte, 0, cfg.MTU)}
	switch cfg.Version {
	case netflow.V5:
	case netflow.V9, netflow.IPFIX:
		e.b, _ = netflow.NewBuilder(cfg.Version)
	default:
		return nil, fmt.Errorf("%w: version %d", ErrConfig, cfg.Version)
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Collector)
	if err != nil {
		return nil, fmt.Errorf("export: collector %q: %w", cfg.Collector, err)
	}
	var local *net.UDPAddr
	if cfg.Source != "" {
		ip, err := netip.ParseAddr(cfg.Source)
		if err != nil {
			return nil, fmt.Errorf("%w: source %q is not an IP address", ErrConfig, cfg.Source)
		}
		local = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))
	}
	if e.conn, err = net.DialUDP("udp", local, addr); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	_ = e.conn.SetWriteBuffer(4 << 20)
	e.bootMs = cfg.Now().UnixMilli()
	return e, nil
}

// Stats returns the counters so far.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Close closes the socket.
func (e *Exporter) Close() error { return e.conn.Close() }

// Export sends recs. It returns the first send error, after trying to send
// every packet.
func (e *Exporter) Export(recs []flow.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg.Version == netflow.V5 {
		return e.exportV5(recs)
	}
	return e.exportTemplated(recs)
}

// clock chooses the export time and uptime base for a packet of recs. Live
// records use the wall clock; records from a replayed capture (too old for
// a 32-bit uptime, or in the future) use their own last end time, as
// softflowd does when reading a file.
func (e *Exporter) clock(recs []flow.Record) netflow.Clock {
	now := e.cfg.Now().UnixMilli()
	lo, hi := now, int64(0)
	for i := range recs {
		if recs[i].Start > 0 { // a record without times does not move the base
			lo = min(lo, recs[i].Start)
		}
		hi = max(hi, recs[i].End)
	}
	exp := now
	if hi > now || now-lo >= 1<<31 {
		exp = (hi + 999) / 1000 * 1000
	}
	if lo < e.bootMs || exp-e.bootMs >= 1<<32 {
		// A minute before the oldest record: an uptime of 0 reads as
		// "unset" to some collectors.
		e.bootMs = lo - lo%1000 - 60_000
	}
	return netflow.Clock{BootMs: e.bootMs, ExportMs: exp}
}

func (e *Exporter) exportV5(recs []flow.Record) error {
	per := min(netflow.V5MaxRecords, (e.cfg.MTU-24)/48)
	batch := make([]flow.Record, 0, per)
	var first error
	flush := func() {
		if len(batch) == 0 {
			return
		}
		h := netflow.V5Header{Clock: e.clock(batch), Sequence: e.seq,
			EngineID: uint8(e.cfg.Domain), EngineType: uint8(e.cfg.Domain >> 8),
			SamplingInterval: v5Sampling(batch[0].SamplingInterval)}
		pkt, err := netflow.AppendV5(e.buf[:0], h, batch)
		if err == nil {
			err = e.send(pkt, len(batch))
		}
		if err != nil && first == nil {
			first = err
		}
		e.seq += uint32(len(batch))
		batch = batch[:0]
	}
	for i := range recs {
		r := &recs[i]
		if !r.SrcAddr.Unmap().Is4() || !r.DstAddr.Unmap().Is4() {
			e.stats.Skipped++
			continue
		}
		c := *r
		c.SrcAddr, c.DstAddr = r.SrcAddr.Unmap(), r.DstAddr.Unmap()
		if v5Sampling(c.SamplingInterval) == 0 {
			c.SamplingInterval = 1 // sent as estimates
		}
		if len(batch) > 0 && batch[0].SamplingInterval != c.SamplingInterval {
			flush()
		}
		batch = append(batch, c)
		if len(batch) == per {
			flush()
		}
	}
	flush()
	return first
}

// v5Sampling encodes a 1:N rate in the v5 header: mode 01 (deterministic)
// in the top two bits, N in the low 14.
func v5Sampling(n uint32) uint16 {
	if n <= 1 || n > 0x3FFF {
		return 0
	}
	return 1<<14 | uint16(n)
}

func (e *Exporter) exportTemplated(recs []flow.Record) error {
	recs = e.byFamily(recs)
	var first error
	for len(recs) > 0 {
		n, err := e.packet(recs)
		if err != nil && first == nil {
			first = err
		}
		recs = recs[n:]
	}
	return first
}

// byFamily returns recs with the IPv4 records first, so that packets hold
// few sets (each family has its own template).
func (e *Exporter) byFamily(recs []flow.Record) []flow.Record {
	e.scratch = e.scratch[:0]
	for i := range recs {
		if recs[i].SrcAddr.Unmap().Is4() {
			e.scratch = append(e.scratch, recs[i])
		}
	}
	for i := range recs {
		if !recs[i].SrcAddr.Unmap().Is4() {
			e.scratch = append(e.scratch, recs[i])
		}
	}
	if cap(e.scratch) > 1<<16 {
		defer func() { e.scratch = nil }() // do not pin a huge batch
	}
	return e.scratch
}

// packet sends one message holding as many of recs as fit and returns how
// many records it consumed.
func (e *Exporter) packet(recs []flow.Record) (int, error) {
	// The clock needs the records in the packet; the MTU bounds them.
	maxRecs := e.cfg.MTU / 40
	c := e.clock(recs[:min(len(recs), maxRecs)])
	e.b.Reset(e.buf, c)
	now := e.cfg.Now()
	if e.sinceTpl == 0 || e.sinceTpl >= e.cfg.TemplatePackets || now.Sub(e.lastTpl) >= e.cfg.TemplateInterval {
		e.b.AppendTemplates(false) // rates travel in the records
		e.sinceTpl, e.lastTpl = 0, now
	}
	n := 0
	for n < len(recs) && n < maxRecs {
		r := &recs[n]
		if e.b.Len()+e.b.RecordSize(r) > e.cfg.MTU {
			break
		}
		if err := e.b.AppendRecord(r); err != nil {
			e.stats.Skipped++
		}
		n++
	}
	seq := e.seq
	if e.cfg.Version == netflow.V9 {
		e.seq++
	} else {
		e.seq += uint32(e.b.Records())
	}
	records := e.b.Records()
	pkt := e.b.Finish(netflow.MessageHeader{Sequence: seq, Domain: e.cfg.Domain})
	e.sinceTpl++
	return n, e.send(pkt, records)
}

func (e *Exporter) send(pkt []byte, records int) error {
	if _, err := e.conn.Write(pkt); err != nil {
		e.stats.Errors++
		return fmt.Errorf("export: send: %w", err)
	}
	e.stats.Packets++
	e.stats.Bytes += uint64(len(pkt))
	e.stats.Records += uint64(records)
	return nil
}
