package huawei

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"flowlog/internal/control"
)

// timeFormat is how created_at and updated_at are written.
const timeFormat = "2006-01-02T15:04:05.000Z"

// flowLog is a flow log as the Enterprise Router API shows it, seen from
// one router.
type flowLog struct {
	ID                     string `json:"id"`
	Name                   string `json:"name"`
	Description            string `json:"description"`
	ProjectID              string `json:"project_id"`
	ResourceType           string `json:"resource_type"`
	ResourceID             string `json:"resource_id"`
	LogGroupID             string `json:"log_group_id"`
	LogStreamID            string `json:"log_stream_id"`
	LogStoreType           string `json:"log_store_type"`
	LogAggregationInterval int    `json:"log_aggregation_interval"`
	CreatedAt              string `json:"created_at"`
	UpdatedAt              string `json:"updated_at"`
	State                  string `json:"state"`
	Enabled                bool   `json:"enabled"`
}

// view shows f from router: its resource is the attachment of that router
// it is bound to, or the router itself when bound to the whole gateway.
func view(f *control.FlowLog, router string) flowLog {
	v := flowLog{
		ID: f.ID, Name: f.Name, Description: f.Description, ProjectID: f.AccountID,
		LogGroupID: f.LogGroupID, LogStreamID: f.LogStreamID, LogAggregationInterval: f.AggregationInterval,
		CreatedAt: f.CreatedAt.UTC().Format(timeFormat), UpdatedAt: f.UpdatedAt.UTC().Format(timeFormat),
		State: f.State, Enabled: f.Enabled,
	}
	if f.LogStreamID != "" {
		v.LogStoreType = "LTS"
	}
	for _, t := range f.Targets {
		if t.GatewayID != router {
			continue
		}
		if t.AttachmentID != "" {
			v.ResourceType, v.ResourceID = "attachment", t.AttachmentID
			break
		}
		v.ResourceType, v.ResourceID = "enterprise_router", router
	}
	return v
}

type flowLogReply struct {
	FlowLog   flowLog `json:"flow_log"`
	RequestID string  `json:"request_id"`
}

// decode reads a JSON object, refusing unknown fields so that nothing the
// caller meant is silently ignored.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("The body is not the expected JSON object: " + err.Error() + ".")
	}
	if dec.More() {
		return invalid("Trailing data after the JSON object.")
	}
	return nil
}

type createBody struct {
	FlowLog *struct {
		Name         *string `json:"name"`
		Description  *string `json:"description"`
		ResourceType *string `json:"resource_type"`
		ResourceID   *string `json:"resource_id"`
		LogGroupID   *string `json:"log_group_id"`
		LogStreamID  *string `json:"log_stream_id"`
		LogStoreType *string `json:"log_store_type"`
		LogStoreName *string `json:"log_store_name"`
	} `json:"flow_log"`
}

func required(name string, v *string) error {
	if v == nil || *v == "" {
		return invalid(name + " is required.")
	}
	return nil
}

func (d *dialect) create(ctx context.Context, c *call) (result, error) {
	var b createBody
	if err := decode(c.body, &b); err != nil {
		return result{}, err
	}
	in := b.FlowLog
	if in == nil {
		return result{}, invalid("flow_log is required.")
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", in.Name}, {"resource_type", in.ResourceType}, {"resource_id", in.ResourceID},
		{"log_group_id", in.LogGroupID}, {"log_stream_id", in.LogStreamID}, {"log_store_type", in.LogStoreType}} {
		if err := required(f.name, f.v); err != nil {
			return result{}, err
		}
	}
	if *in.ResourceType != "attachment" {
		return result{}, unsupportedResource(fmt.Sprintf("resource_type must be attachment, got %q.", *in.ResourceType))
	}
	if *in.LogStoreType != "LTS" {
		return result{}, invalid(fmt.Sprintf("log_store_type must be LTS, got %q.", *in.LogStoreType))
	}
	if in.LogStoreName != nil {
		return result{}, invalid("log_store_name is not supported.")
	}
	token, hasToken := c.r.Header["X-Client-Token"]
	if hasToken && (len(token[0]) < 1 || len(token[0]) > 64) {
		return result{}, invalid("X-Client-Token must be 1 to 64 characters.")
	}
	if _, err := d.ctl.GetAttachment(ctx, c.account, c.router.ID, *in.ResourceID); err != nil {
		return result{}, err
	}
	output := control.OutputSLS
	fin := control.FlowLogInput{Name: in.Name, Description: in.Description, OutputType: &output,
		LogGroupID: in.LogGroupID, LogStreamID: in.LogStreamID,
		Targets: []control.Target{{GatewayID: c.router.ID, AttachmentID: *in.ResourceID}}}
	if hasToken {
		fin.ClientToken = token[0]
		c.w.Header().Set("X-Client-Token", token[0])
	}
	f, _, err := d.ctl.CreateFlowLog(ctx, c.account, fin)
	if err != nil {
		return result{}, err
	}
	return result{http.StatusAccepted, flowLogReply{view(&f, c.router.ID), c.requestID}}, nil
}

// flowLog returns the caller's flow log named in the path, if it observes
// the router of the path.
func (d *dialect) flowLog(ctx context.Context, c *call) (control.FlowLog, error) {
	id := c.r.PathValue("flow_log_id")
	f, err := d.ctl.GetFlowLog(ctx, c.account, id)
	if err != nil {
		return f, err
	}
	for _, t := range f.Targets {
		if t.GatewayID == c.router.ID {
			return f, nil
		}
	}
	return f, flowLogNotFound(fmt.Sprintf("flow log %q does not exist on enterprise router %s.", id, c.router.ID))
}

func (d *dialect) show(ctx context.Context, c *call) (result, error) {
	f, err := d.flowLog(ctx, c)
	if err != nil {
		return result{}, err
	}
	return result{http.StatusOK, flowLogReply{view(&f, c.router.ID), c.requestID}}, nil
}

func (d *dialect) update(ctx context.Context, c *call) (result, error) {
	var b struct {
		Name        *string `json:"name"`
		Description *string `json:"description"`
	}
	if err := decode(c.body, &b); err != nil {
		return result{}, err
	}
	if b.Name == nil && b.Description == nil {
		return result{}, invalid("Give name, description or both.")
	}
	f, err := d.flowLog(ctx, c)
	if err != nil {
		return result{}, err
	}
	if f, err = d.ctl.UpdateFlowLog(ctx, c.account, f.ID, control.FlowLogInput{Name: b.Name, Description: b.Description}); err != nil {
		return result{}, err
	}
	return result{http.StatusOK, flowLogReply{view(&f, c.router.ID), c.requestID}}, nil
}

func (d *dialect) delete(ctx context.Context, c *call) (result, error) {
	f, err := d.flowLog(ctx, c)
	if err != nil {
		return result{}, err
	}
	if _, err := d.ctl.DeleteFlowLog(ctx, c.account, f.ID, control.DeleteRules{}); err != nil {
		return result{}, err
	}
	return result{status: http.StatusAccepted}, nil
}

func (d *dialect) enable(ctx context.Context, c *call) (result, error) {
	return d.setEnabled(ctx, c, true)
}

func (d *dialect) disable(ctx context.Context, c *call) (result, error) {
	return d.setEnabled(ctx, c, false)
}

func (d *dialect) setEnabled(ctx context.Context, c *call, enabled bool) (result, error) {
	f, err := d.flowLog(ctx, c)
	if err != nil {
		return result{}, err
	}
	if f, _, err = d.ctl.SetEnabled(ctx, c.account, f.ID, enabled); err != nil {
		return result{}, err
	}
	return result{http.StatusAccepted, flowLogReply{view(&f, c.router.ID), c.requestID}}, nil
}

// Paging bounds of ListFlowLogs.
const (
	maxLimit = 2000
)

type pageInfo struct {
	NextMarker   string `json:"next_marker,omitempty"`
	CurrentCount int    `json:"current_count"`
}

type listReply struct {
	FlowLogs   []flowLog `json:"flow_logs"`
	RequestID  string    `json:"request_id"`
	TotalCount int       `json:"total_count"`
	PageInfo   pageInfo  `json:"page_info"`
}

// single returns the one value of a query parameter that takes at most one.
func single(q map[string][]string, name string) (string, error) {
	switch v := q[name]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	default:
		return "", invalid(name + " may be given once (only single-field sorting is supported).")
	}
}

func (d *dialect) list(ctx context.Context, c *call) (result, error) {
	q := c.r.URL.Query()
	fl := control.FlowLogFilter{GatewayID: c.router.ID, AttachmentIDs: q["resource_id"], Limit: maxLimit}
	for _, t := range q["resource_type"] {
		if t != "attachment" {
			return result{}, invalid(fmt.Sprintf("resource_type must be attachment, got %q.", t))
		}
	}
	if v, err := single(q, "limit"); err != nil {
		return result{}, err
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return result{}, invalid(fmt.Sprintf("limit must be an integer from 1 to %d, got %q.", maxLimit, v))
		}
		fl.Limit = n
	}
	var err error
	if fl.Marker, err = single(q, "marker"); err != nil {
		return result{}, err
	}
	key, err := single(q, "sort_key")
	if err != nil {
		return result{}, err
	}
	switch key {
	case "", "id", "name", "state":
		fl.SortKey = key
	default:
		return result{}, invalid(fmt.Sprintf("sort_key must be id, name or state, got %q.", key))
	}
	dir, err := single(q, "sort_dir")
	if err != nil {
		return result{}, err
	}
	switch strings.ToLower(dir) {
	case "", "asc":
	case "desc":
		fl.SortDesc = true
	default:
		return result{}, invalid(fmt.Sprintf("sort_dir must be asc or desc, got %q.", dir))
	}
	limit := fl.Limit
	fl.Limit++ // one more tells whether a next page exists
	all, total, err := d.ctl.ListFlowLogs(ctx, c.account, fl)
	if err != nil {
		return result{}, err
	}
	res := listReply{FlowLogs: []flowLog{}, RequestID: c.requestID, TotalCount: total}
	for i := range all[:min(limit, len(all))] {
		res.FlowLogs = append(res.FlowLogs, view(&all[i], c.router.ID))
	}
	res.PageInfo.CurrentCount = len(res.FlowLogs)
	if len(all) > limit {
		res.PageInfo.NextMarker = res.FlowLogs[limit-1].ID
	}
	return result{http.StatusOK, res}, nil
}
