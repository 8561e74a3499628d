package dataplane

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"flowlog/internal/desired"
	"flowlog/internal/flow"
)

// TestFileSinkWindows checks that records go to the file of the 5-minute
// window they arrive in, that a window's file is published once the window
// ends, and that closing publishes the rest.
func TestFileSinkWindows(t *testing.T) {
	root := t.TempDir()
	fl := desired.FlowLog{ID: "fl-1", AccountID: "acct", OutputType: desired.OutputFile,
		File: &desired.FileOutput{OutputDir: "out", FileFormat: desired.FilePlainText, Region: "r1"}}
	s, err := openFileSink(root, fl, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 14, 10, 2, 0, 0, time.UTC)
	s.mu.Lock()
	s.now = func() time.Time { return clock }
	s.mu.Unlock()
	rec := []flow.Record{{AccountID: "acct", FlowLogID: "fl-1", Protocol: 6, Packets: 1, Bytes: 40}}
	files := func() []string {
		var out []string
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out = append(out, filepath.Base(path))
			}
			return nil
		})
		return out
	}

	s.write(rec)
	s.rotate() // the window has not ended
	if got := files(); len(got) != 1 || !strings.HasPrefix(got[0], ".") {
		t.Fatalf("before the window ends: %v, want one hidden file being written", got)
	}
	s.mu.Lock()
	clock = clock.Add(3*time.Minute + time.Second) // 10:05:01
	s.mu.Unlock()
	s.write(rec)
	s.rotate()
	s.close()
	got := files()
	slices.Sort(got)
	if len(got) != 2 || !strings.HasPrefix(got[0], "acct_vpcflowlogs_r1_fl-1_20260314T1005Z_") ||
		!strings.HasPrefix(got[1], "acct_vpcflowlogs_r1_fl-1_20260314T1010Z_") {
		t.Errorf("files %v; want the 10:05 and the 10:10 windows'", got)
	}
	if _, err := os.Stat(filepath.Join(root, "acct", "out", "AWSLogs", "aws-account-id=acct", "aws-service=vpcflowlogs",
		"aws-region=r1", "year=2026", "month=03", "day=14")); err != nil {
		t.Error(err)
	}
}

// TestFileDirFence: without a file directory nothing is written; with one,
// each account writes in its own directory, and a symbolic link out of
// the file directory is refused before anything is made beyond it.
func TestFileDirFence(t *testing.T) {
	fl := desired.FlowLog{AccountID: "acct", File: &desired.FileOutput{OutputDir: "a/b"}}
	if _, err := fileDir("", fl); err == nil || !strings.Contains(err.Error(), "--file-dir") {
		t.Errorf("no file directory: %v", err)
	}
	root, outside := t.TempDir(), t.TempDir()
	if dir, err := fileDir(root, fl); err != nil || dir != filepath.Join(root, "acct", "a", "b") {
		t.Errorf("fileDir = %s, %v", dir, err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "acct", "out")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"out/x", "../other/x", "out"} {
		fl.File.OutputDir = d
		if _, err := fileDir(root, fl); err == nil {
			t.Errorf("output directory %s: no error", d)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("made outside the file directory: %v", entries)
	}
}
