package engine

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// sackOpts is a's timestamps followed by one SACK block [a, b).
func sackOpts(ts []byte, a, b uint32) []byte {
	opts := append(append([]byte{}, ts...), 1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(opts[len(opts)-8:], a)
	binary.BigEndian.PutUint32(opts[len(opts)-4:], b)
	return opts
}

// A release's segment lost on the inside link: b SACKs what follows it.
// G_B had SACKed those bytes to R while it held them, so R's sender will
// not resend them; G_B delivers the lost segment again from its ring at
// once, and only once for that ACK of b's.
func TestInsideLossAfterReleaseRedelivered(t *testing.T) {
	pr, h, wire := heldBehindHole(t, true)
	atB, _ := pr.toB(wire[:1]) // the hole fills: everything goes to b (and the nudge)
	var got []segv
	for _, s := range atB {
		if len(s.payload) > 1 {
			got = append(got, s)
		}
	}
	if len(got) < 4 {
		t.Fatalf("the release reached b in %d segments, want several", len(got))
	}
	lost := got[2] // the inside link loses it
	pr.tsB++
	opts := sackOpts(tsOpt(pr.tsB, pr.tsA), lost.seq+uint32(len(lost.payload)), h.aNext)
	toIn, _ := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, lost.seq, ackF, 509, opts, nil))
	var again []byte
	for i, fr := range toIn { // one segment per frame it spans
		s := parse(t, fr)
		if s.seq != lost.seq+uint32(len(again)) {
			t.Fatalf("to b, segment %d: seq %x, want %x", i, s.seq, lost.seq+uint32(len(again)))
		}
		again = append(again, s.payload...)
	}
	if !bytes.Equal(again, lost.payload) {
		t.Fatalf("to b after its SACK of the rest: %d bytes, want the lost segment's %d again", len(again), len(lost.payload))
	}
	if n := pr.gb.e.Counters().Redelivered.Load(); n != uint64(len(toIn)) {
		t.Fatalf("redelivered counted %d, want %d", n, len(toIn))
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
