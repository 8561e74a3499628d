package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// refSign signs as the Huawei SDK's signer does, written from the scheme's
// description rather than from this package: it signs every header given
// plus X-Sdk-Date, and puts X-Sdk-Content-Sha256's value (when present) in
// place of the body hash, so the verifier is checked against a second
// opinion and against what a client may claim.
func refSign(r *http.Request, body []byte, key, secret string, date time.Time) {
	d := date.UTC().Format("20060102T150405Z")
	r.Header.Set("X-Sdk-Date", d)
	var names []string
	for n := range r.Header {
		names = append(names, strings.ToLower(n))
	}
	sort.Strings(names)
	var hdrs strings.Builder
	for _, n := range names {
		fmt.Fprintf(&hdrs, "%s:%s\n", n, strings.TrimSpace(r.Header.Get(n)))
	}
	hash := r.Header.Get("X-Sdk-Content-Sha256")
	if hash == "" {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	canon := r.Method + "\n" + r.URL.Path + "/\n" + r.URL.RawQuery + "\n" + hdrs.String() + "\n" +
		strings.Join(names, ";") + "\n" + hash
	ch := sha256.Sum256([]byte(canon))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("SDK-HMAC-SHA256\n" + d + "\n" + hex.EncodeToString(ch[:])))
	r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access="+key+", SignedHeaders="+strings.Join(names, ";")+
		", Signature="+hex.EncodeToString(m.Sum(nil)))
}

var testLookup = Lookup(func(_ context.Context, id string) (string, string, bool, error) {
	switch id {
	case "AK1":
		return "secret-1", "acct-1", true, nil
	case "AK2":
		return "secret-2", "acct-2", true, nil
	case "OFF":
		return "", "", false, ErrKeyDisabled
	}
	return "", "", false, nil
})

func reason(err error) Reason {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	if err != nil {
		return Reason("error: " + err.Error())
	}
	return ""
}

func TestContentHash(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	signed := `{"name":"ok"}`
	sum := sha256.Sum256([]byte(signed))
	hash := hex.EncodeToString(sum[:])
	cases := []struct {
		name   string
		header string // X-Sdk-Content-Sha256, signed with the request
		body   string // the body sent, signed over signed
		want   Reason
	}{
		{"no header", "", signed, ""},
		{"header equals the body's hash", hash, signed, ""},
		{"header in upper case", strings.ToUpper(hash), signed, ""},
		{"UNSIGNED-PAYLOAD, empty body", UnsignedPayload, "", ""},
		{"substituted body, original hash in the header", hash, `{"name":"evil"}`, ContentHashMismatch},
		{"UNSIGNED-PAYLOAD with a body", UnsignedPayload, signed, ContentHashMismatch},
		{"header of another body", strings.Repeat("0", 64), signed, ContentHashMismatch},
		{"no header, substituted body", "", `{"name":"evil"}`, SignatureMismatch},
	}
	for _, c := range cases {
		r, _ := http.NewRequest("POST", "http://h/v1/gateways", nil)
		r.Header.Set("User-Agent", "t")
		if c.header != "" {
			r.Header.Set("X-Sdk-Content-Sha256", c.header)
		}
		signBody := []byte(signed)
		if c.header == UnsignedPayload && c.body == "" {
			signBody = nil
		}
		refSign(r, signBody, "AK1", "secret-1", now)
		_, err := Verify(context.Background(), r, []byte(c.body), testLookup, now)
		if got := reason(err); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// The header twice, even with one right value, is refused.
	r, _ := http.NewRequest("POST", "http://h/v1/gateways", nil)
	r.Header["X-Sdk-Content-Sha256"] = []string{hash, strings.Repeat("0", 64)}
	refSign(r, []byte(signed), "AK1", "secret-1", now)
	if _, err := Verify(context.Background(), r, []byte(signed), testLookup, now); reason(err) != ContentHashMismatch {
		t.Errorf("two X-Sdk-Content-Sha256 headers: %v", err)
	}
}

// Begin decides on the key and the date before any body exists.
func TestBeginBeforeBody(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		key  string
		date time.Time
		want Reason
	}{
		{"AK1", now, ""},
		{"AK1", now.Add(-MaxSkew + time.Second), ""},
		{"AK1", now.Add(MaxSkew - time.Second), ""},
		{"AK1", now.Add(-MaxSkew - time.Second), RequestExpired},
		{"AK1", now.Add(MaxSkew + time.Second), RequestExpired},
		{"NOPE", now, UnknownAccessKey},
		{"OFF", now, AccessKeyDisabled},
	}
	for _, c := range cases {
		r, _ := http.NewRequest("POST", "http://h/v1/x", nil)
		refSign(r, []byte("body never read"), c.key, "secret-1", c.date)
		p, err := Begin(context.Background(), r, testLookup, now)
		if got := reason(err); got != c.want {
			t.Errorf("%s at %v: got %q, want %q", c.key, c.date.Sub(now), got, c.want)
		}
		if err == nil && (p.Key.AccountID != "acct-1" || !p.Date.Equal(c.date.Truncate(time.Second))) {
			t.Errorf("pending %+v", p.Key)
		}
	}
}

func TestReplayCache(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewReplayCache(ReplayConfig{MaxPerAccount: 2})
	k := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	steps := []struct {
		account, key string
		expiry, now  time.Time
		want         ReplayResult
	}{
		{"a", "x", t0.Add(time.Minute), t0, ReplayFresh},
		{"a", "x", t0.Add(time.Minute), t0.Add(30 * time.Second), ReplayUsed},
		{"b", "x", t0.Add(time.Minute), t0, ReplayFresh}, // another account's x
		{"a", "y", t0.Add(2 * time.Minute), t0, ReplayFresh},
		{"a", "z", t0.Add(2 * time.Minute), t0, ReplayFull},
		{"b", "z", t0.Add(2 * time.Minute), t0, ReplayFresh}, // a is full, b is not
		{"a", "z", t0.Add(3 * time.Minute), t0.Add(time.Minute), ReplayFresh},
		{"a", "x", t0.Add(4 * time.Minute), t0.Add(time.Minute), ReplayFull},
	}
	for i, s := range steps {
		if got := c.Claim(s.account, k(s.key), s.expiry, s.now); got != s.want {
			t.Fatalf("step %d (%s %s): got %v, want %v", i, s.account, s.key, got, s.want)
		}
	}
	if c.Len("a") != 2 || c.Len("b") != 2 {
		t.Fatalf("live: a %d, b %d", c.Len("a"), c.Len("b"))
	}
	// A sweep forgets idle accounts whose entries have all expired.
	c.Claim("c", k("x"), t0.Add(time.Hour), t0.Add(10*time.Minute))
	if c.Len("a") != 0 || c.Len("b") != 0 || len(c.accounts) != 1 {
		t.Fatalf("after the sweep: a %d, b %d, accounts %d", c.Len("a"), c.Len("b"), len(c.accounts))
	}
}

// Claim refuses a changing request's second acceptance; reads repeat.
func TestClaim(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewReplayCache(ReplayConfig{MaxPerAccount: 4})
	accept := func(method, nonce string) error {
		r, _ := http.NewRequest(method, "http://h/v1/access-keys", nil)
		if nonce != "" {
			r.Header.Set(NonceHeader, nonce)
		}
		refSign(r, nil, "AK1", "secret-1", now)
		p, err := Begin(context.Background(), r, testLookup, now)
		if err == nil {
			err = p.Finish(r, nil)
		}
		if err == nil {
			err = p.Claim(c, method, now)
		}
		return err
	}
	for _, m := range []string{"GET", "GET", "HEAD", "HEAD"} {
		if err := accept(m, ""); err != nil {
			t.Fatalf("repeated %s: %v", m, err)
		}
	}
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		if err := accept(m, ""); err != nil {
			t.Fatalf("first %s: %v", m, err)
		}
		if err := accept(m, ""); reason(err) != Replay {
			t.Fatalf("second %s: %v", m, err)
		}
	}
	// Four are remembered (the bound), so a fifth new one is refused as
	// too many, with its own status.
	var f *Failure
	if err := accept("POST", "n1"); !errors.As(err, &f) || f.Reason != TooManyRequests || f.Status() != 429 {
		t.Fatalf("beyond the bound: %v", err)
	}
}
