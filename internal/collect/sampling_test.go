package collect

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

var (
	plainRouter    = netip.MustParseAddr("192.0.2.1") // its gateway sets no override
	overrideRouter = netip.MustParseAddr("192.0.2.2") // its gateway says 1:100
)

// samplingCollector claims both routers, one with an override of 1:100.
func samplingCollector(t *testing.T) *Collector {
	c, _ := start(t, Config{Workers: 1, Claimed: func(a netip.Addr) (Claim, bool) {
		switch a {
		case plainRouter:
			return Claim{}, true
		case overrideRouter:
			return Claim{Sampling: 100}, true
		}
		return Claim{}, false
	}})
	return c
}

// counted decodes pkt with a bare session: what the router counted.
func counted(t *testing.T, pkts ...[]byte) []flow.Record {
	t.Helper()
	s := netflow.NewSession(netflow.SessionConfig{})
	var out []flow.Record
	for _, p := range pkts {
		var err error
		if out, _, err = s.Decode(p, time.Now(), out); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// checkScaled checks that got are want's records scaled by n, once.
func checkScaled(t *testing.T, what string, got, want []flow.Record, n uint32) {
	t.Helper()
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].SamplingInterval != n || got[i].Packets != want[i].Packets*uint64(n) ||
			got[i].Bytes != want[i].Bytes*uint64(n) {
			t.Fatalf("%s: record %d has %d packets, %d bytes, sampling_interval %d; want %d × %d, %d × %d, %d",
				what, i, got[i].Packets, got[i].Bytes, got[i].SamplingInterval, want[i].Packets, n, want[i].Bytes, n, n)
		}
	}
}

func corpusFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "testdata", "netflow-vendors", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestV5SamplingAndOverride: a Juniper MX80's v5 export announces 1:1000 in
// its header: its records are stored as 1000 × what it counted, whatever
// the gateway's override. A MikroTik's announces none: its records are
// taken as unsampled and counted as missing a rate, unless the gateway
// sets an override, which then scales them.
func TestV5SamplingAndOverride(t *testing.T) {
	c := samplingCollector(t)
	juniper, mikrotik := corpusFile(t, "netflow5_test_juniper_mx80.dat"), corpusFile(t, "netflow5_test_microtik.dat")
	for _, router := range []netip.Addr{plainRouter, overrideRouter} {
		got, err := c.Decode(router, juniper, false)
		if err != nil {
			t.Fatal(err)
		}
		checkScaled(t, fmt.Sprintf("juniper via %v", router), got, counted(t, juniper), 1000)
	}

	got, err := c.Decode(plainRouter, mikrotik, false)
	if err != nil {
		t.Fatal(err)
	}
	checkScaled(t, "mikrotik, no override", got, counted(t, mikrotik), 1)
	st, _ := c.Exporter(plainRouter)
	if st.SamplingMissing != 30 || !st.LastSamplingMissing || st.SamplingMin != 0 {
		t.Fatalf("no rate and no override: missing %d (last %v), min %d; want 30, true, 0",
			st.SamplingMissing, st.LastSamplingMissing, st.SamplingMin)
	}
	if _, err := c.Decode(plainRouter, juniper, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Exporter(plainRouter); st.LastSamplingMissing || st.SamplingMissing != 30 || st.SamplingMin != 1000 {
		t.Fatalf("after a datagram with a rate: %+v", st)
	}

	got, err = c.Decode(overrideRouter, mikrotik, false)
	if err != nil {
		t.Fatal(err)
	}
	checkScaled(t, "mikrotik, override 1:100", got, counted(t, mikrotik), 100)
	if st, _ := c.Exporter(overrideRouter); st.SamplingMissing != 0 || st.LastSamplingMissing {
		t.Fatalf("with an override: missing %d (last %v), want none", st.SamplingMissing, st.LastSamplingMissing)
	}
}

// TestTemplatedSamplingScaledOnce: v9 and IPFIX records take the rate of
// the options data of their domain (1:10), or their own samplingInterval
// (1:7, as flowlog's exporter sends them), and are scaled by it once; the
// override does not replace an announced rate.
func TestTemplatedSamplingScaledOnce(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	for _, v := range []int{netflow.V9, netflow.IPFIX} {
		c := samplingCollector(t)
		recs := testRecords(40, base)
		b, err := netflow.NewBuilder(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Reset(nil, netflow.Clock{BootMs: base - 3_600_000, ExportMs: base + 60_000})
		b.AppendTemplates(true)
		b.AppendSampling(5, 10)
		for i := range recs {
			if err := b.AppendRecord(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		pkt := append([]byte(nil), b.Finish(netflow.MessageHeader{Domain: 5})...)
		for _, router := range []netip.Addr{plainRouter, overrideRouter} {
			got, err := c.Decode(router, pkt, false)
			if err != nil {
				t.Fatal(err)
			}
			checkScaled(t, fmt.Sprintf("v%d options data via %v", v, router), got, counted(t, pkt), 10)
		}

		// Re-export of sampled records, collected again: the same estimates.
		sampled := testRecords(40, base)
		for i := range sampled {
			sampled[i].Scale(7)
		}
		c2, s := start(t, Config{Workers: 1})
		e, err := export.New(export.Config{Collector: c2.Addrs()[0].String(), Version: v, Domain: 9})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Export(sampled); err != nil {
			t.Fatal(err)
		}
		e.Close()
		got := s.wait(len(sampled))
		g, w := summary(got), summary(sampled)
		for i := range got {
			if got[i].SamplingInterval != 7 {
				t.Fatalf("v%d per-record rate: sampling_interval %d, want 7", v, got[i].SamplingInterval)
			}
		}
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Fatalf("v%d per-record rate: collected\n%v\nwant\n%v", v, g[:3], w[:3])
		}
	}
}

// TestJuniperOptionsDataScales: a Juniper MX240's real options data
// announces samplingInterval 1000 for its observation domain (524288); the
// flow records that follow in that domain, which carry no rate of their
// own, are stored as 1000 × what they count.
func TestJuniperOptionsDataScales(t *testing.T) {
	c := samplingCollector(t)
	for _, f := range []string{"ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat", "ipfix_test_juniper_mx240_junos151r6s3_data512.dat"} {
		if recs, err := c.Decode(plainRouter, corpusFile(t, f), false); err != nil || len(recs) != 0 {
			t.Fatalf("%s: %d records, %v", f, len(recs), err)
		}
	}
	pkt := juniperDomainPacket(t)
	got, err := c.Decode(plainRouter, pkt, false)
	if err != nil {
		t.Fatal(err)
	}
	checkScaled(t, "after the Juniper's options data", got, counted(t, pkt), 1000)
	if st, _ := c.Exporter(plainRouter); st.SamplingMissing != 0 || st.SamplingMin != 1000 {
		t.Fatalf("counters %+v", st)
	}
}

// juniperDomainPacket is an IPFIX message of 20 records, with their
// template, in the observation domain of the Juniper MX240's options data
// in the corpus (which announces 1:1000).
func juniperDomainPacket(t *testing.T) []byte {
	t.Helper()
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	recs := testRecords(20, base)
	b, err := netflow.NewBuilder(netflow.IPFIX)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset(nil, netflow.Clock{ExportMs: base + 60_000})
	b.AppendTemplates(false)
	for i := range recs {
		if err := b.AppendRecord(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return append([]byte(nil), b.Finish(netflow.MessageHeader{Domain: 524288})...)
}
