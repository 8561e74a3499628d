package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"flowlog/internal/capture"
	"flowlog/internal/dataplane"
	"flowlog/internal/desired"
	"flowlog/internal/flow"
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

// meterFlowLog is the id of the one flow log flowlog meter runs; records
// carry it, so it is empty, as are its account (without a store), gateway
// and, for a file, attachment.
const meterFlowLog = ""

// meterPlane is the data plane flowlog meter runs: one flow log, fixed,
// over the file or the interfaces, to the NetFlow collector and/or the
// embedded log store.
type meterPlane struct {
	plane    *dataplane.Plane
	ctl      *staticControl
	store    *duckdb.Store // nil without --data-dir
	stream   store.StreamID
	imported chan error // the file is read
}

func openMeterPlane(ctx context.Context, o meterOpts, tap func([]flow.Record)) (*meterPlane, error) {
	if (o.sinks.dataDir == "") != (o.sinks.logStream == "") {
		return nil, errors.New("meter: --data-dir and --log-stream go together")
	}
	mp := &meterPlane{imported: make(chan error, 1)}
	cfg := dataplane.Config{Tap: tap, NoNoData: true, NoResume: true,
		Imported: func(_ string, err error) { mp.imported <- err },
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	mc := meterConfig(o)
	cfg.Meter = &mc
	if o.ifaces != nil {
		cfg.Capture = &capture.LiveConfig{Promiscuous: o.promisc}
		if err := readFilter(o.bpfFile, cfg.Capture); err != nil {
			return nil, err
		}
	}
	fl, err := meterOutputs(o.sinks)
	if err != nil {
		return nil, err
	}
	if o.sinks.dataDir != "" {
		if err := mp.openStore(ctx, o.sinks, &cfg); err != nil {
			return nil, err
		}
		fl.AccountID, fl.LogStreamID = mp.stream.Account, mp.stream.Stream
	}
	mp.ctl = newStaticControl(meterState(o, fl))
	cfg.Control = mp.ctl
	if mp.plane, err = dataplane.New(cfg); err != nil {
		mp.close()
		return nil, err
	}
	return mp, nil
}

// readFilter sets the capture's BPF filter from --bpf's file, if given.
func readFilter(path string, lc *capture.LiveConfig) error {
	if path == "" {
		return nil
	}
	text, err := os.ReadFile(path)
	if err == nil {
		lc.Filter, err = capture.ParseFilter(string(text))
	}
	return err
}

// meterOutputs is the flow log with the outputs the flags ask for.
func meterOutputs(o sinkOpts) (desired.FlowLog, error) {
	fl := desired.FlowLog{ID: meterFlowLog, Enabled: true, Revision: 1}
	sls := o.dataDir != ""
	if o.netflow != "" {
		addr, err := net.ResolveUDPAddr("udp", o.netflow)
		if err != nil {
			return fl, fmt.Errorf("meter: --netflow: %w", err)
		}
		ap := addr.AddrPort()
		fl.NetflowServerIP, fl.NetflowServerPort = ap.Addr().Unmap().String(), int(ap.Port())
		fl.NetflowVersion = o.netflowVersion
	}
	switch {
	case sls && o.netflow != "":
		fl.OutputType = desired.OutputAll
	case sls:
		fl.OutputType = desired.OutputSLS
	case o.netflow != "":
		fl.OutputType = desired.OutputNetflow
	}
	return fl, nil
}

// meterState is the desired state of flowlog meter: fl over a pcap
// gateway, or a capture gateway with one attachment per interface.
func meterState(o meterOpts, fl desired.FlowLog) desired.State {
	fl.Targets = []desired.Target{{}} // its aging and sampling are Config.Meter's
	gw := desired.Gateway{AccountID: fl.AccountID, Kind: desired.KindPcap, PcapPath: o.pcap}
	if o.pcap == "" {
		gw.Kind = desired.KindCapture
		for _, name := range o.ifaces {
			gw.Attachments = append(gw.Attachments, desired.Attachment{ID: name, Interface: name})
		}
	}
	st := desired.State{Version: 1, FlowLogs: []desired.FlowLog{fl}, Gateways: []desired.Gateway{gw}}
	if fl.LogStreamID != "" {
		st.LogStreams = []desired.LogStream{{ID: fl.LogStreamID, AccountID: fl.AccountID, LogGroupID: store.LocalAccount}}
	}
	return st
}

// openStore opens the embedded store and the data dir's spool, as in
// serve: an interrupted import leaves the records there, stored by the
// next run.
func (mp *meterPlane) openStore(ctx context.Context, o sinkOpts, cfg *dataplane.Config) error {
	var err error
	mp.store, mp.stream, err = duckdb.OpenLocal(ctx, o.dataDir, o.logStream)
	if err != nil {
		return err
	}
	cfg.Store = mp.store
	cfg.Spool, err = spool.Open(spool.Config{Dir: filepath.Join(o.dataDir, spool.DirName)})
	if err != nil {
		mp.close()
	}
	return err
}

// failed is why the meter does not run, from a report of the plane.
func (mp *meterPlane) failed(st desired.Status) error {
	for _, f := range st.FlowLogs {
		if f.Reason != "" {
			return errors.New("meter: " + f.Reason)
		}
	}
	return nil
}

// close reports on stderr what each output did, once the plane has
// stopped, and closes the store; an output that lost records is an error.
func (mp *meterPlane) close() error {
	var err error
	if mp.plane != nil {
		err = mp.report()
	}
	if mp.store != nil {
		err = errors.Join(err, mp.store.Close())
	}
	return err
}

func (mp *meterPlane) report() error {
	fl := mp.ctl.st.FlowLogs[0]
	sls, nf := fl.Outputs()
	st := mp.plane.FlowStats(meterFlowLog)
	var err error
	if nf {
		fmt.Fprintf(os.Stderr, "netflow: %d records in %d packets, %d skipped\n", st.Netflow.Records, st.Netflow.Packets, st.Netflow.Skipped)
		if st.Netflow.Errors > 0 {
			err = fmt.Errorf("netflow export: %d packets not sent", st.Netflow.Errors)
		}
	}
	if sls {
		stored := mp.plane.Stored(mp.stream)
		fmt.Fprintf(os.Stderr, "log store: %d records stored, %d dropped\n", stored, st.StoreDropped)
		if left := st.Meter.Records - min(st.Meter.Records, stored+st.StoreDropped); left > 0 {
			err = errors.Join(err, fmt.Errorf("log store: %d records not stored yet; the spool keeps them for the next run", left))
		}
	}
	return err
}

// staticControl is a control plane whose desired state never changes. It
// keeps the plane's last report for the command to read.
type staticControl struct {
	st      desired.State
	reports chan desired.Status
}

func newStaticControl(st desired.State) *staticControl {
	return &staticControl{st: st, reports: make(chan desired.Status, 1)}
}

func (c *staticControl) Snapshot(context.Context, string) (desired.State, error) { return c.st, nil }

func (c *staticControl) Watch(ctx context.Context, after uint64) (uint64, error) {
	<-ctx.Done()
	return after, ctx.Err()
}

// Report keeps the latest status, replacing one not yet read.
func (c *staticControl) Report(_ context.Context, st desired.Status) error {
	for {
		select {
		case c.reports <- st:
			return nil
		default:
			select {
			case <-c.reports:
			default:
			}
		}
	}
}

func (c *staticControl) ShareTemplates(context.Context, string, []desired.ExporterTemplates) error {
	return nil
}
