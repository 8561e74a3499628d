package aliyun

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"flowlog/internal/api/auth"
)

// verifier checks signature v1: the common parameters, the timestamp window,
// the HMAC-SHA1 signature and that the nonce is fresh.
type verifier struct {
	window time.Duration
	now    func() time.Time
	keys   auth.Lookup
	nonces *auth.ReplayCache // per account, so one cannot fill it for others
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
	if params["SecurityToken"] != "" || params["BearerToken"] != "" {
		return "", errFeatureSTS
	}
	id := params["AccessKeyId"]
	secret, account, ok, err := v.keys(ctx, id)
	if errors.Is(err, auth.ErrKeyDisabled) {
		return "", errAccessKeyInactive
	}
	if err != nil {
		return "", fmt.Errorf("looking up access key: %w", err)
	}
	if !ok {
		return "", errAccessKeyNotFound
	}
	sts := StringToSign(method, params)
	if !hmac.Equal([]byte(Sign(secret, sts)), []byte(params["Signature"])) {
		return "", signatureMismatch(sts)
	}
	// Only a correctly signed request may claim a nonce; it is kept until
	// its timestamp leaves the window, after which a replay fails on time.
	// The nonce is hashed so a long one costs no more memory than a short one.
	key := sha256.Sum256([]byte(id + "\x00" + params["SignatureNonce"]))
	switch v.nonces.Claim(account, key, ts.Add(v.window), now) {
	case auth.ReplayUsed:
		return "", errNonceUsed
	case auth.ReplayFull:
		return "", errBusy
	}
	return account, nil
}
