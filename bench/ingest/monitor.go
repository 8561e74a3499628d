package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"flowlog/internal/store/query"
)

// monitor watches a server during a replay: every 5 s it reads the
// spool's size (of the process running the gateway) and asks the question a user watching the console asks
// (the top 10 sources by bytes over the last 15 minutes), timing it.
type monitor struct {
	srv      *server
	stop     chan struct{}
	done     sync.WaitGroup
	peak     float64         // largest flowlog_spool_bytes seen
	latency  []time.Duration // of each top-10 query
	failures int             // top-10 queries that failed
}

func watch(ctx context.Context, srv *server) *monitor {
	m := &monitor{srv: srv, stop: make(chan struct{})}
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
			if met, err := srv.plane.metrics(); err == nil {
				m.peak = max(m.peak, met["flowlog_spool_bytes"])
			}
			start := time.Now()
			if err := srv.top10(ctx); err != nil {
				m.failures++
				continue
			}
			m.latency = append(m.latency, time.Since(start))
		}
	}()
	return m
}

// end stops watching.
func (m *monitor) end() {
	close(m.stop)
	m.done.Wait()
}

// percentile returns the p-th percentile (0–100) of the query latencies.
func (m *monitor) percentile(p int) time.Duration {
	if len(m.latency) == 0 {
		return 0
	}
	l := slices.Clone(m.latency)
	slices.Sort(l)
	return l[min(len(l)-1, len(l)*p/100)]
}

// top10 asks for the 10 sources with the most bytes over the last 15
// minutes.
func (s *server) top10(ctx context.Context) error {
	now := time.Now()
	req := query.Request{Since: now.Add(-15 * time.Minute), Until: now, GroupBy: []string{"srcaddr"},
		Aggregates: []query.Aggregate{{Func: "sum", Field: "bytes"}}, OrderBy: "sum_bytes", Limit: 10}
	var resp query.Response
	return s.api.JSON(ctx, "POST", "/v1/log-streams/"+s.stream+"/query", nil, req, &resp)
}
