package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"flowlog/internal/awsformat"
	"flowlog/internal/awsformat/delivery"
	"flowlog/internal/control"
	"flowlog/internal/desired"
	"flowlog/internal/flow"
)

// fileSink delivers a flow log's records as AWS VPC Flow Logs files: the
// records that arrive in a 5-minute window go to that window's file,
// published when the window ends (and on close, so that nothing is lost
// at shutdown).
type fileSink struct {
	log  *slog.Logger
	id   string
	mu   sync.Mutex
	w    *delivery.Writer
	err  error // the last failure, logged once
	stop chan struct{}
	done chan struct{}
	now  func() time.Time // guarded by mu
}

// fileDir is where a flow log of output type file writes: its output_dir
// inside its account's directory under the data plane's file directory.
// Each account has a directory of its own, and nothing an API user
// chooses leads outside it, symbolic links included.
func fileDir(root string, fl desired.FlowLog) (string, error) {
	if root == "" {
		return "", errors.New("this server has no file directory for output type file: start it with --file-dir")
	}
	rel := filepath.FromSlash(fl.File.OutputDir)
	if !filepath.IsLocal(rel) || !filepath.IsLocal(fl.AccountID) {
		return "", fmt.Errorf("output directory %q is not inside the file directory", fl.File.OutputDir)
	}
	dir, err := mkdirInside(root, filepath.Join(fl.AccountID, rel))
	if errors.Is(err, errOutside) {
		return "", fmt.Errorf("output directory %q %w", fl.File.OutputDir, err)
	}
	return dir, err
}

var errOutside = errors.New("leads outside the file directory")

// mkdirInside makes the directory rel under root one level at a time,
// checking each level before making the next, so that a symbolic link on
// the way out of root is refused before anything is made beyond it.
func mkdirInside(root, rel string) (string, error) {
	dir := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("output directory: %v", err)
		}
		if !control.InDir(root, dir) {
			return "", errOutside
		}
	}
	return dir, nil
}

func openFileSink(root string, fl desired.FlowLog, log *slog.Logger) (*fileSink, error) {
	if fl.File == nil {
		return nil, errors.New("output type file has no settings")
	}
	format, err := awsformat.Parse(fl.File.LogFormat, fl.File.Region)
	if err != nil {
		return nil, err
	}
	dir, err := fileDir(root, fl)
	if err != nil {
		return nil, err
	}
	l := delivery.Layout{Dir: dir, Hourly: fl.File.PerHourPartition, Parquet: fl.File.FileFormat == desired.FileParquet}
	s := &fileSink{log: log, id: fl.ID, w: delivery.NewWriter(l, format), stop: make(chan struct{}),
		done: make(chan struct{}), now: time.Now}
	go s.publishEvery()
	return s, nil
}

// publishEvery publishes each window's files as the window ends, whether
// or not records come.
func (s *fileSink) publishEvery() {
	defer close(s.done)
	for {
		now := time.Now()
		select {
		case <-s.stop:
			return
		case <-time.After(delivery.WindowEnd(now).Sub(now)):
			s.rotate()
		}
	}
}

// rotate publishes the files of the windows that have ended.
func (s *fileSink) rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed(s.w.PublishBefore(s.now()))
}

// write adds the records to the current window's files; a record that
// cannot be written counts as lost.
func (s *fileSink) write(recs []flow.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i := range recs {
		s.failed(s.w.Write(&recs[i], now))
	}
}

// lost is how many records the sink could not deliver.
func (s *fileSink) lost() uint64 { return s.w.Lost() }

// failed logs a failure unless it is the one logged last.
func (s *fileSink) failed(err error) {
	if err == nil {
		return
	}
	if s.err == nil || s.err.Error() != err.Error() {
		s.log.Error("file output", "flow_log", s.id, "err", err)
	}
	s.err = err
}

// close publishes every file still open.
func (s *fileSink) close() {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed(s.w.Close())
}
