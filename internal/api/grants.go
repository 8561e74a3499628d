package api

import (
	"net/http"

	"flowlog/internal/control"
)

// Grants: what the operator (the bootstrap account) lets other accounts
// observe.
func (s *Server) createGrant(w http.ResponseWriter, r *http.Request, c caller) {
	var b struct {
		AccountID *string `json:"account_id"`
		Kind      *string `json:"kind"`
		Value     *string `json:"value"`
	}
	if !decode(w, r, c.body, &b) {
		return
	}
	g, err := s.svc.CreateGrant(r.Context(), c.account,
		control.GrantInput{AccountID: b.AccountID, Kind: b.Kind, Value: b.Value})
	s.reply(w, r, http.StatusCreated, g, err)
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request, c caller) {
	gs, err := s.svc.ListGrants(r.Context(), c.account, r.URL.Query().Get("account_id"))
	s.reply(w, r, http.StatusOK, map[string]any{"grants": gs}, err)
}

func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request, c caller) {
	s.reply(w, r, http.StatusNoContent, nil, s.svc.DeleteGrant(r.Context(), c.account, r.PathValue("id")))
}
