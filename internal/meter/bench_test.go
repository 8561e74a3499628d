package meter_test

import (
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/capture"
	"flowlog/internal/flow"
	"flowlog/internal/meter"
	"flowlog/internal/packet"
	"flowlog/internal/testutil"
)

const benchPackets = 5_000_000

// meterFile meters the file once and returns records emitted.
func meterFileOnce(tb testing.TB, m *meter.Meter, path string) {
	f, err := capture.OpenFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := f.RunBatch(m.FeedBatch); err != nil {
		tb.Fatal(err)
	}
	m.Flush()
}

// BenchmarkMeterFile meters the synthetic capture from the page cache
// (read + decode + cache + aging + record emission) and, in the same run,
// softflowd -r on the same file, exporting IPFIX to a UDP sink.
//
//	go test -run '^$' -bench BenchmarkMeterFile -benchtime 3x ./internal/meter/
func BenchmarkMeterFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "synthetic.pcap")
	flows, err := testutil.WriteSyntheticPcap(path, benchPackets)
	if err != nil {
		b.Fatal(err)
	}
	if flows < 500_000 {
		b.Fatalf("only %d flows", flows)
	}
	os.ReadFile(path) // into the page cache
	cfg := meter.Config{ActiveTimeout: 60 * time.Second, InactiveTimeout: time.Second, MaxFlows: 1 << 20}

	b.Run("flowlog", func(b *testing.B) {
		var records uint64
		// A fresh meter per pass, as each softflowd -r run starts empty: a
		// meter fed the file again would see its times as already past and
		// age nothing out.
		run := func() meter.Stats {
			m, err := meter.New(cfg, func(r []flow.Record) { records += uint64(len(r)) })
			if err != nil {
				b.Fatal(err)
			}
			meterFileOnce(b, m, path)
			return m.Stats()
		}
		run() // warm: the file's frames in the CPU caches as far as they fit
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu0 := cpuTime()
		b.ResetTimer()
		var st meter.Stats
		for b.Loop() {
			st = run()
		}
		b.StopTimer()
		cpu := cpuTime() - cpu0
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(benchPackets)*float64(b.N)/cpu.Seconds()/1e6, "Mpps-cpu")
		b.ReportMetric(float64(benchPackets)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(benchPackets*b.N), "allocs/pkt")
		b.ReportMetric(float64(flows), "flows/file")
		b.Logf("per pass: %d packets, %d flows, %d records (%v)", st.Packets, st.Flows, st.Records, st.ByReason)
	})

	b.Run("softflowd", func(b *testing.B) {
		softflowd := testutil.Peer(b, "softflowd")
		sink, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer sink.Close()
		go func() {
			buf := make([]byte, 65536)
			for {
				if _, _, err := sink.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		port := strconv.Itoa(sink.LocalAddr().(*net.UDPAddr).Port)
		dir := b.TempDir()
		var cpu time.Duration
		for b.Loop() {
			cmd := exec.Command(softflowd, "-c", dir+"/ctl", "-r", path, "-n", "127.0.0.1:"+port,
				"-v", "10", "-m", strconv.Itoa(cfg.MaxFlows), "-t", "maxlife=60", "-d", "-p", dir+"/pid")
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("softflowd: %v\n%s", err, out)
			}
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		b.ReportMetric(float64(benchPackets)*float64(b.N)/cpu.Seconds()/1e6, "Mpps-cpu")
		b.ReportMetric(float64(benchPackets)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	})
}

// cpuTime is the CPU time this process has used (user + system): on a
// shared machine, throughput per CPU second is the one-core figure.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMeterMemory fills a meter with one million single-packet flows
// and reports the heap it holds per active flow.
func BenchmarkMeterMemory(b *testing.B) {
	const n = 1_000_000
	frame := make([]byte, 14+20+8)
	frame[12], frame[14], frame[17], frame[23] = 0x08, 0x45, 28, 17
	for b.Loop() {
		runtime.GC()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		m, _ := meter.New(meter.Config{MaxFlows: n, ActiveTimeout: time.Hour, InactiveTimeout: time.Hour},
			func([]flow.Record) {})
		ts := time.Unix(1_700_000_000, 0)
		for i := range n {
			binary.BigEndian.PutUint32(frame[14+12:], uint32(0x0a000000+i))
			m.Feed(ts, packet.LinkEthernet, frame)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		if m.Stats().ActiveFlows != n {
			b.Fatalf("%d active flows", m.Stats().ActiveFlows)
		}
		b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/n, "B/flow")
		runtime.KeepAlive(m)
	}
}

// BenchmarkFeed meters a small set of flows that stays in the CPU cache:
// the meter's compute cost per packet without memory stalls.
func BenchmarkFeed(b *testing.B) {
	m, _ := meter.New(meter.Config{}, func([]flow.Record) {})
	frames := make([][]byte, 256)
	for i := range frames {
		frames[i] = frame(b, "10.0.0.1", "10.0.0.2", 17, uint16(i), 53, "", 10)
	}
	ts := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Feed(ts.Add(time.Duration(i)), packet.LinkEthernet, frames[i&255])
	}
}
