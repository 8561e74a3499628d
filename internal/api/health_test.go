package api

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"flowlog/internal/collect"
)

// TestExporterHealth: the verdicts and their reasons, from the counters.
func TestExporterHealth(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	addr := netip.MustParseAddr("192.0.2.1")
	// Every 10 s for an hour: stale after 60 s (5 gaps is less).
	steady := collect.Counters{Exporter: addr, Packets: 361, First: now.Add(-time.Hour), Last: now.Add(-5 * time.Second)}
	with := func(f func(*collect.Counters)) collect.Counters { c := steady; f(&c); return c }
	for _, tc := range []struct {
		name    string
		c       collect.Counters
		claimed bool
		want    string
		reason  string
	}{
		{"unclaimed", steady, false, HealthUnused, "no running flow log"},
		{"nothing yet", collect.Counters{Exporter: addr}, true, HealthSilent,
			"no datagram received from 192.0.2.1 yet (the collector listens on UDP [::]:2055)"},
		{"ok", steady, true, HealthOK, "last datagram 5s ago"},
		{"silent 61 s", with(func(c *collect.Counters) { c.Last = now.Add(-61 * time.Second) }), true, HealthStale,
			"no datagram for 1m1s (stale after 1m0s)"},
		// Every 2 min for a day: stale after 10 min, not before.
		{"slow, 9 min", with(func(c *collect.Counters) {
			c.Packets, c.First, c.Last = 721, now.Add(-24*time.Hour-9*time.Minute), now.Add(-9*time.Minute)
		}), true, HealthOK, "last datagram 9m0s ago"},
		{"slow, 11 min", with(func(c *collect.Counters) {
			c.Packets, c.First, c.Last = 721, now.Add(-24*time.Hour-11*time.Minute), now.Add(-11*time.Minute)
		}), true, HealthStale, "stale after 10m"},
		{"rejected lately", with(func(c *collect.Counters) {
			c.ErrorAt, c.LastError, c.LossAt = now.Add(-time.Minute), "v9 header: short", now
		}), true, HealthErrors, "datagram rejected 1m0s ago: v9 header: short"},
		{"rejected long ago", with(func(c *collect.Counters) { c.ErrorAt = now.Add(-6 * time.Minute) }), true, HealthOK, ""},
		{"template refused", with(func(c *collect.Counters) { c.TemplateTroubleAt = now.Add(-time.Second) }), true,
			HealthErrors, "template refused"},
		{"losing", with(func(c *collect.Counters) { c.LossAt, c.SequenceLost = now.Add(-2*time.Second), 17 }), true,
			HealthLosing, "2s ago (17 lost in all)"},
	} {
		got, reason := health(tc.c, tc.claimed, []string{"[::]:2055"}, now)
		if got != tc.want || !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: %s %q, want %s with %q", tc.name, got, reason, tc.want, tc.reason)
		}
	}
	if got, reason := health(steady, true, nil, now); got != HealthSilent || !strings.Contains(reason, "collector is off") {
		t.Errorf("without a collector: %s %q", got, reason)
	}
}
