package chtest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// ClusterName is the cluster StartCluster configures in remote_servers.
const ClusterName = "flowlog"

// zooKeeperJar is Debian's ZooKeeper (package zookeeper), whose manifest
// names the jars it needs.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// Cluster is a private ClickHouse cluster of one shard with two replicas,
// which replicate through a private ZooKeeper.
type Cluster struct {
	URLs    []string // HTTP interface of each replica
	servers []*server
	extras  []string
}

// clusterConfig is the part of a replica's config that makes the cluster:
// where ZooKeeper is, the replicas (by TCP port), the replica's macros
// and the port other replicas fetch parts from.
const clusterConfig = `  <zookeeper><node><host>127.0.0.1</host><port>{zk}</port></node><session_timeout_ms>6000</session_timeout_ms></zookeeper>
  <remote_servers><{cluster}><shard><internal_replication>true</internal_replication>{replicas}</shard></{cluster}></remote_servers>
  <macros><shard>01</shard><replica>r{n}</replica></macros>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{interserver}</interserver_http_port>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <uncompressed_cache_size>16777216</uncompressed_cache_size>
`

// StartCluster starts ZooKeeper and two replicas; all stop when the test
// ends. It needs java and Debian's zookeeper beside clickhouse-server.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	testutil.Peer(t, "clickhouse-server")
	zk := startZooKeeper(t)
	const n = 2
	c := &Cluster{}
	var replicas string
	for range n {
		sv := newServer(t, t.TempDir(), systemUsers, testutil.FreeTCPPort(t), testutil.FreeTCPPort(t))
		c.servers = append(c.servers, sv)
		c.URLs = append(c.URLs, sv.url)
		replicas += fmt.Sprintf("<replica><host>127.0.0.1</host><port>%d</port></replica>", sv.tcp)
	}
	for i := range c.servers {
		c.extras = append(c.extras, strings.NewReplacer("{zk}", fmt.Sprint(zk), "{cluster}", ClusterName, "{replicas}", replicas,
			"{n}", fmt.Sprint(i+1), "{interserver}", fmt.Sprint(testutil.FreeTCPPort(t))).Replace(clusterConfig))
		c.Start(t, i)
	}
	return c
}

// Kill stops replica i at once (SIGKILL), as a crash would.
func (c *Cluster) Kill(i int) { c.servers[i].kill() }

// Start runs replica i (again), on its files and ports.
func (c *Cluster) Start(t testing.TB, i int) { c.servers[i].run(t, c.extras[i]) }

// startZooKeeper runs a standalone ZooKeeper with its data in a temp dir
// and returns its client port.
func startZooKeeper(t testing.TB) int {
	t.Helper()
	java := testutil.Peer(t, "java")
	jar := testutil.PeerFile(t, "zookeeper", zooKeeperJar)
	dir := t.TempDir()
	port := testutil.FreeTCPPort(t)
	cfg := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=srvr\n", filepath.Join(dir, "data"), port)
	path := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, done := background(t, dir, "zookeeper.log", java, "-Xmx96m", "-XX:+UseSerialGC", "-Dzookeeper.log.dir="+dir,
		"-cp", jar, "org.apache.zookeeper.server.ZooKeeperServerMain", path)
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for !zooKeeperOK(port) {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "zookeeper.log"))
			t.Fatalf("zookeeper exited: %s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("zookeeper does not answer within 30s")
		}
	}
	return port
}

// zooKeeperOK tells whether ZooKeeper serves on port: its answer to
// "srvr" gives its mode once it does (it answers "imok" to "ruok" before,
// and drops sessions then).
func zooKeeperOK(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	conn.Write([]byte("srvr"))
	out, _ := io.ReadAll(conn)
	return bytes.Contains(out, []byte("Mode: standalone"))
}
