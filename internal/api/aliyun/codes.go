package aliyun

import (
	"errors"
	"net/http"
	"strings"

	"flowlog/internal/control"
)

// The flow-log error codes of the Smart Access Gateway API.
var (
	errFlowLogNotFound = badRequest("InvalidFlowLogId.NotFound", "The specified FlowLog instance does not exist.")
	errSagNotFound     = badRequest("InvalidSmartAGId.NotFound", "The specified SmartAG instance does not exist.")
	errIncorrectStatus = badRequest("IncorrectStatus.FlowLog", "The current FlowLog instance status does not support this operation.")
	errDependency      = badRequest("DependencyViolation.FlowLog", "This FlowLog instance is bound to an SAG instance.")
	errAssociated      = badRequest("OperationFailed.AssociateFlowLog", "The SAG instance is already associated with another FlowLog instance.")
	errQuota           = badRequest("QuotaExceeded.Flowlog", "The number of FlowLog instances exceeds the quota.")
)

// withDetail returns a copy of e whose message ends with detail.
func withDetail(e *Error, detail string) *Error {
	if detail == "" {
		return e
	}
	return &Error{Status: e.Status, Code: e.Code, Message: e.Message + " " + detail}
}

func missingParam(name, why string) *Error {
	return badRequest("MissingParam."+name, "The parameter "+name+" is required"+why+".")
}

func illegalParam(name, detail string) *Error {
	return withDetail(badRequest("IllegalParam."+name, "The specified "+name+" is invalid."), detail)
}

// paramNames maps the control plane's field names to this API's parameters.
var paramNames = map[string]string{
	"name": "Name", "description": "Description", "region": "RegionId",
	"resource_group_id": "ResourceGroupId", "active_aging": "ActiveAging",
	"inactive_aging": "InactiveAging", "output_type": "OutputType",
	"log_group_id": "ProjectName", "log_stream_id": "LogstoreName", "sls_region_id": "SlsRegionId",
	"netflow_server_ip": "NetflowServerIp", "netflow_server_port": "NetflowServerPort",
	"netflow_version": "NetflowVersion", "gateway_id": "SmartAGId", "target": "SmartAGId",
	"client_token": "ClientToken", "marker": "PageNumber",
}

// translate turns a control-plane error into this API's answer; errors that
// are not domain errors stay as they are (and become InternalError).
func translate(err error) error {
	e, ok := control.AsError(err)
	if !ok {
		return err
	}
	name := paramNames[e.Field]
	if name == "" {
		name = e.Field
	}
	// The control plane's messages start with its own field name.
	detail := strings.TrimPrefix(e.Message, e.Field+": ")
	switch {
	case errors.Is(e.Kind, control.ErrNotFound) && e.Resource == "flow_log":
		return errFlowLogNotFound
	case errors.Is(e.Kind, control.ErrNotFound) && (e.Resource == "gateway" || e.Resource == "attachment"):
		return errSagNotFound
	case errors.Is(e.Kind, control.ErrInvalid) && e.Missing:
		return missingParam(name, "")
	case errors.Is(e.Kind, control.ErrInvalid):
		return illegalParam(name, name+" "+detail+".")
	case errors.Is(e.Kind, control.ErrDeleting):
		return errFlowLogNotFound // gone, to this API's callers
	case errors.Is(e.Kind, control.ErrBusy):
		return withDetail(errIncorrectStatus, e.Message+".")
	case errors.Is(e.Kind, control.ErrInUse):
		return withDetail(errDependency, e.Message+".")
	case errors.Is(e.Kind, control.ErrConflict) && e.Field == "target":
		return withDetail(errAssociated, e.Message+".")
	case errors.Is(e.Kind, control.ErrQuota):
		return withDetail(errQuota, e.Message+".")
	case errors.Is(e.Kind, control.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: "Forbidden", Message: e.Message}
	}
	return badRequest("InvalidParameter", e.Message)
}
