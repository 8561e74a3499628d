package store

import "hash/fnv"

// PositionBits is how many low bits of a stored record's sequence number
// hold its writer's spool position; the bits above hold the writer's
// number. Several processes (the server and agents) may write to one log
// stream of a shared store, each from a spool of its own: their positions
// and commit marks must not mix.
const PositionBits = 40

// WriterNumber is the number of the writer called name: 0 for the server
// (""), which keeps the sequence numbers of stores written before agents
// existed; for an agent, a hash of its name in [1, 2^23].
func WriterNumber(name string) uint64 {
	if name == "" {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return uint64(h.Sum32())%(1<<23) + 1
}
