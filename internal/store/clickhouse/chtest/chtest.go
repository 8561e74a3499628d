// Package chtest starts a private ClickHouse server for tests and
// benchmarks: its own config, ports on loopback and data under a temp dir.
package chtest

import (
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

const config = `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{dir}/log/server.log</log><errorlog>{dir}/log/error.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>{users}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <timezone>UTC</timezone>
  <max_concurrent_queries>20</max_concurrent_queries>
{extra}</yandex>
`

var pids sync.Map // URL → server pid

// PID returns the process id of the server Start started at url, or 0.
func PID(url string) int {
	if p, ok := pids.Load(url); ok {
		return p.(int)
	}
	return 0
}

// Start runs clickhouse-server and returns the URL of its HTTP interface;
// the server stops when the test ends. CLICKHOUSE_URL, when set, points
// the tests at an existing server instead (e.g. a current release).
func Start(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("CLICKHOUSE_URL"); u != "" {
		return u
	}
	return start(t, t.TempDir(), systemUsers)
}

// systemUsers is the users config of Debian's clickhouse-server: user
// default, no password.
const systemUsers = "/etc/clickhouse-server/users.xml"

// StartWithUser is Start with one more user, who has a password. It
// always starts a server of its own (CLICKHOUSE_URL is not used).
func StartWithUser(t testing.TB, user, password string) string {
	t.Helper()
	testutil.Peer(t, "clickhouse-server") // skips (or fails) before the users config is looked for
	dir := t.TempDir()
	base, err := os.ReadFile(systemUsers)
	if err != nil {
		t.Fatalf("clickhouse users config: %v", err)
	}
	// The server merges users.d/*.xml into the users config beside it.
	extra := fmt.Sprintf(`<?xml version="1.0"?><yandex><users><%[1]s><password>%[2]s</password>`+
		`<networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></%[1]s></users></yandex>`,
		html.EscapeString(user), html.EscapeString(password))
	users := filepath.Join(dir, "users.xml")
	if err := os.MkdirAll(filepath.Join(dir, "users.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, base, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.d", "extra.xml"), []byte(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, dir, users)
}

// start runs a server with its files in dir and the given users config.
func start(t testing.TB, dir, users string) string {
	t.Helper()
	sv := newServer(t, dir, users, testutil.FreeTCPPort(t), testutil.FreeTCPPort(t))
	sv.run(t, "")
	return sv.url
}

// server is a clickhouse-server that can be stopped and run again on the
// same files and ports.
type server struct {
	bin, dir, users string
	http, tcp       int
	url             string
	cmd             *exec.Cmd
	done            chan struct{}
}

func newServer(t testing.TB, dir, users string, httpPort, tcpPort int) *server {
	t.Helper()
	sv := &server{bin: testutil.Peer(t, "clickhouse-server"), dir: dir, users: users, http: httpPort, tcp: tcpPort,
		url: fmt.Sprintf("http://127.0.0.1:%d", httpPort)}
	if _, err := os.Stat(users); err != nil {
		t.Fatalf("clickhouse users config: %v", err)
	}
	t.Cleanup(sv.kill) // the data is thrown away with the temp dir
	return sv
}

// run starts the server with extra in its config and waits until it
// answers.
func (sv *server) run(t testing.TB, extra string) {
	t.Helper()
	conf := strings.NewReplacer("{dir}", sv.dir, "{http}", fmt.Sprint(sv.http), "{tcp}", fmt.Sprint(sv.tcp),
		"{users}", sv.users, "{extra}", extra).Replace(config)
	path := filepath.Join(sv.dir, "config.xml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sv.cmd, sv.done = background(t, sv.dir, "stdout.log", sv.bin, "--config-file="+path)
	pids.Store(sv.url, sv.cmd.Process.Pid)
	if err := testutil.WaitHTTP(sv.url+"/ping", 30*time.Second, sv.done); err != nil {
		log, _ := os.ReadFile(filepath.Join(sv.dir, "log", "error.log"))
		t.Fatalf("clickhouse-server %v: %s", err, log)
	}
}

// kill stops the server at once (SIGKILL), as a crash would.
func (sv *server) kill() {
	if sv.cmd != nil {
		sv.cmd.Process.Kill()
		<-sv.done
		sv.cmd = nil
	}
}

// background starts a command in dir, its output in the file log there;
// it dies with the test process, and done is closed when it exits.
func background(t testing.TB, dir, log, bin string, args ...string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := os.OpenFile(filepath.Join(dir, log), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	return cmd, done
}
