package control

import (
	"errors"
	"fmt"
)

// Error kinds callers branch on. Each API dialect maps them (with Error.Field)
// to its own codes and HTTP statuses.
var (
	ErrNotFound  = errors.New("not found")           // unknown id, or owned by another account
	ErrInvalid   = errors.New("invalid parameter")   // a value is missing or out of range
	ErrConflict  = errors.New("conflict")            // the operation clashes with existing state
	ErrInUse     = errors.New("in use")              // refused while something depends on it
	ErrBusy      = errors.New("being operated")      // refused in a transitional state
	ErrQuota     = errors.New("quota exceeded")      // the account is at its limit
	ErrForbidden = errors.New("operation forbidden") // the caller may not do this
	ErrLastKey   = errors.New("last enabled key")    // would lock the account out
	ErrUpstream  = errors.New("upstream failure")    // a router (SNMP) did not answer as asked
	// ErrDeleting is the ErrBusy of a flow log being deleted: dialects that
	// show no deleting state (Alibaba) report it as not found.
	ErrDeleting = fmt.Errorf("%w: being deleted", ErrBusy)
)

// Error is a domain error: a kind, the field (parameter) it concerns, whether
// the field was missing (rather than wrong), and a message for people.
type Error struct {
	Kind     error
	Field    string // native field name, e.g. "active_aging"; "" if none
	Missing  bool   // the field is required and was not given
	Resource string // for ErrNotFound: "flow_log", "gateway", …
	Message  string
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

func missing(field string) error {
	return &Error{Kind: ErrInvalid, Field: field, Missing: true,
		Message: fmt.Sprintf("%s is required", field)}
}

func illegal(field, format string, args ...any) error {
	return &Error{Kind: ErrInvalid, Field: field,
		Message: fmt.Sprintf("%s: ", field) + fmt.Sprintf(format, args...)}
}

func notFound(resource, id string) error {
	return &Error{Kind: ErrNotFound, Resource: resource,
		Message: fmt.Sprintf("%s %q does not exist", resource, id)}
}

func conflict(format string, args ...any) error {
	return &Error{Kind: ErrConflict, Message: fmt.Sprintf(format, args...)}
}

func inUse(format string, args ...any) error {
	return &Error{Kind: ErrInUse, Message: fmt.Sprintf(format, args...)}
}

func forbidden(field, format string, args ...any) error {
	return &Error{Kind: ErrForbidden, Field: field, Message: fmt.Sprintf(format, args...)}
}

// AsError returns the domain error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
