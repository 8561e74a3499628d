package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"flowlog/internal/flow"
)

// v5 encodes records as NetFlow v5 packets (30 records each), the way a
// router would export them, so nfcapd can store the same flows as we do.
// Times are relative to a boot time one day before Start.
func v5(recs []flow.Record, seq uint32) [][]byte {
	boot := Start.Add(-24 * time.Hour).UnixMilli()
	var pkts [][]byte
	for len(recs) > 0 {
		n := min(30, len(recs))
		export := recs[0].End
		for _, r := range recs[:n] {
			export = max(export, r.End)
		}
		b := make([]byte, 24, 24+48*n)
		binary.BigEndian.PutUint16(b[0:], 5)
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		binary.BigEndian.PutUint32(b[4:], uint32(export-boot))
		binary.BigEndian.PutUint32(b[8:], uint32(export/1000))
		binary.BigEndian.PutUint32(b[12:], uint32(export%1000)*1e6)
		binary.BigEndian.PutUint32(b[16:], seq)
		for _, r := range recs[:n] {
			var rec [48]byte
			s, d := r.SrcAddr.As4(), r.DstAddr.As4()
			copy(rec[0:], s[:])
			copy(rec[4:], d[:])
			binary.BigEndian.PutUint32(rec[16:], uint32(r.Packets))
			binary.BigEndian.PutUint32(rec[20:], uint32(r.Bytes))
			binary.BigEndian.PutUint32(rec[24:], uint32(r.Start-boot))
			binary.BigEndian.PutUint32(rec[28:], uint32(r.End-boot))
			binary.BigEndian.PutUint16(rec[32:], r.SrcPort)
			binary.BigEndian.PutUint16(rec[34:], r.DstPort)
			rec[37] = uint8(r.TCPFlags)
			rec[38] = r.Protocol
			rec[39] = r.TOS
			b = append(b, rec[:]...)
		}
		pkts = append(pkts, b)
		seq += uint32(n)
		recs = recs[n:]
	}
	return pkts
}

// sendPaced sends packets to addr at about pps packets per second, so a
// collector on the same two cores keeps up.
func sendPaced(addr string, pkts [][]byte, pps int) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	const burst = 100
	tick := time.Duration(burst) * time.Second / time.Duration(pps)
	next := time.Now()
	for i, p := range pkts {
		if _, err := c.Write(p); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if i%burst == burst-1 {
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
	}
	return nil
}
