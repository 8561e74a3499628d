// Package testutil holds helpers shared by tests: finding peer tools,
// requiring root, free ports.
package testutil

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Peer returns the path of an external tool a test compares against (tshark,
// nfcapd, softflowd, …). When it is missing the test is skipped, unless
// FLOWLOG_REQUIRE_PEERS=1 (as CI sets), where a missing peer is a failure.
func Peer(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missingPeer(t, name)
	}
	return p
}

// PeerFile returns path, a file of a peer that is not a command on PATH
// (a jar), or skips or fails as Peer does when it is missing.
func PeerFile(t testing.TB, name, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missingPeer(t, name+" ("+path+")")
	}
	return path
}

func missingPeer(t testing.TB, name string) {
	t.Helper()
	if os.Getenv("FLOWLOG_REQUIRE_PEERS") == "1" {
		t.Fatalf("peer %s is required (FLOWLOG_REQUIRE_PEERS=1) but not installed", name)
	}
	t.Skipf("peer %s not installed", name)
}

// Root skips the test unless it runs as root (network namespaces, AF_PACKET),
// or fails when FLOWLOG_REQUIRE_PEERS=1.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("FLOWLOG_REQUIRE_PEERS") == "1" {
			t.Fatal("test needs root (FLOWLOG_REQUIRE_PEERS=1)")
		}
		t.Skip("needs root")
	}
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// FreeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FoundSharedDir returns the path of ../shared and whether it exists, for
// tests (fuzz seeds) that can run without the corpora, only with less.
func FoundSharedDir() (string, bool) {
	root, err := repoRoot()
	if err != nil {
		return "", false
	}
	s := filepath.Join(filepath.Dir(root), "shared")
	_, err = os.Stat(s)
	return s, err == nil
}

// SharedDir returns the path of ../shared relative to the repository root,
// where the test corpora live. A user's clone has no ../shared: there the
// test is skipped, saying which corpus it needs; in CI (CI=true) a missing
// corpus is a failure.
func SharedDir(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s := filepath.Join(filepath.Dir(root), "shared")
	if _, err := os.Stat(s); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the test corpora are required in CI but not found at %s", s)
		}
		t.Skipf("needs the test corpora at %s (../shared beside the checkout)", s)
	}
	return s
}
