package engine

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// withSinks gives g new sinks: gsoTestSinks if gso, else plain sinks (no
// offload), whatever TCPINC_ENGINE_GSO says.
func withSinks(g *gw, gso bool) (in, out *gsoTestSink) {
	if !gso {
		g.in, g.out = newSink(), newSink()
		g.tx = [2]TxSink{g.in, g.out}
		return nil, nil
	}
	in, out = newGSOTestSink(), newGSOTestSink()
	g.in, g.out = &in.sink, &out.sink
	g.tx = [2]TxSink{in, out}
	return in, out
}

// sameWire compares two frames but for what GSO may make differ: the IPv4
// identification (atomic datagrams: DF is set) and the header checksum
// over it. With payloads false, it compares the headers and the payloads'
// lengths only.
func sameWire(a, b []byte, payloads bool) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = bytes.Clone(a), bytes.Clone(b)
	p := checkFrameQuiet(a)
	if p == nil || checkFrameQuiet(b) == nil {
		return false
	}
	if p.IPVersion() == 4 {
		l3 := p.L3Offset()
		for _, c := range [][]byte{a, b} {
			c[l3+4], c[l3+5], c[l3+10], c[l3+11] = 0, 0, 0, 0
		}
	}
	if !payloads {
		at := len(a) - len(p.Payload())
		// The TCP checksum covers the payload: leave it out too.
		l4 := p.L4Offset()
		return bytes.Equal(a[:l4+16], b[:l4+16]) && bytes.Equal(a[l4+18:at], b[l4+18:at])
	}
	return bytes.Equal(a, b)
}

// TestSuperFramesAsFrames: through ports that take super-frames (GSOSink,
// the AF_PACKET backend), the engine builds the headers of many frames
// once, and the port's segmentation (afpacket.Segment here, the kernel's GSO
// there) must give the wire exactly the frames the engine builds one by one:
// the same headers and sizes toward R, the same segments toward b. Pair P
// sends through plain ports, pair G through GSO ports, with the same host
// traffic: a 20 kB segment, one of 65,400 bytes (more than one super-frame
// holds once sealed) and a last one with FIN; b's window holds part of the
// second back until b acknowledges the first.
func TestSuperFramesAsFrames(t *testing.T) {
	cfg := Config{TEPs: testTEPs}
	p := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	g := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	withSinks(p.ga, false)
	withSinks(p.gb, false)
	_, gaOut := withSinks(g.ga, true)
	gbIn, _ := withSinks(g.gb, true)
	hp, hg := newHosts(), newHosts()

	for _, tc := range []struct {
		n     int
		flags uint8
	}{
		{20000, pshF},
		{65400, pshF}, // 46 frames: 45 in a super-frame (the IP length's limit), 1 alone
		{5000, pshF | finF},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			p.bOpensWindow(&hp) // a sends more than b's window: G_A sends it on at once
			g.bOpensWindow(&hg)
			data := markerData(tc.n)
			seg := func(pr *pair, h *hosts) []byte {
				return tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|tc.flags, 502, tsOpt(pr.tsA+1, pr.tsB), data)
			}
			frP, frG := seg(p, &hp), seg(g, &hg)
			supers := gaOut.supers
			_, wireP := p.ga.push(Inside, frP)
			_, wireG := g.ga.push(Inside, frG)
			if gaOut.supers == supers {
				t.Fatal("G_A sent R no super-frame")
			}
			if len(wireP) != len(wireG) || len(wireP) < 2 {
				t.Fatalf("%d frames one by one, %d from super-frames", len(wireP), len(wireG))
			}
			for i := range wireP {
				if !sameWire(wireP[i], wireG[i], false) {
					t.Fatalf("frame %d: one by one\n%x\nfrom a super-frame\n%x", i, wireP[i][:80], wireG[i][:80])
				}
			}
			// a sends it again (the same TSval): G_A resends the same
			// frames from the store one by one, byte for byte what
			// the super-frames gave.
			_, again := g.ga.push(Inside, frG)
			if len(again) != len(wireG) {
				t.Fatalf("resent as %d frames, sent as %d", len(again), len(wireG))
			}
			for i := range again {
				// (A resent frame never has PSH.)
				if !sameWire(again[i], withoutPSH(t, wireG[i]), true) {
					t.Fatalf("frame %d resent one by one differs from its segment of a super-frame", i)
				}
			}
			for _, pr := range []*pair{p, g} {
				pr.tsA++
			}
			for _, h := range []*hosts{&hp, &hg} {
				h.aNext += uint32(tc.n)
				if tc.flags&finF != 0 {
					h.aNext++
				}
			}

			// The frames reach G_B as GRO makes them: super-segments
			// of at most 20 frames.
			supers = gbIn.supers
			var atP, atG [][]byte
			for i := 0; i < len(wireP); i += 20 {
				j := min(i+20, len(wireP))
				in, _ := p.gb.push(Outside, coalesced(t, wireP[i:j]))
				atP = append(atP, in...)
				in, _ = g.gb.push(Outside, coalesced(t, wireG[i:j]))
				atG = append(atG, in...)
			}
			// b acknowledges what it got; G_B sends the rest (b's
			// window held it back) and passes the ACK on to G_A.
			for k, pr := range []*pair{p, g} {
				at := &atP
				if k == 1 {
					at = &atG
				}
				last := parse(t, (*at)[len(*at)-1])
				ack := last.seq + uint32(len(last.payload))
				if last.flags&finF != 0 {
					ack++
				}
				pr.tsB++
				more, wire := pr.gb.push(Inside, tcpFrame(addrB, addrA, hp.bNext, ack, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
				*at = append(*at, more...)
				for _, w := range wire {
					pr.ga.push(Outside, w)
				}
			}
			if gbIn.supers == supers {
				t.Fatal("G_B sent b no super-frame")
			}
			if len(atP) != len(atG) {
				t.Fatalf("b got %d segments one by one, %d from super-frames", len(atP), len(atG))
			}
			var got []byte
			for i := range atP {
				if !sameWire(atP[i], atG[i], true) {
					t.Fatalf("segment %d to b: one by one\n%x\nfrom a super-frame\n%x", i, atP[i][:80], atG[i][:80])
				}
				got = append(got, parse(t, atG[i]).payload...)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("b got %d bytes, not the %d a sent", len(got), len(data))
			}
		})
	}
}

// checkFrameQuiet is checkFrame that returns nil instead of failing.
func checkFrameQuiet(frame []byte) *packet.Packet {
	var p packet.Packet
	if p.Decode(frame) != nil || !p.IsTCP() || (p.IPVersion() == 4 && !p.VerifyIPv4Checksum()) || !p.VerifyL4Checksum() {
		return nil
	}
	return &p
}

// withoutPSH is frame without PSH, its checksum made right.
func withoutPSH(t *testing.T, frame []byte) []byte {
	f := bytes.Clone(frame)
	var p packet.Packet
	if p.Decode(f) != nil {
		t.Fatal("frame does not decode")
	}
	f[p.L4Offset()+13] &^= pshF
	p.FixL4Checksum()
	return f
}

// With hosts that announce MSS 1376, a frame carries 1344 data bytes and
// a super-frame's segments are 1364 bytes: 48 of them, with the headers,
// are 65,538 bytes, within the IP length field but past the 65,535 the
// kernel segments in the device (bump.MaxSuperFrame); the AF_PACKET port,
// bypassing the queueing layer, would lose such a frame, and its resends
// too. Every super-frame both ways stays within it (the GSO sinks refuse
// larger ones), and b gets every byte.
func TestSuperFramesWithinGSOMax(t *testing.T) {
	cfg := Config{TEPs: testTEPs}
	g := handshakeMSS(t, newGW(t, cfg), newGW(t, cfg), 1376)
	h := newHosts()
	g.bOpensWindow(&h) // a sends more than b's window: G_A sends it on at once
	_, gaOut := withSinks(g.ga, true)
	gbIn, _ := withSinks(g.gb, true)
	data := markerData(65000)
	_, wire := g.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(g.tsA+1, g.tsB), data))
	if gaOut.supers < 2 {
		t.Fatalf("G_A sent %d super-frames toward R, want the 65,000 bytes in at least two", gaOut.supers)
	}
	var atB [][]byte
	for i := 0; i < len(wire); i += 40 {
		in, _ := g.gb.push(Outside, coalesced(t, wire[i:min(i+40, len(wire))]))
		atB = append(atB, in...)
	}
	if gbIn.supers == 0 {
		t.Fatal("G_B sent b no super-frame")
	}
	var got []byte
	for _, f := range atB {
		got = append(got, parse(t, f).payload...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("b got %d bytes, not the %d a sent", len(got), len(data))
	}
}
