package front

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serve answers each request with what Read returned.
func serve(t *testing.T, b *Bodies) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := b.Read(w, r)
		if err != nil {
			fmt.Fprintf(w, "error: %v", err)
			return
		}
		fmt.Fprintf(w, "read %d", len(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func post(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 256)
	n, _ := resp.Body.Read(buf)
	sb.Write(buf[:n])
	return sb.String()
}

// stall opens a connection that announces a body and sends part of it.
func stall(t *testing.T, url string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nabc")
	return c
}

func TestRead(t *testing.T) {
	b := New(Config{MaxBody: 10, ReadTimeout: 300 * time.Millisecond, MaxReads: 1, Wait: 100 * time.Millisecond})
	url := serve(t, b)
	if got := post(t, url, "0123456789"); got != "read 10" {
		t.Fatalf("a body of the limit: %q", got)
	}
	if got := post(t, url, "0123456789x"); got != "error: "+ErrTooLarge.Error() {
		t.Fatalf("a body over the limit: %q", got)
	}
	// A stalled upload holds the one slot: the next waits, then is busy.
	c := stall(t, url)
	time.Sleep(50 * time.Millisecond)
	if got := post(t, url, "x"); got != "error: "+ErrBusy.Error() {
		t.Fatalf("with the slot held: %q", got)
	}
	// The stalled upload ends at the read deadline, which frees the slot.
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	if !strings.Contains(string(buf[:n]), "error: "+ErrTimeout.Error()) {
		t.Fatalf("the stalled upload got %q", buf[:n])
	}
	if got := post(t, url, "x"); got != "read 1" {
		t.Fatalf("after the deadline: %q", got)
	}
}
