package control

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// UsageFlush is how often at most a key's last use is written to the
// database: the one connection serialises every control-plane write, so a
// busy key must not cost a write per request. Between writes the time is
// kept in memory, and listings show the newer of the two.
const UsageFlush = time.Minute

const keyCols = `id, secret, account_id, enabled, created_at, last_used_at`

func scanKey(row scanner) (AccessKey, error) {
	var k AccessKey
	var enabled bool
	var created, used int64
	err := row.Scan(&k.ID, &k.Secret, &k.AccountID, &enabled, &created, &used)
	k.Status = keyStatus(enabled)
	k.CreatedAt = fromNano(created)
	if used != 0 {
		t := fromNano(used)
		k.LastUsedAt = &t
	}
	return k, err
}

func keyStatus(enabled bool) string {
	if enabled {
		return KeyEnabled
	}
	return KeyDisabled
}

// LookupKey returns the access key with id keyID, whatever its account, for
// request signing checks. It reads the database each time, so that a key
// disabled or deleted is refused from the next request on.
func (s *Service) LookupKey(ctx context.Context, keyID string) (AccessKey, error) {
	return queryOne(ctx, s.db, scanKey, "access_key", keyID,
		`SELECT `+keyCols+` FROM access_keys WHERE id = ?`, keyID)
}

// ListAccessKeys returns account's keys, oldest first. Callers must not show
// their secrets.
func (s *Service) ListAccessKeys(ctx context.Context, account string) ([]AccessKey, error) {
	ks, err := queryAll(ctx, s.db, scanKey, `SELECT `+keyCols+` FROM access_keys
		WHERE account_id = ? ORDER BY created_at, id`, account)
	for i := range ks {
		s.usage.merge(&ks[i])
	}
	return ks, err
}

// SetAccessKeyEnabled enables or disables one of account's keys. Disabling
// the account's last enabled key is refused (ErrLastKey) unless force.
func (s *Service) SetAccessKeyEnabled(ctx context.Context, account, keyID string, enabled, force bool) (AccessKey, error) {
	var k AccessKey
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		var err error
		if k, err = s.ownKey(ctx, tx, account, keyID, !enabled && !force, "disable"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_keys SET enabled = ? WHERE id = ?`, enabled, keyID); err != nil {
			return err
		}
		k.Status = keyStatus(enabled)
		return nil
	})
	s.usage.merge(&k)
	return k, err
}

// DeleteAccessKey deletes one of account's keys; from then on it is an
// unknown key. Deleting the account's last enabled key is refused
// (ErrLastKey) unless force.
func (s *Service) DeleteAccessKey(ctx context.Context, account, keyID string, force bool) error {
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := s.ownKey(ctx, tx, account, keyID, !force, "delete"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM access_keys WHERE id = ?`, keyID)
		return err
	})
	if err == nil {
		s.usage.forget(keyID)
	}
	return err
}

// ownKey returns account's key keyID (another account's is not found). With
// guard, it refuses when the key is the account's last enabled one.
func (s *Service) ownKey(ctx context.Context, tx *sql.Tx, account, keyID string, guard bool, verb string) (AccessKey, error) {
	k, err := queryOne(ctx, tx, scanKey, "access_key", keyID,
		`SELECT `+keyCols+` FROM access_keys WHERE id = ? AND account_id = ?`, keyID, account)
	if err != nil || !guard || k.Status != KeyEnabled {
		return k, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM access_keys WHERE account_id = ? AND enabled = 1`,
		account).Scan(&n); err != nil {
		return k, err
	}
	if n <= 1 {
		return k, &Error{Kind: ErrLastKey, Resource: "access_key", Message: fmt.Sprintf(
			"access key %s is the last enabled key of this account: to %s it would lock the account out; "+
				"create and use another key first, or force it (force=true; --force in the CLI)", keyID, verb)}
	}
	return k, nil
}

// KeyUsed records that keyID signed a request that passed verification.
// The time is written to the database at most once per UsageFlush per key.
func (s *Service) KeyUsed(ctx context.Context, keyID string) error {
	now := s.now()
	if !s.usage.note(keyID, now) {
		return nil
	}
	err := s.writeUse(context.WithoutCancel(ctx), keyID, now)
	if err != nil {
		s.usage.unsave(keyID)
	}
	return err
}

// writeUse persists a key's last use, never moving it back.
func (s *Service) writeUse(ctx context.Context, keyID string, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE access_keys SET last_used_at = max(last_used_at, ?) WHERE id = ?`,
		unixNano(t), keyID)
	return err
}

// flushUsage writes the uses not yet persisted, at shutdown.
func (s *Service) flushUsage(ctx context.Context) error {
	for id, t := range s.usage.pending() {
		if err := s.writeUse(ctx, id, t); err != nil {
			return err
		}
	}
	return nil
}

// keyUsage keeps each key's last use in memory and when it was last
// persisted. It holds only keys that verified a request, so it is bounded by
// the number of keys.
type keyUsage struct {
	mu    sync.Mutex
	seen  map[string]time.Time // last verified use
	saved map[string]time.Time // last use written to the database
}

func newKeyUsage() *keyUsage {
	return &keyUsage{seen: map[string]time.Time{}, saved: map[string]time.Time{}}
}

// note records a use at now and reports whether it is due to be persisted
// (and marks it so).
func (u *keyUsage) note(id string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen[id] = now
	if now.Sub(u.saved[id]) < UsageFlush {
		return false
	}
	u.saved[id] = now
	return true
}

// unsave forgets a write that failed, so the next use tries again.
func (u *keyUsage) unsave(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.saved, id)
}

func (u *keyUsage) forget(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.seen, id)
	delete(u.saved, id)
}

// merge sets k's last use to the one in memory when that is newer.
func (u *keyUsage) merge(k *AccessKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.seen[k.ID]; ok && (k.LastUsedAt == nil || t.After(*k.LastUsedAt)) {
		k.LastUsedAt = &t
	}
}

// pending returns the uses newer than what was persisted.
func (u *keyUsage) pending() map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]time.Time{}
	for id, t := range u.seen {
		if t.After(u.saved[id]) {
			out[id] = t
		}
	}
	return out
}
