package engine

import (
	"bytes"
	"testing"
)

// A pure ACK from R numbered below what we hold is believed. R numbers its
// pure ACKs at most at the right edge of our window as R knows it (as
// Linux's tcp_acceptable_seq does); once R sent past that edge (our window
// shrank, or the ACKs that widened it were lost) the number lies below our
// RCV.NXT. Dropping such ACKs, as two appliances did to each other under
// reordering and loss, left both waiting for an ACK forever: every
// retransmission from the hosts was answered with another such ACK
// (TestEncrypted/100MB/reorder stalled about one run in eight).
//
// Here b sends two frames; a acknowledges the first with a tiny window,
// sends data, then acknowledges the second, and that ACK is lost. G_B, whose
// view of G_A's window is the tiny one, numbers its ACK of a's data at that
// edge, below what G_A holds: a must still get the ACK.
func TestPureACKBelowWhatWeHold(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	var wire [][]byte
	for range 2 {
		pr.tsB++
		fr := tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), bytes.Repeat([]byte{'b'}, 1000))
		h.bNext += 1000
		_, toOut := pr.gb.push(Inside, fr)
		wire = append(wire, one(t, "b's data on the wire", toOut).frame())
	}
	for _, f := range wire {
		toIn, _ := pr.ga.push(Outside, f)
		one(t, "b's data at a", toIn)
	}
	firstEnd := parse(t, wire[0])
	wireEnd1 := firstEnd.seq + uint32(len(firstEnd.payload))
	// a acknowledges b's first 1000 bytes with a window of 128 (1 << 7).
	pr.tsA++
	_, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, isnB+1+1000, ackF, 1, tsOpt(pr.tsA, pr.tsB), nil))
	ack1 := one(t, "a's first ACK on the wire", toOut)
	if ack1.ack != wireEnd1 {
		t.Fatalf("a's first ACK translated to %x, want %x", ack1.ack, wireEnd1)
	}
	pr.gb.push(Outside, ack1.frame())
	// a sends data with the same ACK and window: G_B gets it.
	pr.tsA++
	data := []byte("a's data, acknowledged below the wire's RCV.NXT")
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, isnB+1+1000, ackF|pshF, 1, tsOpt(pr.tsA, pr.tsB), data))
	h.aNext += uint32(len(data))
	toIn, _ := pr.gb.push(Outside, one(t, "a's data on the wire", toOut).frame())
	if string(one(t, "a's data at b", toIn).payload) != string(data) {
		t.Fatal("a's data garbled at b")
	}
	// a acknowledges everything: that ACK is lost on the way to G_B.
	pr.tsA++
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 502, tsOpt(pr.tsA, pr.tsB), nil))
	one(t, "a's second ACK on the wire", toOut)
	// b acknowledges a's data: G_B's pure ACK is numbered at the edge it knows.
	pr.tsB++
	_, toOut = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	back := one(t, "b's ACK on the wire", toOut)
	if int32(back.seq-(isnB+1+2000+2*20+74)) >= 0 {
		t.Fatalf("b's ACK numbered %x, not below what G_A holds: the case is not exercised", back.seq)
	}
	before := pr.ga.e.Counters().Drops[DropOutOfWindow].Load()
	toIn, _ = pr.ga.push(Outside, back.frame())
	at := one(t, "b's ACK at a", toIn)
	if at.ack != h.aNext {
		t.Fatalf("ACK at a: %x, want %x (a's data acknowledged)", at.ack, h.aNext)
	}
	if n := pr.ga.e.Counters().Drops[DropOutOfWindow].Load(); n != before {
		t.Fatalf("%d segments dropped as out of window", n-before)
	}
}

// R's window comes only from segments no older than the last one it came
// from (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2): a reordered older ACK with a
// smaller window does not move the right edge back.
func TestWindowNotFromOlderSegment(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	data := []byte("some bytes for b")
	wire := pr.aSends(&h, data, pshF)
	pr.toB(wire)
	pr.tsB++
	_, older := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext-5, ackF, 3, tsOpt(pr.tsB, pr.tsA), nil))
	pr.tsB++
	_, newer := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 400, tsOpt(pr.tsB, pr.tsA), nil))
	n := one(t, "b's newer ACK", newer)
	pr.ga.push(Outside, n.frame())
	for _, o := range older {
		pr.ga.push(Outside, o) // arrives late
	}
	var got int64
	pr.ga.e.Flows(func(fi FlowInfo) { got = fi.Stream.Out.WindowR })
	if want := int64(n.win) << 7; got != want {
		t.Fatalf("R's window %d after a late older ACK, want %d (the newer one's)", got, want)
	}
}

// The window G_B gives R (here G_A, for a) never moves its right edge back
// as R's frames arrive and wait for b's ACK (RFC 9293 §3.8.6.2.2): the
// re-delivery ring's room counts beyond the frames opened, not from what b
// acknowledged, which would count those frames twice.
func TestWindowToFarSideNeverShrinks(t *testing.T) {
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs, DeliverBytes: 8192}))
	h := newHosts()
	edge := func() int64 {
		pr.tsB++
		_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1, ackF|pshF, 502, tsOpt(pr.tsB, pr.tsA), []byte("b")))
		h.bNext++
		s := one(t, "b's data on the wire", toOut)
		pr.ga.push(Outside, s.frame()) // to a, whose next segments acknowledge it
		return int64(s.ack-(isnA+1)) + int64(s.win)<<7
	}
	prev := edge()
	for i := range 5 {
		pr.toB(pr.aSends(&h, bytes.Repeat([]byte{'a'}, 1000), pshF)) // b holds it, unacknowledged
		if e := edge(); e < prev {
			t.Fatalf("after %d frames: right edge %d, earlier %d: the window shrank", i+1, e, prev)
		} else {
			prev = e
		}
	}
}

// L may keep as much in flight as the retransmit store holds: its window
// counts the store's free room beyond L's unacknowledged bytes, so L's
// right edge does not fall below what L already sent.
func TestHostMayFillTheStore(t *testing.T) {
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs, RetransmitBytes: 16384}), newGW(t, Config{TEPs: testTEPs}))
	h := newHosts()
	sent := 0
	for range 8 {
		wire := pr.aSends(&h, bytes.Repeat([]byte{'a'}, 1428), pshF)
		if len(wire) == 0 {
			t.Fatal("a's segment not sealed")
		}
		sent += 1428
	}
	// b's data, acknowledging none of a's: G_A delivers it with a's window.
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1, ackF|pshF, 502, tsOpt(pr.tsB, pr.tsA), []byte("b")))
	toIn, _ := pr.ga.push(Outside, one(t, "b's data on the wire", toOut).frame())
	s := one(t, "b's data at a", toIn)
	if edge := int64(s.ack-(isnA+1)) + int64(s.win)<<7; edge < int64(sent) {
		t.Fatalf("a's right edge %d is below the %d bytes it has in flight: its window shrank", edge, sent)
	}
}

// TestDefaultCapsDoNotThrottle: with the default caps, a host whose peer
// opens a large window sees a window of megabytes through both appliances
// (G_B's delivery ring bounds what it offers G_A, G_A's retransmit store
// what it offers host a). The caps bound every flow's rate at about
// cap/RTT; at 256 KiB a single flow through a pair of appliances was held
// to about half of what wireguard-go carries on this kind of machine, and
// to 42 Mbit/s at 50 ms.
func TestDefaultCapsDoNotThrottle(t *testing.T) {
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs}))
	h := newHosts()
	pr.tsB++
	// b opens its whole window: 0xffff << 7, 8 MiB.
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1, ackF, 0xffff, tsOpt(pr.tsB, pr.tsA), nil))
	toIn, _ := pr.ga.push(Outside, one(t, "b's window on the wire", toOut).frame())
	s := one(t, "b's window at a", toIn)
	if got, want := int64(s.win)<<7, int64(3<<20); got < want {
		t.Fatalf("a's window is %d bytes, want at least %d with the default caps", got, want)
	}
}
