package control

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// keysService opens a control plane on a fresh data dir, with a clock the
// test moves.
func keysService(t *testing.T, dir string) (*Service, *time.Time) {
	t.Helper()
	s, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	return s, &now
}

func keysAccount(t *testing.T, s *Service) (boot Bootstrap, other AccessKey) {
	t.Helper()
	ctx := context.Background()
	boot, err := s.EnsureBootstrap(ctx, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err = s.CreateAccount(ctx, boot.Key.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	return boot, other
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want %v", err, kind)
	}
}

func TestAccessKeyDisableEnableDelete(t *testing.T) {
	ctx := context.Background()
	s, now := keysService(t, t.TempDir())
	boot, other := keysAccount(t, s)
	acc := boot.Key.AccountID
	*now = now.Add(time.Second)
	k2, err := s.CreateAccessKey(ctx, acc)
	if err != nil {
		t.Fatal(err)
	}

	ks, err := s.ListAccessKeys(ctx, acc)
	if err != nil || len(ks) != 2 || ks[0].ID != boot.Key.ID || ks[1].ID != k2.ID {
		t.Fatalf("list: %v %+v", err, ks)
	}
	for _, k := range ks {
		if k.Status != KeyEnabled || k.LastUsedAt != nil || k.CreatedAt.IsZero() {
			t.Fatalf("new key listed as %+v", k)
		}
	}

	k, err := s.SetAccessKeyEnabled(ctx, acc, k2.ID, false, false)
	if err != nil || k.Status != KeyDisabled {
		t.Fatalf("disable: %v %+v", err, k)
	}
	if got, err := s.LookupKey(ctx, k2.ID); err != nil || got.Status != KeyDisabled {
		t.Fatalf("lookup after disable: %v %+v", err, got)
	}
	if k, err = s.SetAccessKeyEnabled(ctx, acc, k2.ID, true, false); err != nil || k.Status != KeyEnabled {
		t.Fatalf("enable: %v %+v", err, k)
	}

	// Another account's key is not found, and stays as it was.
	_, err = s.SetAccessKeyEnabled(ctx, other.AccountID, k2.ID, false, true)
	wantKind(t, err, ErrNotFound)
	wantKind(t, s.DeleteAccessKey(ctx, other.AccountID, k2.ID, true), ErrNotFound)
	if ks, _ := s.ListAccessKeys(ctx, other.AccountID); len(ks) != 1 || ks[0].ID != other.ID {
		t.Fatalf("other account lists %+v", ks)
	}

	if err := s.DeleteAccessKey(ctx, acc, k2.ID, false); err != nil {
		t.Fatal(err)
	}
	_, err = s.LookupKey(ctx, k2.ID)
	wantKind(t, err, ErrNotFound)
	wantKind(t, s.DeleteAccessKey(ctx, acc, k2.ID, false), ErrNotFound)
}

func TestLastEnabledKeyNeedsForce(t *testing.T) {
	ctx := context.Background()
	s, _ := keysService(t, t.TempDir())
	_, other := keysAccount(t, s)
	acc := other.AccountID

	_, err := s.SetAccessKeyEnabled(ctx, acc, other.ID, false, false)
	wantKind(t, err, ErrLastKey)
	wantKind(t, s.DeleteAccessKey(ctx, acc, other.ID, false), ErrLastKey)

	// A disabled second key does not count: the first is still the last
	// enabled one, while the disabled one may go.
	k2, _ := s.CreateAccessKey(ctx, acc)
	if _, err := s.SetAccessKeyEnabled(ctx, acc, k2.ID, false, false); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.DeleteAccessKey(ctx, acc, other.ID, false), ErrLastKey)
	if err := s.DeleteAccessKey(ctx, acc, k2.ID, false); err != nil {
		t.Fatal(err)
	}

	if k, err := s.SetAccessKeyEnabled(ctx, acc, other.ID, false, true); err != nil || k.Status != KeyDisabled {
		t.Fatalf("forced disable: %v %+v", err, k)
	}
	if err := s.DeleteAccessKey(ctx, acc, other.ID, true); err != nil {
		t.Fatal(err)
	}
	if ks, err := s.ListAccessKeys(ctx, acc); err != nil || len(ks) != 0 {
		t.Fatalf("after forced delete: %v %+v", err, ks)
	}
}

func storedLastUse(t *testing.T, s *Service, id string) int64 {
	t.Helper()
	var n int64
	if err := s.db.QueryRow(`SELECT last_used_at FROM access_keys WHERE id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKeyUseWrittenAtMostOncePerInterval(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, now := keysService(t, dir)
	boot, _ := keysAccount(t, s)
	id := boot.Key.ID
	t0 := *now

	if err := s.KeyUsed(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := storedLastUse(t, s, id); got != t0.UnixNano() {
		t.Fatalf("first use not written: %d", got)
	}
	*now = t0.Add(30 * time.Second)
	s.KeyUsed(ctx, id)
	if got := storedLastUse(t, s, id); got != t0.UnixNano() {
		t.Fatal("a use within the interval was written")
	}
	ks, _ := s.ListAccessKeys(ctx, boot.Key.AccountID)
	if ks[0].LastUsedAt == nil || !ks[0].LastUsedAt.Equal(*now) {
		t.Fatalf("list shows last use %v, want the one in memory %v", ks[0].LastUsedAt, *now)
	}
	*now = t0.Add(UsageFlush + time.Second)
	s.KeyUsed(ctx, id)
	if got := storedLastUse(t, s, id); got != now.UnixNano() {
		t.Fatal("a use after the interval was not written")
	}

	// Close writes what is still only in memory.
	last := t0.Add(UsageFlush + 20*time.Second)
	*now = last
	s.KeyUsed(ctx, id)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := keysService(t, dir)
	k, err := s2.LookupKey(ctx, id)
	if err != nil || k.LastUsedAt == nil || !k.LastUsedAt.Equal(last) {
		t.Fatalf("after restart: %v %+v", err, k)
	}
}

// A data dir made before keys could be disabled gains the columns, and its
// keys stay enabled.
func TestOldDataDirGainsKeyColumns(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "control.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE accounts (id TEXT PRIMARY KEY, bootstrap INTEGER NOT NULL DEFAULT 0,
			created_at INTEGER NOT NULL);
		CREATE TABLE access_keys (id TEXT PRIMARY KEY, secret TEXT NOT NULL,
			account_id TEXT NOT NULL REFERENCES accounts(id), created_at INTEGER NOT NULL);
		INSERT INTO accounts VALUES ('acc', 1, 1);
		INSERT INTO access_keys VALUES ('OLDKEY', 'sec', 'acc', 1);`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, _ := keysService(t, dir)
	k, err := s.LookupKey(context.Background(), "OLDKEY")
	if err != nil || k.Status != KeyEnabled || k.Secret != "sec" || k.LastUsedAt != nil {
		t.Fatalf("old key: %v %+v", err, k)
	}
	if _, err := s.SetAccessKeyEnabled(context.Background(), "acc", "OLDKEY", false, true); err != nil {
		t.Fatal(err)
	}
}

// The key configured in the environment is the operator's truth: disabled
// or deleted through the API, it is back at the next start.
func TestConfiguredBootstrapKeyRestored(t *testing.T) {
	ctx := context.Background()
	s, _ := keysService(t, t.TempDir())
	const acc, id, secret = "0123456789abcdef0123456789abcdef", "CONFIGUREDKEY0000001", "configured-secret"
	if _, err := s.EnsureBootstrap(ctx, acc, id, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAccessKeyEnabled(ctx, acc, id, false, true); err != nil {
		t.Fatal(err)
	}
	b, err := s.EnsureBootstrap(ctx, acc, id, secret)
	if err != nil || !b.Reenabled || b.Created {
		t.Fatalf("restart after disable: %v %+v", err, b)
	}
	if k, _ := s.LookupKey(ctx, id); k.Status != KeyEnabled {
		t.Fatalf("still %s", k.Status)
	}
	if err := s.DeleteAccessKey(ctx, acc, id, true); err != nil {
		t.Fatal(err)
	}
	if b, err = s.EnsureBootstrap(ctx, acc, id, secret); err != nil || b.Reenabled {
		t.Fatalf("restart after delete: %v %+v", err, b)
	}
	if k, err := s.LookupKey(ctx, id); err != nil || k.Status != KeyEnabled || k.Secret != secret {
		t.Fatalf("not recreated: %v %+v", err, k)
	}
}

// Without a configured key, a start uses the oldest enabled bootstrap key,
// and generates a new one only when none is enabled.
func TestGeneratedBootstrapKeySkipsDisabled(t *testing.T) {
	ctx := context.Background()
	s, now := keysService(t, t.TempDir())
	b1, err := s.EnsureBootstrap(ctx, "", "", "")
	if err != nil || !b1.Created {
		t.Fatalf("first start: %v %+v", err, b1)
	}
	acc := b1.Key.AccountID
	*now = now.Add(time.Second)
	k2, _ := s.CreateAccessKey(ctx, acc)
	if _, err := s.SetAccessKeyEnabled(ctx, acc, b1.Key.ID, false, false); err != nil {
		t.Fatal(err)
	}
	b2, err := s.EnsureBootstrap(ctx, "", "", "")
	if err != nil || b2.Created || b2.Key.ID != k2.ID {
		t.Fatalf("with the first key disabled: %v %+v", err, b2)
	}
	if _, err := s.SetAccessKeyEnabled(ctx, acc, k2.ID, false, true); err != nil {
		t.Fatal(err)
	}
	b3, err := s.EnsureBootstrap(ctx, "", "", "")
	if err != nil || !b3.Created || b3.Key.AccountID != acc || b3.Key.ID == b1.Key.ID || b3.Key.ID == k2.ID {
		t.Fatalf("with every key disabled: %v %+v", err, b3)
	}
}
