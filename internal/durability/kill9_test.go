package durability

import (
	"testing"
	"time"
)

// TestKill9Spooled kills the server (SIGKILL) while its spool holds
// records the store has not committed, with a one-thread store taking
// bursts of 100,000: some in a commit under way, the rest waiting. After
// a restart on the same data dir every record accepted before the kill is
// stored, once, and the rollup counts them all.
func TestKill9Spooled(t *testing.T) {
	r := newRig(t, "", "FLOWLOG_STORE_THREADS=1", "FLOWLOG_DISK_RESERVE_MB=1")
	var killed intake
	var bursts [][2]uint64 // the numbers of each burst
	for i := 0; killed.queued == 0; i++ {
		if i == 5 {
			t.Fatal("the spool never held records when the server was killed")
		}
		bursts = append(bursts, [2]uint64{r.sent + 1, r.sent + 100000})
		r.send(100000)
		r.waitSent()
		killed = r.restart(true)
	}
	t.Logf("killed with %v records in the spool, %v accepted", killed.queued, killed.accepted())
	if killed.dropped != 0 {
		t.Fatalf("%v records dropped before the kill", killed.dropped)
	}

	s := r.waitStored(60 * time.Second)
	if err := s.consistent(); err != nil {
		t.Fatal(err)
	}
	// Nothing was dropped and the collector decoded every record of the
	// bursts, so each was accepted.
	for _, b := range bursts {
		if n := r.storedRange(b[0], b[1]); n != b[1]-b[0]+1 {
			t.Errorf("of the records numbered %d to %d, accepted before the kill, %d stored", b[0], b[1], n)
		}
	}
}
