package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"flowlog/internal/desired"
	"flowlog/internal/store"
)

// Agent is a data plane running outside the server, on the gateways
// assigned to it. Its key is not an access key of any account: it
// authenticates only on the agent's own endpoints (its desired state and
// its status), so an agent's host holds no power over any account's
// resources, and sees only the part of the desired state assigned to it.
type Agent struct {
	Name      string    `json:"name"`
	KeyID     string    `json:"access_key_id"`
	Secret    string    `json:"access_key_secret,omitempty"` // only when created
	CreatedAt time.Time `json:"created_at"`
}

// AgentStatus is an agent as the operator sees it: when it was last heard
// from, the version it applied, and its components' errors.
type AgentStatus struct {
	Name      string     `json:"name"`
	KeyID     string     `json:"access_key_id"`
	CreatedAt time.Time  `json:"created_at"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`   // last request, since the server started
	Version   uint64     `json:"version_applied"`       // of its last report
	Reported  *time.Time `json:"reported_at,omitempty"` // when
	Gateways  int        `json:"gateways"`              // assigned to it
	// Errors has the components that report an error, as "kind/name: error".
	Errors     []string            `json:"errors"`
	Components []desired.Component `json:"components,omitempty"`
}

var agentName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func checkAgentName(name string) error {
	if !agentName.MatchString(name) {
		return illegal("name", "an agent name is 1 to 63 lowercase letters, digits, '.', '_' or '-', got %q", name)
	}
	return nil
}

// CreateAgent registers an agent and makes its key; only the operator (the
// bootstrap account) may. The secret is returned only now.
func (s *Service) CreateAgent(ctx context.Context, caller, name string) (Agent, error) {
	if err := s.mustBeBootstrap(ctx, caller, "create agents"); err != nil {
		return Agent{}, err
	}
	if err := checkAgentName(name); err != nil {
		return Agent{}, err
	}
	a := Agent{Name: name, CreatedAt: s.now()}
	a.KeyID, a.Secret = NewAccessKey()
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		names, err := queryAll(ctx, tx, func(r scanner) (string, error) {
			var n string
			return n, r.Scan(&n)
		}, `SELECT name FROM agents`)
		if err != nil {
			return err
		}
		for _, n := range names {
			// Writers to a shared log store keep apart by this number.
			if n != name && store.WriterNumber(n) == store.WriterNumber(name) {
				return conflict("agent name %s would share its store writer number with agent %s; choose another name", name, n)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO agents (name, key_id, secret, created_at) VALUES (?,?,?,?)`,
			a.Name, a.KeyID, a.Secret, unixNano(a.CreatedAt))
		if isUnique(err) {
			return conflict("agent %s already exists", name)
		}
		return err
	})
	if err != nil {
		return Agent{}, err
	}
	return a, nil
}

// LookupAgentKey returns the agent whose key is keyID, with its secret, for
// request signing checks on the agent endpoints.
func (s *Service) LookupAgentKey(ctx context.Context, keyID string) (Agent, error) {
	return queryOne(ctx, s.db, scanAgent, "agent_key", keyID,
		`SELECT name, key_id, secret, created_at FROM agents WHERE key_id = ?`, keyID)
}

func scanAgent(r scanner) (Agent, error) {
	var a Agent
	var c int64
	err := r.Scan(&a.Name, &a.KeyID, &a.Secret, &c)
	a.CreatedAt = fromNano(c)
	return a, err
}

// DeleteAgent removes an agent and its key; refused while gateways are
// assigned to it.
func (s *Service) DeleteAgent(ctx context.Context, caller, name string) error {
	if err := s.mustBeBootstrap(ctx, caller, "delete agents"); err != nil {
		return err
	}
	return inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := agentExists(ctx, tx, name); err != nil {
			return err
		}
		var gw string
		err := tx.QueryRowContext(ctx, `SELECT id FROM gateways WHERE agent = ? LIMIT 1`, name).Scan(&gw)
		if err == nil {
			return inUse("gateway %s is assigned to agent %s; assign it elsewhere first", gw, name)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM agents WHERE name = ?`, name)
		return err
	})
}

// ListAgents returns every agent with its last status; only the operator
// may list them.
func (s *Service) ListAgents(ctx context.Context, caller string) ([]AgentStatus, error) {
	if err := s.mustBeBootstrap(ctx, caller, "list agents"); err != nil {
		return nil, err
	}
	agents, err := queryAll(ctx, s.db, scanAgent, `SELECT name, key_id, secret, created_at FROM agents ORDER BY name`)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	type count struct {
		agent string
		n     int
	}
	cs, err := queryAll(ctx, s.db, func(r scanner) (count, error) {
		var c count
		return c, r.Scan(&c.agent, &c.n)
	}, `SELECT agent, count(*) FROM gateways WHERE agent <> '' GROUP BY agent`)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		counts[c.agent] = c.n
	}
	// Reports are kept in memory; across a restart of the server, the
	// version each plane last applied is read from the database.
	applied := map[string]uint64{}
	type planeVersion struct {
		name    string
		version uint64
	}
	pvs, err := queryAll(ctx, s.db, func(r scanner) (planeVersion, error) {
		var p planeVersion
		return p, r.Scan(&p.name, &p.version)
	}, `SELECT name, version FROM planes`)
	if err != nil {
		return nil, err
	}
	for _, p := range pvs {
		applied[p.name] = p.version
	}
	reports, seen := s.Planes(), s.seen()
	out := make([]AgentStatus, 0, len(agents))
	for _, a := range agents {
		st := AgentStatus{Name: a.Name, KeyID: a.KeyID, CreatedAt: a.CreatedAt, Gateways: counts[a.Name],
			Version: applied[a.Name], Errors: []string{}}
		if t, ok := seen[a.Name]; ok {
			st.LastSeen = &t
		}
		if r, ok := reports[a.Name]; ok {
			at := r.At
			st.Version, st.Reported, st.Components = r.Version, &at, r.Components
			for _, c := range r.Components {
				if c.Error != "" {
					st.Errors = append(st.Errors, c.Kind+"/"+c.Name+": "+c.Error)
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Seen notes that the agent called name made a request now.
func (s *Service) Seen(name string) {
	s.ver.mu.Lock()
	defer s.ver.mu.Unlock()
	s.ver.seenAt[name] = s.now()
}

func (s *Service) seen() map[string]time.Time {
	s.ver.mu.Lock()
	defer s.ver.mu.Unlock()
	out := make(map[string]time.Time, len(s.ver.seenAt))
	for k, v := range s.ver.seenAt {
		out[k] = v
	}
	return out
}

func agentExists(ctx context.Context, q querier, name string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM agents WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return &Error{Kind: ErrNotFound, Resource: "agent", Field: "agent",
			Message: fmt.Sprintf("agent %q does not exist; the operator registers agents (flowlog agents create)", name)}
	}
	return nil
}

// moved marks the flow logs observing gateway id as changed at rev when the
// gateway moves to another data plane: they settle again once the planes
// now running them report.
func moved(ctx context.Context, tx *sql.Tx, id string, rev uint64) error {
	_, err := tx.ExecContext(ctx, `UPDATE flow_logs SET revision = ?,
		state = CASE WHEN state IN (?, ?) THEN ? ELSE state END
		WHERE id IN (SELECT flow_log_id FROM flow_log_targets WHERE gateway_id = ?)`,
		int64(rev), StateAvailable, StateFailed, StateModifying, id)
	return err
}

// planesOf returns the data planes that run part of flow log id: those of
// the gateways it targets, or the server's own ("") when it targets none.
func planesOf(ctx context.Context, q querier, id string) ([]string, error) {
	ps, err := queryAll(ctx, q, func(r scanner) (string, error) {
		var p string
		return p, r.Scan(&p)
	}, `SELECT DISTINCT g.agent FROM flow_log_targets t JOIN gateways g ON g.id = t.gateway_id
		WHERE t.flow_log_id = ? ORDER BY g.agent`, id)
	if len(ps) == 0 {
		ps = []string{""}
	}
	return ps, err
}

// planeName is how a data plane is named in messages.
func planeName(p string) string {
	if p == "" {
		return "the server"
	}
	return "agent " + p
}

// joinReasons is a flow log's failure reason from several planes.
func joinReasons(rs []string) string {
	return strings.Join(slices.Compact(rs), "; ")
}
