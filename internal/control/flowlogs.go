package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// FlowLogInput is a flow log to create, or the fields to change (nil:
// unchanged, or the default on create).
type FlowLogInput struct {
	Name            *string
	Description     *string
	Region          *string
	ResourceGroupID *string

	ActiveAging         *int
	InactiveAging       *int
	AggregationInterval *int
	Sampling            *int

	OutputType        *string
	LogGroupID        *string
	LogStreamID       *string
	SLSRegionID       *string
	NetflowServerIP   *string
	NetflowServerPort *int
	NetflowVersion    *string

	Enabled     *bool
	Targets     []Target // create only
	ClientToken string   // create only: same token, same flow log

	File *FileOutputInput // output type file
}

func checkRange(field string, v *int, lo, hi int) error {
	if v != nil && (*v < lo || *v > hi) {
		return illegal(field, "must be %d to %d, got %d", lo, hi, *v)
	}
	return nil
}

func checkOneOf(field string, v *string, allowed ...string) error {
	if v == nil {
		return nil
	}
	for _, a := range allowed {
		if *v == a {
			return nil
		}
	}
	return illegal(field, "must be one of %s, got %q", strings.Join(allowed, ", "), *v)
}

func checkShort(field string, v *string) error {
	if v != nil && utf8.RuneCountInString(*v) > 64 {
		return illegal(field, "must be at most 64 characters")
	}
	return nil
}

// checkInput validates the values given in in, each on its own.
func checkInput(in *FlowLogInput, create bool) error {
	checks := []error{
		checkName("name", in.Name, false),
		checkDescription(in.Description),
		checkShort("region", in.Region),
		checkShort("resource_group_id", in.ResourceGroupID),
		checkShort("sls_region_id", in.SLSRegionID),
		checkRange("active_aging", in.ActiveAging, 60, 6000),
		checkRange("inactive_aging", in.InactiveAging, 10, 600),
		checkRange("aggregation_interval", in.AggregationInterval, 60, 600),
		checkRange("sampling", in.Sampling, 1, 1<<24),
		checkOneOf("output_type", in.OutputType, OutputSLS, OutputNetflow, OutputAll, OutputFile),
		checkRange("netflow_server_port", in.NetflowServerPort, 1, 65535),
		checkOneOf("netflow_version", in.NetflowVersion, NetflowV5, NetflowV9, NetflowV10),
		checkFileOutput(in.File),
	}
	if create && in.OutputType == nil {
		checks = append(checks, missing("output_type"))
	}
	if in.NetflowServerIP != nil && *in.NetflowServerIP != "" {
		if _, err := netip.ParseAddr(*in.NetflowServerIP); err != nil {
			checks = append(checks, illegal("netflow_server_ip", "not an IPv4 or IPv6 address: %q", *in.NetflowServerIP))
		}
	}
	if len(in.ClientToken) > 64 {
		checks = append(checks, illegal("client_token", "must be at most 64 characters"))
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}

// merge copies the given fields of in into f.
func (in *FlowLogInput) merge(f *FlowLog) {
	set(&f.Name, in.Name)
	set(&f.Description, in.Description)
	set(&f.Region, in.Region)
	set(&f.ResourceGroupID, in.ResourceGroupID)
	set(&f.ActiveAging, in.ActiveAging)
	set(&f.InactiveAging, in.InactiveAging)
	set(&f.AggregationInterval, in.AggregationInterval)
	set(&f.Sampling, in.Sampling)
	set(&f.OutputType, in.OutputType)
	set(&f.LogGroupID, in.LogGroupID)
	set(&f.LogStreamID, in.LogStreamID)
	set(&f.SLSRegionID, in.SLSRegionID)
	set(&f.NetflowServerIP, in.NetflowServerIP)
	set(&f.NetflowServerPort, in.NetflowServerPort)
	set(&f.NetflowVersion, in.NetflowVersion)
	set(&f.Enabled, in.Enabled)
	in.File.merge(f)
}

// resolveOutputs applies the conditional-required rules of the output type
// and checks the log stream belongs to the account.
func resolveOutputs(ctx context.Context, q querier, f *FlowLog) error {
	sls, nf := f.Outputs()
	if sls {
		if f.LogStreamID == "" {
			return missing("log_stream_id")
		}
		ls, err := getLogStream(ctx, q, f.AccountID, f.LogStreamID)
		if err != nil {
			return err
		}
		if f.LogGroupID != "" && f.LogGroupID != ls.LogGroupID {
			return illegal("log_group_id", "log stream %s is not in log group %s", ls.ID, f.LogGroupID)
		}
		f.LogGroupID = ls.LogGroupID
	} else {
		f.LogGroupID, f.LogStreamID, f.SLSRegionID = "", "", ""
	}
	if nf {
		if f.NetflowServerIP == "" {
			return missing("netflow_server_ip")
		}
		if f.NetflowServerPort == 0 {
			f.NetflowServerPort = DefaultNetflowPort
		}
		if f.NetflowVersion == "" {
			f.NetflowVersion = DefaultNetflowVer
		}
	} else {
		f.NetflowServerIP, f.NetflowServerPort, f.NetflowVersion = "", 0, ""
	}
	return resolveFileOutput(f)
}

// CreateFlowLog creates a flow log in state pending. With a client token, a
// repeated create returns the first one and created=false.
func (s *Service) CreateFlowLog(ctx context.Context, account string, in FlowLogInput) (f FlowLog, created bool, err error) {
	if err := checkInput(&in, true); err != nil {
		return f, false, err
	}
	err = s.change(ctx, func(tx *sql.Tx, rev uint64) error {
		if in.ClientToken != "" {
			var id string
			err := tx.QueryRowContext(ctx, `SELECT id FROM flow_logs WHERE account_id = ? AND client_token = ?`,
				account, in.ClientToken).Scan(&id)
			if err == nil {
				f, err = getFlowLog(ctx, tx, account, id)
				return err
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM flow_logs WHERE account_id = ? AND state <> ?`,
			account, StateDeleting).
			Scan(&n); err != nil {
			return err
		}
		if n >= s.quota {
			return &Error{Kind: ErrQuota, Message: fmt.Sprintf("the account already has %d flow logs, its quota", n)}
		}
		now := s.now()
		f = FlowLog{ID: newID(prefixFlowLog), AccountID: account, ActiveAging: DefaultActiveAging,
			InactiveAging: DefaultInactiveAging, AggregationInterval: DefaultAggregation, Sampling: 1,
			Enabled: true, State: StatePending, ClientToken: in.ClientToken, CreatedAt: now, UpdatedAt: now,
			Targets: []Target{}}
		in.merge(&f)
		if err := resolveOutputs(ctx, tx, &f); err != nil {
			return err
		}
		if err := insertFlowLog(ctx, tx, &f); err != nil {
			return err
		}
		for _, t := range in.Targets {
			if err := s.bind(ctx, tx, &f, t, false); err != nil {
				return err
			}
		}
		targets, err := targetsOf(ctx, tx, f.ID)
		f.Targets, created = targets, err == nil
		if err != nil {
			return err
		}
		return stampRevision(ctx, tx, f.ID, rev)
	})
	return f, created, err
}

func insertFlowLog(ctx context.Context, tx *sql.Tx, f *FlowLog) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO flow_logs (`+flowLogCols+`) VALUES
		(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, flowLogArgs(f)...)
	if err != nil {
		return err
	}
	return saveFileOutput(ctx, tx, f)
}

const flowLogCols = `id, account_id, name, description, region, resource_group_id, active_aging,
	inactive_aging, aggregation_interval, sampling, output_type, log_group_id, log_stream_id, sls_region_id,
	netflow_ip, netflow_port, netflow_version, enabled, state, state_reason, client_token, created_at, updated_at`

func flowLogArgs(f *FlowLog) []any {
	return []any{f.ID, f.AccountID, f.Name, f.Description, f.Region, f.ResourceGroupID, f.ActiveAging,
		f.InactiveAging, f.AggregationInterval, f.Sampling, f.OutputType, f.LogGroupID, f.LogStreamID,
		f.SLSRegionID, f.NetflowServerIP, f.NetflowServerPort, f.NetflowVersion, f.Enabled, f.State,
		f.StateReason, f.ClientToken, unixNano(f.CreatedAt), unixNano(f.UpdatedAt)}
}

func scanFlowLog(row scanner) (FlowLog, error) {
	var f FlowLog
	var c, u int64
	err := row.Scan(&f.ID, &f.AccountID, &f.Name, &f.Description, &f.Region, &f.ResourceGroupID,
		&f.ActiveAging, &f.InactiveAging, &f.AggregationInterval, &f.Sampling, &f.OutputType, &f.LogGroupID,
		&f.LogStreamID, &f.SLSRegionID, &f.NetflowServerIP, &f.NetflowServerPort, &f.NetflowVersion,
		&f.Enabled, &f.State, &f.StateReason, &f.ClientToken, &c, &u)
	f.CreatedAt, f.UpdatedAt = fromNano(c), fromNano(u)
	return f, err
}

func getFlowLog(ctx context.Context, q querier, account, id string) (FlowLog, error) {
	f, err := queryOne(ctx, q, scanFlowLog, "flow_log", id, `SELECT `+flowLogCols+` FROM flow_logs
		WHERE id = ? AND account_id = ?`, id, account)
	if err != nil {
		return f, err
	}
	if f.Targets, err = targetsOf(ctx, q, f.ID); err != nil {
		return f, err
	}
	f.File, err = fileOutputOf(ctx, q, f.ID)
	return f, err
}

func targetsOf(ctx context.Context, q querier, id string) ([]Target, error) {
	return queryAll(ctx, q, func(r scanner) (Target, error) {
		var t Target
		err := r.Scan(&t.GatewayID, &t.AttachmentID)
		return t, err
	}, `SELECT gateway_id, attachment_id FROM flow_log_targets WHERE flow_log_id = ?
		ORDER BY gateway_id, attachment_id`, id)
}

// GetFlowLog returns one of account's flow logs.
func (s *Service) GetFlowLog(ctx context.Context, account, id string) (FlowLog, error) {
	return getFlowLog(ctx, s.db, account, id)
}

// changeFlowLog loads one of account's flow logs in a transaction that
// makes a new version of the desired state, and lets change modify it.
func (s *Service) changeFlowLog(ctx context.Context, account, id string,
	change func(tx *sql.Tx, f *FlowLog) error) (FlowLog, error) {
	var f FlowLog
	err := s.change(ctx, func(tx *sql.Tx, rev uint64) error {
		var err error
		if f, err = getFlowLog(ctx, tx, account, id); err != nil {
			return err
		}
		if err := change(tx, &f); err != nil {
			return err
		}
		return stampRevision(ctx, tx, id, rev)
	})
	return f, err
}

// stampRevision records the version of a flow log's last change, so that
// only a data plane that applied it settles the flow log's state.
func stampRevision(ctx context.Context, tx *sql.Tx, id string, rev uint64) error {
	_, err := tx.ExecContext(ctx, `UPDATE flow_logs SET revision = ? WHERE id = ?`, int64(rev), id)
	return err
}

// notDeleting refuses changes to a flow log that is being deleted.
func notDeleting(f *FlowLog) error {
	if f.State == StateDeleting {
		return &Error{Kind: ErrDeleting, Resource: "flow_log", Message: fmt.Sprintf("flow log %s is being deleted", f.ID)}
	}
	return nil
}

// UpdateFlowLog changes a flow log's settings; it moves to state modifying
// until the data plane has applied them.
func (s *Service) UpdateFlowLog(ctx context.Context, account, id string, in FlowLogInput) (FlowLog, error) {
	if err := checkInput(&in, false); err != nil {
		return FlowLog{}, err
	}
	return s.changeFlowLog(ctx, account, id, func(tx *sql.Tx, f *FlowLog) error {
		if err := notDeleting(f); err != nil {
			return err
		}
		in.merge(f)
		if err := resolveOutputs(ctx, tx, f); err != nil {
			return err
		}
		for _, t := range f.Targets {
			if err := checkTargetFree(ctx, tx, f, t); err != nil {
				return err
			}
		}
		f.State, f.StateReason, f.UpdatedAt = StateModifying, "", s.now()
		return saveFlowLog(ctx, tx, f)
	})
}

func saveFlowLog(ctx context.Context, tx *sql.Tx, f *FlowLog) error {
	args := flowLogArgs(f)
	_, err := tx.ExecContext(ctx, `UPDATE flow_logs SET name=?, description=?, region=?, resource_group_id=?,
		active_aging=?, inactive_aging=?, aggregation_interval=?, sampling=?, output_type=?, log_group_id=?,
		log_stream_id=?, sls_region_id=?, netflow_ip=?, netflow_port=?, netflow_version=?, enabled=?, state=?,
		state_reason=?, updated_at=? WHERE id=?`, append(append([]any{}, args[2:20]...), args[22], f.ID)...)
	if err != nil {
		return err
	}
	return saveFileOutput(ctx, tx, f)
}

// SetEnabled turns delivery of a flow log on or off. changed is false when it
// already was in that state.
func (s *Service) SetEnabled(ctx context.Context, account, id string, enabled bool) (f FlowLog, changed bool, err error) {
	f, err = s.changeFlowLog(ctx, account, id, func(tx *sql.Tx, f *FlowLog) error {
		if err := notDeleting(f); err != nil || f.Enabled == enabled {
			return err
		}
		f.Enabled, f.UpdatedAt, changed = enabled, s.now(), true
		return saveFlowLog(ctx, tx, f)
	})
	return f, changed, err
}

// DeleteRules are how a dialect's delete differs from the native one.
type DeleteRules struct {
	// RefuseIfBound refuses a flow log still bound to a target; otherwise
	// its bindings go with it.
	RefuseIfBound bool
	// Immediate is for callers to whom the flow log is gone once deleted
	// (Alibaba, which has no transitional states): a pending or modifying
	// flow log is deleted too, and one already being deleted is not found.
	// Otherwise those are refused as busy, and a repeated delete is a no-op.
	Immediate bool
}

// DeleteFlowLog starts deleting a flow log and returns it in state deleting;
// it is removed once the data plane has delivered what is in flight.
func (s *Service) DeleteFlowLog(ctx context.Context, account, id string, rules DeleteRules) (FlowLog, error) {
	return s.changeFlowLog(ctx, account, id, func(tx *sql.Tx, f *FlowLog) error {
		switch {
		case f.State == StateDeleting && rules.Immediate:
			return notFound("flow_log", id)
		case f.State == StateDeleting:
			return nil
		case (f.State == StatePending || f.State == StateModifying) && !rules.Immediate:
			return &Error{Kind: ErrBusy, Message: fmt.Sprintf("flow log %s is %s; try again shortly", id, f.State)}
		}
		if rules.RefuseIfBound && len(f.Targets) > 0 {
			return inUse("flow log %s is bound to gateway %s; disassociate it first", id, f.Targets[0].GatewayID)
		}
		f.State, f.StateReason, f.UpdatedAt = StateDeleting, "", s.now()
		return saveFlowLog(ctx, tx, f)
	})
}

// Associate binds a flow log to a gateway or one of its attachments.
// Binding again to the same target is a no-op. A target carries at most one
// flow log per output kind (sls, netflow).
func (s *Service) Associate(ctx context.Context, account, id string, t Target) (FlowLog, error) {
	return s.associate(ctx, account, id, t, false)
}

// AssociateExclusive is Associate for the Alibaba rule: a target carries at
// most one flow log, whatever its output type.
func (s *Service) AssociateExclusive(ctx context.Context, account, id string, t Target) (FlowLog, error) {
	return s.associate(ctx, account, id, t, true)
}

func (s *Service) associate(ctx context.Context, account, id string, t Target, exclusive bool) (FlowLog, error) {
	return s.changeFlowLog(ctx, account, id, func(tx *sql.Tx, f *FlowLog) error {
		if err := notDeleting(f); err != nil {
			return err
		}
		if err := s.bind(ctx, tx, f, t, exclusive); err != nil {
			return err
		}
		var err error
		f.Targets, err = targetsOf(ctx, tx, id)
		return err
	})
}

// Disassociate unbinds a flow log from a target it is bound to.
func (s *Service) Disassociate(ctx context.Context, account, id string, t Target) (FlowLog, error) {
	return s.changeFlowLog(ctx, account, id, func(tx *sql.Tx, f *FlowLog) error {
		if err := checkTarget(ctx, tx, account, t); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM flow_log_targets WHERE flow_log_id = ? AND gateway_id = ?
			AND attachment_id = ?`, id, t.GatewayID, t.AttachmentID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return &Error{Kind: ErrConflict, Field: "target",
				Message: fmt.Sprintf("flow log %s is not bound to %s", id, t)}
		}
		f.Targets, err = targetsOf(ctx, tx, id)
		return err
	})
}

func (t Target) String() string {
	if t.AttachmentID != "" {
		return "attachment " + t.AttachmentID + " of gateway " + t.GatewayID
	}
	return "gateway " + t.GatewayID
}

// checkTarget makes sure the gateway (and attachment) exist and are account's.
func checkTarget(ctx context.Context, q querier, account string, t Target) error {
	if t.GatewayID == "" {
		return missing("gateway_id")
	}
	if _, err := getGateway(ctx, q, account, t.GatewayID); err != nil {
		return err
	}
	if t.AttachmentID != "" {
		if _, err := getAttachment(ctx, q, account, t.GatewayID, t.AttachmentID); err != nil {
			return err
		}
	}
	return nil
}

// bind binds f to t, an existing target of its account with room for it:
// no other flow log of its output kind, or with exclusive (the Alibaba
// rule) no other flow log at all.
func (s *Service) bind(ctx context.Context, tx *sql.Tx, f *FlowLog, t Target, exclusive bool) error {
	if err := checkTarget(ctx, tx, f.AccountID, t); err != nil {
		return err
	}
	if exclusive {
		if err := checkTargetAlone(ctx, tx, f, t); err != nil {
			return err
		}
	}
	if err := checkTargetFree(ctx, tx, f, t); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO flow_log_targets (flow_log_id, gateway_id, attachment_id)
		VALUES (?,?,?) ON CONFLICT DO NOTHING`, f.ID, t.GatewayID, t.AttachmentID)
	return err
}

// checkTargetAlone refuses a target (or, for a whole gateway, any of its
// attachments) that carries a flow log other than f and not being deleted.
func checkTargetAlone(ctx context.Context, q querier, f *FlowLog, t Target) error {
	var other string
	err := q.QueryRowContext(ctx, `SELECT fl.id FROM flow_log_targets t
		JOIN flow_logs fl ON fl.id = t.flow_log_id
		WHERE t.gateway_id = ? AND fl.id <> ? AND fl.state <> ?
		AND (t.attachment_id = '' OR ? = '' OR t.attachment_id = ?) LIMIT 1`,
		t.GatewayID, f.ID, StateDeleting, t.AttachmentID, t.AttachmentID).Scan(&other)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return &Error{Kind: ErrConflict, Field: "target",
		Message: fmt.Sprintf("%s already carries flow log %s", t, other)}
}

// checkTargetFree enforces "at most one flow log per output kind" on a
// target. A gateway-wide binding overlaps every attachment of the gateway.
func checkTargetFree(ctx context.Context, q querier, f *FlowLog, t Target) error {
	rows, err := q.QueryContext(ctx, `SELECT fl.id, fl.output_type FROM flow_log_targets t
		JOIN flow_logs fl ON fl.id = t.flow_log_id
		WHERE t.gateway_id = ? AND fl.id <> ? AND fl.state <> ?
		AND (t.attachment_id = '' OR ? = '' OR t.attachment_id = ?)`,
		t.GatewayID, f.ID, StateDeleting, t.AttachmentID, t.AttachmentID)
	if err != nil {
		return err
	}
	defer rows.Close()
	sls, nf := f.Outputs()
	for rows.Next() {
		other := FlowLog{}
		if err := rows.Scan(&other.ID, &other.OutputType); err != nil {
			return err
		}
		osls, onf := other.Outputs()
		if (sls && osls) || (nf && onf) {
			return &Error{Kind: ErrConflict, Field: "target", Message: fmt.Sprintf(
				"%s already carries flow log %s with an overlapping output (%s)", t, other.ID, other.OutputType)}
		}
	}
	return rows.Err()
}
