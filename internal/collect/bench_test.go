package collect

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/flow"
	"flowlog/internal/netflow"
	"flowlog/internal/testutil"
)

// streamPackets returns IPFIX packets (templates first) of 1400 bytes and
// the number of data records in each of the others.
func streamPackets(b *testing.B) ([][]byte, int) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	recs := testRecords(2300, base)
	bl, _ := netflow.NewBuilder(netflow.IPFIX)
	clock := netflow.Clock{BootMs: base - 1000, ExportMs: base + 5000}
	var pkts [][]byte
	bl.Reset(nil, clock)
	bl.AppendTemplates(false)
	pkts = append(pkts, append([]byte(nil), bl.Finish(netflow.MessageHeader{})...))
	per := 0
	for i := 0; i+30 <= len(recs); {
		bl.Reset(nil, clock)
		n := 0
		// IPv4 only, so every packet carries the same number of records.
		for ; i < len(recs) && bl.Len()+bl.RecordSize(&recs[i]) <= 1400; i++ {
			if recs[i].IPVersion == 4 {
				bl.AppendRecord(&recs[i])
				n++
			}
		}
		if per == 0 {
			per = n
		}
		if n != per {
			break
		}
		pkts = append(pkts, append([]byte(nil), bl.Finish(netflow.MessageHeader{})...))
	}
	return pkts, per
}

// send writes records' worth of data packets to addr, at rate records/s
// (0: as fast as possible), and returns how many records it sent.
func send(b *testing.B, addr string, pkts [][]byte, per, records, rate int) int {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.Write(pkts[0])
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	sent := 0
	for i := 0; sent < records; i++ {
		if rate > 0 && i%16 == 0 {
			if ahead := time.Duration(float64(sent)/float64(rate)*1e9) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if _, err := conn.Write(pkts[1+i%(len(pkts)-1)]); err == nil {
			sent += per
		}
	}
	return sent
}

// BenchmarkCollectorUDP sends IPFIX over loopback to the collector (two
// SO_REUSEPORT workers, its default buffers) and reports the records/s decoded
// end to end and the loss. The /max case sends as fast as one sender
// can; /500k paces the stream at 500,000 records/s.
func BenchmarkCollectorUDP(b *testing.B) {
	for _, rate := range []int{0, 500_000} {
		name := "max"
		if rate > 0 {
			name = fmt.Sprintf("%dk", rate/1000)
		}
		b.Run(name, func(b *testing.B) {
			var got atomic.Int64
			c, err := New(Config{Listen: "127.0.0.1:0", Workers: 2}, func(recs []flow.Record) { got.Add(int64(len(recs))) })
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			pkts, per := streamPackets(b)
			records := max(b.N, 200_000)
			b.ResetTimer()
			start := time.Now()
			sent := send(b, c.Addrs()[0].String(), pkts, per, records, rate)
			b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "sent/s")
			for last := int64(-1); got.Load() != last; {
				last = got.Load()
				time.Sleep(50 * time.Millisecond)
			}
			el := time.Since(start) - 50*time.Millisecond
			b.ReportMetric(float64(got.Load())/el.Seconds(), "records/s")
			b.ReportMetric(100*float64(int64(sent)-got.Load())/float64(sent), "loss%")
		})
	}
}

// BenchmarkNfcapdUDP is the peer: nfcapd (-B 32 MiB) receiving the same
// stream, counted with nfdump afterwards. Its figures are the offered
// rate and the loss.
func BenchmarkNfcapdUDP(b *testing.B) {
	nfcapd := testutil.Peer(b, "nfcapd")
	nfdump := testutil.Peer(b, "nfdump")
	for _, rate := range []int{0, 500_000} {
		name := "max"
		if rate > 0 {
			name = fmt.Sprintf("%dk", rate/1000)
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			port := testutil.FreeUDPPort(b)
			cmd := exec.Command(nfcapd, "-b", "127.0.0.1", "-p", fmt.Sprint(port), "-w", dir, "-B", fmt.Sprint(32<<20), "-t", "3600")
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer cmd.Process.Kill()
			time.Sleep(300 * time.Millisecond)
			pkts, per := streamPackets(b)
			records := max(b.N, 200_000)
			b.ResetTimer()
			start := time.Now()
			sent := send(b, fmt.Sprintf("127.0.0.1:%d", port), pkts, per, records, rate)
			el := time.Since(start)
			b.StopTimer()
			time.Sleep(500 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			// -I prints the files' statistics, among them "Flows: N".
			out, err := exec.Command(nfdump, "-R", dir, "-I").Output()
			if err != nil {
				b.Fatal(err)
			}
			flows := 0
			for _, line := range strings.Split(string(out), "\n") {
				if v, ok := strings.CutPrefix(line, "Flows: "); ok {
					flows, _ = strconv.Atoi(strings.TrimSpace(v))
				}
			}
			b.ReportMetric(float64(sent)/el.Seconds(), "sent/s")
			b.ReportMetric(100*float64(sent-flows)/float64(sent), "loss%")
		})
	}
}
