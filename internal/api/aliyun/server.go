// Package aliyun serves the Alibaba Cloud Smart Access Gateway flow-log API
// (RPC style, Version 2018-03-13) so that the official Alibaba SDKs and CLI
// work against flowlog unmodified: signature v1, the common parameters, and
// Alibaba's error codes and bodies in JSON or XML.
package aliyun

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"flowlog/internal/api/auth"
	"flowlog/internal/api/front"
)

// Version is the API version of the Smart Access Gateway flow-log actions.
const Version = "2018-03-13"

// Config tunes the RPC endpoint.
type Config struct {
	// Window is how far Timestamp may be from the server's clock, either
	// way, and so how long a SignatureNonce is remembered. Default
	// auth.MaxSkew (5 minutes), as for the other APIs.
	Window time.Duration
	// MaxNonces bounds the nonces remembered per account; beyond it that
	// account's requests are refused with 503 until old ones expire, and
	// other accounts are not affected. Default auth.DefaultMaxPerAccount.
	MaxNonces int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives internal errors; default slog.Default().
	Logger *slog.Logger
	// Bodies reads form bodies, which may carry the signature, and so are
	// read before the caller is known: bounded in size, time and number.
	// Default: a reader with front's default bounds.
	Bodies *front.Bodies
}

func (c Config) withDefaults() Config {
	if c.Window <= 0 {
		c.Window = auth.MaxSkew
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Bodies == nil {
		c.Bodies = front.New(front.Config{})
	}
	return c
}

// Call is one authenticated RPC call.
type Call struct {
	Action    string
	Account   string            // the account owning the AccessKeyId
	Params    map[string]string // query and form parameters, first value of each
	RequestID string
}

// Action serves one RPC action. It returns the response (a struct with json
// and xml tags, without RequestId, which the server adds) or an error; an
// *Error reaches the client as it is, anything else as InternalError.
type Action func(ctx context.Context, c *Call) (any, error)

// Server is the RPC endpoint: it authenticates, routes by Action and answers
// in the requested Format.
type Server struct {
	cfg     Config
	verify  verifier
	actions map[string]Action
}

// NewServer returns an RPC endpoint that knows no actions yet.
func NewServer(cfg Config, keys auth.Lookup) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		cfg: cfg,
		verify: verifier{
			window: cfg.Window,
			now:    cfg.Now,
			keys:   keys,
			nonces: auth.NewReplayCache(auth.ReplayConfig{MaxPerAccount: cfg.MaxNonces}),
		},
		actions: make(map[string]Action),
	}
}

// Handle registers the function serving action.
func (s *Server) Handle(action string, fn Action) { s.actions[action] = fn }

// ServeHTTP answers GET or POST / with parameters in the query string and/or
// an application/x-www-form-urlencoded body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := requestID(w)
	params, err := s.params(w, r)
	format := strings.ToUpper(params["Format"])
	if err != nil {
		s.fail(w, r, format, rid, err)
		return
	}
	call := &Call{Action: params["Action"], Params: params, RequestID: rid}
	call.Account, err = s.verify.verify(r.Context(), r.Method, params)
	if err == nil {
		err = s.checkRoute(call)
	}
	var res any
	if err == nil {
		res, err = s.actions[call.Action](r.Context(), call)
	}
	if err != nil {
		s.fail(w, r, format, rid, err)
		return
	}
	writeBody(w, http.StatusOK, format, call.Action+"Response", withRequestID(res, rid))
}

func (s *Server) params(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	params := make(map[string]string)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		for k, v := range r.URL.Query() {
			params[k] = v[0]
		}
		return params, errMethod
	}
	body, err := s.cfg.Bodies.Read(w, r)
	if err != nil {
		for k, v := range r.URL.Query() {
			params[k] = v[0]
		}
		return params, bodyError(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	err = r.ParseForm()
	for k, v := range r.Form {
		params[k] = v[0]
	}
	if err != nil {
		return params, errBadForm
	}
	return params, nil
}

func (s *Server) checkRoute(c *Call) error {
	if c.Action == "" {
		return missingCommon("Action")
	}
	if v := c.Params["Version"]; v == "" {
		return missingCommon("Version")
	} else if v != Version {
		return errVersion
	}
	if s.actions[c.Action] == nil {
		return errActionNotFound
	}
	return nil
}

// errorBody is Alibaba's error document.
type errorBody struct {
	RequestID string `json:"RequestId" xml:"RequestId"`
	HostID    string `json:"HostId" xml:"HostId"`
	Code      string `json:"Code" xml:"Code"`
	Message   string `json:"Message" xml:"Message"`
	Recommend string `json:"Recommend" xml:"Recommend"`
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, format, rid string, err error) {
	var e *Error
	if !errors.As(err, &e) {
		s.cfg.Logger.Error("aliyun rpc: internal error", "request_id", rid, "err", err)
		e = errInternal
	}
	writeBody(w, e.Status, format, "Error", errorBody{
		RequestID: rid,
		HostID:    r.Host,
		Code:      e.Code,
		Message:   e.Message,
		Recommend: "https://api.aliyun.com/troubleshoot?q=" + e.Code + "&product=Smartag&requestId=" + rid,
	})
}

// withRequestID returns res with its RequestId set, if it has one.
func withRequestID(res any, rid string) any {
	if r, ok := res.(interface{ setRequestID(string) }); ok {
		r.setRequestID(rid)
	}
	return res
}

// writeBody encodes v as XML (root element root) when format is XML, else
// as JSON.
func writeBody(w http.ResponseWriter, status int, format, root string, v any) {
	var body []byte
	var err error
	if format == "XML" {
		w.Header().Set("Content-Type", "text/xml;charset=utf-8")
		body, err = xml.Marshal(xmlRoot{name: root, v: v})
		body = append([]byte(xml.Header), body...)
	} else {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		body, err = json.Marshal(v)
	}
	if err != nil {
		// The response types are ours; failing to encode one is a bug.
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	w.Write(body)
}

// xmlRoot marshals v under the element name.
type xmlRoot struct {
	name string
	v    any
}

func (x xmlRoot) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(x.v, xml.StartElement{Name: xml.Name{Local: x.name}})
}

// requestID reuses the X-Request-Id set by an outer middleware, else makes
// one in Alibaba's upper-case UUID form and sets the header.
func requestID(w http.ResponseWriter) string {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return id
	}
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	id := fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	w.Header().Set("X-Request-Id", id)
	return id
}
