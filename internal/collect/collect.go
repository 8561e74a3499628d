// Package collect receives NetFlow v5/v9, IPFIX and sFlow over UDP and turns
// them into flow records. Template state is kept per exporter address and
// observation domain (never per source port), bounded per exporter, and
// persisted in a data directory across restarts.
package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
)

// Config configures a Collector. Zero fields take the defaults.
type Config struct {
	Listen       string // ADDR:PORT for NetFlow v5/v9 and IPFIX (auto-detected); empty for none
	SFlowListen  string // ADDR:PORT for sFlow v5; empty for none
	Workers      int    // sockets (SO_REUSEPORT) per listener; default min(NumCPU, 4)
	ReadBuffer   int    // socket receive buffer bytes; default 32 MiB
	Batch        int    // datagrams per read call; default 64
	DataDir      string // where templates persist; empty keeps them in memory only
	MaxExporters int    // exporters tracked at once; default 4096
	Session      netflow.SessionConfig
	Now          func() time.Time
}

// Handler receives decoded records. It is called from several goroutines
// at once and must not keep recs after it returns.
type Handler func(recs []flow.Record)

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("collect: bad config")

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
}

type exporter struct {
	mu   sync.Mutex
	sess *netflow.Session
	c    Counters
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
	refused   uint64 // datagrams from exporters over MaxExporters

	stop      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

const templatesFile = "templates.json"

// New binds the listeners, restores persisted templates and starts the
// receive workers.
func New(cfg Config, h Handler) (*Collector, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = min(runtime.NumCPU(), 4)
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 32 << 20
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.MaxExporters <= 0 {
		cfg.MaxExporters = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Listen == "" && cfg.SFlowListen == "" {
		return nil, fmt.Errorf("%w: nothing to listen on", ErrConfig)
	}
	c := &Collector{cfg: cfg, handler: h, exporters: make(map[netip.Addr]*exporter), stop: make(chan struct{})}
	if err := c.load(); err != nil {
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
	if cfg.DataDir != "" {
		c.wg.Add(1)
		go c.persistLoop()
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
		c.closeErr = c.save()
	})
	return c.closeErr
}

func (c *Collector) closeConns() {
	for _, conn := range c.conns {
		conn.Close()
	}
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
	e := c.exporter(src)
	if e == nil {
		return nil, fmt.Errorf("%w: exporter %v", netflow.ErrLimit, src)
	}
	return c.decode(e, src, pkt, sflow, c.cfg.Now(), nil)
}

func (c *Collector) packet(src netip.Addr, pkt []byte, sflow bool, now time.Time, out []flow.Record) []flow.Record {
	e := c.exporter(src)
	if e == nil {
		return out
	}
	out, _ = c.decode(e, src, pkt, sflow, now, out)
	return out
}

func (c *Collector) decode(e *exporter, src netip.Addr, pkt []byte, sflow bool, now time.Time, out []flow.Record) ([]flow.Record, error) {
	before := len(out)
	var err error
	e.mu.Lock()
	e.c.Packets++
	if sflow {
		var res netflow.SFlowResult
		out, res, err = netflow.DecodeSFlow(pkt, now, out)
		e.c.CounterSamples += uint64(res.CounterSamples)
	} else {
		var res netflow.Result
		out, res, err = e.sess.Decode(pkt, now, out)
		e.c.UnknownTemplates += uint64(res.Unknown)
		e.c.Dropped += uint64(res.Dropped)
		e.c.SequenceLost += res.Lost
	}
	if err != nil {
		e.c.DecodeErrors++
	}
	e.c.Records += uint64(len(out) - before)
	e.mu.Unlock()
	for i := before; i < len(out); i++ {
		out[i].ExporterAddr = src
		out[i].NormalizeICMP()
	}
	return out, err
}

// exporter returns src's state, creating it within MaxExporters.
func (c *Collector) exporter(src netip.Addr) *exporter {
	c.mu.RLock()
	e := c.exporters[src]
	c.mu.RUnlock()
	if e != nil {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e = c.exporters[src]; e != nil {
		return e
	}
	if len(c.exporters) >= c.cfg.MaxExporters {
		c.refused++
		return nil
	}
	e = &exporter{sess: netflow.NewSession(c.cfg.Session), c: Counters{Exporter: src}}
	c.exporters[src] = e
	return e
}

// Stats returns every exporter's counters, ordered by address.
func (c *Collector) Stats() []Counters {
	c.mu.RLock()
	out := make([]Counters, 0, len(c.exporters))
	for _, e := range c.exporters {
		e.mu.Lock()
		out = append(out, e.c)
		e.mu.Unlock()
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Exporter.Less(out[j].Exporter) })
	return out
}

// Refused is the number of datagrams ignored because MaxExporters was reached.
func (c *Collector) Refused() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.refused
}

func (c *Collector) persistLoop() {
	defer c.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			_ = c.save()
		}
	}
}

// save writes every exporter's templates to the data dir atomically.
func (c *Collector) save() error {
	if c.cfg.DataDir == "" {
		return nil
	}
	all := map[string][]netflow.SavedTemplate{}
	c.mu.RLock()
	for a, e := range c.exporters {
		e.mu.Lock()
		if ts := e.sess.Templates(); len(ts) > 0 {
			all[a.String()] = ts
		}
		e.mu.Unlock()
	}
	c.mu.RUnlock()
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	tmp := filepath.Join(c.cfg.DataDir, templatesFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(c.cfg.DataDir, templatesFile)); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	return nil
}

// load restores templates saved by an earlier run; expired ones are skipped.
func (c *Collector) load() error {
	if c.cfg.DataDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(c.cfg.DataDir, templatesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	var all map[string][]netflow.SavedTemplate
	if err := json.Unmarshal(b, &all); err != nil {
		return fmt.Errorf("collect: %s: %w", templatesFile, err)
	}
	now := c.cfg.Now()
	for a, ts := range all {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		if e := c.exporter(addr); e != nil {
			_ = e.sess.Restore(ts, now)
		}
	}
	return nil
}
