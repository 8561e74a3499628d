// Package auth checks and makes request signatures in the SDK-HMAC-SHA256
// scheme (the Huawei Cloud SDK signer), which the native API and the Huawei
// dialect use.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Algorithm is the scheme's name, first word of the Authorization header.
const Algorithm = "SDK-HMAC-SHA256"

// DateFormat is the layout of the X-Sdk-Date header.
const DateFormat = "20060102T150405Z"

// MaxSkew is how far X-Sdk-Date may be from the server's clock, either way.
// Five minutes (Kerberos' and AWS STS's figure) covers clocks that NTP keeps
// within milliseconds and slow uploads, and bounds a signature's life to ten
// minutes: the time the replay cache has to remember it.
const MaxSkew = 5 * time.Minute

// UnsignedPayload is the X-Sdk-Content-Sha256 value the Huawei SDK sends for
// content types other than JSON; it is accepted on empty bodies only.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// NonceHeader carries a random value that flowlog's own client signs into
// every request, so that two identical calls in one second are two requests
// to the replay check, not a replay.
const NonceHeader = "X-Flowlog-Nonce"

// Reason says why a request failed authentication; each dialect maps it to
// its own error code.
type Reason string

const (
	MissingAuthorization   Reason = "MissingAuthorization"
	MalformedAuthorization Reason = "MalformedAuthorization"
	InvalidDate            Reason = "InvalidDate"
	RequestExpired         Reason = "RequestExpired"
	UnknownAccessKey       Reason = "UnknownAccessKey"
	AccessKeyDisabled      Reason = "AccessKeyDisabled"
	SignatureMismatch      Reason = "SignatureMismatch"
	ContentHashMismatch    Reason = "ContentHashMismatch"
	Replay                 Reason = "Replay"
	// TooManyRequests: the account's replay memory is full (see ReplayCache);
	// answered with 429, not 401.
	TooManyRequests Reason = "TooManyRequests"
)

// Failure is an authentication failure: a reason and a message for people.
// The message never contains the secret or the expected signature.
type Failure struct {
	Reason  Reason
	Message string
}

func (f *Failure) Error() string { return f.Message }

func fail(r Reason, format string, args ...any) *Failure {
	return &Failure{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Key is a verified caller.
type Key struct {
	ID        string
	AccountID string
}

// ErrKeyDisabled is what a Lookup returns for a key that exists but has been
// disabled: the request is refused as such, not as an unknown key.
var ErrKeyDisabled = errors.New("access key is disabled")

// Lookup finds an access key's secret and account; ok is false for an
// unknown key, and err is ErrKeyDisabled for a disabled one.
type Lookup func(ctx context.Context, keyID string) (secret, account string, ok bool, err error)

// Verify checks the SDK-HMAC-SHA256 signature of r, whose body has been read
// into body. It returns the caller's key, a *Failure, or another error when
// the key lookup itself failed. Servers use Begin and Finish instead, so as
// to check the key before reading the body.
func Verify(ctx context.Context, r *http.Request, body []byte, lookup Lookup, now time.Time) (Key, error) {
	p, err := Begin(ctx, r, lookup, now)
	if err != nil {
		return Key{}, err
	}
	if err := p.Finish(r, body); err != nil {
		return Key{}, err
	}
	return p.Key, nil
}

// Pending is a request whose Authorization header, date and access key have
// been checked, but not yet its body and signature.
type Pending struct {
	Key    Key
	Date   time.Time // X-Sdk-Date
	secret string
	signed []string
	sig    string
}

// Begin checks what can be checked without the body: the Authorization
// header, the date window and the access key. It returns a *Failure, or
// another error when the key lookup itself failed.
func Begin(ctx context.Context, r *http.Request, lookup Lookup, now time.Time) (*Pending, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, fail(MissingAuthorization, "the request is not signed: Authorization header missing")
	}
	keyID, signed, sig, err := parseAuthorization(h)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(signed, "x-sdk-date") {
		return nil, fail(MalformedAuthorization, "SignedHeaders must include x-sdk-date")
	}
	for _, name := range signed {
		if name != "host" && len(r.Header.Values(name)) == 0 {
			return nil, fail(MalformedAuthorization, "signed header %q is not in the request", name)
		}
	}
	date, err := time.Parse(DateFormat, r.Header.Get("X-Sdk-Date"))
	if err != nil {
		return nil, fail(InvalidDate, "X-Sdk-Date must have the form %s", DateFormat)
	}
	if d := now.Sub(date); d > MaxSkew || d < -MaxSkew {
		return nil, fail(RequestExpired, "X-Sdk-Date %s is more than %v from the server's time %s",
			date.Format(DateFormat), MaxSkew, now.UTC().Format(DateFormat))
	}
	secret, account, ok, err := lookup(ctx, keyID)
	if errors.Is(err, ErrKeyDisabled) {
		return nil, fail(AccessKeyDisabled, "access key %q is disabled", keyID)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail(UnknownAccessKey, "access key %q does not exist", keyID)
	}
	return &Pending{Key: Key{ID: keyID, AccountID: account}, Date: date, secret: secret, signed: signed, sig: sig}, nil
}

// Finish checks the body against X-Sdk-Content-Sha256 and the signature
// over the request with that body; it returns nil or a *Failure.
func (p *Pending) Finish(r *http.Request, body []byte) error {
	hash, err := contentHash(r, body)
	if err != nil {
		return err
	}
	want := signature(p.secret, r.Header.Get("X-Sdk-Date"), canonicalRequest(r, p.signed, hash))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(p.sig))) {
		return fail(SignatureMismatch, "the request signature does not match; check the access key secret "+
			"and that no proxy changed a signed header")
	}
	return nil
}

// contentHash is the body hash the canonical request carries: always that of
// the body received. X-Sdk-Content-Sha256 may only restate it, or say
// UNSIGNED-PAYLOAD for an empty body.
func contentHash(r *http.Request, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	real := hex.EncodeToString(sum[:])
	vs := r.Header.Values("X-Sdk-Content-Sha256")
	switch {
	case len(vs) == 0:
		return real, nil
	case len(vs) > 1:
		return "", fail(ContentHashMismatch, "X-Sdk-Content-Sha256 is given %d times", len(vs))
	case vs[0] == UnsignedPayload && len(body) == 0:
		return vs[0], nil
	case vs[0] == UnsignedPayload:
		return "", fail(ContentHashMismatch, "X-Sdk-Content-Sha256 %s is refused on a request with a body; "+
			"the body must be signed", UnsignedPayload)
	case strings.EqualFold(vs[0], real):
		return vs[0], nil
	}
	return "", fail(ContentHashMismatch, "X-Sdk-Content-Sha256 is not the SHA-256 of the body received")
}

// parseAuthorization splits "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(h string) (keyID string, signed []string, sig string, err error) {
	alg, rest, _ := strings.Cut(h, " ")
	if alg != Algorithm {
		return "", nil, "", fail(MalformedAuthorization, "unsupported signing algorithm %q; want %s", alg, Algorithm)
	}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Access":
			keyID = v
		case "SignedHeaders":
			signed = strings.Split(strings.ToLower(v), ";")
		case "Signature":
			sig = v
		}
	}
	if keyID == "" || len(signed) == 0 || signed[0] == "" || sig == "" {
		return "", nil, "", fail(MalformedAuthorization, "Authorization must carry Access, SignedHeaders and Signature")
	}
	return keyID, signed, sig, nil
}

// Sign adds X-Sdk-Date and Authorization to r for body, signing every header
// already present except Content-Type (as the Go SDK does) plus x-sdk-date.
func Sign(r *http.Request, body []byte, keyID, secret string, now time.Time) {
	date := now.UTC().Format(DateFormat)
	r.Header.Set("X-Sdk-Date", date)
	var signed []string
	for name := range r.Header {
		n := strings.ToLower(name)
		if n != "content-type" && n != "authorization" && !strings.Contains(n, "_") {
			signed = append(signed, n)
		}
	}
	sort.Strings(signed)
	sum := sha256.Sum256(body)
	sig := signature(secret, date, canonicalRequest(r, signed, hex.EncodeToString(sum[:])))
	r.Header.Set("Authorization", fmt.Sprintf("%s Access=%s, SignedHeaders=%s, Signature=%s",
		Algorithm, keyID, strings.Join(signed, ";"), sig))
}

func signature(secret, date, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	sts := Algorithm + "\n" + date + "\n" + hex.EncodeToString(sum[:])
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(sts))
	return hex.EncodeToString(m.Sum(nil))
}

// canonicalRequest is the text signed; contentHash is the hex SHA-256 of the
// body (or UNSIGNED-PAYLOAD).
func canonicalRequest(r *http.Request, signed []string, contentHash string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	b.WriteString(canonicalURI(r.URL.Path) + "\n")
	b.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	sorted := append([]string(nil), signed...)
	sort.Strings(sorted)
	for _, name := range sorted {
		v := r.Header.Get(name)
		if name == "host" {
			v = r.Host
		}
		b.WriteString(name + ":" + strings.TrimSpace(v) + "\n")
	}
	// The header block ends with its own newline, then the separator.
	b.WriteString("\n" + strings.Join(sorted, ";") + "\n")
	b.WriteString(contentHash)
	return b.String()
}

func canonicalURI(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	p := strings.Join(segs, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&")
}

// escape percent-encodes everything but RFC 3986's unreserved characters.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Status is the HTTP status a failure is answered with: 429 when the
// account's replay memory is full, else 401.
func (f *Failure) Status() int {
	if f.Reason == TooManyRequests {
		return http.StatusTooManyRequests
	}
	return http.StatusUnauthorized
}
