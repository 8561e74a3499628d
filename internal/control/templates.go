package control

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"flowlog/internal/desired"
	"flowlog/internal/netflow"
)

// Collectors side by side: the templates one data plane's collector learned
// of an exporter are kept per account and exporter address, and given to
// every data plane running a gateway of that account for that address.

// maxSharedTemplates bounds what one exporter's share may hold: a
// collector's session holds no more.
var maxSharedTemplates = netflow.DefaultSessionConfig().MaxTemplates

// ShareTemplates keeps the templates the collector of data plane plane
// learned, for exporters it runs a gateway of; shares for other exporters
// are ignored (the gateway may have moved since). Of two templates under
// one id the later announced is kept, and templates expired for a
// collector are dropped. When this changes what is kept, the desired state
// gets a new version, so that the other planes take it.
func (s *Service) ShareTemplates(ctx context.Context, plane string, shares []desired.ExporterTemplates) error {
	for _, sh := range shares {
		if err := checkShare(sh); err != nil {
			return err
		}
	}
	expired := s.now().Unix() - int64(netflow.DefaultSessionConfig().TemplateTTL.Seconds())
	return s.changeIf(ctx, func(tx *sql.Tx) (bool, error) {
		changed := false
		for _, sh := range shares {
			addr := netip.MustParseAddr(sh.Exporter).Unmap().String()
			var account string
			err := tx.QueryRowContext(ctx, `SELECT account_id FROM gateways WHERE kind = ? AND exporter = ?
				AND agent = ? LIMIT 1`, KindExporter, addr, plane).Scan(&account)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return false, err
			}
			kept, err := keptTemplates(ctx, tx, account, addr)
			if err != nil {
				return false, err
			}
			merged := mergeTemplates(kept, sh.Templates, expired)
			if slices.EqualFunc(merged, kept, netflow.SavedTemplate.Equal) {
				continue
			}
			b, err := json.Marshal(merged)
			if err != nil {
				return false, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO exporter_templates (account_id, exporter, templates)
				VALUES (?, ?, ?) ON CONFLICT (account_id, exporter) DO UPDATE SET templates = excluded.templates`,
				account, addr, string(b)); err != nil {
				return false, err
			}
			changed = true
		}
		return changed, nil
	})
}

// checkShare refuses a share no collector could have made.
func checkShare(sh desired.ExporterTemplates) error {
	if _, err := netip.ParseAddr(sh.Exporter); err != nil {
		return &Error{Kind: ErrInvalid, Field: "exporter_addr", Message: "not an IPv4 or IPv6 address"}
	}
	if len(sh.Templates) > maxSharedTemplates {
		return &Error{Kind: ErrInvalid, Field: "templates",
			Message: fmt.Sprintf("%d templates for one exporter; a collector holds at most %d", len(sh.Templates), maxSharedTemplates)}
	}
	for _, t := range sh.Templates {
		if t.Version != netflow.V9 && t.Version != netflow.IPFIX {
			return &Error{Kind: ErrInvalid, Field: "templates", Message: "only NetFlow v9 and IPFIX have templates"}
		}
		if t.Options != nil && len(t.Options.Samplers) > netflow.MaxSamplers {
			return &Error{Kind: ErrInvalid, Field: "templates",
				Message: fmt.Sprintf("%d samplers in a domain; a collector keeps at most %d", len(t.Options.Samplers), netflow.MaxSamplers)}
		}
	}
	return nil
}

func keptTemplates(ctx context.Context, q querier, account, exporter string) ([]netflow.SavedTemplate, error) {
	var b string
	err := q.QueryRowContext(ctx, `SELECT templates FROM exporter_templates WHERE account_id = ? AND exporter = ?`,
		account, exporter).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	var ts []netflow.SavedTemplate
	if err == nil {
		err = json.Unmarshal([]byte(b), &ts)
	}
	return ts, err
}

// mergeTemplates returns kept with what came: of two templates under one
// (version, domain, id), the one learned last. Those learned before expired
// are left out. The result is in a stable order.
func mergeTemplates(kept, came []netflow.SavedTemplate, expired int64) []netflow.SavedTemplate {
	type key struct {
		version int
		domain  uint32
		id      uint16
	}
	latest := map[key]netflow.SavedTemplate{}
	for _, t := range slices.Concat(kept, came) {
		k := key{t.Version, t.Domain, t.ID}
		if old, ok := latest[k]; (!ok || t.Learned > old.Learned) && t.Learned > expired {
			latest[k] = t
		}
	}
	out := make([]netflow.SavedTemplate, 0, len(latest))
	for _, t := range latest {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b netflow.SavedTemplate) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// desiredTemplates reads the templates kept for exporters that a gateway
// of the same account still names.
func desiredTemplates(ctx context.Context, q querier) ([]desired.ExporterTemplates, error) {
	return queryAll(ctx, q, func(r scanner) (desired.ExporterTemplates, error) {
		var t desired.ExporterTemplates
		var b string
		if err := r.Scan(&t.AccountID, &t.Exporter, &b); err != nil {
			return t, err
		}
		return t, json.Unmarshal([]byte(b), &t.Templates)
	}, `SELECT account_id, exporter, templates FROM exporter_templates t WHERE EXISTS (SELECT 1 FROM gateways g
		WHERE g.kind = ? AND g.exporter = t.exporter AND g.account_id = t.account_id)
		ORDER BY account_id, exporter`, KindExporter)
}
