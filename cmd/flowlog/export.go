package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"flowlog/internal/awsformat"
	"flowlog/internal/store/export"
)

func init() { commands = append(commands, newExportCmd) }

func newExportCmd() *cobra.Command {
	var target streamTarget
	var since, until, where, format, out string
	var aws export.Options
	files := 0
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the records of a log stream over a time range as Parquet, CSV, JSON lines or AWS VPC Flow Logs files",
		Example: `  flowlog export --data-dir DIR --log-stream lan --since 24h --format parquet --out lan.parquet
  flowlog export --data-dir /var/lib/flowlog --log-stream flows --since 1h   # a stopped server's data
  flowlog export --data-dir DIR --log-stream lan --since 2026-03-14T00:00:00Z --until 2026-03-15T00:00:00Z --format csv > day.csv
  flowlog export --data-dir DIR --log-stream lan --since 24h --format aws --out logs/ --region eu-lab \
    --aws-format '${version} ${vpc-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${tcp-flags} ${flow-direction}'
  flowlog export --data-dir DIR --log-stream lan --since 24h --format aws-parquet --out logs/ --hourly`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			o := aws
			o.Where, o.Format = where, format
			var err error
			if o.Since, o.Until, err = parseWindow(since, until, now); err != nil {
				return err
			}
			if format == "aws" || format == "aws-parquet" {
				if out == "" {
					return fmt.Errorf("--format %s needs --out DIR", format)
				}
				o.Dir = out
				o.Published = func(string) { files++ }
			} else if format == "parquet" {
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
			if o.Dir != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d records in %d files under %s\n", n, files, filepath.Join(o.Dir, "AWSLogs"))
				return nil
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
	fl.StringVar(&format, "format", "csv", "parquet, csv, jsonl, aws (VPC Flow Logs gzip text files) or aws-parquet (VPC Flow Logs Parquet files)")
	fl.StringVar(&out, "out", "", "output file (required for parquet; default standard output); for aws and aws-parquet, the directory to write AWSLogs/ under")
	fl.StringVar(&aws.AWSFormat, "aws-format", awsformat.DefaultFormat, "aws formats: the record format, in AWS's ${field} syntax")
	fl.StringVar(&aws.Region, "region", awsformat.DefaultRegion, "aws formats: the region name in the records and the layout")
	fl.BoolVar(&aws.Hourly, "hourly", false, "aws formats: per-hour partitions (hour=HH)")
	cmd.MarkFlagRequired("log-stream")
	return cmd
}
