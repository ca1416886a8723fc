package engine

import (
	"bytes"
	"strings"
	"testing"
)

// Asymmetric routing: a's SYN goes out through G_A, b's SYN-ACK (with
// TCP-ENO from G_B) reaches a by another path. a's next segments come
// back through G_A, which never saw the SYN-ACK: they must go on, as plain
// TCP would carry them, and G_B must fall back when a's first ACK comes
// without ENO (RFC 8547 §4.6, ENO-28). Before, G_A dropped them as stale
// and the connection hung.
func TestSYNACKElsewhereFallsBackPlain(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	syn := one(t, "SYN", o)
	hasBytes(t, "SYN ENO option", option(syn.opts, 69), unhex("45042423"))
	gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	one(t, "G_B SYN-ACK (to a by another path)", o)

	ack := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil)
	in, out := ga.push(Inside, ack)
	none(t, "G_A inside", in)
	if len(out) != 1 || !bytes.Equal(out[0], ack) {
		t.Fatalf("a's ACK through G_A: %d frames (changed: %v), want it unchanged", len(out), len(out) == 1)
	}
	if n := ga.e.Counters().Fallbacks[FallbackAsymmetric].Load(); n != 1 || FallbackNames[FallbackAsymmetric] != "asymmetric" {
		t.Fatalf("G_A asymmetric fallbacks %d (%q), want 1", n, FallbackNames[FallbackAsymmetric])
	}
	if fi := flowInfo(t, ga.e); fi.Encrypted || !strings.Contains(fi.FallbackReason, "asymmetric") {
		t.Fatalf("G_A flow: %+v", fi)
	}
	in, out = gb.push(Outside, ack)
	none(t, "G_B outside", out)
	if a := one(t, "a's ACK to b", in); a.seq != isnA+1 || a.ack != isnB+1 || option(a.opts, 69) != nil {
		t.Fatalf("a's ACK to b: %+v", a)
	}
	if gb.e.Counters().Fallbacks[FallbackNoENOInACK].Load() != 1 {
		t.Fatalf("G_B did not fall back on a's ACK without ENO")
	}

	// Both ways plain from here: a's data through G_A, b's through G_B.
	for _, c := range []struct {
		g     *gw
		from  PortID
		frame []byte
	}{
		{ga, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), []byte("GET / HTTP/1.0\r\n\r\n"))},
		{gb, Inside, tcpFrame(addrB, addrA, isnB+1, isnA+19, ackF|pshF, 509, tsOpt(4, 3), []byte("HTTP/1.0 200 OK\r\n\r\n"))},
		{gb, Outside, tcpFrame(addrA, addrB, isnA+19, isnB+20, ackF, 502, tsOpt(5, 4), nil)},
	} {
		f := bytes.Clone(c.frame)
		v := c.g.e.Handle(c.g.now, c.from, f, c.g.tx)
		// G_A's record is done with the connection (the fast path may take
		// it); G_B's watches for a late Init1 (watchInit1), off it.
		if v != Passthrough && (c.g == ga || v != ForwardInPlace) || !bytes.Equal(f, c.frame) {
			t.Fatalf("plain segment from port %d: %v (changed: %v), want passed unchanged", c.from, v, !bytes.Equal(f, c.frame))
		}
	}
	ga.noPanics()
	gb.noPanics()
}

// Under require the connection cannot go on in plain TCP: both hosts are
// reset, each at the sequence number it waits for.
func TestSYNACKElsewhereUnderRequireResets(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrB.Addr())})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	one(t, "SYN", o)
	toIn, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	in, out := resetBoth(t, "a's ACK of a SYN-ACK G_A never saw", toIn, toOut)
	if in.seq != isnB+1 || in.dst != addrA {
		t.Fatalf("RST to a: %+v", in)
	}
	if out.seq != isnA+1 || out.ack != isnB+1 || out.dst != addrB {
		t.Fatalf("RST to b: %+v", out)
	}
	if n := ga.e.Counters().Fallbacks[FallbackAsymmetric].Load(); n != 1 {
		t.Fatalf("asymmetric fallbacks %d, want 1", n)
	}
	var left int
	ga.e.Flows(func(FlowInfo) { left++ })
	if left != 0 {
		t.Fatalf("%d flows left, want none", left)
	}
}

// Only the host's first segment after its SYN tells a SYN-ACK went by: a
// segment at any other sequence number while the SYN waits is no
// acknowledgement of one (a displaced connection's, or a forged one) and
// is dropped as before, the flow still negotiating.
func TestSYNSentOtherSegmentsStillDropped(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	one(t, "SYN", o)
	for _, seq := range []uint32{isnA, isnA + 2, isnA + 1000} {
		in, out := ga.push(Inside, tcpFrame(addrA, addrB, seq, isnB+1, ackF|pshF, 502, tsOpt(2, 2), []byte("x")))
		none(t, "inside", in)
		none(t, "outside", out)
	}
	if n := ga.e.Counters().Fallbacks[FallbackAsymmetric].Load(); n != 0 {
		t.Fatalf("asymmetric fallbacks %d, want 0", n)
	}
	if fi := flowInfo(t, ga.e); fi.FallbackReason != "" {
		t.Fatalf("flow: %+v", fi)
	}
}
