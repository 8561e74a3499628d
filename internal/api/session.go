package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"flowlog/internal/api/auth"
	"flowlog/internal/api/console"
	"flowlog/internal/api/front"
)

// Console sessions: the web console signs in once with an access key and
// then sends a cookie instead of signatures (a browser must not hold the
// secret). The cookie is HttpOnly, SameSite=Strict and Secure under TLS;
// changes also need the session's CSRF token and, when the browser says
// where the request comes from, the server's own origin.
const (
	SessionCookie = "flowlog_session"
	CSRFHeader    = "X-CSRF-Token"
)

// sessionBody answers sign-in and GET /v1/console/session.
type sessionBody struct {
	AccountID   string    `json:"account_id"`
	AccessKeyID string    `json:"access_key_id"`
	ExpiresAt   time.Time `json:"expires_at"`
	IdleTimeout int       `json:"idle_timeout_seconds"`
	CSRFToken   string    `json:"csrf_token"`
}

func (s *Server) sessionBody(ses console.Session) sessionBody {
	return sessionBody{AccountID: ses.AccountID, AccessKeyID: ses.KeyID, ExpiresAt: ses.Expires.UTC(),
		IdleTimeout: int(s.sessions.Config().IdleTimeout / time.Second), CSRFToken: ses.CSRF}
}

func (s *Server) consoleRoutes() {
	s.mux.HandleFunc("POST /v1/console/sessions", s.signIn)
	s.mux.Handle("GET /v1/console/session", s.authed(s.getSession))
	s.mux.Handle("DELETE /v1/console/session", s.authed(s.signOut))
}

// badCredentials is the one answer to every failed sign-in: like a bad
// signature, it does not say whether the id, the secret or the key's state
// was wrong.
const badCredentials = "the access key id or secret is wrong, or the key is disabled"

// signIn answers POST /v1/console/sessions: it checks the key as signatures
// do (known, enabled, the right secret), then starts a session.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.signInRequestOK(w, r) {
		return
	}
	body, err := s.bodies.Read(w, r)
	if err != nil {
		s.bodyFailed(w, r, err)
		return
	}
	var in struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	if !decode(w, r, body, &in) {
		return
	}
	if in.ID == "" || in.Secret == "" {
		writeError(w, r, http.StatusBadRequest, "MissingParameter.access_key",
			"access_key_id and access_key_secret are required")
		return
	}
	now, addr := s.cfg.Now(), console.ClientAddr(r.RemoteAddr)
	if ok, wait := s.throttle.Allow(in.ID, addr, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeError(w, r, http.StatusTooManyRequests, "Throttling.SignIn",
			"too many failed sign-ins with this key or from this address; retry later")
		return
	}
	account, err := s.checkSecret(r, in.ID, in.Secret)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if account == "" {
		s.throttle.Failed(in.ID, addr, now)
		// Neither the key id nor the secret is logged: people paste one
		// into the other's field.
		s.cfg.Logger.Info("console sign-in failed", "client", addr, "request_id", RequestID(r.Context()))
		writeError(w, r, http.StatusUnauthorized, "Auth."+string(auth.SignatureMismatch), badCredentials)
		return
	}
	token, ses, err := s.sessions.Create(account, in.ID, now)
	if errors.Is(err, console.ErrFull) {
		w.Header().Set("Retry-After", "60")
		writeError(w, r, http.StatusServiceUnavailable, "ServerBusy", err.Error())
		return
	}
	if old := sessionToken(r); old != "" {
		s.sessions.End(old) // the cookie it replaces
	}
	s.keyUsed(r, in.ID)
	s.setSessionCookie(w, r, token, int(s.sessions.Config().MaxAge/time.Second))
	writeJSON(w, http.StatusCreated, s.sessionBody(ses))
}

// signInRequestOK refuses sign-ins that carry the key in the URL, are not
// JSON (a cross-site form cannot send JSON), or come from another origin.
func (s *Server) signInRequestOK(w http.ResponseWriter, r *http.Request) bool {
	msg, status, code := "", http.StatusBadRequest, "InvalidRequest"
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case r.URL.RawQuery != "":
		msg = "sign-in takes the access key in the JSON body only, never in the URL"
	case mt != "application/json":
		status, code, msg = http.StatusUnsupportedMediaType, "UnsupportedMediaType", "sign-in takes a JSON body (Content-Type: application/json)"
	default:
		if err := sameOrigin(r); err != nil {
			status, code, msg = http.StatusForbidden, "Forbidden.CSRF", err.Error()
		}
	}
	if msg == "" {
		return true
	}
	front.Unread(w, r)
	writeError(w, r, status, code, msg)
	return false
}

// checkSecret returns the account of an enabled key whose secret is
// secret, "" when the key is unknown, disabled or the secret wrong. The
// comparison takes the same time whichever it is.
func (s *Server) checkSecret(r *http.Request, id, secret string) (string, error) {
	want, account, ok, err := s.keys(r.Context(), id)
	if err != nil && !errors.Is(err, auth.ErrKeyDisabled) {
		return "", err
	}
	a, b := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 || !ok || err != nil {
		return "", nil
	}
	return account, nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, c caller) {
	if !c.hasSession(w, r) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.sessionBody(*c.session))
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request, c caller) {
	if !c.hasSession(w, r) {
		return
	}
	s.sessions.End(c.token)
	s.setSessionCookie(w, r, "", -1)
	w.WriteHeader(http.StatusNoContent)
}

// hasSession answers 404 for a signed request to a session's endpoint.
func (c caller) hasSession(w http.ResponseWriter, r *http.Request) bool {
	if c.session == nil {
		writeError(w, r, http.StatusNotFound, "NotFound.ConsoleSession",
			"this request carries no console session cookie (it is signed)")
	}
	return c.session != nil
}

// sessionCaller authenticates a request by its session cookie: a live
// session whose key is still enabled, and for a change, the CSRF token and
// the server's own origin. The body is read only after all that.
func (s *Server) sessionCaller(w http.ResponseWriter, r *http.Request, token string) (caller, bool) {
	ses, ok := s.sessions.Get(token, s.cfg.Now())
	if !ok {
		s.sessionFailed(w, r, http.StatusUnauthorized, "Auth.SessionExpired",
			"the console session has expired or was signed out; sign in again")
		return caller{}, false
	}
	_, account, ok, err := s.keys(r.Context(), ses.KeyID)
	if err != nil && !errors.Is(err, auth.ErrKeyDisabled) {
		front.Unread(w, r)
		s.internal(w, r, err)
		return caller{}, false
	}
	if ses.KeyEnded || !ok || account != ses.AccountID {
		s.sessions.End(token)
		s.sessionFailed(w, r, http.StatusUnauthorized, "Auth.SessionEnded",
			"the access key this console session was made from is disabled or deleted; sign in again")
		return caller{}, false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := csrfCheck(r, ses.CSRF); err != nil {
			s.sessionFailed(w, r, http.StatusForbidden, "Forbidden.CSRF", err.Error())
			return caller{}, false
		}
	}
	body, err := s.bodies.Read(w, r)
	if err != nil {
		s.bodyFailed(w, r, err)
		return caller{}, false
	}
	s.keyUsed(r, ses.KeyID)
	return caller{account: ses.AccountID, body: body, session: &ses, token: token}, true
}

// sessionFailed refuses a session request; a session that is gone also
// loses its cookie.
func (s *Server) sessionFailed(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	front.Unread(w, r)
	if status == http.StatusUnauthorized {
		s.setSessionCookie(w, r, "", -1)
	}
	s.cfg.Logger.Info("authentication failed", "reason", code, "path", r.URL.Path,
		"request_id", RequestID(r.Context()))
	writeError(w, r, status, code, msg)
}

// csrfCheck requires the session's token in X-CSRF-Token (a cross-site page
// cannot read it, nor set the header without CORS, which flowlog does not
// grant) and, when the browser tells, the server's own origin.
func csrfCheck(r *http.Request, want string) error {
	if !console.SameToken(r.Header.Get(CSRFHeader), want) {
		return errors.New("a change through a console session needs the session's csrf_token in " + CSRFHeader)
	}
	return sameOrigin(r)
}

// sameOrigin refuses a request whose Origin (or, without one, Referer)
// names another host than the one it was sent to, or that the browser
// marks cross-site. Requests naming neither come from non-browser clients.
func sameOrigin(r *http.Request) error {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errors.New("the request comes from another site (Sec-Fetch-Site: cross-site)")
	}
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return nil
	}
	if u, err := url.Parse(from); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	return errors.New("the request comes from another origin than " + r.Host + "; console sessions accept changes from the server's own origin only")
}

// setSessionCookie sets the session cookie, or clears it (maxAge < 0).
func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, token string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// sessionToken is the request's session cookie, if it has one.
func sessionToken(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// keyUsed records a verified use of the key (persisted at most once a
// minute), so last_used_at shows console use as well.
func (s *Server) keyUsed(r *http.Request, keyID string) {
	if err := s.svc.KeyUsed(r.Context(), keyID); err != nil {
		s.cfg.Logger.Warn("recording an access key's use", "key", keyID, "err", err)
	}
}
