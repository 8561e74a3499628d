package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"flowlog/internal/flow"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
	"flowlog/internal/store/query"
)

func init() { commands = append(commands, newQueryCmd) }

// querier answers queries for the CLI: the embedded store (--data-dir) or
// a flowlog server (--server).
type querier interface {
	Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error)
	Close() error
}

// remoteQuerier connects to a flowlog server's query API; the API client
// sets it. Until then --server reports that it is unavailable.
var remoteQuerier func(ctx context.Context, serverURL string) (querier, error)

// openQuerier opens what --data-dir or --server name, and the stream.
func openQuerier(ctx context.Context, dataDir, server, stream string) (querier, store.StreamID, error) {
	switch {
	case dataDir != "" && server != "":
		return nil, store.StreamID{}, errors.New("give --data-dir or --server, not both")
	case server != "":
		if remoteQuerier == nil {
			return nil, store.StreamID{}, errors.New("--server is not available in this build")
		}
		q, err := remoteQuerier(ctx, server)
		return q, store.StreamID{Stream: stream}, err // the server scopes it to the caller's account
	case dataDir != "":
		s, id, err := duckdb.OpenLocal(ctx, dataDir, stream, false)
		if err != nil {
			return nil, id, err
		}
		return s, id, nil
	}
	return openQuerier(ctx, "", defaultServer(), stream) // the local server
}

type queryFlags struct {
	dataDir, server, stream string
	since, until, where     string
	top, by, series, output string
	limit, offset           int
}

func newQueryCmd() *cobra.Command {
	var f queryFlags
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Query a log stream: raw records, top-N, or a time series",
		Example: `  flowlog query --data-dir /var/lib/flowlog --log-stream lan --since 1h --where 'srcaddr in 10.0.0.0/8 and dstport = 443'
  flowlog query --data-dir DIR --log-stream lan --since 1h --top srcaddr --by bytes --limit 10
  flowlog query --data-dir DIR --log-stream lan --since 6h --series 5m --by packets --output csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := f.request(time.Now())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			q, id, err := openQuerier(ctx, f.dataDir, f.server, f.stream)
			if err != nil {
				return err
			}
			defer q.Close()
			resp, err := q.Query(ctx, id, req)
			if err != nil {
				return err
			}
			return printResponse(cmd.OutOrStdout(), resp, f.output)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory of the embedded store")
	fl.StringVar(&f.server, "server", "", "URL of a flowlog server to query (default, without --data-dir: FLOWLOG_SERVER or the local server)")
	fl.StringVar(&f.stream, "log-stream", "", "log stream to query (required)")
	fl.StringVar(&f.since, "since", "1h", "start of the window: a duration before now (1h) or RFC 3339 time")
	fl.StringVar(&f.until, "until", "", "end of the window (exclusive): duration before now or RFC 3339; default now")
	fl.StringVar(&f.where, "where", "", "filter, e.g. 'srcaddr in 10.0.0.0/8 and not dstport in (22, 3389)'")
	fl.StringVar(&f.top, "top", "", "group by this field and show the top entries")
	fl.StringVar(&f.by, "by", "bytes", "measure for --top and --series: bytes, packets or flows")
	fl.StringVar(&f.series, "series", "", "time series with this interval, e.g. 1m")
	fl.IntVar(&f.limit, "limit", 0, "rows to return (default 10 for --top, 100 otherwise)")
	fl.IntVar(&f.offset, "offset", 0, "rows to skip (paging)")
	fl.StringVar(&f.output, "output", "table", "output format: table, json or csv")
	cmd.MarkFlagRequired("log-stream")
	return cmd
}

// request builds the query request from the flags.
func (f *queryFlags) request(now time.Time) (query.Request, error) {
	var req query.Request
	var err error
	if req.Since, req.Until, err = parseWindow(f.since, f.until, now); err != nil {
		return req, err
	}
	req.Where, req.Limit, req.Offset = f.where, f.limit, f.offset
	switch f.output {
	case "table", "json", "csv":
	default:
		return req, fmt.Errorf("--output %q: want table, json or csv", f.output)
	}
	if f.top == "" && f.series == "" {
		return req, req.Validate()
	}
	var agg query.Aggregate
	switch f.by {
	case "bytes", "packets":
		agg = query.Aggregate{Func: "sum", Field: f.by}
	case "flows":
		agg = query.Aggregate{Func: "count"}
	default:
		return req, fmt.Errorf("--by %q: want bytes, packets or flows", f.by)
	}
	req.Aggregates = []query.Aggregate{agg}
	if f.top != "" {
		req.GroupBy = []string{f.top}
		if req.Limit == 0 && f.series == "" {
			req.Limit = 10
		}
	}
	req.Interval = f.series
	if req.Limit == 0 {
		req.Limit = query.MaxLimit
	}
	return req, req.Validate()
}

// parseWindow reads the --since and --until flags; an empty until is now.
func parseWindow(since, until string, now time.Time) (from, to time.Time, err error) {
	if from, err = parseWhen(since, now); err != nil {
		return from, to, fmt.Errorf("--since: %w", err)
	}
	to = now
	if until != "" {
		if to, err = parseWhen(until, now); err != nil {
			return from, to, fmt.Errorf("--until: %w", err)
		}
	}
	return from, to, nil
}

// parseWhen reads "1h" as now-1h, or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration nor an RFC 3339 time", s)
	}
	return t, nil
}

// queryTableFields are the record fields a table shows; csv and json show all.
var queryTableFields = []string{"start", "end", "srcaddr", "srcport", "dstaddr", "dstport", "protocol", "packets", "bytes", "action", "flow_log_id", "interface_id"}

func printResponse(w io.Writer, resp *query.Response, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	header, rows := tabulate(resp, format == "table")
	if format == "csv" {
		cw := csv.NewWriter(w)
		cw.Write(header)
		cw.WriteAll(rows)
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(header, "\t")))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if resp.NextOffset > 0 {
		fmt.Fprintf(tw, "(more: --offset %d)\n", resp.NextOffset)
	}
	return tw.Flush()
}

// tabulate turns a response into text rows; pretty formats times.
func tabulate(resp *query.Response, pretty bool) ([]string, [][]string) {
	timeText := func(ms int64) string {
		if pretty {
			return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
		}
		return strconv.FormatInt(ms, 10)
	}
	var header []string
	var rows [][]string
	if resp.Columns == nil {
		fields := flow.Fields
		if pretty {
			fields = nil
			for _, n := range queryTableFields {
				f, _ := flow.FieldByName(n)
				fields = append(fields, f)
			}
		}
		for _, f := range fields {
			header = append(header, f.Name)
		}
		for i := range resp.Records {
			row := make([]string, len(fields))
			for j, f := range fields {
				if f.Kind == flow.KindTime {
					row[j] = timeText(f.Get(&resp.Records[i]).(int64))
				} else {
					row[j] = f.Text(&resp.Records[i])
				}
			}
			rows = append(rows, row)
		}
		return header, rows
	}
	for _, c := range resp.Columns {
		header = append(header, c.Name)
	}
	for _, r := range resp.Rows {
		row := make([]string, len(r))
		for j, v := range r {
			if t, ok := v.(int64); ok && resp.Columns[j].Kind == flow.KindTime {
				row[j] = timeText(t)
			} else {
				row[j] = fmt.Sprint(v)
			}
		}
		rows = append(rows, row)
	}
	return header, rows
}
