// Package mmdbtest writes small MMDB databases in the record layouts of the
// GeoIP/ASN products flowlog reads, for tests.
package mmdbtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Layout is a product's database type and record layout.
type Layout struct {
	Type   string // the metadata's database_type
	record func(Entry) mmdbtype.Map
}

// Entry is what a network maps to; a layout writes what it has of it.
type Entry struct {
	Country string // ISO 3166 alpha-2
	AS      uint32
	ASName  string
}

func country(code string) mmdbtype.Map {
	return mmdbtype.Map{"iso_code": mmdbtype.String(code), "geoname_id": mmdbtype.Uint32(2921044),
		"names": mmdbtype.Map{"en": mmdbtype.String("Country " + code)}}
}

func maxmindCountry(e Entry) mmdbtype.Map {
	return mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
		"country": country(e.Country), "registered_country": country(e.Country)}
}

func maxmindASN(e Entry) mmdbtype.Map {
	return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(e.AS),
		"autonomous_system_organization": mmdbtype.String(e.ASName)}
}

func asn(e Entry) mmdbtype.String {
	return mmdbtype.String("AS" + strconv.FormatUint(uint64(e.AS), 10))
}

// The layouts.
var (
	GeoLite2Country = Layout{"GeoLite2-Country", maxmindCountry}
	GeoLite2City    = Layout{"GeoLite2-City", func(e Entry) mmdbtype.Map {
		m := maxmindCountry(e)
		m["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("Town")}}
		m["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(52.5), "longitude": mmdbtype.Float64(13.4)}
		m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String("BE")}}
		return m
	}}
	GeoLite2ASN = Layout{"GeoLite2-ASN", maxmindASN}
	// DB-IP lite: the GeoLite2 layouts under DB-IP's names.
	DBIPCountry = Layout{"DBIP-Country-Lite", maxmindCountry}
	DBIPASN     = Layout{"DBIP-ASN-Lite (compat=GeoLite2-ASN)", maxmindASN}
	// IPinfo's free country_asn database: "country" is the code.
	IPinfoCountryASN = Layout{"ipinfo country_asn.mmdb", func(e Entry) mmdbtype.Map {
		return mmdbtype.Map{"country": mmdbtype.String(e.Country), "country_name": mmdbtype.String("Country " + e.Country),
			"continent": mmdbtype.String("EU"), "asn": asn(e), "as_name": mmdbtype.String(e.ASName),
			"as_domain": mmdbtype.String("example.net")}
	}}
	// IPinfo lite: "country" is the name, the code is "country_code".
	IPinfoLite = Layout{"ipinfo ipinfo_lite.mmdb", func(e Entry) mmdbtype.Map {
		return mmdbtype.Map{"country": mmdbtype.String("Country " + e.Country), "country_code": mmdbtype.String(e.Country),
			"continent": mmdbtype.String("Europe"), "continent_code": mmdbtype.String("EU"),
			"asn": asn(e), "as_name": mmdbtype.String(e.ASName), "as_domain": mmdbtype.String("example.net")}
	}}
)

// Build returns a database of layout l mapping each network (CIDR) to its
// entry.
func Build(l Layout, nets map[string]Entry) ([]byte, error) {
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: l.Type, RecordSize: 28, IncludeReservedNetworks: true,
		Description: map[string]string{"en": "flowlog test database"}})
	if err != nil {
		return nil, err
	}
	for cidr, e := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return nil, err
		}
		if err := w.Insert(n, l.record(e)); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	if _, err := w.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Bytes is Build for tests.
func Bytes(t testing.TB, l Layout, nets map[string]Entry) []byte {
	t.Helper()
	b, err := Build(l, nets)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Write writes a database (Bytes) to path.
func Write(t testing.TB, path string, l Layout, nets map[string]Entry) {
	t.Helper()
	if err := os.WriteFile(path, Bytes(t, l, nets), 0o644); err != nil {
		t.Fatal(err)
	}
}

// RandomNetworks returns n random IPv4 networks, /12 to /24, across the
// public address space, with countries and AS numbers (of 70,000): the size
// of the real databases, for benchmarks.
func RandomNetworks(n int, seed uint64) map[string]Entry {
	rng := rand.New(rand.NewPCG(seed, seed))
	countries := []string{"DE", "US", "FR", "GB", "NL", "BR", "JP", "CN", "IN", "AU", "ZA", "CA", "SE", "PL", "IT"}
	nets := make(map[string]Entry, n)
	for len(nets) < n {
		a := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), 0})
		p, _ := a.Prefix(12 + rng.IntN(13))
		as := uint32(1 + rng.IntN(70000))
		nets[p.String()] = Entry{Country: countries[rng.IntN(len(countries))], AS: as, ASName: fmt.Sprintf("Network %d", as)}
	}
	return nets
}
