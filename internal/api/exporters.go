package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"flowlog/internal/collect"
	"flowlog/internal/control"
	"flowlog/internal/snmp"
)

// Exporters is what the data plane knows of the routers that exporter
// gateways name.
type Exporters interface {
	// ExporterStats returns the collector's counters for the router at
	// addr, and whether a running flow log of account's claims it; the
	// counters are zero when it does not.
	ExporterStats(account string, addr netip.Addr) (collect.Counters, bool)
	// CollectorAddrs are where the collector listens; none when it is off.
	CollectorAddrs() []string
	// SNMPStatus says how the polling of the router at addr for its
	// interfaces goes, if this server polls it.
	SNMPStatus(addr netip.Addr) (snmp.Status, bool)
}

// Health verdicts, worst first after the two that say nothing arrives.
const (
	HealthUnused = "unused" // no running flow log uses the gateway: datagrams are ignored
	HealthSilent = "silent" // claimed and no datagram yet, or the collector is off
	HealthStale  = "stale"  // datagrams stopped
	HealthErrors = "errors" // datagrams rejected, templates refused or data sets dropped lately
	HealthLosing = "losing" // sequence numbers show losses lately
	// Records arrive with no sampling rate announced and the gateway sets
	// no override: they are stored as unsampled, which may be wrong.
	HealthNoSamplingRate = "no_sampling_rate"
	HealthOK             = "ok"
)

const (
	// healthWindow is how long a problem keeps an exporter's verdict.
	healthWindow = 5 * time.Minute
	// An exporter is stale after staleGaps mean gaps between its
	// datagrams without one, and never before staleFloor: routers send
	// at least a template refresh or an active-timeout export a minute.
	staleGaps  = 5
	staleFloor = time.Minute
)

// Exporter is one router as GET /v1/exporters shows it.
type Exporter struct {
	GatewayID    string `json:"gateway_id"`
	GatewayName  string `json:"gateway_name"`
	ExporterAddr string `json:"exporter_addr"`
	Claimed      bool   `json:"claimed"`
	Seen         bool   `json:"seen"`
	Protocol     string `json:"protocol,omitempty"`

	Packets             uint64 `json:"packets"`
	Records             uint64 `json:"records"`
	DecodeErrors        uint64 `json:"decode_errors"`
	SequenceLost        uint64 `json:"sequence_lost"`
	UnknownTemplateSets uint64 `json:"unknown_template_sets"`
	DroppedSets         uint64 `json:"dropped_sets"`
	TemplatesRefused    uint64 `json:"templates_refused"`
	Templates           int    `json:"templates"`
	CounterSamples      uint64 `json:"counter_samples"`
	ClampedRecords      uint64 `json:"clamped_records"`
	SamplingMin         uint32 `json:"sampling_interval_min"`
	SamplingMax         uint32 `json:"sampling_interval_max"`
	// The gateway's override, applied when the router announces no rate.
	SamplingOverride int `json:"sampling_interval_override"`
	// The last datagram's records had no rate and the gateway sets no
	// override: they were stored as unsampled, and so will the next. SamplingMissingRecords counts such
	// records in all.
	SamplingMissing        bool   `json:"sampling_missing"`
	SamplingMissingRecords uint64 `json:"sampling_missing_records"`

	FirstSeen *time.Time `json:"first_seen,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	LastError string     `json:"last_error,omitempty"`

	Health       string `json:"health"`
	HealthReason string `json:"health_reason"`

	SNMP *snmp.Status `json:"snmp,omitempty"`
}

// listExporters answers GET /v1/exporters: the routers the caller's
// exporter gateways name (one gateway's with ?gateway_id), with what the
// collector has counted from them and a verdict on their health.
func (s *Server) listExporters(w http.ResponseWriter, r *http.Request, c caller) {
	if s.cfg.Exporters == nil {
		writeError(w, r, http.StatusServiceUnavailable, "ExportersUnavailable", "this server runs no collector")
		return
	}
	var gs []control.Gateway
	var err error
	if id := r.URL.Query().Get("gateway_id"); id != "" {
		var g control.Gateway
		g, err = s.svc.GetGateway(r.Context(), c.account, id)
		gs = []control.Gateway{g}
	} else {
		gs, err = s.svc.ListGateways(r.Context(), c.account)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []Exporter{}
	now, listens := s.cfg.Now(), s.cfg.Exporters.CollectorAddrs()
	for _, g := range gs {
		addr, err := netip.ParseAddr(g.Exporter)
		if g.Kind != control.KindExporter || err != nil {
			continue
		}
		st, claimed := s.cfg.Exporters.ExporterStats(c.account, addr)
		row := exporterRow(g, st, claimed, listens, now)
		if g.SNMPConfigured {
			if ps, ok := s.cfg.Exporters.SNMPStatus(addr); ok {
				row.SNMP = &ps
			}
		}
		out = append(out, row)
	}
	writeJSON(w, http.StatusOK, map[string]any{"exporters": out})
}

func exporterRow(g control.Gateway, c collect.Counters, claimed bool, listens []string, now time.Time) Exporter {
	// An override set since is applied to what arrives next.
	c.LastSamplingMissing = c.LastSamplingMissing && g.SamplingInterval == 0
	e := Exporter{GatewayID: g.ID, GatewayName: g.Name, ExporterAddr: g.Exporter, Claimed: claimed,
		Seen: !c.First.IsZero(), Protocol: c.Protocol, Packets: c.Packets, Records: c.Records,
		DecodeErrors: c.DecodeErrors, SequenceLost: c.SequenceLost, UnknownTemplateSets: c.UnknownTemplates,
		DroppedSets: c.Dropped, TemplatesRefused: c.TemplatesRefused, Templates: c.Templates,
		CounterSamples: c.CounterSamples, ClampedRecords: c.Clamped, SamplingMin: c.SamplingMin,
		SamplingMax: c.SamplingMax, SamplingOverride: g.SamplingInterval, SamplingMissing: c.LastSamplingMissing,
		SamplingMissingRecords: c.SamplingMissing, LastError: c.LastError}
	if e.Seen {
		first, last := c.First.UTC(), c.Last.UTC()
		e.FirstSeen, e.LastSeen = &first, &last
	}
	e.Health, e.HealthReason = health(c, claimed, listens, now)
	return e
}

// health is an exporter's verdict and the reason for it, as users can act
// on it; listens are the collector's addresses.
func health(c collect.Counters, claimed bool, listens []string, now time.Time) (string, string) {
	recent := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) <= healthWindow }
	switch {
	case len(listens) == 0:
		return HealthSilent, "the server's collector is off (netflow_listen and sflow_listen)"
	case !claimed:
		return HealthUnused, "no running flow log uses this gateway: the collector ignores datagrams from " +
			c.Exporter.String()
	case c.First.IsZero():
		return HealthSilent, fmt.Sprintf("no datagram received from %s yet (the collector listens on UDP %s)",
			c.Exporter, strings.Join(listens, ", "))
	}
	if silent, after := now.Sub(c.Last), staleAfter(c); silent > after {
		return HealthStale, fmt.Sprintf("no datagram for %s (stale after %s)", ago(silent), ago(after))
	}
	switch {
	case recent(c.ErrorAt):
		return HealthErrors, fmt.Sprintf("datagram rejected %s ago: %s", ago(now.Sub(c.ErrorAt)), c.LastError)
	case recent(c.TemplateTroubleAt):
		return HealthErrors, fmt.Sprintf("template refused or data set dropped for want of one %s ago",
			ago(now.Sub(c.TemplateTroubleAt)))
	case recent(c.LossAt):
		return HealthLosing, fmt.Sprintf("sequence numbers showed a loss %s ago (%d lost in all)",
			ago(now.Sub(c.LossAt)), c.SequenceLost)
	case c.LastSamplingMissing:
		return HealthNoSamplingRate, fmt.Sprintf("%s announces no sampling rate for its records (%d so far), so they "+
			"are stored as unsampled: if it samples, have it announce its rate (sampling options data, or "+
			"samplingInterval in its records) or set the gateway's sampling_interval to its 1:N; if it does not, "+
			"set sampling_interval 1", c.Exporter, c.SamplingMissing)
	}
	return HealthOK, fmt.Sprintf("last datagram %s ago", ago(now.Sub(c.Last)))
}

// staleAfter is how long an exporter may stay silent: staleGaps times its
// mean gap between datagrams, at least staleFloor.
func staleAfter(c collect.Counters) time.Duration {
	if c.Packets < 2 {
		return staleFloor
	}
	gap := c.Last.Sub(c.First) / time.Duration(c.Packets-1)
	return max(staleFloor, staleGaps*gap)
}

// ago rounds d for reading: to seconds, or to minutes past an hour.
func ago(d time.Duration) string {
	if d >= time.Hour {
		return d.Round(time.Minute).String()
	}
	return max(d, 0).Round(time.Second).String()
}
