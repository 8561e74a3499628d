package clickhouse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"flowlog/internal/store/query"
)

// client speaks ClickHouse's HTTP interface, the one every server version
// from 18.16 on answers the same way: SQL in, TabSeparated or RowBinary.
type client struct {
	base     string
	user     string
	password string
	http     *http.Client
}

func (c *client) url(q string, params url.Values) string {
	v := url.Values{}
	for k, vs := range params {
		v[k] = vs
	}
	if q != "" {
		v.Set("query", q)
	}
	return c.base + "/?" + v.Encode()
}

// do sends body (SQL, or data when sqlInURL is set) and returns the answer.
func (c *client) do(ctx context.Context, sqlInURL string, body io.Reader) ([]byte, error) {
	return c.doWith(ctx, sqlInURL, nil, body)
}

// doWith is do with further URL parameters (settings, query_id).
func (c *client) doWith(ctx context.Context, sqlInURL string, params url.Values, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(sqlInURL, params), body)
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("clickhouse: %s: %s", resp.Status, bytes.TrimSpace(out))
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
