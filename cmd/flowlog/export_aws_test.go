package main

import (
	"bufio"
	"compress/gzip"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/testutil"
)

// awsParquetView is the Athena DDL AWS documents for VPC flow logs in
// Parquet (versions 2 to 5, Hive partitions by hour), as a DuckDB view.
const awsParquetView = `CREATE VIEW vpc_flow_logs_parquet AS SELECT
  version::INTEGER AS version, account_id::VARCHAR AS account_id, interface_id::VARCHAR AS interface_id,
  srcaddr::VARCHAR AS srcaddr, dstaddr::VARCHAR AS dstaddr, srcport::INTEGER AS srcport, dstport::INTEGER AS dstport,
  protocol::BIGINT AS protocol, packets::BIGINT AS packets, bytes::BIGINT AS bytes, start::BIGINT AS start,
  "end"::BIGINT AS "end", action::VARCHAR AS action, log_status::VARCHAR AS log_status, vpc_id::VARCHAR AS vpc_id,
  subnet_id::VARCHAR AS subnet_id, instance_id::VARCHAR AS instance_id, tcp_flags::INTEGER AS tcp_flags,
  type::VARCHAR AS type, pkt_srcaddr::VARCHAR AS pkt_srcaddr, pkt_dstaddr::VARCHAR AS pkt_dstaddr,
  region::VARCHAR AS region, az_id::VARCHAR AS az_id, sublocation_type::VARCHAR AS sublocation_type,
  sublocation_id::VARCHAR AS sublocation_id, pkt_src_aws_service::VARCHAR AS pkt_src_aws_service,
  pkt_dst_aws_service::VARCHAR AS pkt_dst_aws_service, flow_direction::VARCHAR AS flow_direction,
  traffic_path::INTEGER AS traffic_path,
  "aws-account-id", "aws-service", "aws-region", year, month, day, hour, filename
FROM read_parquet('%s/AWSLogs/**/*.parquet', hive_partitioning = true, hive_types_autocast = false, filename = true)`

// awsV5Format names every field of versions 2 to 5, in the DDL's order.
const awsV5Format = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${vpc-id} ${subnet-id} ${instance-id} ${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr} ${region} ${az-id} ${sublocation-type} ${sublocation-id} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${flow-direction} ${traffic-path}"

// TestExportAWS fills a log stream from demo/lab.pcap through a real
// serve, exports it as AWS VPC Flow Logs files (Parquet and gzip text),
// and reads them back with DuckDB as Athena users would: the totals by
// protocol must be those flowlog query gives, in AWS's layout and types.
func TestExportAWS(t *testing.T) {
	srv := testutil.StartServer(t)
	ls := demoFlowLog(t, srv, "demo")
	want := settled(t, srv, ls)
	dir := t.TempDir()
	export := func(format, out string, args ...string) {
		t.Helper()
		_, errOut, code := runCLI(t, srv, append(append([]string{"export", "--server", srv.URL, "--log-stream", ls, "--format", format, "--out", out}, storeWindow...), args...)...)
		if told := fmt.Sprintf("exported %d records in ", want.flows); code != 0 || !strings.HasPrefix(errOut, told) {
			t.Fatalf("export --format %s: exit %d, %q; want it to say %q", format, code, errOut, told)
		}
	}
	db := openDuckDB(t)

	t.Run("parquet", func(t *testing.T) {
		out := filepath.Join(dir, "pq")
		export("aws-parquet", out, "--hourly", "--region", "eu-lab", "--aws-format", awsV5Format)
		mustExec(t, db, fmt.Sprintf(awsParquetView, out))
		if got := totalsSQL(t, db, "vpc_flow_logs_parquet"); got != want {
			t.Errorf("aws-parquet read by DuckDB: %s\nflowlog query: %s", got, want)
		}
		// The file's own types are AWS's: INT32, INT64 or text per field.
		types := map[string]string{}
		rows := queryRows(t, db, fmt.Sprintf(`SELECT DISTINCT name, type FROM parquet_schema('%s/AWSLogs/**/*.parquet') WHERE type IS NOT NULL`, out))
		for _, r := range rows {
			types[r[0]] = r[1]
		}
		for col, typ := range map[string]string{"version": "INT32", "srcport": "INT32", "protocol": "INT32", "tcp_flags": "INT32",
			"traffic_path": "INT32", "packets": "INT64", "bytes": "INT64", "start": "INT64", "end": "INT64", "srcaddr": "BYTE_ARRAY",
			"account_id": "BYTE_ARRAY", "flow_direction": "BYTE_ARRAY"} {
			if types[col] != typ {
				t.Errorf("column %s is %s in the Parquet files, want %s", col, types[col], typ)
			}
		}
		// Partitions, file names and values are AWS's; each file holds the
		// records that end in the 5 minutes before its time stamp.
		check := queryRows(t, db, `SELECT count(*) FILTER (WHERE "aws-account-id" != account_id OR "aws-service" != 'vpcflowlogs'
			OR "aws-region" != 'eu-lab' OR region != 'eu-lab' OR version != 5 OR action != 'ACCEPT' OR log_status != 'OK'
			OR type NOT IN ('IPv4', 'IPv6') OR flow_direction NOT IN ('ingress', 'egress') OR pkt_srcaddr != srcaddr
			OR subnet_id IS NOT NULL OR traffic_path IS NOT NULL OR vpc_id NOT LIKE 'gw-%' OR start > "end"),
			count(*) FILTER (WHERE NOT regexp_matches(filename, '/' || account_id || '_vpcflowlogs_eu-lab_fl-[0-9a-z-]+_' ||
			  year || month || day || 'T' || hour || '[0-9]{2}Z_[0-9a-f]{8}\.parquet$')),
			count(*) FILTER (WHERE NOT ("end" < stamp AND "end" >= stamp - 300)),
			count(DISTINCT filename), count(DISTINCT stamp)
			FROM (SELECT *, epoch(strptime(regexp_extract(filename, '_(\d{8}T\d{4}Z)_', 1), '%Y%m%dT%H%MZ'))::BIGINT AS stamp FROM vpc_flow_logs_parquet)`)
		t.Logf("%d records in %s files: %s", want.flows, check[0][3], want)
		if c := check[0]; c[0] != "0" || c[1] != "0" || c[2] != "0" || c[3] != c[4] {
			t.Errorf("records with values unlike AWS's: %s, in misnamed files: %s, outside their file's window: %s; %s files for %s windows",
				c[0], c[1], c[2], c[3], c[4])
		}
		if srv.Account == "" || queryRows(t, db, `SELECT min("aws-account-id") FROM vpc_flow_logs_parquet`)[0][0] != srv.Account {
			t.Errorf("account partition is not the account %s", srv.Account)
		}
	})

	t.Run("text", func(t *testing.T) {
		out := filepath.Join(dir, "text")
		export("aws", out)
		files, _ := filepath.Glob(filepath.Join(out, "AWSLogs", "aws-account-id="+srv.Account, "aws-service=vpcflowlogs",
			"aws-region=local", "year=*", "month=*", "day=*", "*.log.gz"))
		if len(files) == 0 {
			t.Fatal("no .log.gz files in the layout")
		}
		name := regexp.MustCompile(`^` + srv.Account + `_vpcflowlogs_local_fl-[0-9a-z-]+_\d{8}T\d{3}[05]Z_[0-9a-f]{8}\.log\.gz$`)
		for _, f := range files {
			if !name.MatchString(filepath.Base(f)) {
				t.Errorf("file name %s", filepath.Base(f))
			}
		}
		if h := firstLine(t, files[0]); h != "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status" {
			t.Errorf("header line %q", h)
		}
		mustExec(t, db, fmt.Sprintf(`CREATE VIEW vpc_flow_logs AS SELECT * FROM read_csv('%s/AWSLogs/**/*.log.gz',
			delim = ' ', header = true, nullstr = '-', hive_partitioning = true, columns = {
			'version': 'INTEGER', 'account_id': 'VARCHAR', 'interface_id': 'VARCHAR', 'srcaddr': 'VARCHAR', 'dstaddr': 'VARCHAR',
			'srcport': 'INTEGER', 'dstport': 'INTEGER', 'protocol': 'BIGINT', 'packets': 'BIGINT', 'bytes': 'BIGINT',
			'start': 'BIGINT', 'end': 'BIGINT', 'action': 'VARCHAR', 'log_status': 'VARCHAR'})`, out))
		if got := totalsSQL(t, db, "vpc_flow_logs"); got != want {
			t.Errorf("aws text read by DuckDB: %s\nflowlog query: %s", got, want)
		}
		if c := queryRows(t, db, `SELECT count(*) FILTER (WHERE version != 2 OR action != 'ACCEPT' OR log_status != 'OK'
			OR account_id != "aws-account-id")::VARCHAR FROM vpc_flow_logs`); c[0][0] != "0" {
			t.Errorf("%s text records unlike AWS's", c[0][0])
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--format", "aws", "--out", dir, "--aws-format", "${version} ${srcaddr} ${bogus}"}, `unknown field "bogus" in "${bogus}"`},
			{[]string{"--format", "aws-parquet", "--out", dir, "--aws-format", "${version} srcaddr"}, `"srcaddr" is not a ${field-name} token`},
			{[]string{"--format", "aws"}, "--format aws needs --out DIR"},
		} {
			_, errOut, code := runCLI(t, srv, append([]string{"export", "--server", srv.URL, "--log-stream", ls}, c.args...)...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("%v: exit %d, %q; want an error saying %s", c.args, code, errOut, c.want)
			}
		}
	})
}

func openDuckDB(t *testing.T) *sql.DB {
	t.Helper()
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1) // one in-memory database for the views
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
}

// queryRows runs q and returns its rows as text.
func queryRows(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// totalsSQL sums a VPC flow logs table by protocol as totalsOf sums what
// flowlog query answers.
func totalsSQL(t *testing.T, db *sql.DB, table string) streamTotals {
	t.Helper()
	rows := queryRows(t, db, `SELECT protocol::VARCHAR, count(*)::VARCHAR, sum(packets)::VARCHAR, sum(bytes)::VARCHAR FROM `+table+` GROUP BY protocol`)
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	var parts []string
	n := 0
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s:%s/%s/%s", r[0], r[1], r[2], r[3]))
		var f int
		fmt.Sscan(r[1], &f)
		n += f
	}
	return streamTotals{flows: n, text: strings.Join(parts, " ")}
}

// firstLine returns the first line of a gzip file.
func firstLine(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(gz).ReadString('\n')
	return strings.TrimSuffix(line, "\n")
}
