package control

import (
	"context"

	"flowlog/internal/desired"
)

// Checker tells whether a flow log runs as configured: reason is "" when it
// does, or what users can act on when it cannot. ready is false while the
// flow log has not been applied yet, which leaves its state as it is.
type Checker func(ctx context.Context, f FlowLog) (reason string, ready bool)

// CheckOutputs is the control plane's own Checker: the flow log's log stream
// must still exist.
func (s *Service) CheckOutputs(ctx context.Context, f FlowLog) (string, bool) {
	if sls, _ := f.Outputs(); sls {
		if _, err := s.GetLogStream(ctx, f.AccountID, f.LogStreamID); err != nil {
			return "log stream " + f.LogStreamID + " no longer exists", true
		}
	}
	return "", true
}

// Settle reports, as a data plane that applied the current version would,
// what check says of every flow log: for a server without a data plane, and
// for tests of the API's states.
func (s *Service) Settle(ctx context.Context, check Checker) error {
	st := desired.Status{Version: s.Version()}
	all, err := s.AllFlowLogs(ctx)
	if err != nil {
		return err
	}
	for _, f := range all {
		if reason, ready := check(ctx, f); ready && f.State != StateDeleting {
			st.FlowLogs = append(st.FlowLogs, desired.FlowLogStatus{ID: f.ID, Reason: reason})
		}
	}
	return s.Report(ctx, st)
}
