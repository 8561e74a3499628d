package control

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"flowlog/internal/desired"
	"flowlog/internal/snmp"
)

// GatewayInput is a gateway to create or the fields to change (nil: unchanged).
type GatewayInput struct {
	Name        *string
	Description *string
	Kind        *string
	PcapPath    *string
	PcapPace    *string
	Exporter    *string
	Agent       *string // "" runs it inside the server
	// SNMP replaces the exporter's SNMP settings; all zero removes them.
	SNMP *desired.SNMP
	// SamplingInterval (exporter): 1:N for records whose router announces
	// no rate; 0 clears it.
	SamplingInterval *int
}

func checkName(field string, v *string, required bool) error {
	if v == nil {
		if required {
			return missing(field)
		}
		return nil
	}
	if n := utf8.RuneCountInString(*v); n < 1 || n > 64 {
		return illegal(field, "must be 1 to 64 characters, got %d", n)
	}
	return nil
}

func checkDescription(v *string) error {
	if v != nil && utf8.RuneCountInString(*v) > 255 {
		return illegal("description", "must be at most 255 characters")
	}
	return nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// applyGateway validates in and merges it into g (which holds the current
// state, or zero values on create).
func applyGateway(g *Gateway, in GatewayInput, create bool) error {
	if err := checkName("name", in.Name, create); err != nil {
		return err
	}
	if err := checkDescription(in.Description); err != nil {
		return err
	}
	if create && in.Kind == nil {
		return missing("kind")
	}
	if !create && in.Kind != nil && *in.Kind != g.Kind {
		return illegal("kind", "cannot be changed")
	}
	set(&g.Name, in.Name)
	set(&g.Description, in.Description)
	set(&g.Kind, in.Kind)
	set(&g.PcapPath, in.PcapPath)
	set(&g.PcapPace, in.PcapPace)
	set(&g.Exporter, in.Exporter)
	set(&g.Agent, in.Agent)
	if in.SNMP != nil {
		if err := applySNMP(g, *in.SNMP); err != nil {
			return err
		}
	}
	set(&g.SamplingInterval, in.SamplingInterval)
	if err := checkRange("sampling_interval", in.SamplingInterval, 0, 1<<24); err != nil {
		return err
	}
	if g.SamplingInterval != 0 && g.Kind != KindExporter {
		return illegal("sampling_interval", "only an exporter gateway takes a sampling_interval")
	}
	switch g.Kind {
	case KindCapture:
		if g.PcapPath != "" || g.Exporter != "" {
			return illegal("kind", "a capture gateway takes no pcap_path or exporter_addr")
		}
	case KindPcap:
		if g.PcapPath == "" {
			return missing("pcap_path")
		}
		if g.PcapPace == "" {
			g.PcapPace = "realtime"
		}
		if g.PcapPace != "realtime" && g.PcapPace != "fast" {
			return illegal("pcap_pace", "must be realtime or fast")
		}
	case KindExporter:
		if g.Exporter == "" {
			return missing("exporter_addr")
		}
		a, err := netip.ParseAddr(g.Exporter)
		if err != nil || a.Zone() != "" {
			return illegal("exporter_addr", "not an IPv4 or IPv6 address")
		}
		g.Exporter = a.Unmap().String() // the form the collector routes by
		if g.snmp != nil {
			if err := snmp.TargetOf(a, *g.snmp).Check(); err != nil {
				return illegal("snmp", "%s", strings.TrimPrefix(err.Error(), snmp.ErrTarget.Error()+": "))
			}
		}
	default:
		return illegal("kind", "must be capture, pcap or exporter")
	}
	if g.Kind != KindPcap {
		g.PcapPace = ""
	}
	if g.Kind != KindExporter && g.snmp != nil {
		return illegal("snmp", "only exporter gateways are polled by SNMP")
	}
	return nil
}

// applySNMP sets (or, all zero, removes) a gateway's SNMP settings, in
// their canonical form; applyGateway checks them against the exporter.
func applySNMP(g *Gateway, c desired.SNMP) error {
	if c == (desired.SNMP{}) {
		g.setSNMP(nil)
		return nil
	}
	if c.Version == "" {
		c.Version = "2c"
	}
	if c.Port == 0 {
		c.Port = 161
	}
	c.AuthProtocol, c.PrivProtocol = strings.ToUpper(c.AuthProtocol), strings.ToUpper(c.PrivProtocol)
	if c.Version == "2c" && (c.User != "" || c.AuthPassword != "" || c.PrivPassword != "") {
		return illegal("snmp", "v2c takes a community, not a user or passwords")
	}
	if c.Version == "3" && c.Community != "" {
		return illegal("snmp", "v3 takes a user, not a community")
	}
	g.setSNMP(&c)
	return nil
}

// snmpColumn is how a gateway's SNMP settings are stored: JSON, "" for none.
func snmpColumn(c *desired.SNMP) string {
	if c == nil {
		return ""
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// CreateGateway adds a gateway to account.
func (s *Service) CreateGateway(ctx context.Context, account string, in GatewayInput) (Gateway, error) {
	g := Gateway{ID: newID(prefixGateway), AccountID: account, CreatedAt: s.now()}
	g.UpdatedAt = g.CreatedAt
	if err := applyGateway(&g, in, true); err != nil {
		return g, err
	}
	err := s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		if err := s.admit(ctx, tx, &g, in); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO gateways (id, account_id, name, description, kind,
			pcap_path, pcap_pace, exporter, agent, snmp, created_at, updated_at, sampling_interval)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			g.ID, g.AccountID, g.Name, g.Description, g.Kind, g.PcapPath, g.PcapPace, g.Exporter, g.Agent,
			snmpColumn(g.snmp), unixNano(g.CreatedAt), unixNano(g.UpdatedAt), g.SamplingInterval)
		return err
	})
	return g, err
}

// admit checks, in the transaction that stores g, that its account may
// observe what the given fields name, and that no other gateway holds its
// exporter address. Fields not given are not checked again, so that a
// gateway whose grant was withdrawn can still be renamed.
func (s *Service) admit(ctx context.Context, tx *sql.Tx, g *Gateway, in GatewayInput) error {
	fence, err := fenceOf(ctx, tx, g.AccountID, s.pcapDir)
	if err != nil {
		return err
	}
	if in.Agent != nil && g.Agent != "" {
		if err := agentExists(ctx, tx, g.Agent); err != nil {
			return err
		}
		if err := fence.Agent(g.Agent); err != nil {
			return err
		}
	}
	switch {
	case g.Kind == KindPcap && in.PcapPath != nil:
		return fence.PcapPath(g.PcapPath)
	case g.Kind == KindExporter && in.Exporter != nil:
		if err := fence.Exporter(g.Exporter); err != nil {
			return err
		}
		return claimExporter(ctx, tx, g)
	case g.Kind == KindExporter && in.Agent != nil: // to another data plane
		return claimExporter(ctx, tx, g)
	}
	return nil
}

// claimExporter refuses an exporter address that another account's gateway
// holds, or another gateway of the account on the same data plane: records
// from an exporter go to exactly one account, and one gateway (with an
// attachment per ifIndex) describes the router to a data plane's
// collector. Gateways of the account on other data planes may name it:
// collectors side by side, receiving the same router (anycast, ECMP, a
// failover pair), which share its templates.
func claimExporter(ctx context.Context, q querier, g *Gateway) error {
	var id, owner, agent string
	err := q.QueryRowContext(ctx, `SELECT id, account_id, agent FROM gateways WHERE kind = ? AND exporter = ?
		AND id <> ? AND (account_id <> ? OR agent = ?) LIMIT 1`, KindExporter, g.Exporter, g.ID, g.AccountID, g.Agent).
		Scan(&id, &owner, &agent)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	e := &Error{Kind: ErrConflict, Field: "exporter_addr",
		Message: fmt.Sprintf("exporter address %s is held by another account", g.Exporter)}
	if owner == g.AccountID {
		e.Message = fmt.Sprintf("exporter address %s is already the exporter of gateway %s on %s; "+
			"one gateway per exporter and data plane (attach its interfaces to that gateway)", g.Exporter, id, planeName(agent))
	}
	return e
}

const gatewayCols = `id, account_id, name, description, kind, pcap_path, pcap_pace, exporter, agent, snmp, created_at,
	updated_at, sampling_interval`

func scanGateway(row scanner) (Gateway, error) {
	var g Gateway
	var c, u int64
	var snmpJSON string
	err := row.Scan(&g.ID, &g.AccountID, &g.Name, &g.Description, &g.Kind, &g.PcapPath, &g.PcapPace,
		&g.Exporter, &g.Agent, &snmpJSON, &c, &u, &g.SamplingInterval)
	g.CreatedAt, g.UpdatedAt = fromNano(c), fromNano(u)
	if err == nil && snmpJSON != "" {
		var s desired.SNMP
		if err = json.Unmarshal([]byte(snmpJSON), &s); err != nil {
			err = fmt.Errorf("gateway %s: snmp settings: %w", g.ID, err)
		}
		g.setSNMP(&s)
	}
	return g, err
}

func getGateway(ctx context.Context, q querier, account, id string) (Gateway, error) {
	return queryOne(ctx, q, scanGateway, "gateway", id, `SELECT `+gatewayCols+` FROM gateways
		WHERE id = ? AND account_id = ?`, id, account)
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// GetGateway returns one of account's gateways.
func (s *Service) GetGateway(ctx context.Context, account, id string) (Gateway, error) {
	return getGateway(ctx, s.db, account, id)
}

// ListGateways returns account's gateways, oldest first.
func (s *Service) ListGateways(ctx context.Context, account string) ([]Gateway, error) {
	return queryAll(ctx, s.db, scanGateway, `SELECT `+gatewayCols+` FROM gateways
		WHERE account_id = ? ORDER BY created_at, id`, account)
}

// UpdateGateway changes a gateway's name, description, agent or
// kind-specific fields.
func (s *Service) UpdateGateway(ctx context.Context, account, id string, in GatewayInput) (Gateway, error) {
	var g Gateway
	err := s.change(ctx, func(tx *sql.Tx, rev uint64) error {
		var err error
		if g, err = getGateway(ctx, tx, account, id); err != nil {
			return err
		}
		was := g.Agent
		if err := applyGateway(&g, in, false); err != nil {
			return err
		}
		if err := s.admit(ctx, tx, &g, in); err != nil {
			return err
		}
		g.UpdatedAt = s.now()
		if g.Agent != was {
			if err := moved(ctx, tx, g.ID, rev); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE gateways SET name=?, description=?, pcap_path=?, pcap_pace=?,
			exporter=?, agent=?, snmp=?, updated_at=?, sampling_interval=? WHERE id=?`, g.Name, g.Description,
			g.PcapPath, g.PcapPace, g.Exporter, g.Agent, snmpColumn(g.snmp), unixNano(g.UpdatedAt), g.SamplingInterval,
			g.ID)
		return err
	})
	return g, err
}

// DeleteGateway removes a gateway and its attachments; refused while a flow
// log is bound to it or to one of its attachments.
func (s *Service) DeleteGateway(ctx context.Context, account, id string) error {
	return s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		if _, err := getGateway(ctx, tx, account, id); err != nil {
			return err
		}
		var fl string
		err := tx.QueryRowContext(ctx, `SELECT flow_log_id FROM flow_log_targets WHERE gateway_id = ? LIMIT 1`,
			id).Scan(&fl)
		if err == nil {
			return inUse("gateway %s is bound to flow log %s; disassociate it first", id, fl)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM gateways WHERE id = ?`, id)
		return err
	})
}

// AttachmentInput is an attachment to create.
type AttachmentInput struct {
	Name      *string
	Interface *string
	IfIndex   *uint32
}

// CreateAttachment adds an interface (or, for exporters, an ifIndex) to a gateway.
func (s *Service) CreateAttachment(ctx context.Context, account, gatewayID string, in AttachmentInput) (Attachment, error) {
	a := Attachment{ID: newID(prefixAttachment), GatewayID: gatewayID, AccountID: account, CreatedAt: s.now()}
	if err := checkName("name", in.Name, true); err != nil {
		return a, err
	}
	set(&a.Name, in.Name)
	set(&a.Interface, in.Interface)
	set(&a.IfIndex, in.IfIndex)
	err := s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		g, err := getGateway(ctx, tx, account, gatewayID)
		if err != nil {
			return err
		}
		switch {
		case g.Kind == KindExporter && in.IfIndex == nil:
			return missing("if_index")
		case g.Kind != KindExporter && a.Interface == "":
			return missing("interface")
		}
		if g.Kind == KindCapture {
			if err := checkInterface(a.Interface); err != nil {
				return illegal("interface", "%s", err.Error())
			}
			fence, err := fenceOf(ctx, tx, account, s.pcapDir)
			if err != nil {
				return err
			}
			if err := fence.Interface(a.Interface); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO attachments (id, gateway_id, account_id, name, interface,
			if_index, created_at) VALUES (?,?,?,?,?,?,?)`, a.ID, a.GatewayID, a.AccountID, a.Name, a.Interface,
			a.IfIndex, unixNano(a.CreatedAt))
		return err
	})
	return a, err
}

const attachmentCols = `id, gateway_id, account_id, name, interface, if_index, created_at`

func scanAttachment(row scanner) (Attachment, error) {
	var a Attachment
	var c int64
	err := row.Scan(&a.ID, &a.GatewayID, &a.AccountID, &a.Name, &a.Interface, &a.IfIndex, &c)
	a.CreatedAt = fromNano(c)
	return a, err
}

func getAttachment(ctx context.Context, q querier, account, gatewayID, id string) (Attachment, error) {
	return queryOne(ctx, q, scanAttachment, "attachment", id, `SELECT `+attachmentCols+` FROM attachments
		WHERE id = ? AND gateway_id = ? AND account_id = ?`, id, gatewayID, account)
}

// GetAttachment returns one attachment of a gateway of account.
func (s *Service) GetAttachment(ctx context.Context, account, gatewayID, id string) (Attachment, error) {
	return getAttachment(ctx, s.db, account, gatewayID, id)
}

// ListAttachments returns a gateway's attachments, oldest first.
func (s *Service) ListAttachments(ctx context.Context, account, gatewayID string) ([]Attachment, error) {
	if _, err := s.GetGateway(ctx, account, gatewayID); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db, scanAttachment, `SELECT `+attachmentCols+` FROM attachments
		WHERE gateway_id = ? AND account_id = ? ORDER BY created_at, id`, gatewayID, account)
}

// DeleteAttachment removes an attachment; refused while a flow log targets it.
func (s *Service) DeleteAttachment(ctx context.Context, account, gatewayID, id string) error {
	err := s.change(ctx, func(tx *sql.Tx, _ uint64) error {
		if _, err := getAttachment(ctx, tx, account, gatewayID, id); err != nil {
			return err
		}
		var fl string
		err := tx.QueryRowContext(ctx, `SELECT flow_log_id FROM flow_log_targets WHERE attachment_id = ? LIMIT 1`,
			id).Scan(&fl)
		if err == nil {
			return inUse("attachment %s is bound to flow log %s; disassociate it first", id, fl)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM attachments WHERE id = ?`, id)
		return err
	})
	return err
}

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface{ Scan(...any) error }

// queryOne runs a query for one row and scans it with scan; when there is
// no row, the error is notFound(resource, id).
func queryOne[T any](ctx context.Context, q querier, scan func(scanner) (T, error), resource, id string,
	query string, args ...any) (T, error) {
	v, err := scan(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return v, notFound(resource, id)
	}
	return v, err
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error),
	query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
