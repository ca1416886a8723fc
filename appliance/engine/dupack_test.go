package engine

import (
	"slices"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// round hands g several frames from port from as one worker round (each to
// HandlePacket, then EndRound) and returns what came out of each port.
func (g *gw) round(from PortID, frames ...[]byte) (toIn, toOut [][]byte) {
	g.t.Helper()
	var p packet.Packet
	for _, fr := range frames {
		p.Decode(slices.Clone(fr))
		g.e.HandlePacket(g.now, from, &p, g.tx)
	}
	g.e.EndRound(g.now, g.tx)
	return g.in.take(), g.out.take()
}

// A burst reordered on the path (its last segment first) and whole within
// one round: G_B sends R no duplicate ACK, since the hole closed before the
// round ended; R's next ACK is b's own. A segment past a hole that stays
// open at the round's end gets its duplicate ACK with SACK then, once b
// has acknowledged what came before the hole (else b is nudged, and its
// ACK carries the SACK block), and without SACK at once (R's sender
// counts them: RFC 5681). Before, the
// duplicate ACK went at once and R's sender, whose cumulative ACK must
// wait for b's, took the reordering for a loss (dupack.go).
func TestDupAckWaitsForTheRoundsEnd(t *testing.T) {
	for _, sack := range []bool{true, false} {
		pr := handshake(t)
		h := newHosts()
		f := pr.gb.e.flows[flowKey{in: addrB, out: addrA}]
		f.sackOK = sack
		wire := pr.aSendsMany(&h, 3)
		toIn, toOut := pr.gb.round(Outside, tcpFrameFrom(wire[2]), tcpFrameFrom(wire[0]), tcpFrameFrom(wire[1]))
		dups := 0
		for _, fr := range toOut {
			if len(parse(t, fr).payload) == 0 {
				dups++
			}
		}
		switch {
		case sack && dups != 0:
			t.Fatalf("with SACK, a reordering within the round: %d duplicate ACKs to R, want none", dups)
		case !sack && dups != 1:
			t.Fatalf("without SACK: %d duplicate ACKs to R, want one, at once", dups)
		}
		if got := len(stream(t, frames(t, toIn))); got != 3000 {
			t.Fatalf("b got %d bytes, want 3000", got)
		}
		if !sack {
			continue
		}
		more := pr.aSendsMany(&h, 3)
		// The hole stays open, and b has not acknowledged the 3000 bytes:
		// b is nudged for its ACK, which then carries the SACK block.
		toIn, toOut = pr.gb.round(Outside, tcpFrameFrom(more[1]))
		if len(toOut) != 0 || len(toIn) != 1 || len(parse(t, toIn[0]).payload) != 1 {
			t.Fatalf("a hole open at the round's end, b's ACK to come: %d segments to R, %d to b; want b nudged only", len(toOut), len(toIn))
		}
		out := pr.bAcks(&h, isnA+1+3000)
		if len(out) != 1 || out[0].ack != more[0].seq {
			t.Fatalf("b's ACK: %d segments to R, want one ACK at the hole", len(out))
		}
		if b := sackBlocks(out[0].opts); len(b) != 1 || b[0][0] != more[1].seq {
			t.Fatalf("b's ACK to R has SACK blocks %x, want the held frame", b)
		}
		// b has acknowledged everything: the next frame past the hole gets
		// its duplicate ACK at the round's end.
		_, toOut = pr.gb.round(Outside, tcpFrameFrom(more[2]))
		if len(toOut) != 1 {
			t.Fatalf("past the hole, b's ACK in: %d segments to R, want one duplicate ACK", len(toOut))
		}
		if b := sackBlocks(parse(t, toOut[0]).opts); len(b) != 1 || b[0] != [2]uint32{more[1].seq, more[2].seq + uint32(len(more[2].payload))} {
			t.Fatalf("the duplicate ACK's SACK blocks %x, want the held frames", b)
		}
	}
}

// a resends a segment that R has acknowledged already (a spurious
// retransmission: the path reordered): G_A tells a so with a D-SACK block
// of it (RFC 2883), as a receiver would, so that a's sender widens its
// reordering window.
func TestSpuriousRetransmissionGetsDSACK(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	wire := pr.aSends(&h, make([]byte, 1000), 0)
	pr.toB(wire)
	out := pr.bAcks(&h, isnA+1+1000)
	if len(out) != 1 {
		t.Fatalf("b's ACK: %d segments to R", len(out))
	}
	pr.ga.push(Outside, tcpFrameFrom(out[0])) // R's ACK reaches G_A (and a)
	_, back := pr.aSendsAt(&h, h.aNext-1000, make([]byte, 1000), 0)
	if len(back) != 1 {
		t.Fatalf("a's spurious retransmission: %d segments to a, want one ACK", len(back))
	}
	b := sackBlocks(back[0].opts)
	if len(b) != 1 || b[0] != [2]uint32{h.aNext - 1000, h.aNext} || back[0].ack != h.aNext {
		t.Fatalf("G_A's answer: ack %x, SACK %x; want ack %x with D-SACK [%x, %x)", back[0].ack, b, h.aNext, h.aNext-1000, h.aNext)
	}
}

// Each hole gets its nudge: one that filled before b's answer to its nudge
// came leaves nothing behind to keep the next hole's nudge from going.
func TestEachHoleNudgesOnce(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSendsMany(&h, 6)
	nudged := func(what string, toIn [][]byte) {
		t.Helper()
		for _, fr := range toIn {
			if len(parse(t, fr).payload) == 1 {
				return
			}
		}
		t.Fatalf("%s: b was not nudged (%d segments to b)", what, len(toIn))
	}
	pr.toB(w[:1])
	toIn, _ := pr.gb.round(Outside, tcpFrameFrom(w[2]))
	nudged("the first hole", toIn)
	pr.gb.round(Outside, tcpFrameFrom(w[1])) // it fills before b answers
	pr.bAcks(&h, isnA+1+3000)
	pr.toB(w[3:4])
	toIn, _ = pr.gb.round(Outside, tcpFrameFrom(w[5]))
	nudged("the second hole", toIn)
}

// A hole fills before b answers its nudge while a second hole stays open:
// b got new bytes, so its answer to the first nudge no longer covers them,
// and the next frame past the second hole nudges b again. Before, nothing
// went anywhere until b acknowledged on its own (a review).
func TestSecondHoleNudgesAfterFirstFills(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSendsMany(&h, 8)
	pr.toB(w[:1])
	pr.gb.round(Outside, tcpFrameFrom(w[2])) // hole 1: b nudged
	pr.gb.round(Outside, tcpFrameFrom(w[4])) // hole 2
	if toIn, _ := pr.gb.round(Outside, tcpFrameFrom(w[1])); len(toIn) == 0 {
		t.Fatal("hole 1's filling delivered nothing")
	}
	pr.bAcks(&h, isnA+1+1000) // b's answer to the first nudge
	toIn, toOut := pr.gb.round(Outside, tcpFrameFrom(w[5]))
	nudged := false
	for _, fr := range toIn {
		nudged = nudged || len(parse(t, fr).payload) == 1
	}
	if !nudged && len(toOut) == 0 {
		t.Fatal("past hole 2: b was not nudged and R heard nothing")
	}
}

// b's ACK makes room in G_B's delivery ring for frames that waited for it
// while a later frame waits past a hole: its ACK goes to R once, as a
// duplicate ACK that names the held frame in SACK blocks if SACK was
// negotiated (RFC 2018 §4). Before, the duplicate ACK (ackCustody) left
// the window R was told unrecorded, and b's ACK went to R again after it:
// the same ACK twice, the second without SACK blocks.
func TestRoomMadeWithHeldFrameOneACK(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h := handshakeSACK(t, sack)
		pr.deliverCap(4096)
		wire := pr.aSendsMany(h, 8)
		if atB, _ := pr.toB(wire[:6]); len(stream(t, atB)) >= 6000 {
			t.Fatalf("sack=%v: the ring of 4096 bytes let all 6000 through", sack)
		}
		pr.toB(wire[7:8]) // frame 6 lost
		atB, out := pr.bAcksBoth(h, isnA+1+2000)
		if len(atB) == 0 {
			t.Fatalf("sack=%v: b's ACK made room for nothing", sack)
		}
		if len(out) != 1 {
			t.Fatalf("sack=%v: b's ACK drew %d segments to R, want one", sack, len(out))
		}
		if b := sackBlocks(out[0].opts); sack && (len(b) != 1 || b[0][0] != wire[7].seq) || !sack && len(b) != 0 {
			t.Fatalf("sack=%v: the ACK to R carries SACK blocks %x, want the held frame's (SACK only)", sack, b)
		}
	}
}
