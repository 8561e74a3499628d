// Package snmptest runs Debian's snmpd for tests: its own config in a temp
// dir, on 127.0.0.1 and a free port, with a v2c community and a v3 user
// (SHA/AES). It serves this machine's real interfaces.
package snmptest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// The credentials the agent accepts.
const (
	Community = "flowlog-ro-c0mmunity"
	User      = "flowlog"
	AuthPass  = "auth-passw0rd"
	PrivPass  = "priv-passw0rd"
	// RWCommunity may set ifAlias, which net-snmp does not read from Linux.
	RWCommunity = "flowlog-rw-c0mmunity"
)

const config = `agentAddress udp:127.0.0.1:%d
rocommunity %s 127.0.0.1
rwcommunity %s 127.0.0.1
createUser %s SHA "%s" AES "%s"
rouser %s priv
`

// Agent is a running snmpd.
type Agent struct {
	t    testing.TB
	Port int
	dir  string
	bin  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// Start runs snmpd until the test ends.
func Start(t testing.TB) *Agent {
	t.Helper()
	a := &Agent{t: t, dir: t.TempDir(), bin: snmpd(t), Port: testutil.FreeUDPPort(t)}
	conf := fmt.Sprintf(config, a.Port, Community, RWCommunity, User, AuthPass, PrivPass, User)
	if err := os.WriteFile(filepath.Join(a.dir, "snmpd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Restart()
	t.Cleanup(a.Kill)
	return a
}

func snmpd(t testing.TB) string {
	if p, err := exec.LookPath("snmpd"); err == nil {
		return p
	}
	return testutil.PeerFile(t, "snmpd", "/usr/sbin/snmpd")
}

// Kill stops the agent at once, as a router that drops off the network.
func (a *Agent) Kill() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Kill()
	a.cmd.Wait()
	a.cmd = nil
}

// Restart starts the agent (again) on the same port, and waits until it
// answers.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Kill()
	a.log = &bytes.Buffer{}
	// -C: no other config file; -M /dev/null: the agent needs no MIB files.
	cmd := exec.Command(a.bin, "-f", "-Lo", "-C", "-c", filepath.Join(a.dir, "snmpd.conf"),
		"-M", "/dev/null", "-p", filepath.Join(a.dir, "snmpd.pid"))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+filepath.Join(a.dir, "persist"))
	cmd.Stdout, cmd.Stderr = a.log, a.log
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("snmpd: %v", err)
	}
	a.cmd = cmd
	a.waitBound()
}

// waitBound waits until snmpd holds its port.
func (a *Agent) waitBound() {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(a.Port))
		if err != nil {
			return // taken: snmpd listens
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	a.t.Fatalf("snmpd did not listen on %d: %s", a.Port, a.log.String())
}
