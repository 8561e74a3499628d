package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"flowlog/internal/dataplane"
	"flowlog/internal/flow"
	"flowlog/internal/meter"
)

func init() { commands = append(commands, newMeterCmd) }

type meterOpts struct {
	pcap             string
	ifaces           []string
	active, inactive float64
	sampling         uint32
	random           bool
	maxFlows         int
	format           string
	promisc          bool
	bpfFile          string
	duration         time.Duration
	sinks            sinkOpts
	quiet            bool // no records on stdout
}

func newMeterCmd() *cobra.Command {
	var o meterOpts
	def := meter.DefaultConfig()
	c := &cobra.Command{
		Use:   "meter (--pcap FILE | --interface IF ...)",
		Short: "Meter packets from a capture file or live interfaces into flow records",
		Long: `meter turns packets into unidirectional flow records and prints them on
stdout; a summary (packets, flows, drops by cause) goes to stderr. Files are
aged by packet time, live interfaces by the clock (stop with Ctrl-C).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMeter(cmd.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.pcap, "pcap", "", "read a pcap or pcapng file")
	f.StringSliceVar(&o.ifaces, "interface", nil, "capture live on this interface (repeatable)")
	f.Float64Var(&o.active, "active-timeout", def.ActiveTimeout.Seconds(), "active timeout, seconds")
	f.Float64Var(&o.inactive, "inactive-timeout", def.InactiveTimeout.Seconds(), "inactive timeout, seconds")
	f.Uint32Var(&o.sampling, "sampling", 1, "meter 1 packet in N; records hold estimates (counted × N) with sampling_interval N")
	f.BoolVar(&o.random, "random-sampling", false, "sample packets at random rather than every Nth")
	f.IntVar(&o.maxFlows, "max-flows", def.MaxFlows, "flow cache size")
	f.StringVar(&o.format, "format", "jsonl", "output format: jsonl, csv or table")
	f.BoolVar(&o.promisc, "promisc", false, "live: promiscuous mode")
	f.StringVar(&o.bpfFile, "bpf", "", "live: classic BPF filter file, as `tcpdump -dd EXPR` prints it")
	f.DurationVar(&o.duration, "duration", 0, "live: stop after this long (default: until interrupted)")
	f.StringVar(&o.sinks.netflow, "netflow", "", "also export the records to this NetFlow/IPFIX collector, HOST:PORT")
	f.StringVar(&o.sinks.netflowVersion, "netflow-version", "V9", "V5, V9 or V10 (IPFIX)")
	f.StringVar(&o.sinks.dataDir, "data-dir", "", "import the records into the embedded log store in this directory")
	f.StringVar(&o.sinks.logStream, "log-stream", "", "log stream to import into (with --data-dir)")
	c.PreRun = func(cmd *cobra.Command, _ []string) {
		// With another destination, stdout stays quiet unless asked.
		o.quiet = (o.sinks.netflow != "" || o.sinks.dataDir != "") && !cmd.Flags().Changed("format")
	}
	return c
}

func runMeter(ctx context.Context, o meterOpts) error {
	if (o.pcap == "") == (len(o.ifaces) == 0) {
		return errors.New("meter: give either --pcap or --interface")
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	defer out.Flush()
	w, err := newRecordWriter(out, o.format)
	if err != nil {
		return err
	}
	var tap func([]flow.Record)
	if !o.quiet {
		var mu sync.Mutex // each interface's meter delivers on its own goroutine
		tap = func(recs []flow.Record) {
			mu.Lock()
			defer mu.Unlock()
			w.write(recs)
		}
	}
	mp, err := openMeterPlane(ctx, o, tap)
	if err != nil {
		return err
	}
	start := time.Now()
	err = mp.run(ctx, o)
	w.close()
	for _, s := range mp.plane.CaptureStats() {
		fmt.Fprintf(os.Stderr, "interface %s: %d packets received, %d dropped by the kernel\n", s.Interface, s.Packets, s.Drops)
	}
	printSummary(mp.plane.FlowStats(meterFlowLog).Meter, time.Since(start))
	return errors.Join(err, mp.close())
}

// meterConfig is the meter the flags ask for.
func meterConfig(o meterOpts) meter.Config {
	return meter.Config{
		ActiveTimeout:   time.Duration(o.active * float64(time.Second)),
		InactiveTimeout: time.Duration(o.inactive * float64(time.Second)),
		MaxFlows:        o.maxFlows,
		Sampling:        o.sampling,
		RandomSampling:  o.random,
		Seed:            uint64(time.Now().UnixNano()),
	}
}

// run runs the plane until the file is read or, live, until interrupted
// or --duration ends. The plane's first report says whether the meter
// runs: if not, why.
func (mp *meterPlane) run(ctx context.Context, o meterOpts) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); mp.plane.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := mp.failed(<-mp.ctl.reports); err != nil {
		return err
	}
	if o.pcap != "" {
		return mp.waitImport()
	}
	return mp.waitLive(ctx, o)
}

func (mp *meterPlane) waitImport() error {
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		stop := showProgress(mp.plane)
		defer stop()
	}
	return <-mp.imported
}

// showProgress draws a progress bar on stderr until stop is called.
func showProgress(p *dataplane.Plane) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case <-t.C:
				st := p.FlowStats(meterFlowLog)
				frac := 0.0
				if st.Size > 0 {
					frac = min(float64(st.Read)/float64(st.Size), 1)
				}
				bar := strings.Repeat("#", int(frac*40)) + strings.Repeat(" ", 40-int(frac*40))
				fmt.Fprintf(os.Stderr, "\r[%s] %3.0f%% %d packets", bar, frac*100, st.Meter.Packets)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// waitLive captures until interrupted, --duration ends, or the capture
// fails.
func (mp *meterPlane) waitLive(ctx context.Context, o meterOpts) error {
	fmt.Fprintf(os.Stderr, "capturing on %s\n", strings.Join(o.ifaces, ", "))
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if o.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case st := <-mp.ctl.reports:
			if err := mp.failed(st); err != nil {
				return err
			}
		}
	}
}

func printSummary(s meter.Stats, took time.Duration) {
	metered := s.Packets - s.Sampled - s.NonIP - s.Truncated - s.Malformed - s.Unsupported
	fmt.Fprintf(os.Stderr, "%d packets (%d metered, %d skipped by sampling) in %v\n", s.Packets, metered, s.Sampled, took.Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "drops: %d not IP, %d truncated, %d malformed, %d unsupported link type; %d fragments without their first\n",
		s.NonIP, s.Truncated, s.Malformed, s.Unsupported, s.OrphanFragment)
	fmt.Fprintf(os.Stderr, "%d flows, %d records:", s.Flows, s.Records)
	for r := flow.EndIdle; r <= flow.EndLackOfResources; r++ {
		fmt.Fprintf(os.Stderr, " %d %s", s.ByReason[r], r)
	}
	fmt.Fprintln(os.Stderr)
}

// recordWriter prints records in one of the output formats.
type recordWriter struct {
	write func([]flow.Record)
	close func()
}

var tableFields = []string{"start", "end", "srcaddr", "srcport", "dstaddr", "dstport", "protocol",
	"packets", "bytes", "tcp_flags", "vlan_id", "end_reason"}

func newRecordWriter(out io.Writer, format string) (*recordWriter, error) {
	switch format {
	case "jsonl":
		return &recordWriter{write: func(rs []flow.Record) {
			for i := range rs {
				b, _ := rs[i].MarshalJSON()
				out.Write(append(b, '\n'))
			}
		}, close: func() {}}, nil
	case "csv":
		cw := csv.NewWriter(out)
		names := make([]string, len(flow.Fields))
		for i, f := range flow.Fields {
			names[i] = f.Name
		}
		cw.Write(names)
		row := make([]string, len(flow.Fields))
		return &recordWriter{write: func(rs []flow.Record) {
			for i := range rs {
				for j, f := range flow.Fields {
					row[j] = f.Text(&rs[i])
				}
				cw.Write(row)
			}
		}, close: cw.Flush}, nil
	case "table":
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fields := make([]flow.Field, len(tableFields))
		for i, n := range tableFields {
			fields[i], _ = flow.FieldByName(n)
		}
		fmt.Fprintln(tw, strings.Join(tableFields, "\t")+"\t")
		return &recordWriter{write: func(rs []flow.Record) {
			for i := range rs {
				for _, f := range fields {
					fmt.Fprint(tw, f.Text(&rs[i]), "\t")
				}
				fmt.Fprintln(tw)
			}
		}, close: func() { tw.Flush() }}, nil
	}
	return nil, fmt.Errorf("meter: unknown format %q (want jsonl, csv or table)", format)
}
