// Package storetest holds what the tests of every store backend share: a
// deterministic data set, a brute-force oracle that answers queries by
// scanning records in Go, and the query suite each backend must pass.
package storetest

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"flowlog/internal/flow"
)

// Base is the start of the generated data: a fixed day, so day tables and
// partitions are predictable.
var Base = time.Date(2026, 3, 14, 22, 0, 0, 0, time.UTC)

// Records generates n records over span starting at Base, from a fixed
// seed: a mix of IPv4 and IPv6, a skewed set of sources (so top-N has a
// clear order), several flow logs and interfaces, odd strings.
func Records(n int, span time.Duration, seed uint64) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, 42))
	recs := make([]flow.Record, n)
	strs := []string{"ACCEPT", "REJECT", "it's", `a"b`, "x\\y", "tab\there", "ünï", "nul\x00byte"}
	for i := range recs {
		r := &recs[i]
		r.Version = flow.RecordVersion
		r.AccountID = "acct-1"
		r.FlowLogID = []string{"fl-a", "fl-b", "fl-c"}[rng.IntN(3)]
		r.GatewayID = "gw-1"
		r.InterfaceID = []string{"eth0", "eth1", ""}[rng.IntN(3)]
		src := rng.IntN(200)
		src = src * src / 200 // skewed toward low numbers
		if rng.IntN(10) == 0 {
			r.SrcAddr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(src), 14: byte(rng.IntN(4))})
			r.DstAddr = netip.MustParseAddr("2001:db8:ffff::1")
			r.IPVersion = 6
		} else {
			r.SrcAddr = netip.AddrFrom4([4]byte{10, byte(rng.IntN(3)), 0, byte(src)})
			r.DstAddr = netip.AddrFrom4([4]byte{192, 168, byte(rng.IntN(2)), byte(rng.IntN(250))})
			r.IPVersion = 4
		}
		r.SrcPort = uint16(1024 + rng.IntN(60000))
		r.DstPort = []uint16{22, 53, 80, 443, 3389, 8080}[rng.IntN(6)]
		r.Protocol = []uint8{1, 6, 17}[rng.IntN(3)]
		r.Packets = uint64(1 + rng.IntN(1000))
		r.Bytes = r.Packets * uint64(40+rng.IntN(1400))
		r.End = Base.Add(time.Duration(rng.Int64N(int64(span)))).UnixMilli()
		r.Start = r.End - rng.Int64N(60000)
		r.Action = strs[rng.IntN(len(strs))]
		r.LogStatus = flow.StatusOK
		r.TCPFlags = uint16(rng.IntN(64))
		r.FlowDirection = flow.Direction(rng.IntN(3))
		r.VLANID = uint16(rng.IntN(3) * 100)
		r.TOS = uint8(rng.IntN(4) * 8)
		if r.Protocol == 1 {
			r.ICMPType, r.ICMPCode = uint8(rng.IntN(9)), uint8(rng.IntN(2))
		}
		r.EndReason = flow.EndReason(1 + rng.IntN(5))
		r.SamplingInterval = uint32(rng.IntN(2))
		enrich(r, src)
	}
	return recs
}

// enrich fills the fields of interfaces and GeoIP/ASN from the record's
// other fields (so the random sequence, and the data the suite's checks
// were written for, stay as they are); some stay empty, as for private
// addresses and unknown interfaces.
func enrich(r *flow.Record, src int) {
	ifs := []string{"", "xe-0/0/1", "ae0.100"}
	r.InputIfIndex = uint32(r.VLANID / 100)
	r.OutputIfIndex = uint32(r.TOS / 8)
	r.InIfName, r.OutIfName = ifs[r.InputIfIndex%3], ifs[r.OutputIfIndex%3]
	r.InIfSpeed, r.OutIfSpeed = uint64(r.InputIfIndex)*10e9, uint64(r.OutputIfIndex)*1e9
	countries := []string{"", "DE", "US", "FR", "BR"}
	r.SrcCountry, r.DstCountry = countries[src%5], countries[int(r.DstPort)%5]
	if src%5 != 0 {
		r.SrcAS, r.SrcASName = uint32(64496+src%7), []string{"Example AS", "it's AS", "ünï net"}[src%3]
	}
	if r.DstCountry != "" {
		r.DstAS, r.DstASName = 4200000000+uint32(r.DstPort), "dst net"
	}
}
