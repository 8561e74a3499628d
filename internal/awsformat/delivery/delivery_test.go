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
