package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"

	"flowlog/internal/packet"
)

// LiveConfig sets up live capture.
type LiveConfig struct {
	Interfaces  []string             // capture on each of these at once
	Promiscuous bool                 // put the interfaces in promiscuous mode
	Filter      []bpf.RawInstruction // optional classic BPF program (as tcpdump -dd prints)
	BlockSize   int                  // ring block size; default 1 MiB
	NumBlocks   int                  // ring blocks per interface; default 64
}

// IfaceStats are the kernel's counters for one interface's socket.
type IfaceStats struct {
	Interface    string
	Packets      uint64 // received by the socket
	Drops        uint64 // dropped by the kernel because the ring was full
	QueueFreezes uint64
}

// Live captures from Linux interfaces through AF_PACKET TPACKET_V3 rings.
type Live struct {
	ifaces []*liveIface
}

type liveIface struct {
	name string
	cfg  LiveConfig
	link packet.LinkType

	mu sync.Mutex // guards tp, which run replaces when the interface comes back up
	tp *afpacket.TPacket
}

// ring returns the interface's current ring.
func (ifc *liveIface) ring() *afpacket.TPacket {
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	return ifc.tp
}

// OpenLive opens one ring per interface. It needs CAP_NET_RAW.
func OpenLive(cfg LiveConfig) (*Live, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("capture: no interface given")
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 1 << 20
	}
	if cfg.NumBlocks == 0 {
		cfg.NumBlocks = 64
	}
	l := &Live{}
	for _, name := range cfg.Interfaces {
		ifc, err := openIface(name, cfg)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.ifaces = append(l.ifaces, ifc)
	}
	return l, nil
}

func openIface(name string, cfg LiveConfig) (*liveIface, error) {
	link, loopback, err := ifaceLinkType(name)
	if err != nil {
		return nil, err
	}
	filter := cfg.Filter
	if loopback {
		filter = skipOutgoing(filter)
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(name),
		afpacket.TPacketVersion3,
		afpacket.OptBlockSize(cfg.BlockSize),
		afpacket.OptFrameSize(1<<16),
		afpacket.OptNumBlocks(cfg.NumBlocks),
		afpacket.OptBlockTimeout(10*time.Millisecond),
		afpacket.OptPollTimeout(100*time.Millisecond),
		afpacket.OptAddVLANHeader(true),
	)
	if err != nil {
		return nil, fmt.Errorf("capture: open %s: %w", name, err)
	}
	if cfg.Promiscuous {
		if err := tp.SetPromiscuous(true); err != nil {
			tp.Close()
			return nil, fmt.Errorf("capture: promiscuous mode on %s: %w", name, err)
		}
	}
	if len(filter) > 0 {
		if err := tp.SetBPF(filter); err != nil {
			tp.Close()
			return nil, fmt.Errorf("capture: filter on %s: %w", name, err)
		}
	}
	return &liveIface{name: name, cfg: cfg, link: link, tp: tp}, nil
}

// ifaceLinkType maps the interface's ARPHRD type to the framing AF_PACKET
// delivers.
func ifaceLinkType(name string) (lt packet.LinkType, loopback bool, err error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/type")
	if err != nil {
		return 0, false, fmt.Errorf("capture: interface %s: %w", name, err)
	}
	t, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	switch t {
	case 772: // ARPHRD_LOOPBACK
		return packet.LinkEthernet, true, nil
	case 65534, 768, 769, 776, 778: // NONE (tun, wireguard), tunnels
		return packet.LinkRaw, false, nil
	}
	return packet.LinkEthernet, false, nil
}

// skipOutgoing prefixes a filter so that it drops the outgoing copy of each
// packet: on loopback, AF_PACKET delivers every packet twice (as libpcap
// knows and hides too).
func skipOutgoing(filter []bpf.RawInstruction) []bpf.RawInstruction {
	const packetOutgoing = 4
	prefix, _ := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
	})
	if len(filter) == 0 {
		filter, _ = bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 1 << 18}})
	}
	return append(prefix, filter...)
}

// RunBatch captures on every interface until ctx ends, handing frames to h
// in batches from one goroutine per interface. A batch's frames are copies
// (the ring reuses a frame's slot at the next read) valid only during the
// call.
func (l *Live) RunBatch(ctx context.Context, h func([]packet.Frame)) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.ifaces))
	for i, ifc := range l.ifaces {
		wg.Go(func() { errs[i] = ifc.run(ctx, h) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (ifc *liveIface) run(ctx context.Context, h func([]packet.Frame)) error {
	b := frameBatch{arena: make([]byte, 0, batchArena)}
	defer b.flush(h)
	tp := ifc.ring()
	for ctx.Err() == nil {
		data, ci, err := tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			b.flush(h) // a quiet interface: hand out what waits
			continue
		}
		if errors.Is(err, afpacket.ErrPoll) && !isUp(ifc.name) {
			// A socket bound to a down interface reports ENETDOWN until
			// it is closed: wait for the interface, then bind afresh.
			b.flush(h)
			if tp, err = ifc.reopen(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("capture: %s: %w", ifc.name, err)
		}
		b.add(ci.Timestamp.UnixNano(), ifc.link, data, h)
	}
	return nil
}

// isUp says whether the interface exists and is administratively up.
func isUp(name string) bool {
	i, err := net.InterfaceByName(name)
	return err == nil && i.Flags&net.FlagUp != 0
}

// reopen waits until the interface is up again, then replaces its ring. It
// fails when the interface disappears.
func (ifc *liveIface) reopen(ctx context.Context) (*afpacket.TPacket, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !isUp(ifc.name) {
		if _, err := net.InterfaceByName(ifc.name); err != nil {
			return nil, fmt.Errorf("capture: interface %s is gone", ifc.name)
		}
		select {
		case <-ctx.Done():
			return ifc.ring(), nil
		case <-tick.C:
		}
	}
	fresh, err := openIface(ifc.name, ifc.cfg)
	if err != nil {
		return nil, err
	}
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	ifc.tp.Close()
	ifc.tp = fresh.tp
	return ifc.tp, nil
}

// A batch holds up to batchFrames frames in an arena of batchArena bytes,
// which any frame of the ring (64 KiB at most) fits. A frame waits at most
// batchDelay of capture time for the next ones, or the poll timeout when
// none come.
const (
	batchFrames = 64
	batchArena  = 256 << 10
	batchDelay  = int64(10 * time.Millisecond)
)

// frameBatch gathers copies of live frames for the meter's FeedBatch.
type frameBatch struct {
	frames [batchFrames]packet.Frame
	n      int
	arena  []byte
}

// add copies a frame into the batch and hands the batch to h when it is
// full or its first frame has waited long enough.
func (b *frameBatch) add(ts int64, lt packet.LinkType, data []byte, h func([]packet.Frame)) {
	if len(b.arena)+len(data) > cap(b.arena) {
		b.flush(h)
		if len(data) > cap(b.arena) {
			b.arena = make([]byte, 0, len(data))
		}
	}
	start := len(b.arena)
	b.arena = append(b.arena, data...)
	b.frames[b.n] = packet.Frame{TS: ts, Link: lt, Data: b.arena[start:len(b.arena):len(b.arena)]}
	b.n++
	if b.n == len(b.frames) || ts-b.frames[0].TS >= batchDelay {
		b.flush(h)
	}
}

func (b *frameBatch) flush(h func([]packet.Frame)) {
	if b.n > 0 {
		h(b.frames[:b.n])
		b.n = 0
	}
	b.arena = b.arena[:0]
}

// Stats returns the kernel's counters per interface since opening (the
// kernel clears them at each reading; afpacket adds them up).
func (l *Live) Stats() ([]IfaceStats, error) {
	out := make([]IfaceStats, 0, len(l.ifaces))
	for _, ifc := range l.ifaces {
		_, v3, err := ifc.ring().SocketStats()
		if err != nil {
			return nil, fmt.Errorf("capture: stats of %s: %w", ifc.name, err)
		}
		out = append(out, IfaceStats{Interface: ifc.name, Packets: uint64(v3.Packets()),
			Drops: uint64(v3.Drops()), QueueFreezes: uint64(v3.QueueFreezes())})
	}
	return out, nil
}

// Close releases the rings.
func (l *Live) Close() {
	for _, ifc := range l.ifaces {
		ifc.ring().Close()
	}
}

// ParseFilter reads a classic BPF program in the form `tcpdump -dd EXPR`
// prints: one `{ code, jt, jf, k },` line per instruction.
func ParseFilter(text string) ([]bpf.RawInstruction, error) {
	var prog []bpf.RawInstruction
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, ","), "}")
		line = strings.TrimPrefix(line, "{")
		parts := strings.Split(line, ",")
		if len(parts) != 4 {
			return nil, fmt.Errorf("capture: filter line %d: want 4 fields, got %q", n+1, line)
		}
		var v [4]uint64
		for i, p := range parts {
			x, err := strconv.ParseUint(strings.TrimSpace(p), 0, 32)
			if err != nil {
				return nil, fmt.Errorf("capture: filter line %d: %w", n+1, err)
			}
			v[i] = x
		}
		if v[1] > 255 || v[2] > 255 || v[0] > 0xffff {
			return nil, fmt.Errorf("capture: filter line %d: field out of range", n+1)
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if len(prog) == 0 {
		return nil, errors.New("capture: empty filter")
	}
	return prog, nil
}
