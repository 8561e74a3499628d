package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Bootstrap is the first account, made at first start.
type Bootstrap struct {
	Key       AccessKey
	Created   bool // true when this call generated the key (print it once)
	Reenabled bool // the configured key had been disabled and is enabled again
}

// EnsureBootstrap makes sure the bootstrap account and an enabled key of it
// exist. When accountID, keyID and secret are given (from the environment)
// they are the operator's truth: the key is created if missing (also after
// it was deleted), enabled if disabled, and its secret updated if changed.
// When they are empty, the oldest enabled bootstrap key is used, or, when
// there is none (all deleted or disabled), a new one is generated.
func (s *Service) EnsureBootstrap(ctx context.Context, accountID, keyID, secret string) (Bootstrap, error) {
	if (keyID == "") != (secret == "") {
		return Bootstrap{}, errors.New("FLOWLOG_ACCESS_KEY_ID and FLOWLOG_ACCESS_KEY_SECRET must be set together")
	}
	var out Bootstrap
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		var stored string
		err := tx.QueryRowContext(ctx, `SELECT id FROM accounts WHERE bootstrap = 1`).Scan(&stored)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		switch {
		case accountID == "" && stored != "":
			accountID = stored
		case accountID == "":
			accountID = NewAccountID()
		case stored != "" && stored != accountID:
			return fmt.Errorf("data dir belongs to bootstrap account %s, not FLOWLOG_ACCOUNT_ID=%s", stored, accountID)
		}
		now := unixNano(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, bootstrap, created_at) VALUES (?, 1, ?)
			ON CONFLICT (id) DO UPDATE SET bootstrap = 1`, accountID, now); err != nil {
			return err
		}
		if keyID == "" {
			err := tx.QueryRowContext(ctx, `SELECT id, secret FROM access_keys WHERE account_id = ? AND enabled = 1
				ORDER BY created_at LIMIT 1`, accountID).Scan(&keyID, &secret)
			if err == nil {
				out.Key = AccessKey{ID: keyID, Secret: secret, AccountID: accountID, Status: KeyEnabled}
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			keyID, secret = NewAccessKey()
			out.Created = true
		}
		var owner string
		enabled := true
		err = tx.QueryRowContext(ctx, `SELECT account_id, enabled FROM access_keys WHERE id = ?`, keyID).
			Scan(&owner, &enabled)
		if err == nil && owner != accountID {
			return fmt.Errorf("access key %s belongs to another account", keyID)
		}
		out.Reenabled = !enabled
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_keys (id, secret, account_id, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET secret = excluded.secret, enabled = 1`,
			keyID, secret, accountID, now); err != nil {
			return err
		}
		out.Key = AccessKey{ID: keyID, Secret: secret, AccountID: accountID, Status: KeyEnabled}
		return nil
	})
	return out, err
}

// IsBootstrap reports whether account is the bootstrap account.
func (s *Service) IsBootstrap(ctx context.Context, account string) (bool, error) {
	var b int
	err := s.db.QueryRowContext(ctx, `SELECT bootstrap FROM accounts WHERE id = ?`, account).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return b == 1, err
}

// CreateAccessKey makes another key for account.
func (s *Service) CreateAccessKey(ctx context.Context, account string) (AccessKey, error) {
	id, secret := NewAccessKey()
	k := AccessKey{ID: id, Secret: secret, AccountID: account, Status: KeyEnabled, CreatedAt: s.now()}
	_, err := s.db.ExecContext(ctx, `INSERT INTO access_keys (id, secret, account_id, created_at) VALUES (?, ?, ?, ?)`,
		k.ID, k.Secret, k.AccountID, unixNano(k.CreatedAt))
	return k, err
}

// CreateAccount makes a new account with one access key. Only the bootstrap
// account may do this.
func (s *Service) CreateAccount(ctx context.Context, caller string) (AccessKey, error) {
	boot, err := s.IsBootstrap(ctx, caller)
	if err != nil {
		return AccessKey{}, err
	}
	if !boot {
		return AccessKey{}, &Error{Kind: ErrForbidden, Message: "only the bootstrap account may create accounts"}
	}
	id, secret := NewAccessKey()
	k := AccessKey{ID: id, Secret: secret, AccountID: NewAccountID(), Status: KeyEnabled, CreatedAt: s.now()}
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, created_at) VALUES (?, ?)`,
			k.AccountID, unixNano(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO access_keys (id, secret, account_id, created_at) VALUES (?, ?, ?, ?)`,
			k.ID, k.Secret, k.AccountID, unixNano(k.CreatedAt))
		return err
	})
	return k, err
}
