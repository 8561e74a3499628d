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
const StoreSyntax = "duckdb or clickhouse://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]…][/DATABASE][?cluster=NAME]"

// Store is a parsed store setting (--store, store:, FLOWLOG_STORE).
type Store struct {
	Kind     string // StoreDuckDB or StoreClickHouse
	Addr     string // HOST:PORT of ClickHouse's HTTP interface; in a cluster, one per replica, comma-separated
	Database string
	Cluster  string // the cluster of remote_servers whose tables are replicated; "" for one server
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
	s, hosts := oneHost(s)
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
	if hosts == "" {
		hosts = u.Host
	}
	addrs, err := parseHosts(hosts)
	if err != nil {
		return fail("%v", err)
	}
	st.Addr = strings.Join(addrs, ",")
	if db := strings.Trim(u.Path, "/"); db != "" {
		if !databaseName.MatchString(db) {
			return fail("database %q is not a name of letters, digits and _", db)
		}
		st.Database = db
	}
	if u.Fragment != "" {
		return fail("no #fragment is understood")
	}
	if st.Cluster, err = parseOptions(u.RawQuery); err != nil {
		return fail("%v", err)
	}
	if len(addrs) > 1 && st.Cluster == "" {
		return fail("several hosts are the replicas of a cluster: add ?cluster=NAME")
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

// oneHost replaces a list of several hosts in a store URL by one, which
// url.Parse can read, and returns the list.
func oneHost(s string) (string, string) {
	scheme, rest, _ := strings.Cut(s, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	start := strings.LastIndex(rest[:end], "@") + 1
	if !strings.Contains(rest[start:end], ",") {
		return s, ""
	}
	return scheme + "://" + rest[:start] + "hosts" + rest[end:], rest[start:end]
}

// parseHosts reads the comma-separated HOST[:PORT] list of a store URL.
func parseHosts(list string) ([]string, error) {
	var addrs []string
	for h := range strings.SplitSeq(list, ",") {
		u := url.URL{Host: h}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return nil, errors.New("no host")
		}
		if port == "" {
			port = DefaultClickHousePort
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
}

// parseOptions reads the ?options of a store URL: only cluster=NAME.
func parseOptions(raw string) (cluster string, err error) {
	opts, err := url.ParseQuery(raw)
	if err != nil {
		return "", fmt.Errorf("options %q: %v", raw, err)
	}
	for k, v := range opts {
		switch {
		case k != "cluster":
			return "", fmt.Errorf("option %q is not understood (the only option is cluster=NAME)", k)
		case len(v) != 1 || !databaseName.MatchString(v[0]):
			return "", fmt.Errorf("cluster %q is not one name of letters, digits and _", strings.Join(v, ","))
		}
		cluster = v[0]
	}
	return cluster, nil
}

// Addrs returns the HOST:PORT of each server of a ClickHouse store.
func (s Store) Addrs() []string { return strings.Split(s.Addr, ",") }

// String is the setting without its password: for logs, errors and the
// data dir.
func (s Store) String() string {
	if s.Kind != StoreClickHouse {
		return StoreDuckDB
	}
	u := url.URL{Scheme: StoreClickHouse, Host: s.Addr, Path: "/" + s.Database}
	if s.Cluster != "" {
		u.RawQuery = "cluster=" + s.Cluster
	}
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
