package control

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
)

// FlowLogFilter selects and orders flow logs. Zero values select everything.
type FlowLogFilter struct {
	IDs             []string
	Name            string
	Description     string
	State           string
	OutputType      string
	ResourceGroupID string
	Enabled         *bool
	GatewayID       string   // bound to this gateway (or one of its attachments)
	AttachmentIDs   []string // bound to one of these attachments
	HideDeleting    bool     // leave out flow logs being deleted (gone, to Alibaba callers)

	SortKey  string // id (default), name, state, created_at
	SortDesc bool
	Limit    int    // 0: no limit
	Marker   string // id of the last item of the previous page
	Offset   int    // for page-number paging
}

// Sort keys ListFlowLogs accepts.
var FlowLogSortKeys = []string{"id", "name", "state", "created_at"}

// ListFlowLogs returns one page of account's flow logs and the number of all
// that match the filter (ignoring paging).
func (s *Service) ListFlowLogs(ctx context.Context, account string, fl FlowLogFilter) ([]FlowLog, int, error) {
	where, args := []string{"account_id = ?"}, []any{account}
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	for _, c := range []struct{ col, v string }{{"name", fl.Name}, {"description", fl.Description},
		{"state", fl.State}, {"output_type", fl.OutputType}, {"resource_group_id", fl.ResourceGroupID}} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if len(fl.IDs) > 0 {
		add("id IN ("+placeholders(len(fl.IDs))+")", toAny(fl.IDs)...)
	}
	if fl.HideDeleting {
		add("state <> ?", StateDeleting)
	}
	if fl.Enabled != nil {
		add("enabled = ?", *fl.Enabled)
	}
	if fl.GatewayID != "" {
		add("id IN (SELECT flow_log_id FROM flow_log_targets WHERE gateway_id = ?)", fl.GatewayID)
	}
	if len(fl.AttachmentIDs) > 0 {
		add("id IN (SELECT flow_log_id FROM flow_log_targets WHERE attachment_id IN ("+
			placeholders(len(fl.AttachmentIDs))+"))", toAny(fl.AttachmentIDs)...)
	}
	var total int
	cond := strings.Join(where, " AND ")
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM flow_logs WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	key := fl.SortKey
	if key == "" {
		key = "id"
	}
	if !slices.Contains(FlowLogSortKeys, key) {
		return nil, 0, illegal("sort_key", "must be one of %s", strings.Join(FlowLogSortKeys, ", "))
	}
	dir, cmp := "ASC", ">"
	if fl.SortDesc {
		dir, cmp = "DESC", "<"
	}
	if fl.Marker != "" {
		var mk any
		err := s.db.QueryRowContext(ctx, `SELECT `+key+` FROM flow_logs WHERE id = ? AND account_id = ?`,
			fl.Marker, account).Scan(&mk)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, 0, illegal("marker", "no flow log %q", fl.Marker)
		}
		if err != nil {
			return nil, 0, err
		}
		cond += " AND (" + key + ", id) " + cmp + " (?, ?)"
		args = append(args, mk, fl.Marker)
	}
	q := `SELECT ` + flowLogCols + ` FROM flow_logs WHERE ` + cond + ` ORDER BY ` + key + ` ` + dir + `, id ` + dir
	if fl.Limit > 0 || fl.Offset > 0 {
		limit := fl.Limit
		if limit <= 0 {
			limit = -1
		}
		q += ` LIMIT ? OFFSET ?`
		args = append(args, limit, fl.Offset)
	}
	out, err := queryAll(ctx, s.db, scanFlowLog, q, args...)
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		if out[i].Targets, err = targetsOf(ctx, s.db, out[i].ID); err != nil {
			return nil, 0, err
		}
		if out[i].File, err = fileOutputOf(ctx, s.db, out[i].ID); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// AllFlowLogs returns every flow log of every account, for the data plane.
func (s *Service) AllFlowLogs(ctx context.Context) ([]FlowLog, error) {
	out, err := queryAll(ctx, s.db, scanFlowLog, `SELECT `+flowLogCols+` FROM flow_logs ORDER BY id`)
	if err != nil {
		return nil, err
	}
	targets, err := allTargets(ctx, s.db)
	for i := range out {
		out[i].Targets = append([]Target{}, targets[out[i].ID]...)
	}
	if err != nil {
		return out, err
	}
	files, err := allFileOutputs(ctx, s.db)
	for i := range out {
		out[i].File = files[out[i].ID]
	}
	return out, err
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
