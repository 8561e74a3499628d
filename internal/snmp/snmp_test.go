package snmp_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"flowlog/internal/snmp"
	"flowlog/internal/snmp/snmptest"
	"flowlog/internal/testutil"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func v2c(a *snmptest.Agent) snmp.Target {
	return snmp.Target{Addr: loopback, Port: a.Port, Community: snmptest.Community}
}

func v3(a *snmptest.Agent) snmp.Target {
	return snmp.Target{Addr: loopback, Port: a.Port, Version: "3", User: snmptest.User,
		AuthProtocol: "SHA", AuthPassword: snmptest.AuthPass, PrivProtocol: "AES", PrivPassword: snmptest.PrivPass}
}

var quick = snmp.Config{Timeout: 300 * time.Millisecond, Retries: -1}

// kernelInterfaces reads this machine's interfaces, ifIndex → name, as the
// agent serves them.
func kernelInterfaces(t *testing.T) map[uint32]string {
	t.Helper()
	dirs, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint32]string{}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", d.Name(), "ifindex"))
		if err != nil {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		m[uint32(n)] = d.Name()
	}
	return m
}

// Both versions give the machine's interfaces by their kernel ifIndex and
// name; a veth made for the test has its speed and the alias set on it.
func TestPollMatchesKernel(t *testing.T) {
	testutil.Root(t)
	veth := testutil.UniqueName("fls")
	testutil.Run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", veth+"p")
	t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
	testutil.Run(t, "ip", "link", "set", veth, "up")
	testutil.Run(t, "ip", "link", "set", veth+"p", "up")
	b, err := os.ReadFile("/sys/class/net/" + veth + "/ifindex")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	idx := uint32(n)
	a := snmptest.Start(t) // after the veth: net-snmp caches its interface list
	setAlias(t, a, idx, "uplink to isp-1")

	for _, target := range []snmp.Target{v2c(a), v3(a)} {
		t.Run(target.String(), func(t *testing.T) {
			ifs, err := snmp.Poll(context.Background(), target, quick)
			if err != nil {
				t.Fatal(err)
			}
			kernel := kernelInterfaces(t)
			for i, name := range kernel {
				if ifs[i].Name != name {
					t.Errorf("ifIndex %d: name %q, kernel says %q", i, ifs[i].Name, name)
				}
			}
			got := ifs[idx]
			want := snmp.Interface{Index: idx, Name: veth, Description: "uplink to isp-1", SpeedBps: 10_000_000_000}
			if got != want {
				t.Errorf("veth: got %+v, want %+v", got, want)
			}
		})
	}
}

// setAlias sets ifAlias through the agent (net-snmp keeps its own).
func setAlias(t *testing.T, a *snmptest.Agent, idx uint32, alias string) {
	t.Helper()
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(a.Port), Community: snmptest.RWCommunity,
		Version: gosnmp.Version2c, Timeout: time.Second, Retries: 1}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	defer g.Conn.Close()
	oid := ".1.3.6.1.2.1.31.1.1.1.18." + strconv.Itoa(int(idx))
	res, err := g.Set([]gosnmp.SnmpPDU{{Name: oid, Type: gosnmp.OctetString, Value: []byte(alias)}})
	if err != nil || res.Error != gosnmp.NoError {
		t.Fatalf("set ifAlias: %v %v", err, res)
	}
}

// Loopback is index 1 everywhere; no root needed.
func TestPollLoopback(t *testing.T) {
	a := snmptest.Start(t)
	ifs, err := snmp.Poll(context.Background(), v2c(a), quick)
	if err != nil {
		t.Fatal(err)
	}
	if ifs[1].Name != "lo" {
		t.Errorf("ifIndex 1 = %+v, want lo", ifs[1])
	}
	if len(ifs) != len(kernelInterfaces(t)) {
		t.Errorf("%d interfaces, kernel has %d", len(ifs), len(kernelInterfaces(t)))
	}
}

func TestWrongCredentials(t *testing.T) {
	a := snmptest.Start(t)
	bad := v3(a)
	bad.AuthPassword = "not-the-password"
	_, err := snmp.Poll(context.Background(), bad, quick)
	if err == nil {
		t.Fatal("v3 with a wrong auth password polled")
	}
	if msg := err.Error(); !errors.Is(err, snmp.ErrAuth) || strings.Contains(msg, "not-the-password") {
		t.Errorf("error %q should say authentication failed, without the password", msg)
	}
	community := v2c(a)
	community.Community = "wrong-community"
	if _, err := snmp.Poll(context.Background(), community, quick); err == nil ||
		strings.Contains(err.Error(), "wrong-community") {
		t.Errorf("wrong community: %v", err)
	}
}

func TestTargetCheck(t *testing.T) {
	for _, tc := range []snmp.Target{
		{Addr: loopback}, // no community
		{Addr: loopback, Version: "1", Community: "c"}, // v1
		{Addr: loopback, Version: "3"},                 // no user
		{Addr: loopback, Version: "3", User: "u", AuthProtocol: "SHA1", AuthPassword: "12345678"},
		{Addr: loopback, Version: "3", User: "u", AuthProtocol: "SHA", AuthPassword: "short"},
		{Addr: loopback, Version: "3", User: "u", PrivProtocol: "AES", PrivPassword: "12345678"},
	} {
		if err := tc.Check(); err == nil {
			t.Errorf("%+v: accepted", tc)
		}
	}
	ok := snmp.Target{Addr: loopback, Version: "3", User: "u", AuthProtocol: "sha256", AuthPassword: "12345678"}
	if err := ok.Check(); err != nil {
		t.Error(err)
	}
}

// A router that stops answering keeps its last table; it is polled again
// only after a back-off that doubles, and its table is refreshed once it
// answers again.
func TestBreaker(t *testing.T) {
	a := snmptest.Start(t)
	cfg := snmp.Config{Timeout: 150 * time.Millisecond, Retries: -1, Refresh: 200 * time.Millisecond,
		Backoff: 250 * time.Millisecond, MaxBackoff: 10 * time.Second}
	var set snmp.Set
	if errs := set.Replace([]snmp.Target{v2c(a)}, cfg, nil); errs != nil {
		t.Fatal(errs)
	}
	defer set.Stop()
	p, _ := set.Poller(loopback)
	waitFor(t, "first poll", func() bool { return !p.Status().PolledAt.IsZero() })
	good := p.Status().PolledAt
	a.Kill()

	// Watch three failures: each waits twice as long as the one before,
	// and no poll comes before its time.
	var seen []snmp.Status
	waitFor(t, "three failures", func() bool {
		st := p.Status()
		if st.Failures > len(seen) {
			seen = append(seen, st)
		}
		return len(seen) >= 3
	})
	for k, st := range seen {
		if st.Failures != k+1 {
			t.Fatalf("missed a failure: %+v", seen)
		}
		if want := cfg.Backoff << k; st.NextAt.Sub(st.FailedAt) != want {
			t.Errorf("failure %d: next poll in %v, want %v", k+1, st.NextAt.Sub(st.FailedAt), want)
		}
		if k > 0 && st.FailedAt.Before(seen[k-1].NextAt) {
			t.Errorf("failure %d at %v, before the back-off ended at %v", k+1, st.FailedAt, seen[k-1].NextAt)
		}
		if st.LastError == "" || st.PolledAt != good {
			t.Errorf("failure %d: %+v", k+1, st)
		}
	}
	if name, _, ok := set.Interface(loopback, 1); !ok || name != "lo" {
		t.Errorf("the last good table was dropped: %q %v", name, ok)
	}

	a.Restart()
	waitFor(t, "recovery", func() bool { st := p.Status(); return st.Failures == 0 && st.PolledAt.After(good) })
	if st := p.Status(); st.LastError != "" || st.Interfaces == 0 {
		t.Errorf("after recovery: %+v", st)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An ifIndex missing from the table (an interface added since) brings the
// next poll forward, once per back-off, not once per record.
func TestEarlyPollOnMiss(t *testing.T) {
	a := snmptest.Start(t)
	cfg := snmp.Config{Timeout: 300 * time.Millisecond, Retries: -1, Refresh: time.Hour, Backoff: 300 * time.Millisecond}
	p, err := snmp.New(v2c(a), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	defer p.Stop()
	waitFor(t, "first poll", func() bool { return !p.Status().PolledAt.IsZero() })
	first := p.Status().PolledAt
	if _, ok := p.Interface(1 << 30); ok {
		t.Fatal("ifIndex 2^30 exists")
	}
	time.Sleep(100 * time.Millisecond)
	if p.Status().PolledAt != first {
		t.Fatal("a miss polled again before the back-off")
	}
	time.Sleep(cfg.Backoff)
	for range 1000 {
		p.Interface(1 << 30)
	}
	waitFor(t, "early poll", func() bool { return p.Status().PolledAt.After(first) })
	second := p.Status().PolledAt
	for range 1000 {
		p.Interface(1 << 30)
	}
	time.Sleep(cfg.Backoff / 2)
	if p.Status().PolledAt != second {
		t.Error("misses polled more than once per back-off")
	}
}

// BenchmarkSetInterface is the per-record lookup, from parallel goroutines
// as the collector's workers make it.
func BenchmarkSetInterface(b *testing.B) {
	a := snmptest.Start(b)
	var set snmp.Set
	set.Replace([]snmp.Target{v2c(a)}, snmp.Config{Refresh: time.Hour}, nil)
	defer set.Stop()
	p, _ := set.Poller(loopback)
	for p.Status().PolledAt.IsZero() {
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, ok := set.Interface(loopback, 1); !ok {
				b.Fatal("lo unknown")
			}
		}
	})
}
