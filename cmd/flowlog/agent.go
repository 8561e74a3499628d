package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"flowlog/internal/agent"
	"flowlog/internal/config"
	"flowlog/internal/dataplane"
	"flowlog/internal/ingest"
	"flowlog/internal/netflow"
	"flowlog/internal/spool"
	"flowlog/internal/store/backend"
)

func init() { commands = append(commands, newAgentCmd, newAgentsCmd) }

// agentFlags configure `flowlog agent`.
type agentFlags struct {
	server, caFile, name, dataDir, store      string
	metricsListen, netflowListen, sflowListen string
	pcapDir, fileDir, logLevel                string
	spoolMaxMB, memoryMB                      int
	v9FlowCount                               bool
	mmdb                                      []string
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the data plane of the gateways assigned to this agent, for a flowlog server",
		Long: `Run a flowlog agent: the captures, pcap replays and collector of the gateways
the server assigns to it (gateways create --agent NAME), writing their flow
logs' records straight to the shared ClickHouse (--store), through a spool in
the data dir that holds them while ClickHouse is away, and exporting NetFlow
where flow logs say so. It follows the server's desired state (a long poll)
and reports what runs. When the server is away it keeps running what it runs
(and, restarted, the desired state it kept in the data dir), and catches up
when the server returns.

FLOWLOG_ACCESS_KEY_ID / FLOWLOG_ACCESS_KEY_SECRET are the agent's key, as
'flowlog agents create --name NAME' printed it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", defaultServer(), "flowlog server URL (env FLOWLOG_SERVER)")
	fl.StringVar(&f.caFile, "ca-file", os.Getenv("FLOWLOG_CA_FILE"), "PEM CA certificate(s) to trust for an https server (env FLOWLOG_CA_FILE)")
	fl.StringVar(&f.name, "name", os.Getenv("FLOWLOG_AGENT_NAME"), "the agent's name, as registered (env FLOWLOG_AGENT_NAME)")
	fl.StringVar(&f.dataDir, "data-dir", os.Getenv("FLOWLOG_DATA_DIR"), "where the spool, templates and the last desired state are kept (env FLOWLOG_DATA_DIR)")
	fl.StringVar(&f.store, "store", os.Getenv("FLOWLOG_STORE"), "the shared log store: clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE] (env FLOWLOG_STORE)")
	fl.StringVar(&f.metricsListen, "metrics-listen", cmp.Or(os.Getenv("FLOWLOG_METRICS_LISTEN"), "127.0.0.1:9464"), "where /metrics is served, or off (env FLOWLOG_METRICS_LISTEN)")
	fl.StringVar(&f.netflowListen, "netflow-listen", cmp.Or(os.Getenv("FLOWLOG_NETFLOW_LISTEN"), config.DefaultNetflowListen), "where exporter gateways send NetFlow v5/v9/IPFIX, or off (env FLOWLOG_NETFLOW_LISTEN)")
	fl.StringVar(&f.sflowListen, "sflow-listen", cmp.Or(os.Getenv("FLOWLOG_SFLOW_LISTEN"), config.DefaultSFlowListen), "where exporter gateways send sFlow, or off (env FLOWLOG_SFLOW_LISTEN)")
	fl.BoolVar(&f.v9FlowCount, "netflow-v9-flow-count", false, "accept NetFlow v9 packets counting only flow records, as softflowd's do")
	fl.StringVar(&f.fileDir, "file-dir", os.Getenv("FLOWLOG_FILE_DIR"), "where flow logs of output type file write AWS VPC Flow Logs files, each account in a directory of its own (env FLOWLOG_FILE_DIR; default: nowhere)")
	fl.StringVar(&f.pcapDir, "pcap-dir", os.Getenv("FLOWLOG_PCAP_DIR"), "where accounts other than the bootstrap one may replay capture files from (env FLOWLOG_PCAP_DIR; default: nowhere)")
	fl.StringVar(&f.logLevel, "log-level", cmp.Or(os.Getenv("FLOWLOG_LOG_LEVEL"), "info"), "debug, info, warn or error (env FLOWLOG_LOG_LEVEL)")
	fl.IntVar(&f.spoolMaxMB, "spool-max-mb", 16384, "bound of the disk spool (MiB)")
	fl.IntVar(&f.memoryMB, "ingest-memory-mb", 512, "records the log streams' pipelines hold in memory at once (MiB)")
	mmdbFlag(fl, &f.mmdb)
	return cmd
}

func runAgent(ctx context.Context, f agentFlags) error {
	if f.name == "" || f.dataDir == "" {
		return errors.New("give --name (the agent's registered name) and --data-dir")
	}
	st, err := config.ParseStore(f.store)
	if err != nil {
		return err
	}
	if st.Kind != config.StoreClickHouse {
		return errors.New("an agent writes to the shared log store: give --store clickhouse://…")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	id, secret := os.Getenv("FLOWLOG_ACCESS_KEY_ID"), os.Getenv("FLOWLOG_ACCESS_KEY_SECRET")
	if id == "" || secret == "" {
		return errors.New("set FLOWLOG_ACCESS_KEY_ID and FLOWLOG_ACCESS_KEY_SECRET to the agent's key (flowlog agents create)")
	}
	c, err := newClient(f.server, id, secret, f.caFile)
	if err != nil {
		return err
	}
	syscall.Umask(0o077)
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("agent", f.name)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// A ClickHouse server that does not answer is waited for: the spool
	// holds the records meanwhile.
	logs, err := backend.New(ctx, backend.Config{Store: st, DataDir: f.dataDir, Writer: f.name, Logger: log})
	if err != nil {
		return err
	}
	defer logs.Close()
	sp, err := spool.Open(spool.Config{Dir: filepath.Join(f.dataDir, spool.DirName), MaxBytes: int64(f.spoolMaxMB) << 20})
	if err != nil {
		return err
	}
	if len(f.mmdb) == 0 {
		f.mmdb = config.SplitList(os.Getenv("FLOWLOG_MMDB"))
	}
	enricher, err := openEnricher(f.mmdb, 0, log)
	if err != nil {
		return err
	}
	defer enricher.Close()
	plane, err := dataplane.New(dataplane.Config{Control: agent.New(c, f.name, f.dataDir, log), Name: f.name, Enricher: enricher,
		Store: logs, Spool: sp, Memory: ingest.NewMemory(int64(f.memoryMB) << 20), DataDir: f.dataDir,
		NetflowListen: config.Listener(f.netflowListen), SFlowListen: config.Listener(f.sflowListen),
		Session: netflow.SessionConfig{V9FlowCount: f.v9FlowCount}, PcapDir: f.pcapDir, FileDir: f.fileDir, Logger: log})
	if err != nil {
		return err
	}
	if f.metricsListen != config.Off {
		ln, err := net.Listen("tcp", f.metricsListen)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", plane.MetricsHandler())
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
		hs := newHTTPServer(mux, nil, log)
		go hs.Serve(ln)
		defer hs.Close()
		log.Info("metrics", "listen", ln.Addr().String())
	}
	log.Info("flowlog agent running", "server", f.server, "store", st.String(), "data_dir", f.dataDir,
		"collector", plane.CollectorAddrs())
	// Run returns once what is in flight reached the spool or the store.
	plane.Run(ctx)
	log.Info("flowlog agent stopped")
	return nil
}

// newAgentsCmd manages agents: the operator registers them and reads
// their status.
func newAgentsCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{Use: "agents", Short: "Register agents and read their status (bootstrap account)"}
	a.register(cmd)
	create := leaf("create", "Register an agent and print its key (shown only now)", 0,
		func(cmd *cobra.Command, _ []string) error {
			name, _ := cmd.Flags().GetString("name")
			return a.call("POST", "/v1/agents", nil, map[string]string{"name": name}, "", nil)
		})
	create.Flags().String("name", "", "the agent's name (lowercase letters, digits, '.', '_', '-')")
	cmd.AddCommand(create,
		leaf("list", "List agents: last seen, version applied, errors", 0, func(*cobra.Command, []string) error {
			return a.call("GET", "/v1/agents", nil, nil, "agents",
				[]string{"name", "gateways", "last_seen", "version_applied", "errors"})
		}),
		leaf("delete NAME", "Delete an agent and its key", 1, func(_ *cobra.Command, args []string) error {
			return a.call("DELETE", "/v1/agents/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}))
	return cmd
}
