// Package enrich fills the fields of flow records that the flow itself does
// not carry, at ingest: the country and AS (number and name) of both
// addresses, from GeoIP/ASN databases in the MMDB format (MaxMind GeoLite2
// Country/City/ASN, DB-IP lite, IPinfo), and the names and speeds of the
// input and output interfaces, from an Interfaces source such as an SNMP
// poller. Database files are reloaded when they change; a file that fails
// to load keeps the one loaded before.
package enrich

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"flowlog/internal/flow"
)

// Config configures an Enricher.
type Config struct {
	// Files are MMDB databases. For each address, the first database
	// that knows its country gives the country, the first that knows its
	// AS gives the AS number and name.
	Files []string
	// Reload is how often the files are checked for a change (size or
	// modification time); default 30s.
	Reload time.Duration
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Reload <= 0 {
		c.Reload = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Interfaces names the interfaces of exporters (e.g. from SNMP).
type Interfaces interface {
	// Interface returns the name and speed (bits/s) of the exporter's
	// interface ifIndex, and whether it knows them.
	Interface(exporter netip.Addr, ifIndex uint32) (name string, speedBps uint64, ok bool)
}

// Enricher fills records' GeoIP, ASN and interface fields. Its methods may
// be called from several goroutines.
type Enricher struct {
	cfg   Config
	log   *slog.Logger
	dbs   atomic.Pointer[databases]
	ifs   atomic.Pointer[Interfaces]
	mu    sync.Mutex // serializes reloads
	pool  sync.Pool  // of *addrCache
	stop  chan struct{}
	done  chan struct{}
	close sync.Once

	lookups, misses, reloads, reloadErrors atomic.Uint64
}

// databases are the loaded files, in Config.Files order; gen changes with
// every reload, which empties the address caches.
type databases struct {
	gen  uint64
	list []*database
}

// New loads cfg.Files and watches them for changes until Close. A file
// that cannot be loaded at start is an error.
func New(cfg Config) (*Enricher, error) {
	cfg.defaults()
	e := &Enricher{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	st := &databases{gen: 1, list: make([]*database, len(cfg.Files))}
	var errs []error
	for i, f := range cfg.Files {
		db, err := load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.logLoad(db, "loaded")
		st.list[i] = db
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.dbs.Store(st)
	e.pool.New = func() any { return new(addrCache) }
	if len(cfg.Files) > 0 {
		go e.watch()
	} else {
		close(e.done)
	}
	return e, nil
}

// Close stops watching the files. A nil Enricher does nothing.
func (e *Enricher) Close() error {
	if e == nil {
		return nil
	}
	e.close.Do(func() { close(e.stop) })
	<-e.done
	return nil
}

// SetInterfaces sets where interface names and speeds come from; nil for
// nowhere.
func (e *Enricher) SetInterfaces(ifs Interfaces) {
	if ifs == nil {
		e.ifs.Store(nil)
		return
	}
	e.ifs.Store(&ifs)
}

// Enrich fills the records' empty GeoIP, ASN and interface fields. Fields
// already set (e.g. AS numbers the exporter sent) are kept.
func (e *Enricher) Enrich(recs []flow.Record) {
	if e == nil || len(recs) == 0 {
		return
	}
	if ifs := e.ifs.Load(); ifs != nil {
		interfaces(*ifs, recs)
	}
	st := e.dbs.Load()
	if len(st.list) == 0 {
		return
	}
	c := e.pool.Get().(*addrCache)
	c.reset(st.gen)
	var n counts
	for i := range recs {
		r := &recs[i]
		if r.SrcCountry == "" || r.SrcAS == 0 {
			fill(c.answer(st, r.SrcAddr, &n), &r.SrcCountry, &r.SrcAS, &r.SrcASName)
		}
		if r.DstCountry == "" || r.DstAS == 0 {
			fill(c.answer(st, r.DstAddr, &n), &r.DstCountry, &r.DstAS, &r.DstASName)
		}
	}
	e.pool.Put(c)
	e.lookups.Add(n.lookups)
	e.misses.Add(n.misses)
}

func fill(a *answer, country *string, as *uint32, asName *string) {
	if *country == "" {
		*country = a.country
	}
	if *as == 0 {
		*as, *asName = a.as, a.asName
	}
}

// interfaces fills interface names and speeds.
func interfaces(ifs Interfaces, recs []flow.Record) {
	for i := range recs {
		r := &recs[i]
		if r.InputIfIndex != 0 && r.InIfName == "" {
			if name, speed, ok := ifs.Interface(r.ExporterAddr, r.InputIfIndex); ok {
				r.InIfName, r.InIfSpeed = name, speed
			}
		}
		if r.OutputIfIndex != 0 && r.OutIfName == "" {
			if name, speed, ok := ifs.Interface(r.ExporterAddr, r.OutputIfIndex); ok {
				r.OutIfName, r.OutIfSpeed = name, speed
			}
		}
	}
}

// Stats are an Enricher's counters.
type Stats struct {
	Lookups      uint64 // public addresses looked up (the cache's answers included)
	Misses       uint64 // of those, addresses no database knew
	Reloads      uint64 // files loaded again after a change
	ReloadErrors uint64 // changed files that failed to load (the old one stays)
}

// Stats returns the counters.
func (e *Enricher) Stats() Stats {
	if e == nil {
		return Stats{}
	}
	return Stats{Lookups: e.lookups.Load(), Misses: e.misses.Load(), Reloads: e.reloads.Load(), ReloadErrors: e.reloadErrors.Load()}
}

// watch polls the files until Close.
func (e *Enricher) watch() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.Reload)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.Check()
		}
	}
}

// Check loads again the files that changed since they were last tried,
// and swaps them in atomically; a file that fails keeps the database
// loaded before, and is tried again when it changes again.
func (e *Enricher) Check() {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.dbs.Load()
	var next *databases
	for i, path := range e.cfg.Files {
		cur := st.list[i]
		sig, err := stat(path)
		if err == nil && sig.same(cur.tried) {
			continue
		}
		if err != nil {
			if cur.statErr != err.Error() {
				e.log.Error("GeoIP/ASN database: cannot read the file; the database loaded before stays", "file", path, "err", err)
				e.reloadErrors.Add(1)
			}
			cur.statErr = err.Error()
			continue
		}
		cur.statErr = ""
		db, err := load(path)
		if err != nil {
			cur.tried = sig
			e.reloadErrors.Add(1)
			e.log.Error("GeoIP/ASN database: the changed file does not load; the database loaded before stays", "file", path, "err", err)
			continue
		}
		if next == nil {
			next = &databases{gen: st.gen + 1, list: append([]*database(nil), st.list...)}
		}
		next.list[i] = db
		e.reloads.Add(1)
		e.logLoad(db, "reloaded")
	}
	if next != nil {
		e.dbs.Store(next)
	}
}

func (e *Enricher) logLoad(db *database, what string) {
	e.log.Info("GeoIP/ASN database "+what, "file", db.path, "type", db.kind, "provides", db.provides(),
		"built", db.built.Format(time.DateOnly))
}
