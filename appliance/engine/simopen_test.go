package engine

import (
	"bytes"
	"strings"
	"testing"
)

// Simultaneous open (both hosts active openers): the far side's SYN meets
// our SYN. The engine does not negotiate on the inside host's behalf:
// both SYNs carry b = 0 (a role clash, ENO-30) and the host's SYN-ACK
// would have to repeat our option (ENO-31). The connection goes on in
// plain TCP, counted under its own fallback reason; the host's SYN-ACK
// leaves without ENO (ENO-33), so the far side falls back too (ENO-34).
// The far side's SYN-ACK repeating its SYN's sequence number is what shows
// the simultaneous open (a blind SYN alone must not end the negotiation).
func TestSimultaneousOpenFallsBack(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	hasBytes(t, "our SYN option", option(one(t, "SYN", o).opts, 69), unhex("45042423"))
	farSYN := tcpFrame(addrB, addrA, isnB, 0, synF, 65160, append(synOpts(1460, 2), 69, 3, 0x23), nil)
	if v := ga.e.Handle(0, Outside, farSYN, ga.tx); v != Passthrough {
		t.Fatalf("far SYN: %v, want passthrough", v)
	}
	// Both SYN-ACKs and the data pass untouched: no ENO is added to the
	// host's SYN-ACK, nothing is framed.
	for _, c := range []struct {
		from  PortID
		frame []byte
	}{
		{Inside, tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 64240, synOpts(1460, 3), nil)},
		{Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 4), 69, 3, 0x23), nil)},
		{Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(5, 4), []byte("plain"))},
	} {
		fr := bytes.Clone(c.frame)
		if v := ga.e.Handle(0, c.from, fr, ga.tx); v != Passthrough || !bytes.Equal(fr, c.frame) {
			t.Fatalf("segment from port %d: %v, want passthrough unchanged", c.from, v)
		}
	}
	none(t, "segments the engine originated", append(ga.in.take(), ga.out.take()...))
	fi := flowInfo(t, ga.e)
	if fi.State != "plain" || fi.Encrypted || !strings.Contains(fi.FallbackReason, "simultaneous open") {
		t.Fatalf("flow after the crossing SYNs: %+v", fi)
	}
	if n := ga.e.Counters().Fallbacks[FallbackSimultaneousOpen].Load(); n != 1 || FallbackNames[FallbackSimultaneousOpen] != "simultaneous_open" {
		t.Fatalf("simultaneous-open fallbacks %d (%q), want 1", n, FallbackNames[FallbackSimultaneousOpen])
	}
	if n := ga.e.Counters().Fallbacks[FallbackNegotiate].Load(); n != 0 {
		t.Fatalf("counted as a negotiation failure too (%d)", n)
	}
}

// Under the require policy plain TCP is not an outcome: the far SYN is
// held back (DropPolicy), so the connection can only go on through the
// far side's SYN-ACK to our SYN. A far side that set b = 1 (ENO-11: the
// passive role in a simultaneous open) then negotiates with us as host A.
func TestSimultaneousOpenRequire(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("198.51.100.0/24"), Policy: Require}}})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	farOpt := []byte{69, 4, 0x01, 0x23}
	farSYN := tcpFrame(addrB, addrA, isnB, 0, synF, 65160, append(synOpts(1460, 2), farOpt...), nil)
	if v := ga.e.Handle(0, Outside, farSYN, ga.tx); v != Dropped || ga.e.Counters().Drops[DropPolicy].Load() != 1 {
		t.Fatalf("far SYN under require: %v, policy drops %d", v, ga.e.Counters().Drops[DropPolicy].Load())
	}
	if fi := flowInfo(t, ga.e); fi.State != "syn-sent" {
		t.Fatalf("flow after the held-back SYN: %+v", fi)
	}
	// The far side's SYN-ACK repeats its SYN option (ENO-31).
	toIn, toOut := ga.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 2), farOpt...), nil))
	none(t, "toward the far side", toOut)
	s := one(t, "SYN-ACK at a", toIn)
	if option(s.opts, 69) != nil || s.ack != isnA+1 {
		t.Fatalf("SYN-ACK at a: %+v", s)
	}
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" || fi.Role != "A" {
		t.Fatalf("flow: %+v, want host A in the key exchange", fi)
	}
	for i := range ga.e.Counters().Fallbacks {
		if n := ga.e.Counters().Fallbacks[i].Load(); n != 0 {
			t.Fatalf("fallback %s counted %d", FallbackNames[i], n)
		}
	}
}
