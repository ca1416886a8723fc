package engine

import "testing"

// sackHeard collects the left edges of the SACK blocks in segments to R.
type sackHeard map[uint32]bool

func (h sackHeard) note(t *testing.T, out []segv) {
	t.Helper()
	for _, s := range out {
		for _, b := range sackBlocks(s.opts) {
			h[b[0]] = true
		}
	}
}

func (h sackHeard) check(t *testing.T, w []segv, idx ...int) {
	t.Helper()
	for _, i := range idx {
		if !h[w[i].seq] {
			t.Errorf("the range starting at w%d was never named to R in a SACK block", i)
		}
	}
}

func parseAll(t *testing.T, frames [][]byte) []segv {
	t.Helper()
	var out []segv
	for _, fr := range frames {
		out = append(out, parse(t, fr))
	}
	return out
}

// Several new ranges past holes within one worker round. A plain receiver
// sends a duplicate ACK per out-of-order segment, that segment's block
// first, so its sender's scoreboard learns every range; G_B answers the
// round at its end, and with three blocks to an ACK it must send as many
// as it takes to name them all (RFC 2018 §4). Before, the range of w6 was
// never named: R's sender took its bytes for lost and resent them.
func TestEveryHeldRangeNamedAfterARound(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSendsMany(&h, 12)
	pr.toB(w[:1])
	pr.bAcks(&h, isnA+1+1000) // b acknowledged everything before the hole
	heard := sackHeard{}
	// One round: w1 lost, w2 arrives, w3 lost, w4, w5 lost, w6, w7 lost, w8.
	_, toOut := pr.gb.round(Outside, tcpFrameFrom(w[2]), tcpFrameFrom(w[4]), tcpFrameFrom(w[6]), tcpFrameFrom(w[8]))
	heard.note(t, parseAll(t, toOut))
	heard.check(t, w, 2, 4, 6, 8)
	if len(toOut) != 2 {
		t.Errorf("%d duplicate ACKs for 4 new ranges, want 2", len(toOut))
	}
}

// The same while b's ACK is awaited (the blocks wait for b's answer to
// its nudge, sackWaitsForL): b's ACK carries three, and one more ACK names
// the fourth.
func TestEveryHeldRangeNamedAfterNudge(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSendsMany(&h, 12)
	pr.toB(w[:1]) // b has not acknowledged it yet
	heard := sackHeard{}
	for _, i := range []int{2, 4, 6, 8} {
		_, toOut := pr.gb.round(Outside, tcpFrameFrom(w[i]))
		heard.note(t, parseAll(t, toOut))
	}
	heard.note(t, pr.bAcks(&h, isnA+1+1000))
	heard.check(t, w, 2, 4, 6, 8)
}

// b's ACK carries a SACK block of its own (it lost a segment on the inside
// link) while G_B holds six ranges of R's that no block named yet (they
// waited for b's ACK). With timestamps an ACK has room for three blocks:
// b's and two held ones. The held ranges whose blocks did not fit stay
// unnamed, and later ACKs name them.
func TestHeldRangeCutByHostBlockStaysUnnamed(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	wire := pr.aSendsMany(&h, 16)
	atB, _ := pr.toB(wire[:2]) // b has not acknowledged them yet
	heard := sackHeard{}
	for _, i := range []int{3, 5, 7, 9, 11, 13} {
		_, back := pr.toB(wire[i : i+1])
		heard.note(t, back)
	}
	// b lost the first segment and SACKs the second.
	s1 := atB[1]
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, atB[0].seq, ackF, 509, sackOpts(tsOpt(pr.tsB, pr.tsA), s1.seq, s1.seq+uint32(len(s1.payload))), nil))
	heard.note(t, parseAll(t, toOut))
	heard.note(t, pr.bAcks(&h, s1.seq+uint32(len(s1.payload))))
	heard.check(t, wire, 3, 5, 7, 9, 11, 13)
}

// At 5 % loss a Linux receiver holds 23 to 30 ranges past holes; G_B kept
// 16 and dropped every segment that would have made a 17th
// (reassembly_full), which R's sender then resent. Here 24 ranges come in
// one round (every other segment lost): G_B holds them all, in a block
// out of the flow record, names each to R in a SACK block, and once R's
// retransmissions fill the holes b gets every byte and the block goes back
// for reuse.
func TestMoreHeldRangesThanTheRecordKeeps(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	const n = 50
	w := pr.aSendsMany(&h, n)
	if len(w) != n {
		t.Fatalf("%d wire segments for %d host segments", len(w), n)
	}
	pr.toB(w[:1])
	pr.bAcks(&h, isnA+1+1000)
	var held []int
	var frames [][]byte
	for i := 2; i < n; i += 2 {
		held = append(held, i)
		frames = append(frames, tcpFrameFrom(w[i]))
	}
	heard := sackHeard{}
	_, toOut := pr.gb.round(Outside, frames...)
	heard.note(t, parseAll(t, toOut))
	c := pr.gb.e.Counters()
	f := pr.gb.e.flows[flowKey{in: addrB, out: addrA}]
	if d := c.Drops[DropReasmFull].Load(); d != 0 || f.rcv.held.len() != len(held) {
		t.Fatalf("G_B holds %d ranges of %d, reassembly_full %d", f.rcv.held.len(), len(held), d)
	}
	heard.check(t, w, held...)
	if len(toOut) != len(held)/2 { // three blocks to an ACK, the newest in each
		t.Errorf("%d duplicate ACKs for %d new ranges, want %d", len(toOut), len(held), len(held)/2)
	}
	if f.rcv.held.unnamed() || c.HeldWidened.Load() != 1 {
		t.Fatalf("unsent %x after the round, held_widened %d", f.rcv.held.mask(), c.HeldWidened.Load())
	}
	// R resends the holes: b gets the stream whole.
	var resent []segv
	for i := 1; i < n; i += 2 {
		resent = append(resent, w[i])
	}
	atB, _ := pr.toB(resent)
	end := uint32(isnA + 1 + 1000)
	for _, s := range atB {
		if s.seq == end && len(s.payload) > 1 {
			end += uint32(len(s.payload))
		}
	}
	if end != isnA+1+n*1000 || c.Drops[DropReasmFull].Load() != 0 {
		t.Fatalf("b got the stream up to %d of %d, reassembly_full %d", end-isnA-1, n*1000, c.Drops[DropReasmFull].Load())
	}
	if f.rcv.held.len() != 0 || f.rcv.held.big != nil || pr.gb.e.spanFreeN != 1 {
		t.Fatalf("holes filled: %d ranges, block kept %v, %d blocks for reuse", f.rcv.held.len(), f.rcv.held.big != nil, pr.gb.e.spanFreeN)
	}
}
