package engine

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// sackOpts is the timestamp option ts followed by one SACK block [a, b).
func sackOpts(ts []byte, a, b uint32) []byte {
	opts := append(append([]byte{}, ts...), 1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(opts[len(opts)-8:], a)
	binary.BigEndian.PutUint32(opts[len(opts)-4:], b)
	return opts
}

// releaseToB fills heldBehindHole's hole (wire[0]) and returns the
// release's segments that reached b, the nudge's byte left out.
func releaseToB(t *testing.T, pr *pair, wire []segv) []segv {
	t.Helper()
	atB, _ := pr.toB(wire[:1])
	var got []segv
	for _, s := range atB {
		if len(s.payload) > 1 {
			got = append(got, s)
		}
	}
	if len(got) < 4 {
		t.Fatalf("the release reached b in %d segments, want several", len(got))
	}
	return got
}

// A release's segment lost on the inside link: b SACKs what follows it.
// G_B had SACKed those bytes to R while it held them, so R's sender will
// not resend them; G_B delivers the lost segment's start again from its
// ring at once, and only once for that ACK of b's.
func TestInsideLossAfterReleaseRedelivered(t *testing.T) {
	pr, h, wire := heldBehindHole(t, true)
	got := releaseToB(t, pr, wire)
	lost := got[2] // the inside link loses it
	pr.tsB++
	opts := sackOpts(tsOpt(pr.tsB, pr.tsA), lost.seq+uint32(len(lost.payload)), h.aNext)
	toIn, _ := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, lost.seq, ackF, 509, opts, nil))
	// The first frame's piece of it, at b's ACK (the next piece at b's
	// ACK of this one: TestInsideLossHoleRedeliveredOnce).
	again := one(t, "to b after its SACK of the rest", toIn)
	if again.seq != lost.seq || len(again.payload) == 0 || !bytes.HasPrefix(lost.payload, again.payload) {
		t.Fatalf("to b: seq %x, %d bytes; want the start of the lost segment again (seq %x)", again.seq, len(again.payload), lost.seq)
	}
	if n := pr.gb.e.Counters().Redelivered.Load(); n != 1 {
		t.Fatalf("redelivered counted %d, want 1", n)
	}
	// b's next duplicate ACK, the same: nothing again.
	pr.tsB++
	opts = sackOpts(tsOpt(pr.tsB, pr.tsA), lost.seq+uint32(len(lost.payload)), h.aNext)
	toIn, _ = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, lost.seq, ackF, 509, opts, nil))
	none(t, "to b at the same ACK again", toIn)
	// b got it: it acknowledges everything, and R hears of all of it.
	back := pr.bAcks(h, h.aNext)
	if len(back) != 1 || back[0].ack != wire[len(wire)-1].seq+uint32(len(wire[len(wire)-1].payload)) {
		t.Fatalf("b's ACK of everything: %+v", back)
	}
}

// b lost most of a release on the inside link. It acknowledges each
// segment delivered again at once (it has a hole), its ACK moving by one
// segment, and each such ACK draws the next: the hole goes again once,
// not its tail again with every segment (k(k+1)/2 segments for a hole of
// k).
func TestInsideLossHoleRedeliveredOnce(t *testing.T) {
	pr, h, wire := heldBehindHole(t, true)
	got := releaseToB(t, pr, wire)
	from, to := got[1].seq, got[len(got)-1].seq // b lost all but the first and the last
	bAck := func(ack uint32) []segv {
		pr.tsB++
		toIn, _ := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, ack, ackF, 509, sackOpts(tsOpt(pr.tsB, pr.tsA), to, h.aNext), nil))
		return parseAll(t, toIn)
	}
	var again []byte
	ack := from
	for q := bAck(ack); len(q) > 0; {
		s := q[0]
		q = q[1:]
		if s.seq != ack+uint32(0) {
			t.Fatalf("delivered again at %x, want b's ACK %x", s.seq, ack)
		}
		again = append(again, s.payload...)
		if ack += uint32(len(s.payload)); ack < to {
			q = append(q, bAck(ack)...)
		}
	}
	if len(again) != int(to-from) {
		t.Fatalf("delivered again %d bytes for a hole of %d", len(again), to-from)
	}
	want := bytes.Join(func() (p [][]byte) {
		for _, s := range got[1 : len(got)-1] {
			p = append(p, s.payload)
		}
		return
	}(), nil)
	if !bytes.Equal(again, want) {
		t.Fatal("the bytes delivered again are not the lost ones")
	}
}

// Without SACK, b says it lost a segment of a release on the inside link
// the only way it can: duplicate ACKs at the hole. G_B delivers the piece
// at b's ACK again, once for that ACK; R, whose ACK waits at the same
// point and which hears none of b's duplicates, would resend it only at
// its retransmission timeout.
func TestInsideLossWithoutSACKRedelivered(t *testing.T) {
	pr, h, wire := heldBehindHole(t, false)
	got := releaseToB(t, pr, wire)
	lost := got[2]
	bAck := func() []segv {
		pr.tsB++
		toIn, _ := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, lost.seq, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
		return parseAll(t, toIn)
	}
	noneToB := func(what string, segs []segv) {
		t.Helper()
		if len(segs) != 0 {
			t.Fatalf("%s: %d segments to b, want none", what, len(segs))
		}
	}
	noneToB("b's ACK at the hole", bAck()) // its ACK moved there: not a duplicate
	again := bAck()
	if len(again) != 1 || again[0].seq != lost.seq || !bytes.HasPrefix(lost.payload, again[0].payload) || len(again[0].payload) == 0 {
		t.Fatalf("b's duplicate ACK: %d segments to b, want the start of the lost segment (seq %x)", len(again), lost.seq)
	}
	noneToB("b's next duplicate ACK", bAck())
}
