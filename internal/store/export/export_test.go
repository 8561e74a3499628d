package export

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"flowlog/internal/awsformat/delivery"
	"flowlog/internal/flow"
	"flowlog/internal/store"
	storeduck "flowlog/internal/store/duckdb"
	"flowlog/internal/store/storetest"
)

func TestExport(t *testing.T) {
	ctx := context.Background()
	s, id, err := storeduck.OpenLocal(ctx, t.TempDir(), "ls")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := storetest.Records(3000, 5*time.Hour, 11)
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	// The window ends inside the data: only records with end < until count.
	o := Options{Since: storetest.Base, Until: storetest.Base.Add(4 * time.Hour), Where: "protocol != 1", Window: 30 * time.Minute}
	var want []flow.Record
	for _, r := range recs {
		if r.End < o.Until.UnixMilli() && r.Protocol != 1 {
			want = append(want, r)
		}
	}

	t.Run("csv", func(t *testing.T) {
		var buf bytes.Buffer
		o := o
		o.Format, o.Out = "csv", &buf
		n, err := Export(ctx, s, id, o)
		if err != nil || n != len(want) {
			t.Fatalf("Export = %d, %v; want %d", n, err, len(want))
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var got []flow.Record
		for _, row := range rows[1:] {
			var r flow.Record
			for i, f := range flow.Fields {
				if rows[0][i] != f.Name {
					t.Fatalf("header %v", rows[0])
				}
				if err := f.Set(&r, row[i]); err != nil {
					t.Fatal(err)
				}
			}
			got = append(got, r)
		}
		storetest.SameRecords(t, got, want)
	})
	t.Run("jsonl", func(t *testing.T) {
		var buf bytes.Buffer
		o := o
		o.Format, o.Out = "jsonl", &buf
		if _, err := Export(ctx, s, id, o); err != nil {
			t.Fatal(err)
		}
		var got []flow.Record
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			var r flow.Record
			if err := r.UnmarshalJSON(sc.Bytes()); err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		storetest.SameRecords(t, got, want)
	})
	t.Run("parquet", func(t *testing.T) {
		o := o
		o.Format, o.Path = "parquet", filepath.Join(t.TempDir(), "out's.parquet")
		if _, err := Export(ctx, s, id, o); err != nil {
			t.Fatal(err)
		}
		c, err := duckdb.NewConnector("", nil)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(c)
		defer db.Close()
		var n int
		var bytesSum uint64
		var src string
		err = db.QueryRow(`SELECT count(*), sum(bytes)::UBIGINT, max(srcaddr) FILTER (WHERE ip_version = 6) FROM read_parquet(?)`, o.Path).Scan(&n, &bytesSum, &src)
		if err != nil {
			t.Fatal(err)
		}
		var wantSum uint64
		var wantSrc string
		for _, r := range want {
			wantSum += r.Bytes
			if r.IPVersion == 6 && r.SrcAddr.String() > wantSrc {
				wantSrc = r.SrcAddr.String()
			}
		}
		if n != len(want) || bytesSum != wantSum || src != wantSrc {
			t.Errorf("parquet: %d records, %d bytes, max v6 src %s; want %d, %d, %s", n, bytesSum, src, len(want), wantSum, wantSrc)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, err := Export(ctx, s, id, Options{Format: "xml"}); !errors.Is(err, ErrFormat) {
			t.Errorf("xml: %v", err)
		}
		// A stream the store does not hold (never written to) has no records.
		if n, err := Export(ctx, s, store.StreamID{Account: "local", Stream: "nope"}, Options{Since: o.Since, Until: o.Until, Format: "csv", Out: &bytes.Buffer{}}); n != 0 || err != nil {
			t.Errorf("unknown stream: %d records, %v; want none", n, err)
		}
	})
}

// TestExportAWS writes records spanning hours from three flow logs as AWS
// VPC Flow Logs files, and reads them back with DuckDB: one file per flow
// log and 5 minutes of records (by end), holding those records, with the
// totals of the store.
func TestExportAWS(t *testing.T) {
	ctx := context.Background()
	s, id, err := storeduck.OpenLocal(ctx, t.TempDir(), "ls")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := storetest.Records(3000, 5*time.Hour, 5)
	if err := s.Append(ctx, id, recs); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	var wantPackets, wantBytes uint64
	for _, r := range recs {
		files[fmt.Sprint(r.FlowLogID, delivery.WindowEnd(time.UnixMilli(r.End)).Unix())] = true
		wantPackets += r.Packets
		wantBytes += r.Bytes
	}
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	format := "${version} ${account-id} ${protocol} ${srcport} ${dstport} ${packets} ${bytes} ${start} ${end} ${action}"
	for _, c := range []struct{ format, read string }{
		{"aws", `read_csv('%s/AWSLogs/**/*.log.gz', delim = ' ', header = true, nullstr = '-', hive_partitioning = true, filename = true,
			columns = {'version': 'INTEGER', 'account_id': 'VARCHAR', 'protocol': 'INTEGER', 'srcport': 'INTEGER', 'dstport': 'INTEGER',
			'packets': 'BIGINT', 'bytes': 'BIGINT', 'start': 'BIGINT', 'end': 'BIGINT', 'action': 'VARCHAR'})`},
		{"aws-parquet", `read_parquet('%s/AWSLogs/**/*.parquet', hive_partitioning = true, filename = true)`},
	} {
		t.Run(c.format, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Since: storetest.Base, Until: storetest.Base.Add(6 * time.Hour), Format: c.format, Dir: dir,
				AWSFormat: format, Hourly: c.format == "aws", Window: 40 * time.Minute}
			if n, err := Export(ctx, s, id, o); err != nil || n != len(recs) {
				t.Fatalf("Export = %d, %v; want %d", n, err, len(recs))
			}
			var n, nfiles, misplaced, icmpPorts, blanks int
			var packets, bytes uint64
			err := db.QueryRow(`SELECT count(*), count(DISTINCT filename), sum(packets)::UBIGINT, sum(bytes)::UBIGINT,
				count(*) FILTER (WHERE NOT ("end" < stamp AND "end" >= stamp - 300 AND "aws-account-id" = account_id AND version = 2)),
				count(*) FILTER (WHERE protocol = 1 AND (srcport != 0 OR dstport != 0)),
				count(*) FILTER (WHERE action LIKE '% %')
				FROM (SELECT *, epoch(strptime(regexp_extract(filename, '_(\d{8}T\d{4}Z)_', 1), '%Y%m%dT%H%MZ'))::BIGINT AS stamp
				FROM `+fmt.Sprintf(c.read, dir)+`)`).Scan(&n, &nfiles, &packets, &bytes, &misplaced, &icmpPorts, &blanks)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(recs) || nfiles != len(files) || packets != wantPackets || bytes != wantBytes || misplaced != 0 || icmpPorts != 0 || blanks != 0 {
				t.Errorf("%d records in %d files, %d packets, %d bytes, %d outside their file's window, %d ICMP with ports, %d actions with blanks;"+
					" want %d records in %d files, %d packets, %d bytes", n, nfiles, packets, bytes, misplaced, icmpPorts, blanks,
					len(recs), len(files), wantPackets, wantBytes)
			}
			if tmp, _ := filepath.Glob(filepath.Join(dir, "AWSLogs", "*", "*", "*", "*", "*", "*", "*", ".*")); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
	if _, err := Export(ctx, s, id, Options{Since: storetest.Base, Until: storetest.Base.Add(time.Hour), Format: "aws"}); !errors.Is(err, ErrFormat) {
		t.Errorf("aws without a directory: %v", err)
	}
}
