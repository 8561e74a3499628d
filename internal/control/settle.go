package control

import (
	"context"
	"log/slog"
	"time"
)

// Checker tells whether a flow log can run as configured: "" when it can, or
// a reason users can act on when it cannot. The data plane supplies one that
// looks at real interfaces and sinks.
type Checker func(ctx context.Context, f FlowLog) (reason string)

// CheckOutputs is the control plane's own Checker: the flow log's log stream
// must still exist.
func (s *Service) CheckOutputs(ctx context.Context, f FlowLog) string {
	if sls, _ := f.Outputs(); sls {
		if _, err := s.GetLogStream(ctx, f.AccountID, f.LogStreamID); err != nil {
			return "log stream " + f.LogStreamID + " no longer exists"
		}
	}
	return ""
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
			state, reason := StateAvailable, check(ctx, f)
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

// RunSettler settles after every change and every interval, until ctx ends.
func (s *Service) RunSettler(ctx context.Context, check Checker, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Settle(ctx, check); err != nil && ctx.Err() == nil {
			log.Error("settling flow-log states", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		case <-t.C:
		}
	}
}
