package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// quickStart returns the commands of the README's quick start.
func quickStart(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- quickstart -->\n")
	block, _, ok2 := strings.Cut(rest, "<!-- /quickstart -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no quickstart block")
	}
	var cmds []string
	for _, line := range strings.Split(block, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// TestQuickStart runs the README's quick start as written, from a checkout
// layout (bin/flowlog, demo/), against `./bin/flowlog serve` on its
// defaults: data in the default data dir (under a temporary
// XDG_DATA_HOME), no key in the environment. Only the ports are moved, so
// that it can run beside other tests.
func TestQuickStart(t *testing.T) {
	cmds := quickStart(t)
	if len(cmds) > 5 {
		t.Errorf("the quick start has %d commands; it promises at most five", len(cmds))
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	if err := os.Symlink(testutil.Binary(t), filepath.Join(dir, "bin", "flowlog")); err != nil {
		t.Fatal(err)
	}
	demo, _ := filepath.Abs("../../demo")
	if err := os.Symlink(demo, filepath.Join(dir, "demo")); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreeTCPPort(t))
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "xdg"),
		"FLOWLOG_LISTEN=" + addr, "FLOWLOG_SERVER=http://" + addr,
		"FLOWLOG_NETFLOW_LISTEN=127.0.0.1:" + strconv.Itoa(testutil.FreeUDPPort(t)),
		"FLOWLOG_SFLOW_LISTEN=127.0.0.1:" + strconv.Itoa(testutil.FreeUDPPort(t))}

	serve := exec.Command("./bin/flowlog", "serve")
	serve.Dir, serve.Env = dir, env
	var serveOut strings.Builder
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { serve.Wait(); close(exited) }()
	t.Cleanup(func() { serve.Process.Kill(); <-exited })
	if err := testutil.WaitHTTP("http://"+addr+"/healthz", 30*time.Second, exited); err != nil {
		t.Fatalf("%v:\n%s", err, serveOut.String())
	}

	bash := func(script string) (string, error) {
		c := exec.Command("bash", "-euo", "pipefail", "-c", script)
		c.Dir, c.Env = dir, env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	setup := strings.Join(cmds[:len(cmds)-1], "\n")
	if out, err := bash(setup); err != nil {
		t.Fatalf("quick start failed: %v\n%s\nserver:\n%s", err, out, serveOut.String())
	}
	// The last command shows the flows, once the replay has been metered.
	var out string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		var err error
		if out, err = bash(cmds[len(cmds)-1]); err == nil && strings.Contains(out, "10.0.0.") {
			return
		}
	}
	t.Fatalf("the quick start's query never showed the demo's hosts:\n%s\nserver:\n%s", out, serveOut.String())
}
