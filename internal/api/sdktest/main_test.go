package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"flowlog/internal/client"
)

// The bootstrap account of the shared server.
const (
	bootAccount = "0123456789abcdef0123456789abcdef"
	bootKey     = "BOOTSTRAPKEY0000TEST"
	bootSecret  = "bootstrap-secret-for-the-sdk-tests"
)

var (
	binary string  // the flowlog binary built for these tests
	shared *server // one server most tests share, each in its own account
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flowlog-sdktest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "flowlog")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(gobin, "build", "-o", binary, "flowlog/cmd/flowlog")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flowlog:", err)
		return 1
	}
	shared, err = startServer(filepath.Join(dir, "shared"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer shared.stop()
	return m.Run()
}

// server is a running `flowlog serve`.
type server struct {
	url  string
	host string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// startServer runs flowlog serve on a free loopback port with its state in
// dataDir and waits until /healthz answers.
func startServer(dataDir string, args ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	s := &server{url: "http://" + host, host: host, log: &bytes.Buffer{}}
	udp, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(binary, append([]string{"serve", "--listen", host, "--data-dir", dataDir,
		"--netflow-listen", fmt.Sprintf("127.0.0.1:%d", udp), "--sflow-listen", "off"}, args...)...)
	s.cmd.Env = append(os.Environ(), "FLOWLOG_ACCOUNT_ID="+bootAccount,
		"FLOWLOG_ACCESS_KEY_ID="+bootKey, "FLOWLOG_ACCESS_KEY_SECRET="+bootSecret)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
	}
	s.stop()
	return nil, fmt.Errorf("flowlog serve did not become healthy:\n%s", s.log)
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// creds is an account and one of its access keys.
type creds struct {
	account, key, secret string
}

var boot = creds{bootAccount, bootKey, bootSecret}

// v1 sends a signed request to the native API and decodes the JSON answer.
func (s *server) v1(t *testing.T, c creds, method, path string, body any) (int, map[string]any) {
	t.Helper()
	resp, err := client.New(s.url, c.key, c.secret).Do(context.Background(), method, path, nil, body, nil)
	var ae *client.APIError
	if err != nil && !errors.As(err, &ae) {
		t.Fatal(err)
	}
	var out map[string]any
	if len(bytes.TrimSpace(resp.Body)) > 0 {
		if err := json.Unmarshal(resp.Body, &out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.Status, resp.Body)
		}
	}
	return resp.Status, out
}

// must is v1 that fails the test unless the status is want.
func (s *server) must(t *testing.T, c creds, want int, method, path string, body any) map[string]any {
	t.Helper()
	status, out := s.v1(t, c, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, status, out, want)
	}
	return out
}

// exporterRange is where the tests' exporter gateways take their addresses;
// every account is granted it, and each gateway takes the next address, as
// an exporter address is held by one gateway only.
const exporterRange = "198.18.0.0/15"

var nextExporter atomic.Uint32

func exporterAddr() string {
	n := 198<<24 | 18<<16 | nextExporter.Add(1)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
}

// newAccount makes a fresh account on s, so tests sharing a server do not
// see each other. The operator grants it the tests' exporter addresses.
func (s *server) newAccount(t *testing.T) creds {
	t.Helper()
	out := s.must(t, boot, 201, "POST", "/v1/access-keys", map[string]any{"new_account": true})
	c := creds{out["account_id"].(string), out["access_key_id"].(string), out["access_key_secret"].(string)}
	s.must(t, boot, 201, "POST", "/v1/grants", map[string]any{"account_id": c.account, "kind": "exporter_addr",
		"value": exporterRange})
	return c
}

// gateway creates a capture gateway with n attachments; it returns the
// gateway id and the attachment ids.
func (s *server) gateway(t *testing.T, c creds, name string, n int) (string, []string) {
	t.Helper()
	// Exporter gateways run anywhere: no interface, no privilege.
	g := s.must(t, c, 201, "POST", "/v1/gateways", map[string]any{"name": name, "kind": "exporter",
		"exporter_addr": exporterAddr()})
	id := g["id"].(string)
	var atts []string
	for i := 0; i < n; i++ {
		a := s.must(t, c, 201, "POST", "/v1/gateways/"+id+"/attachments",
			map[string]any{"name": fmt.Sprintf("%s-port%d", name, i), "if_index": i + 1})
		atts = append(atts, a["id"].(string))
	}
	return id, atts
}

// logStream creates a log group and a stream in it; it returns both ids.
func (s *server) logStream(t *testing.T, c creds, group, stream string) (string, string) {
	t.Helper()
	g := s.must(t, c, 201, "POST", "/v1/log-groups", map[string]any{"name": group})
	ls := s.must(t, c, 201, "POST", "/v1/log-groups/"+g["id"].(string)+"/log-streams", map[string]any{"name": stream})
	return g["id"].(string), ls["id"].(string)
}

// flowLog returns a flow log through /v1.
func (s *server) flowLog(t *testing.T, c creds, id string) map[string]any {
	t.Helper()
	return s.must(t, c, 200, "GET", "/v1/flow-logs/"+id, nil)
}

// waitState waits until the flow log reaches state (the settler moves
// pending and modifying ones along within about a second).
func (s *server) waitState(t *testing.T, c creds, id, state string) map[string]any {
	t.Helper()
	var f map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if f = s.flowLog(t, c, id); f["state"] == state {
			return f
		}
	}
	t.Fatalf("flow log %s stayed %v, want %s", id, f["state"], state)
	return nil
}

// waitGone waits until a deleted flow log has been removed.
func (s *server) waitGone(t *testing.T, c creds, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if status, _ := s.v1(t, c, "GET", "/v1/flow-logs/"+id, nil); status == 404 {
			return
		}
	}
	t.Fatalf("flow log %s was not removed", id)
}

// do sends req and decodes a JSON answer.
func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}
