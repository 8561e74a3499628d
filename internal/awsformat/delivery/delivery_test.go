package delivery

import (
	"path/filepath"
	"testing"
	"time"
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
