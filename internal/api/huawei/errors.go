package huawei

import (
	"errors"
	"net/http"

	"flowlog/internal/api/auth"
	"flowlog/internal/api/front"
	"flowlog/internal/control"
)

// Error is an answer in Huawei Cloud's error shape.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, message, detail string) *Error {
	if detail != "" {
		message += " " + detail
	}
	return &Error{Status: status, Code: code, Message: message}
}

// The Enterprise Router error codes flow logs use, and the API gateway's
// authentication codes.
func invalid(detail string) *Error {
	return errorf(http.StatusBadRequest, "ER.04009005", "Invalid parameters.", detail)
}

func unsupportedResource(detail string) *Error {
	return errorf(http.StatusBadRequest, "ER.04008500", "Flow logs are not supported by the resource type.", detail)
}

func flowLogNotFound(detail string) *Error {
	return errorf(http.StatusBadRequest, "ER.04008501", "The flow log task does not exist.", detail)
}

func busy(detail string) *Error {
	return errorf(http.StatusBadRequest, "ER.04008502", "The flow log task is being operated.", detail)
}

func exists(detail string) *Error {
	return errorf(http.StatusBadRequest, "ER.04008503", "The flow log task already exists.", detail)
}

func quota(detail string) *Error {
	return errorf(http.StatusBadRequest, "ER.04009008", "Insufficient quota.", detail)
}

func routerNotFound(detail string) *Error {
	return errorf(http.StatusNotFound, "ER.04041001", "This enterprise router does not exist.", detail)
}

func attachmentNotFound(detail string) *Error {
	return errorf(http.StatusNotFound, "ER.04044001", "This attachment does not exist.", detail)
}

func unauthenticated(detail string) *Error {
	return errorf(http.StatusUnauthorized, "APIGW.0301", "Incorrect IAM authentication information:", detail)
}

func forbidden(detail string) *Error {
	return errorf(http.StatusForbidden, "APIGW.0302", "The IAM user is not authorized to access the API:", detail)
}

// authError answers a failed signature check. Body substitution and replays
// have no API gateway code of their own, so they carry flowlog's (the same
// as on /v1); a full replay memory is the gateway's throttling answer.
func authError(err error) error {
	var f *auth.Failure
	if !errors.As(err, &f) {
		return err
	}
	switch f.Reason {
	case auth.ContentHashMismatch, auth.Replay:
		return errorf(http.StatusUnauthorized, "Auth."+string(f.Reason), "Incorrect IAM authentication information:", f.Message)
	case auth.TooManyRequests:
		return errorf(http.StatusTooManyRequests, "APIGW.0308", "The throttling threshold has been reached:", f.Message)
	}
	return unauthenticated(f.Message)
}

// bodyError answers a body that could not be read.
func bodyError(err error) error {
	switch {
	case errors.Is(err, front.ErrTooLarge):
		return errTooLarge
	case errors.Is(err, front.ErrBusy):
		return errorf(http.StatusServiceUnavailable, "ServerBusy", "The server is busy:", err.Error()+".")
	case errors.Is(err, front.ErrTimeout):
		return errorf(http.StatusRequestTimeout, "RequestTimeout", "Request timeout:", err.Error()+".")
	}
	return invalid("Reading the request body: " + err.Error())
}

var (
	errTooLarge = errorf(http.StatusRequestEntityTooLarge, "ER.04009005", "Invalid parameters.", "The request body is too large.")
	errInternal = errorf(http.StatusInternalServerError, "ER.05009000", "Internal error; see the server log.", "")
)

// translate turns a control-plane error into this API's answer; errors that
// are not domain errors stay as they are (and become internal errors).
func translate(err error) error {
	e, ok := control.AsError(err)
	if !ok {
		return err
	}
	switch {
	case errors.Is(e.Kind, control.ErrNotFound):
		switch e.Resource {
		case "flow_log":
			return flowLogNotFound(e.Message + ".")
		case "gateway":
			return routerNotFound(e.Message + ".")
		case "attachment":
			return attachmentNotFound(e.Message + ".")
		}
		return invalid(e.Message + ".")
	case errors.Is(e.Kind, control.ErrBusy), errors.Is(e.Kind, control.ErrInUse):
		return busy(e.Message + ".")
	case errors.Is(e.Kind, control.ErrConflict):
		return exists(e.Message + ".")
	case errors.Is(e.Kind, control.ErrQuota):
		return quota(e.Message + ".")
	case errors.Is(e.Kind, control.ErrForbidden):
		return forbidden(e.Message + ".")
	}
	return invalid(e.Message + ".")
}
