// Package agent is the control plane as a remote data plane (flowlog
// agent) sees it: the server's agent endpoints, over signed HTTP.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"flowlog/internal/client"
	"flowlog/internal/desired"
)

// StateFile is where, in the agent's data dir, the last desired state taken
// from the server is kept: an agent restarted while the server is away
// runs on it.
const StateFile = "desired.json"

// Remote is a dataplane.Control over the server's agent endpoints.
type Remote struct {
	c    *client.Client
	name string
	dir  string        // where StateFile is kept; "" for nowhere
	wait time.Duration // how long the server may hold a long poll
	log  *slog.Logger

	mu     sync.Mutex
	served bool // a state was given since the start
}

// New returns the control plane at c as agent name sees it; the last state
// it gives is kept in dir.
func New(c *client.Client, name, dir string, log *slog.Logger) *Remote {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Remote{c: c, name: name, dir: dir, wait: 30 * time.Second, log: log}
}

func (r *Remote) path(what string) string {
	return "/v1/agents/" + url.PathEscape(r.name) + "/" + what
}

// Snapshot fetches the agent's desired state and keeps it. When the server
// cannot be reached at the agent's start, it gives the state kept by the
// last run, so that what ran goes on running.
func (r *Remote) Snapshot(ctx context.Context, plane string) (desired.State, error) {
	var st desired.State
	err := r.c.JSON(ctx, "GET", r.path("desired"), nil, nil, &st)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.served = true
		if err := r.keep(st); err != nil { // it runs all the same
			r.log.Warn("keeping the desired state", "err", err)
		}
		return st, nil
	}
	var api *client.APIError
	if r.served || errors.As(err, &api) || r.dir == "" {
		return st, err // a refusal is not an outage: the kept state may no longer be this agent's
	}
	kept, kerr := r.kept()
	if kerr != nil {
		return st, err
	}
	r.served = true
	r.log.Warn("the server does not answer: running on the desired state kept by the last run",
		"version", kept.Version, "err", err)
	return kept, nil
}

// Watch waits, by long polls, until the desired state's version moves from
// after. An answer with an older version (the server's state was replaced)
// counts as a move too.
func (r *Remote) Watch(ctx context.Context, after uint64) (uint64, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}, "wait": {r.wait.String()}}
	for {
		var st struct {
			Version uint64 `json:"version"`
		}
		if err := r.c.JSON(ctx, "GET", r.path("desired"), q, nil, &st); err != nil {
			return after, err
		}
		if st.Version != after {
			return st.Version, nil
		}
	}
}

// Report sends the status of the version applied.
func (r *Remote) Report(ctx context.Context, st desired.Status) error {
	return r.c.JSON(ctx, "POST", r.path("status"), nil, st, nil)
}

// ShareTemplates sends the templates the agent's collector learned.
func (r *Remote) ShareTemplates(ctx context.Context, _ string, ts []desired.ExporterTemplates) error {
	body := struct {
		Exporters []desired.ExporterTemplates `json:"exporters"`
	}{ts}
	return r.c.JSON(ctx, "POST", r.path("templates"), nil, body, nil)
}

// keep writes st to the state file, replacing it whole.
func (r *Remote) keep(st desired.State) error {
	if r.dir == "" {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(r.dir, StateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("keeping the desired state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(r.dir, StateFile))
}

func (r *Remote) kept() (desired.State, error) {
	var st desired.State
	b, err := os.ReadFile(filepath.Join(r.dir, StateFile))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	return st, err
}
