package durability

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// TestDiskFull runs the server on a 64 MiB tmpfs with a 4 MiB reserve.
// Records are stored until DuckDB's WAL is just short of its checkpoint
// threshold; then, while the spool holds a batch, a file leaves 1 MiB, so
// that the batch's commit fails in its checkpoint, and more records come
// until the spool drops them. The server stays up and answers; what it
// accepted is stored or still spooled, each record once, the rollups
// agreeing with the records; a restart on the full disk keeps all of it.
// When the file goes, the spool drains, new records are all stored, and a
// restart finds the same.
func TestDiskFull(t *testing.T) {
	mnt := testutil.Tmpfs(t, 64)
	r := newRig(t, filepath.Join(mnt, "data"), "FLOWLOG_DISK_RESERVE_MB=4", "FLOWLOG_SPOOL_MAX_MB=16")
	r.send(65000) // about 15 MB of WAL, short of its 16 MiB threshold
	r.waitSent()
	if s := r.waitStored(30 * time.Second); s.consistent() != nil {
		t.Fatalf("before the disk filled: %v", s.consistent())
	}

	// The disk fills while a batch waits in the spool (the server is
	// stopped meanwhile, so that it does not commit the batch first).
	for r.intake().queued == 0 {
		r.send(10000)
		r.waitSent()
	}
	r.signal(syscall.SIGSTOP)
	filler := filepath.Join(mnt, "filler")
	testutil.Fill(t, filler, 1<<20)
	r.signal(syscall.SIGCONT)
	for i := 0; r.intake().dropped == 0; i++ {
		if i == 20 {
			t.Fatalf("no records dropped with %d bytes free: %+v", testutil.FreeBytes(t, mnt), r.intake())
		}
		r.send(2000)
		r.waitSent()
	}
	time.Sleep(3 * time.Second) // a few commits tried on the full disk
	if resp, err := http.Get(r.srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz on a full disk: %v %v", resp, err)
	}
	full := r.accounted("on a full disk")
	if full.in.dropped == 0 || full.in.failed == 0 {
		t.Fatalf("on a full disk: %+v; want records dropped and failed commits", full.in)
	}

	// A restart on the full disk keeps what was stored and what was spooled.
	start, last := time.Now(), r.sent
	r.restart(false)
	t.Logf("restarted on a full disk in %v", time.Since(start).Round(time.Millisecond))
	r.accounted("after a restart on a full disk")
	r.wantKept(full.s, last, "after a restart on a full disk")

	// Space returns: the spool drains, and new records are all stored.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if s := r.waitStored(30 * time.Second); s.consistent() != nil {
		t.Fatalf("after space returned: %v", s.consistent())
	}
	dropped := r.intake().dropped
	first := r.sent + 1
	r.send(20000)
	r.waitSent()
	after := r.waitStored(20 * time.Second)
	if err := after.consistent(); err != nil {
		t.Fatalf("records sent after space returned: %v", err)
	}
	if n := r.storedRange(first, r.sent); n != r.sent-first+1 {
		t.Errorf("of the %d records sent after space returned, %d stored", r.sent-first+1, n)
	}
	if d := r.intake().dropped; d != dropped {
		t.Errorf("%v records dropped after space returned", d-dropped)
	}

	// A restart finds what was committed, all of it.
	last = r.sent
	r.restart(false)
	r.wantKept(after, last, "after a restart")
	if s := r.waitStored(20 * time.Second); s.consistent() != nil {
		t.Errorf("after a restart: %v", s.consistent())
	}
}

// signal sends sig to the server.
func (r *rig) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := syscall.Kill(r.srv.PID(), sig); err != nil {
		r.t.Fatal(err)
	}
}

// account is the server's intake and what its store holds.
type account struct {
	in intake
	s  stored
}

// accounted waits until every record accepted so far is stored or
// spooled, each once, with the rollup agreeing with the records, and
// fails saying what differs if that never holds.
func (r *rig) accounted(when string) account {
	r.t.Helper()
	var a account
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		a = account{r.intake(), r.stored()}
		if a.s.consistent() == nil && a.s.raw+uint64(a.in.queued) == r.accepted() {
			r.t.Logf("%s: %+v; stored %s", when, a.in, a.s)
			return a
		}
	}
	r.t.Fatalf("%s: %d accepted, %+v, stored %s: %v", when, r.accepted(), a.in, a.s, a.s.consistent())
	return a
}
