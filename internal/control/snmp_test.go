package control

import (
	"encoding/json"
	"strings"
	"testing"

	"flowlog/internal/desired"
	"flowlog/internal/snmp/snmptest"
)

// TestGatewaySNMP: an exporter's SNMP settings reach the desired state
// whole, while what the API returns says how it is polled but never the
// community or passwords; bad settings are refused on the snmp field.
func TestGatewaySNMP(t *testing.T) {
	x := newTenancy(t, "")
	x.grant(x.a, GrantExporter, "192.0.2.0/24")
	addr := "192.0.2.7"
	gw, err := x.svc.CreateGateway(x.ctx, x.a, GatewayInput{Name: ptr("router"), Kind: ptr(KindExporter),
		Exporter: &addr, SNMP: &desired.SNMP{Community: "c0mmunity-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if !gw.SNMPConfigured || *gw.SNMP != (SNMPView{Version: "2c", Port: 161}) {
		t.Errorf("v2c view: %v %+v", gw.SNMPConfigured, gw.SNMP)
	}
	desiredSNMP := func() *desired.SNMP {
		for _, g := range x.snapshot().Gateways {
			if g.ID == gw.ID {
				return g.SNMP
			}
		}
		t.Fatal("gateway not in the desired state")
		return nil
	}
	if got := desiredSNMP(); got == nil || *got != (desired.SNMP{Version: "2c", Port: 161, Community: "c0mmunity-secret"}) {
		t.Errorf("desired: %+v", got)
	}

	v3 := desired.SNMP{Version: "3", Port: 1161, User: "poller", AuthProtocol: "sha", AuthPassword: "auth-secret-1",
		PrivProtocol: "aes", PrivPassword: "priv-secret-1"}
	if gw, err = x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{SNMP: &v3}); err != nil {
		t.Fatal(err)
	}
	// A change of anything else keeps the settings.
	if _, err = x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{Name: ptr("edge-1")}); err != nil {
		t.Fatal(err)
	}
	got, err := x.svc.GetGateway(x.ctx, x.a, gw.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := SNMPView{Version: "3", Port: 1161, User: "poller", AuthProtocol: "SHA", PrivProtocol: "AES"}
	if !got.SNMPConfigured || *got.SNMP != want {
		t.Errorf("v3 view: %+v", got.SNMP)
	}
	list, _ := x.svc.ListGateways(x.ctx, x.a)
	js, _ := json.Marshal([]any{got, gw, list})
	for _, secret := range []string{"c0mmunity-secret", "auth-secret-1", "priv-secret-1"} {
		if strings.Contains(string(js), secret) {
			t.Errorf("a response shows %q: %s", secret, js)
		}
	}
	if d := desiredSNMP(); d == nil || d.AuthPassword != "auth-secret-1" || d.PrivPassword != "priv-secret-1" || d.AuthProtocol != "SHA" {
		t.Errorf("desired v3: %+v", d)
	}

	for _, bad := range []desired.SNMP{
		{Version: "1", Community: "c"},
		{Version: "3", User: "u", AuthProtocol: "SHA", AuthPassword: "short"},
		{Version: "3", User: "u", AuthProtocol: "XYZ", AuthPassword: "long-enough"},
		{Version: "3", User: "u", Community: "c"},
		{Version: "2c", User: "u"},
		{Version: "2c", Port: 70000, Community: "c"},
	} {
		_, err := x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{SNMP: &bad})
		wantErr(t, err, ErrInvalid, "snmp", "")
	}
	_, err = x.svc.CreateGateway(x.ctx, x.a, GatewayInput{Name: ptr("host"), Kind: ptr(KindCapture),
		SNMP: &desired.SNMP{Community: "c"}})
	wantErr(t, err, ErrInvalid, "snmp", "exporter")

	// All zero removes them.
	if gw, err = x.svc.UpdateGateway(x.ctx, x.a, gw.ID, GatewayInput{SNMP: &desired.SNMP{}}); err != nil {
		t.Fatal(err)
	}
	if gw.SNMPConfigured || gw.SNMP != nil || desiredSNMP() != nil {
		t.Errorf("after removal: %+v, desired %+v", gw, desiredSNMP())
	}
}

// TestDiscoverInterfaces: discovery lists a real agent's interfaces with
// the attachments that have their ifIndex, and attaches the others once.
func TestDiscoverInterfaces(t *testing.T) {
	agent := snmptest.Start(t)
	x := newTenancy(t, "")
	addr := "127.0.0.1"
	gw, err := x.svc.CreateGateway(x.ctx, x.boot, GatewayInput{Name: ptr("router"), Kind: ptr(KindExporter),
		Exporter: &addr, SNMP: &desired.SNMP{Port: agent.Port, Community: snmptest.Community}})
	if err != nil {
		t.Fatal(err)
	}
	lo, err := x.svc.CreateAttachment(x.ctx, x.boot, gw.ID, AttachmentInput{Name: ptr("loopback"), IfIndex: ptr(uint32(1))})
	if err != nil {
		t.Fatal(err)
	}
	d, err := x.svc.DiscoverInterfaces(x.ctx, x.boot, gw.ID, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Interfaces) < 2 || d.Interfaces[0].Index != 1 || d.Interfaces[0].Name != "lo" ||
		d.Interfaces[0].AttachmentID != lo.ID || len(d.Created) != 0 {
		t.Fatalf("listing: %+v", d)
	}
	d, err = x.svc.DiscoverInterfaces(x.ctx, x.boot, gw.ID, DiscoverOptions{CreateAttachments: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Created) != len(d.Interfaces)-1 {
		t.Fatalf("created %d attachments for %d interfaces, one attached", len(d.Created), len(d.Interfaces))
	}
	for k, a := range d.Created {
		i := d.Interfaces[k+1]
		if a.IfIndex != i.Index || a.Name != i.Name || i.AttachmentID != a.ID {
			t.Errorf("attachment %+v for %+v", a, i)
		}
	}
	if again, err := x.svc.DiscoverInterfaces(x.ctx, x.boot, gw.ID, DiscoverOptions{CreateAttachments: true}); err != nil || len(again.Created) != 0 {
		t.Errorf("a second discovery made %d attachments (%v)", len(again.Created), err)
	}

	if _, err := x.svc.UpdateGateway(x.ctx, x.boot, gw.ID, GatewayInput{SNMP: &desired.SNMP{Port: agent.Port,
		Community: "wrong"}}); err != nil {
		t.Fatal(err)
	}
	_, err = x.svc.DiscoverInterfaces(x.ctx, x.boot, gw.ID, DiscoverOptions{})
	wantErr(t, err, ErrUpstream, "snmp", "127.0.0.1")
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the community: %v", err)
	}
}
