package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"flowlog/internal/collect"
	"flowlog/internal/flow"
)

func init() { commands = append(commands, newCollectCmd) }

func newCollectCmd() *cobra.Command {
	var cfg collect.Config
	var format string
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Receive NetFlow v5/v9, IPFIX and sFlow and print the flow records",
		Long: "collect listens for NetFlow v5, v9 and IPFIX on one UDP port (the version is\n" +
			"detected per packet) and for sFlow v5 on another, and prints one JSON object\n" +
			"per flow record on standard output until interrupted.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" {
				return fmt.Errorf("unknown --format %q (supported: jsonl)", format)
			}
			if cfg.Listen == "" && cfg.SFlowListen == "" {
				return fmt.Errorf("give --listen and/or --sflow-listen")
			}
			w := bufio.NewWriterSize(os.Stdout, 1<<16)
			var mu sync.Mutex
			var werr error
			var buf []byte
			c, err := collect.New(cfg, func(recs []flow.Record) {
				mu.Lock()
				defer mu.Unlock()
				for i := range recs {
					buf = appendJSONLine(buf[:0], &recs[i])
					if _, err := w.Write(buf); err != nil && werr == nil {
						werr = err
					}
				}
				if err := w.Flush(); err != nil && werr == nil {
					werr = err
				}
			})
			if err != nil {
				return err
			}
			for _, a := range c.Addrs() {
				fmt.Fprintln(os.Stderr, "flowlog collect: listening on", a)
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			<-sig
			err = c.Close()
			for _, s := range c.Stats() {
				fmt.Fprintf(os.Stderr, "exporter %v: packets %d records %d decode_errors %d unknown_templates %d dropped %d sequence_lost %d templates_refused %d clamped %d\n",
					s.Exporter, s.Packets, s.Records, s.DecodeErrors, s.UnknownTemplates, s.Dropped, s.SequenceLost,
					s.TemplatesRefused, s.Clamped)
			}
			if n := c.Refused(); n > 0 {
				fmt.Fprintf(os.Stderr, "refused %d datagrams: %d exporters, none idle\n", n, cfg.MaxExporters)
			}
			mu.Lock()
			defer mu.Unlock()
			if werr != nil {
				return werr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "", "ADDR:PORT for NetFlow v5/v9 and IPFIX")
	f.StringVar(&cfg.SFlowListen, "sflow-listen", "", "ADDR:PORT for sFlow v5")
	f.StringVar(&format, "format", "jsonl", "output format: jsonl")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory where templates persist across restarts")
	f.IntVar(&cfg.Workers, "workers", 0, "receive sockets per port (default: CPUs, at most 4)")
	f.IntVar(&cfg.ReadBuffer, "read-buffer", 0, "socket receive buffer bytes (default 32 MiB)")
	f.IntVar(&cfg.MaxExporters, "max-exporters", 1024, "exporters with decoding state at once; new ones replace those idle for a minute")
	f.DurationVar(&cfg.Times.Past, "max-record-age", collect.DefaultTimeWindow.Past,
		"records ending longer ago than this, or more than 5 minutes ahead, are moved to their receive time (and counted as clamped)")
	f.BoolVar(&cfg.Session.V9FlowCount, "v9-flow-count", false,
		"accept NetFlow v9 packets whose header count covers only flow records, as softflowd's do\n(by default a count below the packet's flowsets is a decode error)")
	return cmd
}

// appendJSONLine appends a record as one JSON line: the record layout
// followed by where it was observed (exporter address and interfaces),
// which the stored layout leaves out.
func appendJSONLine(dst []byte, r *flow.Record) []byte {
	b, _ := r.MarshalJSON()
	dst = append(dst, b[:len(b)-1]...)
	dst = append(dst, `,"exporter_addr":"`...)
	if r.ExporterAddr.IsValid() {
		dst = r.ExporterAddr.AppendTo(dst)
	}
	dst = append(dst, `","input_ifindex":`...)
	dst = strconv.AppendUint(dst, uint64(r.InputIfIndex), 10)
	dst = append(dst, `,"output_ifindex":`...)
	dst = strconv.AppendUint(dst, uint64(r.OutputIfIndex), 10)
	return append(dst, "}\n"...)
}
