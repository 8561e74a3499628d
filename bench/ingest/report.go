package main

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"time"
)

// markdown renders the results as the table BENCHMARKS.md holds, with the
// command and the conditions above it.
func markdown(cfg config, results []result) string {
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	plane := "serve"
	if cfg.agent {
		plane = "agent"
	}
	fmt.Fprintf(&b, "\n%s, %d s per rate, load average at the end %s; %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		int(cfg.duration.Seconds()), strings.Join(strings.Fields(string(load))[:3], " "), measured(cfg))
	fmt.Fprintf(&b, "| offered (flows/s) | offered flows (sent at) | flowlog: decoded | stored | stored/offered | dropped (counted) | sequence lost | socket drops | stored when the replay ended | drain after | spool peak | top-10 query during: median / max | CPU s: %s / sender | nfcapd: stored | stored/offered | CPU s |\n", plane)
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		peer := "– | – | –"
		if !r.peerSkipped {
			peer = fmt.Sprintf("%s | %s | %.1f", thousands(r.peerStored), pct(r.peerStored, r.peer.flows), r.peerCPU.Seconds())
		}
		queries := fmt.Sprintf("%d / %d ms", r.queryP50.Milliseconds(), r.queryMax.Milliseconds())
		if r.queryFailed > 0 {
			queries += fmt.Sprintf(" (%d failed)", r.queryFailed)
		}
		fmt.Fprintf(&b, "| %s | %s (%s/s) | %s | %s | %s | %s | %s | %s | %s | %.0f s | %.0f MB | %s | %.1f / %.1f | %s |\n",
			thousands(int64(r.rate)), thousands(r.flowlog.flows), thousands(int64(r.flowlog.rate())),
			thousands(r.decoded), thousands(r.stored), pct(r.stored, r.flowlog.flows), thousands(r.dropped),
			thousands(r.seqLost), thousands(r.sockDrops), pct(r.liveStored, r.flowlog.flows), r.drain.Seconds(),
			r.spoolPeak/1e6, queries, r.planeCPU.Seconds(), r.senderCPU.Seconds(), peer)
	}
	return b.String()
}

// measured says which process received, stored and was measured.
func measured(cfg config) string {
	store := cmp.Or(cfg.store, "the embedded store")
	if cfg.agent {
		return fmt.Sprintf("measured: `flowlog agent` (collector, spool, metrics, CPU) into %s; `flowlog serve` the control plane only, its CPU not counted", store)
	}
	return fmt.Sprintf("measured: `flowlog serve` (collector, spool, metrics, CPU) into %s", store)
}

func pct(n, of int64) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(of))
}

// thousands formats n with commas: 1,000,000.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
