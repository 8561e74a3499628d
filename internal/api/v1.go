package api

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"flowlog/internal/control"
	"flowlog/internal/desired"
)

func (s *Server) routes() {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, caller)) {
		s.mux.Handle(pattern, s.authed(fn))
	}
	h("POST /v1/access-keys", s.createAccessKey)
	h("GET /v1/access-keys", s.listAccessKeys)
	h("POST /v1/access-keys/{id}/enable", s.enableAccessKey)
	h("POST /v1/access-keys/{id}/disable", s.disableAccessKey)
	h("DELETE /v1/access-keys/{id}", s.deleteAccessKey)

	h("POST /v1/grants", s.createGrant)
	h("GET /v1/grants", s.listGrants)
	h("DELETE /v1/grants/{id}", s.deleteGrant)

	h("POST /v1/gateways", s.createGateway)
	h("GET /v1/gateways", s.listGateways)
	h("GET /v1/gateways/{id}", s.getGateway)
	h("PATCH /v1/gateways/{id}", s.updateGateway)
	h("DELETE /v1/gateways/{id}", s.deleteGateway)
	h("POST /v1/gateways/{id}/attachments", s.createAttachment)
	h("GET /v1/gateways/{id}/attachments", s.listAttachments)
	h("GET /v1/gateways/{id}/attachments/{aid}", s.getAttachment)
	h("DELETE /v1/gateways/{id}/attachments/{aid}", s.deleteAttachment)
	h("POST /v1/gateways/{id}/discover", s.discoverInterfaces)
	h("GET /v1/exporters", s.listExporters)

	h("POST /v1/log-groups", s.createLogGroup)
	h("GET /v1/log-groups", s.listLogGroups)
	h("GET /v1/log-groups/{id}", s.getLogGroup)
	h("DELETE /v1/log-groups/{id}", s.deleteLogGroup)
	h("POST /v1/log-groups/{id}/log-streams", s.createLogStream)
	h("GET /v1/log-groups/{id}/log-streams", s.listLogStreams)
	h("GET /v1/log-groups/{id}/log-streams/{sid}", s.getLogStream)
	h("PATCH /v1/log-groups/{id}/log-streams/{sid}", s.updateLogStream)
	h("DELETE /v1/log-groups/{id}/log-streams/{sid}", s.deleteLogStream)
	h("POST /v1/log-streams/{id}/query", s.queryStream)
	h("POST /v1/log-streams/{id}/export", s.exportStream)
	h("POST /v1/explore", s.explore)
	h("POST /v1/filters/check", s.checkFilter)

	h("POST /v1/flow-logs", s.createFlowLog)
	h("GET /v1/flow-logs", s.listFlowLogs)
	h("GET /v1/flow-logs/{id}", s.getFlowLog)
	h("PATCH /v1/flow-logs/{id}", s.updateFlowLog)
	h("DELETE /v1/flow-logs/{id}", s.deleteFlowLog)
	h("POST /v1/flow-logs/{id}/enable", s.enableFlowLog)
	h("POST /v1/flow-logs/{id}/disable", s.disableFlowLog)
	h("POST /v1/flow-logs/{id}/associate", s.associateFlowLog)
	h("POST /v1/flow-logs/{id}/disassociate", s.disassociateFlowLog)
}

// reply writes v with status, or the error.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if v == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

func (s *Server) createAccessKey(w http.ResponseWriter, r *http.Request, c caller) {
	var in struct {
		NewAccount bool `json:"new_account"`
	}
	if len(c.body) > 0 && !decode(w, r, c.body, &in) {
		return
	}
	var k control.AccessKey
	var err error
	if in.NewAccount {
		k, err = s.svc.CreateAccount(r.Context(), c.account)
	} else {
		k, err = s.svc.CreateAccessKey(r.Context(), c.account)
	}
	s.reply(w, r, http.StatusCreated, map[string]string{"access_key_id": k.ID,
		"access_key_secret": k.Secret, "account_id": k.AccountID}, err)
}

func (s *Server) listAccessKeys(w http.ResponseWriter, r *http.Request, c caller) {
	ks, err := s.svc.ListAccessKeys(r.Context(), c.account)
	s.reply(w, r, http.StatusOK, map[string]any{"access_keys": ks}, err)
}

func (s *Server) enableAccessKey(w http.ResponseWriter, r *http.Request, c caller) {
	s.setAccessKey(w, r, c, true)
}

func (s *Server) disableAccessKey(w http.ResponseWriter, r *http.Request, c caller) {
	s.setAccessKey(w, r, c, false)
}

func (s *Server) setAccessKey(w http.ResponseWriter, r *http.Request, c caller, enabled bool) {
	force, ok := forceParam(w, r)
	if !ok {
		return
	}
	k, err := s.svc.SetAccessKeyEnabled(r.Context(), c.account, r.PathValue("id"), enabled, force)
	if err == nil && !enabled {
		s.sessions.EndKey(r.PathValue("id")) // enabling it again does not bring them back
	}
	s.reply(w, r, http.StatusOK, k, err)
}

func (s *Server) deleteAccessKey(w http.ResponseWriter, r *http.Request, c caller) {
	force, ok := forceParam(w, r)
	if !ok {
		return
	}
	err := s.svc.DeleteAccessKey(r.Context(), c.account, r.PathValue("id"), force)
	if err == nil {
		s.sessions.EndKey(r.PathValue("id"))
	}
	s.reply(w, r, http.StatusNoContent, nil, err)
}

// forceParam reads the force query parameter, which lets a caller disable or
// delete the last enabled key of its account.
func forceParam(w http.ResponseWriter, r *http.Request) (force, ok bool) {
	v := r.URL.Query().Get("force")
	if v == "" {
		return false, true
	}
	force, err := strconv.ParseBool(v)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidParameter.force", "force: must be true or false")
		return false, false
	}
	return force, true
}

// gatewayBody is the JSON of a gateway to create or change.
type gatewayBody struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Kind        *string `json:"kind"`
	PcapPath    *string `json:"pcap_path"`
	PcapPace    *string `json:"pcap_pace"`
	Exporter    *string `json:"exporter_addr"`
	Agent       *string `json:"agent"`
	Sampling    *int    `json:"sampling_interval"`
	// SNMP replaces the exporter's SNMP settings; {} removes them.
	SNMP *desired.SNMP `json:"snmp"`
}

func (b gatewayBody) input() control.GatewayInput {
	return control.GatewayInput{Name: b.Name, Description: b.Description, Kind: b.Kind,
		PcapPath: b.PcapPath, PcapPace: b.PcapPace, Exporter: b.Exporter, Agent: b.Agent, SNMP: b.SNMP,
		SamplingInterval: b.Sampling}
}

func (s *Server) createGateway(w http.ResponseWriter, r *http.Request, c caller) {
	var b gatewayBody
	if !decode(w, r, c.body, &b) {
		return
	}
	g, err := s.svc.CreateGateway(r.Context(), c.account, b.input())
	s.reply(w, r, http.StatusCreated, g, err)
}

func (s *Server) listGateways(w http.ResponseWriter, r *http.Request, c caller) {
	gs, err := s.svc.ListGateways(r.Context(), c.account)
	s.reply(w, r, http.StatusOK, map[string]any{"gateways": gs}, err)
}

func (s *Server) getGateway(w http.ResponseWriter, r *http.Request, c caller) {
	g, err := s.svc.GetGateway(r.Context(), c.account, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, g, err)
}

func (s *Server) updateGateway(w http.ResponseWriter, r *http.Request, c caller) {
	var b gatewayBody
	if !decode(w, r, c.body, &b) {
		return
	}
	g, err := s.svc.UpdateGateway(r.Context(), c.account, r.PathValue("id"), b.input())
	s.reply(w, r, http.StatusOK, g, err)
}

// discoverInterfaces lists an exporter's interfaces as its router reports
// them by SNMP, and attaches them when asked.
func (s *Server) discoverInterfaces(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		CreateAttachments bool     `json:"create_attachments"`
		IfIndexes         []uint32 `json:"if_indexes"`
	}
	if len(bytes.TrimSpace(c.body)) > 0 && !decode(w, r, c.body, &b) {
		return
	}
	d, err := s.svc.DiscoverInterfaces(r.Context(), c.account, r.PathValue("id"),
		control.DiscoverOptions{CreateAttachments: b.CreateAttachments, IfIndexes: b.IfIndexes})
	s.reply(w, r, http.StatusOK, d, err)
}

func (s *Server) deleteGateway(w http.ResponseWriter, r *http.Request, c caller) {
	s.reply(w, r, http.StatusNoContent, nil, s.svc.DeleteGateway(r.Context(), c.account, r.PathValue("id")))
}

func (s *Server) createAttachment(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		Name      *string `json:"name"`
		Interface *string `json:"interface"`
		IfIndex   *uint32 `json:"if_index"`
	}
	if !decode(w, r, c.body, &b) {
		return
	}
	a, err := s.svc.CreateAttachment(r.Context(), c.account, r.PathValue("id"),
		control.AttachmentInput{Name: b.Name, Interface: b.Interface, IfIndex: b.IfIndex})
	s.reply(w, r, http.StatusCreated, a, err)
}

func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request, c caller) {
	as, err := s.svc.ListAttachments(r.Context(), c.account, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, map[string]any{"attachments": as}, err)
}

func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request, c caller) {
	a, err := s.svc.GetAttachment(r.Context(), c.account, r.PathValue("id"), r.PathValue("aid"))
	s.reply(w, r, http.StatusOK, a, err)
}

func (s *Server) deleteAttachment(w http.ResponseWriter, r *http.Request, c caller) {
	err := s.svc.DeleteAttachment(r.Context(), c.account, r.PathValue("id"), r.PathValue("aid"))
	s.reply(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) createLogGroup(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		Name *string `json:"name"`
	}
	if !decode(w, r, c.body, &b) {
		return
	}
	g, err := s.svc.CreateLogGroup(r.Context(), c.account, b.Name)
	s.reply(w, r, http.StatusCreated, g, err)
}

func (s *Server) listLogGroups(w http.ResponseWriter, r *http.Request, c caller) {
	gs, err := s.svc.ListLogGroups(r.Context(), c.account)
	s.reply(w, r, http.StatusOK, map[string]any{"log_groups": gs}, err)
}

func (s *Server) getLogGroup(w http.ResponseWriter, r *http.Request, c caller) {
	g, err := s.svc.GetLogGroup(r.Context(), c.account, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, g, err)
}

func (s *Server) deleteLogGroup(w http.ResponseWriter, r *http.Request, c caller) {
	s.reply(w, r, http.StatusNoContent, nil, s.svc.DeleteLogGroup(r.Context(), c.account, r.PathValue("id")))
}

func (s *Server) createLogStream(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		Name          *string `json:"name"`
		RetentionDays *int    `json:"retention_days"`
	}
	if !decode(w, r, c.body, &b) {
		return
	}
	ls, err := s.svc.CreateLogStream(r.Context(), c.account, r.PathValue("id"), b.Name, b.RetentionDays)
	s.reply(w, r, http.StatusCreated, ls, err)
}

func (s *Server) listLogStreams(w http.ResponseWriter, r *http.Request, c caller) {
	ls, err := s.svc.ListLogStreams(r.Context(), c.account, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, map[string]any{"log_streams": ls}, err)
}

func (s *Server) getLogStream(w http.ResponseWriter, r *http.Request, c caller) {
	ls, err := s.svc.GetLogStream(r.Context(), c.account, r.PathValue("sid"))
	if err == nil && ls.LogGroupID != r.PathValue("id") {
		ls, err = control.LogStream{}, s.notFoundStream(r)
	}
	s.reply(w, r, http.StatusOK, ls, err)
}

func (s *Server) notFoundStream(r *http.Request) error {
	return &control.Error{Kind: control.ErrNotFound, Resource: "log_stream",
		Message: "log stream " + strconv.Quote(r.PathValue("sid")) + " does not exist in this log group"}
}

// updateLogStream changes a log stream's retention; the log store expires
// by the new one from its next retention pass.
func (s *Server) updateLogStream(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		RetentionDays *int `json:"retention_days"`
	}
	if !decode(w, r, c.body, &b) {
		return
	}
	ls, err := s.svc.UpdateLogStream(r.Context(), c.account, r.PathValue("id"), r.PathValue("sid"), b.RetentionDays)
	s.reply(w, r, http.StatusOK, ls, err)
}

func (s *Server) deleteLogStream(w http.ResponseWriter, r *http.Request, c caller) {
	err := s.svc.DeleteLogStream(r.Context(), c.account, r.PathValue("id"), r.PathValue("sid"))
	s.reply(w, r, http.StatusNoContent, nil, err)
}

// flowLogBody is the JSON of a flow log to create or change.
type flowLogBody struct {
	Name                *string          `json:"name"`
	Description         *string          `json:"description"`
	Region              *string          `json:"region"`
	ResourceGroupID     *string          `json:"resource_group_id"`
	ActiveAging         *int             `json:"active_aging"`
	InactiveAging       *int             `json:"inactive_aging"`
	AggregationInterval *int             `json:"aggregation_interval"`
	Sampling            *int             `json:"sampling"`
	OutputType          *string          `json:"output_type"`
	LogGroupID          *string          `json:"log_group_id"`
	LogStreamID         *string          `json:"log_stream_id"`
	NetflowServerIP     *string          `json:"netflow_server_ip"`
	NetflowServerPort   *int             `json:"netflow_server_port"`
	NetflowVersion      *string          `json:"netflow_version"`
	Enabled             *bool            `json:"enabled"`
	Targets             []control.Target `json:"targets"`
	ClientToken         string           `json:"client_token"`

	File *control.FileOutputInput `json:"file"`
}

func (b flowLogBody) input() control.FlowLogInput {
	return control.FlowLogInput{Name: b.Name, Description: b.Description, Region: b.Region,
		ResourceGroupID: b.ResourceGroupID, ActiveAging: b.ActiveAging, InactiveAging: b.InactiveAging,
		AggregationInterval: b.AggregationInterval, Sampling: b.Sampling, OutputType: b.OutputType,
		LogGroupID: b.LogGroupID, LogStreamID: b.LogStreamID, NetflowServerIP: b.NetflowServerIP,
		NetflowServerPort: b.NetflowServerPort, NetflowVersion: b.NetflowVersion, Enabled: b.Enabled,
		Targets: b.Targets, ClientToken: b.ClientToken, File: b.File}
}

func (s *Server) createFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	var b flowLogBody
	if !decode(w, r, c.body, &b) {
		return
	}
	if b.Name == nil {
		writeError(w, r, http.StatusBadRequest, "MissingParameter.name", "name is required")
		return
	}
	if t := r.Header.Get("X-Client-Token"); t != "" && b.ClientToken == "" {
		b.ClientToken = t
	}
	f, created, err := s.svc.CreateFlowLog(r.Context(), c.account, b.input())
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // a retry with the same client token
	}
	s.reply(w, r, status, f, err)
}

func (s *Server) getFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	f, err := s.svc.GetFlowLog(r.Context(), c.account, r.PathValue("id"))
	s.reply(w, r, http.StatusOK, f, err)
}

func (s *Server) updateFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	var b flowLogBody
	if !decode(w, r, c.body, &b) {
		return
	}
	if b.Targets != nil || b.ClientToken != "" {
		writeError(w, r, http.StatusBadRequest, "InvalidParameter.targets",
			"targets and client_token cannot be changed; use associate/disassociate")
		return
	}
	f, err := s.svc.UpdateFlowLog(r.Context(), c.account, r.PathValue("id"), b.input())
	s.reply(w, r, http.StatusOK, f, err)
}

func (s *Server) deleteFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	f, err := s.svc.DeleteFlowLog(r.Context(), c.account, r.PathValue("id"), control.DeleteRules{})
	s.reply(w, r, http.StatusAccepted, f, err)
}

func (s *Server) enableFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	f, _, err := s.svc.SetEnabled(r.Context(), c.account, r.PathValue("id"), true)
	s.reply(w, r, http.StatusOK, f, err)
}

func (s *Server) disableFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	f, _, err := s.svc.SetEnabled(r.Context(), c.account, r.PathValue("id"), false)
	s.reply(w, r, http.StatusOK, f, err)
}

func (s *Server) targetBody(w http.ResponseWriter, r *http.Request, c caller) (control.Target, bool) {
	var t control.Target
	return t, decode(w, r, c.body, &t)
}

func (s *Server) associateFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	t, ok := s.targetBody(w, r, c)
	if !ok {
		return
	}
	f, err := s.svc.Associate(r.Context(), c.account, r.PathValue("id"), t)
	s.reply(w, r, http.StatusOK, f, err)
}

func (s *Server) disassociateFlowLog(w http.ResponseWriter, r *http.Request, c caller) {
	t, ok := s.targetBody(w, r, c)
	if !ok {
		return
	}
	f, err := s.svc.Disassociate(r.Context(), c.account, r.PathValue("id"), t)
	s.reply(w, r, http.StatusOK, f, err)
}

func (s *Server) listFlowLogs(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	fl := control.FlowLogFilter{Name: q.Get("name"), State: q.Get("state"), OutputType: q.Get("output_type"),
		GatewayID: q.Get("gateway_id"), AttachmentIDs: q["attachment_id"], SortKey: q.Get("sort_key"),
		Marker: q.Get("marker"), Limit: 100}
	bad := func(field, msg string) {
		writeError(w, r, http.StatusBadRequest, "InvalidParameter."+field, field+": "+msg)
	}
	if v := q.Get("enabled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("enabled", "must be true or false")
			return
		}
		fl.Enabled = &b
	}
	switch strings.ToLower(q.Get("sort_dir")) {
	case "", "asc":
	case "desc":
		fl.SortDesc = true
	default:
		bad("sort_dir", "must be asc or desc")
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 2000 {
			bad("limit", "must be an integer from 1 to 2000")
			return
		}
		fl.Limit = n
	}
	limit := fl.Limit
	fl.Limit++ // one more tells whether a next page exists
	fls, total, err := s.svc.ListFlowLogs(r.Context(), c.account, fl)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	next := ""
	if len(fls) > limit {
		fls = fls[:limit]
		next = fls[limit-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"flow_logs": fls, "total_count": total, "next_marker": next})
}
