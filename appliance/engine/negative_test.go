package engine

import (
	"testing"
)

// A bad Init1 (wrong magic) from the far side aborts the connection at
// host B: RST to both, handshake failure counted (TC-D, tcpcrypt.md §12).
func TestBadInitAborts(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, synOpts(1460, 2), nil))
	bad := make([]byte, 75)
	copy(bad, unhex("deadbeef0000004b"))
	toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, append(tsOpt(2, 2), 69, 2), bad))
	var rstIn, rstOut bool
	for _, f := range toIn {
		rstIn = rstIn || parse(t, f).flags&rstF != 0
	}
	for _, f := range toOut {
		rstOut = rstOut || parse(t, f).flags&rstF != 0
	}
	if !rstIn || !rstOut || gb.e.Counters().HandshakeFailures.Load() != 1 || gb.e.NumFlows() != 0 {
		t.Fatalf("bad Init: RST in %v out %v, failures %d", rstIn, rstOut, gb.e.Counters().HandshakeFailures.Load())
	}
}

// A SYN with two ENO options counts as none (ENO-6): G_B does not answer
// as host B and the connection stays plain.
func TestTwoENOOptionsInSYN(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23, 69, 3, 0x24), nil)
	if v := gb.e.Handle(0, Outside, syn, gb.tx); v != Passthrough {
		t.Fatalf("verdict %v", v)
	}
	if fi := flowInfo(t, gb.e); fi.State != "plain" || gb.e.Counters().Fallbacks[FallbackNoENO].Load() != 1 {
		t.Fatalf("flow %+v", fi)
	}
}

// Role clash: the SYN-ACK's option has b = 0 like ours (ENO-30): plain TCP.
func TestRoleClash(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, append(synOpts(1460, 2), 69, 3, 0x23), nil)
	if v := ga.e.Handle(0, Outside, sa, ga.tx); v != Passthrough {
		t.Fatalf("verdict %v", v)
	}
	fi := flowInfo(t, ga.e)
	if fi.Encrypted || fi.FallbackReason == "" || ga.e.Counters().Fallbacks[FallbackNegotiate].Load() != 1 {
		t.Fatalf("role clash: %+v", fi)
	}
}

// The third segment lost: A's next segment (Init1) still carries `45 02`,
// G_B enables encryption on it and b still gets the ACK of its SYN-ACK.
func TestThirdSegmentLost(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, o[0])
	_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	init1 := parse(t, o[1])
	hasBytes(t, "Init1 carries ENO", option(init1.opts, 69), unhex("4502"))
	toIn, toOut := gb.push(Outside, o[1]) // o[0], the third segment, is lost
	a := one(t, "ACK to b", toIn)
	if a.ack != isnB+1 || a.seq != isnA+1 {
		t.Fatalf("ACK to b: %+v", a)
	}
	one(t, "Init2", toOut)
}

// Nothing of an encrypted connection leaves in plaintext by a side door: an
// RST from the inside host loses its payload, a malformed frame and a TCP
// fragment from the inside are dropped (found by FuzzScript).
func TestNoPlaintextSideDoors(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	toIn, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, rstF|ackF, 0, nil, []byte("MARKER in an RST")))
	none(t, "inside", toIn)
	if r := one(t, "RST on the wire", toOut); len(r.payload) != 0 || r.flags&rstF == 0 || r.seq != isnA+1+75 {
		t.Fatalf("RST: %+v", r)
	}
	frag := tcpFrame(addrA, addrB, 1, 1, ackF, 1, nil, []byte("MARKER"))
	frag[12+2+6] |= 0x20 // IPv4 MF: a first fragment
	frag[12+2+10], frag[12+2+11] = 0, 0
	if v := pr.ga.e.Handle(0, Inside, frag, pr.ga.tx); v != Dropped || pr.ga.e.Counters().Drops[DropFragment].Load() != 1 {
		t.Fatalf("fragment: %v", v)
	}
	bad := tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 1, nil, []byte("MARKER"))
	bad[14+20+12] = 0x40 // TCP data offset 4 words: malformed
	if v := pr.ga.e.Handle(0, Inside, bad, pr.ga.tx); v != Dropped || pr.ga.e.Counters().Drops[DropMalformed].Load() != 1 {
		t.Fatalf("malformed: %v", v)
	}
}

// Under the require policy a SYN the engine cannot negotiate for (data,
// Fast Open) is dropped rather than let through in plain TCP.
func TestRequireDropsUnnegotiableSYN(t *testing.T) {
	g := newGW(t, Config{Policies: []PolicyRule{{Prefix: mustPrefix("198.51.100.0/24"), Policy: Require}}})
	if v := g.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 1, synOpts(1460, 1), []byte("data")), g.tx); v != Dropped {
		t.Fatalf("verdict %v", v)
	}
	if g.e.Counters().Drops[DropPolicy].Load() != 1 {
		t.Fatal("not counted")
	}
}

// Require as host B: a third segment without ENO resets both hosts.
func TestRequireThirdSegmentWithoutENO(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("192.0.2.0/24"), Policy: Require}}})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, synOpts(1460, 2), nil))
	toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 1, nil, nil))
	l, r := one(t, "RST to b", toIn), one(t, "RST to the far side", toOut)
	if l.flags != rstF || l.seq != isnA+1 || r.flags != rstF|ackF || r.seq != isnB+1 {
		t.Fatalf("RSTs %+v / %+v", l, r)
	}
	if gb.e.NumFlows() != 0 {
		t.Fatal("flow kept")
	}
}
