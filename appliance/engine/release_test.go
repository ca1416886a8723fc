package engine

import (
	"testing"
	"time"
)

// A hole on the wire fills and G_B delivers the ten segments held behind
// it at once; b acknowledges them in five ACKs, as a host that gets them
// in several super-segments does. R must get one ACK for the release (the
// ACKs after the first would give a's sender, without SACK, RTT samples of
// data sent long before: release.go), and it gets it when b has
// acknowledged the whole release. If b stops short, the next Tick sends
// what b acknowledged. b's repeat of the ACK R last got is never held. The same with
// SACK negotiated: a's sender may never have got G_B's SACK blocks usable
// (a middlebox shifting sequence numbers but not SACK blocks).
func TestReleaseACKsGoAsOne(t *testing.T) {
	for _, c := range []struct{ sack, short bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
		short := c.short
		pr := handshake(t)
		h := newHosts()
		for _, f := range []*flow{pr.ga.e.flows[flowKey{in: addrA, out: addrB}], pr.gb.e.flows[flowKey{in: addrB, out: addrA}]} {
			f.sackOK = c.sack // false: as if a SYN had come without SACK-permitted
		}
		var wire []segv
		for range 11 {
			wire = append(wire, pr.aSends(&h, make([]byte, 1000), 0)...)
		}
		if len(wire) != 11 {
			t.Fatalf("%d frames for 11 segments", len(wire))
		}
		// The first frame is lost; the other ten wait at G_B.
		if atB, _ := pr.toB(wire[1:]); len(atB) != 0 {
			t.Fatalf("b got %d segments past the hole", len(atB))
		}
		// Its retransmission fills the hole: 11 000 bytes reach b.
		atB, _ := pr.toB(wire[:1])
		got := 0
		for _, s := range atB {
			got += len(s.payload)
		}
		if got != 11000 {
			t.Fatalf("the release delivered %d bytes, want 11000", got)
		}
		coalesced := pr.gb.e.Counters().AcksCoalesced.Load()
		acks := []uint32{isnA + 1 + 2000, isnA + 1 + 4000, isnA + 1 + 6000, isnA + 1 + 8000, isnA + 1 + 11000}
		if short {
			acks = acks[:4]
		}
		for i, a := range acks {
			out := pr.bAcks(&h, a)
			last := i == len(acks)-1 && !short
			switch {
			case !last && len(out) != 0:
				t.Fatalf("b's ACK %d of the release went to R at once: %+v", i+1, out)
			case last && (len(out) != 1 || out[0].ack != wire[10].seq+uint32(len(wire[10].payload))):
				t.Fatalf("b's ACK of the whole release: %d segments to R, want one ACK of every frame", len(out))
			}
		}
		if n := pr.gb.e.Counters().AcksCoalesced.Load() - coalesced; n != 4 {
			t.Fatalf("%d ACKs folded, want 4", n)
		}
		_, out := pr.gb.tick(int64(time.Millisecond))
		switch {
		case !short && len(out) != 0:
			t.Fatalf("the Tick after the release sent %d more segments to R", len(out))
		case short && (len(out) != 1 || out[0] == nil || parse(t, out[0]).ack != wire[7].seq+uint32(len(wire[7].payload))):
			t.Fatalf("the Tick sent %d segments to R, want the ACK of the first 8000 bytes", len(out))
		}
		// Past the release, b's ACKs go at once again; a repeat is
		// suppressed as before.
		if out := pr.bAcks(&h, acks[len(acks)-1]); len(out) != 0 {
			t.Fatalf("b's repeated ACK: %d segments to R", len(out))
		}
	}
}

// While b's ACK of a release is held, a frame from a past a new hole makes
// G_B tell R what it has: the duplicate ACK carries what b acknowledged,
// held or not, never an older ACK number (R would take the release's
// retransmission for lost again).
func TestDupAckDuringReleaseCarriesHeldAck(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	var wire []segv
	for range 11 {
		wire = append(wire, pr.aSends(&h, make([]byte, 1000), 0)...)
	}
	pr.toB(wire[1:])
	if atB, _ := pr.toB(wire[:1]); len(atB) == 0 {
		t.Fatal("the hole's filling delivered nothing")
	}
	if out := pr.bAcks(&h, isnA+1+2000); len(out) != 0 {
		t.Fatalf("b's first ACK of the release went to R at once: %d segments", len(out))
	}
	more := pr.aSends(&h, make([]byte, 1000), 0)
	more = append(more, pr.aSends(&h, make([]byte, 1000), 0)...)
	_, back := pr.toB(more[1:]) // the first is lost: a new hole
	if len(back) != 1 {
		t.Fatalf("G_B's answer to a frame past the new hole: %d segments, want one ACK", len(back))
	}
	if want := wire[1].seq + uint32(len(wire[1].payload)); back[0].ack != want {
		t.Fatalf("G_B's ACK to R: %x, want %x (b acknowledged the first two frames)", back[0].ack, want)
	}
}
