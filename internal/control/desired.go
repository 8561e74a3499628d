package control

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"flowlog/internal/desired"
)

// versions is the desired state's version as committed, which data planes
// watch, and the last status each data plane reported.
type versions struct {
	mu      sync.Mutex
	current uint64
	wake    chan struct{} // closed and replaced when current grows
	planes  map[string]PlaneReport
	seenAt  map[string]time.Time // agents' last requests
}

// PlaneReport is the last status a data plane reported, and when.
type PlaneReport struct {
	desired.Status
	At time.Time `json:"at"`
}

func newVersions() *versions {
	return &versions{wake: make(chan struct{}), planes: map[string]PlaneReport{}, seenAt: map[string]time.Time{}}
}

// publish makes v the current version (if it is newer) and wakes watchers.
func (vs *versions) publish(v uint64) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v <= vs.current {
		return
	}
	vs.current = v
	close(vs.wake)
	vs.wake = make(chan struct{})
}

// change runs fn in a transaction that makes a new version of the desired
// state (rev), and wakes the watchers once it is committed. Every write
// that changes what data planes run goes through it.
func (s *Service) change(ctx context.Context, fn func(tx *sql.Tx, rev uint64) error) error {
	var rev uint64
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := bump(ctx, tx, &rev); err != nil {
			return err
		}
		return fn(tx, rev)
	})
	if err == nil {
		s.ver.publish(rev)
	}
	return err
}

// changeIf is change for writes that may change nothing: fn says whether
// it did, and only then is there a new version.
func (s *Service) changeIf(ctx context.Context, fn func(tx *sql.Tx) (bool, error)) error {
	var rev uint64
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		changed, err := fn(tx)
		if err != nil || !changed {
			return err
		}
		return bump(ctx, tx, &rev)
	})
	if err == nil && rev > 0 {
		s.ver.publish(rev)
	}
	return err
}

func bump(ctx context.Context, tx *sql.Tx, rev *uint64) error {
	return tx.QueryRowContext(ctx, `UPDATE revision SET version = version + 1 RETURNING version`).Scan(rev)
}

// loadVersion reads the committed version, at start.
func (s *Service) loadVersion(ctx context.Context) error {
	var v uint64
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM revision`).Scan(&v); err != nil {
		return err
	}
	s.ver.publish(v)
	return nil
}

// Version returns the desired state's current version.
func (s *Service) Version() uint64 {
	s.ver.mu.Lock()
	defer s.ver.mu.Unlock()
	return s.ver.current
}

// Watch waits until the desired state's version is past after, and returns
// it. It reads nothing from the database: commits wake it.
func (s *Service) Watch(ctx context.Context, after uint64) (uint64, error) {
	for {
		s.ver.mu.Lock()
		v, wake := s.ver.current, s.ver.wake
		s.ver.mu.Unlock()
		if v > after {
			return v, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}

// Snapshot returns the desired state of the data plane called plane ("" for
// the server's own), read in one transaction: a fixed number of queries
// whatever the number of flow logs.
func (s *Service) Snapshot(ctx context.Context, plane string) (desired.State, error) {
	var st desired.State
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		var err error
		st, err = s.readState(ctx, tx)
		return err
	})
	return st.For(plane), err
}

func (s *Service) readState(ctx context.Context, tx *sql.Tx) (desired.State, error) {
	st := desired.State{}
	if err := tx.QueryRowContext(ctx, `SELECT version FROM revision`).Scan(&st.Version); err != nil {
		return st, err
	}
	fences, err := allFences(ctx, tx, s.pcapDir)
	if err != nil {
		return st, err
	}
	gws, err := desiredGateways(ctx, tx, fences)
	if err != nil {
		return st, err
	}
	if st.FlowLogs, err = desiredFlowLogs(ctx, tx); err != nil {
		return st, err
	}
	if st.LogStreams, err = desiredLogStreams(ctx, tx); err != nil {
		return st, err
	}
	if st.Templates, err = desiredTemplates(ctx, tx); err != nil {
		return st, err
	}
	for i := range st.FlowLogs {
		f := &st.FlowLogs[i]
		f.Refused = refused(f, gws, fences[f.AccountID])
	}
	for _, g := range gws {
		st.Gateways = append(st.Gateways, g)
	}
	slices.SortFunc(st.Gateways, func(a, b desired.Gateway) int { return strings.Compare(a.ID, b.ID) })
	return st, nil
}

// desiredFlowLogs reads the flow logs not being deleted, with their targets.
func desiredFlowLogs(ctx context.Context, q querier) ([]desired.FlowLog, error) {
	fls, err := queryAll(ctx, q, func(r scanner) (desired.FlowLog, error) {
		var f desired.FlowLog
		err := r.Scan(&f.ID, &f.AccountID, &f.Enabled, &f.Revision, &f.ActiveAging, &f.InactiveAging,
			&f.AggregationInterval, &f.Sampling, &f.OutputType, &f.LogStreamID, &f.NetflowServerIP,
			&f.NetflowServerPort, &f.NetflowVersion)
		return f, err
	}, `SELECT id, account_id, enabled, revision, active_aging, inactive_aging, aggregation_interval, sampling,
		output_type, log_stream_id, netflow_ip, netflow_port, netflow_version
		FROM flow_logs WHERE state <> ? ORDER BY id`, StateDeleting)
	if err != nil {
		return nil, err
	}
	targets, err := allTargets(ctx, q)
	if err != nil {
		return nil, err
	}
	for i := range fls {
		fls[i].Targets = []desired.Target{}
		for _, t := range targets[fls[i].ID] {
			fls[i].Targets = append(fls[i].Targets, desired.Target(t))
		}
	}
	return fls, desiredFileOutputs(ctx, q, fls)
}

// allTargets reads every flow log's targets at once, by flow log.
func allTargets(ctx context.Context, q querier) (map[string][]Target, error) {
	type row struct {
		id string
		t  Target
	}
	rows, err := queryAll(ctx, q, func(r scanner) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.t.GatewayID, &x.t.AttachmentID)
		return x, err
	}, `SELECT flow_log_id, gateway_id, attachment_id FROM flow_log_targets
		ORDER BY flow_log_id, gateway_id, attachment_id`)
	if err != nil {
		return nil, err
	}
	out := map[string][]Target{}
	for _, x := range rows {
		out[x.id] = append(out[x.id], x.t)
	}
	return out, nil
}

// desiredGateways reads every gateway with its attachments, by id.
func desiredGateways(ctx context.Context, q querier, fences map[string]Fence) (map[string]desired.Gateway, error) {
	gws, err := queryAll(ctx, q, scanGateway, `SELECT `+gatewayCols+` FROM gateways`)
	if err != nil {
		return nil, err
	}
	atts, err := queryAll(ctx, q, scanAttachment, `SELECT `+attachmentCols+` FROM attachments
		ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]desired.Gateway, len(gws))
	for _, g := range gws {
		out[g.ID] = desired.Gateway{ID: g.ID, AccountID: g.AccountID, Kind: g.Kind, PcapPath: g.PcapPath,
			PcapPace: g.PcapPace, PcapFenced: !fences[g.AccountID].all, Exporter: g.Exporter, Plane: g.Agent,
			Attachments: []desired.Attachment{}, SNMP: g.snmp, SamplingInterval: g.SamplingInterval}
	}
	for _, a := range atts {
		if g, ok := out[a.GatewayID]; ok {
			g.Attachments = append(g.Attachments, desired.Attachment{ID: a.ID, Interface: a.Interface, IfIndex: a.IfIndex})
			out[a.GatewayID] = g
		}
	}
	return out, nil
}

func desiredLogStreams(ctx context.Context, q querier) ([]desired.LogStream, error) {
	all, err := queryAll(ctx, q, scanLogStream, `SELECT `+logStreamCols+` FROM log_streams ORDER BY id`)
	out := make([]desired.LogStream, len(all))
	for i, ls := range all {
		out[i] = ls.desired()
	}
	return out, err
}

// refused is why an account's fence keeps a flow log from observing one of
// its targets (a grant was withdrawn since it was made); "" if nothing does.
func refused(f *desired.FlowLog, gws map[string]desired.Gateway, fence Fence) string {
	for _, t := range f.Targets {
		g := gws[t.GatewayID]
		if g.Plane != "" {
			if err := fence.Agent(g.Plane); err != nil {
				return err.Error()
			}
		}
		if g.Kind == KindExporter {
			if err := fence.Exporter(g.Exporter); err != nil {
				return err.Error()
			}
		}
		if g.Kind != KindCapture {
			continue
		}
		for _, a := range g.Attachments {
			if t.AttachmentID != "" && a.ID != t.AttachmentID {
				continue
			}
			if err := fence.Interface(a.Interface); err != nil {
				return err.Error()
			}
		}
	}
	return ""
}

// Report records what a data plane applied and settles the states of the
// flow logs it reports on. A flow log may run on several data planes (its
// gateways on the server and on agents): it becomes available once every
// plane running part of it reported it running at a version that includes
// its last change, and failed, with their reasons, as soon as one of them
// reported it cannot run. A flow log changed after st.Version keeps its
// state: the report does not tell of that change. Flow logs being deleted
// are removed once every plane that ran them applied a version without
// them: they have stopped them and delivered what they held.
func (s *Service) Report(ctx context.Context, st desired.Status) error {
	s.ver.mu.Lock()
	s.ver.planes[st.Plane] = PlaneReport{Status: st, At: s.now()}
	s.ver.mu.Unlock()
	return inTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO planes (name, version) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET version = max(version, excluded.version)`,
			st.Plane, int64(st.Version)); err != nil {
			return err
		}
		for _, f := range st.FlowLogs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO flow_log_planes (flow_log_id, plane, version, reason)
				SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM flow_logs WHERE id = ?)
				ON CONFLICT (flow_log_id, plane) DO UPDATE SET version = excluded.version, reason = excluded.reason`,
				f.ID, st.Plane, int64(st.Version), f.Reason, f.ID); err != nil {
				return err
			}
			if err := settleFlowLog(ctx, tx, f.ID); err != nil {
				return err
			}
		}
		return dropDeleted(ctx, tx)
	})
}

// settleFlowLog sets flow log id's state from what the planes running it
// reported for versions that include its last change.
func settleFlowLog(ctx context.Context, tx *sql.Tx, id string) error {
	var rev int64
	var state string
	err := tx.QueryRowContext(ctx, `SELECT revision, state FROM flow_logs WHERE id = ?`, id).Scan(&rev, &state)
	if errors.Is(err, sql.ErrNoRows) || state == StateDeleting {
		return nil
	}
	if err != nil {
		return err
	}
	planes, err := planesOf(ctx, tx, id)
	if err != nil {
		return err
	}
	var reasons []string
	settled := true
	for _, p := range planes {
		var reason string
		err := tx.QueryRowContext(ctx, `SELECT reason FROM flow_log_planes WHERE flow_log_id = ? AND plane = ?
			AND version >= ?`, id, p, rev).Scan(&reason)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			settled = false
		case err != nil:
			return err
		case reason != "" && len(planes) > 1:
			reasons = append(reasons, planeName(p)+": "+reason)
		case reason != "":
			reasons = append(reasons, reason)
		}
	}
	next, reason := StateAvailable, joinReasons(reasons)
	switch {
	case reason != "":
		next = StateFailed
	case !settled:
		return nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE flow_logs SET state = ?, state_reason = ? WHERE id = ?
		AND NOT (state = ? AND state_reason = ?)`, next, reason, id, next, reason)
	return err
}

// dropDeleted removes the flow logs being deleted that every plane which
// ran them has stopped: each applied a version from their deletion on.
func dropDeleted(ctx context.Context, tx *sql.Tx) error {
	type del struct {
		id  string
		rev int64
	}
	dels, err := queryAll(ctx, tx, func(r scanner) (del, error) {
		var d del
		return d, r.Scan(&d.id, &d.rev)
	}, `SELECT id, revision FROM flow_logs WHERE state = ?`, StateDeleting)
	if err != nil {
		return err
	}
	for _, d := range dels {
		planes, err := planesOf(ctx, tx, d.id)
		if err != nil {
			return err
		}
		var behind int
		for _, p := range planes {
			var v int64
			err := tx.QueryRowContext(ctx, `SELECT version FROM planes WHERE name = ?`, p).Scan(&v)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if v < d.rev {
				behind++
			}
		}
		if behind > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM flow_logs WHERE id = ?`, d.id); err != nil {
			return err
		}
	}
	return nil
}

// Planes returns the last status of every data plane that reported, by name.
func (s *Service) Planes() map[string]PlaneReport {
	s.ver.mu.Lock()
	defer s.ver.mu.Unlock()
	out := make(map[string]PlaneReport, len(s.ver.planes))
	for k, v := range s.ver.planes {
		out[k] = v
	}
	return out
}
