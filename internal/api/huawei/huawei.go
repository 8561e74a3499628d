// Package huawei serves the Huawei Cloud Enterprise Router flow-log API
// (/v3/{project_id}/enterprise-router/{er_id}/flow-logs…) so that the
// official Huawei Cloud SDKs work against flowlog unmodified. It is a thin
// translation over the control plane: an enterprise router is a gateway, a
// resource_id one of its attachments, a project the caller's account.
package huawei

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"flowlog/internal/api/auth"
	"flowlog/internal/api/front"
	"flowlog/internal/control"
)

// Config tunes the dialect.
type Config struct {
	Now    func() time.Time // clock for the X-Sdk-Date window; time.Now if nil
	Logger *slog.Logger     // internal errors; slog.Default() if nil
}

// Deps is what the dialect needs from the server.
type Deps struct {
	Control *control.Service
	Keys    auth.Lookup
	// Bodies reads request bodies; nil: a reader with default bounds.
	Bodies *front.Bodies
	// Replays remembers accepted signatures, per account; nil: a cache of
	// its own with default bounds.
	Replays *auth.ReplayCache
}

// Register mounts the seven flow-log operations on mux.
func Register(mux *http.ServeMux, cfg Config, deps Deps) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if deps.Bodies == nil {
		deps.Bodies = front.New(front.Config{})
	}
	if deps.Replays == nil {
		deps.Replays = auth.NewReplayCache(auth.ReplayConfig{})
	}
	d := &dialect{cfg: cfg, ctl: deps.Control, keys: deps.Keys, bodies: deps.Bodies, replays: deps.Replays}
	const base = "/v3/{project_id}/enterprise-router/{er_id}/flow-logs"
	mux.Handle("POST "+base, d.op(d.create))
	mux.Handle("GET "+base, d.op(d.list))
	mux.Handle("GET "+base+"/{flow_log_id}", d.op(d.show))
	mux.Handle("PUT "+base+"/{flow_log_id}", d.op(d.update))
	mux.Handle("DELETE "+base+"/{flow_log_id}", d.op(d.delete))
	mux.Handle("POST "+base+"/{flow_log_id}/enable", d.op(d.enable))
	mux.Handle("POST "+base+"/{flow_log_id}/disable", d.op(d.disable))
}

type dialect struct {
	cfg     Config
	ctl     *control.Service
	keys    auth.Lookup
	bodies  *front.Bodies
	replays *auth.ReplayCache
}

// call is one authenticated request on an enterprise router of the caller.
type call struct {
	r         *http.Request
	w         http.ResponseWriter
	account   string
	router    control.Gateway
	body      []byte
	requestID string
}

// result is a success: a status and a body (nil for none).
type result struct {
	status int
	body   any
}

// op authenticates the request, checks the project and the router, runs fn
// and writes its result or error.
func (d *dialect) op(fn func(ctx context.Context, c *call) (result, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{r: r, w: w, requestID: requestID(w)}
		res, err := d.serve(c, fn)
		if err != nil {
			d.fail(c, err)
			return
		}
		if res.body == nil {
			w.WriteHeader(res.status)
			return
		}
		writeJSON(w, res.status, res.body)
	})
}

func (d *dialect) serve(c *call, fn func(ctx context.Context, c *call) (result, error)) (result, error) {
	ctx := c.r.Context()
	key, err := d.authenticate(c)
	if err != nil {
		return result{}, err
	}
	c.account = key.AccountID
	if err := d.ctl.KeyUsed(ctx, key.ID); err != nil {
		d.cfg.Logger.Warn("recording an access key's use", "key", key.ID, "err", err)
	}
	project := c.r.PathValue("project_id")
	if project != key.AccountID {
		return result{}, forbidden("project " + project + " is not the project of access key " + key.ID + ".")
	}
	if h := c.r.Header.Get("X-Project-Id"); h != "" && h != project {
		return result{}, forbidden("X-Project-Id " + h + " differs from the project " + project + " in the path.")
	}
	if c.router, err = d.ctl.GetGateway(ctx, c.account, c.r.PathValue("er_id")); err != nil {
		return result{}, translate(err)
	}
	res, err := fn(ctx, c)
	return res, translate(err)
}

// authenticate checks the access key and date, then reads the body, then
// checks the signature over it and that a changing request is new.
func (d *dialect) authenticate(c *call) (auth.Key, error) {
	p, err := auth.Begin(c.r.Context(), c.r, d.keys, d.cfg.Now())
	if err != nil {
		front.Unread(c.w, c.r)
		return auth.Key{}, authError(err)
	}
	if c.body, err = d.bodies.Read(c.w, c.r); err != nil {
		return auth.Key{}, bodyError(err)
	}
	if err = p.Finish(c.r, c.body); err == nil {
		err = p.Claim(d.replays, c.r.Method, d.cfg.Now())
	}
	if err != nil {
		return auth.Key{}, authError(err)
	}
	return p.Key, nil
}

// errorBody is Huawei Cloud's error document; the SDKs take the request id
// from the X-Request-Id header, which carries the same value.
type errorBody struct {
	Code      string `json:"error_code"`
	Message   string `json:"error_msg"`
	RequestID string `json:"request_id"`
}

func (d *dialect) fail(c *call, err error) {
	var e *Error
	if !errors.As(err, &e) {
		d.cfg.Logger.Error("huawei api: internal error", "request_id", c.requestID, "path", c.r.URL.Path, "err", err)
		e = errInternal
	}
	writeJSON(c.w, e.Status, errorBody{Code: e.Code, Message: e.Message, RequestID: c.requestID})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b)
}

// requestID reuses the X-Request-Id the server set, else makes one.
func requestID(w http.ResponseWriter) string {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return id
	}
	b := make([]byte, 16)
	rand.Read(b)
	id := hex.EncodeToString(b)
	w.Header().Set("X-Request-Id", id)
	return id
}
