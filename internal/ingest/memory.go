package ingest

import (
	"context"
	"sync"
	"unsafe"

	"flowlog/internal/flow"
)

// RecordBytes is what a record costs in a batch held in memory. Text
// fields repeat within a batch and share their bytes, so the record
// itself is most of it.
const RecordBytes = int64(unsafe.Sizeof(flow.Record{})) + 16

// Memory is a bound on the records that the pipelines sharing it hold in
// memory at once: one budget for all log streams.
type Memory struct {
	mu      sync.Mutex
	free    int           // records
	changed chan struct{} // closed and replaced when records are given back
}

// NewMemory returns a budget of bytes (at least one record's worth).
func NewMemory(bytes int64) *Memory {
	return &Memory{free: int(max(1, bytes/RecordBytes)), changed: make(chan struct{})}
}

// take grants up to want records, at least least of them (waiting for
// them); 0 when ctx ends first.
func (m *Memory) take(ctx context.Context, want, least int) int {
	for {
		m.mu.Lock()
		if m.free >= least {
			n := min(want, m.free)
			m.free -= n
			m.mu.Unlock()
			return n
		}
		wait := m.changed
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0
		}
	}
}

func (m *Memory) give(n int) {
	if n == 0 {
		return
	}
	m.mu.Lock()
	m.free += n
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}
