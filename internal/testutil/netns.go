package testutil

import (
	"fmt"
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
// veth pair addressed addrA and addrB (CIDR; "" for none), IPv4 only so that no IPv6
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
		if end[2] != "" {
			in("ip", "addr", "add", end[2], "dev", end[1])
		}
		in("ip", "link", "set", end[1], "up")
	}
	return ifA, ifB
}

// Bridge makes a bridge in the test's namespace, addressed addr (CIDR), and
// removed when the test ends.
func Bridge(t testing.TB, addr string) string {
	t.Helper()
	br := UniqueName("flb")
	Run(t, "ip", "link", "add", br, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", br).Run() })
	Run(t, "sysctl", "-q", "-w", "net.ipv6.conf."+br+".disable_ipv6=1")
	Run(t, "ip", "addr", "add", addr, "dev", br)
	Run(t, "ip", "link", "set", br, "up")
	return br
}

// BridgePort joins namespace ns to bridge br by a veth pair whose end in
// ns is addressed addr (CIDR), IPv4 only; it returns that end's name.
func BridgePort(t testing.TB, br, ns, addr string) string {
	t.Helper()
	host, end := Veth(t, "", "", ns, addr)
	Run(t, "ip", "link", "set", host, "master", br)
	return end
}

// CapTruth counts the IPv4 packets of a capture per flow, as tshark reads
// them, keyed "src:sport>dst:dport/proto"; ICMP has port 0 and
// type<<8|code, as flow records do.
func CapTruth(t testing.TB, pcap string) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("tshark", "-r", pcap, "-Y", "ip", "-T", "fields", "-E", "occurrence=f",
		"-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "tcp.srcport", "-e", "tcp.dstport",
		"-e", "udp.srcport", "-e", "udp.dstport", "-e", "icmp.type", "-e", "icmp.code").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	m := map[string]uint64{}
	// Not TrimSpace: a last line of empty fields ends in tabs.
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 9 {
			continue
		}
		n := func(i int) uint16 { v, _ := strconv.Atoi(f[i]); return uint16(v) }
		proto := n(2)
		var sp, dp uint16
		switch proto {
		case 6:
			sp, dp = n(3), n(4)
		case 17:
			sp, dp = n(5), n(6)
		case 1:
			dp = n(7)<<8 | n(8)
		}
		m[fmt.Sprintf("%s:%d>%s:%d/%d", f[0], sp, f[1], dp, proto)]++
	}
	return m
}
