package dataplane

import (
	"fmt"
	"maps"

	"flowlog/internal/desired"
)

// unitKey names one observation point of one flow log: an attachment of a
// gateway, or the gateway as a whole (attachment "").
type unitKey struct {
	account, flowLog, gateway, attachment string
}

// reason is why a flow log cannot run, as users can act on it.
type reason string

func (r reason) Error() string { return string(r) }

// point is what a unit observes: only what its source depends on, so that
// a unit restarts when one of these changes and for nothing else (a
// gateway's name or description is not here).
type point struct {
	where
	// For a whole exporter gateway: its attachments by ifIndex, to attribute
	// records to them.
	byIfIndex map[uint32]string
}

type where struct {
	gateway, kind string
	pcapPath      string
	pcapPace      string
	pcapFenced    bool
	exporter      string
	att           string // the attachment observed; "" for the whole gateway
	iface         string // the attachment's interface (capture)
	ifIndex       uint32 // the attachment's ifIndex (exporter)
	sampling      uint32 // exporter: 1:N when the router announces none; 0 for none
}

func (pt point) same(o point) bool {
	return pt.where == o.where && maps.Equal(pt.byIfIndex, o.byIfIndex)
}

// want is what should run for one flow log.
type want struct {
	fl     desired.FlowLog
	points map[unitKey]point
	reason string // why it cannot run as configured; "" when it can
}

// wanted is what should run for each flow log of st. Disabled flow logs
// have no points, so they settle as available.
func wanted(st *desired.State) map[string]*want {
	gws := make(map[string]*desired.Gateway, len(st.Gateways))
	for i := range st.Gateways {
		gws[st.Gateways[i].ID] = &st.Gateways[i]
	}
	out := make(map[string]*want, len(st.FlowLogs))
	for _, f := range st.FlowLogs {
		d := &want{fl: f, points: map[unitKey]point{}, reason: f.Refused}
		out[f.ID] = d
		if !f.Enabled || d.reason != "" {
			continue
		}
		for _, t := range f.Targets {
			if err := d.addPoints(gws[t.GatewayID], t); err != nil {
				d.reason = err.Error()
			}
		}
	}
	return out
}

// addPoints adds the observation points of target t of gateway gw.
func (d *want) addPoints(gw *desired.Gateway, t desired.Target) error {
	if gw == nil {
		return reason(fmt.Sprintf("gateway %s no longer exists", t.GatewayID))
	}
	key := unitKey{d.fl.AccountID, d.fl.ID, gw.ID, ""}
	w := where{gateway: gw.ID, kind: gw.Kind, pcapPath: gw.PcapPath, pcapPace: gw.PcapPace,
		pcapFenced: gw.PcapFenced, exporter: gw.Exporter, sampling: uint32(max(gw.SamplingInterval, 0))}
	add := func(a desired.Attachment) {
		w := w
		w.att, w.iface, w.ifIndex = a.ID, a.Interface, a.IfIndex
		key.attachment = a.ID
		d.points[key] = point{where: w}
	}
	switch {
	case t.AttachmentID != "":
		for _, a := range gw.Attachments {
			if a.ID == t.AttachmentID {
				add(a)
				return nil
			}
		}
		return reason(fmt.Sprintf("attachment %s of gateway %s no longer exists", t.AttachmentID, gw.ID))
	case gw.Kind == desired.KindPcap:
		add(desired.Attachment{}) // a replay is observed whole
	case gw.Kind == desired.KindExporter:
		pt := point{where: w, byIfIndex: map[uint32]string{}}
		for _, a := range gw.Attachments {
			pt.byIfIndex[a.IfIndex] = a.ID
		}
		d.points[key] = pt
	case len(gw.Attachments) == 0:
		return reason(fmt.Sprintf("gateway %s has no attachments: attach the interfaces to capture on", gw.ID))
	default:
		for _, a := range gw.Attachments {
			add(a)
		}
	}
	return nil
}
