package meter

import (
	"testing"
	"unsafe"
)

// The cache's memory figure (bytes per flow) rests on an entry being one
// cache line.
func TestEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(entry{}); s != 64 {
		t.Fatalf("entry is %d bytes, want 64", s)
	}
}
