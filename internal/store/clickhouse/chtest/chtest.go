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
</yandex>
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
	bin := testutil.Peer(t, "clickhouse-server")
	httpPort, tcpPort := testutil.FreeTCPPort(t), testutil.FreeTCPPort(t)
	if _, err := os.Stat(users); err != nil {
		t.Fatalf("clickhouse users config: %v", err)
	}
	conf := strings.NewReplacer("{dir}", dir, "{http}", fmt.Sprint(httpPort), "{tcp}", fmt.Sprint(tcpPort), "{users}", users).Replace(config)
	path := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+path)
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clickhouse-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // the data is thrown away with the temp dir
		<-done
		out.Close()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	pids.Store(url, cmd.Process.Pid)
	if err := testutil.WaitHTTP(url+"/ping", 30*time.Second, done); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log", "error.log"))
		t.Fatalf("clickhouse-server %v: %s", err, log)
	}
	return url
}
