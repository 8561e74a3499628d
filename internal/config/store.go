package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Store kinds: the embedded DuckDB store in the data dir (the default) and
// a ClickHouse server shared by every flowlog process that writes to it.
const (
	StoreDuckDB     = "duckdb"
	StoreClickHouse = "clickhouse"
)

// DefaultClickHousePort is ClickHouse's HTTP interface, which the
// ClickHouse store speaks; DefaultClickHouseDatabase holds flowlog's tables.
const (
	DefaultClickHousePort     = "8123"
	DefaultClickHouseDatabase = "flowlog"
)

// StoreSyntax is what a store setting may be, for error messages.
const StoreSyntax = "duckdb or clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE]"

// Store is a parsed store setting (--store, store:, FLOWLOG_STORE).
type Store struct {
	Kind     string // StoreDuckDB or StoreClickHouse
	Addr     string // HOST:PORT of ClickHouse's HTTP interface
	Database string
	User     string
	Password string
}

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseStore reads a store setting; empty is the embedded store. Errors
// quote the setting without its password.
func ParseStore(s string) (Store, error) {
	if s == "" || s == StoreDuckDB {
		return Store{Kind: StoreDuckDB}, nil
	}
	fail := func(format string, a ...any) (Store, error) {
		return Store{}, fmt.Errorf("store %q: %s; want %s", RedactStore(s), fmt.Sprintf(format, a...), StoreSyntax)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return fail("not a URL")
	}
	if scheme != StoreClickHouse {
		return fail("unknown scheme %q", scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		// The reason is taken from the URL without its password, since
		// url.Parse quotes what it stumbles on.
		if _, err := url.Parse(RedactStore(s)); err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL it quotes whole
			}
			return fail("%v", err)
		}
	}
	// With an "@" that did not end up as the user's, a piece of the
	// password may sit in the host, port or path: no part is quoted then.
	if err != nil || strings.Contains(rest, "@") && u.User == nil {
		return fail("not a valid URL (percent-encode any : / ? # @ %% in the user or password)")
	}
	st := Store{Kind: StoreClickHouse, Database: DefaultClickHouseDatabase}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return fail("no host")
	}
	if port == "" {
		port = DefaultClickHousePort
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fail("port %q is not a number from 1 to 65535", port)
	}
	st.Addr = net.JoinHostPort(host, port)
	if db := strings.Trim(u.Path, "/"); db != "" {
		if !databaseName.MatchString(db) {
			return fail("database %q is not a name of letters, digits and _", db)
		}
		st.Database = db
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fail("no ?options or #fragment are understood")
	}
	if u.User != nil {
		st.User = u.User.Username()
		st.Password, _ = u.User.Password()
		if st.User == "" {
			return fail("a password without a user")
		}
	}
	return st, nil
}

// String is the setting without its password: for logs, errors and the
// data dir.
func (s Store) String() string {
	if s.Kind != StoreClickHouse {
		return StoreDuckDB
	}
	u := url.URL{Scheme: StoreClickHouse, Host: s.Addr, Path: "/" + s.Database}
	if s.User != "" {
		u.User = url.User(s.User)
	}
	return u.String()
}

// RedactStore hides the password of a store URL, even one that does not
// parse: whatever lies between the first ":" after the scheme's "://" and
// the last "@".
func RedactStore(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	start := len(s) - len(rest)
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return s
	}
	return s[:start+colon+1] + "xxxxx" + s[start+at:]
}
