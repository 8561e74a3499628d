package testutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/flowlog once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "flowlog-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "flowlog")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/flowlog")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// repoRoot returns the directory holding go.mod, above the working one.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("go.mod not found above %s", dir)
}

// Server is a real `flowlog serve` process on a free loopback port.
type Server struct {
	URL     string
	Addr    string
	DataDir string
	Env     []string // extra environment, e.g. FLOWLOG_FLOW_LOG_QUOTA=3
	Args    []string // extra flags
	// Cmd replaces "serve --listen Addr --data-dir DataDir" before Args,
	// for another long-running subcommand (an agent) answering
	// /healthz and /metrics on Addr.
	Cmd []string
	// Netns, if set, is the network namespace the process runs in.
	Netns   string
	KeyID   string // bootstrap access key
	Secret  string
	Account string
	// HTTP polls /healthz at start (e.g. one trusting a test CA when the
	// server serves HTTPS); http.DefaultClient if nil.
	HTTP *http.Client

	t      testing.TB
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
}

// NewServer prepares (without starting) a server with a temp data dir and
// no bootstrap key, so the first start generates one.
func NewServer(t testing.TB, env ...string) *Server {
	t.Helper()
	s := &Server{DataDir: filepath.Join(t.TempDir(), "data"), Env: env, t: t}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", FreeTCPPort(t))
	s.URL = "http://" + s.Addr
	t.Cleanup(func() { s.Stop() })
	return s
}

// StartServer starts `flowlog serve` with a temp data dir and a known
// bootstrap key, waits for /healthz, and stops it when the test ends.
func StartServer(t testing.TB, env ...string) *Server {
	t.Helper()
	s := NewServer(t, env...)
	s.UseTestKey()
	s.Start()
	return s
}

// UseTestKey makes the server bootstrap with the known key StartServer
// uses, for a server prepared with NewServer (e.g. to set DataDir first).
func (s *Server) UseTestKey() {
	s.KeyID, s.Secret = "TESTBOOTSTRAPKEY0001", "test-bootstrap-secret-0123456789abcdefgh"
	s.Account = "0123456789abcdef0123456789abcdef"
}

// Start (re)starts the process on the same address and data dir.
func (s *Server) Start() {
	s.t.Helper()
	s.stdout, s.stderr = &syncBuffer{}, &syncBuffer{}
	args := []string{"serve", "--listen", s.Addr, "--data-dir", s.DataDir}
	if s.Cmd != nil {
		args = s.Cmd
	}
	args = append(slices.Clone(args), s.Args...)
	s.cmd = exec.Command(Binary(s.t), args...)
	if s.Netns != "" { // ip netns exec execs the binary: the pid is flowlog's
		s.cmd = exec.Command("ip", append([]string{"netns", "exec", s.Netns, Binary(s.t)}, args...)...)
	}
	// Collectors are off unless a test turns them on (Env), so that servers
	// running side by side do not compete for the default ports.
	s.cmd.Env = []string{"FLOWLOG_LOG_LEVEL=debug", "FLOWLOG_NETFLOW_LISTEN=off", "FLOWLOG_SFLOW_LISTEN=off"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWLOG_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	if s.KeyID != "" {
		s.cmd.Env = append(s.cmd.Env, "FLOWLOG_ACCESS_KEY_ID="+s.KeyID, "FLOWLOG_ACCESS_KEY_SECRET="+s.Secret,
			"FLOWLOG_ACCOUNT_ID="+s.Account)
	}
	s.cmd.Env = append(s.cmd.Env, s.Env...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(s.cmd, s.done)
	if err := waitHTTP(s.HTTP, s.URL+"/healthz", 60*time.Second, s.done); err != nil {
		s.t.Fatalf("flowlog %s %v:\n%s", args[0], err, s.stderr.String())
	}
}

// WaitHTTP polls url until it answers 200 OK, for a server process a test
// has started. It gives up when exited is closed (the process has ended)
// or after timeout, saying which.
func WaitHTTP(url string, timeout time.Duration, exited <-chan struct{}) error {
	return waitHTTP(nil, url, timeout, exited)
}

func waitHTTP(c *http.Client, url string, timeout time.Duration, exited <-chan struct{}) error {
	if c == nil {
		c = http.DefaultClient
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited early")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not answering on %s within %v", url, timeout)
}

// Stop sends SIGTERM and waits for a clean exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("flowlog serve did not stop within 20s of SIGTERM")
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to be gone.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// PID is the process id of the running server (for /proc/PID/status).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// ExitCode is the exit status of the stopped process.
func (s *Server) ExitCode() int { return s.cmd.ProcessState.ExitCode() }

// Logs returns what the process wrote to stdout and stderr.
func (s *Server) Logs() (stdout, stderr string) { return s.stdout.String(), s.stderr.String() }

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Clone(b.b.String())
}

// Metrics reads the server's /metrics as series (name and labels, as
// printed) → value.
func (s *Server) Metrics() map[string]float64 {
	s.t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
