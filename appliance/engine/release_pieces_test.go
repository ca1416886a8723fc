package engine

import (
	"slices"
	"testing"
	"time"
)

// The last paths by which R heard a release piece by piece (release.go):
// each ACK after the release's first covers only frames R sent once and
// long before, a stale RTT sample for R's sender.

// bAcksBoth is bAcks returning what reached b too.
func (pr *pair) bAcksBoth(h *hosts, ack uint32) (atB, toR []segv) {
	pr.t.Helper()
	pr.tsB++
	toIn, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, ack, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	for _, f := range toIn {
		atB = append(atB, parse(pr.t, f))
	}
	for _, f := range toOut {
		toR = append(toR, parse(pr.t, f))
	}
	return atB, toR
}

// deliverCap makes G_B's delivery ring n bytes.
func (pr *pair) deliverCap(n int) {
	pr.t.Helper()
	cfg := pr.gb.e.Config()
	cfg.DeliverBytes = n
	if err := pr.gb.e.Reconfigure(cfg); err != nil {
		pr.t.Fatal(err)
	}
}

// bTakesRelease has b acknowledge first bytes of a release of 11000 (0:
// all it has), then all it has each time, answering each piece and nudge,
// until it has acknowledged all 11000 (at most 20 ACKs); have is what b
// got before. It returns what b got and what went to R.
func (pr *pair) bTakesRelease(h *hosts, first, have int) (int, []segv) {
	pr.t.Helper()
	var toR []segv
	ack := first
	if ack == 0 {
		ack = have
	}
	for i := 0; i < 20; i++ {
		atB, out := pr.bAcksBoth(h, isnA+1+uint32(ack))
		toR = append(toR, out...)
		for _, s := range atB {
			have = max(have, int(s.seq-isnA-1)+len(s.payload))
		}
		if ack == 11000 {
			break
		}
		ack = have
	}
	return have, toR
}

// ackMoves lists where R's ACK moved to in toR, relative to from, the ACK
// R had before (which it must never hear go back).
func ackMoves(t *testing.T, from uint32, toR []segv) []uint32 {
	t.Helper()
	var moved []uint32
	last := from
	for _, s := range toR {
		switch d := int32(s.ack - last); {
		case d > 0:
			last = s.ack
			moved = append(moved, last-from)
		case d < 0:
			t.Fatalf("R heard ACK %x after %x", s.ack, last)
		}
	}
	return moved
}

// While b's ACK of a release is held, R's next frame comes in order and
// fills part of a later hole (frames 11 and 12 were lost, 13 waits past
// them; a sender in recovery resends them in order). G_B told R nothing
// of it while b's ACK is held: its ACK would have said the part of the
// release b had acknowledged (ackCustody's duplicate ACK, which sent the
// held ACK and ended the release), and every later ACK of b's would have
// gone to R alone. With SACK, the blocks of what is held past the hole go
// with the release's one ACK (RFC 2018 §4 asks them of every ACK sent, and
// none is), and b is nudged for it; without SACK there are no blocks to
// tell, and the segment is in order: nothing calls for a duplicate ACK
// (RFC 5681 §4.2 asks an immediate ACK of it, which is the release's).
func TestInOrderPastLaterHoleDuringReleaseWaits(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h := handshakeSACK(t, sack)
		wire := pr.aSendsMany(h, 14)
		if atB, _ := pr.toB(append(slices.Clone(wire[1:11]), wire[13])); len(atB) != 0 {
			t.Fatalf("b got %d segments past the holes", len(atB))
		}
		if atB, _ := pr.toB(wire[:1]); len(stream(t, atB)) != 11000 {
			t.Fatal("the release did not deliver 11000 bytes")
		}
		if out := pr.bAcks(h, isnA+1+2000); len(out) != 0 {
			t.Fatalf("sack=%v: b's first ACK of the release went to R at once: %d segments", sack, len(out))
		}
		atB, back := pr.toB(wire[11:12])
		if len(atB) == 0 || atB[0].seq != isnA+1+11000 || len(atB[0].payload) != 1000 {
			t.Fatalf("sack=%v: frame 11 did not reach b", sack)
		}
		if moved := ackMoves(t, wire[0].seq, back); len(moved) != 0 {
			t.Fatalf("sack=%v: frame 11 in order drew ACKs to R that moved to %v while b's ACK of the release was held", sack, moved)
		}
		if sack {
			if n := atB[len(atB)-1]; len(atB) != 2 || n.seq != isnA+1+11999 || len(n.payload) != 1 {
				t.Fatalf("b got %d segments, want frame 11 and the nudge for its ACK (its last byte again)", len(atB))
			}
		}
		out := pr.bAcks(h, isnA+1+12000)
		if len(out) != 1 || out[0].ack != wire[12].seq {
			t.Fatalf("sack=%v: b's ACK of the release and frame 11: %d segments to R, want one ACK of all", sack, len(out))
		}
		if b := sackBlocks(out[0].opts); sack && (len(b) != 1 || b[0][0] != wire[13].seq) || !sack && len(b) != 0 {
			t.Fatalf("sack=%v: the release's ACK carries SACK blocks %x, want the frame past the hole's (SACK only)", sack, b)
		}
		if moved := ackMoves(t, wire[0].seq, append(back, out...)); len(moved) != 1 {
			t.Fatalf("sack=%v: R's ACK moved to %v, want once", sack, moved)
		}
	}
}

// A release larger than G_B's delivery ring reaches b in pieces: the
// frames that do not fit wait at G_B (roomWait) and go as b's ACKs free
// room. They were held behind the hole like the rest, sent once and long
// before: R gets one ACK when b has acknowledged all of them, b nudged at
// the end of each piece. Before, b's first ACK, which drained the next
// piece, went to R on its way (ackCustody ran before ackRelease), and the
// release ended with its first piece: b's ACKs of the rest went to R one
// by one.
func TestRingLimitedReleaseACKsGoAsOne(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h, wire := heldBehindHole(t, sack)
		pr.deliverCap(4096)
		atB, toR := pr.toB(wire[:1])
		have := len(stream(t, atB))
		if have == 0 || have >= 11000 {
			t.Fatalf("sack=%v: the release's first piece was %d bytes, want part of 11000", sack, have)
		}
		// b acknowledges part of the first piece (every second segment),
		// then whatever it has, answering each nudge.
		have, out := pr.bTakesRelease(h, 2000, have)
		toR = append(toR, out...)
		if have != 11000 {
			t.Fatalf("sack=%v: b got %d bytes of the release", sack, have)
		}
		if sack {
			// b stops answering after its first ACK, which drained the
			// second piece: that ACK goes at the second Tick, as any.
			pr, h, wire := heldBehindHole(t, sack)
			pr.deliverCap(4096)
			pr.toB(wire[:1])
			if atB, out := pr.bAcksBoth(h, isnA+1+2000); len(atB) == 0 || len(out) != 0 {
				t.Fatalf("b's first ACK: %d segments to b, %d to R; want the next piece and none", len(atB), len(out))
			}
			if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
				t.Fatalf("the first Tick sent %d segments to R", len(out))
			}
			secondTickSends(t, pr, wire[1].seq+uint32(len(wire[1].payload)))
		}
		if moved := ackMoves(t, wire[0].seq, toR); len(moved) != 1 || moved[0] != wire[10].seq+uint32(len(wire[10].payload))-wire[0].seq {
			t.Fatalf("sack=%v: R's ACK moved to %v, want once, to the release's end", sack, moved)
		}
	}
}

// A panic recovered elsewhere (another flow's: recover.go) while b's ACK of
// a release is held, and a resend from R left unanswered for it
// (duplicate): R still gets the held ACK at the second Tick. Before, the
// recovery forgot every held ACK, and R heard nothing until b's next ACK
// or its own retransmission timeout.
func TestHeldAckSurvivesPanicElsewhere(t *testing.T) {
	pr, _, wire := releaseAckHeld(t, true)
	if _, back := pr.toB(wire[1:2]); len(back) != 0 {
		t.Fatalf("R's resend was answered with ACK %x while b's ACK of the release was held", back[0].ack)
	}
	pr.gb.panics = 1
	pr.gb.e.recovered("injected engine bug", pr.gb.now, nil, 0) // e.cur: none of this flow's
	if n := pr.gb.e.NumFlows(); n != 1 {
		t.Fatalf("%d flows after a panic elsewhere, want 1", n)
	}
	if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
		t.Fatalf("the first Tick sent %d segments to R", len(out))
	}
	secondTickSends(t, pr, wire[1].seq+uint32(len(wire[1].payload)))
}

// bAcksWin is bAcksBoth with b's window (in b's scaled units: shift 7).
func (pr *pair) bAcksWin(h *hosts, ack uint32, win uint16) (atB, toR []segv) {
	pr.t.Helper()
	pr.tsB++
	toIn, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, ack, ackF, win, tsOpt(pr.tsB, pr.tsA), nil))
	for _, f := range toIn {
		atB = append(atB, parse(pr.t, f))
	}
	for _, f := range toOut {
		toR = append(toR, parse(pr.t, f))
	}
	return atB, toR
}

// A release larger than b's receive window reaches b in pieces: what does
// not fit waits at G_B (pushPlain) and goes as b's ACKs open the window
// (RFC 9293 §3.8.6). It was held behind the hole like the rest, sent once
// and long before: R gets one ACK when b has acknowledged all of it, b
// nudged at the end of each piece. Before, the release ended with b's ACK
// of its first piece, and b's ACKs of the rest went to R one by one, stale
// RTT samples. b stopping short, its held ACK still goes at the second
// Tick after it was first held.
func TestWindowLimitedReleaseACKsGoAsOne(t *testing.T) {
	const win = 32 // 4096 bytes
	for _, c := range []struct{ sack, ring bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		sack := c.sack
		pr, h, wire := heldBehindHole(t, sack)
		cfg := pr.gb.e.Config()
		if c.ring {
			// The ring too holds less than the release: one ACK of b's
			// lets a piece go from the ring and one from the frames
			// that waited for room, and b gets one nudge after both.
			cfg.DeliverBytes = 6144
			if err := pr.gb.e.Reconfigure(cfg); err != nil {
				t.Fatal(err)
			}
		}
		if atB, _ := pr.bAcksWin(h, isnA+1, win); len(atB) != 0 {
			t.Fatalf("sack=%v: b's window update drew %d segments to b", sack, len(atB))
		}
		atB, toR := pr.toB(wire[:1])
		have := len(stream(t, atB))
		if have == 0 || have > win<<7 {
			t.Fatalf("sack=%v: the release's first piece was %d bytes, want at most b's window, %d", sack, have, win<<7)
		}
		// b acknowledges part of the first piece (every second segment),
		// then whatever it has, answering each nudge.
		for ack, i := 2000, 0; ; i++ {
			atB, out := pr.bAcksWin(h, isnA+1+uint32(ack), win)
			toR = append(toR, out...)
			nudged, nudges := false, 0
			for _, s := range atB {
				end := int(s.seq-isnA-1) + len(s.payload)
				if end-ack > win<<7 {
					t.Fatalf("sack=%v: G_B sent b up to %d, past its window's edge %d", sack, end, ack+win<<7)
				}
				nudged = len(s.payload) == 1 && end == have
				if nudged {
					nudges++
				}
				have = max(have, end)
			}
			if len(atB) > 0 && (!nudged || nudges != 1) {
				t.Fatalf("sack=%v ring=%v: b got the next piece to %d and %d nudges, want one after it", sack, c.ring, have, nudges)
			}
			if ack == 11000 || i == 20 {
				break
			}
			ack = have
		}
		if have != 11000 {
			t.Fatalf("sack=%v: b got %d bytes of the release", sack, have)
		}
		if moved := ackMoves(t, wire[0].seq, toR); len(moved) != 1 || moved[0] != wire[10].seq+uint32(len(wire[10].payload))-wire[0].seq {
			t.Fatalf("sack=%v ring=%v: R's ACK moved to %v, want once, to the release's end", sack, c.ring, moved)
		}

		// b stops answering after its first ACK, which let the second
		// piece go: that ACK goes at the second Tick, as any.
		pr, h, wire = heldBehindHole(t, sack)
		if err := pr.gb.e.Reconfigure(cfg); err != nil {
			t.Fatal(err)
		}
		pr.bAcksWin(h, isnA+1, win)
		pr.toB(wire[:1])
		if atB, out := pr.bAcksWin(h, isnA+1+2000, win); len(atB) == 0 || len(out) != 0 {
			t.Fatalf("sack=%v: b's first ACK: %d segments to b, %d to R; want the next piece and none", sack, len(atB), len(out))
		}
		if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
			t.Fatalf("sack=%v: the first Tick sent %d segments to R", sack, len(out))
		}
		secondTickSends(t, pr, wire[1].seq+uint32(len(wire[1].payload)))
	}
}

// b takes in a ring-limited release and shrinks its window to nothing with
// its ACK of all it got: G_B's ring takes in every waiting byte for b, and
// sends b none. The release is not acknowledged whole (what the ring took
// in waits for b's window): b's ACK is held and goes at the second Tick,
// alone. Before, ackCustody sent R a pure ACK repeating the ACK R already
// had (ackR while the ACK was held: ackWinToR gives what R last got).
func TestRingLimitedReleaseShutWindowHeldOnce(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h, wire := heldBehindHole(t, sack)
		pr.deliverCap(4096)
		atB, toR := pr.toB(wire[:1])
		if n := len(stream(t, atB)); n == 0 || n >= 11000 {
			t.Fatalf("sack=%v: the release's first piece was %d bytes, want part of 11000", sack, n)
		}
		// Window 31 << 7: b's right edge at 5968.
		_, out := pr.bAcksWin(h, isnA+1+2000, 31)
		toR = append(toR, out...)
		atB, out = pr.bAcksWin(h, isnA+1+5968, 0)
		toR = append(toR, out...)
		if len(atB) != 0 {
			t.Fatalf("sack=%v: b got %d segments into its shut window", sack, len(atB))
		}
		if len(out) != 0 {
			t.Fatalf("sack=%v: b's ACK with its window shut drew %d segments to R, want it held", sack, len(out))
		}
		if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
			t.Fatalf("sack=%v: the first Tick sent %d segments to R", sack, len(out))
		}
		_, second := pr.gb.tick(int64(time.Millisecond))
		if len(second) != 1 {
			t.Fatalf("sack=%v: the second Tick sent %d segments to R, want b's held ACK", sack, len(second))
		}
		if moved := ackMoves(t, wire[0].seq, append(toR, parseAll(t, second)...)); len(moved) != 1 {
			t.Fatalf("sack=%v: R's ACK moved to %v, want once", sack, moved)
		}
	}
}

// R's bytes that come after the hole filled are not part of the release,
// though they wait for b's window behind it: b's ACK of the whole release
// goes to R at once, and b's ACKs of the fresh bytes after it go as they
// come, with no nudge. Before, each ACK of b's that let fresh bytes go
// moved the release's end on (startRelease from hostSegment): R heard
// nothing until the second Tick, its right edge frozen meanwhile, and b
// got a nudge per ACK.
func TestFreshBytesAfterReleaseNotHeld(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h, wire := heldBehindHole(t, sack)
		pr.bAcksWin(h, isnA+1, 86) // 11008 bytes: the release fits
		if atB, _ := pr.toB(wire[:1]); len(stream(t, atB)) != 11000 {
			t.Fatalf("sack=%v: the release did not reach b whole", sack)
		}
		have := 11000
		got := func(atB []segv) (nudges int) {
			for _, s := range atB {
				if len(s.payload) == 1 {
					nudges++
				}
				have = max(have, int(s.seq-isnA-1)+len(s.payload))
			}
			return nudges
		}
		atB, toR := pr.toB(pr.aSendsMany(h, 3)) // 8 bytes fit b's window
		got(atB)
		atB, out := pr.bAcksWin(h, isnA+1+11000, 24)
		if got(atB) != 0 {
			t.Fatalf("sack=%v: b was nudged for fresh bytes", sack)
		}
		if len(out) != 1 || out[0].ack != wire[10].seq+uint32(len(wire[10].payload)) {
			t.Fatalf("sack=%v: b's ACK of the whole release drew %d segments to R, want that ACK", sack, len(out))
		}
		toR = append(toR, out...)
		// b, a slow reader, acknowledges all it has, 1024 bytes of window
		// at a time, as R sends more.
		for i := range 4 {
			atB, back := pr.toB(pr.aSendsMany(h, 3))
			got(atB)
			atB, out := pr.bAcksWin(h, isnA+1+uint32(have), 8)
			if got(atB) != 0 || len(out) == 0 {
				t.Fatalf("sack=%v: b's ACK %d of fresh bytes: %d segments to R, a nudge to b: %v", sack, i, len(out), got(atB) != 0)
			}
			toR = append(toR, append(back, out...)...)
		}
		if moved := ackMoves(t, wire[0].seq, toR); len(moved) < 5 {
			t.Fatalf("sack=%v: R's ACK moved to %v, want at the release's end and at each ACK of b's after", sack, moved)
		}
	}
}

// A ring-limited release that b ends with its window shut, frames past a
// later hole held: with SACK, the ACK R gets at the second Tick names them,
// and nothing else goes to R (no duplicate ACK owed at the round's end:
// b has no bytes left to acknowledge, so there is no nudge to answer).
func TestShutWindowReleaseLaterHoleOneACK(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h := handshakeSACK(t, sack)
		wire := pr.aSendsMany(h, 14)
		pr.toB(append(slices.Clone(wire[1:11]), wire[13]))
		pr.deliverCap(4096)
		_, toR := pr.toB(wire[:1])
		_, out := pr.bAcksWin(h, isnA+1+2000, 31)
		toR = append(toR, out...)
		_, out = pr.bAcksWin(h, isnA+1+5968, 0)
		toR = append(toR, out...)
		_, first := pr.gb.tick(int64(time.Millisecond))
		_, second := pr.gb.tick(int64(time.Millisecond))
		toR = append(toR, parseAll(t, append(first, second...))...)
		if len(toR) != 1 {
			t.Fatalf("sack=%v: %d segments to R, want b's one ACK", sack, len(toR))
		}
		if b := sackBlocks(toR[0].opts); sack && (len(b) == 0 || b[0][0] != wire[13].seq) || !sack && len(b) != 0 {
			t.Fatalf("sack=%v: the ACK to R carries SACK blocks %x, want the held frame's first (SACK only)", sack, b)
		}
	}
}

// A ring-limited release whose every piece b acknowledges whole at once (a
// piece it got as one super-segment, or its answer to the nudge): R hears
// one ACK, at the release's end. An earlier version let each piece's ACK
// through: drain opened the next piece and ackCustody ran before the
// release's end moved on to it, with b's ACK at that end (a review).
func TestRingLimitedReleaseWholePieceACKsGoAsOne(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h, wire := heldBehindHole(t, sack)
		pr.deliverCap(4096)
		atB, toR := pr.toB(wire[:1])
		have, out := pr.bTakesRelease(h, 0, len(stream(t, atB)))
		toR = append(toR, out...)
		if have != 11000 {
			t.Fatalf("sack=%v: b got %d bytes of the release", sack, have)
		}
		if moved := ackMoves(t, wire[0].seq, toR); len(moved) != 1 {
			t.Fatalf("sack=%v: R's ACK moved to %v, want once, to the release's end", sack, moved)
		}
	}
}
