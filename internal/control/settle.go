package control

import (
	"context"
)

// Checker tells whether a flow log runs as configured: reason is "" when it
// does, or what users can act on when it cannot. ready is false while the
// flow log has not been applied yet, which leaves its state as it is. The
// data plane supplies the Checker that looks at real interfaces and sinks.
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

// Settle moves flow logs out of transitional states once: pending and
// modifying become available (or failed with the checker's reason), failed
// ones are checked again, and deleting ones are removed.
func (s *Service) Settle(ctx context.Context, check Checker) error {
	all, err := s.AllFlowLogs(ctx)
	if err != nil {
		return err
	}
	for _, f := range all {
		switch f.State {
		case StateDeleting:
			if _, err := s.db.ExecContext(ctx, `DELETE FROM flow_logs WHERE id = ? AND state = ?`,
				f.ID, StateDeleting); err != nil {
				return err
			}
		case StatePending, StateModifying, StateFailed, StateAvailable:
			reason, ready := check(ctx, f)
			if !ready {
				continue
			}
			state := StateAvailable
			if reason != "" {
				state = StateFailed
			}
			if state == f.State && reason == f.StateReason {
				continue
			}
			// Only move from the state we saw, so a concurrent change wins.
			if _, err := s.db.ExecContext(ctx, `UPDATE flow_logs SET state = ?, state_reason = ?
				WHERE id = ? AND state = ? AND updated_at = ?`, state, reason, f.ID, f.State,
				unixNano(f.UpdatedAt)); err != nil {
				return err
			}
		}
	}
	return nil
}
