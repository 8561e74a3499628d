package dataplane

import (
	"context"
	"errors"
	"fmt"

	"flowlog/internal/control"
)

// unitKey names one observation point of one flow log: an attachment of a
// gateway, or the gateway as a whole (attachment "").
type unitKey struct {
	account, flowLog, gateway, attachment string
}

// reason is why a flow log cannot run, as users can act on it.
type reason string

func (r reason) Error() string { return string(r) }

// point is what a unit observes.
type point struct {
	gw  control.Gateway
	att control.Attachment // zero: the whole gateway
	// For a whole exporter gateway: its attachments by ifIndex, to attribute
	// records to them.
	byIfIndex map[uint32]string
}

// desired is what should run for one flow log.
type desired struct {
	fl     control.FlowLog
	points map[unitKey]point
	reason string // why it cannot run as configured; "" when it can
}

// wanted reads every flow log that should run: enabled, not being deleted.
// Disabled flow logs are listed with no points, so they settle as available.
func (p *Plane) wanted(ctx context.Context) (map[string]*desired, error) {
	all, err := p.cfg.Control.AllFlowLogs(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*desired, len(all))
	fences := map[string]control.Fence{} // by account, read once per round
	for _, f := range all {
		if f.State == control.StateDeleting {
			continue
		}
		d := &desired{fl: f, points: map[unitKey]point{}}
		out[f.ID] = d
		if !f.Enabled {
			continue
		}
		fence, ok := fences[f.AccountID]
		if !ok {
			if fence, err = p.cfg.Control.FenceOf(ctx, f.AccountID); err != nil {
				return nil, err
			}
			fences[f.AccountID] = fence
		}
		for _, t := range f.Targets {
			if err := p.addPoints(ctx, d, t, fence); err != nil {
				var r reason
				if _, ok := control.AsError(err); !ok && !errors.As(err, &r) {
					return nil, err
				}
				d.reason = err.Error()
			}
		}
	}
	return out, nil
}

// addPoints adds the observation points of target t. A point the account's
// fence no longer allows (its grant was withdrawn) is an error: the flow
// log stops, failed with the fence's reason.
func (p *Plane) addPoints(ctx context.Context, d *desired, t control.Target, fence control.Fence) error {
	account := d.fl.AccountID
	gw, err := p.cfg.Control.GetGateway(ctx, account, t.GatewayID)
	if err != nil {
		return err
	}
	if gw.Kind == control.KindExporter {
		if err := fence.Exporter(gw.Exporter); err != nil {
			return err
		}
	}
	add := func(att control.Attachment) error {
		if gw.Kind == control.KindCapture {
			if err := fence.Interface(att.Interface); err != nil {
				return err
			}
		}
		d.points[unitKey{account, d.fl.ID, gw.ID, att.ID}] = point{gw: gw, att: att}
		return nil
	}
	if t.AttachmentID != "" {
		att, err := p.cfg.Control.GetAttachment(ctx, account, gw.ID, t.AttachmentID)
		if err != nil {
			return err
		}
		return add(att)
	}
	if gw.Kind == control.KindPcap {
		return add(control.Attachment{}) // a replay is observed whole
	}
	atts, err := p.cfg.Control.ListAttachments(ctx, account, gw.ID)
	if err != nil {
		return err
	}
	if gw.Kind == control.KindExporter {
		pt := point{gw: gw, byIfIndex: map[uint32]string{}}
		for _, a := range atts {
			pt.byIfIndex[a.IfIndex] = a.ID
		}
		d.points[unitKey{account, d.fl.ID, gw.ID, ""}] = pt
		return nil
	}
	if len(atts) == 0 {
		return reason(fmt.Sprintf("gateway %s has no attachments: attach the interfaces to capture on", gw.ID))
	}
	for _, a := range atts {
		if err := add(a); err != nil {
			return err
		}
	}
	return nil
}
