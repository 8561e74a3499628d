package aliyun

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"
)

// ErrKeyNotFound is what Keys returns for an AccessKeyId it does not know.
var ErrKeyNotFound = errors.New("access key not found")

// Keys resolves an AccessKeyId to its secret and the account that owns it.
type Keys interface {
	LookupAccessKey(ctx context.Context, id string) (secret, account string, err error)
}

// KeysFunc adapts a function to Keys.
type KeysFunc func(ctx context.Context, id string) (secret, account string, err error)

// LookupAccessKey calls f.
func (f KeysFunc) LookupAccessKey(ctx context.Context, id string) (string, string, error) {
	return f(ctx, id)
}

// verifier checks signature v1: the common parameters, the timestamp window,
// the HMAC-SHA1 signature and that the nonce is fresh.
type verifier struct {
	window time.Duration
	now    func() time.Time
	keys   Keys
	nonces *nonceCache
}

// timestampLayouts are the forms of Timestamp accepted: the documented
// second-precision UTC form first, then RFC 3339 with fractions or offsets.
var timestampLayouts = []string{"2006-01-02T15:04:05Z", time.RFC3339Nano}

func parseTimestamp(s string) (time.Time, bool) {
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// verify authenticates a request whose parameters (query and form merged)
// are params and returns the account of its access key.
func (v *verifier) verify(ctx context.Context, method string, params map[string]string) (string, error) {
	for _, name := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce", "Timestamp"} {
		if params[name] == "" {
			return "", missingCommon(name)
		}
	}
	if params["SignatureMethod"] != "HMAC-SHA1" {
		return "", errSignatureMethod
	}
	if sv, ok := params["SignatureVersion"]; ok && sv != "1.0" {
		return "", errSignatureVersion
	}
	ts, ok := parseTimestamp(params["Timestamp"])
	if !ok {
		return "", errTimestampFormat
	}
	now := v.now()
	if d := now.Sub(ts); d > v.window || d < -v.window {
		return "", errTimestampExpired
	}
	id := params["AccessKeyId"]
	secret, account, err := v.keys.LookupAccessKey(ctx, id)
	if errors.Is(err, ErrKeyNotFound) {
		return "", errAccessKeyNotFound
	}
	if err != nil {
		return "", fmt.Errorf("looking up access key: %w", err)
	}
	sts := StringToSign(method, params)
	if !hmac.Equal([]byte(Sign(secret, sts)), []byte(params["Signature"])) {
		return "", signatureMismatch(sts)
	}
	// Only a correctly signed request may claim a nonce; it is kept until
	// its timestamp leaves the window, after which a replay fails on time.
	switch v.nonces.add(id+"\x00"+params["SignatureNonce"], ts.Add(v.window), now) {
	case nonceUsed:
		return "", errNonceUsed
	case nonceFull:
		return "", errBusy
	}
	return account, nil
}
