package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"flowlog/internal/testutil"
)

// freePort returns a port free on 127.0.0.1 for network "tcp" or "udp".
func freePort(network string) (int, error) {
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// procCPU is the CPU time (user + system) process pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd on
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// selfCPU is this process's CPU time: the sender's.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// udpRcvbufErrors is the kernel's count of datagrams dropped for a full
// socket receive buffer, machine-wide (/proc/net/snmp Udp RcvbufErrors).
func udpRcvbufErrors() int64 {
	b, _ := os.ReadFile("/proc/net/snmp")
	var head []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, name := range head {
			if name == "RcvbufErrors" && i < len(f) {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				return n
			}
		}
	}
	return 0
}

// waitDrained waits until the receive queue of the UDP socket bound to
// addr (127.0.0.1:port) is empty, or timeout.
func waitDrained(addr string, timeout time.Duration) {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline) && !testutil.UDPDrained(p); {
		time.Sleep(20 * time.Millisecond)
	}
}
