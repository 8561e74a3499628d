package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

// In cluster mode (Config.Cluster) every table flowlog keeps is created
// ON CLUSTER as a Replicated*MergeTree of one shard, replicated through
// ZooKeeper, and each stream's table also gets a Distributed table over
// its replicas, which queries read. Writes and the reads that Commit
// decides on go to the local replicated tables of the server the client
// talks to; when it moves on to another replica (one is down), that one
// first catches up with the replication log before it is read (caughtUp).
//
// Replication is asynchronous (no insert_quorum, which would stop every
// INSERT while a replica of two is down): a Commit that succeeded is on
// the replica that took it, and ZooKeeper's log records it at once, so the
// other replicas fetch it, if need be when that replica is back.

// ddlWait is how long a statement ON CLUSTER waits for every replica to
// run it; one that is down runs it from the queue in ZooKeeper when back.
const ddlWait = "5"

// errReplicaBehind makes the caller retry later: the replica talked to
// has not fetched every part the replication log holds yet.
var errReplicaBehind = errors.New("the ClickHouse replica has not caught up with the replication log yet")

// onCluster is the ON CLUSTER clause of a DDL statement, or nothing.
func (s *Store) onCluster() string {
	if s.cluster == "" {
		return ""
	}
	return " ON CLUSTER " + query.Quote(s.cluster)
}

// engine is the table engine kind(args…) of the table name, replicated in
// cluster mode.
func (s *Store) engine(kind, name string, args ...string) string {
	if s.cluster != "" {
		kind = "Replicated" + kind
		args = append([]string{"'/clickhouse/tables/{shard}/" + s.db + "/" + name + "'", "'{replica}'"}, args...)
	}
	return kind + "(" + strings.Join(args, ", ") + ")"
}

// createTable creates the table name (with columns and ENGINE = engine …)
// if missing, on every replica.
func (s *Store) createTable(ctx context.Context, name, columns, engine string) error {
	return s.ddl(ctx, "CREATE TABLE IF NOT EXISTS "+s.table(name)+s.onCluster()+" "+columns+" ENGINE = "+engine,
		tableCount(s.db, name)+" = 1")
}

// dropTable drops the table name if it exists, on every replica.
func (s *Store) dropTable(ctx context.Context, name string) error {
	return s.ddl(ctx, "DROP TABLE IF EXISTS "+s.table(name)+s.onCluster(), tableCount(s.db, name)+" = 0")
}

// tableCount is a query of how many tables named name db has.
func tableCount(db, name string) string {
	return "(SELECT count() FROM system.tables WHERE database = " + literal(db) + " AND name = " + literal(name) + ")"
}

// ddl runs a DDL statement. On a cluster, a replica that is down makes the
// statement time out; it succeeded for flowlog's purpose when done holds
// on the server talked to, as writes and reads go there.
func (s *Store) ddl(ctx context.Context, stmt, done string) error {
	if s.cluster == "" {
		return s.c.exec(ctx, stmt)
	}
	_, err := s.c.doWith(ctx, "", url.Values{"distributed_ddl_task_timeout": {ddlWait}}, strings.NewReader(stmt))
	var se *serverError
	if err == nil || !errors.As(err, &se) || !strings.Contains(string(se.msg), "distributed_ddl_task_timeout") {
		return err
	}
	rows, cerr := s.c.selectTSV(ctx, "SELECT "+done, []query.SQLType{query.SQLUint})
	if cerr != nil || rows[0][0].(uint64) != 1 {
		return err
	}
	return nil
}

// checkReplicated fails on a cluster whose database flowlog made on one
// server: its tables stay as they are (there is no conversion), and
// Commit's reads would not be exact on them.
func (s *Store) checkReplicated(ctx context.Context) error {
	if s.cluster == "" {
		return nil
	}
	rows, err := s.c.selectTSV(ctx, "SELECT engine FROM system.tables WHERE database = "+literal(s.db)+" AND name = 'streams'",
		[]query.SQLType{query.SQLString})
	if err != nil {
		return err
	}
	if len(rows) != 1 || !strings.HasPrefix(rows[0][0].(string), "Replicated") {
		return fmt.Errorf("database %s was made without a cluster; use a new database for cluster %s", s.db, s.cluster)
	}
	return nil
}

// readTable is the table queries read of a stream: its Distributed table
// on a cluster.
func (s *Store) readTable(id store.StreamID) string {
	if s.cluster == "" {
		return s.dataTable(id)
	}
	return s.table(tableID(id) + "_all")
}

// createReadTable creates the Distributed table of a stream on a cluster.
func (s *Store) createReadTable(ctx context.Context, id store.StreamID) error {
	if s.cluster == "" {
		return nil
	}
	return s.createDistributed(ctx, tableID(id))
}

// createDistributed creates the Distributed table over data, a stream's
// table, named as readTable says.
func (s *Store) createDistributed(ctx context.Context, data string) error {
	return s.createTable(ctx, data+"_all", "AS "+s.table(data),
		"Distributed("+query.Quote(s.cluster)+", "+query.Quote(s.db)+", "+query.Quote(data)+")")
}

// logNeed is how much of a table's replication log a replica must have
// fetched before Commit reads what landed: every part whose entry is at
// most index or was made before at (the server's time, in seconds; for
// entries the log no longer holds).
// Both are taken at the first read after what landed became uncertain
// (a Store's start, an INSERT without answer), and kept until the next
// time: parts logged later are of INSERTs that this Store saw succeed,
// which stored only positions it no longer reads. So a replica that lacks
// those, as their replica went down, is read without waiting for it.
type logNeed struct {
	set   bool
	empty bool // the log had no entry
	index uint64
	at    uint64
}

// caughtUp returns errReplicaBehind unless the replica c talks to holds
// every part of table that need asks for; an unset need is set to the
// whole replication log as it is now, which holds every INSERT that
// succeeded on any replica. Without a cluster it returns nil. The caller
// reads on c, which does not move on to another replica.
func (s *Store) caughtUp(ctx context.Context, c *client, table string, need *logNeed) error {
	if s.cluster == "" {
		return nil
	}
	rows, err := c.selectTSV(ctx, "SELECT zookeeper_path, log_pointer, log_max_index, is_readonly, toUInt64(toUnixTimestamp(now()))"+
		" FROM system.replicas WHERE database = "+literal(s.db)+" AND table = "+literal(table),
		[]query.SQLType{query.SQLString, query.SQLUint, query.SQLUint, query.SQLUint, query.SQLUint})
	if err != nil {
		return err
	}
	if len(rows) != 1 {
		return fmt.Errorf("table %s is not replicated on this server", table)
	}
	path, pointer, maxIndex, readonly, now := rows[0][0].(string), rows[0][1].(uint64), rows[0][2].(uint64), rows[0][3].(uint64), rows[0][4].(uint64)
	if readonly != 0 {
		return errReplicaBehind
	}
	log, err := zooKeeperLog(path)
	if err != nil {
		return err
	}
	if !need.set {
		empty, err := emptyLog(ctx, c, log, maxIndex)
		if err != nil {
			return err
		}
		*need = logNeed{set: true, empty: empty, index: maxIndex, at: now}
	}
	if !need.empty && pointer <= need.index {
		return errReplicaBehind
	}
	// A log entry that fetches a part reads "get", then the part's name.
	missing, err := c.selectTSV(ctx, "SELECT count() FROM system.replication_queue WHERE database = "+literal(s.db)+
		" AND table = "+literal(table)+" AND type = 'GET_PART' AND (toUnixTimestamp(create_time) < "+literal(need.at)+
		" OR new_part_name IN (SELECT extract(value, 'get\\n([^\\n]+)') FROM system.zookeeper WHERE path = "+log+
		fmt.Sprintf(" AND name <= 'log-%010d'))", need.index), []query.SQLType{query.SQLUint})
	if err != nil {
		return err
	}
	if missing[0][0].(uint64) > 0 {
		return errReplicaBehind
	}
	return nil
}

// zooKeeperLog is the path of the replication log of the table whose
// path in ZooKeeper is path, as a literal. system.zookeeper takes only a
// plain string literal; the path is made of names flowlog checked and the
// server's macros.
func zooKeeperLog(path string) (string, error) {
	if strings.ContainsAny(path, `'\`) {
		return "", fmt.Errorf("unexpected replication path %q", path)
	}
	return "'" + path + "/log'", nil
}

// emptyLog tells whether the replication log (a zooKeeperLog) has no
// entry, which its highest index (0 then, as with one entry) does not say.
func emptyLog(ctx context.Context, c *client, log string, maxIndex uint64) (bool, error) {
	if maxIndex > 0 {
		return false, nil
	}
	entries, err := c.selectTSV(ctx, "SELECT count() FROM system.zookeeper WHERE path = "+log,
		[]query.SQLType{query.SQLUint})
	if err != nil {
		return false, err
	}
	return entries[0][0].(uint64) == 0, nil
}
