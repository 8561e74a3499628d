package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tenancy is a control plane over a real SQLite database with the
// bootstrap account and two others, a and b.
type tenancy struct {
	t          *testing.T
	ctx        context.Context
	svc        *Service
	boot, a, b string
}

func newTenancy(t *testing.T, pcapDir string) *tenancy {
	t.Helper()
	svc, err := New(Config{DataDir: t.TempDir(), PcapDir: pcapDir, Quota: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	ctx := context.Background()
	bs, err := svc.EnsureBootstrap(ctx, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	x := &tenancy{t: t, ctx: ctx, svc: svc, boot: bs.Key.AccountID}
	for _, dst := range []*string{&x.a, &x.b} {
		k, err := svc.CreateAccount(ctx, x.boot)
		if err != nil {
			t.Fatal(err)
		}
		*dst = k.AccountID
	}
	return x
}

func ptr[T any](v T) *T { return &v }

func (x *tenancy) grant(account, kind, value string) Grant {
	x.t.Helper()
	g, err := x.svc.CreateGrant(x.ctx, x.boot, GrantInput{AccountID: &account, Kind: &kind, Value: &value})
	if err != nil {
		x.t.Fatal(err)
	}
	return g
}

func (x *tenancy) exporter(account, addr string) (Gateway, error) {
	return x.svc.CreateGateway(x.ctx, account, GatewayInput{Name: ptr("router"), Kind: ptr(KindExporter),
		Exporter: &addr})
}

// wantErr fails unless err is a domain error of kind on field whose message
// holds msg.
func wantErr(t *testing.T, err error, kind error, field, msg string) {
	t.Helper()
	e, ok := AsError(err)
	if !ok || !errors.Is(err, kind) || e.Field != field || !strings.Contains(e.Message, msg) {
		t.Fatalf("got %v, want %v on %q saying %q", err, kind, field, msg)
	}
}

func TestExporterAddrHeldByOneAccount(t *testing.T) {
	x := newTenancy(t, "")
	x.grant(x.a, GrantExporter, "192.0.2.0/24")
	x.grant(x.b, GrantExporter, "192.0.2.0/24")
	ga, err := x.exporter(x.a, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.exporter(x.b, "192.0.2.1")
	wantErr(t, err, ErrConflict, "exporter_addr", "exporter address 192.0.2.1 is held by another account")
	// The same address written another way is the same exporter.
	_, err = x.exporter(x.b, "::ffff:192.0.2.1")
	wantErr(t, err, ErrConflict, "exporter_addr", "held by another account")
	_, err = x.exporter(x.boot, "192.0.2.1") // the operator too
	wantErr(t, err, ErrConflict, "exporter_addr", "held by another account")
	// One gateway per exporter within an account as well.
	_, err = x.exporter(x.a, "192.0.2.1")
	wantErr(t, err, ErrConflict, "exporter_addr", "already the exporter of gateway "+ga.ID)

	gb, err := x.exporter(x.b, "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.svc.UpdateGateway(x.ctx, x.b, gb.ID, GatewayInput{Exporter: ptr("192.0.2.1")})
	wantErr(t, err, ErrConflict, "exporter_addr", "held by another account")
	// Changing a gateway's own address to itself is no conflict.
	if _, err := x.svc.UpdateGateway(x.ctx, x.a, ga.ID, GatewayInput{Exporter: ptr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}

	// Once A lets the address go, B may claim it.
	if err := x.svc.DeleteGateway(x.ctx, x.a, ga.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := x.svc.UpdateGateway(x.ctx, x.b, gb.ID, GatewayInput{Exporter: ptr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
}

func TestGrantsFenceAccounts(t *testing.T) {
	pcapDir := t.TempDir()
	x := newTenancy(t, pcapDir)

	// Capture interfaces.
	capture, err := x.svc.CreateGateway(x.ctx, x.a, GatewayInput{Name: ptr("host"), Kind: ptr(KindCapture)})
	if err != nil {
		t.Fatal(err)
	}
	attach := func(account, gw, iface string) error {
		_, err := x.svc.CreateAttachment(x.ctx, account, gw, AttachmentInput{Name: ptr("port"), Interface: &iface})
		return err
	}
	wantErr(t, attach(x.a, capture.ID, "eth1"), ErrForbidden, "interface",
		"interface eth1 is not granted to this account; ask the operator for a capture_interface grant")
	x.grant(x.a, GrantInterface, "eth1")
	if err := attach(x.a, capture.ID, "eth1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, attach(x.a, capture.ID, "eth2"), ErrForbidden, "interface", "interface eth2 is not granted")
	wantErr(t, attach(x.a, capture.ID, "eth1/x"), ErrInvalid, "interface", "not an interface name")

	// Exporter addresses: inside the grant's prefix only.
	x.grant(x.a, GrantExporter, "198.51.100.0/30")
	if _, err := x.exporter(x.a, "198.51.100.3"); err != nil {
		t.Fatal(err)
	}
	_, err = x.exporter(x.a, "198.51.100.4")
	wantErr(t, err, ErrForbidden, "exporter_addr",
		"exporter address 198.51.100.4 is not granted to this account; ask the operator for an exporter_addr grant")
	_, err = x.exporter(x.b, "198.51.100.1") // a's grant is not b's
	wantErr(t, err, ErrForbidden, "exporter_addr", "not granted")

	// Pcap files: inside pcap_dir only, links resolved.
	pcap := func(account, path string) error {
		_, err := x.svc.CreateGateway(x.ctx, account, GatewayInput{Name: ptr("replay"), Kind: ptr(KindPcap),
			PcapPath: &path})
		return err
	}
	if err := pcap(x.a, filepath.Join(pcapDir, "a.pcap")); err != nil {
		t.Fatal(err)
	}
	escape := filepath.Join(pcapDir, "escape.pcap")
	if err := os.Symlink("/etc/passwd", escape); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/etc/passwd", filepath.Join(pcapDir, "..", "x.pcap"), escape} {
		wantErr(t, pcap(x.a, path), ErrForbidden, "pcap_path", "is outside the server's pcap directory (pcap_dir)")
	}

	// The operator's account observes anything.
	if err := pcap(x.boot, "/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	own, err := x.svc.CreateGateway(x.ctx, x.boot, GatewayInput{Name: ptr("host"), Kind: ptr(KindCapture)})
	if err != nil {
		t.Fatal(err)
	}
	if err := attach(x.boot, own.ID, "eth9"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.exporter(x.boot, "203.0.113.9"); err != nil {
		t.Fatal(err)
	}
}

func TestGrantsWithdrawn(t *testing.T) {
	x := newTenancy(t, "")
	g := x.grant(x.a, GrantExporter, "192.0.2.1")
	gw, err := x.exporter(x.a, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := x.svc.DeleteGrant(x.ctx, x.boot, g.ID); err != nil {
		t.Fatal(err)
	}
	fence, err := x.svc.FenceOf(x.ctx, x.a)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, fence.Exporter(gw.Exporter), ErrForbidden, "exporter_addr", "not granted")
	// Withdrawn, the gateway may still be renamed, not moved.
	if _, err := x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{Name: ptr("old router")}); err != nil {
		t.Fatal(err)
	}
	_, err = x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{Exporter: ptr("192.0.2.2")})
	wantErr(t, err, ErrForbidden, "exporter_addr", "not granted")
	if err := x.svc.DeleteGrant(x.ctx, x.boot, g.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a deleted grant: %v", err)
	}
}

func TestGrantsByTheOperatorOnly(t *testing.T) {
	x := newTenancy(t, "")
	kind, value := GrantInterface, "eth1"
	_, err := x.svc.CreateGrant(x.ctx, x.a, GrantInput{AccountID: &x.a, Kind: &kind, Value: &value})
	wantErr(t, err, ErrForbidden, "", "only the bootstrap account may grant")
	g := x.grant(x.a, GrantInterface, "eth1")
	if err := x.svc.DeleteGrant(x.ctx, x.a, g.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a withdraws its own grant: %v", err)
	}
	_, err = x.svc.CreateGrant(x.ctx, x.boot, GrantInput{AccountID: &x.a, Kind: &kind, Value: &value})
	wantErr(t, err, ErrConflict, "", "already has the capture_interface grant eth1")
	_, err = x.svc.CreateGrant(x.ctx, x.boot, GrantInput{AccountID: ptr("nosuchaccount"), Kind: &kind, Value: &value})
	if e, ok := AsError(err); !ok || !errors.Is(err, ErrNotFound) || e.Resource != "account" {
		t.Fatalf("grant to an unknown account: %v", err)
	}

	// Values are checked and kept in canonical form.
	for _, c := range []struct{ kind, value, want string }{
		{GrantExporter, "192.0.2.77/24", "192.0.2.0/24"},
		{GrantExporter, "192.0.2.1", "192.0.2.1/32"},
		{GrantExporter, "::ffff:192.0.2.2", "192.0.2.2/32"},
		{GrantExporter, "2001:db8::/32", "2001:db8::/32"},
	} {
		if g := x.grant(x.b, c.kind, c.value); g.Value != c.want {
			t.Errorf("grant %s stored as %s, want %s", c.value, g.Value, c.want)
		}
	}
	for _, c := range []struct{ kind, value, field string }{
		{GrantExporter, "192.0.2.300", "value"}, {GrantExporter, "eth0", "value"},
		{GrantInterface, "a-name-longer-than-15", "value"}, {GrantInterface, "", "value"},
		{"pcap_file", "/tmp", "kind"},
	} {
		_, err := x.svc.CreateGrant(x.ctx, x.boot, GrantInput{AccountID: &x.b, Kind: &c.kind, Value: &c.value})
		wantErr(t, err, ErrInvalid, c.field, "")
	}

	// The operator sees every grant; an account, its own.
	all, err := x.svc.ListGrants(x.ctx, x.boot, "")
	if err != nil || len(all) != 5 {
		t.Fatalf("operator lists %d grants (%v), want 5", len(all), err)
	}
	own, err := x.svc.ListGrants(x.ctx, x.a, x.b) // asking for b's gets a's
	if err != nil || len(own) != 1 || own[0].AccountID != x.a {
		t.Fatalf("a lists %v (%v), want its one grant", own, err)
	}
}

// TestAssociateExclusive: natively a target carries one flow log per output
// kind; the Alibaba rule is one flow log per SAG.
func TestAssociateExclusive(t *testing.T) {
	x := newTenancy(t, "")
	gw, err := x.exporter(x.boot, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	ls := x.stream(x.boot)
	nf := x.flowLog(x.boot, FlowLogInput{OutputType: ptr(OutputNetflow), NetflowServerIP: ptr("192.0.2.9")})
	sls := x.flowLog(x.boot, FlowLogInput{OutputType: ptr(OutputSLS), LogStreamID: &ls})
	other := x.flowLog(x.boot, FlowLogInput{OutputType: ptr(OutputSLS), LogStreamID: &ls})
	target := Target{GatewayID: gw.ID}
	if _, err := x.svc.AssociateExclusive(x.ctx, x.boot, nf.ID, target); err != nil {
		t.Fatal(err)
	}
	_, err = x.svc.AssociateExclusive(x.ctx, x.boot, sls.ID, target)
	wantErr(t, err, ErrConflict, "target", "already carries flow log "+nf.ID)
	if _, err := x.svc.AssociateExclusive(x.ctx, x.boot, nf.ID, target); err != nil {
		t.Fatalf("associating again: %v", err)
	}
	if _, err := x.svc.Associate(x.ctx, x.boot, sls.ID, target); err != nil {
		t.Fatalf("native rule, other output kind: %v", err)
	}
	_, err = x.svc.Associate(x.ctx, x.boot, other.ID, target)
	wantErr(t, err, ErrConflict, "target", "overlapping output")

	// A flow log being deleted no longer holds the target.
	for _, f := range []FlowLog{nf, sls} {
		if _, err := x.svc.DeleteFlowLog(x.ctx, x.boot, f.ID, DeleteRules{Immediate: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.svc.AssociateExclusive(x.ctx, x.boot, other.ID, target); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteImmediate: natively a pending or modifying flow log is busy and
// a repeated delete a no-op; for Alibaba callers the flow log is gone at
// once, whatever its state.
func TestDeleteImmediate(t *testing.T) {
	x := newTenancy(t, "")
	in := FlowLogInput{OutputType: ptr(OutputNetflow), NetflowServerIP: ptr("192.0.2.9")}
	f := x.flowLog(x.a, in)
	_, err := x.svc.DeleteFlowLog(x.ctx, x.a, f.ID, DeleteRules{})
	wantErr(t, err, ErrBusy, "", "is pending; try again shortly")
	got, err := x.svc.DeleteFlowLog(x.ctx, x.a, f.ID, DeleteRules{Immediate: true})
	if err != nil || got.State != StateDeleting {
		t.Fatalf("immediate delete of a pending flow log: %+v %v", got, err)
	}
	if _, err := x.svc.DeleteFlowLog(x.ctx, x.a, f.ID, DeleteRules{}); err != nil {
		t.Fatalf("native delete again: %v", err)
	}
	_, err = x.svc.DeleteFlowLog(x.ctx, x.a, f.ID, DeleteRules{Immediate: true})
	wantErr(t, err, ErrNotFound, "", "does not exist")
	_, _, err = x.svc.SetEnabled(x.ctx, x.a, f.ID, false)
	if !errors.Is(err, ErrDeleting) || !errors.Is(err, ErrBusy) {
		t.Fatalf("changing a flow log being deleted: %v, want ErrDeleting (an ErrBusy)", err)
	}

	list := func(hide bool) int {
		_, n, err := x.svc.ListFlowLogs(x.ctx, x.a, FlowLogFilter{HideDeleting: hide})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if list(false) != 1 || list(true) != 0 {
		t.Fatalf("listed %d, %d hiding deleting ones; want 1, 0", list(false), list(true))
	}
	// A flow log on its way out does not count against the quota (3).
	for range 3 {
		x.flowLog(x.a, in)
	}
	_, _, err = x.svc.CreateFlowLog(x.ctx, x.a, in)
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("a fourth flow log: %v, want the quota", err)
	}
}

func (x *tenancy) stream(account string) string {
	x.t.Helper()
	g, err := x.svc.CreateLogGroup(x.ctx, account, ptr("group"))
	if err != nil {
		x.t.Fatal(err)
	}
	s, err := x.svc.CreateLogStream(x.ctx, account, g.ID, ptr("flows"), nil)
	if err != nil {
		x.t.Fatal(err)
	}
	return s.ID
}

func (x *tenancy) flowLog(account string, in FlowLogInput) FlowLog {
	x.t.Helper()
	in.Name = ptr("fl")
	f, _, err := x.svc.CreateFlowLog(x.ctx, account, in)
	if err != nil {
		x.t.Fatal(err)
	}
	return f
}
