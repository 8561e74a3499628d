package delivery

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flowlog/internal/awsformat"
	"flowlog/internal/flow"
	"flowlog/internal/store/storetest"
)

func TestLayout(t *testing.T) {
	at := time.Date(2026, 3, 14, 23, 57, 12, 0, time.UTC)
	stamp := WindowEnd(at)
	l := Layout{Dir: "/out", Hourly: true, Parquet: true}
	want := "/out/AWSLogs/aws-account-id=acct/aws-service=vpcflowlogs/aws-region=local/year=2026/month=03/day=15/hour=00/acct_vpcflowlogs_local_fl-1_20260315T0000Z_0a1b2c3d.parquet"
	if got := l.Path("acct", "local", "fl-1", stamp, "0a1b2c3d"); got != filepath.FromSlash(want) {
		t.Errorf("path\n%s\nwant\n%s", got, want)
	}
}

// TestPathParts checks that no part of a record or a setting makes a path
// leave the directory.
func TestPathParts(t *testing.T) {
	l := Layout{Dir: "/out"}
	stamp := time.Date(2026, 3, 14, 10, 5, 0, 0, time.UTC)
	got := l.Path("../..", "..", "a/b", stamp, "00000000")
	if filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(got)))))) != filepath.FromSlash("/out/AWSLogs/aws-account-id=.._..") {
		t.Errorf("%s leaves the layout", got)
	}
	want := "/out/AWSLogs/aws-account-id=.._../aws-service=vpcflowlogs/aws-region=../year=2026/month=03/day=14/.._.._vpcflowlogs_.._a_b_20260314T1005Z_00000000.log.gz"
	if got != filepath.FromSlash(want) {
		t.Errorf("path\n%s\nwant\n%s", got, want)
	}
}

// TestLost checks that the records of a file that cannot be published are
// counted as lost, and those published are not.
func TestLost(t *testing.T) {
	dir := t.TempDir()
	f, err := awsformat.Parse("", "")
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(Layout{Dir: dir}, f)
	var published []string
	w.OnPublish = func(p string) { published = append(published, p) }
	at := time.Date(2026, 3, 14, 10, 1, 0, 0, time.UTC)
	for _, id := range []string{"fl-a", "fl-a", "fl-b"} {
		if err := w.Write(&flow.Record{AccountID: "acct", FlowLogID: id}, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.PublishBefore(at); err != nil || len(published) != 0 {
		t.Fatalf("published %v (%v) before the window ended", published, err)
	}
	os.RemoveAll(filepath.Join(dir, "AWSLogs"))
	if err := w.Close(); err == nil || w.Lost() != 3 {
		t.Errorf("Close = %v, lost %d; want an error and 3 records lost", err, w.Lost())
	}
}

// TestMaxBytes checks that a window's text file is published early once
// it reaches the cap, and that the window's next records go to another
// file of the same window.
func TestMaxBytes(t *testing.T) {
	dir := t.TempDir()
	f, _ := awsformat.Parse("", "")
	w := NewWriter(Layout{Dir: dir, MaxBytes: 64 << 10}, f)
	var published []string
	w.OnPublish = func(p string) { published = append(published, p) }
	at := time.Date(2026, 3, 14, 10, 1, 0, 0, time.UTC)
	recs := storetest.Records(30000, time.Minute, 3)
	for i := range recs {
		if err := w.Write(&recs[i], at); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, path := range published {
		if !strings.Contains(path, "_20260314T1005Z_") {
			t.Errorf("%s is not of the 10:05 window", path)
		}
		in, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(gz)
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines += strings.Count(string(b), "\n") - 1 // the header
	}
	// storetest's records come from three flow logs: three files at least
	// without the cap.
	if n := len(published); n <= 3 || lines != len(recs) {
		t.Errorf("%d files holding %d records; want more than 3 files holding %d", n, lines, len(recs))
	}
}

// TestSameContent checks that writing the same records again makes the
// same file rather than a second one, so that an export run twice does not
// count its records twice.
func TestSameContent(t *testing.T) {
	dir := t.TempDir()
	f, _ := awsformat.Parse("", "")
	at := time.Date(2026, 3, 14, 10, 1, 0, 0, time.UTC)
	var paths []string
	for range 2 {
		w := NewWriter(Layout{Dir: dir}, f)
		w.OnPublish = func(p string) { paths = append(paths, p) }
		if err := w.Write(&flow.Record{AccountID: "acct", FlowLogID: "fl-a", Packets: 3}, at); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(paths[0]), "*"))
	if len(paths) != 2 || paths[0] != paths[1] || len(files) != 1 {
		t.Fatalf("published %v; the directory holds %v", paths, files)
	}
}
