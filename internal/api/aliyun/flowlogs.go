package aliyun

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"flowlog/internal/api/auth"
	"flowlog/internal/control"
)

// Deps is what the dialect needs from the server.
type Deps struct {
	Control *control.Service
	Keys    auth.Lookup
}

// Register mounts the Smart Access Gateway flow-log API on exactly "/" of
// mux (GET and POST), translating each action onto the control plane.
func Register(mux *http.ServeMux, cfg Config, deps Deps) {
	s := NewServer(cfg, deps.Keys)
	d := &dialect{ctl: deps.Control}
	for name, fn := range map[string]Action{
		"CreateFlowLog":             d.create,
		"DeleteFlowLog":             d.delete,
		"ModifyFlowLogAttribute":    d.modify,
		"DescribeFlowLogs":          d.describe,
		"AssociateFlowLog":          d.associate,
		"DisassociateFlowLog":       d.disassociate,
		"ActiveFlowLog":             d.active,
		"DeactiveFlowLog":           d.deactive,
		"DescribeFlowLogSags":       d.describeSags,
		"DescribeUnbindFlowLogSags": d.describeUnbindSags,
	} {
		s.Handle(name, keyUsed(deps.Control, s.cfg.Logger, regional(fn)))
	}
	mux.Handle("/{$}", s)
}

// keyUsed records the use of the call's access key, which the server has
// verified before any action runs.
func keyUsed(ctl *control.Service, log *slog.Logger, fn Action) Action {
	return func(ctx context.Context, c *Call) (any, error) {
		if err := ctl.KeyUsed(ctx, c.Params["AccessKeyId"]); err != nil {
			log.Warn("recording an access key's use", "key", c.Params["AccessKeyId"], "err", err)
		}
		return fn(ctx, c)
	}
}

// regional requires the RegionId every action of this API takes.
func regional(fn Action) Action {
	return func(ctx context.Context, c *Call) (any, error) {
		if _, err := params(c.Params).region("RegionId"); err != nil {
			return nil, err
		}
		res, err := fn(ctx, c)
		if err != nil {
			return nil, translate(err)
		}
		return res, nil
	}
}

type dialect struct {
	ctl *control.Service
}

// reply carries the RequestId every response has.
type reply struct {
	RequestID string `json:"RequestId" xml:"RequestId"`
}

func (r *reply) setRequestID(id string) { r.RequestID = id }

type createReply struct {
	reply
	FlowLogID       string `json:"FlowLogId" xml:"FlowLogId"`
	ResourceGroupID string `json:"ResourceGroupId" xml:"ResourceGroupId"`
}

func (d *dialect) create(ctx context.Context, c *Call) (any, error) {
	p := params(c.Params)
	in, undo, err := d.input(ctx, c.Account, p, nil)
	if err != nil {
		return nil, err
	}
	region := p["RegionId"]
	in.Region = &region
	in.ClientToken = p["ClientToken"]
	f, _, err := d.ctl.CreateFlowLog(ctx, c.Account, in)
	if err != nil {
		undo()
		return nil, err
	}
	return &createReply{FlowLogID: f.ID, ResourceGroupID: f.ResourceGroupID}, nil
}

func (d *dialect) modify(ctx context.Context, c *Call) (any, error) {
	p := params(c.Params)
	id, err := p.need("FlowLogId")
	if err != nil {
		return nil, err
	}
	cur, err := d.flowLog(ctx, c.Account, id)
	if err != nil {
		return nil, err
	}
	in, undo, err := d.input(ctx, c.Account, p, &cur)
	if err != nil {
		return nil, err
	}
	if _, err := d.ctl.UpdateFlowLog(ctx, c.Account, id, in); err != nil {
		undo()
		return nil, err
	}
	return &reply{}, nil
}

// input reads the settable fields of CreateFlowLog and ModifyFlowLogAttribute
// (cur is the flow log being modified, nil on create), applying the output
// type's conditional-required rules. A log project and logstore named for
// the first time are created; undo removes them again if the caller fails.
func (d *dialect) input(ctx context.Context, account string, p params, cur *control.FlowLog) (in control.FlowLogInput, undo func(), err error) {
	undo = func() {}
	in.Name, in.Description, in.ResourceGroupID = p.opt("Name"), p.opt("Description"), p.opt("ResourceGroupId")
	for _, f := range []struct {
		name string
		dst  **int
	}{{"ActiveAging", &in.ActiveAging}, {"InactiveAging", &in.InactiveAging}, {"NetflowServerPort", &in.NetflowServerPort}} {
		if *f.dst, err = p.integer(f.name); err != nil {
			return in, undo, err
		}
	}
	output := ""
	if cur != nil {
		output = cur.OutputType
	}
	if v := p.opt("OutputType"); v != nil {
		switch *v {
		case control.OutputSLS, control.OutputNetflow, control.OutputAll:
			output, in.OutputType = *v, v
		default:
			return in, undo, illegalParam("OutputType", "OutputType must be sls, netflow or all.")
		}
	} else if cur == nil {
		return in, undo, missingParam("OutputType", "")
	}
	probe := control.FlowLog{OutputType: output}
	sls, netflow := probe.Outputs()
	if netflow {
		if err := d.netflowInput(p, &in, cur); err != nil {
			return in, undo, err
		}
	}
	if sls {
		return d.slsInput(ctx, account, p, in, cur)
	}
	return in, undo, nil
}

func (d *dialect) netflowInput(p params, in *control.FlowLogInput, cur *control.FlowLog) error {
	const why = " when OutputType is netflow or all"
	had := cur != nil && cur.NetflowServerIP != ""
	if ip := p.opt("NetflowServerIp"); (ip == nil && !had) || (ip != nil && *ip == "") {
		return missingParam("NetflowServerIp", why)
	} else {
		in.NetflowServerIP = ip
	}
	if v := p.opt("NetflowVersion"); v != nil {
		if *v == "" {
			return missingParam("NetflowVersion", why)
		}
		in.NetflowVersion = v
	}
	return nil
}

// slsInput resolves SlsRegionId, ProjectName and LogstoreName to a log
// stream, creating the log group and stream on first use.
func (d *dialect) slsInput(ctx context.Context, account string, p params, in control.FlowLogInput, cur *control.FlowLog) (control.FlowLogInput, func(), error) {
	const why = " when OutputType is sls or all"
	undo := func() {}
	had := cur != nil && cur.LogStreamID != ""
	names := map[string]string{}
	for _, name := range []string{"SlsRegionId", "ProjectName", "LogstoreName"} {
		v, given := p[name]
		if (given && v == "") || (!given && !had) {
			return in, undo, missingParam(name, why)
		}
		names[name] = v
	}
	if v, given := p["SlsRegionId"]; given {
		if _, err := p.region("SlsRegionId"); err != nil {
			return in, undo, err
		}
		in.SLSRegionID = &v
	}
	project, store := names["ProjectName"], names["LogstoreName"]
	if project == "" && store == "" {
		return in, undo, nil // keep the current log stream
	}
	if had && (project == "" || store == "") {
		// One of the two given: the other is the current one's.
		g, s, err := d.slsNames(ctx, account, cur)
		if err != nil {
			return in, undo, err
		}
		if project == "" {
			project = g
		}
		if store == "" {
			store = s
		}
	}
	stream, undo, err := d.ensureStream(ctx, account, project, store)
	if err != nil {
		return in, undo, err
	}
	in.LogStreamID, in.LogGroupID = &stream.ID, &stream.LogGroupID
	return in, undo, nil
}

// ensureStream finds or creates the log group project and its stream store.
// undo deletes what this call created.
func (d *dialect) ensureStream(ctx context.Context, account, project, store string) (control.LogStream, func(), error) {
	var undos []func()
	undo := func() {
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i]()
		}
	}
	g, err := d.ctl.LogGroupByName(ctx, account, project)
	if errors.Is(err, control.ErrNotFound) {
		g, err = d.ctl.CreateLogGroup(ctx, account, &project)
		if err == nil {
			id := g.ID
			undos = append(undos, func() { d.ctl.DeleteLogGroup(context.WithoutCancel(ctx), account, id) })
		} else if errors.Is(err, control.ErrConflict) { // created meanwhile
			g, err = d.ctl.LogGroupByName(ctx, account, project)
		}
	}
	if err != nil {
		return control.LogStream{}, undo, renameField(err, "ProjectName")
	}
	s, err := d.ctl.LogStreamByName(ctx, account, g.ID, store)
	if errors.Is(err, control.ErrNotFound) {
		s, err = d.ctl.CreateLogStream(ctx, account, g.ID, &store, nil)
		if err == nil {
			id := s.ID
			undos = append(undos, func() { d.ctl.DeleteLogStream(context.WithoutCancel(ctx), account, g.ID, id) })
		} else if errors.Is(err, control.ErrConflict) {
			s, err = d.ctl.LogStreamByName(ctx, account, g.ID, store)
		}
	}
	if err != nil {
		undo()
		return s, func() {}, renameField(err, "LogstoreName")
	}
	return s, undo, nil
}

// renameField points a log group or stream validation error at the
// parameter that named it.
func renameField(err error, param string) error {
	if e, ok := control.AsError(err); ok && errors.Is(e.Kind, control.ErrInvalid) {
		return illegalParam(param, param+" "+strings.TrimPrefix(e.Message, e.Field+": ")+".")
	}
	return err
}

// slsNames returns the names of a flow log's log group and stream.
func (d *dialect) slsNames(ctx context.Context, account string, f *control.FlowLog) (project, store string, err error) {
	if f.LogStreamID == "" {
		return "", "", nil
	}
	g, err := d.ctl.GetLogGroup(ctx, account, f.LogGroupID)
	if err != nil {
		return "", "", err
	}
	s, err := d.ctl.GetLogStream(ctx, account, f.LogStreamID)
	return g.Name, s.Name, err
}

func (d *dialect) delete(ctx context.Context, c *Call) (any, error) {
	id, err := params(c.Params).need("FlowLogId")
	if err != nil {
		return nil, err
	}
	// Gone at once for the caller, whatever the internal state: this API
	// shows none but Active and Inactive.
	_, err = d.ctl.DeleteFlowLog(ctx, c.Account, id, control.DeleteRules{RefuseIfBound: true, Immediate: true})
	return &reply{}, err
}

func (d *dialect) active(ctx context.Context, c *Call) (any, error) {
	return d.setEnabled(ctx, c, true)
}
func (d *dialect) deactive(ctx context.Context, c *Call) (any, error) {
	return d.setEnabled(ctx, c, false)
}

// setEnabled activates or deactivates; doing it twice is an incorrect status.
func (d *dialect) setEnabled(ctx context.Context, c *Call, enabled bool) (any, error) {
	id, err := params(c.Params).need("FlowLogId")
	if err != nil {
		return nil, err
	}
	f, changed, err := d.ctl.SetEnabled(ctx, c.Account, id, enabled)
	if err != nil {
		return nil, err
	}
	if !changed {
		return nil, withDetail(errIncorrectStatus, "FlowLog "+f.ID+" is already "+status(&f)+".")
	}
	return &reply{}, nil
}

func status(f *control.FlowLog) string {
	if f.Enabled {
		return "Active"
	}
	return "Inactive"
}

func (d *dialect) associate(ctx context.Context, c *Call) (any, error) {
	id, sag, err := flowLogAndSag(c)
	if err != nil {
		return nil, err
	}
	// One flow log per SAG, whatever its output type.
	_, err = d.ctl.AssociateExclusive(ctx, c.Account, id, control.Target{GatewayID: sag})
	return &reply{}, err
}

// disassociate unbinds the flow log from the SAG and from any of its
// attachments (which the Huawei dialect binds).
func (d *dialect) disassociate(ctx context.Context, c *Call) (any, error) {
	id, sag, err := flowLogAndSag(c)
	if err != nil {
		return nil, err
	}
	f, err := d.flowLog(ctx, c.Account, id)
	if err != nil {
		return nil, err
	}
	if _, err := d.ctl.GetGateway(ctx, c.Account, sag); err != nil {
		return nil, err
	}
	found := false
	for _, t := range f.Targets {
		if t.GatewayID == sag {
			found = true
			if _, err := d.ctl.Disassociate(ctx, c.Account, id, t); err != nil {
				return nil, err
			}
		}
	}
	if !found {
		return nil, withDetail(errIncorrectStatus, "FlowLog "+id+" is not associated with SmartAG "+sag+".")
	}
	return &reply{}, nil
}

// flowLog returns one of account's flow logs; one being deleted is gone.
func (d *dialect) flowLog(ctx context.Context, account, id string) (control.FlowLog, error) {
	f, err := d.ctl.GetFlowLog(ctx, account, id)
	if err == nil && f.State == control.StateDeleting {
		return f, errFlowLogNotFound
	}
	return f, err
}

func flowLogAndSag(c *Call) (id, sag string, err error) {
	p := params(c.Params)
	if id, err = p.need("FlowLogId"); err != nil {
		return
	}
	sag, err = p.need("SmartAGId")
	return
}

// flowLogSet is one flow log as DescribeFlowLogs shows it.
type flowLogSet struct {
	FlowLogID         string `json:"FlowLogId" xml:"FlowLogId"`
	Name              string `json:"Name" xml:"Name"`
	Description       string `json:"Description" xml:"Description"`
	Status            string `json:"Status" xml:"Status"`
	OutputType        string `json:"OutputType" xml:"OutputType"`
	ActiveAging       int    `json:"ActiveAging" xml:"ActiveAging"`
	InactiveAging     int    `json:"InactiveAging" xml:"InactiveAging"`
	SlsRegionID       string `json:"SlsRegionId,omitempty" xml:"SlsRegionId,omitempty"`
	ProjectName       string `json:"ProjectName,omitempty" xml:"ProjectName,omitempty"`
	LogstoreName      string `json:"LogstoreName,omitempty" xml:"LogstoreName,omitempty"`
	NetflowServerIP   string `json:"NetflowServerIp,omitempty" xml:"NetflowServerIp,omitempty"`
	NetflowServerPort int    `json:"NetflowServerPort,omitempty" xml:"NetflowServerPort,omitempty"`
	NetflowVersion    string `json:"NetflowVersion,omitempty" xml:"NetflowVersion,omitempty"`
	TotalSagNum       int    `json:"TotalSagNum" xml:"TotalSagNum"`
	ResourceGroupID   string `json:"ResourceGroupId" xml:"ResourceGroupId"`
}

type describeReply struct {
	reply
	TotalCount int `json:"TotalCount" xml:"TotalCount"`
	PageNumber int `json:"PageNumber" xml:"PageNumber"`
	PageSize   int `json:"PageSize" xml:"PageSize"`
	FlowLogs   struct {
		FlowLogSetType []flowLogSet `json:"FlowLogSetType" xml:"FlowLogSetType"`
	} `json:"FlowLogs" xml:"FlowLogs"`
}

func (d *dialect) describe(ctx context.Context, c *Call) (any, error) {
	p := params(c.Params)
	number, size, err := p.page()
	if err != nil {
		return nil, err
	}
	fl := control.FlowLogFilter{Name: p["FlowLogName"], Description: p["Description"],
		ResourceGroupID: p["ResourceGroupId"], Limit: size, Offset: (number - 1) * size, HideDeleting: true}
	if id := p["FlowLogId"]; id != "" {
		fl.IDs = []string{id}
	}
	switch v := p["OutputType"]; v {
	case "", control.OutputSLS, control.OutputNetflow, control.OutputAll:
		fl.OutputType = v
	default:
		return nil, illegalParam("OutputType", "OutputType must be sls, netflow or all.")
	}
	switch v := p["Status"]; v {
	case "":
	case "Active", "Inactive":
		enabled := v == "Active"
		fl.Enabled = &enabled
	default:
		return nil, illegalParam("Status", "Status must be Active or Inactive.")
	}
	list, total, err := d.ctl.ListFlowLogs(ctx, c.Account, fl)
	if err != nil {
		return nil, err
	}
	res := &describeReply{TotalCount: total, PageNumber: number, PageSize: size}
	res.FlowLogs.FlowLogSetType = make([]flowLogSet, 0, len(list))
	for i := range list {
		set, err := d.flowLogSet(ctx, c.Account, &list[i])
		if err != nil {
			return nil, err
		}
		res.FlowLogs.FlowLogSetType = append(res.FlowLogs.FlowLogSetType, set)
	}
	return res, nil
}

func (d *dialect) flowLogSet(ctx context.Context, account string, f *control.FlowLog) (flowLogSet, error) {
	project, store, err := d.slsNames(ctx, account, f)
	if err != nil {
		return flowLogSet{}, err
	}
	return flowLogSet{
		FlowLogID: f.ID, Name: f.Name, Description: f.Description, Status: status(f),
		OutputType: f.OutputType, ActiveAging: f.ActiveAging, InactiveAging: f.InactiveAging,
		SlsRegionID: f.SLSRegionID, ProjectName: project, LogstoreName: store,
		NetflowServerIP: f.NetflowServerIP, NetflowServerPort: f.NetflowServerPort,
		NetflowVersion: f.NetflowVersion, TotalSagNum: len(gatewaysOf(f)), ResourceGroupID: f.ResourceGroupID,
	}, nil
}

// gatewaysOf returns the distinct gateways a flow log is bound to, sorted.
func gatewaysOf(f *control.FlowLog) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range f.Targets {
		if !seen[t.GatewayID] {
			seen[t.GatewayID] = true
			out = append(out, t.GatewayID)
		}
	}
	sort.Strings(out)
	return out
}

type sag struct {
	SmartAGID   string `json:"SmartAGId" xml:"SmartAGId"`
	Name        string `json:"Name" xml:"Name"`
	Description string `json:"Description" xml:"Description"`
}

type sags struct {
	Sag []sag `json:"Sag" xml:"Sag"`
}

type sagsReply struct {
	reply
	TotalCount int  `json:"TotalCount" xml:"TotalCount"`
	PageNumber int  `json:"PageNumber" xml:"PageNumber"`
	PageSize   int  `json:"PageSize" xml:"PageSize"`
	Sags       sags `json:"Sags" xml:"Sags"`
}

func (d *dialect) describeSags(ctx context.Context, c *Call) (any, error) {
	p := params(c.Params)
	id, err := p.need("FlowLogId")
	if err != nil {
		return nil, err
	}
	number, size, err := p.page()
	if err != nil {
		return nil, err
	}
	f, err := d.flowLog(ctx, c.Account, id)
	if err != nil {
		return nil, err
	}
	ids := gatewaysOf(&f)
	res := &sagsReply{TotalCount: len(ids), PageNumber: number, PageSize: size, Sags: sags{Sag: []sag{}}}
	from := min((number-1)*size, len(ids))
	for _, gid := range ids[from:min(from+size, len(ids))] {
		g, err := d.ctl.GetGateway(ctx, c.Account, gid)
		if err != nil {
			return nil, err
		}
		res.Sags.Sag = append(res.Sags.Sag, sag{SmartAGID: g.ID, Name: g.Name, Description: g.Description})
	}
	return res, nil
}

type unbindReply struct {
	reply
	Count int  `json:"Count" xml:"Count"`
	Sags  sags `json:"Sags" xml:"Sags"`
}

// describeUnbindSags lists the account's gateways no flow log is bound to.
func (d *dialect) describeUnbindSags(ctx context.Context, c *Call) (any, error) {
	gws, err := d.ctl.ListGateways(ctx, c.Account)
	if err != nil {
		return nil, err
	}
	all, _, err := d.ctl.ListFlowLogs(ctx, c.Account, control.FlowLogFilter{HideDeleting: true})
	if err != nil {
		return nil, err
	}
	bound := map[string]bool{}
	for _, f := range all {
		for _, t := range f.Targets {
			bound[t.GatewayID] = true
		}
	}
	res := &unbindReply{Sags: sags{Sag: []sag{}}}
	for _, g := range gws {
		if !bound[g.ID] {
			res.Sags.Sag = append(res.Sags.Sag, sag{SmartAGID: g.ID, Name: g.Name, Description: g.Description})
		}
	}
	res.Count = len(res.Sags.Sag)
	return res, nil
}
