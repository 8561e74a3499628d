package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"flowlog/internal/capture"
	"flowlog/internal/control"
	"flowlog/internal/meter"
	"flowlog/internal/packet"
)

// tap is a live capture on one interface, shared by every meter observing
// it.
type tap struct {
	iface  string
	live   *capture.Live
	subs   atomic.Pointer[[]*meter.Meter]
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why the capture ended; read after done
}

// openTap starts capturing on iface, as lc says (nil: promiscuous,
// unfiltered).
func openTap(iface string, lc *capture.LiveConfig) (*tap, error) {
	if _, err := net.InterfaceByName(iface); err != nil {
		return nil, fmt.Errorf("interface %s does not exist on this host", iface)
	}
	cfg := capture.LiveConfig{Promiscuous: true}
	if lc != nil {
		cfg = *lc
	}
	cfg.Interfaces = []string{iface}
	live, err := capture.OpenLive(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot capture on interface %s: %v", iface, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &tap{iface: iface, live: live, cancel: cancel, done: make(chan struct{})}
	t.subs.Store(&[]*meter.Meter{})
	go func() {
		defer close(t.done)
		t.err = live.RunBatch(ctx, t.feed)
		if t.err == nil && ctx.Err() == nil {
			t.err = errors.New("capture stopped")
		}
	}()
	return t, nil
}

func (t *tap) feed(frames []packet.Frame) {
	for _, m := range *t.subs.Load() {
		m.FeedBatch(frames)
	}
}

// subscribe and unsubscribe are called from one goroutine only (the
// plane's); the capture goroutine reads the list without a lock.
func (t *tap) subscribe(m *meter.Meter) {
	subs := append(slices.Clone(*t.subs.Load()), m)
	t.subs.Store(&subs)
}

func (t *tap) unsubscribe(m *meter.Meter) (left int) {
	subs := slices.DeleteFunc(slices.Clone(*t.subs.Load()), func(x *meter.Meter) bool { return x == m })
	t.subs.Store(&subs)
	return len(subs)
}

// failure is why the capture ended, or nil while it runs.
func (t *tap) failure() error {
	select {
	case <-t.done:
		return fmt.Errorf("capture on interface %s failed: %v", t.iface, t.err)
	default:
		return nil
	}
}

// close stops the capture and returns the kernel's final counts.
func (t *tap) close() []capture.IfaceStats {
	t.cancel()
	<-t.done
	st, _ := t.live.Stats()
	t.live.Close()
	return st
}

// closeTap closes t, keeping its counts in the totals.
func (p *Plane) closeTap(t *tap) {
	p.totals.retireTap(t.close())
	delete(p.taps, t.iface)
}

// attachTap feeds u's meter from a live capture on iface.
func (p *Plane) attachTap(u *unit, iface string) error {
	t := p.taps[iface]
	if t == nil {
		var err error
		if t, err = openTap(iface, p.cfg.Capture); err != nil {
			return err
		}
		p.taps[iface] = t
	}
	t.subscribe(u.meter)
	u.err = t.failure
	u.stop = func() {
		if t.unsubscribe(u.meter) == 0 {
			p.closeTap(t)
		}
	}
	return nil
}

// mayReplay keeps an account from reading files of the server's host that
// are not meant for it: only the operator's account replays any file;
// others (fenced), only files inside PcapDir. The control plane checks the
// path when the gateway is made; this checks again when the replay starts,
// since a link inside the directory may have been pointed elsewhere
// meanwhile.
func (p *Plane) mayReplay(pt point) error {
	if !pt.pcapFenced {
		return nil
	}
	return control.InPcapDir(p.cfg.PcapDir, pt.pcapPath)
}

// attachReplay feeds a pcap file to u's meter, once, with its timestamps
// moved to the present: paced by them ("realtime"), or as fast as possible
// ("fast"), in which case the file is placed so that it ends now.
func (p *Plane) attachReplay(u *unit, path, pace string) error {
	f, err := openPcap(path)
	if err != nil {
		return err
	}
	shift := time.Duration(0)
	if pace == "fast" {
		first, last, err := span(path)
		if err != nil {
			f.Close()
			return fmt.Errorf("pcap file %s cannot be read: %v", path, err)
		}
		shift = time.Since(first) - last.Sub(first)
	}
	u.runFile(f, path, func(ctx context.Context) error {
		return replay(ctx, f, u.meter, shift, pace != "fast")
	}, nil)
	return nil
}

// attachImport reads a pcap file through u's meter, once, as fast as it
// can, at the file's own times (Config.Imported).
func (p *Plane) attachImport(u *unit, path string) error {
	f, err := openPcap(path)
	if err != nil {
		return err
	}
	u.ownClock, u.progress = true, f.Progress
	u.runFile(f, path, func(ctx context.Context) error {
		err := f.RunBatch(func(frames []packet.Frame) {
			if ctx.Err() == nil { // stopped: read on to the end, feeding nothing
				u.meter.FeedBatch(frames)
			}
		})
		u.meter.Flush() // the file's flows are over: deliver them now
		return err
	}, func(err error) { p.cfg.Imported(u.key.flowLog, err) })
	return nil
}

func openPcap(path string) (*capture.File, error) {
	f, err := capture.OpenFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pcap file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("pcap file %s cannot be read: %v", path, err)
	}
	return f, nil
}

// runFile runs read, which reads f, until it returns or the unit stops;
// its failure is the unit's error. If it was not stopped, done hears how
// it ended.
func (u *unit) runFile(f *capture.File, path string, read func(context.Context) error, done func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	var failed atomic.Pointer[error]
	go func() {
		defer close(ended)
		defer f.Close()
		err := read(ctx)
		if err != nil {
			err = fmt.Errorf("pcap file %s: %v", path, err)
			failed.Store(&err)
		}
		if done != nil && ctx.Err() == nil {
			done(err)
		}
	}()
	u.err = func() error {
		if e := failed.Load(); e != nil {
			return *e
		}
		return nil
	}
	u.stop = func() { cancel(); <-ended }
}

// span returns the times of a capture file's first and last frames.
func span(path string) (first, last time.Time, err error) {
	f, err := capture.OpenFile(path)
	if err != nil {
		return first, last, err
	}
	defer f.Close()
	for {
		ts, _, _, err := f.Next()
		if errors.Is(err, io.EOF) {
			return first, last, nil
		}
		if err != nil {
			return first, last, err
		}
		if first.IsZero() {
			first = ts
		}
		last = ts
	}
}

// replay runs the file through m. With paced, the first frame is fed now and
// every later one at its offset from the first; otherwise frames are moved
// by shift and fed at once.
func replay(ctx context.Context, f *capture.File, m *meter.Meter, shift time.Duration, paced bool) error {
	var first time.Time
	start := time.Now()
	for ctx.Err() == nil {
		ts, lt, frame, err := f.Next()
		if errors.Is(err, io.EOF) {
			m.Flush() // the file's flows are over: deliver them now
			return nil
		}
		if err != nil {
			return err
		}
		if !paced {
			m.Feed(ts.Add(shift), lt, frame)
			continue
		}
		if first.IsZero() {
			first = ts
		}
		at := start.Add(ts.Sub(first))
		if wait := time.Until(at); wait > time.Millisecond {
			if !sleep(ctx, wait) {
				return nil
			}
		}
		m.Feed(at, lt, frame)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
