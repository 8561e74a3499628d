package control

import (
	"testing"
	"time"

	"flowlog/internal/desired"
	"flowlog/internal/netflow"
)

// TestSharedTemplates: gateways of one account on two data planes may name
// one exporter, not two on the same plane; templates one plane's collector
// learned reach the other in its desired state, in a new version, and
// nothing else: not other accounts, not planes without that exporter; the
// later of two announcements wins, and a share that changes nothing makes
// no version.
func TestSharedTemplates(t *testing.T) {
	x := newTenancy(t, "")
	for _, name := range []string{"edge1", "edge2"} {
		if _, err := x.svc.CreateAgent(x.ctx, x.boot, name); err != nil {
			t.Fatal(err)
		}
		x.grant(x.a, GrantAgent, name)
	}
	x.grant(x.a, GrantExporter, "192.0.2.0/24")
	gw := func(agent string) (Gateway, error) {
		return x.svc.CreateGateway(x.ctx, x.a, GatewayInput{Name: ptr("r"), Kind: ptr(KindExporter),
			Exporter: ptr("192.0.2.1"), Agent: ptr(agent)})
	}
	g1, err := gw("edge1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw("edge2"); err != nil {
		t.Fatal(err)
	}
	_, err = gw("edge1")
	wantErr(t, err, ErrConflict, "exporter_addr", "already the exporter of gateway "+g1.ID+" on agent edge1")
	// Moving a gateway onto a plane that has one for the address is refused too.
	g3, err := gw("")
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.svc.UpdateGateway(x.ctx, x.a, g3.ID, GatewayInput{Agent: ptr("edge2")})
	wantErr(t, err, ErrConflict, "exporter_addr", "on agent edge2")

	now := time.Now().Unix()
	tpl := func(id uint16, learned int64, fields ...uint16) netflow.SavedTemplate {
		t := netflow.SavedTemplate{Version: netflow.IPFIX, Domain: 1, Learned: learned, Template: netflow.Template{ID: id}}
		for _, f := range fields {
			t.Fields = append(t.Fields, netflow.Field{ID: f, Len: 4})
		}
		return t
	}
	share := func(plane string, ts ...netflow.SavedTemplate) uint64 {
		t.Helper()
		if err := x.svc.ShareTemplates(x.ctx, plane, []desired.ExporterTemplates{{Exporter: "192.0.2.1", Templates: ts}}); err != nil {
			t.Fatal(err)
		}
		return x.svc.Version()
	}
	templatesOf := func(plane string) []desired.ExporterTemplates {
		t.Helper()
		st, err := x.svc.Snapshot(x.ctx, plane)
		if err != nil {
			t.Fatal(err)
		}
		return st.Templates
	}
	v0 := x.svc.Version()
	v1 := share("edge1", tpl(256, now-60, 8, 12))
	got := templatesOf("edge2")
	if v1 <= v0 || len(got) != 1 || got[0].AccountID != x.a || len(got[0].Templates) != 1 || got[0].Templates[0].ID != 256 {
		t.Fatalf("edge2 after edge1's share (version %d → %d): %+v", v0, v1, got)
	}
	if v := share("edge2", tpl(256, now-60, 8, 12)); v != v1 {
		t.Errorf("the same share back made version %d", v)
	}
	// An older announcement of another template under 256 loses; a later
	// one wins; a new id is added.
	if v := share("edge2", tpl(256, now-120, 12, 8)); v != v1 {
		t.Errorf("an older template made version %d", v)
	}
	v2 := share("edge2", tpl(256, now, 12, 8), tpl(257, now, 4))
	got = templatesOf("edge1")
	if v2 <= v1 || len(got) != 1 || len(got[0].Templates) != 2 || got[0].Templates[0].Fields[0].ID != 12 {
		t.Fatalf("edge1 after edge2's later share: %+v", got)
	}
	// Expired templates are dropped; shares from planes without the
	// exporter are ignored.
	if v := share("edge1", tpl(258, now-int64(netflow.DefaultSessionConfig().TemplateTTL.Seconds())-1, 1)); v != v2 {
		t.Errorf("an expired template made version %d", v)
	}
	if v := share("", tpl(259, now, 1)); v == v2 {
		t.Errorf("the server's gateway for the exporter did not share") // g3 runs on the server
	}
	if v := share("edge3", tpl(260, now, 1)); len(templatesOf("edge1")[0].Templates) != 3 {
		t.Errorf("a plane without the exporter shared (version %d): %+v", v, templatesOf("edge1"))
	}
	// Not another account's: B takes the address once A lets it go, and
	// sees none of A's templates.
	gws, err := x.svc.ListGateways(x.ctx, x.a)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		if err := x.svc.DeleteGateway(x.ctx, x.a, g.ID); err != nil {
			t.Fatal(err)
		}
	}
	x.grant(x.b, GrantExporter, "192.0.2.0/24")
	x.grant(x.b, GrantAgent, "edge1")
	if _, err := x.svc.CreateGateway(x.ctx, x.b, GatewayInput{Name: ptr("r"), Kind: ptr(KindExporter),
		Exporter: ptr("192.0.2.1"), Agent: ptr("edge1")}); err != nil {
		t.Fatal(err)
	}
	if got := templatesOf("edge1"); len(got) != 0 {
		t.Fatalf("B's gateway is given A's templates: %+v", got)
	}
	// Refused shares.
	many := &netflow.DomainOptions{Samplers: map[uint64]uint32{}}
	for i := range netflow.MaxSamplers + 1 {
		many.Samplers[uint64(i)] = 10
	}
	for _, bad := range []desired.ExporterTemplates{{Exporter: "nope"},
		{Exporter: "192.0.2.1", Templates: []netflow.SavedTemplate{{Version: netflow.V5}}},
		{Exporter: "192.0.2.1", Templates: []netflow.SavedTemplate{{Version: netflow.IPFIX, Learned: now, Options: many}}}} {
		if err := x.svc.ShareTemplates(x.ctx, "edge1", []desired.ExporterTemplates{bad}); err == nil {
			t.Errorf("share %+v taken", bad)
		}
	}
}
