package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// Grant kinds: what the operator lets an account observe.
const (
	GrantInterface = "capture_interface" // a host interface capture gateways may attach
	GrantExporter  = "exporter_addr"     // an address or prefix exporter gateways may claim
	GrantAgent     = "agent"             // an agent the account's gateways may be assigned to
)

// Grant lets one account (not the bootstrap one, which may observe anything)
// use a host interface or a range of exporter addresses.
type Grant struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Kind      string    `json:"kind"`
	Value     string    `json:"value"` // an interface name, or a prefix such as 192.0.2.0/24
	CreatedAt time.Time `json:"created_at"`
}

// GrantInput is a grant to create.
type GrantInput struct {
	AccountID *string
	Kind      *string
	Value     *string
}

// normalGrant validates a grant's value and returns it in canonical form:
// an address becomes a one-address prefix, and a prefix is masked.
func normalGrant(kind, value string) (string, error) {
	switch kind {
	case GrantInterface:
		if err := checkInterface(value); err != nil {
			return "", illegal("value", "%s", err.Error())
		}
		return value, nil
	case GrantExporter:
		if a, err := netip.ParseAddr(value); err == nil && a.Zone() == "" {
			a = a.Unmap()
			return netip.PrefixFrom(a, a.BitLen()).String(), nil
		}
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return "", illegal("value", "not an IP address or prefix (such as 192.0.2.0/24): %q", value)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked().String(), nil
	case GrantAgent:
		return value, checkAgentName(value)
	}
	return "", illegal("kind", "must be %s, %s or %s", GrantInterface, GrantExporter, GrantAgent)
}

// checkInterface checks a Linux interface name.
func checkInterface(name string) error {
	switch {
	case name == "":
		return errors.New("an interface name is required")
	case len(name) > 15:
		return errors.New("Linux interface names are at most 15 bytes")
	case strings.ContainsAny(name, "/ \t\n:") || name == "." || name == "..":
		return fmt.Errorf("%q is not an interface name", name)
	}
	return nil
}

// mustBeBootstrap refuses callers other than the operator's account.
func (s *Service) mustBeBootstrap(ctx context.Context, caller, what string) error {
	boot, err := s.IsBootstrap(ctx, caller)
	if err == nil && !boot {
		err = &Error{Kind: ErrForbidden, Message: "only the bootstrap account may " + what}
	}
	return err
}

// CreateGrant lets an account use an interface or exporter addresses. Only
// the bootstrap account may grant.
func (s *Service) CreateGrant(ctx context.Context, caller string, in GrantInput) (Grant, error) {
	g := Grant{ID: newID(prefixGrant), CreatedAt: s.now()}
	if err := s.mustBeBootstrap(ctx, caller, "grant"); err != nil {
		return g, err
	}
	for field, v := range map[string]*string{"account_id": in.AccountID, "kind": in.Kind, "value": in.Value} {
		if v == nil {
			return g, missing(field)
		}
	}
	g.AccountID, g.Kind = *in.AccountID, *in.Kind
	var err error
	if g.Value, err = normalGrant(g.Kind, *in.Value); err != nil {
		return g, err
	}
	err = s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = ?`, g.AccountID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return notFound("account", g.AccountID)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO grants (id, account_id, kind, value, created_at)
			VALUES (?,?,?,?,?)`, g.ID, g.AccountID, g.Kind, g.Value, unixNano(g.CreatedAt))
		if isUnique(err) {
			return conflict("account %s already has the %s grant %s", g.AccountID, g.Kind, g.Value)
		}
		return err
	})
	return g, err
}

const grantCols = `id, account_id, kind, value, created_at`

func scanGrant(row scanner) (Grant, error) {
	var g Grant
	var c int64
	err := row.Scan(&g.ID, &g.AccountID, &g.Kind, &g.Value, &c)
	g.CreatedAt = fromNano(c)
	return g, err
}

// ListGrants returns the grants the caller may see, oldest first: all of
// them (or those of account, if given) for the bootstrap account, else the
// caller's own.
func (s *Service) ListGrants(ctx context.Context, caller, account string) ([]Grant, error) {
	boot, err := s.IsBootstrap(ctx, caller)
	if err != nil {
		return nil, err
	}
	if !boot {
		account = caller
	}
	if account == "" {
		return queryAll(ctx, s.db, scanGrant, `SELECT `+grantCols+` FROM grants ORDER BY created_at, id`)
	}
	return queryAll(ctx, s.db, scanGrant, `SELECT `+grantCols+` FROM grants WHERE account_id = ?
		ORDER BY created_at, id`, account)
}

// DeleteGrant withdraws a grant. Flow logs that observe through it stop:
// the data plane marks them failed with the reason.
func (s *Service) DeleteGrant(ctx context.Context, caller, id string) error {
	if err := s.mustBeBootstrap(ctx, caller, "withdraw grants"); err != nil {
		return err
	}
	return s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("grant", id)
		}
		return nil
	})
}

// Fence is what one account may observe: anything, for the bootstrap
// account; otherwise the interfaces and exporter addresses granted to it,
// and pcap files inside the server's pcap_dir.
type Fence struct {
	all        bool
	interfaces map[string]bool
	exporters  []netip.Prefix
	agents     map[string]bool
	pcapDir    string
}

// FenceOf reads account's fence.
func (s *Service) FenceOf(ctx context.Context, account string) (Fence, error) {
	return fenceOf(ctx, s.db, account, s.pcapDir)
}

func fenceOf(ctx context.Context, q querier, account, pcapDir string) (Fence, error) {
	var boot int
	err := q.QueryRowContext(ctx, `SELECT bootstrap FROM accounts WHERE id = ?`, account).Scan(&boot)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Fence{}, err
	}
	if boot == 1 {
		return newFence(true, nil, pcapDir), nil
	}
	grants, err := queryAll(ctx, q, scanGrant, `SELECT `+grantCols+` FROM grants WHERE account_id = ?`, account)
	return newFence(false, grants, pcapDir), err
}

// allFences reads every account's fence at once, by account.
func allFences(ctx context.Context, q querier, pcapDir string) (map[string]Fence, error) {
	boots, err := queryAll(ctx, q, func(r scanner) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, `SELECT id FROM accounts WHERE bootstrap = 1`)
	if err != nil {
		return nil, err
	}
	grants, err := queryAll(ctx, q, scanGrant, `SELECT `+grantCols+` FROM grants ORDER BY account_id`)
	if err != nil {
		return nil, err
	}
	byAccount := map[string][]Grant{}
	for _, g := range grants {
		byAccount[g.AccountID] = append(byAccount[g.AccountID], g)
	}
	out := map[string]Fence{}
	for _, id := range boots {
		out[id] = newFence(true, nil, pcapDir)
	}
	for id, gs := range byAccount {
		if _, boot := out[id]; !boot {
			out[id] = newFence(false, gs, pcapDir)
		}
	}
	return out, nil
}

// newFence is the fence of an account: the operator's (all), or one with
// grants.
func newFence(all bool, grants []Grant, pcapDir string) Fence {
	f := Fence{all: all, interfaces: map[string]bool{}, agents: map[string]bool{}, pcapDir: pcapDir}
	for _, g := range grants {
		switch g.Kind {
		case GrantInterface:
			f.interfaces[g.Value] = true
		case GrantExporter:
			if p, err := netip.ParsePrefix(g.Value); err == nil {
				f.exporters = append(f.exporters, p)
			}
		case GrantAgent:
			f.agents[g.Value] = true
		}
	}
	return f
}

// Interface refuses a host interface the account was not granted.
func (f Fence) Interface(name string) error {
	if f.all || f.interfaces[name] {
		return nil
	}
	return forbidden("interface", "interface %s is not granted to this account; "+
		"ask the operator for a %s grant", name, GrantInterface)
}

// Exporter refuses an exporter address outside the account's grants.
func (f Fence) Exporter(addr string) error {
	if f.all {
		return nil
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		for _, p := range f.exporters {
			if p.Contains(a.Unmap()) {
				return nil
			}
		}
	}
	return forbidden("exporter_addr", "exporter address %s is not granted to this account; "+
		"ask the operator for an %s grant covering it", addr, GrantExporter)
}

// Agent refuses an agent the account was not granted: an agent's host is
// the operator's, and only the operator decides which tenants' traffic it
// observes.
func (f Fence) Agent(name string) error {
	if f.all || f.agents[name] {
		return nil
	}
	return forbidden("agent", "agent %s is not granted to this account; ask the operator for an %s grant",
		name, GrantAgent)
}

// PcapPath refuses a capture file outside the server's pcap directory.
func (f Fence) PcapPath(path string) error {
	if f.all {
		return nil
	}
	if err := InPcapDir(f.pcapDir, path); err != nil {
		return forbidden("pcap_path", "%s; ask the operator to place the file there", err.Error())
	}
	return nil
}

// InPcapDir checks that path lies inside dir once symbolic links are
// resolved. A file that does not exist is judged by its name, so as not to
// tell what exists elsewhere. An empty dir contains nothing.
func InPcapDir(dir, path string) error {
	if !InDir(dir, path) {
		return fmt.Errorf("pcap file %s is outside the server's pcap directory (pcap_dir)", path)
	}
	return nil
}

// InDir says whether path lies inside dir once symbolic links are
// resolved; a path that does not exist is judged by its name. An empty dir
// contains nothing.
func InDir(dir, path string) bool {
	if dir == "" {
		return false
	}
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	file, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		file, err = filepath.Abs(path)
	}
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(dir, file)
	return err == nil && filepath.IsLocal(rel)
}
