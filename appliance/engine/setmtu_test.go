package engine

import (
	"bytes"
	"testing"
)

// TestSetMTUFollowsPorts: both appliances' ports (and the hosts' links)
// go from 1500 to 1400 bytes while a connection is encrypted, and nothing
// sends a packet-too-big: the daemon reads the ports' new MTU and tells
// the engines (SetMTU). The frame a sealed at 1420 bytes before is resent
// from the store in segments that fit, the same bytes at the same
// sequence numbers; a's full segments at its new size (1348 bytes and
// timestamps) are sealed into frames that fit; G_B delivers to b in
// segments that fit, although b announced 1460 in its SYN. Raised back to
// 1500, the flow's segments grow back. Before, a live flow kept the caps of
// its SYN: every frame was built 20 bytes over the ports' MTU, which the
// port refuses (the AF_PACKET socket: EMSGSIZE), and the flow stalled.
func TestSetMTUFollowsPorts(t *testing.T) {
	ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{1500, 1500}})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{1500, 1500}})
	pr := handshakeOn(t, ga, gb)
	h := newHosts()
	data := bytes.Repeat([]byte("0123456789abcdef"), 88)[:1400]
	orig := pr.aSends(&h, data, pshF)
	if len(orig) != 1 || len(orig[0].payload) != 1420 {
		t.Fatalf("%d segments, want one 1420-byte frame", len(orig))
	}
	for _, g := range []*gw{ga, gb} {
		g.e.SetMTU([2]int{1400, 1400})
	}
	// a's link is 1400 bytes now too: it resends in segments of 1348
	// bytes (1400 - 40 - 12 of timestamps).
	var out [][]byte
	for _, r := range [][2]int{{0, 1348}, {1348, 1400}} {
		pr.tsA++
		_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1+uint32(r[0]), isnB+1, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), data[r[0]:r[1]]))
		out = append(out, o...)
	}
	if len(out) == 0 {
		t.Fatal("nothing resent")
	}
	fits(t, "the frame sealed before, resent", out, 1400)
	var segs []segv
	for _, o := range out {
		segs = append(segs, parse(t, o))
	}
	wireBytes(t, "the frame sealed before, resent", segs, orig[0].seq, orig[0].payload)
	atB, _ := pr.toB(segs)
	var toB [][]byte
	for _, s := range atB {
		toB = append(toB, s.frame())
	}
	fits(t, "delivered to b", toB, 1400)
	wireBytes(t, "delivered to b", atB, isnA+1, data)

	full := bytes.Repeat([]byte("x"), 1348)
	var wire [][]byte
	for _, s := range pr.aSends(&h, full, pshF) {
		wire = append(wire, s.frame())
	}
	fits(t, "a full segment of a's new size", wire, 1400)

	for _, g := range []*gw{ga, gb} {
		g.e.SetMTU([2]int{1500, 1500})
	}
	if ws := pr.aSends(&h, make([]byte, 1400), pshF); len(ws) != 1 || len(ws[0].payload) != 1420 {
		t.Fatalf("MTU 1500 again: 1400 bytes in %d segments, want one 1420-byte frame", len(ws))
	}
	for _, f := range gb.e.flows {
		if f.segL() != 1460 {
			t.Errorf("MTU 1500 again: segments to b of %d bytes, want b's MSS 1460", f.segL())
		}
	}
}

// TestSetMTUNewFlows: a flow that starts after SetMTU takes the new caps:
// its inside host is told the outside port's MSS less the frame overhead.
func TestSetMTUNewFlows(t *testing.T) {
	ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{MTU: [2]int{1500, 1500}})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{})
	ga.e.SetMTU([2]int{1400, 1400})
	_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 7), nil))
	gb.push(Outside, one(t, "SYN outside", out).frame())
	_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 7), nil))
	in, _ := ga.push(Outside, one(t, "SYN-ACK outside", out).frame())
	if s := one(t, "SYN-ACK to a", in); mss(s.opts) != 1340 {
		t.Fatalf("a was told MSS %d, want 1400 - 40 - 20 = 1340", mss(s.opts))
	}
}
