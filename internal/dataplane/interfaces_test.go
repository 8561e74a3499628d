package dataplane

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flowlog/internal/control"
	"flowlog/internal/desired"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/snmp/snmptest"
	"flowlog/internal/testutil"
)

// TestInterfaceNames: the plane polls the router of an exporter gateway
// with SNMP settings and answers for its interfaces; an exporter without
// them is answered from its own options data; removing the settings stops
// the poller.
func TestInterfaceNames(t *testing.T) {
	agent := snmptest.Start(t)
	r := newRig(t, "127.0.0.1:0")
	router := netip.MustParseAddr("127.0.0.1")
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr(router.String()),
		SNMP: &desired.SNMP{Port: agent.Port, Community: snmptest.Community}})
	r.step()
	var name string
	var speed uint64
	deadline := time.Now().Add(10 * time.Second)
	for name == "" && time.Now().Before(deadline) {
		name, speed, _ = r.p.Interface(router, 1)
		time.Sleep(20 * time.Millisecond)
	}
	if name != "lo" || speed == 0 {
		t.Fatalf("ifIndex 1 of the polled router: %q %d", name, speed)
	}
	rec := httptest.NewRecorder()
	r.p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`flowlog_snmp_poll_failures{exporter="127.0.0.1"} 0`,
		`flowlog_snmp_interfaces{exporter="127.0.0.1"} `, `flowlog_snmp_last_success_timestamp_seconds{exporter="127.0.0.1"} 1.`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A Cisco ASR 9000's options data names its interfaces, with no speed.
	cisco := netip.MustParseAddr("192.0.2.90")
	cgw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr(cisco.String())})
	ls := r.stream()
	r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: cgw.ID}}})
	r.step() // the collector keeps state for the exporters of running flow logs only
	for _, f := range []string{"netflow9_test_cisco_asr9k_data256.dat", "netflow9_test_cisco_asr9k_opttpl256.dat"} {
		b, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors", f))
		r.must(err)
		r.p.collector.Decode(cisco, b, false)
	}
	if name, speed, ok := r.p.Interface(cisco, 74); !ok || name != "TenGigE0_0_1_0" || speed != 0 {
		t.Errorf("ifIndex 74 from options data: %q %d %v", name, speed, ok)
	}
	if _, _, ok := r.p.Interface(cisco, 57); ok {
		t.Error("an interface nobody named has a name")
	}

	_, err := r.svc.UpdateGateway(r.ctx, r.account, gw.ID, control.GatewayInput{SNMP: &desired.SNMP{}})
	r.must(err)
	r.step()
	if _, ok := r.p.pollers.Poller(router); ok {
		t.Error("the poller runs on after its settings were removed")
	}
	if _, _, ok := r.p.Interface(router, 1); ok {
		t.Error("the removed poller still answers")
	}
}

// TestStoredInterfaceNames: records collected from a router polled by SNMP
// reach the log stream with the names and speeds of their input and output
// interfaces (here the machine's own, served by snmpd); an ifIndex the
// router does not have stays unnamed.
func TestStoredInterfaceNames(t *testing.T) {
	agent := snmptest.Start(t)
	port := testutil.FreeUDPPort(t)
	r := newRig(t, fmt.Sprintf("127.0.0.1:%d", port))
	router := netip.MustParseAddr("127.0.0.1")
	gw := r.gateway(control.GatewayInput{Kind: ptr(control.KindExporter), Exporter: ptr(router.String()),
		SNMP: &desired.SNMP{Port: agent.Port, Community: snmptest.Community}})
	ls := r.stream()
	r.flowLog(control.FlowLogInput{OutputType: ptr(control.OutputSLS), LogStreamID: &ls,
		Targets: []control.Target{{GatewayID: gw.ID}}})
	r.step()
	poller, _ := r.p.pollers.Poller(router)
	deadline := time.Now().Add(10 * time.Second)
	for poller.Status().PolledAt.IsZero() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ifs := poller.Interfaces()
	other := uint32(0) // another interface than lo, with a v5-sized ifIndex
	for idx := range ifs {
		if idx != 1 && idx < 1<<16 && (other == 0 || idx < other) {
			other = idx
		}
	}
	if other == 0 {
		t.Skip("the machine has no interface but lo")
	}

	now := time.Now().UnixMilli()
	var sent []flow.Record
	for i, pair := range [][2]uint32{{1, other}, {other, 60000}} {
		sent = append(sent, flow.Record{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"),
			SrcPort: uint16(1000 + i), DstPort: 80, Protocol: 6, Packets: 1, Bytes: 100, Start: now - 1000, End: now,
			InputIfIndex: pair[0], OutputIfIndex: pair[1]})
	}
	e, err := export.New(export.Config{Collector: fmt.Sprintf("127.0.0.1:%d", port), Version: netflow.V5,
		Source: router.String()})
	r.must(err)
	defer e.Close()
	r.must(e.Export(sent))
	var recs []flow.Record
	for len(recs) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		recs = r.records(ls, time.Now())
	}
	if len(recs) != 2 {
		t.Fatalf("stored %d records, want 2", len(recs))
	}
	lo, oth := ifs[1], ifs[other]
	want := map[uint16][4]any{
		1000: {lo.Name, lo.SpeedBps, oth.Name, oth.SpeedBps},
		1001: {oth.Name, oth.SpeedBps, "", uint64(0)},
	}
	for _, x := range recs {
		got := [4]any{x.InIfName, x.InIfSpeed, x.OutIfName, x.OutIfSpeed}
		if got != want[x.SrcPort] || x.InIfName == "" {
			t.Errorf("record %d (if %d→%d): %v, want %v", x.SrcPort, x.InputIfIndex, x.OutputIfIndex, got, want[x.SrcPort])
		}
	}
	if lo.Name != "lo" || lo.SpeedBps != 10_000_000 {
		t.Errorf("lo as polled: %+v", lo)
	}
}
