package engine

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

// A hole on the wire fills and G_B delivers the ten segments held behind
// it at once; b acknowledges them in five ACKs, as a host that gets them
// in several super-segments does. R must get one ACK for the release (the
// ACKs after the first would give a's sender, without SACK, RTT samples of
// data sent long before: release.go), and it gets it when b has
// acknowledged the whole release. G_B nudges b for that ACK (the release's
// last byte again, which b answers at once). If b stops short, the second
// Tick sends what b acknowledged (the first may come between the release
// and b's answer). b's repeat of the ACK R last got is never held. The same with
// SACK negotiated: a's sender may never have got G_B's SACK blocks usable
// (a middlebox shifting sequence numbers but not SACK blocks).
func TestReleaseACKsGoAsOne(t *testing.T) {
	for _, c := range []struct{ sack, short bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
		short := c.short
		pr, h := handshakeSACK(t, c.sack)
		wire := pr.aSendsMany(h, 11)
		if len(wire) != 11 {
			t.Fatalf("%d frames for 11 segments", len(wire))
		}
		// The first frame is lost; the other ten wait at G_B.
		if atB, _ := pr.toB(wire[1:]); len(atB) != 0 {
			t.Fatalf("b got %d segments past the hole", len(atB))
		}
		// Its retransmission fills the hole: 11 000 bytes reach b.
		atB, _ := pr.toB(wire[:1])
		if len(atB) < 2 {
			t.Fatalf("the release: %d segments to b", len(atB))
		}
		nudge := atB[len(atB)-1]
		if nudge.seq != isnA+1+10999 || !bytes.Equal(nudge.payload, []byte{0}) {
			t.Fatalf("after the release b got seq %x with %d bytes, want its last byte again (seq %x)", nudge.seq, len(nudge.payload), isnA+1+10999)
		}
		got := 0
		for _, s := range atB[:len(atB)-1] {
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
			out := pr.bAcks(h, a)
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
		if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
			t.Fatalf("the first Tick after the release sent %d segments to R", len(out))
		}
		_, out := pr.gb.tick(int64(time.Millisecond))
		switch {
		case !short && len(out) != 0:
			t.Fatalf("the second Tick after the release sent %d more segments to R", len(out))
		case short && (len(out) != 1 || out[0] == nil || parse(t, out[0]).ack != wire[7].seq+uint32(len(wire[7].payload))):
			t.Fatalf("the second Tick sent %d segments to R, want the ACK of the first 8000 bytes", len(out))
		}
		// Past the release, b's ACKs go at once again; a repeat is
		// suppressed as before.
		if out := pr.bAcks(h, acks[len(acks)-1]); len(out) != 0 {
			t.Fatalf("b's repeated ACK: %d segments to R", len(out))
		}
	}
}

// The shortest release: one segment held behind the hole. b, in quick-ACK
// mode, acknowledges the filling segment and the held one apart; the
// second ACK alone, of a segment a sent once and long before, would be a
// stale RTT sample (behind a middlebox that makes SACK useless, one of
// 0.7 s took a Linux sender's timeout to 780 ms for ten seconds). So G_B
// folds it too: b is nudged, and R gets one ACK of both. Before, only a
// release of more than two full segments was folded.
func TestShortReleaseACKsGoAsOne(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h := handshakeSACK(t, sack)
		wire := pr.aSendsMany(h, 2)
		if atB, _ := pr.toB(wire[1:]); len(atB) != 0 {
			t.Fatalf("b got %d segments past the hole", len(atB))
		}
		atB, _ := pr.toB(wire[:1])
		if got := stream(t, atB); len(got) != 2000 {
			t.Fatalf("the release delivered %d bytes, want 2000", len(got))
		}
		if nudge := atB[len(atB)-1]; nudge.seq != isnA+1+1999 || len(nudge.payload) != 1 {
			t.Fatalf("after the release b got seq %x with %d bytes, want its last byte again", nudge.seq, len(nudge.payload))
		}
		if out := pr.bAcks(h, isnA+1+1000); len(out) != 0 {
			t.Fatalf("sack=%v: b's ACK of the filling segment alone went to R: %d segments", sack, len(out))
		}
		out := pr.bAcks(h, isnA+1+2000)
		if want := wire[1].seq + uint32(len(wire[1].payload)); len(out) != 1 || out[0].ack != want {
			t.Fatalf("sack=%v: b's ACK of both: %d segments to R, want one ACK of both frames", sack, len(out))
		}
	}
}

// While a release's ACK is held, b reports a duplicate it got (R resent
// bytes b had; a sender after its retransmission timeout resends all it
// has outstanding, and hosts answer each with a D-SACK at their ACK,
// RFC 2883). The report goes to R, but it is no loss: the release goes on,
// and b's ACKs inside it stay folded. Before, the D-SACK ended the
// release, and every later ACK of b's went to R alone, stale RTT samples
// that took a Linux sender's timeout from 200 ms to seconds.
func TestDSACKKeepsReleaseFolded(t *testing.T) {
	pr, h := handshakeSACK(t, true)
	first := pr.aSendsMany(h, 2)
	if atB, _ := pr.toB(first); len(stream(t, atB)) != 2000 {
		t.Fatal("the first 2000 bytes did not reach b")
	}
	pr.bAcks(h, isnA+1+2000)
	wire := pr.aSendsMany(h, 11)
	if atB, _ := pr.toB(wire[1:]); len(atB) != 0 {
		t.Fatalf("b got %d segments past the hole", len(atB))
	}
	if atB, _ := pr.toB(wire[:1]); len(stream(t, atB)) != 11000 {
		t.Fatal("the release did not deliver 11000 bytes")
	}
	pr.tsB++
	opts := sackOpts(tsOpt(pr.tsB, pr.tsA), isnA+1+1000, isnA+1+2000)
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+2000, ackF, 509, opts, nil))
	if len(toOut) != 1 {
		t.Fatalf("b's D-SACK: %d segments to R, want its ACK", len(toOut))
	}
	if s := parse(t, toOut[0]); s.ack != first[1].seq+uint32(len(first[1].payload)) {
		t.Fatalf("b's D-SACK went to R with ACK %x, not what b acknowledged", s.ack)
	}
	if out := pr.bAcks(h, isnA+1+6000); len(out) != 0 {
		t.Fatalf("after a D-SACK, b's ACK inside the release went to R alone: %d segments", len(out))
	}
	out := pr.bAcks(h, isnA+1+13000)
	oneACKOfRelease(t, out, wire)
}

// The D-SACK of a resend arrives after b has acknowledged part of the
// release (R's sender resent what it had outstanding, and G_B redelivered
// it): it reports no loss, so it is held with b's ACK as any ACK inside
// the release, and R gets one ACK of the whole release.
func TestDSACKInsideReleaseHeld(t *testing.T) {
	pr, h, wire := releaseAckHeld(t, true)
	pr.tsB++
	opts := sackOpts(tsOpt(pr.tsB, pr.tsA), isnA+1+4000, isnA+1+5000)
	if _, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+6000, ackF, 509, opts, nil)); len(toOut) != 0 {
		t.Fatalf("b's D-SACK inside the release: %d segments to R, want none (it reports no loss)", len(toOut))
	}
	out := pr.bAcks(h, isnA+1+11000)
	oneACKOfRelease(t, out, wire)
}

// A frame from R arrives in order while b's ACK of a release is held (a
// sender in recovery sends new data behind its retransmission): G_B's ACK
// of the partial frame (custody) would tell R the part of the release b
// acknowledged. It waits with b's ACK, and R gets one ACK of the release
// and the new frame.
func TestInOrderDuringReleaseWaits(t *testing.T) {
	pr, h, wire := releaseAckHeld(t, false)
	more := pr.aSendsMany(h, 1)
	atB, back := pr.toB(more)
	if len(stream(t, atB)) == 0 {
		t.Fatal("the new frame did not reach b")
	}
	for _, s := range back {
		if s.ack != wire[0].seq {
			t.Fatalf("the new frame drew an ACK %x to R while b's ACK of the release is held (R last got %x)", s.ack, wire[0].seq)
		}
	}
	out := pr.bAcks(h, isnA+1+12000)
	if want := more[len(more)-1].seq + uint32(len(more[len(more)-1].payload)); len(out) != 1 || out[0].ack != want {
		t.Fatalf("b's ACK of the release and the new frame: %d segments to R, want one ACK of all", len(out))
	}
}

// b sends data of its own while a release's ACK is held, and its data
// segment acknowledges only the hole's filling segment. It goes to R with
// the ACK R last got (its window edge kept), and R gets one ACK of the
// whole release from b's answer to the nudge: an ACK on data gives a's
// sender an RTT sample as a pure one does, and after it the release's ACK
// covers only data sent once and long before.
func TestDataDuringReleaseKeepsItsACK(t *testing.T) {
	pr, h, wire := heldBehindHole(t, false)
	lastAck := wire[0].seq // G_B's duplicate ACKs: the hole
	atB, _ := pr.toB(wire[:1])
	if len(stream(t, atB)) != 11000 {
		t.Fatal("the release did not deliver 11000 bytes")
	}
	pr.tsB++
	fr := tcpFrame(addrB, addrA, h.bNext, isnA+1+1000, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), []byte("reply"))
	h.bNext += 5
	f := pr.gb.e.flows[flowKey{in: addrB, out: addrA}]
	toldEdge := f.rcv.toldEdge
	_, toOut := pr.gb.push(Inside, fr)
	d := one(t, "G_B's frame of b's data", toOut)
	if d.ack != lastAck {
		t.Fatalf("b's data went to R with ACK %x, want %x (what R last got): it acknowledges part of the release alone", d.ack, lastAck)
	}
	if edge := f.rcv.lastAckW + int64(d.win)<<f.wsLe; edge < toldEdge {
		t.Fatalf("b's data told R a right edge %d below the one it had (%d)", edge, toldEdge)
	}
	// More data as b takes in the release, its window wide open (G_B's
	// reassembly bounds the edge, here at 64 KiB past what it took in):
	// each segment keeps the right edge R was given, the scaled window
	// rounded down once, not twice.
	f.rcv.reasm.max = 64 << 10
	for a := uint32(1100); a <= 10900; a += 100 {
		pr.tsB++
		fr := tcpFrame(addrB, addrA, h.bNext, isnA+1+a, ackF|pshF, 0xffff, tsOpt(pr.tsB, pr.tsA), []byte("more"))
		h.bNext += 4
		toldEdge := f.rcv.toldEdge
		_, toOut := pr.gb.push(Inside, fr)
		d := one(t, "G_B's frame of b's data", toOut)
		if edge := f.rcv.lastAckW + int64(d.win)<<f.wsLe; d.ack != lastAck || edge < toldEdge {
			t.Fatalf("b's data (ACK %d) went to R with ACK %x and right edge %d, want ACK %x and at least %d", a, d.ack, edge, lastAck, toldEdge)
		}
	}
	out := pr.bAcks(h, isnA+1+11000)
	oneACKOfRelease(t, out, wire)
}

// While b's ACK of a release is held, a frame from a past a new hole
// comes: b has not acknowledged the release, so G_B tells R nothing yet (an
// ACK that then moved would make R's sender undo its recovery: dupack.go)
// and nudges b. b's answer, the whole release, goes to R as one ACK with
// the SACK block of the new hole. R never hears an older ACK than b gave.
func TestNewHoleDuringReleaseWaitsForHostsACK(t *testing.T) {
	pr, h, wire := releaseAckHeld(t, true)
	more := pr.aSendsMany(h, 2)
	atB, back := pr.toB(more[1:]) // the first is lost: a new hole
	if len(back) != 0 {
		t.Fatalf("G_B's answer to a frame past the new hole: %d segments to R, want none before b's ACK", len(back))
	}
	if len(atB) != 1 || atB[0].seq != isnA+1+10999 || len(atB[0].payload) != 1 {
		t.Fatalf("b got %d segments, want the nudge (the release's last byte again)", len(atB))
	}
	out := pr.bAcks(h, isnA+1+11000)
	if len(out) != 1 {
		t.Fatalf("b's answer: %d segments to R, want one ACK", len(out))
	}
	if want := wire[10].seq + uint32(len(wire[10].payload)); out[0].ack != want {
		t.Fatalf("G_B's ACK to R: %x, want %x (b acknowledged the whole release)", out[0].ack, want)
	}
	if b := sackBlocks(out[0].opts); len(b) != 1 || b[0][0] != more[1].seq {
		t.Fatalf("its SACK blocks %x, want the frame past the new hole", b)
	}
}

// b answers G_B's nudge after a release as Linux does with SACK: one ACK of
// everything, with a D-SACK block of the nudged byte. R gets that ACK at
// once, without the block (R never sent that byte twice); b's answer when
// it had already acknowledged the whole release goes nowhere (it would be
// a duplicate ACK on the wire).
func TestNudgeAnswerGoesToROnce(t *testing.T) {
	pr, h, wire := heldBehindHole(t, true)
	c := pr.gb.e.Counters()
	nudges, holes, dups := c.HostNudges.Load(), c.HolesFilled.Load(), c.WireDuplicates.Load()
	pr.toB(wire[:1])
	if n := c.HostNudges.Load() - nudges; n != 1 {
		t.Fatalf("%d nudges after the release, want 1", n)
	}
	if n := c.HolesFilled.Load() - holes; n != 1 {
		t.Fatalf("holes_filled went up by %d, want 1", n)
	}
	pr.toB(wire[:1]) // a's retransmission again: the path duplicated it
	if n := c.WireDuplicates.Load() - dups; n != 1 {
		t.Fatalf("wire_duplicates went up by %d, want 1", n)
	}
	if out := pr.bAcks(h, isnA+1+2000); len(out) != 0 {
		t.Fatalf("b's first ACK of the release went to R at once: %d segments", len(out))
	}
	dsack := func(ack uint32) []segv {
		pr.tsB++
		opts := append(tsOpt(pr.tsB, pr.tsA), 1, 1, 5, 10)
		opts = binary.BigEndian.AppendUint32(opts, isnA+1+10999)
		opts = binary.BigEndian.AppendUint32(opts, isnA+1+11000)
		_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, ack, ackF, 509, opts, nil))
		var out []segv
		for _, f := range toOut {
			out = append(out, parse(t, f))
		}
		return out
	}
	out := dsack(isnA + 1 + 11000)
	want := wire[10].seq + uint32(len(wire[10].payload))
	if len(out) != 1 || out[0].ack != want {
		t.Fatalf("b's answer to the nudge: %d segments to R, want one ACK of every frame", len(out))
	}
	if b := sackBlocks(out[0].opts); len(b) != 0 {
		t.Fatalf("the ACK to R carries SACK blocks %x: b's D-SACK of the nudge went on", b)
	}
	if out := dsack(isnA + 1 + 11000); len(out) != 0 {
		t.Fatalf("a second answer, with nothing new: %d segments to R", len(out))
	}
}

// A held ACK is aged from the first one held: b's later ACKs inside the
// same release (a host taking it in slowly, as its window opens) do not put
// off the Tick that sends R what b acknowledged.
func TestHeldAckAgesFromFirst(t *testing.T) {
	pr, h, wire := releaseAckHeld(t, true)
	if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
		t.Fatalf("the first Tick sent %d segments to R", len(out))
	}
	if out := pr.bAcks(h, isnA+1+4000); len(out) != 0 {
		t.Fatalf("b's second ACK of the release went to R at once: %d segments", len(out))
	}
	secondTickSends(t, pr, wire[3].seq+uint32(len(wire[3].payload)))
}

// secondTickSends checks that G_B's next Tick sends R exactly one segment,
// the held ACK of want.
func secondTickSends(t *testing.T, pr *pair, want uint32) {
	t.Helper()
	_, out := pr.gb.tick(int64(time.Millisecond))
	if len(out) != 1 || out[0] == nil || parse(t, out[0]).ack != want {
		t.Fatalf("the second Tick sent %d segments to R, want the held ACK %x", len(out), want)
	}
}

// A duplicate ACK to R sends b's held ACK with it (dupAckR) while the flow
// stays listed for the Tick; b's first ACK of a second release before that
// Tick is held as ever, and goes at the second Tick after, not the first.
// Before, the flow was listed twice, and the first Tick sent it (a review).
// Without SACK, where each duplicate ACK goes at once (dupack.go).
func TestSecondReleaseAfterDupAckWaitsTwoTicks(t *testing.T) {
	pr, h, wire := heldBehindHole(t, false)
	pr.toB(wire[:1])
	if out := pr.bAcks(h, isnA+1+2000); len(out) != 0 {
		t.Fatalf("b's first ACK of release 1 went to R at once: %d segments", len(out))
	}
	more := pr.aSendsMany(h, 6)
	if _, back := pr.toB(more[1:]); len(back) == 0 {
		t.Fatal("no duplicate ACK to R for frames past a new hole")
	}
	pr.bAcks(h, isnA+1+11000) // b's answer to the nudge of release 1
	nextReleaseWaitsTwoTicks(t, pr, h, more[0], isnA+1+13000, more[1].seq+uint32(len(more[1].payload)))
}

// nextReleaseWaitsTwoTicks has fill deliver a second release, b acknowledge
// part of it (ack), and checks that R gets b's ACK (want on the wire) at the
// second Tick after, not before. It returns what reached b.
func nextReleaseWaitsTwoTicks(t *testing.T, pr *pair, h *hosts, fill segv, ack, want uint32) []segv {
	t.Helper()
	atB, _ := pr.toB([]segv{fill})
	if len(atB) == 0 {
		t.Fatal("release 2 delivered nothing")
	}
	if out := pr.bAcks(h, ack); len(out) != 0 {
		t.Fatalf("b's first ACK of release 2 went to R at once: %d segments", len(out))
	}
	if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
		t.Fatalf("the first Tick after release 2 sent %d segments to R", len(out))
	}
	secondTickSends(t, pr, want)
	return atB
}

// While b's ACK of a release is held, a frame from a past a new hole makes
// G_B tell R what it has: the duplicate ACK carries what b acknowledged,
// held or not, never an older ACK number (R would take the release's
// retransmission for lost again). Without SACK, where each duplicate ACK
// goes at once (dupack.go).
func TestDupAckDuringReleaseCarriesHeldAck(t *testing.T) {
	pr, h, wire := releaseAckHeld(t, false)
	more := pr.aSendsMany(h, 2)
	_, back := pr.toB(more[1:]) // the first is lost: a new hole
	if len(back) != 1 {
		t.Fatalf("G_B's answer to a frame past the new hole: %d segments, want one ACK", len(back))
	}
	if want := wire[1].seq + uint32(len(wire[1].payload)); back[0].ack != want {
		t.Fatalf("G_B's ACK to R: %x, want %x (b acknowledged the first two frames)", back[0].ack, want)
	}
}

// heldBehindHole has a send 11 segments of 1000 bytes whose first is lost:
// G_B holds the other ten, and wire[0], resent, fills the hole (a release
// of 11,000 bytes). sack false: as if a SYN had come without
// SACK-permitted.
func heldBehindHole(t *testing.T, sack bool) (*pair, *hosts, []segv) {
	pr, h := handshakeSACK(t, sack)
	wire := pr.aSendsMany(h, 11)
	if atB, _ := pr.toB(wire[1:]); len(atB) != 0 {
		t.Fatalf("b got %d segments past the hole", len(atB))
	}
	return pr, h, wire
}

// handshakeSACK is handshake with both appliances' flow taking SACK as
// negotiated or not (false: as if a SYN had come without SACK-permitted).
func handshakeSACK(t *testing.T, sack bool) (*pair, *hosts) {
	pr := handshake(t)
	for _, f := range []*flow{pr.ga.e.flows[flowKey{in: addrA, out: addrB}], pr.gb.e.flows[flowKey{in: addrB, out: addrA}]} {
		f.sackOK = sack
	}
	return pr, new(newHosts())
}

// stream returns the bytes of segs, one host's segments in order, as its
// TCP takes them: a segment reaching below the bytes before it (the nudge
// after a release repeats its last byte: release.go) adds only what is new,
// and what it repeats must equal the first copy.
func stream(t *testing.T, segs []segv) []byte {
	t.Helper()
	var got []byte
	for _, s := range segs {
		if len(got) == 0 && len(s.payload) > 0 && s.seq != segs[0].seq {
			t.Fatalf("the stream starts at %x, its first segment at %x", s.seq, segs[0].seq)
		}
		off := int(int32(s.seq - segs[0].seq))
		if off < 0 || off > len(got) {
			t.Fatalf("segment at %x: %d bytes past the stream's end (a hole)", s.seq, off-len(got))
		}
		over := min(len(got)-off, len(s.payload))
		if !bytes.Equal(got[off:off+over], s.payload[:over]) {
			t.Fatalf("segment at %x repeats bytes that differ from the first copy", s.seq)
		}
		got = append(got, s.payload[over:]...)
	}
	return got
}

// frames parses frames (to one host).
func frames(t *testing.T, fs [][]byte) []segv {
	t.Helper()
	segs := make([]segv, len(fs))
	for i, f := range fs {
		segs[i] = parse(t, f)
	}
	return segs
}

// R resends a frame b has acknowledged (G_B's ACK of it was lost, and R's
// timer fired again). G_B's answer echoes the resend's TSval (RFC 7323
// §4.3: the segment starts below Last.ACK.sent, so its TSval becomes
// TS.Recent), and R's sender measures the round trip of the resend. Before,
// the answer echoed the TSval of the segment before it: behind a box that
// makes SACK useless, a sender whose ACK was lost took the 0.43 s since
// its first retransmission as its RTT.
func TestDuplicateAnswerEchoesItsTSval(t *testing.T) {
	pr := handshake(t)
	h := new(newHosts())
	wire := pr.aSendsMany(h, 2)
	if atB, _ := pr.toB(wire); len(stream(t, atB)) != 2000 {
		t.Fatal("the 2000 bytes did not reach b")
	}
	pr.bAcks(h, isnA+1+2000)
	again := wire[0] // wholly below what R was told
	again.opts = append([]byte{}, wire[0].opts...)
	ts := option(again.opts, 8)[2:] // kind, length, TSval, TSecr
	tsval := binary.BigEndian.Uint32(ts) + 500
	binary.BigEndian.PutUint32(ts, tsval)
	if binary.BigEndian.Uint32(option(again.opts, 8)[2:]) != tsval {
		t.Fatal("the test did not change the resend's TSval")
	}
	_, back := pr.toB([]segv{again})
	if len(back) != 1 {
		t.Fatalf("G_B's answer to the resent frame: %d segments, want one ACK", len(back))
	}
	r := back[0]
	if ecr := binary.BigEndian.Uint32(option(r.opts, 8)[6:]); ecr != tsval {
		t.Fatalf("G_B's answer echoes TSval %d, want the resend's %d", ecr, tsval)
	}
}

// releaseAckHeld is heldBehindHole with the hole filled (the release, 11000
// bytes, reached b) and b's first ACK of it, 2000 bytes, held.
func releaseAckHeld(t *testing.T, sack bool) (*pair, *hosts, []segv) {
	t.Helper()
	pr, h, wire := heldBehindHole(t, sack)
	if atB, _ := pr.toB(wire[:1]); len(stream(t, atB)) != 11000 {
		t.Fatal("the release did not deliver 11000 bytes")
	}
	if out := pr.bAcks(h, isnA+1+2000); len(out) != 0 {
		t.Fatalf("b's first ACK of the release went to R at once: %d segments", len(out))
	}
	return pr, h, wire
}

// oneACKOfRelease checks what b's ACK of heldBehindHole's whole release
// sent R: one ACK of every frame.
func oneACKOfRelease(t *testing.T, out, wire []segv) {
	t.Helper()
	if want := wire[10].seq + uint32(len(wire[10].payload)); len(out) != 1 || out[0].ack != want {
		t.Fatalf("b's ACK of the whole release: %d segments to R, want one ACK of every frame", len(out))
	}
}

// R's sender resends what it had outstanding (its timeout fired: it resends
// from the hole on, go-back-N) while b's ACK of the release is held. A
// resend of a frame b acknowledged is not answered: the answer would tell R
// the part of the release b acknowledged so far, and the release's ACK
// would then cover only frames R sent once and long before, a stale RTT
// sample (0.87 s in a capture behind a box that makes SACK useless). A
// resend of a frame b has not acknowledged goes to b again, as before. R
// gets one ACK of the release.
func TestResendDuringReleaseWaits(t *testing.T) {
	for _, sack := range []bool{false, true} {
		pr, h, wire := releaseAckHeld(t, sack)
		if _, back := pr.toB(wire[1:2]); len(back) != 0 {
			t.Fatalf("sack=%v: R's resend of a frame b acknowledged was answered with ACK %x while b's ACK of the release was held",
				sack, back[0].ack)
		}
		atB, back := pr.toB(wire[5:6])
		if len(back) != 0 || len(atB) != 1 || atB[0].seq != isnA+1+5000 {
			t.Fatalf("sack=%v: R's resend of a frame b has not acknowledged: %d segments to b, %d to R; want it to b again", sack, len(atB), len(back))
		}
		out := pr.bAcks(h, isnA+1+11000)
		oneACKOfRelease(t, out, wire)
	}
}

// b's ACK of a release was held over a Tick, then b acknowledged the whole
// release (its ACK went to R, ending the release). The next hole fills
// (R's sender resends from the first hole on after its timeout, and reaches
// the second): b's first ACK of that release is held for two Ticks, as any.
// Before, the first release's state lingered, the next Tick sent the second
// release's first ACK at once (in a capture, a fraction of a millisecond
// after b sent it), and b's later ACKs of it went to R one by one, the last
// a stale RTT sample.
func TestNextReleaseAfterHeldTickWaitsTwoTicks(t *testing.T) {
	pr, h := handshakeSACK(t, true)
	wire := pr.aSendsMany(h, 14)
	// Two holes: frames 0 and 10 are lost, G_B holds the others.
	if atB, _ := pr.toB(append(slices.Clone(wire[1:10]), wire[11:]...)); len(atB) != 0 {
		t.Fatalf("b got %d segments past the holes", len(atB))
	}
	if atB, _ := pr.toB(wire[:1]); len(stream(t, atB)) != 10000 {
		t.Fatal("the first release did not deliver 10000 bytes")
	}
	if out := pr.bAcks(h, isnA+1+2000); len(out) != 0 {
		t.Fatalf("b's first ACK of the first release went to R at once: %d segments", len(out))
	}
	if _, out := pr.gb.tick(int64(time.Millisecond)); len(out) != 0 {
		t.Fatalf("the first Tick sent %d segments to R", len(out))
	}
	if out := pr.bAcks(h, isnA+1+10000); len(out) != 1 || out[0].ack != wire[10].seq {
		t.Fatalf("b's ACK of the whole first release: %d segments to R, want one ACK of its frames", len(out))
	}
	atB := nextReleaseWaitsTwoTicks(t, pr, h, wire[10], isnA+1+12000, wire[11].seq+uint32(len(wire[11].payload)))
	if len(stream(t, atB)) != 4000 {
		t.Fatal("the second release did not deliver 4000 bytes")
	}
}

// b acknowledges the whole release on data (a host sending both ways
// answers the nudge so), and that data waits at G_B for R's window, shut:
// R gets the ACK of the release at once, in a pure ACK. Before, the ACK
// waited for R's window to open or R's retransmission timeout (a review
// of the change that ends a release with nothing held; before that change
// the next Tick sent it).
func TestReleaseEndOnWaitingDataAcksR(t *testing.T) {
	pr, h, wire := releaseAckHeld(t, false)
	f := pr.gb.e.flows[flowKey{in: addrB, out: addrA}]
	f.winR = 0 // R's window toward b is shut
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+11000, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), []byte("reply")))
	oneACKOfRelease(t, frames(t, toOut), wire)
}
