package security

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// httpConns is how many hostile connections the tests hold open.
const httpConns = 2000

// rss is the resident memory of process pid, in bytes.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	r, _ := memory(t, pid)
	return r
}

// httpRaiseFiles lets this process hold the hostile connections (the
// server inherits the limit).
func httpRaiseFiles(t *testing.T) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 3*httpConns {
		lim.Cur = min(lim.Max, 3*httpConns)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < httpConns+200 {
		t.Skipf("RLIMIT_NOFILE %d is too low for %d connections", lim.Cur, httpConns)
	}
}

// httpDial opens n connections and writes prefix on each.
func httpDial(t *testing.T, addr string, n int, prefix func(i int) string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if p := prefix(i); p != "" {
			if _, err := c.Write([]byte(p)); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
	}
	return conns
}

// httpServedPromptly checks that a signed changing request is answered
// within a second while the hostile connections are held.
func httpServedPromptly(t *testing.T, s *testutil.Server, name string) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := bootstrapClient(s).JSON(ctx, "POST", "/v1/gateways", nil, map[string]string{"name": name, "kind": "capture"}, nil)
	if err != nil {
		t.Fatalf("signed request while %d connections are held: %v", httpConns, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("signed request took %v while %d connections are held", d, httpConns)
	}
}

// httpWarm makes the server allocate what serving any request needs, so
// that the memory measured afterwards is the attack's.
func httpWarm(t *testing.T, s *testutil.Server) int64 {
	t.Helper()
	httpServedPromptly(t, s, "warm")
	time.Sleep(200 * time.Millisecond)
	return rss(t, s.PID())
}

// httpClosedByServer counts the connections the server has closed (a read
// returns EOF or a reset rather than timing out).
func httpClosedByServer(conns []net.Conn, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadByte(); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed++
				}
				break
			}
		}
	}
	return closed
}

// 2,000 uploads that send their headers and a little of a large body, then
// stall: unsigned ones to /v1 and Huawei, and form posts to the Alibaba
// endpoint (whose parameters, signature included, may be in the body). A
// signed request is still served at once, memory stays flat, and the server
// lets go of every stalled upload.
func TestSlowBodies(t *testing.T) {
	httpRaiseFiles(t)
	s := startServer(t)
	before := httpWarm(t, s)
	paths := []string{"/v1/gateways", "/v3/" + s.Account + "/enterprise-router/er-x/flow-logs", "/"}
	conns := httpDial(t, s.Addr, httpConns, func(i int) string {
		ctype := "application/json"
		if paths[i%3] == "/" {
			ctype = "application/x-www-form-urlencoded"
		}
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: 1000000\r\n\r\n%s",
			paths[i%3], s.Addr, ctype, strings.Repeat("a", 1000))
	})
	time.Sleep(time.Second)
	httpServedPromptly(t, s, "during-slow-bodies")
	grew := rss(t, s.PID()) - before
	t.Logf("%d stalled uploads: server RSS +%d MB", httpConns, grew>>20)
	if grew > 50<<20 {
		t.Fatalf("%d stalled uploads grew the server by %d MB", httpConns, grew>>20)
	}
	// The body deadline (10 s) and refusals before the body end them all.
	if closed := httpClosedByServer(conns, 15*time.Second); closed != httpConns {
		t.Fatalf("the server let go of %d of %d stalled uploads", closed, httpConns)
	}
}

// 2,000 connections that send nothing, or half a request line, and wait.
// A signed request is still served at once, memory stays flat, and the
// header timeout closes them.
func TestIdleConnections(t *testing.T) {
	httpRaiseFiles(t)
	s := startServer(t)
	before := httpWarm(t, s)
	conns := httpDial(t, s.Addr, httpConns, func(i int) string {
		if i%2 == 0 {
			return ""
		}
		return "GET /v1/gateways HTTP/1.1\r\nHost: x\r\n"
	})
	time.Sleep(time.Second)
	httpServedPromptly(t, s, "during-idle")
	grew := rss(t, s.PID()) - before
	t.Logf("%d idle connections: server RSS +%d MB", httpConns, grew>>20)
	if grew > 50<<20 {
		t.Fatalf("%d idle connections grew the server by %d MB", httpConns, grew>>20)
	}
	if closed := httpClosedByServer(conns, 10*time.Second); closed != httpConns {
		t.Fatalf("the server closed %d of %d idle connections", closed, httpConns)
	}
}
