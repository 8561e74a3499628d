package collect

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"flowlog/internal/netflow"
)

// Templates persist per exporter, one file each in DataDir/templates, so
// that only the exporters whose templates changed are written. A file is
// bounded by the session limits; files are bounded in number by
// MaxExporters, since an exporter's file goes with its state.
const (
	templatesDir    = "templates"
	legacyTemplates = "templates.json" // one file for all exporters, before
	maxTemplateFile = 4 << 20          // larger files were not written by this version
)

func (c *Collector) templatePath(a netip.Addr) string {
	return filepath.Join(c.cfg.DataDir, templatesDir, a.WithZone("").String()+".json")
}

// newExporter makes src's state, with the templates an earlier run saved
// and those other collectors of src shared (the later of each).
func (c *Collector) newExporter(src netip.Addr, now time.Time) *exporter {
	e := &exporter{sess: netflow.NewSession(c.cfg.Session), c: Counters{Exporter: src, First: now}}
	if c.cfg.DataDir != "" {
		if ts, at, err := readTemplates(c.templatePath(src)); err == nil {
			_, _, _ = e.sess.Restore(ts, now, nil) // what is over the limits is left out
			e.saved, e.savedAt = e.sess.Changes(), at
		}
	}
	if c.cfg.Seed != nil {
		_, _, _ = e.sess.Restore(c.cfg.Seed(src), now, nil)
	}
	return e
}

func readTemplates(path string) ([]netflow.SavedTemplate, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if st.Size() > maxTemplateFile {
		return nil, time.Time{}, fmt.Errorf("collect: %s: %d bytes", path, st.Size())
	}
	var ts []netflow.SavedTemplate
	if err := json.NewDecoder(f).Decode(&ts); err != nil {
		return nil, time.Time{}, fmt.Errorf("collect: %s: %w", path, err)
	}
	return ts, st.ModTime(), nil
}

// tidy removes what earlier runs left that is of no use: the old single
// templates file, files whose templates have all expired, and the oldest
// files over MaxExporters.
func (c *Collector) tidy() error {
	if c.cfg.DataDir == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(c.cfg.DataDir, legacyTemplates)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("collect: %w", err)
	}
	dir := filepath.Join(c.cfg.DataDir, templatesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	type file struct {
		name string
		mod  time.Time
	}
	var keep []file
	expired := c.cfg.Now().Add(-c.cfg.Session.TemplateTTL)
	for _, d := range ents {
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() || info.ModTime().Before(expired) ||
			filepath.Ext(d.Name()) != ".json" || info.Size() > maxTemplateFile {
			_ = os.RemoveAll(filepath.Join(dir, d.Name()))
			continue
		}
		keep = append(keep, file{d.Name(), info.ModTime()})
	}
	slices.SortFunc(keep, func(a, b file) int { return b.mod.Compare(a.mod) })
	for _, f := range keep[min(len(keep), c.cfg.MaxExporters):] {
		_ = os.Remove(filepath.Join(dir, f.name))
	}
	return nil
}

// save writes the templates of the exporters whose templates changed, and
// of those whose file is older than half the template lifetime (so that
// restored templates keep their learned times). The first error is
// returned after the others are written.
func (c *Collector) save(now time.Time) error {
	if c.cfg.DataDir == "" {
		return nil
	}
	c.mu.RLock()
	all := make([]*exporter, 0, len(c.exporters))
	for _, e := range c.exporters {
		all = append(all, e)
	}
	c.mu.RUnlock()
	var first error
	for _, e := range all {
		if err := c.saveOne(e, now); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *Collector) saveOne(e *exporter, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ts := e.sess.Templates()
	refresh := len(ts) > 0 && now.Sub(e.savedAt) >= c.cfg.Session.TemplateTTL/2
	if e.gone || e.sess.Changes() == e.saved && !refresh {
		return nil
	}
	path := c.templatePath(e.c.Exporter)
	if len(ts) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("collect: %w", err)
		}
	} else if err := writeTemplates(path, ts); err != nil {
		return err
	}
	e.saved, e.savedAt = e.sess.Changes(), now
	return nil
}

// writeTemplates replaces path atomically.
func writeTemplates(path string, ts []netflow.SavedTemplate) error {
	b, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	return nil
}
