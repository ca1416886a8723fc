package engine

import (
	"bytes"
	"net/netip"
	"testing"
)

// A jumbo MSS (8960) in the SYN and SYN-ACK while the ports carry 1500-byte
// packets: the hosts' options pass unchanged toward the far side, but the
// segment sizes each appliance keeps for the frames it builds fit the MTU
// (mss.go), and so does the MSS each inside host is told. Without the
// cap a frame is built larger than a port carries, or than the TX frame
// holds, and is never sent: the flow stalls resending it.
func TestJumboMSSCappedToMTU(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		a, b, want := addrA, addrB, 1500-40
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
		if s := one(t, "SYN outside", out); mss(s.opts) != 8960 {
			t.Fatalf("v6=%v: the SYN's MSS became %d; the host's option passes unchanged", v6, mss(s.opts))
		}
		toB, _ := gb.push(Outside, out[0])
		_, out = gb.push(Inside, mk(b, a, isnB, isnA+1, synF|ackF, 65160, synOpts(8960, 5)))
		toA, _ := ga.push(Outside, one(t, "SYN-ACK outside", out).frame())
		// The hosts are told the MSS whose segments, sealed, fit a port:
		// told 8940, they would send full 1448-byte segments, each then
		// two frames on the wire (1428 bytes and 20).
		for _, s := range []segv{one(t, "SYN at b", toB), one(t, "SYN-ACK at a", toA)} {
			if got := mss(s.opts); got != uint16(want-20) {
				t.Errorf("v6=%v: MSS %d told to an inside host, want %d", v6, got, want-20)
			}
		}
		for _, g := range []*gw{ga, gb} {
			for _, f := range g.e.flows {
				if f.segR() > want || f.segL() > want {
					t.Errorf("v6=%v: segment sizes %d toward R and %d toward L, want at most %d", v6, f.segR(), f.segL(), want)
				}
			}
		}
	}
}

// With ports narrower than the MSS both hosts announce (1460), every frame
// the appliances build fits the ports, and the bytes arrive.
func TestFramesFitPortMTU(t *testing.T) {
	const mtu = 1000
	ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: mtu})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: mtu})
	pr := handshakeOn(t, ga, gb)
	h := newHosts()
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	wire := pr.aSends(&h, data, pshF)
	var frames [][]byte
	for _, s := range wire {
		frames = append(frames, s.frame())
	}
	fits(t, "frames toward b's appliance", frames, mtu)
	atB, _ := pr.toB(wire)
	var got []byte
	for _, s := range atB {
		got = append(got, s.payload...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("b got %d bytes, want the %d sent", len(got), len(data))
	}
	var toHost [][]byte
	for _, s := range atB {
		toHost = append(toHost, s.frame())
	}
	fits(t, "segments delivered to b", toHost, mtu)
}
