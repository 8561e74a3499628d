package testutil

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// SendCorpus sends files of the netflow-vendors corpus (real devices'
// export packets), one datagram each and in order, from one socket bound
// to the local address from to the collector at to (ADDR:PORT); it returns
// their bytes. One socket keeps them in order: the collector's sockets
// share the port by source hash.
func SendCorpus(t testing.TB, from, to string, files ...string) [][]byte {
	t.Helper()
	dst, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dir := filepath.Join(SharedDir(t), "testdata", "netflow-vendors")
	var sent [][]byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b)
	}
	return sent
}
