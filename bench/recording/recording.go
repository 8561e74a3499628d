// Package recording holds softflowd's IPFIX export of a capture, recorded
// once (datagrams in a file) and shared by the benchmarks that replay it
// (bench/ingest) or derive stored records from it (internal/store/bench).
package recording

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"flowlog/internal/testutil"
)

// Where the synthetic 5M-packet capture and softflowd's export of it (the
// recording) are kept between runs.
var (
	DefaultPcap = filepath.Join(os.TempDir(), "flowlog-bench-5Mpkt.pcap")
	DefaultFile = DefaultPcap + ".ipfix"
)

// captureExport runs softflowd over pcap, exporting IPFIX with absolute
// millisecond times to a local UDP socket, and returns every datagram it
// sent, in order. The socket's buffer holds the whole export, so nothing
// is lost even though softflowd sends as fast as it reads the file; the
// caller checks the sequence numbers anyway.
func captureExport(pcap string) ([][]byte, error) {
	softflowd, err := exec.LookPath("softflowd")
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := SetSockBuf(conn, syscall.SO_RCVBUFFORCE, 1<<30); err != nil {
		return nil, fmt.Errorf("receive buffer (run as root): %w", err)
	}
	dir, err := os.MkdirTemp("", "flowlog-bench-softflowd-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// No control socket (-c none): reading a file, softflowd 1.1.0 checks
	// the socket's poll result without polling, and may block in accept().
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, softflowd, "-d", "-r", pcap, "-v", "10", "-A", "milli",
		"-n", conn.LocalAddr().String(), "-m", "1048576", "-t", "maxlife=60",
		"-c", "none", "-p", filepath.Join(dir, "pid"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softflowd: %v\n%s", err, out)
	}
	var grams [][]byte
	buf := make([]byte, 65536)
	for {
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := conn.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return grams, nil
		}
		if err != nil {
			return nil, err
		}
		grams = append(grams, append([]byte(nil), buf[:n]...))
	}
}

// SetSockBuf sets a socket buffer size option (SO_RCVBUFFORCE,
// SO_SNDBUFFORCE: above the sysctl limits, for root).
func SetSockBuf(c *net.UDPConn, opt, size int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size)
	}); err != nil {
		return err
	}
	return serr
}

// writeDatagrams stores datagrams as a file of records, each a 4-byte
// big-endian length and the datagram.
func writeDatagrams(path string, grams [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, g := range grams {
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(g))))
		w.Write(g)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readDatagrams reads a file writeDatagrams wrote.
func readDatagrams(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var grams [][]byte
	for len(b) > 0 {
		if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
			return nil, fmt.Errorf("%s: truncated after %d datagrams", path, len(grams))
		}
		n := int(binary.BigEndian.Uint32(b))
		grams = append(grams, b[4:4+n])
		b = b[4+n:]
	}
	return grams, nil
}

// LoadOrCapture returns softflowd's export of pcap, from the capture file
// if it exists, else by running softflowd (and generating the synthetic
// capture first if pcap does not exist either), saving it there.
func LoadOrCapture(pcap, capFile string, logf func(string, ...any)) ([][]byte, error) {
	if grams, err := readDatagrams(capFile); err == nil {
		logf("replaying %s (%d datagrams)", capFile, len(grams))
		return grams, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if _, err := os.Stat(pcap); errors.Is(err, os.ErrNotExist) {
		logf("writing the synthetic 5M-packet capture %s", pcap)
		if _, err := testutil.WriteSyntheticPcap(pcap, 5_000_000); err != nil {
			return nil, err
		}
	}
	logf("recording softflowd -v 10 -A milli -r %s", pcap)
	grams, err := captureExport(pcap)
	if err != nil {
		return nil, err
	}
	if err := writeDatagrams(capFile, grams); err != nil {
		return nil, err
	}
	logf("recorded %d datagrams into %s", len(grams), capFile)
	return grams, nil
}
