package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// Querier is the part of the log store the query endpoints need. A log
// stream nothing has written to yet answers as one without records.
type Querier interface {
	Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error)
	QueryStreams(ctx context.Context, ids []store.StreamID, q query.Request) (*query.Response, error)
}

// queryStream answers POST /v1/log-streams/{id}/query over one of the
// caller's log streams.
func (s *Server) queryStream(w http.ResponseWriter, r *http.Request, c caller) {
	id, ok := s.queryTarget(w, r, c)
	if !ok {
		return
	}
	var req query.Request
	if !decode(w, r, c.body, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidQuery", err.Error())
		return
	}
	s.runQuery(w, r, c, func(ctx context.Context) (any, error) { return s.cfg.Store.Query(ctx, id, req) })
}

// runQuery runs a validated question to the store within one of the
// account's query slots and the server's query timeout, and writes its
// answer or what went wrong.
func (s *Server) runQuery(w http.ResponseWriter, r *http.Request, c caller, run func(ctx context.Context) (any, error)) {
	if !s.querySlot(w, r, c) {
		return
	}
	defer s.queries.release(c.account)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	resp, err := run(ctx)
	if err != nil {
		s.queryFailed(w, r, ctx, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// hasStore answers 503 StoreUnavailable when the server has no log store.
func (s *Server) hasStore(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Store == nil {
		writeError(w, r, http.StatusServiceUnavailable, "StoreUnavailable", "this server has no log store")
		return false
	}
	return true
}

// queryTarget is the store's id of the caller's log stream named in the
// path; it answers the error itself when there is none.
func (s *Server) queryTarget(w http.ResponseWriter, r *http.Request, c caller) (store.StreamID, bool) {
	if !s.hasStore(w, r) {
		return store.StreamID{}, false
	}
	ls, err := s.svc.GetLogStream(r.Context(), c.account, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return store.StreamID{}, false
	}
	return ls.StoreStream().StreamID, true
}

// querySlot takes one of the account's query slots (release it after), or
// answers 429.
func (s *Server) querySlot(w http.ResponseWriter, r *http.Request, c caller) bool {
	if s.queries.acquire(c.account) {
		return true
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, r, http.StatusTooManyRequests, "Throttling.Query", fmt.Sprintf(
		"this account already runs %d queries, the most the server allows at once; retry when one has answered", s.queries.max))
	return false
}

// queryFailed answers a store query that failed under ctx, the request's
// context with the query timeout.
func (s *Server) queryFailed(w http.ResponseWriter, r *http.Request, ctx context.Context, err error) {
	switch {
	case errors.Is(err, query.ErrInvalid), errors.Is(err, store.ErrUnknownField):
		writeError(w, r, http.StatusBadRequest, "InvalidQuery", err.Error())
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, r, http.StatusServiceUnavailable, "QueryTimeout", fmt.Sprintf(
			"the query ran longer than the server's limit of %s and was stopped; narrow its window or filter", s.cfg.QueryTimeout))
	case r.Context().Err() != nil: // the client went away
	default:
		s.internal(w, r, err)
	}
}

// Defaults of the query limits.
const (
	DefaultQueryTimeout     = 30 * time.Second
	DefaultQueryConcurrency = 4
)

// queryLimiter bounds the queries each account runs at once, so one
// account cannot take every core from the others.
type queryLimiter struct {
	max     int
	mu      sync.Mutex
	running map[string]int // by account; absent when none
}

func newQueryLimiter(max int) *queryLimiter {
	return &queryLimiter{max: max, running: map[string]int{}}
}

// acquire takes one of the account's query slots, or reports that none is free.
func (l *queryLimiter) acquire(account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[account] >= l.max {
		return false
	}
	l.running[account]++
	return true
}

func (l *queryLimiter) release(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[account]--; l.running[account] <= 0 {
		delete(l.running, account)
	}
}

// filterCheck answers POST /v1/filters/check.
type filterCheck struct {
	Valid  bool   `json:"valid"`
	Error  string `json:"error,omitempty"`
	Offset *int   `json:"offset,omitempty"` // byte offset of the problem, when it has one
}

// checkFilter validates a filter as the query endpoint would, for an editor
// that shows errors as the user types; it reads no records.
func (s *Server) checkFilter(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		Where *string `json:"where"`
	}
	if !decode(w, r, c.body, &b) {
		return
	}
	if b.Where == nil {
		writeError(w, r, http.StatusBadRequest, "MissingParameter.where", "where is required")
		return
	}
	_, err := query.Parse(*b.Where)
	var se *query.SyntaxError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, filterCheck{Valid: true})
	case errors.As(err, &se):
		out := filterCheck{Error: se.Msg}
		if se.Offset >= 0 {
			out.Offset = &se.Offset
		}
		writeJSON(w, http.StatusOK, out)
	default:
		writeJSON(w, http.StatusOK, filterCheck{Error: err.Error()})
	}
}
