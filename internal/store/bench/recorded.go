package bench

import (
	"fmt"
	"time"

	"flowlog/bench/recording"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
)

// Recorded is the flows of a real exporter's IPFIX: softflowd's export of
// the synthetic 5M-packet capture (bench/recording, the recording
// bench/ingest replays), decoded once, datagram by datagram.
type Recorded struct {
	grams  [][]flow.Record // flow records of each datagram, in order
	latest []int64         // each datagram's latest flow end, Unix ms
	lag    int64           // the most any datagram's flows end before its latest
	flows  int
}

// LoadRecorded decodes the recording at path (made from the capture
// first, with softflowd, if missing).
func LoadRecorded(path string, logf func(string, ...any)) (*Recorded, error) {
	grams, err := recording.LoadOrCapture(recording.DefaultPcap, path, logf)
	if err != nil {
		return nil, err
	}
	r := &Recorded{}
	sess := netflow.NewSession(netflow.SessionConfig{})
	for i, g := range grams {
		recs, _, err := sess.Decode(g, time.Now(), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: datagram %d: %w", path, i, err)
		}
		if len(recs) == 0 { // templates and options only
			continue
		}
		latest, earliest := recs[0].End, recs[0].End
		for _, rec := range recs {
			latest, earliest = max(latest, rec.End), min(earliest, rec.End)
		}
		r.grams = append(r.grams, recs)
		r.latest = append(r.latest, latest)
		r.lag = max(r.lag, latest-earliest)
		r.flows += len(recs)
	}
	if r.flows == 0 {
		return nil, fmt.Errorf("%s: no flow records", path)
	}
	return r, nil
}

// Flows is the number of flow records in one pass over the recording.
func (r *Recorded) Flows() int { return r.flows }

// Replay hands fn n records in batches of at most batch, in the order a
// collector receives them when the recording is replayed in a loop at
// n/span flows per second from start: each datagram's flows are moved in
// time so that the latest ends when the datagram is sent, as
// bench/ingest's replay does in real time. Sending starts late enough
// that every record ends within [start, start+span). Records carry
// stamp's identity fields. fn must not keep the batch: it is reused.
func (r *Recorded) Replay(n int, start time.Time, span time.Duration, batch int, stamp flow.Record,
	fn func([]flow.Record) error) error {
	t0 := start.UnixMilli() + r.lag
	step := float64(span.Milliseconds()-r.lag-1) / float64(n)
	out := make([]flow.Record, 0, batch)
	for sent, g := 0, 0; sent < n; g = (g + 1) % len(r.grams) {
		shift := t0 + int64(float64(sent)*step) - r.latest[g]
		for _, rec := range r.grams[g] {
			if sent == n {
				break
			}
			rec.AccountID, rec.FlowLogID, rec.GatewayID, rec.InterfaceID = stamp.AccountID, stamp.FlowLogID, stamp.GatewayID, stamp.InterfaceID
			rec.Action, rec.LogStatus = stamp.Action, stamp.LogStatus
			rec.Start, rec.End = rec.Start+shift, rec.End+shift
			out = append(out, rec)
			sent++
			if len(out) == batch {
				if err := fn(out); err != nil {
					return err
				}
				out = out[:0]
			}
		}
	}
	if len(out) > 0 {
		return fn(out)
	}
	return nil
}
