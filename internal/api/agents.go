package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"flowlog/internal/api/auth"
	"flowlog/internal/api/front"
	"flowlog/internal/control"
	"flowlog/internal/desired"
)

// DefaultAgentWait is how long GET /v1/agents/{name}/desired?after=V waits
// for a version past V before it answers with the current one.
const DefaultAgentWait = 30 * time.Second

func (s *Server) agentRoutes() {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, caller)) {
		s.mux.Handle(pattern, s.authed(fn))
	}
	h("POST /v1/agents", s.createAgent)
	h("GET /v1/agents", s.listAgents)
	h("DELETE /v1/agents/{name}", s.deleteAgent)
	s.mux.Handle("GET /v1/agents/{name}/desired", s.asAgent(s.agentDesired))
	s.mux.Handle("POST /v1/agents/{name}/status", s.asAgent(s.agentStatus))
	s.mux.Handle("POST /v1/agents/{name}/templates", s.asAgent(s.agentTemplates))
}

func (s *Server) createAgent(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		Name *string `json:"name"`
	}
	if !decode(w, r, c.body, &b) {
		return
	}
	if b.Name == nil {
		writeError(w, r, http.StatusBadRequest, "MissingParameter.name", "name is required")
		return
	}
	a, err := s.svc.CreateAgent(r.Context(), c.account, *b.Name)
	s.reply(w, r, http.StatusCreated, a, err)
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request, c caller) {
	as, err := s.svc.ListAgents(r.Context(), c.account)
	s.reply(w, r, http.StatusOK, map[string]any{"agents": as, "version": s.svc.Version()}, err)
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request, c caller) {
	s.reply(w, r, http.StatusNoContent, nil, s.svc.DeleteAgent(r.Context(), c.account, r.PathValue("name")))
}

// asAgent authenticates a request signed with an agent's key, and admits
// it only on that agent's own endpoints. Agent keys are unknown to every
// other route and dialect, which look up access keys only.
func (s *Server) asAgent(h func(w http.ResponseWriter, r *http.Request, agent string, body []byte)) http.HandlerFunc {
	lookup := func(ctx context.Context, id string) (string, string, bool, error) {
		a, err := s.svc.LookupAgentKey(ctx, id)
		if errors.Is(err, control.ErrNotFound) {
			return "", "", false, nil
		}
		// The replay cache keys by account: an agent's is its own.
		return a.Secret, "agent:" + a.Name, err == nil, err
	}
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.verified(w, r, lookup)
		if !ok {
			return
		}
		name := c.account[len("agent:"):]
		if name != r.PathValue("name") {
			writeError(w, r, http.StatusForbidden, "Forbidden.Agent",
				"this key is agent "+strconv.Quote(name)+"'s: it may use only that agent's endpoints")
			return
		}
		s.svc.Seen(name)
		h(w, r, name, c.body)
	}
}

// agentDesired answers with the agent's part of the desired state. With
// after=V, it first waits (up to wait, at most DefaultAgentWait) for a
// version past V: the agent's long poll.
func (s *Server) agentDesired(w http.ResponseWriter, r *http.Request, agent string, _ []byte) {
	q := r.URL.Query()
	if v := q.Get("after"); v != "" {
		after, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "InvalidParameter.after", "after: must be a version number")
			return
		}
		wait := s.cfg.AgentWait
		if d, err := time.ParseDuration(q.Get("wait")); err == nil && d >= 0 && d < wait {
			wait = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		stop := context.AfterFunc(s.stopping, cancel)
		s.svc.Watch(ctx, after)
		stop()
		cancel()
		if r.Context().Err() != nil {
			return
		}
	}
	st, err := s.svc.Snapshot(r.Context(), agent)
	s.reply(w, r, http.StatusOK, st, err)
}

// EndLongPolls answers the agents' long polls at once, so that the
// server's shutdown does not wait for them; call it as the HTTP server
// shuts down.
func (s *Server) EndLongPolls() { s.endLongPoll() }

// agentStatus takes the agent's report of the version it applied.
func (s *Server) agentStatus(w http.ResponseWriter, r *http.Request, agent string, body []byte) {
	var st desired.Status
	if !decode(w, r, body, &st) {
		return
	}
	if st.Version > s.svc.Version() {
		writeError(w, r, http.StatusBadRequest, "InvalidParameter.version",
			"version: no desired state has this version yet")
		return
	}
	st.Plane = agent // an agent reports for itself only
	s.reply(w, r, http.StatusNoContent, nil, s.svc.Report(r.Context(), st))
}

// agentTemplates takes the templates the agent's collector learned, for
// the other data planes receiving the same exporters.
func (s *Server) agentTemplates(w http.ResponseWriter, r *http.Request, agent string, body []byte) {
	var b struct {
		Exporters []desired.ExporterTemplates `json:"exporters"`
	}
	if !decode(w, r, body, &b) {
		return
	}
	s.reply(w, r, http.StatusNoContent, nil, s.svc.ShareTemplates(r.Context(), agent, b.Exporters))
}

// verified authenticates a signed request with lookup: the key and date
// before the body is read, the body and signature after; a changing
// request is accepted once.
func (s *Server) verified(w http.ResponseWriter, r *http.Request, lookup auth.Lookup) (caller, bool) {
	p, err := auth.Begin(r.Context(), r, lookup, s.cfg.Now())
	if err != nil {
		front.Unread(w, r)
		s.authFailed(w, r, err)
		return caller{}, false
	}
	body, err := s.bodies.Read(w, r)
	if err != nil {
		s.bodyFailed(w, r, err)
		return caller{}, false
	}
	if err = p.Finish(r, body); err == nil {
		err = p.Claim(s.replays, r.Method, s.cfg.Now())
	}
	if err != nil {
		s.authFailed(w, r, err)
		return caller{}, false
	}
	return caller{account: p.Key.AccountID, body: body, keyID: p.Key.ID}, true
}
