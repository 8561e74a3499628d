// Package front is the request plumbing the three API front ends (native
// /v1, Alibaba RPC, Huawei) share: request bodies are read with a size
// limit, a deadline, and a bound on how many are read at once, so that slow
// or unauthenticated uploads cannot hold the server's memory or connections.
package front

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// Config bounds request bodies.
type Config struct {
	// MaxBody is the largest body accepted. Default 1 MiB.
	MaxBody int64
	// ReadTimeout is how long a whole body may take to arrive, counted from
	// when the server starts reading it. Default 10 s.
	ReadTimeout time.Duration
	// MaxReads bounds the bodies being read at once (so memory is bounded by
	// MaxReads × MaxBody). Default 32.
	MaxReads int
	// Wait is how long a request waits for a read slot before it is refused
	// as busy. Default 1 s.
	Wait time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.MaxReads <= 0 {
		c.MaxReads = 32
	}
	if c.Wait <= 0 {
		c.Wait = time.Second
	}
	return c
}

// Errors of Read; anything else is the connection's own error.
var (
	ErrTooLarge = errors.New("the request body is too large")
	ErrBusy     = errors.New("too many request bodies are being read; retry shortly")
	ErrTimeout  = errors.New("the request body did not arrive in time")
)

// Bodies reads request bodies within the configured bounds.
type Bodies struct {
	cfg   Config
	slots chan struct{}
}

// New returns a body reader.
func New(cfg Config) *Bodies {
	cfg = cfg.withDefaults()
	return &Bodies{cfg: cfg, slots: make(chan struct{}, cfg.MaxReads)}
}

// MaxBody is the largest body Read accepts.
func (b *Bodies) MaxBody() int64 { return b.cfg.MaxBody }

// Read reads r's body (nil for none). A body whose declared length is too
// large is refused without reading; the read holds a slot, waits at most
// Wait for one, and must finish within ReadTimeout.
func (b *Bodies) Read(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength == 0 {
		return nil, nil
	}
	if r.ContentLength > b.cfg.MaxBody {
		Unread(w, r)
		return nil, ErrTooLarge
	}
	t := time.NewTimer(b.cfg.Wait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
	case <-t.C:
		Unread(w, r)
		return nil, ErrBusy
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	defer func() { <-b.slots }()
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(b.cfg.ReadTimeout))
	// Cleared once read: a deadline left behind would end the connection's
	// background read, and with it the context of a long handler.
	defer rc.SetReadDeadline(time.Time{})
	return b.readAll(w, r)
}

func (b *Bodies) readAll(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// Memory follows what has arrived, not what was announced: a stalled
	// upload claiming 1 MiB holds only what it sent.
	size := min(r.ContentLength, 64<<10) // -1 when chunked
	if size < 0 {
		size = 512
	}
	buf := make([]byte, 0, size+1) // +1: the EOF probe needs no regrowth
	body := http.MaxBytesReader(w, r.Body, b.cfg.MaxBody)
	for {
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		var mbe *http.MaxBytesError
		switch {
		case err == io.EOF:
			return buf, nil
		case errors.As(err, &mbe):
			return nil, ErrTooLarge
		case errors.Is(err, os.ErrDeadlineExceeded):
			Unread(w, r)
			return nil, ErrTimeout
		case err != nil:
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// Guard bounds, for a request with a body, how long the connection may wait
// for it even when no handler reads it (a refusal before the body, an
// unknown path), since the server drains small unread bodies before
// answering. Call it first thing; Read replaces the deadline with its own.
func (b *Bodies) Guard(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(b.cfg.ReadTimeout))
	}
}

// Unread prepares w for an answer given without reading the body of r: an
// HTTP/1 connection closes after the answer, instead of waiting to drain a
// body that may never come (HTTP/2 streams need no such thing).
func Unread(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}
