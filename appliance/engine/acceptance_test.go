package engine

import (
	"testing"
	"time"
)

// Segments an attacker off the path can forge (any numbers, the 4-tuple
// guessed) must not change a flow's record in ways the hosts' own TCPs
// would not let them change their state (RFC 9293 §3.10.7.4, RFC 5961).

var farENOOpt = []byte{69, 4, 0x24, 0x23} // a far host A's SYN option

// plainAtB sets up a plain connection a -> b at G_B (a has no TCP-ENO) with
// a few bytes each way, and returns the next sequence numbers.
func plainAtB(t *testing.T) (gb *gw, aNext, bNext uint32) {
	gb = newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
	aNext, bNext = isnA+1, isnB+1
	pass(t, gb, Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|pshF, 502, nil, []byte("hello")))
	aNext += 5
	pass(t, gb, Inside, tcpFrame(addrB, addrA, bNext, aNext, ackF|pshF, 509, nil, []byte("world")))
	bNext += 5
	if fi := flowInfo(t, gb.e); fi.State != "plain" {
		t.Fatalf("flow %+v", fi)
	}
	return gb, aNext, bNext
}

// pass checks that frame goes through g unchanged.
func pass(t *testing.T, g *gw, from PortID, frame []byte) {
	t.Helper()
	if v := g.e.Handle(g.now, from, frame, g.tx); v != Passthrough {
		t.Fatalf("segment from port %d: %v, want passthrough (flows %d)", from, v, g.e.NumFlows())
	}
	g.in.take()
	g.out.take()
}

// A blind SYN with TCP-ENO (any sequence number) on the tuple of a live
// plain connection turned its record into a new SYN-received flow, and every
// later segment of the connection was dropped as stale: the connection
// stalled for good. The SYN goes to the host as in plain TCP (it answers
// with a challenge ACK, RFC 5961 §4), the connection's segments keep
// passing, and once the handshake times out the plain record is back. A
// real new connection on the tuple (the host answers the SYN with a
// SYN-ACK) is still negotiated.
func TestBlindSYNOnPlainConnectionIgnored(t *testing.T) {
	gb, aNext, bNext := plainAtB(t)
	blind := tcpFrame(addrA, addrB, 0x5a5a5a5a, 0, synF, 1024, append(synOpts(1460, 9), farENOOpt...), nil)
	gb.push(Outside, blind)
	pass(t, gb, Inside, tcpFrame(addrB, addrA, bNext, aNext, ackF, 509, nil, nil)) // b's challenge ACK
	for i := range 3 {
		pass(t, gb, Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|pshF, 502, nil, []byte("more")))
		aNext += 4
		pass(t, gb, Inside, tcpFrame(addrB, addrA, bNext, aNext, ackF|pshF, 509, nil, []byte("data")))
		bNext += 4
		gb.tick(int64(20 * time.Second))
		if i == 2 {
			gb.tick(int64(DefaultHandshakeTimeout))
		}
	}
	if fi := flowInfo(t, gb.e); fi.State != "plain" {
		t.Fatalf("flow after the blind SYN's handshake timed out: %+v", fi)
	}
	pass(t, gb, Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|finF, 502, nil, nil))
	pass(t, gb, Inside, tcpFrame(addrB, addrA, bNext, aNext+1, ackF|finF, 509, nil, nil))

	// The tuple reused by a new connection that b accepts: negotiated.
	gb.push(Outside, tcpFrame(addrA, addrB, isnA+1e6, 0, synF, 64240, append(synOpts(1460, 20), farENOOpt...), nil))
	_, out := gb.push(Inside, tcpFrame(addrB, addrA, isnB+1e6, isnA+1e6+1, synF|ackF, 65160, synOpts(1460, 25), nil))
	if s := one(t, "SYN-ACK of the new connection", out); option(s.opts, 69) == nil {
		t.Fatalf("new connection on the tuple not negotiated: %+v", s)
	}
	if fi := flowInfo(t, gb.e); fi.State != "syn-ack-sent" {
		t.Fatalf("flow %+v", fi)
	}
}

// A blind SYN from the outside while host A waits for the far side's
// SYN-ACK was taken for a simultaneous open and the flow left in plain TCP:
// one forged segment downgraded the connection. Only the far side's
// SYN-ACK repeating that SYN's sequence number shows a simultaneous open;
// the genuine SYN-ACK to our SYN is negotiated as usual.
func TestBlindSYNInSYNSentNoDowngrade(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, one(t, "SYN", out).frame())
	ga.push(Outside, tcpFrame(addrB, addrA, 0x77777777, 0, synF, 1024, append(synOpts(1460, 9), 69, 3, 0x23), nil))
	if fi := flowInfo(t, ga.e); fi.State != "syn-sent" {
		t.Fatalf("flow after a blind SYN: %+v", fi)
	}
	_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
	toIn, _ := ga.push(Outside, one(t, "SYN-ACK", out).frame())
	one(t, "SYN-ACK at a", toIn)
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" {
		t.Fatalf("flow after the genuine SYN-ACK: %+v", fi)
	}
}

// A blind segment without TCP-ENO while host B waits for the third
// segment made B fall back to plain TCP while A went on to encrypt, so A's
// Init1 reached the inside host as data. Only a segment that acknowledges
// the host's SYN-ACK, in its window, decides.
func TestBlindSegmentInSYNACKSentIgnored(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), farENOOpt...), nil))
	gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
	for _, blind := range [][]byte{
		tcpFrame(addrA, addrB, 0x12345678, 0x9abcdef0, ackF, 502, nil, nil),
		tcpFrame(addrA, addrB, isnA+1, 0x9abcdef0, ackF|pshF, 502, nil, []byte("x")),
		tcpFrame(addrA, addrB, isnA+1+70000, isnB+1, ackF, 502, nil, nil),
		tcpFrame(addrA, addrB, isnA+1, isnB+1, pshF, 502, nil, []byte("x")),
	} {
		if toIn, _ := gb.push(Outside, blind); len(toIn) != 0 {
			t.Fatal("a blind segment reached b")
		}
		if fi := flowInfo(t, gb.e); fi.State != "syn-ack-sent" {
			t.Fatalf("flow after a blind segment: %+v", fi)
		}
	}
	gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, append(tsOpt(2, 5), 69, 2), nil))
	if fi := flowInfo(t, gb.e); fi.State != "key-exchange" {
		t.Fatalf("flow after the third segment: %+v", fi)
	}
}
