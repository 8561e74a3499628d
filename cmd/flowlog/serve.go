package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"flowlog/internal/api"
	"flowlog/internal/api/auth"
	"flowlog/internal/config"
	"flowlog/internal/control"
	"flowlog/internal/dataplane"
	"flowlog/internal/ingest"
	"flowlog/internal/netflow"
	"flowlog/internal/spool"
	"flowlog/internal/store"
	"flowlog/internal/store/backend"
	"flowlog/internal/web"
)

func init() { commands = append(commands, newServeCmd) }

func newServeCmd() *cobra.Command {
	var configFile string
	flags := config.Serve{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server: every API on one listener, state in the data dir",
		Long: `Run the flowlog server. Every API (native /v1, Alibaba RPC on /, Huawei /v3)
is served on one listener; state is kept in the data dir across restarts.
Log records go to the embedded store in the data dir, or, with --store
clickhouse://…, to a ClickHouse server, which must answer at start.

Settings come from flags, then FLOWLOG_* environment variables, then the
YAML config file, then defaults. The bootstrap account's key comes from
FLOWLOG_ACCESS_KEY_ID / FLOWLOG_ACCESS_KEY_SECRET (and FLOWLOG_ACCOUNT_ID);
when unset, the first start generates it, stores it and prints it once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Unset flags keep their zero values, which LoadServe reads as
			// "not given".
			cfg, err := config.LoadServe(configFile, os.Getenv, flags)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", os.Getenv("FLOWLOG_CONFIG"), "YAML config file (env FLOWLOG_CONFIG)")
	f.StringVar(&flags.Listen, "listen", "", "address to serve on (env FLOWLOG_LISTEN; default "+config.DefaultListen+")")
	f.StringVar(&flags.DataDir, "data-dir", "", "where state is kept (env FLOWLOG_DATA_DIR; default "+config.DefaultDataDir()+")")
	f.IntVar(&flags.FlowLogQuota, "flow-log-quota", 0, "flow logs per account (env FLOWLOG_FLOW_LOG_QUOTA; default 20)")
	f.StringVar(&flags.LogLevel, "log-level", "", "debug, info, warn or error (env FLOWLOG_LOG_LEVEL; default info)")
	f.StringVar(&flags.NetflowListen, "netflow-listen", "", "where exporter gateways send NetFlow v5/v9/IPFIX, or off (env FLOWLOG_NETFLOW_LISTEN; default "+config.DefaultNetflowListen+")")
	f.BoolVar(&flags.NetflowV9FlowCount, "netflow-v9-flow-count", false, "accept NetFlow v9 packets counting only flow records, as softflowd's do (env FLOWLOG_NETFLOW_V9_FLOW_COUNT=true)")
	f.StringVar(&flags.PcapDir, "pcap-dir", "", "where accounts other than the bootstrap one may replay capture files from (env FLOWLOG_PCAP_DIR; default: nowhere)")
	f.StringVar(&flags.FileDir, "file-dir", "", "where flow logs of output type file write AWS VPC Flow Logs files, each account in a directory of its own (env FLOWLOG_FILE_DIR; default: nowhere)")
	f.DurationVar(&flags.QueryTimeout, "query-timeout", 0, "stop a query running longer (env FLOWLOG_QUERY_TIMEOUT; default 30s)")
	f.IntVar(&flags.QueryConcurrency, "query-concurrency", 0, "queries one account may run at once (env FLOWLOG_QUERY_CONCURRENCY; default 4)")
	f.StringVar(&flags.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with; needs --tls-key (env FLOWLOG_TLS_CERT)")
	f.StringVar(&flags.TLSKey, "tls-key", "", "PEM private key of --tls-cert (env FLOWLOG_TLS_KEY)")
	f.StringVar(&flags.Store, "store", "", "where log records go: duckdb (embedded, in the data dir) or "+
		"clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE], its HTTP interface (port 8123, database flowlog unless given) (env FLOWLOG_STORE; default duckdb)")
	f.StringVar(&flags.SFlowListen, "sflow-listen", "", "where exporter gateways send sFlow, or off (env FLOWLOG_SFLOW_LISTEN; default "+config.DefaultSFlowListen+")")
	mmdbFlag(f, &flags.MMDB)
	return cmd
}

func serve(ctx context.Context, cfg config.Serve) error {
	// Checked first: a TLS mistake should not start anything.
	tlsCfg, err := cfg.TLS()
	if err != nil {
		return err
	}
	// Everything written to the data dir is private: it holds secrets.
	syscall.Umask(0o077)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Level()}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// A ClickHouse server that refuses (a wrong address, database or
	// credentials) stops the start; one that does not answer is waited
	// for, the spool holding the records meanwhile.
	logs, err := backend.New(ctx, backend.Config{Store: cfg.LogStore(), DataDir: cfg.DataDir, Threads: cfg.StoreThreads, Logger: log})
	if err != nil {
		return err
	}
	defer logs.Close()
	svc, err := control.New(control.Config{DataDir: cfg.DataDir, Quota: cfg.FlowLogQuota, PcapDir: cfg.PcapDir})
	if err != nil {
		return err
	}
	defer svc.Close()
	boot, err := svc.EnsureBootstrap(ctx, os.Getenv("FLOWLOG_ACCOUNT_ID"),
		os.Getenv("FLOWLOG_ACCESS_KEY_ID"), os.Getenv("FLOWLOG_ACCESS_KEY_SECRET"))
	if err != nil {
		return fmt.Errorf("bootstrap account: %w", err)
	}
	if boot.Reenabled {
		log.Warn("the bootstrap access key was disabled; enabled again because FLOWLOG_ACCESS_KEY_ID names it",
			"key", boot.Key.ID)
	}
	if boot.Created {
		// Printed once, to stdout, never to the log; kept for the local CLI.
		if err := config.WriteCredentials(cfg.DataDir, boot.Key.AccountID, boot.Key.ID, boot.Key.Secret); err != nil {
			return fmt.Errorf("bootstrap account: %w", err)
		}
		fmt.Printf("Generated the bootstrap access key (shown only now; the flowlog CLI on this machine\n"+
			"reads it from %s):\n"+
			"export FLOWLOG_ACCOUNT_ID=%s\nexport FLOWLOG_ACCESS_KEY_ID=%s\nexport FLOWLOG_ACCESS_KEY_SECRET=%s\n",
			filepath.Join(cfg.DataDir, config.CredentialsFile), boot.Key.AccountID, boot.Key.ID, boot.Key.Secret)
	}

	// Tools reading the data dir offline learn from it where records are.
	if before, ok := backend.Previous(cfg.DataDir, cfg.LogStore()); ok {
		log.Warn("the log store changed since the last run: records stored before stay where they are, not moved",
			"before", before.String(), "now", cfg.LogStore().String())
	}
	if err := backend.Record(cfg.DataDir, cfg.LogStore()); err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	// The control plane is the store's catalog: a deleted log stream's
	// records go at once, and the hourly follow applies retention changes
	// and deletes what an earlier run could not.
	svc.OnLogStreamDeleted(func(ctx context.Context, account, id string) {
		if err := store.DropStream(ctx, logs, store.StreamID{Account: account, Stream: id}); err != nil {
			log.Warn("records of a deleted log stream not deleted yet; retried within the hour",
				"log_stream", id, "err", err)
		}
	})
	go store.FollowCatalog(ctx, logs, svc, time.Hour, log)

	sp, err := spool.Open(spool.Config{Dir: filepath.Join(cfg.DataDir, spool.DirName), MaxBytes: int64(cfg.SpoolMaxMB) << 20,
		Reserve: int64(cfg.DiskReserveMB) << 20})
	if err != nil {
		return err
	}
	mem := ingest.NewMemory(int64(cmp.Or(cfg.IngestMemoryMB, 512)) << 20)
	enricher, err := openEnricher(cfg.MMDB, cfg.MMDBReload, log)
	if err != nil {
		return err
	}
	defer enricher.Close()
	plane, err := dataplane.New(dataplane.Config{Control: svc, Store: logs, Spool: sp, Memory: mem,
		DataDir: cfg.DataDir, Logger: log, Enricher: enricher,
		NetflowListen: config.Listener(cfg.NetflowListen), SFlowListen: config.Listener(cfg.SFlowListen),
		Session: netflow.SessionConfig{V9FlowCount: cfg.NetflowV9FlowCount}, PcapDir: cfg.PcapDir, FileDir: cfg.FileDir})
	if err != nil {
		return err
	}
	planeCtx, stopPlane := context.WithCancel(ctx)
	planeDone := make(chan struct{})
	go func() { plane.Run(planeCtx); close(planeDone) }()
	// Stopping the data plane delivers what is in flight before the store closes.
	defer func() { stopPlane(); <-planeDone }()

	srv := api.New(api.Config{Logger: log, Store: logs, Metrics: plane.MetricsHandler(),
		MetricsToken: cfg.MetricsToken, Replay: auth.ReplayConfig{MaxPerAccount: cfg.ReplayPerAccount},
		QueryTimeout: cfg.QueryTimeout, QueryConcurrency: cfg.QueryConcurrency, Web: web.New(),
		Exporters: plane,
	}, svc)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := newHTTPServer(srv, tlsCfg, log)
	hs.RegisterOnShutdown(srv.EndLongPolls)
	log.Info("flowlog serving", "listen", ln.Addr().String(), "tls", tlsCfg != nil, "data_dir", cfg.DataDir,
		"store", cfg.LogStore().String(), "account", boot.Key.AccountID, "collector", plane.CollectorAddrs())
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- hs.ServeTLS(ln, "", "")
			return
		}
		errc <- hs.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("flowlog shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer bounds what a connection may hold before and between
// requests: headers must arrive within 5 s (the TLS handshake too) and fit
// in 64 KiB, an idle keep-alive connection closes after 60 s. Bodies are
// bounded by the API handler itself (front.Config), once it knows whether
// the request deserves reading.
func newHTTPServer(h http.Handler, tlsCfg *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
