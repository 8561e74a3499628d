package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"flowlog/internal/desired"
	"flowlog/internal/export"
	"flowlog/internal/ingest"
	"flowlog/internal/store"
)

// stream is the ingest pipeline of one log stream, shared by the flow logs
// writing to it.
type stream struct {
	pipe  *ingest.Pipeline
	users int
}

// openOutputs opens the sinks a flow log asks for.
func (p *Plane) openOutputs(ctx context.Context, fl desired.FlowLog) (*outputs, error) {
	o := &outputs{}
	if fl.OutputType == desired.OutputFile {
		f, err := openFileSink(p.cfg.FileDir, fl, p.log)
		o.file = f
		return o, err
	}
	sls, nf := fl.Outputs()
	if nf {
		e, err := openExporter(fl)
		if err != nil {
			return nil, err
		}
		o.netflow = e
	}
	if sls {
		src, id, err := p.openStream(ctx, fl)
		if err != nil {
			if o.netflow != nil {
				o.netflow.Close()
			}
			return nil, err
		}
		o.sls, o.stream = src, id
	}
	return o, nil
}

// closeOutputs closes what openOutputs opened for f, keeping what they
// counted in f's totals. A log stream's queue is written out before its
// pipeline closes.
func (p *Plane) closeOutputs(f *flowRun, o *outputs) {
	if o.netflow != nil {
		o.netflow.Close()
	}
	if o.file != nil {
		o.file.close()
	}
	if o.sls != nil {
		p.releaseStream(o.stream)
	}
	f.tot.retireOutputs(o)
}

func openExporter(fl desired.FlowLog) (*export.Exporter, error) {
	addr, err := netip.ParseAddr(fl.NetflowServerIP)
	if err != nil || addr.IsUnspecified() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, fmt.Errorf("netflow collector address %q is not a host address", fl.NetflowServerIP)
	}
	target := net.JoinHostPort(addr.String(), strconv.Itoa(fl.NetflowServerPort))
	ver, err := export.ParseVersion(fl.NetflowVersion)
	if err != nil {
		return nil, fmt.Errorf("netflow version %q is not supported", fl.NetflowVersion)
	}
	// Each record carries its own interval: a collected record the
	// router's, a metered one the flow log's.
	e, err := export.New(export.Config{Collector: target, Version: ver, Domain: export.DomainID(fl.ID)})
	if err != nil {
		return nil, fmt.Errorf("netflow collector %s cannot be reached: %v", target, err)
	}
	return e, nil
}

// openStream returns the flow log's source in its log stream's pipeline.
func (p *Plane) openStream(ctx context.Context, fl desired.FlowLog) (*ingest.Source, store.StreamID, error) {
	id := store.StreamID{Account: fl.AccountID, Stream: fl.LogStreamID}
	s, err := p.stream(ctx, id)
	if err != nil {
		return nil, id, err
	}
	s.users++
	return s.pipe.Source(fl.ID, !p.imports(fl)), id, nil
}

// imports says whether the flow log only imports pcap files
// (Config.Imported), whose records may wait for room in a log stream.
func (p *Plane) imports(fl desired.FlowLog) bool {
	if p.cfg.Imported == nil || len(fl.Targets) == 0 {
		return false
	}
	for _, t := range fl.Targets {
		i := slices.IndexFunc(p.state.Gateways, func(g desired.Gateway) bool { return g.ID == t.GatewayID })
		if i < 0 || p.state.Gateways[i].Kind != desired.KindPcap {
			return false
		}
	}
	return true
}

// stream returns the log stream's pipeline, opening it (and creating the
// stream in the store on first write) if need be.
func (p *Plane) stream(ctx context.Context, id store.StreamID) (*stream, error) {
	if s := p.streams[id]; s != nil {
		return s, nil
	}
	if p.cfg.Store == nil || p.cfg.Spool == nil {
		return nil, errors.New("this server has no log store")
	}
	ls, ok := p.logStream(id)
	if !ok {
		return nil, fmt.Errorf("log stream %s no longer exists", id.Stream)
	}
	// The store holds a stream from its first write; its group and
	// retention follow the control plane from then on (store.Follow). A
	// store that does not answer yet gets it once it does: the pipeline
	// spools meanwhile.
	prepare := func(ctx context.Context) error {
		_, err := p.cfg.Store.Stream(ctx, id)
		if errors.Is(err, store.ErrNoStream) {
			err = p.cfg.Store.CreateStream(ctx, ls.StoreStream())
		}
		return err
	}
	pipe, err := ingest.New(ctx, ingest.Config{Logger: p.log, Memory: p.cfg.Memory, Prepare: prepare}, p.cfg.Spool, p.cfg.Store, id)
	if err != nil {
		return nil, fmt.Errorf("log store: %v", err)
	}
	s := &stream{pipe: pipe}
	p.streams[id] = s
	return s, nil
}

// resumeSpools opens the pipelines of the log streams whose spool holds
// records from before a restart, so that they are stored, and drops the
// spools of log streams deleted since.
func (p *Plane) resumeSpools(ctx context.Context) {
	if p.cfg.Spool == nil {
		return
	}
	ids, err := p.cfg.Spool.Pending()
	if err != nil {
		p.log.Error("spool", "err", err)
		return
	}
	for _, id := range ids {
		if _, ok := p.logStream(id); !ok {
			p.dropSpool(id)
			continue
		}
		if _, err := p.stream(ctx, id); err != nil {
			p.log.Error("spooled records cannot be stored yet", "log_stream", id.Stream, "err", err)
		}
	}
}

// closeIdleStreams closes the pipelines no flow log writes to once their
// spool is empty, and those of deleted log streams at once, with their
// spool. It says whether it closed any.
func (p *Plane) closeIdleStreams(ctx context.Context) bool {
	n := len(p.streams)
	for id, s := range p.streams {
		if s.users > 0 {
			continue
		}
		_, exists := p.logStream(id)
		switch {
		case !exists:
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			s.pipe.Close(cancelled)
			delete(p.streams, id)
			p.totals.dropStream(id)
			p.dropSpool(id)
		case s.pipe.Stats().Queued == 0:
			p.closeStream(id, s)
		}
	}
	return len(p.streams) < n
}

func (p *Plane) dropSpool(id store.StreamID) {
	if err := p.cfg.Spool.Remove(id); err != nil {
		p.log.Error("spool of a deleted log stream", "log_stream", id.Stream, "err", err)
	}
}

func (p *Plane) releaseStream(id store.StreamID) {
	if s := p.streams[id]; s != nil {
		s.users--
	}
}

// closeStream commits what the stream's spool holds, for a while, and
// closes its pipeline; what is left is stored after the next start.
func (p *Plane) closeStream(id store.StreamID, s *stream) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.pipe.Close(ctx); err != nil {
		st := s.pipe.Stats()
		p.log.Warn("log stream not written out; its spool keeps the rest", "log_stream", id.Stream, "records", st.Queued, "err", err)
	}
	p.totals.retireStream(id, s.pipe.Stats())
	delete(p.streams, id)
}

// logStream returns the log stream id names in the desired state.
func (p *Plane) logStream(id store.StreamID) (desired.LogStream, bool) {
	ls, ok := p.logStreams[id]
	return ls, ok
}

// setState makes st the desired state to apply.
func (p *Plane) setState(st desired.State) {
	p.state = st
	p.logStreams = make(map[store.StreamID]desired.LogStream, len(st.LogStreams))
	for _, ls := range st.LogStreams {
		p.logStreams[ls.StoreStream().StreamID] = ls
	}
}
