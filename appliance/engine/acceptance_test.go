package engine

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
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
// going on unchanged, but kept off the fast path while the tuple may
// still be negotiated (ForwardInPlace: listed, a new connection's segments
// would pass the engine), and once the handshake times out the plain
// record is back. The old connection's segments do not keep the handshake
// alive (they did, and the tuple stayed off the fast path as long as the
// connection sent): it times out HandshakeTimeout after the SYN. A real
// new connection on the tuple (the host answers the SYN with a SYN-ACK) is
// still negotiated.
func TestBlindSYNOnPlainConnectionIgnored(t *testing.T) {
	gb, aNext, bNext := plainAtB(t)
	blind := tcpFrame(addrA, addrB, 0x5a5a5a5a, 0, synF, 1024, append(synOpts(1460, 9), farENOOpt...), nil)
	gb.push(Outside, blind)
	kept(t, gb, Inside, tcpFrame(addrB, addrA, bNext, aNext, ackF, 509, nil, nil)) // b's challenge ACK
	for range 3 {                                                                  // at 0, 10 and 20 s
		kept(t, gb, Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|pshF, 502, nil, []byte("more")))
		aNext += 4
		kept(t, gb, Inside, tcpFrame(addrB, addrA, bNext, aNext, ackF|pshF, 509, nil, []byte("data")))
		bNext += 4
		gb.tick(int64(10 * time.Second))
	}
	gb.tick(int64(5 * time.Second)) // 35 s: past HandshakeTimeout since the SYN, 15 s since the last segment
	if fi := flowInfo(t, gb.e); fi.State != "plain" {
		t.Fatalf("flow after the blind SYN's handshake timed out: %+v", fi)
	}
	pass(t, gb, Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|pshF, 502, nil, []byte("more")))
	aNext += 4
	pass(t, gb, Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|finF, 502, nil, nil))
	pass(t, gb, Inside, tcpFrame(addrB, addrA, bNext, aNext+1, ackF|finF, 509, nil, nil))

	// The tuple reused by a new connection that b accepts: negotiated,
	// also right after another blind SYN (its SYN takes that one's place).
	gb.push(Outside, blind)
	toIn, _ := gb.push(Outside, tcpFrame(addrA, addrB, isnA+1e6, 0, synF, 64240, append(synOpts(1460, 20), farENOOpt...), nil))
	if s := one(t, "new SYN at b", toIn); s.seq != isnA+1e6 {
		t.Fatalf("SYN at b: %+v", s)
	}
	_, out := gb.push(Inside, tcpFrame(addrB, addrA, isnB+1e6, isnA+1e6+1, synF|ackF, 65160, synOpts(1460, 25), nil))
	if s := one(t, "SYN-ACK of the new connection", out); option(s.opts, 69) == nil {
		t.Fatalf("new connection on the tuple not negotiated: %+v", s)
	}
	if fi := flowInfo(t, gb.e); fi.State != "syn-ack-sent" {
		t.Fatalf("flow %+v", fi)
	}
}

// A blind SYN with TCP-ENO on the tuple of a live plain connection the
// engine has no record of (none seen for PlainRetention, the fast path
// carrying it, or begun before a restart) made a SYN-received flow with
// nothing displaced: every later segment of the connection, the host's
// challenge ACK too, was dropped as stale, and each kept the flow alive,
// so the connection stalled until the hosts gave up. Unless the tuple is
// in the negotiated set, such a flow now passes the segments it has no use
// for unchanged, off the fast path (ForwardInPlace), an RST included (the
// host checks it, RFC 5961 §3), and goes HandshakeTimeout after the SYN;
// then the segments pass as strays. A negotiated tuple's stay dropped.
func TestBlindSYNOnUnknownPlainConnection(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
	aNext, bNext := isnA+1000, isnB+1000
	blind := tcpFrame(addrA, addrB, 0x5a5a5a5a, 0, synF, 1024, append(synOpts(1460, 9), farENOOpt...), nil)
	pass(t, gb, Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|pshF, 502, nil, []byte("hello")))
	aNext += 5
	gb.push(Outside, blind)
	sent, lost := 0, 0
	through := func(from PortID, frame []byte) {
		t.Helper()
		want := Passthrough // a stray once the blind SYN's flow is gone
		if gb.e.NumFlows() != 0 {
			want = ForwardInPlace
		}
		f := slices.Clone(frame)
		sent++
		if v := gb.e.Handle(gb.now, from, f, gb.tx); v != want || !bytes.Equal(f, frame) {
			lost++
			t.Logf("at %v, from port %d: %v, want %v unchanged", time.Duration(gb.now), from, v, want)
		}
	}
	// b answers the SYN with a challenge ACK (RFC 5961 §4); then a and b
	// exchange data every 5 s for a minute.
	through(Inside, tcpFrame(addrB, addrA, bNext, aNext, ackF, 509, nil, nil))
	for range 12 {
		through(Outside, tcpFrame(addrA, addrB, aNext, bNext, ackF|pshF, 502, nil, []byte("more")))
		aNext += 4
		through(Inside, tcpFrame(addrB, addrA, bNext, aNext, ackF|pshF, 509, nil, []byte("data")))
		bNext += 4
		gb.tick(int64(5 * time.Second))
	}
	gb.push(Outside, blind)
	through(Outside, tcpFrame(addrA, addrB, aNext, bNext, rstF, 0, nil, nil)) // a resets the connection
	if lost != 0 {
		t.Fatalf("%d of %d segments of the live connection lost (flows %d)", lost, sent, gb.e.NumFlows())
	}

	// A tuple of an encrypted connection (here of a previous run): its
	// segments stay dropped after a blind SYN.
	a2 := netip.AddrPortFrom(addrA.Addr(), addrA.Port()+1)
	set.Add(addrB, a2, time.Now().Add(IdleLinger))
	gb.push(Outside, tcpFrame(a2, addrB, 0x5a5a5a5a, 0, synF, 1024, append(synOpts(1460, 9), farENOOpt...), nil))
	for _, c := range []struct {
		from  PortID
		frame []byte
	}{
		{Inside, tcpFrame(addrB, a2, bNext, aNext, ackF|pshF, 509, nil, []byte("PLAINTEXT"))},
		{Outside, tcpFrame(a2, addrB, aNext, bNext, ackF|pshF, 502, nil, []byte("ciphertext"))},
	} {
		if toIn, toOut := gb.push(c.from, c.frame); len(toIn)+len(toOut) != 0 {
			t.Fatalf("a segment of a negotiated tuple went on from port %d", c.from)
		}
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

// Wire offsets after the handshake: a's stream starts with Init1 (75
// bytes), b's with Init2 (74).
var (
	wireA0 = isnA + 1 + 75
	wireB0 = isnB + 1 + 74
)

// A forged FIN far outside the window set the pending FIN before any
// window check; the real FIN was then ignored, the appliance never
// acknowledged it, and the close hung. A FIN whose ACK acknowledges data
// never sent is dropped as well (RFC 9293 §3.10.7.4, RFC 5961 §5).
func TestForgedFINOutsideWindowIgnored(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	for _, forged := range [][]byte{
		tcpFrame(addrA, addrB, wireA0+5_000_000, wireB0, ackF|finF, 502, nil, nil),
		tcpFrame(addrA, addrB, wireA0+100, wireB0+100_000, ackF|finF, 502, nil, nil),
		tcpFrame(addrA, addrB, wireA0+100, wireB0, finF, 502, nil, nil),
		// Both numbers guessed: accepted, but the data that follows
		// goes past it, so it was no end.
		tcpFrame(addrA, addrB, wireA0+10, wireB0, ackF|finF, 502, nil, nil),
	} {
		if toIn, _ := pr.gb.push(Outside, forged); len(toIn) != 0 {
			t.Fatalf("forged FIN: %d segments to b", len(toIn))
		}
	}
	wire := pr.aSends(&h, []byte("last words"), finF|pshF)
	fin := one(t, "a's FIN on the wire", toFrames(wire))
	atB, _ := pr.toB(wire)
	if s := one(t, "FIN at b", toFrames(atB)); s.flags&finF == 0 || string(s.payload) != "last words" {
		t.Fatalf("at b: %+v", s)
	}
	ack := one(t, "b's ACK on the wire", toFrames(pr.bAcks(&h, h.aNext)))
	if want := fin.seq + uint32(len(fin.payload)) + 1; ack.ack != want {
		t.Fatalf("b's ACK of the FIN on the wire: %x, want %x (the FIN acknowledged)", ack.ack, want)
	}
}

// A forged ACK (sequence number outside the window, or on an old
// duplicate) was processed: it released frames the far side never got from
// the retransmit store, so the host's retransmission found nothing to send
// and the connection stalled.
func TestForgedACKIgnored(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	data := []byte("not yet at b")
	orig := one(t, "data on the wire", toFrames(pr.aSends(&h, data, pshF)))
	end := orig.seq + uint32(len(orig.payload))
	for _, forged := range [][]byte{
		tcpFrame(addrB, addrA, wireB0+0x40000000, end, ackF, 502, nil, nil),
		tcpFrame(addrB, addrA, wireB0-5000, end, ackF|pshF, 502, nil, []byte("old duplicate")),
		tcpFrame(addrB, addrA, wireB0, end+1000, ackF, 502, nil, nil),
	} {
		if toIn, _ := pr.ga.push(Outside, forged); len(toIn) != 0 {
			t.Fatalf("forged ACK: %d segments to a", len(toIn))
		}
	}
	// a retransmits: the frame is still there to be sent again.
	_, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), data))
	again := one(t, "retransmission on the wire", toOut)
	if again.seq != orig.seq {
		t.Fatalf("retransmission at %x, want %x", again.seq, orig.seq)
	}
	hasBytes(t, "retransmitted frame", again.payload, orig.payload)
}

// An RST anywhere within ±1 MiB of the next sequence number reset the
// connection. Only an exact one does (RFC 5961 §3.2); one elsewhere in the
// window gets a challenge ACK (rate-limited, §7), whose acknowledgment
// number a far side that did reset uses for its next RST.
func TestRSTInWindowChallenged(t *testing.T) {
	pr := handshake(t)
	rst := func(seq uint32) []byte { return tcpFrame(addrB, addrA, seq, 0, rstF, 0, nil, nil) }
	toIn, toOut := pr.ga.push(Outside, rst(wireB0+1000))
	none(t, "in-window RST: to a", toIn)
	ch := one(t, "challenge ACK", toOut)
	if ch.flags != ackF || ch.ack != wireB0 || ch.seq != wireA0 {
		t.Fatalf("challenge ACK: %+v", ch)
	}
	toIn, toOut = pr.ga.push(Outside, rst(wireB0+2000))
	none(t, "second in-window RST: to a", toIn)
	none(t, "second in-window RST: challenge ACK within the rate limit", toOut)
	pr.ga.now += int64(time.Second)
	_, toOut = pr.ga.push(Outside, rst(wireB0+3000))
	one(t, "challenge ACK a second later", toOut)
	if fi := flowInfo(t, pr.ga.e); !fi.Encrypted {
		t.Fatalf("flow after in-window RSTs: %+v", fi)
	}
	if pr.ga.e.Counters().ChallengeACKs.Load() != 2 {
		t.Fatalf("challenge ACKs counted %d, want 2", pr.ga.e.Counters().ChallengeACKs.Load())
	}
	// One below the window (a late RST from a peer that had closed,
	// numbered at an old ACK of ours): dropped without a challenge.
	_, toOut = pr.ga.push(Outside, rst(wireB0-100000))
	none(t, "RST below the window: challenge ACK", toOut)
	// The rejected RSTs have their own counter: out_of_window is for
	// segments that carry data or ACKs.
	if c := pr.ga.e.Counters(); c.Drops[DropRSTRejected].Load() != 4 || c.Drops[DropOutOfWindow].Load() != 0 {
		t.Fatalf("rst_rejected %d, out_of_window %d: want 4 and 0", c.Drops[DropRSTRejected].Load(), c.Drops[DropOutOfWindow].Load())
	}
	toIn, _ = pr.ga.push(Outside, rst(ch.ack))
	if r := one(t, "RST to a", toIn); r.flags&rstF == 0 || pr.ga.e.NumFlows() != 0 {
		t.Fatalf("exact RST: %+v, %d flows", r, pr.ga.e.NumFlows())
	}
}

// A SYN on an established encrypted connection's tuple was dropped
// silently. It gets a challenge ACK (RFC 5961 §4): from the outside toward
// the far side, from the inside host (which lost its connection) toward
// that host, whose RST then ends the old connection so its next SYN starts
// a new one, as between two TCPs.
func TestSYNOnEstablishedChallenged(t *testing.T) {
	pr := handshake(t)
	toIn, toOut := pr.ga.push(Outside, tcpFrame(addrB, addrA, 0x31415926, 0, synF, 1024, synOpts(1460, 9), nil))
	none(t, "blind SYN: to a", toIn)
	if ch := one(t, "challenge ACK to the far side", toOut); ch.flags != ackF || ch.ack != wireB0 {
		t.Fatalf("challenge ACK: %+v", ch)
	}
	if fi := flowInfo(t, pr.ga.e); !fi.Encrypted {
		t.Fatalf("flow after a blind SYN: %+v", fi)
	}
	pr.ga.now += int64(time.Second)
	newISN := isnA - 0x1000 // lower: not a TIME-WAIT reuse
	toIn, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, newISN, 0, synF, 64240, synOpts(1460, 2), nil))
	none(t, "a's new SYN: on the wire", toOut)
	ch := one(t, "challenge ACK to a", toIn)
	if ch.flags != ackF || ch.ack != isnA+1 || ch.seq != isnB+1 {
		t.Fatalf("challenge ACK to a: %+v", ch)
	}
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, ch.ack, 0, rstF, 0, nil, nil))
	if r := one(t, "a's RST on the wire", toOut); r.flags&rstF == 0 || pr.ga.e.NumFlows() != 0 {
		t.Fatalf("a's RST: %+v, %d flows", r, pr.ga.e.NumFlows())
	}
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, newISN, 0, synF, 64240, synOpts(1460, 2), nil))
	if s := one(t, "a's SYN", toOut); option(s.opts, 69) == nil {
		t.Fatalf("a's new SYN: %+v", s)
	}
}

// A far side that ignores the window the appliance advertises (G_A here,
// told by a forged window update that R's window is wide open, sends on
// what a sends although b acknowledges nothing) must not make G_B keep
// state without bound: every frame delivered to b stays in G_B's
// frame map until b acknowledges it, the map has no cap of its own, and
// the window G_B advertises is all that bounds it for a well-behaved
// sender (the plaintext kept for re-delivery is capped, not the frames).
// Data beyond the window is dropped, as TCP drops it (RFC 9293 §3.10.7.4).
func TestPeerIgnoringWindowBounded(t *testing.T) {
	pr := handshakeDeliverCap(t, 4096)
	pr.rOpensWindow()
	h := newHosts()
	delivered := 0
	for i := 0; i < 200; i++ {
		atB, _ := pr.toB(pr.aSends(&h, make([]byte, 1000), pshF))
		for _, s := range atB {
			delivered += len(s.payload)
		}
	}
	var f *flow
	for _, g := range pr.gb.e.list {
		f = g
	}
	limit := 4096 + tcpcrypt.MaxFrameLen
	if delivered > limit || f.rcv.frames.n > limit/tcpcrypt.Overhead {
		t.Fatalf("b got %d bytes, G_B holds %d frames, with nothing acknowledged and a %d-byte cap", delivered, f.rcv.frames.n, pr.gb.e.Config().DeliverBytes)
	}
	if pr.gb.e.Counters().Drops[DropOutOfWindow].Load() == 0 {
		t.Fatal("no out-of-window drops counted")
	}
}

// During the handshake an RST from the outside removed the flow whatever its
// numbers, and a SYN-ACK for a tuple without a flow went on unchanged. So a
// blind attacker knowing the 4-tuple could send one RST while the inside
// host waited for the SYN-ACK: the far side's SYN-ACK then reached the host
// untracked and the connection ran in plain TCP, even to a prefix whose
// policy requires encryption. An RST in SYN-SENT must acknowledge the SYN
// (RFC 9293 §3.10.7.3), one in SYN-RECEIVED must sit at the expected
// sequence number; and a SYN-ACK of an untracked connection to a require
// prefix is dropped.
func TestBlindRSTInHandshake(t *testing.T) {
	pol := []PolicyRule{{Prefix: mustPrefix(addrB.Addr().String() + "/32"), Policy: Require}}
	ga := newGW(t, Config{TEPs: testTEPs, Policies: pol})
	gb := newGW(t, Config{TEPs: testTEPs})
	_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, out[0])
	// Blind RSTs: no ACK, and an ACK that does not acknowledge the SYN.
	for _, r := range [][]byte{
		tcpFrame(addrB, addrA, 12345, 0, rstF, 0, nil, nil),
		tcpFrame(addrB, addrA, 12345, isnA+77, rstF|ackF, 0, nil, nil),
	} {
		if toIn, _ := ga.push(Outside, r); len(toIn) != 0 {
			t.Fatal("a blind RST reached the host")
		}
	}
	if ga.e.NumFlows() != 1 {
		t.Fatal("a blind RST removed the flow")
	}
	if n := ga.e.Counters().Drops[DropRSTRejected].Load(); n != 2 {
		t.Fatalf("rst_rejected %d, want 2", n)
	}
	_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
	toIn, _ := ga.push(Outside, out[0])
	if s := one(t, "SYN-ACK to a", toIn); option(s.opts, 69) != nil {
		t.Fatalf("SYN-ACK to a: %+v", s)
	}
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" {
		t.Fatalf("flow %+v", fi)
	}
	// B's side: an RST at the wrong sequence number in SYN-RECEIVED.
	if toIn, _ := gb.push(Outside, tcpFrame(addrA, addrB, isnA+5000, 0, rstF, 0, nil, nil)); len(toIn) != 0 || gb.e.NumFlows() != 1 {
		t.Fatal("a blind RST went through G_B")
	}
	// A SYN-ACK for a tuple the engine has no record of, from a require
	// prefix: dropped.
	g := newGW(t, Config{TEPs: testTEPs, Policies: pol})
	if v := g.e.Handle(0, Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil), g.tx); v != Dropped {
		t.Fatalf("untracked SYN-ACK from a require prefix: %v", v)
	}
	// The genuine RST acknowledging the SYN still ends the handshake.
	g2 := newGW(t, Config{TEPs: testTEPs})
	g2.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	toIn, _ = g2.push(Outside, tcpFrame(addrB, addrA, 0, isnA+1, rstF|ackF, 0, nil, nil))
	if one(t, "RST to a", toIn); g2.e.NumFlows() != 0 {
		t.Fatal("the genuine RST did not end the flow")
	}
}

// Frames that complete with no room left in the delivery ring wait,
// unopened, their last byte unacknowledged, and go to b once b's ACK frees
// room, with nothing resent by the far side. Before, such a frame went to
// b at once past b's window and could never be delivered again
// (deliver_full): a connection whose host dropped any of it stalled.
func TestFramesWaitForDeliveryRoom(t *testing.T) {
	pr := handshakeDeliverCap(t, 4096)
	h := newHosts()
	var want, got []byte
	for i := range 8 {
		data := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		want = append(want, data...)
		atB, _ := pr.toB(pr.aSends(&h, data, pshF))
		for _, s := range atB {
			if s.seq == isnA+1+uint32(len(got)) { // not a nudge (dupack.go)
				got = append(got, s.payload...)
			}
		}
	}
	c := pr.gb.e.Counters()
	if c.DeliverWaits.Load() == 0 || c.Drops[DropDeliverFull].Load() != 0 {
		t.Fatalf("b got %d bytes; %d frames waited, %d delivered past the ring", len(got), c.DeliverWaits.Load(), c.Drops[DropDeliverFull].Load())
	}
	for round := 0; len(got) < len(want) && round < 8; round++ {
		got = append(got, pr.bAcksHas(&h, len(got))...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("b got %d of %d bytes (or wrong ones) after acknowledging what it had", len(got), len(want))
	}
}

// With the memory budget full, the delivery ring is grown past it for one
// frame at most, when it holds nothing else: four frames in one segment (a
// far stack's coalesced retransmission) took four frames' room (the
// reviewer saw 64 KiB over the budget for one flow with small frames). The
// rest wait for b's ACKs.
func TestForcedDeliveryRoomIsOneFrame(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	var one segv
	var want []byte
	for i := range 4 {
		data := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		want = append(want, data...)
		for j, s := range pr.aSends(&h, data, pshF) {
			if i == 0 && j == 0 {
				one = s
				continue
			}
			one.payload = append(one.payload, s.payload...)
		}
	}
	m := pr.gb.e.Memory()
	m.SetLimit(m.Used())
	atB, _ := pr.toB([]segv{one})
	f := pr.gb.onlyFlow()
	if n := len(f.rcv.plain.b); n > 1024 {
		t.Fatalf("the ring grew to %d bytes past a full budget for frames of 1000", n)
	}
	var got []byte
	for _, s := range atB {
		got = append(got, s.payload...)
	}
	for round := 0; len(got) < len(want) && round < 8; round++ {
		// b acknowledges what it has; the far side sends the segment
		// again (the budget held none of what G_B did not take).
		got = append(got, pr.bAcksHas(&h, len(got))...)
		again, _ := pr.toB([]segv{one})
		for _, s := range again {
			got = append(got, s.payload...)
		}
		if n := len(f.rcv.plain.b); n > 1024 {
			t.Fatalf("the ring grew to %d bytes past a full budget", n)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("b got %d of %d bytes", len(got), len(want))
	}
}

// handshakeDeliverCap is handshake with G_B's delivery ring capped at n.
func handshakeDeliverCap(t *testing.T, n int) *pair {
	pr := handshake(t)
	cfg := pr.gb.e.Config()
	cfg.DeliverBytes = n
	if err := pr.gb.e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	return pr
}

// bAcksHas has b acknowledge the first n bytes a sent and returns the data
// G_B delivers to b in answer.
func (pr *pair) bAcksHas(h *hosts, n int) []byte {
	pr.t.Helper()
	pr.tsB++
	toIn, _ := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+uint32(n), ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	var got []byte
	for _, f := range toIn {
		got = append(got, parse(pr.t, f).payload...)
	}
	return got
}

// onlyFlow is g's one flow record.
func (g *gw) onlyFlow() *flow {
	if len(g.e.list) != 1 {
		g.t.Fatalf("%d flows, want one", len(g.e.list))
	}
	for _, f := range g.e.list {
		return f
	}
	return nil
}

// An old duplicate from R (from before its sequence numbers wrapped, RFC
// 7323 §5) lands on the offsets of R's current stream. With timestamps on,
// its TSval is older than TS.Recent: it is dropped (paws) and answered with
// an ACK, as a host TCP does (§5.3 R1), and the stream goes on. Before, its
// bytes were read as a frame header (a garbage length), R's real bytes at
// those offsets were then duplicates, and the connection ended in an
// authentication failure once the bogus frame filled.
func TestOldDuplicateDroppedByPAWS(t *testing.T) {
	pr := handshake(t)
	first := farFrame(t, pr, tcpcrypt.FrameHeader{}, []byte("the first frame"))
	first.opts = tsOpt(5000, pr.tsA)
	if atB, _ := pr.toB([]segv{first}); len(atB) != 1 || string(atB[0].payload) != "the first frame" {
		t.Fatalf("b got %+v", atB)
	}
	next := first.seq + uint32(len(first.payload))
	old := first
	old.seq, old.payload, old.opts = next, bytes.Repeat([]byte{0x5a}, 600), tsOpt(4000, pr.tsA)
	atB, back := pr.toB([]segv{old})
	none(t, "the old duplicate at b", toFrames(atB))
	if a := one(t, "the ACK R gets", toFrames(back)); a.flags != ackF || len(a.payload) != 0 || a.ack > next {
		t.Fatalf("the ACK R gets: %+v (next %x)", a, next)
	}
	if n := pr.gb.e.Counters().Drops[DropPAWS].Load(); n != 1 {
		t.Fatalf("paws drops %d, want 1", n)
	}
	second := first
	second.seq, second.opts = next, tsOpt(5001, pr.tsA)
	second.payload = farFrameAt(t, pr, tcpcrypt.FrameHeader{}, []byte("the second frame"), int64(next-(isnA+1)))
	if atB, _ := pr.toB([]segv{second}); len(atB) != 1 || string(atB[0].payload) != "the second frame" {
		t.Fatalf("after the old duplicate b got %+v", atB)
	}
}

// A far side with a 1 µs timestamp clock (Linux's tcp_usec_ts) moves its
// TSval by more than 2^31 in 36 minutes: after such an idle spell its next
// segment looks older than TS.Recent. PAWS must let it through (RFC 7323
// §5.5: TS.Recent goes stale; Linux's TCP_PAWS_WRAP, 2,147 s). With the
// 24 days of a 1 ms clock, every segment after the spell was dropped, and
// R gave up on the connection.
func TestPAWSAfterIdleWithMicrosecondClock(t *testing.T) {
	pr := handshake(t)
	first := farFrame(t, pr, tcpcrypt.FrameHeader{}, []byte("before the pause"))
	first.opts = tsOpt(5000, pr.tsA)
	if atB, _ := pr.toB([]segv{first}); len(atB) != 1 {
		t.Fatalf("b got %+v", atB)
	}
	pr.bAcks(&hosts{aNext: isnA + 1, bNext: isnB + 1}, isnA+1+uint32(len("before the pause")))
	pr.gb.now += int64(40 * time.Minute)
	next := first.seq + uint32(len(first.payload))
	second := first
	second.seq, second.opts = next, tsOpt(5000+uint32(40*60*1_000_000), pr.tsA)
	second.payload = farFrameAt(t, pr, tcpcrypt.FrameHeader{}, []byte("after 40 minutes"), int64(next-(isnA+1)))
	if atB, _ := pr.toB([]segv{second}); len(atB) != 1 || string(atB[0].payload) != "after 40 minutes" {
		t.Fatalf("after 40 minutes b got %+v (paws drops %d)", atB, pr.gb.e.Counters().Drops[DropPAWS].Load())
	}
}

// The acceptance edge never falls below what R already sent: it is the
// furthest edge R was told, and that only grows, whatever a lower
// DeliverBytes then makes of the window. (It followed DeliverBytes once: R
// went past the window it was told, the operator lowered the cap, the edge
// fell below rcvW, and the trim of a segment straddling it cut the segment
// short of rcvW and the in-order path sliced past its end, a panic that took
// tcpincd down.) R sends up to the edge; a segment from below it to past it
// is then trimmed to nothing: it is dropped.
func TestTrimBelowWhatRSent(t *testing.T) {
	cfg := Config{TEPs: testTEPs, DeliverBytes: 256 << 10, ReassemblyBytes: 256 << 10}
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs}), newGW(t, cfg))
	f := pr.gb.onlyFlow()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1024)
	stream := farFrame(t, pr, tcpcrypt.FrameHeader{}, data)
	for int64(stream.seq-(isnA+1))+int64(len(stream.payload)) < f.acceptEnd() {
		w := int64(stream.seq-(isnA+1)) + int64(len(stream.payload))
		stream.payload = append(stream.payload, farFrameAt(t, pr, tcpcrypt.FrameHeader{}, data, w)...)
	}
	stream.payload = stream.payload[:f.acceptEnd()-int64(stream.seq-(isnA+1))]
	pr.toB(cut(stream, 1448)) // up to the edge G_B accepts
	c := pr.gb.e.Config()
	c.DeliverBytes = 200 << 10
	if err := pr.gb.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	d := &f.rcv
	hi := f.acceptEnd()
	if hi < d.rcvW {
		t.Fatalf("the edge %d fell below rcvW %d with a lower DeliverBytes", hi, d.rcvW)
	}
	if hi != d.rcvW {
		t.Fatalf("R's bytes reach %d, not the edge %d: the case this test is about did not arise", d.rcvW, hi)
	}
	from := hi - 100
	seg := stream
	seg.seq = stream.seq + uint32(from-int64(stream.seq-(isnA+1)))
	seg.payload = make([]byte, d.rcvW+100-from)
	oow := pr.gb.e.Counters().Drops[DropOutOfWindow].Load()
	pr.toB([]segv{seg})
	if pr.gb.e.Counters().Drops[DropOutOfWindow].Load() != oow+1 {
		t.Fatal("the segment was not dropped as out of window")
	}
}
