package main

import (
	"net"
	"syscall"
	"time"

	"flowlog/bench/recording"
)

// replay is a paced replay of the recording to one collector.
type replay struct {
	msgs  []message
	start int // first message carrying a template: the replay begins there
}

func newReplay(msgs []message) *replay {
	r := &replay{msgs: msgs}
	for i, m := range msgs {
		if m.template {
			r.start = i
			break
		}
	}
	return r
}

// sent is what a replay offered.
type sent struct {
	flows, datagrams int64
	elapsed          time.Duration // from the first datagram to the last
}

// rate is the flows per second actually offered.
func (s sent) rate() float64 { return float64(s.flows) / s.elapsed.Seconds() }

// send replays the recording to addr in a loop, paced at rate flows per
// second, until it has offered rate×d flows (whole datagrams). Each
// datagram leaves with current times, export time and sequence number. The
// pacing lets bursts of at most a millisecond's worth through.
func (r *replay) send(addr string, rate int, d time.Duration) (sent, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return sent{}, err
	}
	defer conn.Close()
	recording.SetSockBuf(conn.(*net.UDPConn), syscall.SO_SNDBUFFORCE, 8<<20)
	want := int64(float64(rate) * d.Seconds())
	seq := map[uint32]uint32{}
	var s sent
	buf := make([]byte, 0, 65536)
	t0 := time.Now()
	for i := r.start; s.flows < want; i = (i + 1) % len(r.msgs) {
		m := &r.msgs[i]
		due := t0.Add(time.Duration(float64(s.flows) / float64(rate) * float64(time.Second)))
		now := time.Now()
		if wait := due.Sub(now); wait > time.Millisecond {
			time.Sleep(wait)
			now = time.Now()
		}
		buf = m.stamp(buf, now.UnixMilli(), seq[m.domain])
		if _, err := conn.Write(buf); err != nil {
			return s, err // e.g. refused: the collector is gone
		}
		seq[m.domain] += uint32(m.records)
		s.flows += int64(m.flows)
		s.datagrams++
	}
	s.elapsed = time.Since(t0)
	return s, nil
}
