package main

import (
	"bufio"
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
var remoteQuerier func(ctx context.Context, t streamTarget) (querier, error)

// streamTarget is where query and export read: a data dir or a server,
// and the log stream there (a name or ls-… id, narrowed by log group or
// account when the name is not unique).
type streamTarget struct {
	dataDir, store, server, stream, group, account string
	notes                                          io.Writer // where notes for the user go (the command's stderr)
}

func (t *streamTarget) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&t.dataDir, "data-dir", "", "data directory of the embedded store or of a stopped server")
	fl.StringVar(&t.store, "store", "", "with --data-dir of a server that keeps its records in ClickHouse: "+
		"clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE] to read them from (default: FLOWLOG_STORE, for such a data dir)")
	fl.StringVar(&t.stream, "log-stream", "", "log stream: its name or ls-… id (required)")
	fl.StringVar(&t.group, "log-group", "", "log group (name or lg-… id) of the log stream, when its name is not unique")
	fl.StringVar(&t.account, "account", "", "account of the log stream in a server's --data-dir, when its name is not unique")
}

// openQuerier opens what --data-dir or --server name, and the stream.
func openQuerier(ctx context.Context, t streamTarget) (querier, store.StreamID, error) {
	switch {
	case t.dataDir != "" && t.server != "":
		return nil, store.StreamID{}, errors.New("give --data-dir or --server, not both")
	case t.store != "" && t.dataDir == "":
		return nil, store.StreamID{}, errors.New("--store needs --data-dir: the data dir's control state names the log streams " +
			"whose records --store holds; or query the server with --server")
	case t.dataDir != "":
		s, id, err := openDataDir(ctx, t)
		if err != nil {
			return nil, id, err
		}
		return s, id, nil
	case t.account != "":
		return nil, store.StreamID{}, errors.New("--account applies to --data-dir; a server answers for your key's account")
	case t.server == "":
		t.server = defaultServer() // the local server
	}
	if remoteQuerier == nil {
		return nil, store.StreamID{}, errors.New("--server is not available in this build")
	}
	q, err := remoteQuerier(ctx, t)
	return q, store.StreamID{Stream: t.stream}, err // the server scopes it to the caller's account
}

type queryFlags struct {
	target                  streamTarget
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
  flowlog query --data-dir DIR --log-stream lan --since 6h --series 5m --by packets --output csv
  flowlog query --log-stream flows --top srcaddr --by bytes --output json | jq -r '.[].srcaddr'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := f.request(time.Now())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			f.target.notes = cmd.ErrOrStderr()
			q, id, err := openQuerier(ctx, f.target)
			if err != nil {
				return err
			}
			defer q.Close()
			resp, err := q.Query(ctx, id, req)
			if err != nil {
				return err
			}
			return printResponse(cmd.OutOrStdout(), cmd.ErrOrStderr(), resp, f.output)
		},
	}
	fl := cmd.Flags()
	f.target.addFlags(cmd)
	fl.StringVar(&f.target.server, "server", "", "URL of a flowlog server to query (default, without --data-dir: FLOWLOG_SERVER or the local server)")
	fl.StringVar(&f.since, "since", "1h", "start of the window: a duration before now (1h) or RFC 3339 time")
	fl.StringVar(&f.until, "until", "", "end of the window (exclusive): duration before now or RFC 3339; default now")
	fl.StringVar(&f.where, "where", "", "filter, e.g. 'srcaddr in 10.0.0.0/8 and not dstport in (22, 3389)'")
	fl.StringVar(&f.top, "top", "", "group by this field and show the top entries")
	fl.StringVar(&f.by, "by", "bytes", "measure for --top and --series: bytes, packets or flows")
	fl.StringVar(&f.series, "series", "", "time series with this interval, e.g. 1m")
	fl.IntVar(&f.limit, "limit", 0, "rows to return (default 10 for --top, 100 otherwise)")
	fl.IntVar(&f.offset, "offset", 0, "rows to skip (paging)")
	fl.StringVar(&f.output, "output", "table", "output format: table, csv, json (an array of objects) or jsonl (one object a line)")
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
	case "table", "csv", "json", "jsonl":
	default:
		return req, fmt.Errorf("--output %q: want table, csv, json or jsonl", f.output)
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

func printResponse(w, errW io.Writer, resp *query.Response, format string) error {
	if format == "json" || format == "jsonl" {
		if err := printObjects(w, resp, format == "jsonl"); err != nil {
			return err
		}
		if resp.NextOffset > 0 { // on stderr, to keep stdout one JSON document
			fmt.Fprintf(errW, "(more: --offset %d)\n", resp.NextOffset)
		}
		return nil
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

// printObjects writes a response as JSON objects keyed by field name, in
// column order: an array, or one object a line (jsonl). Aggregates are
// named after their measure (bytes, packets, flows), as --by names them.
func printObjects(w io.Writer, resp *query.Response, lines bool) error {
	objs, err := responseObjects(resp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	if lines {
		for _, o := range objs {
			bw.Write(o)
			bw.WriteByte('\n')
		}
		return bw.Flush()
	}
	bw.WriteByte('[')
	for i, o := range objs {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n  ")
		bw.Write(o)
	}
	if len(objs) > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// responseObjects encodes each record or row as one JSON object.
func responseObjects(resp *query.Response) ([][]byte, error) {
	var objs [][]byte
	if resp.Columns == nil {
		for i := range resp.Records {
			b, err := resp.Records[i].MarshalJSON()
			if err != nil {
				return nil, err
			}
			objs = append(objs, b)
		}
		return objs, nil
	}
	keys := make([][]byte, len(resp.Columns))
	for i, c := range resp.Columns {
		keys[i], _ = json.Marshal(measureName(c.Name, resp.Columns))
	}
	for _, r := range resp.Rows {
		b := []byte{'{'}
		for j, v := range r {
			if j > 0 {
				b = append(b, ',')
			}
			val, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(append(append(b, keys[j]...), ':'), val...)
		}
		objs = append(objs, append(b, '}'))
	}
	return objs, nil
}

// measureName names an aggregate column after what it measures: sum_bytes
// is bytes, count is flows; group keys and the series' time keep theirs,
// as does an aggregate whose measure is also a group key (--top bytes).
func measureName(col string, cols []query.Column) string {
	name := col
	if col == "count" {
		name = "flows"
	} else if f, ok := strings.CutPrefix(col, "sum_"); ok {
		name = f
	}
	for _, c := range cols {
		if c.Name == name && name != col {
			return col
		}
	}
	return name
}
