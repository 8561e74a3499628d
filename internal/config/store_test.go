package config

import (
	"strings"
	"testing"
)

func TestParseStore(t *testing.T) {
	for in, want := range map[string]Store{
		"":                          {Kind: StoreDuckDB},
		"duckdb":                    {Kind: StoreDuckDB},
		"clickhouse://ch1":          {Kind: StoreClickHouse, Addr: "ch1:8123", Database: "flowlog"},
		"clickhouse://ch1:9123/":    {Kind: StoreClickHouse, Addr: "ch1:9123", Database: "flowlog"},
		"clickhouse://10.0.0.5/fl":  {Kind: StoreClickHouse, Addr: "10.0.0.5:8123", Database: "fl"},
		"clickhouse://[::1]:8124/x": {Kind: StoreClickHouse, Addr: "[::1]:8124", Database: "x"},
		"clickhouse://flow@ch1/logs_2": {Kind: StoreClickHouse, Addr: "ch1:8123", Database: "logs_2",
			User: "flow"},
		"clickhouse://flow:p%40ss%2Fw:rd@ch1:8123/db": {Kind: StoreClickHouse, Addr: "ch1:8123", Database: "db",
			User: "flow", Password: "p@ss/w:rd"},
		"clickhouse://ch1?cluster=c1": {Kind: StoreClickHouse, Addr: "ch1:8123", Database: "flowlog", Cluster: "c1"},
		"clickhouse://ch1,ch2:9000,[::1]/x?cluster=logs": {Kind: StoreClickHouse, Addr: "ch1:8123,ch2:9000,[::1]:8123",
			Database: "x", Cluster: "logs"},
	} {
		got, err := ParseStore(in)
		if err != nil || got != want {
			t.Errorf("ParseStore(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// TestStoreErrors checks that a bad setting says what is wrong and never
// quotes the password, whether or not the URL parses.
func TestStoreErrors(t *testing.T) {
	const secret = "Sekr1t"
	for in, want := range map[string]string{
		"clickhouse:/ch1":                          "not a URL",
		"postgres://u:" + secret + "@db/flows":     `unknown scheme "postgres"`,
		"ClickHouse://ch1":                         `unknown scheme "ClickHouse"`,
		"clickhouse://":                            "no host",
		"clickhouse://ch1:0":                       `port "0" is not a number from 1 to 65535`,
		"clickhouse://ch1:99999/db":                `port "99999"`,
		"clickhouse://ch1:http/db":                 `invalid port ":http"`,
		"clickhouse://ch1/a/b":                     `database "a/b" is not a name`,
		"clickhouse://ch1/fl-ow":                   `database "fl-ow"`,
		"clickhouse://ch1/db?secure=1":             `option "secure" is not understood (the only option is cluster=NAME)`,
		"clickhouse://ch1/db?cluster=a&cluster=b":  `cluster "a,b" is not one name`,
		"clickhouse://ch1/db?cluster=a-b":          `cluster "a-b"`,
		"clickhouse://ch1,ch2/db":                  "add ?cluster=NAME",
		"clickhouse://ch1,/db?cluster=c":           "no host",
		"clickhouse://ch1:0,ch2/db?cluster=c":      `port "0"`,
		"clickhouse://:" + secret + "@ch1/db":      "a password without a user",
		"clickhouse://u:" + secret + "@ch1:x/db":   `invalid port ":x"`,
		"clickhouse://u:" + secret + "/x@ch1/db":   "percent-encode",
		"clickhouse://u:12#" + secret + "@ch1/db":  "percent-encode",
		"clickhouse://u:" + secret + "%zz@ch1/db":  "percent-encode",
		"clickhouse://u:" + secret + "@ch1/d?b#@x": "no #fragment",
	} {
		_, err := ParseStore(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), StoreSyntax) {
			t.Errorf("ParseStore(%q) = %v; want an error containing %q and the syntax", in, err, want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseStore(%q): the error quotes the password: %v", in, err)
		}
	}
}

func TestStoreString(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "duckdb",
		"clickhouse://ch1":                    "clickhouse://ch1:8123/flowlog",
		"clickhouse://flow:secret@ch1:9/db":   "clickhouse://flow@ch1:9/db",
		"clickhouse://ch1,ch2:9/db?cluster=c": "clickhouse://ch1:8123,ch2:9/db?cluster=c",
	} {
		st, err := ParseStore(in)
		if err != nil || st.String() != want {
			t.Errorf("ParseStore(%q).String() = %q, %v; want %q", in, st.String(), err, want)
		}
		if again, err := ParseStore(st.String()); err != nil || again.String() != want {
			t.Errorf("%q does not read back: %v", want, err)
		}
	}
}

func TestStoreSetting(t *testing.T) {
	file := writeFile(t, "store: clickhouse://from-file:8123/flowlog\n")
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	load := func(flags Serve) Serve {
		t.Helper()
		cfg, err := LoadServe(file, getenv, flags)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got := load(Serve{}).LogStore().Addr; got != "from-file:8123" {
		t.Errorf("from the file: %q", got)
	}
	env["FLOWLOG_STORE"] = "clickhouse://u:pw@from-env/db"
	if got := load(Serve{}).LogStore(); got.Addr != "from-env:8123" || got.Password != "pw" || got.Database != "db" {
		t.Errorf("from the environment: %+v", got)
	}
	if got := load(Serve{Store: "duckdb"}).LogStore().Kind; got != StoreDuckDB {
		t.Errorf("from the flag: %q", got)
	}
	if cfg, err := LoadServe("", func(string) string { return "" }, Serve{}); err != nil || cfg.LogStore().Kind != StoreDuckDB {
		t.Errorf("default: %+v, %v", cfg.LogStore(), err)
	}
	_, err := LoadServe(writeFile(t, "store: clickhouse://u:hidden@ch1:x\n"), func(string) string { return "" }, Serve{})
	if err == nil || !strings.Contains(err.Error(), `store "clickhouse://u:xxxxx@ch1:x"`) || strings.Contains(err.Error(), "hidden") {
		t.Errorf("a bad store in the file: %v", err)
	}
}
