package testutil

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Run runs a command and fails the test on error.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

// InNetns runs a command in a network namespace and fails the test on error.
func InNetns(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

var nameSeq atomic.Int64

// UniqueName returns a name short enough for an interface or namespace,
// unique to this process and call.
func UniqueName(prefix string) string {
	return prefix + strconv.Itoa(os.Getpid()%100000) + "x" + strconv.FormatInt(nameSeq.Add(1), 10)
}

// Netns makes a network namespace with its loopback up, removed when the
// test ends.
func Netns(t testing.TB) string {
	t.Helper()
	ns := UniqueName("fln")
	Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	InNetns(t, ns, "ip", "link", "set", "lo", "up")
	return ns
}

// Veth joins namespace nsA and nsB ("" is the test's own namespace) with a
// veth pair addressed addrA and addrB (CIDR), IPv4 only so that no IPv6
// chatter mixes with the test's traffic. It returns the interface names.
func Veth(t testing.TB, nsA, addrA, nsB, addrB string) (ifA, ifB string) {
	t.Helper()
	ifA, ifB = UniqueName("fva"), UniqueName("fvb")
	args := []string{"ip", "link", "add", ifA}
	if nsA != "" {
		args = append(args, "netns", nsA)
	}
	args = append(args, "type", "veth", "peer", "name", ifB)
	if nsB != "" {
		args = append(args, "netns", nsB)
	}
	Run(t, args...)
	if nsA == "" {
		t.Cleanup(func() { exec.Command("ip", "link", "del", ifA).Run() })
	}
	for _, end := range [][3]string{{nsA, ifA, addrA}, {nsB, ifB, addrB}} {
		in := func(args ...string) {
			if end[0] != "" {
				args = append([]string{"ip", "netns", "exec", end[0]}, args...)
			}
			Run(t, args...)
		}
		in("sysctl", "-q", "-w", "net.ipv6.conf."+end[1]+".disable_ipv6=1")
		in("ip", "addr", "add", end[2], "dev", end[1])
		in("ip", "link", "set", end[1], "up")
	}
	return ifA, ifB
}

// CapTruth counts TCP or UDP packets per 5-tuple in a capture, as tshark
// reads it, keyed "src:port>dst:port/proto".
func CapTruth(t testing.TB, pcap, proto string) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("tshark", "-r", pcap, "-Y", proto, "-T", "fields",
		"-e", "ip.src", "-e", proto+".srcport", "-e", "ip.dst", "-e", proto+".dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 4 {
			a, b := netip.MustParseAddr(f[0]), netip.MustParseAddr(f[2])
			m[fmt.Sprintf("%v:%s>%v:%s/%d", a, f[1], b, f[3], map[string]int{"tcp": 6, "udp": 17}[proto])]++
		}
	}
	return m
}
