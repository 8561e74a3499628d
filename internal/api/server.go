// Package api serves flowlog's HTTP APIs on one handler: the native /v1 API
// (described by the OpenAPI document at /v1/openapi.json), and the mount
// points of the cloud dialects.
package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"flowlog/internal/api/aliyun"
	"flowlog/internal/api/auth"
	"flowlog/internal/api/console"
	"flowlog/internal/api/front"
	"flowlog/internal/api/huawei"
	"flowlog/internal/control"
)

// Config configures the API server.
type Config struct {
	Logger *slog.Logger
	Now    func() time.Time // clock for signature windows; time.Now if nil
	Store  Querier          // the log store behind the query endpoint; nil: none
	// Metrics serves GET /metrics (Prometheus); nil: none. With MetricsToken
	// set, it must be presented as "Authorization: Bearer TOKEN".
	Metrics      http.Handler
	MetricsToken string
	// QueryTimeout stops a query that runs longer (503 QueryTimeout);
	// default DefaultQueryTimeout.
	QueryTimeout time.Duration
	// QueryConcurrency is how many queries one account may run at once
	// (429 Throttling.Query beyond); default DefaultQueryConcurrency.
	QueryConcurrency int
	// Bodies bounds request bodies (size, read time, concurrent reads) on
	// /v1 and the Huawei dialect; the Alibaba dialect, which reads bodies
	// before it can authenticate, gets its own reader with the same bounds.
	Bodies front.Config
	// Replay bounds, per account, the memory of accepted signatures (/v1
	// and Huawei) and of Alibaba SignatureNonces.
	Replay auth.ReplayConfig
	// Console bounds web-console sessions and failed sign-ins.
	Console console.Config
	// Web serves the web console's pages and assets (internal/web); nil:
	// none.
	Web WebConsole
	// AgentWait bounds how long an agent's long poll of its desired state
	// is held; default DefaultAgentWait.
	AgentWait time.Duration
	// Exporters tells what the collector knows of exporter gateways'
	// routers (GET /v1/exporters); nil: 503 ExportersUnavailable.
	Exporters Exporters
}

// WebConsole answers the requests it owns (GET of its pages and assets)
// ahead of the API's routes; the API keeps everything else, "/" with a
// query string (the Alibaba dialect) included.
type WebConsole interface {
	http.Handler
	Owns(r *http.Request) bool
}

// Server holds the API's dependencies.
type Server struct {
	cfg     Config
	svc     *control.Service
	mux     *http.ServeMux
	keys    auth.Lookup
	bodies  *front.Bodies
	replays *auth.ReplayCache
	queries *queryLimiter
	// Console sign-in state, in memory only: a restart signs consoles out.
	sessions *console.Sessions
	throttle *console.Throttle
	// stopping ends agents' long polls when the server shuts down.
	stopping    context.Context
	endLongPoll context.CancelFunc
}

// New builds the API handler over the control plane.
func New(cfg Config, svc *control.Service) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.AgentWait <= 0 {
		cfg.AgentWait = DefaultAgentWait
	}
	if cfg.QueryConcurrency <= 0 {
		cfg.QueryConcurrency = DefaultQueryConcurrency
	}
	s := &Server{cfg: cfg, svc: svc, mux: http.NewServeMux(), keys: KeyLookup(svc), bodies: front.New(cfg.Bodies),
		replays: auth.NewReplayCache(cfg.Replay), queries: newQueryLimiter(cfg.QueryConcurrency),
		sessions: console.NewSessions(cfg.Console), throttle: console.NewThrottle(cfg.Console)}
	s.stopping, s.endLongPoll = context.WithCancel(context.Background())
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", bearer(cfg.MetricsToken, cfg.Metrics))
	}
	s.routes()
	s.agentRoutes()
	s.consoleRoutes()
	aliyun.Register(s.mux, aliyun.Config{Logger: cfg.Logger, Now: cfg.Now, MaxNonces: cfg.Replay.MaxPerAccount,
		Bodies: front.New(cfg.Bodies)}, aliyun.Deps{Control: svc, Keys: s.keys})
	huawei.Register(s.mux, huawei.Config{Logger: cfg.Logger, Now: cfg.Now},
		huawei.Deps{Control: svc, Keys: s.keys, Bodies: s.bodies, Replays: s.replays})
	return s
}

// Mux is where dialects mount their handlers.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// ServeHTTP gives every response a request id and logs the request at debug
// level (never its headers: they carry signatures).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.bodies.Guard(w, r)
	id := NewRequestID()
	w.Header().Set("X-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	rec := &statusRecorder{ResponseWriter: &jsonErrorWriter{ResponseWriter: w, r: r}, status: 200}
	start := time.Now()
	var h http.Handler = s.mux
	if s.cfg.Web != nil && s.cfg.Web.Owns(r) {
		h = s.cfg.Web
	}
	h.ServeHTTP(rec, r)
	s.cfg.Logger.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
		"request_id", id, "duration", time.Since(start))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

type requestIDKey struct{}

// RequestID returns the id given to the request being served.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns 32 random hex digits.
func NewRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// KeyLookup adapts the control plane's key store for signature checks. It
// reads the store on every request (no cache), so a key disabled or deleted
// is refused from the next request on: disabled as auth.ErrKeyDisabled,
// deleted as unknown.
func KeyLookup(svc *control.Service) auth.Lookup {
	return func(ctx context.Context, id string) (string, string, bool, error) {
		k, err := svc.LookupKey(ctx, id)
		if errors.Is(err, control.ErrNotFound) {
			return "", "", false, nil
		}
		if err != nil {
			return "", "", false, err
		}
		if k.Status != control.KeyEnabled {
			return "", "", false, auth.ErrKeyDisabled
		}
		return k.Secret, k.AccountID, true, nil
	}
}

// caller is an authenticated request: its account and its body, and for a
// console session's request, the session and its token.
type caller struct {
	account string
	keyID   string // of a signed request
	body    []byte
	session *console.Session
	token   string
}

// authed wraps a /v1 handler with authentication, by signature or, for an
// unsigned request with a session cookie, by console session; either way
// the handler sees only the caller's account.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var c caller
		var ok bool
		if token := sessionToken(r); token != "" && r.Header.Get("Authorization") == "" {
			c, ok = s.sessionCaller(w, r, token)
		} else {
			c, ok = s.signedCaller(w, r)
		}
		if ok {
			h(w, r, c)
		}
	}
}

// signedCaller authenticates a signed request: the access key and date are
// checked before the body is read, the body and signature after, and a
// changing request is accepted once.
func (s *Server) signedCaller(w http.ResponseWriter, r *http.Request) (caller, bool) {
	c, ok := s.verified(w, r, s.keys)
	if ok {
		// Only a verified request counts as the key's use.
		s.keyUsed(r, c.keyID)
	}
	return c, ok
}

func (s *Server) authFailed(w http.ResponseWriter, r *http.Request, err error) {
	var f *auth.Failure
	if !errors.As(err, &f) {
		s.internal(w, r, err)
		return
	}
	s.cfg.Logger.Info("authentication failed", "reason", f.Reason, "path", r.URL.Path,
		"request_id", RequestID(r.Context()))
	if f.Reason == auth.TooManyRequests {
		w.Header().Set("Retry-After", "10")
		writeError(w, r, f.Status(), string(f.Reason), f.Message)
		return
	}
	writeError(w, r, f.Status(), "Auth."+string(f.Reason), f.Message)
}

func (s *Server) bodyFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, front.ErrTooLarge):
		writeError(w, r, http.StatusRequestEntityTooLarge, "RequestTooLarge",
			fmt.Sprintf("the request body is larger than %d bytes", s.bodies.MaxBody()))
	case errors.Is(err, front.ErrBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, "ServerBusy", err.Error())
	case errors.Is(err, front.ErrTimeout):
		writeError(w, r, http.StatusRequestTimeout, "RequestTimeout", err.Error())
	default:
		writeError(w, r, http.StatusBadRequest, "InvalidRequest", "reading the body: "+err.Error())
	}
}

// bearer requires "Authorization: Bearer token" before h, unless token is
// empty.
func bearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, r, http.StatusUnauthorized, "Auth.MetricsToken", "reading metrics needs the metrics bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}
