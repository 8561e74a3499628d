package capture

import (
	"bytes"
	"testing"

	"flowlog/internal/packet"
)

// TestFrameBatch: live frames are copied out of the ring and handed on
// when the batch is full, when its first frame has waited batchDelay, when
// the arena is full, and at a flush; nothing is lost or reordered.
func TestFrameBatch(t *testing.T) {
	var got [][]packet.Frame
	h := func(fs []packet.Frame) {
		var c []packet.Frame
		for _, f := range fs {
			f.Data = append([]byte(nil), f.Data...)
			c = append(c, f)
		}
		got = append(got, c)
	}
	b := frameBatch{arena: make([]byte, 0, batchArena)}
	ring := make([]byte, 1<<16)
	add := func(ts int64, n int, fill byte) {
		for i := range n {
			ring[i] = fill
		}
		b.add(ts, packet.LinkEthernet, ring[:n], h)
		ring[0] = ^fill // the ring's slot is reused: the batch must hold a copy
	}
	// A full batch of small frames 1 µs apart.
	for i := range batchFrames {
		add(int64(i)*1000, 60, byte(i))
	}
	if len(got) != 1 || len(got[0]) != batchFrames {
		t.Fatalf("after %d frames: %d batches", batchFrames, len(got))
	}
	for i, f := range got[0] {
		if f.TS != int64(i)*1000 || len(f.Data) != 60 || f.Data[0] != byte(i) || f.Data[59] != byte(i) {
			t.Fatalf("frame %d: ts %d, %d bytes, first %d", i, f.TS, len(f.Data), f.Data[0])
		}
	}
	// Two frames batchDelay apart: the second one sends both.
	add(1e9, 100, 1)
	add(1e9+batchDelay, 100, 2)
	if len(got) != 2 || len(got[1]) != 2 || got[1][0].Data[0] != 1 || got[1][1].Data[0] != 2 {
		t.Fatalf("delay: %d batches", len(got))
	}
	// 64 KiB frames: the arena holds four, the fifth starts a new batch.
	for i := range 5 {
		add(2e9+int64(i), 1<<16, byte(10+i))
	}
	if len(got) != 3 || len(got[2]) != 4 {
		t.Fatalf("arena: %d batches, last of %d frames", len(got), len(got[len(got)-1]))
	}
	b.flush(h)
	if len(got) != 4 || len(got[3]) != 1 || !bytes.Equal(got[3][0].Data, bytes.Repeat([]byte{14}, 1<<16)) {
		t.Fatalf("flush: %d batches", len(got))
	}
	b.flush(h)
	if len(got) != 4 {
		t.Fatal("an empty batch was handed out")
	}
	ts := int64(3e9)
	if n := testing.AllocsPerRun(1000, func() {
		ts++
		b.add(ts, packet.LinkEthernet, ring[:1500], func([]packet.Frame) {})
	}); n != 0 {
		t.Errorf("%v allocations per frame", n)
	}
}
