package engine

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// A jumbo MSS (8960) in the SYN and SYN-ACK while the ports carry 1500-byte
// packets: the hosts' options pass unchanged toward the far side, but the
// segment sizes each appliance keeps for the frames it builds fit the MTU
// (mss.go). Without the cap a frame is built larger than a port carries, or
// than the TX frame holds, and is never sent: the flow stalls resending it.
// Each inside host is told the outside port's MSS less the frame overhead,
// not the far host's: told 8940, it would send segments of 1448 bytes, each
// sealed into two frames.
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
		ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{1500, 1500}})
		gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{1500, 1500}})
		_, out := ga.push(Inside, mk(a, b, isnA, 0, synF, 64240, synOpts(8960, 1)))
		if s := one(t, "SYN outside", out); mss(s.opts) != 8960 {
			t.Fatalf("v6=%v: the SYN's MSS became %d; the host's option passes unchanged", v6, mss(s.opts))
		}
		in, _ := gb.push(Outside, out[0])
		if s := one(t, "SYN to b", in); int(mss(s.opts)) != want-tcpcrypt.Overhead {
			t.Errorf("v6=%v: b was told MSS %d, want %d", v6, mss(s.opts), want-tcpcrypt.Overhead)
		}
		_, out = gb.push(Inside, mk(b, a, isnB, isnA+1, synF|ackF, 65160, synOpts(8960, 5)))
		if s := one(t, "SYN-ACK outside", out); mss(s.opts) != 8960 {
			t.Fatalf("v6=%v: the SYN-ACK's MSS became %d; the host's option passes unchanged", v6, mss(s.opts))
		}
		in, _ = ga.push(Outside, out[0])
		if s := one(t, "SYN-ACK to a", in); int(mss(s.opts)) != want-tcpcrypt.Overhead {
			t.Errorf("v6=%v: a was told MSS %d, want %d", v6, mss(s.opts), want-tcpcrypt.Overhead)
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
	ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{mtu, mtu}})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{mtu, mtu}})
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

// Each port bounds what goes its way. Behind an inside link of 1280 bytes
// (an inside router fragments the host's larger packets, or the host
// learns its path) and an outside one of 1500, the host is told what the
// outside link carries less the frame overhead, frames toward R fit the
// outside link and segments toward L the inside one.
func TestToldMSSFollowsOutsidePort(t *testing.T) {
	for _, c := range []struct {
		inside, outside int
		farMSS          uint16
		told            uint16
	}{
		{1280, 1500, 1460, 1440},
		{1280, 1500, 8960, 1440},
		{1280, 1500, 1000, 980},  // R's own MSS is the smaller
		{1500, 1280, 1460, 1220}, // the outside link is the narrow one
		{0, 0, 8960, 8940},       // no caps
	} {
		ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{c.inside, c.outside}})
		gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{})
		_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(8960, 7), nil))
		gb.push(Outside, one(t, "SYN outside", out).frame())
		_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(c.farMSS, 7), nil))
		in, _ := ga.push(Outside, one(t, "SYN-ACK outside", out).frame())
		if s := one(t, "SYN-ACK to a", in); mss(s.opts) != c.told {
			t.Errorf("ports %d/%d, far MSS %d: a was told MSS %d, want %d", c.inside, c.outside, c.farMSS, mss(s.opts), c.told)
		}
		for _, f := range ga.e.flows {
			wantR, wantL := min(int(c.farMSS), c.outside-40), c.inside-40
			if c.outside == 0 {
				wantR, wantL = int(c.farMSS), 8960
			}
			if f.segR() != wantR || f.segL() != wantL {
				t.Errorf("ports %d/%d, far MSS %d: segment sizes %d toward R and %d toward L, want %d and %d", c.inside, c.outside, c.farMSS, f.segR(), f.segL(), wantR, wantL)
			}
		}
	}
}
