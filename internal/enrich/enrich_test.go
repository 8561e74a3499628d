package enrich

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"flowlog/internal/enrich/mmdbtest"
	"flowlog/internal/flow"
)

var nets = map[string]mmdbtest.Entry{
	"198.51.100.0/24": {Country: "DE", AS: 64500, ASName: "Example Carrier"},
	"203.0.113.0/25":  {Country: "US", AS: 4200000001, ASName: "Big Cloud"},
	"2a00:1450::/32":  {Country: "IE", AS: 15169, ASName: "Six"},
}

func newEnricher(t *testing.T, files ...string) (*Enricher, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	e, err := New(Config{Files: files, Reload: time.Hour, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, &log
}

func write(t *testing.T, l mmdbtest.Layout, nets map[string]mmdbtest.Entry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), strings.Fields(l.Type)[0]+".mmdb")
	mmdbtest.Write(t, path, l, nets)
	return path
}

func rec(src, dst string) flow.Record {
	return flow.Record{SrcAddr: netip.MustParseAddr(src), DstAddr: netip.MustParseAddr(dst)}
}

type geo struct {
	country string
	as      uint32
	asName  string
}

func srcOf(r flow.Record) geo { return geo{r.SrcCountry, r.SrcAS, r.SrcASName} }
func dstOf(r flow.Record) geo { return geo{r.DstCountry, r.DstAS, r.DstASName} }

// TestLayouts: each product's database is told apart by its records and
// answers what it holds; private and unknown addresses stay empty.
func TestLayouts(t *testing.T) {
	de, us, ie := geo{"DE", 64500, "Example Carrier"}, geo{"US", 4200000001, "Big Cloud"}, geo{"IE", 15169, "Six"}
	countryOnly := func(g geo) geo { return geo{country: g.country} }
	asOnly := func(g geo) geo { return geo{as: g.as, asName: g.asName} }
	both := func(g geo) geo { return g }
	for _, c := range []struct {
		layout   mmdbtest.Layout
		provides string
		want     func(geo) geo
	}{
		{mmdbtest.GeoLite2Country, "country", countryOnly},
		{mmdbtest.GeoLite2City, "country", countryOnly},
		{mmdbtest.GeoLite2ASN, "asn", asOnly},
		{mmdbtest.DBIPCountry, "country", countryOnly},
		{mmdbtest.DBIPASN, "asn", asOnly},
		{mmdbtest.IPinfoCountryASN, "country, asn", both},
		{mmdbtest.IPinfoLite, "country, asn", both},
	} {
		t.Run(c.layout.Type, func(t *testing.T) {
			e, log := newEnricher(t, write(t, c.layout, nets))
			provides := "provides=" + c.provides
			if strings.Contains(c.provides, " ") {
				provides = `provides="` + c.provides + `"`
			}
			if !strings.Contains(log.String(), provides) || !strings.Contains(log.String(), "type=") {
				t.Errorf("load log: %s", log)
			}
			recs := []flow.Record{
				rec("198.51.100.7", "10.0.0.1"),
				rec("::ffff:203.0.113.9", "203.0.113.200"), // mapped; outside the /25
				rec("2a00:1450:4001::5", "192.168.1.1"),
				rec("8.8.8.8", "fe80::1"),
			}
			e.Enrich(recs)
			for i, w := range []struct{ src, dst geo }{
				{c.want(de), geo{}}, {c.want(us), geo{}}, {c.want(ie), geo{}}, {geo{}, geo{}},
			} {
				if srcOf(recs[i]) != w.src || dstOf(recs[i]) != w.dst {
					t.Errorf("record %d: src %+v dst %+v, want %+v %+v", i, srcOf(recs[i]), dstOf(recs[i]), w.src, w.dst)
				}
			}
			// Looked up: the public addresses, 5; known: 3.
			if st := e.Stats(); st.Lookups != 5 || st.Misses != 2 {
				t.Errorf("stats %+v, want 5 lookups and 2 misses", st)
			}
		})
	}
}

// TestMerge: with a country and an ASN database, each field comes from the
// first database that has it; fields the record has are kept.
func TestMerge(t *testing.T) {
	other := map[string]mmdbtest.Entry{"198.51.100.0/24": {Country: "FR", AS: 1, ASName: "Other"}}
	e, _ := newEnricher(t, write(t, mmdbtest.GeoLite2Country, nets), write(t, mmdbtest.DBIPASN, nets),
		write(t, mmdbtest.IPinfoLite, other))
	recs := []flow.Record{rec("198.51.100.1", "203.0.113.1"), rec("198.51.100.1", "8.8.4.4")}
	recs[1].SrcAS = 3320 // sent by the exporter
	e.Enrich(recs)
	if g := srcOf(recs[0]); g != (geo{"DE", 64500, "Example Carrier"}) {
		t.Errorf("src %+v", g)
	}
	if g := dstOf(recs[0]); g != (geo{"US", 4200000001, "Big Cloud"}) {
		t.Errorf("dst %+v", g)
	}
	if g := srcOf(recs[1]); g != (geo{"DE", 3320, ""}) {
		t.Errorf("src with the exporter's AS %+v", g)
	}
}

// TestInterfaces: names and speeds come from the Interfaces set, by
// exporter and ifIndex.
func TestInterfaces(t *testing.T) {
	e, _ := newEnricher(t)
	exp := netip.MustParseAddr("192.0.2.1")
	recs := []flow.Record{{ExporterAddr: exp, InputIfIndex: 1, OutputIfIndex: 2}, {ExporterAddr: exp, InputIfIndex: 3}}
	e.Enrich(recs)
	if recs[0].InIfName != "" {
		t.Fatal("names without an Interfaces")
	}
	e.SetInterfaces(ifTable{{exp, 1}: {"xe-0/0/1", 10e9}, {exp, 2}: {"ae0", 100e9}})
	e.Enrich(recs)
	r := recs[0]
	if r.InIfName != "xe-0/0/1" || r.InIfSpeed != 10e9 || r.OutIfName != "ae0" || r.OutIfSpeed != 100e9 || recs[1].InIfName != "" {
		t.Errorf("interfaces: %+v", recs)
	}
}

type ifKey struct {
	exporter netip.Addr
	index    uint32
}

type ifInfo struct {
	name  string
	speed uint64
}

// ifTable is a static Interfaces.
type ifTable map[ifKey]ifInfo

func (t ifTable) Interface(exporter netip.Addr, ifIndex uint32) (string, uint64, bool) {
	i, ok := t[ifKey{exporter, ifIndex}]
	return i.name, i.speed, ok
}

// TestReload: a changed file is loaded and answers at once; a broken one
// keeps the database loaded before, is reported, and is tried again when
// it changes again.
func TestReload(t *testing.T) {
	path := write(t, mmdbtest.GeoLite2Country, nets)
	e, log := newEnricher(t, path)
	lookup := func() string {
		recs := []flow.Record{rec("198.51.100.1", "10.0.0.1")}
		e.Enrich(recs)
		return recs[0].SrcCountry
	}
	if c := lookup(); c != "DE" {
		t.Fatalf("country %q", c)
	}
	replace := func(b []byte) {
		t.Helper()
		tmp := path + ".new"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	moved := map[string]mmdbtest.Entry{"198.51.100.0/24": {Country: "NL"}}
	replace(mmdbtest.Bytes(t, mmdbtest.GeoLite2Country, moved))
	e.Check()
	if c := lookup(); c != "NL" {
		t.Fatalf("after the reload: %q, want NL", c)
	}
	good := mmdbtest.Bytes(t, mmdbtest.GeoLite2Country, nets)
	replace(good[:len(good)/2]) // cut short, as by a copy under way
	e.Check()
	e.Check() // the same broken file: reported once
	if c := lookup(); c != "NL" {
		t.Fatalf("after a broken file: %q, want NL from the database before", c)
	}
	if st := e.Stats(); st.Reloads != 1 || st.ReloadErrors != 1 || !strings.Contains(log.String(), "does not load") {
		t.Fatalf("stats %+v, log %s", st, log)
	}
	replace(good)
	e.Check()
	if c := lookup(); c != "DE" {
		t.Fatalf("after the repaired file: %q, want DE", c)
	}
	// Another file of the same size and time renamed over it (a copy
	// keeping times): still a change.
	fi, _ := os.Stat(path)
	same := map[string]mmdbtest.Entry{}
	for n, v := range nets {
		v.Country = strings.Replace(v.Country, "DE", "AT", 1)
		same[n] = v
	}
	b := mmdbtest.Bytes(t, mmdbtest.GeoLite2Country, same)
	if int64(len(b)) != fi.Size() {
		t.Fatalf("%d bytes, want %d", len(b), fi.Size())
	}
	replace(b)
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	e.Check()
	if c := lookup(); c != "AT" {
		t.Fatalf("after a file of the same size and time: %q, want AT", c)
	}
	os.Remove(path)
	e.Check()
	if c := lookup(); c != "AT" || e.Stats().ReloadErrors != 2 {
		t.Fatalf("after the file went: %q, %+v", c, e.Stats())
	}
}

// TestWatch: the files are polled on their own.
func TestWatch(t *testing.T) {
	path := write(t, mmdbtest.GeoLite2Country, nets)
	e, err := New(Config{Files: []string{path}, Reload: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mmdbtest.Write(t, path, mmdbtest.GeoLite2Country, map[string]mmdbtest.Entry{"198.51.100.0/24": {Country: "NL", AS: 7}})
	os.Chtimes(path, time.Now(), time.Now().Add(time.Second))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		recs := []flow.Record{rec("198.51.100.1", "10.0.0.1")}
		e.Enrich(recs)
		if recs[0].SrcCountry == "NL" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the changed file was not loaded")
		}
	}
}

// TestStartErrors: files that cannot serve stop the start.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.mmdb")
	os.WriteFile(text, []byte("not a database"), 0o644)
	empty := filepath.Join(dir, "other.mmdb")
	mmdbtest.Write(t, empty, mmdbtest.Layout{Type: "Other"}, nil)
	for _, f := range []string{filepath.Join(dir, "missing.mmdb"), text, empty} {
		if _, err := New(Config{Files: []string{f}}); err == nil {
			t.Errorf("%s: loaded", f)
		}
	}
}

// BenchmarkEnrich: records through a country and an ASN database of
// 200,000 networks each, their sources public, their destinations
// private: "repeating" has 1,000 distinct sources, "unique" none twice.
// The time includes making the records, which "none" (no databases)
// measures alone.
func BenchmarkEnrich(b *testing.B) {
	nets := mmdbtest.RandomNetworks(200000, 7)
	dir := b.TempDir()
	files := []string{filepath.Join(dir, "c.mmdb"), filepath.Join(dir, "a.mmdb")}
	mmdbtest.Write(b, files[0], mmdbtest.GeoLite2Country, nets)
	mmdbtest.Write(b, files[1], mmdbtest.GeoLite2ASN, nets)
	e, err := New(Config{Files: files, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	runtime.GC() // the databases' building leaves much garbage
	none, _ := New(Config{})
	for _, c := range []struct {
		name string
		src  func(i int) netip.Addr
		e    *Enricher
	}{
		{"none", func(i int) netip.Addr { return netip.AddrFrom4([4]byte{byte(1 + i%200), byte(i % 5), 1, 1}) }, none},
		{"repeating", func(i int) netip.Addr { return netip.AddrFrom4([4]byte{byte(1 + i%200), byte(i % 5), 1, 1}) }, e},
		{"unique", func(i int) netip.Addr {
			return netip.AddrFrom4([4]byte{byte(1 + (i*7)%200), byte(i >> 16), byte(i >> 8), byte(i)})
		}, e},
	} {
		b.Run(c.name, func(b *testing.B) {
			recs := make([]flow.Record, 1000) // a few datagrams' worth, as the collector hands them on
			k := 0
			for b.Loop() {
				for i := range recs {
					recs[i] = flow.Record{SrcAddr: c.src(k), DstAddr: netip.AddrFrom4([4]byte{10, 0, byte(k >> 8), byte(k)})}
					k++
				}
				c.e.Enrich(recs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
		})
	}
}

// TestV4Table: the flat IPv4 table answers as the database's tree does,
// nested networks and gaps included.
func TestV4Table(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nets := map[string]mmdbtest.Entry{"0.0.0.0/1": {Country: "AA"}, "255.255.255.0/24": {Country: "ZZ", AS: 9}}
	for i := range 3000 {
		a := netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		p, _ := a.Prefix(4 + rng.IntN(29))
		nets[p.String()] = mmdbtest.Entry{Country: []string{"DE", "US", "FR"}[i%3], AS: uint32(i % 50), ASName: "n"}
	}
	db, err := load(write(t, mmdbtest.IPinfoCountryASN, nets))
	if err != nil {
		t.Fatal(err)
	}
	probes := []netip.Addr{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("128.0.0.0")}
	for range 200000 {
		probes = append(probes, netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}))
	}
	for p := range nets { // the edges of every network
		pr := netip.MustParsePrefix(p)
		probes = append(probes, pr.Addr(), pr.Addr().Prev(), lastAddr(pr), lastAddr(pr).Next())
	}
	for _, a := range probes {
		if !a.IsValid() {
			continue
		}
		got, gotOK := db.lookup(a)
		var want info
		res := db.r.Lookup(a)
		if err := res.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if got != want || gotOK != res.Found() {
			t.Fatalf("%s: table %+v %v, tree %+v %v", a, got, gotOK, want, res.Found())
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | (1<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
