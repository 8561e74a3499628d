package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/ingest"
	"flowlog/internal/spool"
	"flowlog/internal/store"
	"flowlog/internal/store/duckdb"
)

// sinkOpts say where metered records go besides (or instead of) stdout.
type sinkOpts struct {
	netflow        string // HOST:PORT of a collector
	netflowVersion string
	dataDir        string // embedded store to import into
	logStream      string
}

// sinks fans the meter's records out to a NetFlow collector and/or the
// embedded log store. The first error of a sink is kept and reported.
type sinks struct {
	exp   *export.Exporter
	store *duckdb.Store
	pipe  *ingest.Pipeline
	src   *ingest.Source
	err   error
}

func openSinks(ctx context.Context, o sinkOpts, source string, live bool) (*sinks, error) {
	s := &sinks{}
	if o.netflow != "" {
		v, err := export.ParseVersion(o.netflowVersion)
		if err != nil {
			return nil, err
		}
		s.exp, err = export.New(export.Config{Collector: o.netflow, Version: v,
			Domain: export.DomainID(source)}) // records carry the meter's interval
		if err != nil {
			return nil, err
		}
	}
	if (o.dataDir == "") != (o.logStream == "") {
		s.close(ctx)
		return nil, errors.New("meter: --data-dir and --log-stream go together")
	}
	if o.dataDir != "" {
		var id store.StreamID
		var err error
		s.store, id, err = duckdb.OpenLocal(ctx, o.dataDir, o.logStream)
		if err != nil {
			s.close(ctx)
			return nil, err
		}
		// The records go through the data dir's spool, as in serve: an
		// interrupted import leaves them there, stored by the next run.
		sp, err := spool.Open(spool.Config{Dir: filepath.Join(o.dataDir, spool.DirName)})
		if err == nil {
			s.pipe, err = ingest.New(ctx, ingest.Config{}, sp, s.store, id)
		}
		if err != nil {
			s.close(ctx)
			return nil, err
		}
		s.src = s.pipe.Source(source, live)
	}
	return s, nil
}

// write hands one batch to every sink; the meter reuses recs afterwards,
// and both sinks copy or encode before returning.
func (s *sinks) write(ctx context.Context, recs []flow.Record) {
	if s.exp != nil {
		if err := s.exp.Export(recs); err != nil && s.err == nil {
			s.err = fmt.Errorf("netflow export: %w", err)
		}
	}
	if s.src != nil {
		if err := s.src.Write(ctx, recs); err != nil && s.err == nil {
			s.err = fmt.Errorf("log store: %w", err)
		}
	}
}

// close flushes the store and reports what each sink did on stderr.
func (s *sinks) close(ctx context.Context) error {
	err := s.err
	if s.exp != nil {
		st := s.exp.Stats()
		fmt.Fprintf(os.Stderr, "netflow: %d records in %d packets, %d skipped\n", st.Records, st.Packets, st.Skipped)
		err = errors.Join(err, s.exp.Close())
	}
	if s.pipe != nil {
		err = errors.Join(err, s.pipe.Close(ctx))
		st := s.pipe.Stats()
		fmt.Fprintf(os.Stderr, "log store: %d records stored, %d dropped\n", st.Committed, s.src.Dropped())
	}
	if s.store != nil {
		err = errors.Join(err, s.store.Close())
	}
	return err
}
