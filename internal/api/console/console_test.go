package console

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestSessionExpiry(t *testing.T) {
	s := NewSessions(Config{IdleTimeout: time.Hour, MaxAge: 3 * time.Hour})
	tok, ses, err := s.Create("acct", "KEY", t0)
	if err != nil || len(tok) < 43 || len(ses.CSRF) < 43 || tok == ses.CSRF || !ses.Expires.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("Create: %q %+v %v", tok, ses, err)
	}
	// Used every 59 minutes, it lives until its absolute expiry, not beyond.
	now := t0
	for now.Add(59 * time.Minute).Before(t0.Add(3 * time.Hour)) {
		now = now.Add(59 * time.Minute)
		if got, ok := s.Get(tok, now); !ok || got.AccountID != "acct" || got.KeyID != "KEY" {
			t.Fatalf("at %v: %+v %v", now.Sub(t0), got, ok)
		}
	}
	if _, ok := s.Get(tok, t0.Add(3*time.Hour)); ok {
		t.Fatal("the session outlived its absolute expiry")
	}
	// Idle for an hour, it ends.
	tok, _, _ = s.Create("acct", "KEY", t0)
	if _, ok := s.Get(tok, t0.Add(time.Hour)); ok {
		t.Fatal("the session outlived its idle timeout")
	}
	if s.Len() != 0 {
		t.Fatalf("expired sessions are kept: %d", s.Len())
	}
	if _, ok := s.Get("not-a-token", t0); ok {
		t.Fatal("an unknown token is a session")
	}
}

func TestSessionEnd(t *testing.T) {
	s := NewSessions(Config{})
	a, _, _ := s.Create("acct", "K1", t0)
	b, _, _ := s.Create("acct", "K2", t0)
	c, _, _ := s.Create("acct", "K1", t0)
	s.End(a)
	if _, ok := s.Get(a, t0); ok {
		t.Fatal("an ended session still works")
	}
	s.EndKey("K1")
	if got, ok := s.Get(c, t0); !ok || !got.KeyEnded {
		t.Fatal("a session of a disabled key is not reported as such")
	}
	if _, ok := s.Get(c, t0); ok {
		t.Fatal("a session of a disabled key is kept")
	}
	if _, ok := s.Get(b, t0); !ok {
		t.Fatal("ending one key's sessions ended another key's")
	}
}

func TestSessionBounds(t *testing.T) {
	s := NewSessions(Config{MaxPerAccount: 3, MaxSessions: 5})
	var toks []string
	for i := range 4 {
		tok, _, err := s.Create("a", "KA", t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	// The fourth ended the least recently used: the first.
	if _, ok := s.Get(toks[0], t0.Add(5*time.Second)); ok {
		t.Fatal("an account holds more sessions than MaxPerAccount")
	}
	for _, tok := range toks[1:] {
		if _, ok := s.Get(tok, t0.Add(5*time.Second)); !ok {
			t.Fatal("a recent session was ended")
		}
	}
	s.Create("b", "KB", t0)
	s.Create("b", "KB", t0)
	if _, _, err := s.Create("c", "KC", t0); !errors.Is(err, ErrFull) {
		t.Fatalf("over MaxSessions: %v, want ErrFull", err)
	}
	// Once sessions expire there is room again.
	if _, _, err := s.Create("c", "KC", t0.Add(2*time.Hour)); err != nil || s.Len() != 1 {
		t.Fatalf("after expiry: %v, %d sessions", err, s.Len())
	}
}

func TestSameToken(t *testing.T) {
	if !SameToken("abc", "abc") || SameToken("abd", "abc") || SameToken("", "") || SameToken("abc", "") {
		t.Fatal("SameToken is wrong")
	}
}

func TestThrottle(t *testing.T) {
	th := NewThrottle(Config{MaxFailures: 3, FailureWindow: time.Minute})
	for range 3 {
		if ok, _ := th.Allow("K", "10.0.0.1", t0); !ok {
			t.Fatal("refused before the limit")
		}
		th.Failed("K", "10.0.0.1", t0)
	}
	ok, wait := th.Allow("K", "10.0.0.2", t0.Add(10*time.Second))
	if ok || wait != 50*time.Second {
		t.Fatalf("key over its limit: %v %v", ok, wait)
	}
	if ok, _ := th.Allow("OTHER", "10.0.0.1", t0); !ok {
		t.Fatal("the address was locked by one key's failures")
	}
	if ok, _ := th.Allow("K", "10.0.0.1", t0.Add(time.Minute)); !ok {
		t.Fatal("still refused after the window")
	}
	// An address guessing many key ids is held back at 3×MaxFailures.
	for i := range 9 {
		th.Failed(string(rune('a'+i)), "192.0.2.1", t0)
	}
	if ok, _ := th.Allow("fresh", "192.0.2.1", t0); ok {
		t.Fatal("an address over its limit may still sign in")
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5000":           "192.0.2.1",
		"[::ffff:192.0.2.1]:80":    "192.0.2.1",
		"[2001:db8:1:2:3::4]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:44": "2001:db8:1:2::/64",
	} {
		if got := ClientAddr(in); got != want {
			t.Errorf("ClientAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
