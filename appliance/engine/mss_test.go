package engine

import (
	"bytes"
	"net/netip"
	"testing"
)

// A jumbo MSS (8960) in the SYN and SYN-ACK while the ports carry 1500-byte
// packets: the hosts' options pass unchanged, but the segment sizes each
// appliance keeps for the frames it builds fit the MTU (mss.go). Without the
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
		gb.push(Outside, out[0])
		_, out = gb.push(Inside, mk(b, a, isnB, isnA+1, synF|ackF, 65160, synOpts(8960, 5)))
		ga.push(Outside, one(t, "SYN-ACK outside", out).frame())
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
