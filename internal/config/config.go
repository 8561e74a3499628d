// Package config loads flowlog's settings: flags over FLOWLOG_* environment
// variables over a YAML file over defaults.
package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultListen is where the server listens unless told otherwise.
const DefaultListen = "127.0.0.1:8080"

// Where the collector for exporter gateways listens unless told otherwise
// (the ports NetFlow and sFlow exporters send to by convention). Off turns a
// listener off.
const (
	DefaultNetflowListen = "0.0.0.0:2055"
	DefaultSFlowListen   = "0.0.0.0:6343"
	Off                  = "off"
)

// DefaultDataDir is $XDG_DATA_HOME/flowlog, or ~/.local/share/flowlog.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "flowlog")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "flowlog")
	}
	return "flowlog-data"
}

// Serve is the configuration of `flowlog serve`.
type Serve struct {
	Listen       string `yaml:"listen"`
	DataDir      string `yaml:"data_dir"`
	FlowLogQuota int    `yaml:"flow_log_quota"`
	LogLevel     string `yaml:"log_level"`
	// Collector listeners for exporter gateways, or Off.
	NetflowListen string `yaml:"netflow_listen"`
	SFlowListen   string `yaml:"sflow_listen"`
	// NetflowV9FlowCount accepts NetFlow v9 packets whose header count
	// covers only flow records, as softflowd's do (RFC 3954 counts every
	// record; by default a lower count is a decode error).
	NetflowV9FlowCount bool `yaml:"netflow_v9_flow_count"`
	// PcapDir is where accounts other than the bootstrap one may replay
	// capture files from (pcap gateways); empty: nowhere.
	PcapDir string `yaml:"pcap_dir"`
	// FileDir is where flow logs of output type file write AWS VPC Flow
	// Logs files, each account in a directory of its own; empty: nowhere.
	FileDir string `yaml:"file_dir"`
	// MetricsToken, when set, must be presented as a bearer token to read
	// /metrics.
	MetricsToken string `yaml:"metrics_token"`
	// QueryTimeout stops a query that runs longer ("30s"); 0: the API's default.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// QueryConcurrency is how many queries one account may run at once; 0: the API's default.
	QueryConcurrency int `yaml:"query_concurrency"`
	// TLSCert and TLSKey (PEM files, both or neither) make the API listener
	// serve HTTPS only.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// ReplayPerAccount bounds, per account, the changing requests (and
	// Alibaba nonces) remembered to refuse replays; 0: 65536.
	ReplayPerAccount int `yaml:"replay_per_account"`
	// SpoolMaxMB bounds the disk spool where accepted records wait for the
	// log store (MiB; 0: 16384). A full spool drops, counted per flow log.
	SpoolMaxMB int `yaml:"spool_max_mb"`
	// DiskReserveMB is the free space the spool leaves on the data dir's
	// file system for the store (MiB; 0: 256).
	DiskReserveMB int `yaml:"disk_reserve_mb"`
	// IngestMemoryMB bounds the records all log streams' pipelines hold in
	// memory at once (MiB; 0: 512).
	IngestMemoryMB int `yaml:"ingest_memory_mb"`
	// StoreThreads is the embedded store's worker threads (0: one per
	// core). Fewer leave more of the machine to the collector and write
	// at a lower cost per record; more answer big queries sooner.
	StoreThreads int `yaml:"store_threads"`
	// Store is where log records go: "duckdb" (the default), the embedded
	// store in the data dir, or clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE],
	// a ClickHouse server's HTTP interface (port 8123, database flowlog by
	// default). The control state stays in the data dir either way.
	Store string `yaml:"store"`
	// MMDB are GeoIP/ASN databases (MaxMind GeoLite2 Country/City/ASN,
	// DB-IP lite, IPinfo) that fill records' country and AS fields at
	// ingest; MMDBReload is how often they are checked for a change
	// (0: 30s).
	MMDB       []string      `yaml:"mmdb"`
	MMDBReload time.Duration `yaml:"mmdb_reload"`
}

// LoadServe merges flags over the environment (getenv) over the file (if
// path is not empty) over defaults, and validates the result.
func LoadServe(path string, getenv func(string) string, flags Serve) (Serve, error) {
	var cfg Serve
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // empty file: defaults
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	env := Serve{Listen: getenv("FLOWLOG_LISTEN"), DataDir: getenv("FLOWLOG_DATA_DIR"),
		LogLevel: getenv("FLOWLOG_LOG_LEVEL"), NetflowListen: getenv("FLOWLOG_NETFLOW_LISTEN"),
		SFlowListen: getenv("FLOWLOG_SFLOW_LISTEN"), MetricsToken: getenv("FLOWLOG_METRICS_TOKEN"),
		NetflowV9FlowCount: getenv("FLOWLOG_NETFLOW_V9_FLOW_COUNT") == "true", PcapDir: getenv("FLOWLOG_PCAP_DIR"),
		FileDir: getenv("FLOWLOG_FILE_DIR"),
		TLSCert: getenv("FLOWLOG_TLS_CERT"), TLSKey: getenv("FLOWLOG_TLS_KEY"), Store: getenv("FLOWLOG_STORE"),
		MMDB: SplitList(getenv("FLOWLOG_MMDB"))}
	if err := env.numbersFromEnv(getenv); err != nil {
		return cfg, err
	}
	for _, over := range []Serve{env, flags} {
		cfg.merge(over)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir()
	}
	if cfg.FlowLogQuota == 0 {
		cfg.FlowLogQuota = 20
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	if cfg.NetflowListen == "" {
		cfg.NetflowListen = DefaultNetflowListen
	}
	if cfg.SFlowListen == "" {
		cfg.SFlowListen = DefaultSFlowListen
	}
	return cfg, cfg.validate()
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (c *Serve) merge(o Serve) {
	if o.Listen != "" {
		c.Listen = o.Listen
	}
	if o.DataDir != "" {
		c.DataDir = o.DataDir
	}
	if o.FlowLogQuota != 0 {
		c.FlowLogQuota = o.FlowLogQuota
	}
	if o.LogLevel != "" {
		c.LogLevel = o.LogLevel
	}
	if o.NetflowListen != "" {
		c.NetflowListen = o.NetflowListen
	}
	if o.SFlowListen != "" {
		c.SFlowListen = o.SFlowListen
	}
	if o.MetricsToken != "" {
		c.MetricsToken = o.MetricsToken
	}
	if o.QueryTimeout != 0 {
		c.QueryTimeout = o.QueryTimeout
	}
	if o.QueryConcurrency != 0 {
		c.QueryConcurrency = o.QueryConcurrency
	}
	c.NetflowV9FlowCount = c.NetflowV9FlowCount || o.NetflowV9FlowCount
	if o.PcapDir != "" {
		c.PcapDir = o.PcapDir
	}
	if o.FileDir != "" {
		c.FileDir = o.FileDir
	}
	if o.TLSCert != "" {
		c.TLSCert = o.TLSCert
	}
	if o.TLSKey != "" {
		c.TLSKey = o.TLSKey
	}
	if o.Store != "" {
		c.Store = o.Store
	}
	if len(o.MMDB) > 0 {
		c.MMDB = o.MMDB
	}
	if o.MMDBReload != 0 {
		c.MMDBReload = o.MMDBReload
	}
	for dst, v := range map[*int]int{&c.ReplayPerAccount: o.ReplayPerAccount, &c.SpoolMaxMB: o.SpoolMaxMB,
		&c.DiskReserveMB: o.DiskReserveMB, &c.IngestMemoryMB: o.IngestMemoryMB, &c.StoreThreads: o.StoreThreads} {
		if v != 0 {
			*dst = v
		}
	}
}

func (c *Serve) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not HOST:PORT", c.Listen)
	}
	for name, v := range map[string]string{"netflow_listen": c.NetflowListen, "sflow_listen": c.SFlowListen} {
		if _, _, err := net.SplitHostPort(v); err != nil && v != Off {
			return fmt.Errorf("%s: %q is not HOST:PORT or %s", name, v, Off)
		}
	}
	if c.FlowLogQuota < 1 {
		return fmt.Errorf("flow_log_quota: must be at least 1, got %d", c.FlowLogQuota)
	}
	if c.MMDBReload < 0 {
		return errors.New("mmdb_reload: must not be negative")
	}
	if c.QueryTimeout < 0 || c.QueryConcurrency < 0 {
		return fmt.Errorf("query_timeout and query_concurrency: must not be negative")
	}
	if _, ok := levels[strings.ToLower(c.LogLevel)]; !ok {
		return fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel)
	}
	for name, v := range map[string]int{"replay_per_account": c.ReplayPerAccount, "spool_max_mb": c.SpoolMaxMB,
		"disk_reserve_mb": c.DiskReserveMB, "ingest_memory_mb": c.IngestMemoryMB, "store_threads": c.StoreThreads} {
		if v < 0 {
			return fmt.Errorf("%s: must not be negative, got %d", name, v)
		}
	}
	if _, err := ParseStore(c.Store); err != nil {
		return err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key (--tls-cert, --tls-key) go together: give both files or neither")
	}
	return nil
}

// numbersFromEnv reads the numeric FLOWLOG_* settings.
func (c *Serve) numbersFromEnv(getenv func(string) string) error {
	for _, n := range []struct {
		name string
		dst  *int
	}{{"FLOWLOG_FLOW_LOG_QUOTA", &c.FlowLogQuota}, {"FLOWLOG_QUERY_CONCURRENCY", &c.QueryConcurrency},
		{"FLOWLOG_REPLAY_PER_ACCOUNT", &c.ReplayPerAccount}, {"FLOWLOG_SPOOL_MAX_MB", &c.SpoolMaxMB},
		{"FLOWLOG_DISK_RESERVE_MB", &c.DiskReserveMB}, {"FLOWLOG_INGEST_MEMORY_MB", &c.IngestMemoryMB},
		{"FLOWLOG_STORE_THREADS", &c.StoreThreads}} {
		if v := getenv(n.name); v != "" {
			i, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not an integer", n.name, v)
			}
			*n.dst = i
		}
	}
	if v := getenv("FLOWLOG_QUERY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("FLOWLOG_QUERY_TIMEOUT: %q is not a duration such as 30s", v)
		}
		c.QueryTimeout = d
	}
	return nil
}

// TLS loads the certificate and key for HTTPS; nil when TLS is off.
func (c *Serve) TLS() (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	for name, f := range map[string]string{"tls_cert": c.TLSCert, "tls_key": c.TLSKey} {
		if _, err := os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls_cert %s, tls_key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

var levels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "error": slog.LevelError}

// LogStore is the parsed Store setting (validated by LoadServe).
func (c Serve) LogStore() Store {
	st, _ := ParseStore(c.Store)
	return st
}

// Level is the log level as slog's.
func (c *Serve) Level() slog.Level { return levels[strings.ToLower(c.LogLevel)] }

// Listener returns a collector listen setting as the collector takes it:
// empty when Off.
func Listener(v string) string {
	if v == Off {
		return ""
	}
	return v
}

// CredentialsFile is where a server keeps the bootstrap key it generated,
// for the CLI on the same machine.
const CredentialsFile = "credentials"

// WriteCredentials stores a generated bootstrap key in dir, readable by its
// owner only.
func WriteCredentials(dir, accountID, keyID, secret string) error {
	body := fmt.Sprintf("FLOWLOG_ACCOUNT_ID=%s\nFLOWLOG_ACCESS_KEY_ID=%s\nFLOWLOG_ACCESS_KEY_SECRET=%s\n",
		accountID, keyID, secret)
	return os.WriteFile(filepath.Join(dir, CredentialsFile), []byte(body), 0o600)
}

// ReadCredentials reads the key WriteCredentials stored in dir.
func ReadCredentials(dir string) (keyID, secret string, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, CredentialsFile))
	if err != nil {
		return "", "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "FLOWLOG_ACCESS_KEY_ID":
			keyID = v
		case "FLOWLOG_ACCESS_KEY_SECRET":
			secret = v
		}
	}
	return keyID, secret, keyID != "" && secret != ""
}
