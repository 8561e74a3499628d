package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"flowlog/internal/store/export"
)

func init() { commands = append(commands, newExportCmd) }

func newExportCmd() *cobra.Command {
	var target streamTarget
	var since, until, where, format, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the records of a log stream over a time range as Parquet, CSV or JSON lines",
		Example: `  flowlog export --data-dir DIR --log-stream lan --since 24h --format parquet --out lan.parquet
  flowlog export --data-dir /var/lib/flowlog --log-stream flows --since 1h   # a stopped server's data
  flowlog export --data-dir DIR --log-stream lan --since 2026-03-14T00:00:00Z --until 2026-03-15T00:00:00Z --format csv > day.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			o := export.Options{Where: where, Format: format}
			var err error
			if o.Since, o.Until, err = parseWindow(since, until, now); err != nil {
				return err
			}
			if format == "parquet" {
				if out == "" {
					return errors.New("--format parquet needs --out FILE")
				}
				o.Path = out
			} else if out != "" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				o.Out = f
			} else {
				o.Out = cmd.OutOrStdout()
			}
			ctx := cmd.Context()
			target.notes = cmd.ErrOrStderr()
			q, id, err := openQuerier(ctx, target)
			if err != nil {
				return err
			}
			defer q.Close()
			n, err := export.Export(ctx, q, id, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d records\n", n)
			return nil
		},
	}
	target.addFlags(cmd)
	fl := cmd.Flags()
	fl.StringVar(&target.server, "server", "", "URL of a flowlog server to export from instead")
	fl.StringVar(&since, "since", "24h", "start of the range: a duration before now or RFC 3339 time")
	fl.StringVar(&until, "until", "", "end of the range (exclusive); default now")
	fl.StringVar(&where, "where", "", "filter, as for flowlog query")
	fl.StringVar(&format, "format", "csv", "parquet, csv or jsonl")
	fl.StringVar(&out, "out", "", "output file (required for parquet; default standard output)")
	cmd.MarkFlagRequired("log-stream")
	return cmd
}
