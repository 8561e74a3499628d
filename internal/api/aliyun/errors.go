package aliyun

import (
	"errors"
	"fmt"
	"net/http"

	"flowlog/internal/api/front"
)

// Error is an answer in Alibaba's RPC error shape: an HTTP status, a code
// the SDKs and scripts branch on, and a message for people.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// badRequest is the usual 400 answer.
func badRequest(code, message string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: message}
}

// Errors of the RPC gateway: authentication, common parameters, routing.
var (
	errAccessKeyNotFound = &Error{http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found."}
	errAccessKeyInactive = &Error{http.StatusBadRequest, "InvalidAccessKeyId.Inactive", "Specified access key is disabled."}
	errTimestampExpired  = badRequest("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
	errTimestampFormat   = badRequest("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
	errNonceUsed         = badRequest("SignatureNonceUsed", "Specified signature nonce was used already.")
	errSignatureMethod   = badRequest("InvalidSignatureMethod", "Specified signature method is not supported.")
	errSignatureVersion  = badRequest("InvalidSignatureVersion", "Specified signature version is not supported.")
	errVersion           = badRequest("InvalidVersion", "Specified parameter Version is not valid.")
	errActionNotFound    = &Error{http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."}
	errMethod            = &Error{http.StatusMethodNotAllowed, "UnsupportedHTTPMethod", "Specified HTTP method is not supported; use GET or POST."}
	errBodyTooLarge      = &Error{http.StatusRequestEntityTooLarge, "InvalidParameter.BodyTooLarge", "The request body is too large."}
	errBodyTimeout       = &Error{http.StatusRequestTimeout, "RequestTimeout", "The request body did not arrive in time."}
	errBadForm           = badRequest("InvalidParameter", "The request parameters could not be parsed.")
	errBusy              = &Error{http.StatusServiceUnavailable, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."}
	errFeatureSTS        = &Error{http.StatusForbidden, "FeatureNotSupport", "Security tokens (STS) and bearer tokens are not supported; sign requests with an access key."}
	errInternal          = &Error{http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error, exception or failure."}
)

// bodyError answers a body that could not be read.
func bodyError(err error) *Error {
	switch {
	case errors.Is(err, front.ErrTooLarge):
		return errBodyTooLarge
	case errors.Is(err, front.ErrBusy):
		return errBusy
	case errors.Is(err, front.ErrTimeout):
		return errBodyTimeout
	}
	return errBadForm
}

// missingCommon answers a missing common parameter (AccessKeyId, Timestamp …).
func missingCommon(name string) *Error {
	return badRequest("Missing"+name, fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", name))
}

// signatureMismatch carries the server's string to sign after the marker the
// Alibaba SDKs look for, so a client can tell a wrong secret (same string)
// from a canonicalisation bug (different string).
func signatureMismatch(stringToSign string) *Error {
	return badRequest("SignatureDoesNotMatch",
		"Specified signature is not matched with our calculation. server string to sign is:"+stringToSign)
}
