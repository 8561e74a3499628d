package collect

import (
	"context"
	"net/netip"
	"time"

	"flowlog/internal/netflow"
)

// Collectors side by side (anycast, ECMP, a failover pair) each receive part
// of one exporter's datagrams, and its templates only now and then. Each
// shares what it learned (Config.Share) and takes what the others learned
// (Adopt, and Config.Seed for the state of a new exporter), so that every
// one of them decodes from the first data set it receives. Held data sets
// are decoded as soon as their template comes from another collector.

// Shared is one exporter's templates, as collectors share them.
type Shared struct {
	Exporter  netip.Addr
	Templates []netflow.SavedTemplate
}

// shareRetry is how often templates not yet shared (the last share failed,
// or changes came since) are looked for.
const shareRetry = 2 * time.Second

// shareLoop shares changed templates soon after they change, and all of
// them every half template lifetime, so that the learned times the other
// collectors hold keep up with the exporter's announcements.
func (c *Collector) shareLoop() {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.stop
		cancel()
	}()
	t := time.NewTicker(shareRetry)
	defer t.Stop()
	var refreshed time.Time
	for {
		select {
		case <-c.stop:
			return
		case <-c.shareWake:
		case <-t.C:
		}
		now := c.cfg.Now()
		all := now.Sub(refreshed) >= c.cfg.Session.TemplateTTL/2
		if c.share(ctx, now, all) && all {
			refreshed = now
		}
	}
}

// share sends the templates of the exporters whose templates changed since
// they were last shared (of all that have templates, with all), and says
// whether the share was taken. What a failed share held is sent again.
func (c *Collector) share(ctx context.Context, now time.Time, all bool) bool {
	type pending struct {
		e       *exporter
		changes uint64
	}
	var out []Shared
	var sent []pending
	c.mu.RLock()
	for a, e := range c.exporters {
		e.mu.Lock()
		n := e.sess.Changes()
		if !e.gone && (n != e.shared || all && e.sess.TemplateCount() > 0) {
			out = append(out, Shared{Exporter: a, Templates: e.sess.Templates()})
			sent = append(sent, pending{e, n})
		}
		e.mu.Unlock()
	}
	c.mu.RUnlock()
	if len(out) == 0 {
		return true
	}
	if err := c.cfg.Share(ctx, out); err != nil {
		c.shareErrors.Add(1)
		return false
	}
	for _, p := range sent {
		p.e.mu.Lock()
		p.e.shared = p.changes
		p.e.mu.Unlock()
	}
	return true
}

// wakeShare has changed templates shared soon.
func (c *Collector) wakeShare() {
	select {
	case c.shareWake <- struct{}{}:
	default:
	}
}

// Adopt takes templates another collector of src shared. Data sets held
// for them are decoded and handed on at once. A source without state takes
// them when its state is made, from Config.Seed.
func (c *Collector) Adopt(src netip.Addr, ts []netflow.SavedTemplate) {
	src = src.Unmap()
	c.mu.RLock()
	e := c.exporters[src]
	c.mu.RUnlock()
	tm, ok := c.terms(src)
	if e == nil || !ok {
		return
	}
	now := c.cfg.Now()
	e.mu.Lock()
	out, res, _ := e.sess.Restore(ts, now, nil) // what is over the limits is left out
	e.c.Dropped += uint64(res.Dropped)
	c.finish(e, src, out, now, tm)
	e.mu.Unlock()
	if len(out) > 0 && c.handler != nil {
		c.handler(out)
	}
}

// ShareErrors is the number of template shares that failed (and were
// sent again later).
func (c *Collector) ShareErrors() uint64 { return c.shareErrors.Load() }
