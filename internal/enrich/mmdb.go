package enrich

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// database is one loaded MMDB file. The file is read into memory rather
// than mapped: a database replaced in place (as geoipupdate does not, but
// a copy does) cannot take the process down, and a reader being swapped
// out needs no closing while lookups may still use it.
type database struct {
	path  string
	kind  string // the metadata's database_type
	built time.Time
	r     *maxminddb.Reader
	geo   bool // records carry countries
	asn   bool // records carry AS numbers
	v4    *v4Table
	tried fileSig
	// statErr is the last error reading the file, reported once.
	statErr string

	// infos caches the decoded record at each data offset: every address
	// of a network shares its record, so decoding happens once per record.
	infos   sync.Map // uintptr → info
	ninfos  atomic.Int64
	maxInfo int64
}

// info is what flowlog takes from a database record.
type info struct {
	country string // ISO 3166 alpha-2
	as      uint32
	asName  string
}

// fileSig tells a file's versions apart: a new file renamed over the
// old one (as geoipupdate does) is another file even with the same size
// and modification time (as a copy keeping times makes).
type fileSig struct {
	fi os.FileInfo
}

func stat(path string) (fileSig, error) {
	fi, err := os.Stat(path)
	return fileSig{fi}, err
}

func (s fileSig) same(o fileSig) bool {
	return s.fi != nil && o.fi != nil && s.fi.Size() == o.fi.Size() && s.fi.ModTime().Equal(o.fi.ModTime()) && os.SameFile(s.fi, o.fi)
}

// sampleNetworks is how many networks load decodes to learn what a
// database without IPv4 networks holds.
const sampleNetworks = 2000

// load reads and verifies a database, and learns from its records whether
// it gives countries, AS numbers or both: the metadata's type names the
// product, the layout of the records (MaxMind and DB-IP share one, IPinfo
// has its own) is what is read.
func load(path string) (*database, error) {
	sig, err := stat(path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("%s: not a valid MMDB database: %w", path, err)
	}
	db := &database{path: path, kind: r.Metadata.DatabaseType, built: r.Metadata.BuildTime().UTC(), r: r, tried: sig,
		maxInfo: 1 << 20}
	if db.v4, err = buildV4(r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, in := range db.v4.infos {
		db.geo, db.asn = db.geo || in.country != "", db.asn || in.as != 0
	}
	if !db.geo && !db.asn { // an IPv6 database, or an empty one: sample its networks
		n := 0
		for res := range r.Networks() {
			var in info
			if err := res.Decode(&in); err != nil {
				return nil, fmt.Errorf("%s: network %s: %w", path, res.Prefix(), err)
			}
			db.geo, db.asn = db.geo || in.country != "", db.asn || in.as != 0
			if n++; n == sampleNetworks || db.geo && db.asn {
				break
			}
		}
	}
	if !db.geo && !db.asn {
		return nil, fmt.Errorf("%s: a %q database whose records hold neither a country nor an AS number", path, db.kind)
	}
	return db, nil
}

func (db *database) provides() string {
	switch {
	case db.geo && db.asn:
		return "country, asn"
	case db.geo:
		return "country"
	}
	return "asn"
}

// lookup returns what the database knows of a (unmapped), and whether it
// knows anything.
func (db *database) lookup(a netip.Addr) (info, bool) {
	if a.Is4() {
		b := a.As4()
		return db.v4.lookup(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	}
	res := db.r.Lookup(a)
	if !res.Found() {
		return info{}, false
	}
	off := res.Offset()
	if v, ok := db.infos.Load(off); ok {
		return v.(info), true
	}
	var in info
	if err := res.Decode(&in); err != nil {
		return info{}, false // verified at load: not expected
	}
	if db.ninfos.Load() < db.maxInfo {
		db.infos.Store(off, in)
		db.ninfos.Add(1)
	}
	return in, true
}

// UnmarshalMaxMindDB reads the record layouts of MaxMind and DB-IP
// (country.iso_code, registered_country.iso_code, autonomous_system_*)
// and of IPinfo (country or country_code as a code, asn "AS123",
// as_name), skipping every other key.
func (in *info) UnmarshalMaxMindDB(d *mmdbdata.Decoder) error {
	m, _, err := d.ReadMap()
	if err != nil {
		return err
	}
	var registered, code string
	for key, err := range m {
		if err != nil {
			return err
		}
		switch string(key) {
		case "country":
			err = readCountry(d, &in.country)
		case "registered_country":
			err = readCountry(d, &registered)
		case "country_code":
			code, err = d.ReadString()
		case "autonomous_system_number":
			in.as, err = d.ReadUint32()
		case "autonomous_system_organization", "as_name":
			in.asName, err = d.ReadString()
		case "asn":
			in.as, err = readASN(d)
		default:
			err = d.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	// IPinfo lite's "country" is the name; its code is country_code.
	in.country = cmp.Or(isoCode(code), isoCode(in.country), isoCode(registered))
	if in.as == 0 {
		in.asName = ""
	}
	return nil
}

// readCountry reads a country: a map with iso_code (MaxMind, DB-IP) or a
// string (IPinfo).
func readCountry(d *mmdbdata.Decoder, out *string) error {
	k, err := d.PeekKind()
	if err != nil {
		return err
	}
	if k == mmdbdata.KindString {
		*out, err = d.ReadString()
		return err
	}
	if k != mmdbdata.KindMap {
		return d.SkipValue()
	}
	m, _, err := d.ReadMap()
	if err != nil {
		return err
	}
	for key, err := range m {
		if err != nil {
			return err
		}
		if string(key) == "iso_code" {
			*out, err = d.ReadString()
		} else {
			err = d.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readASN reads IPinfo's "AS123", or a number.
func readASN(d *mmdbdata.Decoder) (uint32, error) {
	k, err := d.PeekKind()
	if err != nil {
		return 0, err
	}
	if k != mmdbdata.KindString {
		return d.ReadUint32()
	}
	s, err := d.ReadString()
	if err != nil || s == "" {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
	if err != nil {
		return 0, errors.New("asn " + strconv.Quote(s) + " is not an AS number")
	}
	return uint32(n), nil
}

// isoCode returns s if it is an ISO 3166 alpha-2 code, upper case.
func isoCode(s string) string {
	if len(s) != 2 || !isLetter(s[0]) || !isLetter(s[1]) {
		return ""
	}
	if s[0] >= 'a' || s[1] >= 'a' {
		return strings.ToUpper(s)
	}
	return s
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
