package engine

import (
	"net/netip"
	"testing"
)

// A jumbo MSS (8960) in the SYN and SYN-ACK while the ports carry 1500-byte
// packets: what each appliance forwards, and what it keeps as the segment
// size for frames it builds, fits the MTU (mss.go). Without the cap a frame
// is built larger than the port carries, or than the TX frame holds, and is
// never sent: the flow stalls resending it.
func TestJumboMSSCappedToMTU(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		a, b, want := addrA, addrB, uint16(1500-40)
		mk := func(src, dst netip.AddrPort, seq, ack uint32, flags uint8, win uint16, opts []byte) []byte {
			return tcpFrame(src, dst, seq, ack, flags, win, opts, nil)
		}
		if v6 {
			a, b, want = addrA6, addrB6, 1500-60
			mk = func(src, dst netip.AddrPort, seq, ack uint32, flags uint8, win uint16, opts []byte) []byte {
				return tcp6Frame(src, dst, nil, seq, ack, flags, win, opts)
			}
		}
		ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: 1500})
		gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: 1500})

		_, out := ga.push(Inside, mk(a, b, isnA, 0, synF, 64240, synOpts(8960, 1)))
		if s := one(t, "SYN outside", out); mss(s.opts) != want {
			t.Fatalf("v6=%v: SYN leaves with MSS %d, want %d", v6, mss(s.opts), want)
		}
		in, _ := gb.push(Outside, out[0])
		if s := one(t, "SYN inside", in); mss(s.opts) != want-20 {
			t.Fatalf("v6=%v: SYN reaches b with MSS %d, want %d", v6, mss(s.opts), want-20)
		}
		_, out = gb.push(Inside, mk(b, a, isnB, isnA+1, synF|ackF, 65160, synOpts(8960, 5)))
		if s := one(t, "SYN-ACK outside", out); mss(s.opts) != want {
			t.Fatalf("v6=%v: SYN-ACK leaves with MSS %d, want %d", v6, mss(s.opts), want)
		}
		in, _ = ga.push(Outside, out[0])
		if s := one(t, "SYN-ACK inside", in); mss(s.opts) != want-20 {
			t.Fatalf("v6=%v: SYN-ACK reaches a with MSS %d, want %d", v6, mss(s.opts), want-20)
		}
		for _, g := range []*gw{ga, gb} {
			for _, f := range g.e.flows {
				if f.segR() > int(want) || f.segL() > int(want) {
					t.Errorf("v6=%v: flow keeps segment sizes %d toward R and %d toward L, want at most %d", v6, f.segR(), f.segL(), want)
				}
			}
		}
	}
}
