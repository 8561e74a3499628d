package control

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"
)

// Config configures the control plane.
type Config struct {
	DataDir string // where control.db lives
	Quota   int    // flow logs per account; 0 means DefaultQuota
	// PcapDir is where accounts other than the bootstrap one may replay
	// capture files from; empty: nowhere.
	PcapDir string
}

// Service is the control plane. Every method takes the calling account and
// only ever sees that account's resources: an id owned by another account is
// reported as not found.
type Service struct {
	db      *sql.DB
	stmts   *atomic.Uint64 // statements run on db
	quota   int
	pcapDir string
	now     func() time.Time
	ver     *versions // the desired state's version, for watchers
	usage   *keyUsage // access keys' last use, persisted at most once a minute
	// streamDeleted runs after a log stream is deleted; nil: nothing.
	streamDeleted func(ctx context.Context, account, id string)
}

// New opens the control plane's state in cfg.DataDir.
func New(cfg Config) (*Service, error) {
	stmts := new(atomic.Uint64)
	db, err := openDB(cfg.DataDir, stmts)
	if err != nil {
		return nil, err
	}
	if cfg.Quota <= 0 {
		cfg.Quota = DefaultQuota
	}
	s := &Service{db: db, stmts: stmts, quota: cfg.Quota, pcapDir: cfg.PcapDir, now: func() time.Time { return time.Now().UTC() },
		ver: newVersions(), usage: newKeyUsage()}
	if err := s.loadVersion(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("control db: %w", err)
	}
	return s, nil
}

// Close writes the access keys' last uses not yet persisted and closes the
// database.
func (s *Service) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ferr := s.flushUsage(ctx)
	if err := s.db.Close(); err != nil {
		return err
	}
	return ferr
}
