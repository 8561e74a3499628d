// Package console holds the server-side state of web-console sign-in:
// sessions made from an access key, and the throttle on failed sign-ins.
// Both live in memory only: a restart signs every console out, and nothing
// about a session is ever written to disk.
package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// Config bounds sessions and failed sign-ins; zero fields take defaults.
type Config struct {
	// IdleTimeout ends a session unused for that long. Default 1 h.
	IdleTimeout time.Duration
	// MaxAge ends a session that long after sign-in, however busy. Default 12 h.
	MaxAge time.Duration
	// MaxPerAccount bounds an account's sessions; signing in beyond it ends
	// the account's least recently used one. Default 32.
	MaxPerAccount int
	// MaxSessions bounds all sessions; beyond it sign-in is refused until
	// some expire. Default 10000.
	MaxSessions int
	// MaxFailures failed sign-ins per key id within FailureWindow lock
	// sign-in with that key id until the window ends; MaxFailures×3 do it
	// for a client address. Default 10 in 10 min.
	MaxFailures   int
	FailureWindow time.Duration
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.IdleTimeout, time.Hour)
	def(&c.MaxAge, 12*time.Hour)
	def(&c.FailureWindow, 10*time.Minute)
	if c.MaxPerAccount <= 0 {
		c.MaxPerAccount = 32
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 10
	}
	return c
}

// Session is a signed-in console: the access key it was made from, and the
// token that state-changing requests must echo in X-CSRF-Token.
type Session struct {
	AccountID string
	KeyID     string
	CSRF      string
	Created   time.Time
	LastUsed  time.Time
	Expires   time.Time // Created + MaxAge
	// KeyEnded: the key was disabled or deleted. Get reports such a session
	// once, so the console can say why, and forgets it.
	KeyEnded bool
}

// ErrFull is what Create answers when MaxSessions sessions are live.
var ErrFull = errors.New("the server holds as many console sessions as it allows; retry later")

// Sessions is the in-memory session table. Only a hash of each token is
// kept, so the table's contents cannot be replayed as cookies.
type Sessions struct {
	cfg       Config
	mu        sync.Mutex
	byHash    map[[32]byte]*Session
	nextSweep time.Time
}

// NewSessions returns an empty table.
func NewSessions(cfg Config) *Sessions {
	return &Sessions{cfg: cfg.WithDefaults(), byHash: map[[32]byte]*Session{}}
}

// Config is the table's configuration, defaults filled.
func (s *Sessions) Config() Config { return s.cfg }

// Create starts a session for key and returns its token (256 random bits,
// for the cookie) and the session.
func (s *Sessions) Create(account, keyID string, now time.Time) (string, Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byHash) >= s.cfg.MaxSessions || !now.Before(s.nextSweep) {
		s.sweep(now)
	}
	s.makeRoom(account)
	if len(s.byHash) >= s.cfg.MaxSessions {
		return "", Session{}, ErrFull
	}
	token := randomToken()
	ses := &Session{AccountID: account, KeyID: keyID, CSRF: randomToken(), Created: now, LastUsed: now,
		Expires: now.Add(s.cfg.MaxAge)}
	s.byHash[hash(token)] = ses
	return token, *ses, nil
}

// Get returns the live session of token and marks it used; ok is false for
// an unknown, ended or expired one (an expired one is forgotten). A session
// whose key ended is returned once more, with KeyEnded set.
func (s *Sessions) Get(token string, now time.Time) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := hash(token)
	ses, ok := s.byHash[h]
	if !ok {
		return Session{}, false
	}
	if s.expired(ses, now) {
		delete(s.byHash, h)
		return Session{}, false
	}
	if ses.KeyEnded {
		delete(s.byHash, h)
		return *ses, true
	}
	ses.LastUsed = now
	return *ses, true
}

// End forgets the session of token (signing out).
func (s *Sessions) End(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byHash, hash(token))
}

// EndKey ends every session made from the access key (it was disabled or
// deleted), for good: enabling the key again does not revive them.
func (s *Sessions) EndKey(keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ses := range s.byHash {
		if ses.KeyID == keyID {
			ses.KeyEnded = true
		}
	}
}

// Len is the number of sessions held, expired ones not yet swept included.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byHash)
}

func (s *Sessions) expired(ses *Session, now time.Time) bool {
	return !now.Before(ses.Expires) || now.Sub(ses.LastUsed) >= s.cfg.IdleTimeout
}

// gone: expired, or ended with its key (kept only to say so once).
func (s *Sessions) gone(ses *Session, now time.Time) bool {
	return ses.KeyEnded || s.expired(ses, now)
}

// sweep drops sessions that are gone; it runs at most once a minute unless the
// table is full, so sign-in costs O(sessions) rarely.
func (s *Sessions) sweep(now time.Time) {
	for h, ses := range s.byHash {
		if s.gone(ses, now) {
			delete(s.byHash, h)
		}
	}
	s.nextSweep = now.Add(time.Minute)
}

// makeRoom ends the account's least recently used sessions until it has
// room for one more.
func (s *Sessions) makeRoom(account string) {
	for {
		n := 0
		var lru [32]byte
		var lruAt time.Time
		for h, ses := range s.byHash {
			if ses.AccountID != account {
				continue
			}
			if n == 0 || ses.LastUsed.Before(lruAt) {
				lru, lruAt = h, ses.LastUsed
			}
			n++
		}
		if n < s.cfg.MaxPerAccount {
			return
		}
		delete(s.byHash, lru)
	}
}

// SameToken compares a presented CSRF token with the session's in constant
// time.
func SameToken(presented, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}

func hash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// randomToken is 256 random bits, URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b)
}
