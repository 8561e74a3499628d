package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/enrich/mmdbtest"
	"flowlog/internal/export"
	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/snmp/snmptest"
	"flowlog/internal/store/clickhouse/chtest"
	"flowlog/internal/testutil"
)

// TestServeEnrich runs `flowlog serve --mmdb COUNTRY --mmdb ASN` replaying
// demo/lab.pcap: the records carry the countries and AS of their public
// addresses (the lab's are documentation ranges, which the test databases
// place), private ones stay empty, and queries filter and group by them.
// A changed database file is used for the records that come after it; a
// broken one keeps the database loaded before.
func TestServeEnrich(t *testing.T) {
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "GeoLite2-Country.mmdb"), filepath.Join(dir, "dbip-asn-lite.mmdb")
	mmdbtest.Write(t, country, mmdbtest.GeoLite2Country, map[string]mmdbtest.Entry{
		"198.51.100.0/24": {Country: "DE"}, "203.0.113.0/24": {Country: "US"}, "192.0.2.0/24": {Country: "FR"}})
	mmdbtest.Write(t, asn, mmdbtest.DBIPASN, map[string]mmdbtest.Entry{
		"198.51.100.0/24": {AS: 64500, ASName: "Example Carrier"}, "203.0.113.0/24": {AS: 64501, ASName: "Big Cloud"}})
	conf := filepath.Join(dir, "flowlog.yaml")
	if err := os.WriteFile(conf, []byte("mmdb_reload: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testutil.NewServer(t)
	srv.UseTestKey()
	srv.Args = []string{"--config", conf, "--mmdb", country, "--mmdb", asn}
	srv.Start()
	if _, errOut := srv.Logs(); strings.Count(errOut, "GeoIP/ASN database loaded") != 2 || !strings.Contains(errOut, "type=GeoLite2-Country") {
		t.Errorf("the start log does not name the databases:\n%s", errOut)
	}

	ls := demoFlowLog(t, srv, "geo")
	settled(t, srv, ls)
	query := func(stream string, args ...string) []map[string]any { return queryJSON(t, srv, stream, args...) }
	flows := func(stream string, args ...string) map[string]float64 { return flowsBy(t, srv, stream, args...) }
	bySrc := func(stream, prefix string) float64 { return flowsFrom(t, srv, stream, prefix) }
	countries := flows(ls, "--top", "src_country")
	de, us, private := bySrc(ls, "198.51.100.0/24"), bySrc(ls, "203.0.113.0/24"), bySrc(ls, "10.0.0.0/8")
	if de == 0 || us == 0 || private == 0 || countries["DE"] != de || countries["US"] != us || countries[""] < private {
		t.Errorf("flows by src_country %v; by address: DE %v, US %v, private %v", countries, de, us, private)
	}
	if as := flows(ls, "--top", "src_as"); as["64500"] != de || as["64501"] != us {
		t.Errorf("flows by src_as %v, want 64500: %v, 64501: %v", as, de, us)
	}
	if n := flows(ls, "--top", "dst_as_name", "--where", "dst_country = 'DE'"); n["Example Carrier"] == 0 || len(n) != 1 {
		t.Errorf("flows to DE by dst_as_name: %v", n)
	}
	recs := query(ls, "--where", "src_country = 'US'", "--limit", "5")
	if len(recs) == 0 || recs[0]["src_as"] != 64501.0 || recs[0]["src_as_name"] != "Big Cloud" || !strings.HasPrefix(recs[0]["srcaddr"].(string), "203.0.113.") {
		t.Errorf("records from US: %v", recs)
	}

	// The country database changes: the next replay's records see it.
	mmdbtest.Write(t, country+".new", mmdbtest.GeoLite2Country, map[string]mmdbtest.Entry{"198.51.100.0/24": {Country: "NL"}})
	if err := os.Rename(country+".new", country); err != nil {
		t.Fatal(err)
	}
	waitTrue(t, "the changed database loaded", func() bool { return srv.Metrics()["flowlog_enrich_reloads_total"] == 1 })
	ls2 := demoFlowLog(t, srv, "geo2")
	settled(t, srv, ls2)
	if c := flows(ls2, "--top", "src_country"); c["NL"] != de || c["DE"] != 0 || c["US"] != 0 {
		t.Errorf("after the reload, flows by src_country %v, want NL: %v", c, de)
	}
	// A broken file: reported, and the database loaded before stays.
	if err := os.WriteFile(country, []byte("not an mmdb file"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitTrue(t, "the broken database reported", func() bool { return srv.Metrics()["flowlog_enrich_reload_errors_total"] == 1 })
	ls3 := demoFlowLog(t, srv, "geo3")
	settled(t, srv, ls3)
	if c := flows(ls3, "--top", "src_country"); c["NL"] != de {
		t.Errorf("with a broken file, flows by src_country %v, want NL: %v", c, de)
	}
	if _, errOut := srv.Logs(); !strings.Contains(errOut, "does not load") {
		t.Errorf("the broken file is not in the log:\n%s", errOut)
	}
	if m := srv.Metrics(); m["flowlog_enrich_lookups_total"] == 0 || m["flowlog_enrich_misses_total"] == 0 {
		t.Errorf("enrich metrics: lookups %v, misses %v", m["flowlog_enrich_lookups_total"], m["flowlog_enrich_misses_total"])
	}
}

// queryJSON runs flowlog query on the stream over storeWindow.
func queryJSON(t *testing.T, srv *testutil.Server, stream string, args ...string) []map[string]any {
	t.Helper()
	out := cliOK(t, srv, append(append([]string{"query", "--server", srv.URL, "--log-stream", stream, "--output", "json"},
		storeWindow...), args...)...)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rows
}

// flowsBy returns the flows by value of the field args[1] ("--top",
// FIELD, then more query flags).
func flowsBy(t *testing.T, srv *testutil.Server, stream string, args ...string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, r := range queryJSON(t, srv, stream, append(args, "--by", "flows", "--limit", "100")...) {
		out[fmt.Sprint(r[args[1]])] = r["flows"].(float64)
	}
	return out
}

// flowsFrom counts the flows whose source is in prefix.
func flowsFrom(t *testing.T, srv *testutil.Server, stream, prefix string) float64 {
	t.Helper()
	n := 0.0
	for _, v := range flowsBy(t, srv, stream, "--top", "protocol", "--where", "srcaddr in "+prefix) {
		n += v
	}
	return n
}

// TestAgentEnrich runs `flowlog agent --mmdb` beside serve on ClickHouse:
// the records the agent stores carry the countries of their addresses.
func TestAgentEnrich(t *testing.T) {
	chURL := chtest.Start(t)
	store := "clickhouse://" + strings.TrimPrefix(chURL, "http://") + "/flowlog_agent_enrich"
	country := filepath.Join(t.TempDir(), "dbip-country-lite.mmdb")
	mmdbtest.Write(t, country, mmdbtest.DBIPCountry, map[string]mmdbtest.Entry{"198.51.100.0/24": {Country: "DE"}})
	srv := testutil.NewServer(t)
	srv.UseTestKey()
	srv.Args = []string{"--store", store}
	srv.Start()
	ag := newAgent(t, srv, "edge1", "", "", "--store", store, "--mmdb", country)
	ag.Start()
	ls := newStream(t, srv, "geo")
	flowLogTo(t, srv, "geo", ls, pcapGateway(t, srv, "geo", "fast", "edge1"))
	settled(t, srv, ls)
	de := flowsFrom(t, srv, ls, "198.51.100.0/24")
	if c := flowsBy(t, srv, ls, "--top", "src_country"); de == 0 || c["DE"] != de {
		t.Errorf("flows by src_country %v, want DE: %v", c, de)
	}
	if m := ag.Metrics(); m["flowlog_enrich_lookups_total"] == 0 {
		t.Errorf("the agent's metrics count no lookups")
	}
}

// TestServeMMDBErrors: a database that cannot be loaded stops the start,
// naming the file.
func TestServeMMDBErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not an mmdb file"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Binary(t), "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", testutil.FreeTCPPort(t)),
		"--data-dir", t.TempDir(), "--mmdb", bad)
	cmd.Env = []string{"HOME=" + t.TempDir(), "FLOWLOG_NETFLOW_LISTEN=off", "FLOWLOG_SFLOW_LISTEN=off"}
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), bad) {
		t.Errorf("serve with a broken database: %v: %s", err, out)
	}
}

// TestCollectedEnriched: records serve collects are enriched too. Of
// softflowd's IPFIX export of demo/lab.pcap, the flows by country and AS
// are the flows by address prefix; IPFIX records of a router whose
// interfaces serve polls from snmpd carry both their interface's name and
// speed and their source's country.
func TestCollectedEnriched(t *testing.T) {
	testutil.Peer(t, "softflowd")
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "GeoLite2-Country.mmdb"), filepath.Join(dir, "GeoLite2-ASN.mmdb")
	mmdbtest.Write(t, country, mmdbtest.GeoLite2Country, map[string]mmdbtest.Entry{
		"198.51.100.0/24": {Country: "DE"}, "203.0.113.0/24": {Country: "US"}})
	mmdbtest.Write(t, asn, mmdbtest.GeoLite2ASN, map[string]mmdbtest.Entry{"203.0.113.0/24": {AS: 64501, ASName: "Big Cloud"}})
	agent := snmptest.Start(t)
	port := testutil.FreeUDPPort(t)
	srv := testutil.NewServer(t, "FLOWLOG_NETFLOW_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	srv.UseTestKey()
	srv.Args = []string{"--mmdb", country, "--mmdb", asn}
	srv.Start()
	gw := cliOK(t, srv, "gateways", "create", "--name", "rtr", "--kind", "exporter", "--exporter-addr", "127.0.0.1",
		"--snmp-community", snmptest.Community, "--snmp-port", strconv.Itoa(agent.Port), "-o", "id")
	ls := newStream(t, srv, "collected")
	fl := flowLogTo(t, srv, "rtr", ls, gw)
	waitTrue(t, "the flow log available", func() bool { return flowLogState(t, srv, fl) == "available" })
	waitTrue(t, "the router polled", func() bool { return srv.Metrics()[`flowlog_snmp_interfaces{exporter="127.0.0.1"}`] > 0 })

	softflowd(t, "127.0.0.1:"+strconv.Itoa(port))
	var de, us float64
	waitTrue(t, "softflowd's flows stored", func() bool {
		de, us = flowsFrom(t, srv, ls, "198.51.100.0/24"), flowsFrom(t, srv, ls, "203.0.113.0/24")
		return de > 0 && us > 0
	})
	time.Sleep(2 * time.Second) // the rest of the export
	de, us = flowsFrom(t, srv, ls, "198.51.100.0/24"), flowsFrom(t, srv, ls, "203.0.113.0/24")
	if c := flowsBy(t, srv, ls, "--top", "src_country"); c["DE"] != de || c["US"] != us {
		t.Errorf("collected flows by src_country %v; by address DE %v, US %v", c, de, us)
	}
	if a := flowsBy(t, srv, ls, "--top", "src_as_name"); a["Big Cloud"] != us {
		t.Errorf("collected flows by src_as_name %v; want Big Cloud: %v", a, us)
	}

	// A router's IPFIX records through its interface 1 (lo on this host).
	now := time.Now().UnixMilli()
	rec := flow.Record{SrcAddr: netip.MustParseAddr("203.0.113.7"), DstAddr: netip.MustParseAddr("10.0.0.2"),
		SrcPort: 4000, DstPort: 80, Protocol: 6, Packets: 1, Bytes: 100, Start: now - 1000, End: now, InputIfIndex: 1}
	e, err := export.New(export.Config{Collector: "127.0.0.1:" + strconv.Itoa(port), Version: netflow.IPFIX, Source: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Export([]flow.Record{rec}); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	waitTrue(t, "the router's record", func() bool {
		rows = queryJSON(t, srv, ls, "--where", "srcaddr = 203.0.113.7")
		return len(rows) == 1
	})
	if r := rows[0]; r["in_if_name"] != "lo" || r["in_if_speed"] != 10_000_000.0 || r["src_country"] != "US" || r["src_as"] != 64501.0 {
		t.Errorf("the router's record: %v", r)
	}
}
