package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "flowlog.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "listen: 127.0.0.1:1\ndata_dir: /from-file\nflow_log_quota: 5\nlog_level: debug\n"+
		"netflow_listen: 127.0.0.1:2\nsflow_listen: 127.0.0.1:3\nmmdb: [/f/country.mmdb, /f/asn.mmdb]\nmmdb_reload: 5m\n")
	env := map[string]string{"FLOWLOG_DATA_DIR": "/from-env", "FLOWLOG_FLOW_LOG_QUOTA": "7", "FLOWLOG_SFLOW_LISTEN": "off",
		"FLOWLOG_MMDB": "/e/city.mmdb, /e/asn.mmdb"}
	cfg, err := LoadServe(file, func(k string) string { return env[k] }, Serve{FlowLogQuota: 9})
	if err != nil {
		t.Fatal(err)
	}
	want := Serve{Listen: "127.0.0.1:1", DataDir: "/from-env", FlowLogQuota: 9, LogLevel: "debug",
		NetflowListen: "127.0.0.1:2", SFlowListen: Off, MMDB: []string{"/e/city.mmdb", "/e/asn.mmdb"}, MMDBReload: 5 * time.Minute}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
	// A flag's list replaces the others.
	cfg, _ = LoadServe(file, func(k string) string { return env[k] }, Serve{MMDB: []string{"/flag.mmdb"}})
	if !reflect.DeepEqual(cfg.MMDB, []string{"/flag.mmdb"}) {
		t.Fatalf("mmdb from the flag: %v", cfg.MMDB)
	}
	cfg, _ = LoadServe(file, func(string) string { return "" }, Serve{})
	if !reflect.DeepEqual(cfg.MMDB, []string{"/f/country.mmdb", "/f/asn.mmdb"}) {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := LoadServe("", func(string) string { return "" }, Serve{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != DefaultListen || cfg.DataDir == "" || cfg.FlowLogQuota != 20 || cfg.LogLevel != "info" ||
		cfg.NetflowListen != DefaultNetflowListen || cfg.SFlowListen != DefaultSFlowListen || cfg.MetricsToken != "" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if _, err := LoadServe(writeFile(t, ""), func(string) string { return "" }, Serve{}); err != nil {
		t.Fatalf("an empty file must mean defaults: %v", err)
	}
}

func TestBrokenConfigs(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		file, env, want string
	}{
		{"listen: [1, 2]\n", "", "cannot unmarshal"},
		{"listne: x\n", "", "field listne not found"},
		{"listen: nowhere\n", "", `listen: "nowhere" is not HOST:PORT`},
		{"flow_log_quota: -1\n", "", "flow_log_quota: must be at least 1"},
		{"mmdb: /one/file.mmdb\n", "", "cannot unmarshal"},
		{"mmdb_reload: -1s\n", "", "mmdb_reload: must not be negative"},
		{"log_level: loud\n", "", `log_level: "loud"`},
		{"sflow_listen: 6343\n", "", `sflow_listen: "6343" is not HOST:PORT or off`},
		{"", "abc", `FLOWLOG_FLOW_LOG_QUOTA: "abc" is not an integer`},
	} {
		getenv := noEnv
		if c.env != "" {
			getenv = func(k string) string {
				if k == "FLOWLOG_FLOW_LOG_QUOTA" {
					return c.env
				}
				return ""
			}
		}
		_, err := LoadServe(writeFile(t, c.file), getenv, Serve{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.file, err, c.want)
		}
	}
	if _, err := LoadServe("/nonexistent/flowlog.yaml", noEnv, Serve{}); err == nil {
		t.Error("a missing config file must be an error")
	}
}

func TestQueryLimits(t *testing.T) {
	env := map[string]string{"FLOWLOG_QUERY_CONCURRENCY": "3"}
	cfg, err := LoadServe(writeFile(t, "query_timeout: 5s\nquery_concurrency: 2\n"), func(k string) string { return env[k] }, Serve{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QueryTimeout != 5*time.Second || cfg.QueryConcurrency != 3 {
		t.Fatalf("query limits %v, %d; want 5s from the file, 3 from the environment", cfg.QueryTimeout, cfg.QueryConcurrency)
	}
	for file, want := range map[string]string{
		"query_timeout: soon\n":     "cannot unmarshal",
		"query_concurrency: -1\n":   "must not be negative",
		"query_timeout: -1s\n":      "must not be negative",
		"query_concurrency: many\n": "cannot unmarshal",
	} {
		if _, err := LoadServe(writeFile(t, file), func(string) string { return "" }, Serve{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", file, err, want)
		}
	}
	env = map[string]string{"FLOWLOG_QUERY_TIMEOUT": "30"}
	if _, err := LoadServe("", func(k string) string { return env[k] }, Serve{}); err == nil || !strings.Contains(err.Error(), "FLOWLOG_QUERY_TIMEOUT") {
		t.Errorf("FLOWLOG_QUERY_TIMEOUT=30: %v, want an error", err)
	}
}
