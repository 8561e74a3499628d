package clickhouse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"flowlog/internal/store/query"
)

// client speaks ClickHouse's HTTP interface, the one every server version
// from 18.16 on answers the same way: SQL in, TabSeparated or RowBinary.
// With several servers (the replicas of a cluster) it talks to one at a
// time and moves on to the next when one is down or stops answering.
type client struct {
	bases    []string
	cur      *atomic.Int32 // index in bases of the server talked to
	settings url.Values    // sent with every request
	user     string
	password string
	http     *http.Client
}

func newClient(urls string, settings url.Values, user, password string, timeout time.Duration) *client {
	var bases []string
	for u := range strings.SplitSeq(urls, ",") {
		bases = append(bases, strings.TrimRight(u, "/"))
	}
	return &client{bases: bases, cur: &atomic.Int32{}, settings: settings, user: user, password: password,
		http: &http.Client{Timeout: timeout}}
}

// each returns a client of each server, which does not move on.
func (c *client) each() []*client {
	out := make([]*client, len(c.bases))
	for i, b := range c.bases {
		out[i] = c.only(b)
	}
	return out
}

// pinned returns a client of the server talked to, which does not move
// on, for reads that must all be answered by one replica; done(err) moves
// c on when that server was found down.
func (c *client) pinned() (one *client, done func(error)) {
	n := c.cur.Load()
	return c.only(c.bases[n]), func(err error) {
		if isGone(err) {
			c.cur.CompareAndSwap(n, (n+1)%int32(len(c.bases)))
		}
	}
}

func (c *client) only(base string) *client {
	one := *c
	one.bases, one.cur = []string{base}, &atomic.Int32{}
	return &one
}

func (c *client) url(base, q string, params url.Values) string {
	v := url.Values{}
	for _, p := range []url.Values{c.settings, params} {
		for k, vs := range p {
			v[k] = vs
		}
	}
	if q != "" {
		v.Set("query", q)
	}
	return base + "/?" + v.Encode()
}

// isDown tells an error of a server that took no request: one that
// refused the connection or could not be reached.
func isDown(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isGone tells an error of a server that is not there now: down, or gone
// with the connection before answering, as a server that crashed, or a
// proxy (a load balancer) in front of a server that is down, hangs up.
// Unlike one that does not answer in time, such a server runs no request
// of ours. Only for SELECTs: they are sent again on a new connection when
// a kept-alive one turns out closed (which a live server does after its
// keep-alive timeout), so that their hang-ups are the server's own.
func isGone(err error) bool {
	return isDown(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET)
}

// do sends body (SQL, or data when sqlInURL is set) and returns the answer.
func (c *client) do(ctx context.Context, sqlInURL string, body io.Reader) ([]byte, error) {
	return c.doWith(ctx, sqlInURL, nil, body)
}

// doWith is do with further URL parameters (settings, query_id). A server
// that is down is skipped at once, as the request never reached it; after
// any other failure to get an answer the next request goes to the next
// server, and the caller, which cannot know what the request did, decides
// whether to retry. The body is read once, so it is buffered for the skip.
func (c *client) doWith(ctx context.Context, sqlInURL string, params url.Values, body io.Reader) ([]byte, error) {
	var data []byte
	if body != nil && len(c.bases) > 1 {
		var err error
		if data, err = io.ReadAll(body); err != nil {
			return nil, err
		}
	}
	first := int(c.cur.Load())
	var err error
	for i := range c.bases {
		n := (first + i) % len(c.bases)
		if data != nil {
			body = bytes.NewReader(data)
		}
		var out []byte
		out, err = c.send(ctx, c.bases[n], sqlInURL, params, body)
		var se *serverError
		switch {
		case err == nil || errors.As(err, &se):
			c.cur.Store(int32(n))
			return out, err
		case !isDown(err):
			c.cur.Store(int32((n + 1) % len(c.bases)))
			return nil, err
		}
	}
	return nil, err
}

// readOnly marks the context of a request that changes nothing.
type readOnly struct{}

// serverError is an answer of the server other than 200 OK.
type serverError struct {
	status string
	msg    []byte
}

func (e *serverError) Error() string { return fmt.Sprintf("clickhouse: %s: %s", e.status, e.msg) }

// send makes one request to the server at base.
func (c *client) send(ctx context.Context, base, sqlInURL string, params url.Values, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(base, sqlInURL, params), body)
	if err != nil {
		return nil, err
	}
	if ctx.Value(readOnly{}) != nil {
		// Makes the request replayable: net/http sends it again on a
		// new connection when a kept-alive one was closed under it.
		req.Header.Set("Idempotency-Key", "select")
	}
	// Credentials go in a header, not the URL, which errors quote.
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &serverError{resp.Status, bytes.TrimSpace(out)}
	}
	return out, nil
}

// exec runs a statement that returns nothing of interest.
func (c *client) exec(ctx context.Context, sql string) error {
	_, err := c.do(ctx, "", strings.NewReader(sql))
	return err
}

// selectTSV runs a SELECT and returns its rows as typed values.
func (c *client) selectTSV(ctx context.Context, sql string, types []query.SQLType) ([][]any, error) {
	ctx = context.WithValue(ctx, readOnly{}, true)
	out, err := c.doWith(ctx, "", deadlineSetting(ctx), strings.NewReader(sql+" FORMAT TabSeparated"))
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for line := range strings.SplitSeq(string(out), "\n") {
		if line == "" && len(types) > 0 {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != len(types) {
			return nil, fmt.Errorf("clickhouse: row has %d fields, want %d", len(fields), len(types))
		}
		row := make([]any, len(types))
		for i, f := range fields {
			if row[i], err = parseTSV(f, types[i]); err != nil {
				return nil, fmt.Errorf("clickhouse: column %d: %w", i, err)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func parseTSV(f string, t query.SQLType) (any, error) {
	switch t {
	case query.SQLUint:
		return strconv.ParseUint(f, 10, 64)
	case query.SQLInt:
		return strconv.ParseInt(f, 10, 64)
	}
	return unescapeTSV(f)
}

// unescapeTSV undoes TabSeparated escaping of a string.
func unescapeTSV(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("dangling backslash")
		}
		switch s[i] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		default: // \\ \' and anything else stand for themselves
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// rowBinary encodes rows for INSERT … FORMAT RowBinary.
type rowBinary struct{ buf []byte }

func (w *rowBinary) uint64(v uint64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }
func (w *rowBinary) int64(v int64)   { w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(v)) }
func (w *rowBinary) date(days int64) {
	w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(min(max(days, 0), 65535)))
}
func (w *rowBinary) uint32(v uint32) { w.buf = binary.LittleEndian.AppendUint32(w.buf, v) }
func (w *rowBinary) string(s string) {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(s)))
	w.buf = append(w.buf, s...)
}

// literal renders a value as SQL that cannot be anything but that value:
// numbers in decimal, strings hex-encoded (18.16 has no query parameters).
func literal(v any) string {
	switch v := v.(type) {
	case uint64:
		return strconv.FormatUint(v, 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return "unhex('" + strings.ToUpper(fmt.Sprintf("%x", v)) + "')"
	}
	panic(fmt.Sprintf("clickhouse: no literal for %T", v))
}

// deadlineSetting passes the context's deadline on as max_execution_time
// (whole seconds, at least one), so the server stops a query its caller
// gave up on rather than running it to the end.
func deadlineSetting(ctx context.Context) url.Values {
	d, ok := ctx.Deadline()
	if !ok {
		return nil
	}
	secs := max(1, int(math.Ceil(time.Until(d).Seconds())))
	return url.Values{"max_execution_time": {strconv.Itoa(secs)}}
}
