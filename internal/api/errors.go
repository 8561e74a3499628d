package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"flowlog/internal/control"
)

// ErrorBody is the native API's error document.
type ErrorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Code: code, Message: msg, RequestID: RequestID(r.Context())})
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.Error("internal error", "err", err, "path", r.URL.Path, "request_id", RequestID(r.Context()))
	writeError(w, r, http.StatusInternalServerError, "InternalError", "internal error; see the server log")
}

// resourceNames turns control's resource names into error-code words.
var resourceNames = map[string]string{
	"flow_log": "FlowLog", "gateway": "Gateway", "attachment": "Attachment",
	"log_group": "LogGroup", "log_stream": "LogStream", "access_key": "AccessKey",
	"account": "Account", "grant": "Grant", "agent": "Agent",
}

// fieldWords turns the fields of conflicts and refusals into code words.
var fieldWords = map[string]string{
	"exporter_addr": "ExporterAddr", "interface": "Interface", "pcap_path": "PcapPath", "agent": "Agent",
}

// fail writes the error err as the native API reports it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := control.AsError(err)
	if !ok {
		s.internal(w, r, err)
		return
	}
	status, code := http.StatusBadRequest, "InvalidParameter"
	switch {
	case errors.Is(e.Kind, control.ErrNotFound):
		status, code = http.StatusNotFound, "NotFound."+resourceNames[e.Resource]
	case errors.Is(e.Kind, control.ErrInvalid) && e.Missing:
		code = "MissingParameter." + e.Field
	case errors.Is(e.Kind, control.ErrInvalid):
		code = "InvalidParameter." + e.Field
	case errors.Is(e.Kind, control.ErrConflict) && e.Field == "target":
		status, code = http.StatusConflict, "Conflict.Target"
	case errors.Is(e.Kind, control.ErrConflict) && fieldWords[e.Field] != "":
		status, code = http.StatusConflict, "Conflict."+fieldWords[e.Field]
	case errors.Is(e.Kind, control.ErrConflict):
		status, code = http.StatusConflict, "Conflict.AlreadyExists"
	case errors.Is(e.Kind, control.ErrInUse):
		status, code = http.StatusConflict, "Conflict.InUse"
	case errors.Is(e.Kind, control.ErrBusy):
		status, code = http.StatusConflict, "Conflict.Busy"
	case errors.Is(e.Kind, control.ErrQuota):
		status, code = http.StatusForbidden, "QuotaExceeded.FlowLog"
	case errors.Is(e.Kind, control.ErrLastKey):
		status, code = http.StatusConflict, "Conflict.LastAccessKey"
	case errors.Is(e.Kind, control.ErrUpstream):
		status, code = http.StatusBadGateway, "BadGateway.SNMP"
	case errors.Is(e.Kind, control.ErrForbidden):
		status, code = http.StatusForbidden, "Forbidden."+fieldWords[e.Field]
	}
	writeError(w, r, status, strings.TrimSuffix(code, "."), e.Message)
}

// decode reads a JSON object into v, refusing unknown fields, and writes a
// precise 400 when it cannot.
func decode(w http.ResponseWriter, r *http.Request, body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return true
	}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		writeError(w, r, http.StatusBadRequest, "InvalidParameter."+te.Field,
			te.Field+": expected "+te.Type.String()+", got JSON "+te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeError(w, r, http.StatusBadRequest, "UnknownField."+field, "unknown field "+field)
	default:
		writeError(w, r, http.StatusBadRequest, "MalformedJSON", "the body is not a valid JSON object: "+err.Error())
	}
	return false
}

// jsonErrorWriter turns the mux's plain-text 404 and 405 answers into the
// API's JSON error documents.
type jsonErrorWriter struct {
	http.ResponseWriter
	r          *http.Request
	suppressed bool
}

func (j *jsonErrorWriter) WriteHeader(code int) {
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) &&
		strings.HasPrefix(j.Header().Get("Content-Type"), "text/plain") {
		j.suppressed = true
		j.Header().Del("X-Content-Type-Options")
		if code == http.StatusNotFound {
			writeError(j.ResponseWriter, j.r, code, "NotFound.Route", "no such path: "+j.r.URL.Path)
		} else {
			writeError(j.ResponseWriter, j.r, code, "MethodNotAllowed",
				j.r.Method+" is not allowed on "+j.r.URL.Path+"; allowed: "+j.Header().Get("Allow"))
		}
		return
	}
	j.ResponseWriter.WriteHeader(code)
}

func (j *jsonErrorWriter) Write(b []byte) (int, error) {
	if j.suppressed {
		return len(b), nil
	}
	return j.ResponseWriter.Write(b)
}
