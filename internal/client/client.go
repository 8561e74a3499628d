// Package client calls flowlog's native API with signed requests; the CLI
// and the tests use it.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"flowlog/internal/api/auth"
)

// Client talks to one flowlog server with one access key.
type Client struct {
	BaseURL   string // e.g. http://127.0.0.1:8080
	KeyID     string
	Secret    string
	HTTP      *http.Client
	Now       func() time.Time // clock used for signing; time.Now if nil
	UserAgent string
}

// New returns a client for baseURL with the given key.
func New(baseURL, keyID, secret string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), KeyID: keyID, Secret: secret,
		HTTP: &http.Client{Timeout: 60 * time.Second}, UserAgent: "flowlog-cli/1"}
}

// TrustCA makes the client trust, for an https server, the CA
// certificates in the PEM file caFile besides the system's roots (for a
// server whose certificate is self-signed or from a private CA).
func (c *Client) TrustCA(caFile string) error {
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.HTTP.Transport = tr
	return nil
}

// APIError is an error answer of the server.
type APIError struct {
	Status    int
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d, request %s)", e.Code, e.Message, e.Status, e.RequestID)
}

// Response is a raw answer: status, headers and body.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends a signed request; body (if not nil) is sent as JSON. It returns
// the raw response, or an *APIError for a status ≥ 400.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body any, hdr http.Header) (*Response, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	u := c.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.UserAgent)
	// Signed like every header: it makes each call a new request to the
	// server's replay check, even identical ones within one second.
	req.Header.Set(auth.NonceHeader, auth.NewNonce())
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	auth.Sign(req, b, c.KeyID, c.Secret, now())
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: rb}
	if resp.StatusCode >= 400 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(rb, e) != nil || e.Code == "" {
			e.Code, e.Message = "HTTP"+resp.Status, strings.TrimSpace(string(rb))
		}
		return out, e
	}
	return out, nil
}

// JSON sends a signed request and decodes the JSON answer into out (if not nil).
func (c *Client) JSON(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.Do(ctx, method, path, query, body, nil)
	if err != nil {
		return err
	}
	if out != nil && len(resp.Body) > 0 {
		return json.Unmarshal(resp.Body, out)
	}
	return nil
}
