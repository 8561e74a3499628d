// Package store is the log store: per-account namespaces of log groups and
// log streams, each holding flow records laid out by day. Backends live in
// store/duckdb (embedded, the default) and store/clickhouse (scale-out);
// the query model is store/query.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/store/query"
)

// Sentinel errors callers branch on.
var (
	ErrNoStream         = errors.New("log stream not found")
	ErrInvalidName      = errors.New("invalid log stream name")
	ErrInvalidRetention = errors.New("invalid retention")
	ErrUnknownField     = errors.New("unknown field")
	// ErrUnreachable: no server of the store answers (down, or not
	// reachable); worth waiting for, unlike a server that refuses.
	ErrUnreachable = errors.New("log store unreachable")
)

// StreamID names a log stream: the account that owns it and the id the
// control plane gave it. Ids are unique within an account.
type StreamID struct {
	Account string `json:"account_id"`
	Stream  string `json:"log_stream_id"`
}

func (id StreamID) String() string { return id.Account + "/" + id.Stream }

// Validate checks that both parts are non-empty printable text.
func (id StreamID) Validate() error {
	for _, s := range []string{id.Account, id.Stream} {
		if s == "" || len(s) > 256 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("%w: %q", ErrInvalidName, id.String())
		}
	}
	return nil
}

// Stream describes a log stream: its log group (a namespace within the
// account, like an SLS project or LTS log group) and how many days of
// records it keeps (0: forever).
type Stream struct {
	StreamID
	Group         string    `json:"log_group,omitempty"`
	RetentionDays int       `json:"retention_days,omitempty"`
	Created       time.Time `json:"created"`
}

// Validate checks the id and that the retention is not negative.
func (s Stream) Validate() error {
	if err := s.StreamID.Validate(); err != nil {
		return err
	}
	if s.RetentionDays < 0 {
		return fmt.Errorf("%w: %d days", ErrInvalidRetention, s.RetentionDays)
	}
	return nil
}

// Store is what the rest of flowlog needs from a log store backend.
type Store interface {
	// CreateStream creates the stream or, if it exists, updates its group
	// and retention.
	CreateStream(ctx context.Context, s Stream) error
	// Stream returns the stream, or ErrNoStream.
	Stream(ctx context.Context, id StreamID) (Stream, error)
	// Streams lists an account's streams, by id.
	Streams(ctx context.Context, account string) ([]Stream, error)
	// DeleteStream removes the stream and all its records.
	DeleteStream(ctx context.Context, id StreamID) error

	// Append stores a batch atomically; when it returns nil the records are
	// durable. ErrNoStream if the stream does not exist. It keeps no spool
	// position: for imports and tools that do not retry.
	Append(ctx context.Context, id StreamID, recs []flow.Record) error
	// Commit stores a batch from the stream's spool and, with it, the
	// position after it (b.Next()), so that a batch retried after an
	// ambiguous failure or a restart is stored once: records before the
	// stored position are skipped. A position after it (records the spool
	// lost) is accepted.
	Commit(ctx context.Context, id StreamID, b Batch) error
	// Committed returns the spool position after the last record Commit
	// stored: where the stream's spool resumes. 0 for a stream never
	// committed to, or one the store does not hold.
	Committed(ctx context.Context, id StreamID) (uint64, error)
	// Query answers a request over one stream. A stream the store does
	// not hold (never written to, or deleted) answers as one without
	// records; the query writes nothing.
	Query(ctx context.Context, id StreamID, q query.Request) (*query.Response, error)
	// QueryStreams answers a request over the records of several streams
	// as if they were one; a stream listed twice counts once. Streams it
	// does not hold answer as empty, as in Query.
	QueryStreams(ctx context.Context, ids []StreamID, q query.Request) (*query.Response, error)
	// Expire drops the days of every stream that are older than its
	// retention at time now. In serve the retention is the control
	// plane's, brought in by Follow.
	Expire(ctx context.Context, now time.Time) error

	Close() error
}

// Batch is a run of a log stream's records as its spool numbers them:
// Records[i] is record number First+i of the stream.
type Batch struct {
	First   uint64
	Records []flow.Record
}

// Next is the position after the batch.
func (b Batch) Next() uint64 { return b.First + uint64(len(b.Records)) }

// After returns the part of the batch from position next on.
func (b Batch) After(next uint64) Batch {
	switch {
	case next <= b.First:
		return b
	case next >= b.Next():
		return Batch{First: b.Next()}
	}
	return Batch{First: next, Records: b.Records[next-b.First:]}
}

// Day is the day (UTC, days since 1970-01-01) a record belongs to, by end.
func Day(endMS int64) int64 {
	d := endMS / 86400000
	if endMS < 0 && endMS%86400000 != 0 {
		d--
	}
	return d
}

// ExpiredBefore returns the first day kept by a retention of days at now:
// days before it may be dropped. Retention 0 keeps everything.
func ExpiredBefore(now time.Time, days int) (int64, bool) {
	if days <= 0 {
		return 0, false
	}
	return Day(now.UnixMilli()) - int64(days) + 1, true
}

// LocalAccount owns the streams of the embedded store when it is used
// without the control plane (flowlog meter / query / export --data-dir).
const LocalAccount = "local"
