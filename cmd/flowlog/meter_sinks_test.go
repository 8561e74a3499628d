package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"flowlog/internal/flow"
	"flowlog/internal/testutil"
)

// meterRecords meters a capture and returns the records it prints.
func meterRecords(t *testing.T, pcap string, args ...string) []flow.Record {
	t.Helper()
	args = append([]string{"meter", "--pcap", pcap, "--inactive-timeout", "600"}, args...)
	out, err := exec.Command(testutil.Binary(t), args...).Output()
	if err != nil {
		t.Fatalf("meter: %v", err)
	}
	var recs []flow.Record
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var r flow.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

func totals(recs []flow.Record) (packets, bytes uint64) {
	for _, r := range recs {
		packets += r.Packets
		bytes += r.Bytes
	}
	return
}

// TestMeterImportsIntoStore: what `meter --data-dir --log-stream` imports,
// `query --data-dir` finds, record for record.
func TestMeterImportsIntoStore(t *testing.T) {
	pcap := filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap/http_get.pcap")
	want := meterRecords(t, pcap)
	dir := t.TempDir()
	cmd := exec.Command(testutil.Binary(t), "meter", "--pcap", pcap, "--inactive-timeout", "600",
		"--data-dir", dir, "--log-stream", "lab")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), `"srcaddr"`) {
		t.Fatalf("meter import: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("log store: %d records stored, 0 dropped", len(want))) {
		t.Fatalf("import summary:\n%s", out)
	}
	q := exec.Command(testutil.Binary(t), "query", "--data-dir", dir, "--log-stream", "lab",
		"--since", "2000-01-01T00:00:00Z", "--limit", "1000", "--output", "csv")
	csvOut, err := q.Output()
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(csvOut))).ReadAll()
	if err != nil || len(rows) != len(want)+1 {
		t.Fatalf("query returned %d rows, want %d: %v\n%s", len(rows)-1, len(want), err, csvOut)
	}
	col := map[string]int{}
	for i, n := range rows[0] {
		col[n] = i
	}
	var packets, bytes uint64
	for _, r := range rows[1:] {
		p, _ := strconv.ParseUint(r[col["packets"]], 10, 64)
		b, _ := strconv.ParseUint(r[col["bytes"]], 10, 64)
		packets, bytes = packets+p, bytes+b
	}
	if wp, wb := totals(want); packets != wp || bytes != wb {
		t.Fatalf("stored %d packets %d bytes, metered %d/%d", packets, bytes, wp, wb)
	}
}

// TestMeterExportsNetflow: `meter --netflow` delivers to a real nfcapd what
// the meter prints, per version.
func TestMeterExportsNetflow(t *testing.T) {
	pcap := filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap/http_get.pcap")
	want := meterRecords(t, pcap)
	wp, wb := totals(want)
	for _, v := range []string{"V5", "V9", "V10"} {
		flows, p, b := meterToNfcapd(t, pcap, v)
		if len(flows) != len(want) || p != wp || b != wb {
			t.Errorf("%s: nfdump saw %d flows %d packets %d bytes; the meter made %d/%d/%d",
				v, len(flows), p, b, len(want), wp, wb)
		}
	}
}

// TestMeterSampledExportsNetflow: `meter --sampling 4` prints estimates
// (4 × what it metered, so multiples of 4); exported to a real nfcapd, v5
// carries the interval in its header and nfdump stores the same estimates;
// v9 and IPFIX carry it in each record; nfdump 1.7 applies no v9/IPFIX
// rate, so it stores what was metered, a quarter. Neither is scaled twice.
func TestMeterSampledExportsNetflow(t *testing.T) {
	pcap := filepath.Join(testutil.SharedDir(t), "testdata/flowtest/pcap/http_get.pcap")
	want := meterRecords(t, pcap, "--sampling", "4")
	wp, wb := totals(want)
	if len(want) == 0 || wp%4 != 0 || wb%4 != 0 {
		t.Fatalf("meter --sampling 4: %d records, %d packets, %d bytes; want estimates, multiples of 4", len(want), wp, wb)
	}
	for _, v := range []string{"V5", "V9", "V10"} {
		flows, p, b := meterToNfcapd(t, pcap, v, "--sampling", "4")
		ep, eb := wp, wb
		if v != "V5" {
			ep, eb = wp/4, wb/4
		}
		if len(flows) != len(want) || p != ep || b != eb {
			t.Errorf("%s: nfdump saw %d flows %d packets %d bytes; want %d/%d/%d", v, len(flows), p, b, len(want), ep, eb)
		}
	}
}

// meterToNfcapd runs `meter --netflow` (in version, with args) over pcap to
// a real nfcapd and returns what nfdump saw: its flows and their packets and
// bytes.
func meterToNfcapd(t *testing.T, pcap, version string, args ...string) (flows []testutil.NfdumpFlow, packets, bytes uint64) {
	t.Helper()
	port, stop := testutil.StartNfcapd(t)
	args = append([]string{"meter", "--pcap", pcap, "--inactive-timeout", "600",
		"--netflow", fmt.Sprintf("127.0.0.1:%d", port), "--netflow-version", version}, args...)
	if out, err := exec.Command(testutil.Binary(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: meter: %v\n%s", version, err, out)
	}
	flows, _ = stop()
	for _, f := range flows {
		packets, bytes = packets+f.Packets, bytes+f.Bytes
	}
	return flows, packets, bytes
}
