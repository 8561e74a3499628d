package api

import (
	"context"
	"errors"
	"net/http"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// Querier is the part of the log store the query endpoint needs.
type Querier interface {
	CreateStream(ctx context.Context, s store.Stream) error
	Stream(ctx context.Context, id store.StreamID) (store.Stream, error)
	Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error)
}

// queryStream answers POST /v1/log-streams/{id}/query over one of the
// caller's log streams.
func (s *Server) queryStream(w http.ResponseWriter, r *http.Request, c caller) {
	if s.cfg.Store == nil {
		writeError(w, r, http.StatusServiceUnavailable, "StoreUnavailable", "this server has no log store")
		return
	}
	ls, err := s.svc.GetLogStream(r.Context(), c.account, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
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
	id := store.StreamID{Account: c.account, Stream: ls.ID}
	// A stream nothing has written to yet exists in the store only once used.
	if _, err := s.cfg.Store.Stream(r.Context(), id); errors.Is(err, store.ErrNoStream) {
		err = s.cfg.Store.CreateStream(r.Context(), store.Stream{StreamID: id, Group: ls.LogGroupID,
			RetentionDays: ls.RetentionDays})
		if err != nil {
			s.internal(w, r, err)
			return
		}
	}
	resp, err := s.cfg.Store.Query(r.Context(), id, req)
	switch {
	case errors.Is(err, query.ErrInvalid), errors.Is(err, store.ErrUnknownField):
		writeError(w, r, http.StatusBadRequest, "InvalidQuery", err.Error())
	case err != nil:
		s.internal(w, r, err)
	default:
		writeJSON(w, http.StatusOK, resp)
	}
}
