package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"flowlog/internal/control"
	"flowlog/internal/export"
	"flowlog/internal/ingest"
	"flowlog/internal/store"
)

// stream is the ingest pipeline of one log stream, shared by the flow logs
// writing to it.
type stream struct {
	pipe      *ingest.Pipeline
	users     int
	retention time.Duration // as when opened; bounds the age of collected records
}

// openOutputs opens the sinks a flow log asks for.
func (p *Plane) openOutputs(ctx context.Context, fl control.FlowLog) (*outputs, error) {
	o := &outputs{}
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

// closeOutputs closes what openOutputs opened. A log stream's queue is
// written out before its pipeline closes.
func (p *Plane) closeOutputs(o *outputs) {
	if o.netflow != nil {
		o.netflow.Close()
	}
	if o.sls != nil {
		p.releaseStream(o.stream)
	}
}

func openExporter(fl control.FlowLog) (*export.Exporter, error) {
	addr, err := netip.ParseAddr(fl.NetflowServerIP)
	if err != nil || addr.IsUnspecified() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, fmt.Errorf("netflow collector address %q is not a host address", fl.NetflowServerIP)
	}
	target := net.JoinHostPort(addr.String(), strconv.Itoa(fl.NetflowServerPort))
	ver, err := export.ParseVersion(fl.NetflowVersion)
	if err != nil {
		return nil, fmt.Errorf("netflow version %q is not supported", fl.NetflowVersion)
	}
	e, err := export.New(export.Config{Collector: target, Version: ver, Domain: export.DomainID(fl.ID),
		SamplingInterval: uint32(max(fl.Sampling, 1))})
	if err != nil {
		return nil, fmt.Errorf("netflow collector %s cannot be reached: %v", target, err)
	}
	return e, nil
}

// openStream returns the flow log's source in its log stream's pipeline,
// creating the stream in the store on first write.
func (p *Plane) openStream(ctx context.Context, fl control.FlowLog) (*ingest.Source, store.StreamID, error) {
	id := store.StreamID{Account: fl.AccountID, Stream: fl.LogStreamID}
	s := p.streams[id]
	if s == nil {
		if p.cfg.Store == nil {
			return nil, id, errors.New("this server has no log store")
		}
		ls, err := p.cfg.Control.GetLogStream(ctx, fl.AccountID, fl.LogStreamID)
		if err != nil {
			return nil, id, fmt.Errorf("log stream %s no longer exists", fl.LogStreamID)
		}
		// The store holds a stream from its first write; its group and
		// retention follow the control plane from then on (store.Follow).
		if _, err := p.cfg.Store.Stream(ctx, id); errors.Is(err, store.ErrNoStream) {
			if err = p.cfg.Store.CreateStream(ctx, ls.StoreStream()); err != nil {
				return nil, id, fmt.Errorf("log store: %v", err)
			}
		}
		s = &stream{pipe: ingest.New(ingest.Config{Logger: p.log}, p.cfg.Store, id),
			retention: time.Duration(ls.RetentionDays) * 24 * time.Hour}
		p.streams[id] = s
	}
	s.users++
	return s.pipe.Source(fl.ID, true), id, nil
}

func (p *Plane) releaseStream(id store.StreamID) {
	if s := p.streams[id]; s != nil {
		if s.users--; s.users == 0 {
			p.closeStream(id, s)
		}
	}
}

// closeStream writes out the stream's queue and closes its pipeline.
func (p *Plane) closeStream(id store.StreamID, s *stream) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.pipe.Close(ctx); err != nil {
		st := s.pipe.Stats()
		p.log.Error("log stream not written out", "log_stream", id.Stream, "records", st.Queued, "err", err)
	}
	delete(p.streams, id)
}
