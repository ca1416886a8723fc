package engine

import (
	"bytes"
	"testing"
)

// A SACK block from R that reaches down to (or below) its cumulative ACK
// is stale (a delayed duplicate of an older ACK) or a D-SACK: the bytes it
// names from the ACK on are not what R holds beyond a hole. Translated, its
// first whole frame would start at a's ACK, a block that says "received"
// of the very byte the ACK says is missing; a lenient sender would mark it
// and never resend it. It is not passed on.
func TestSACKBlockReachingTheAckNotForwarded(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w1 := pr.aSends(&h, bytes.Repeat([]byte{1}, 100), 0)[0]
	w2 := pr.aSends(&h, bytes.Repeat([]byte{2}, 200), 0)[0]
	w3 := pr.aSends(&h, bytes.Repeat([]byte{3}, 300), pshF)[0]
	rAck := func(ack uint32, opts []byte) [][]byte {
		toIn, _ := pr.ga.push(Outside, tcpFrame(addrB, addrA, isnB+1+74, ack, ackF, 509, opts, nil))
		return toIn
	}
	pr.tsB++
	rAck(w2.seq, tsOpt(pr.tsB, pr.tsA)) // R has w1
	pr.tsB++
	end3 := w3.seq + uint32(len(w3.payload))
	got := rAck(w2.seq, sackOpts(tsOpt(pr.tsB, pr.tsA), w1.seq, end3))
	a := one(t, "R's duplicate ACK at a", got)
	if b := sackBlocks(a.opts); len(b) != 0 {
		t.Fatalf("a got ack %x with SACK %x; want no block (R's block reaches down to its ACK)", a.ack, b)
	}
	// A block above the ACK still goes, as whole frames.
	pr.tsB++
	a = one(t, "R's duplicate ACK with a proper block", rAck(w2.seq, sackOpts(tsOpt(pr.tsB, pr.tsA), w3.seq, end3)))
	if b := sackBlocks(a.opts); len(b) != 1 || b[0][0] != a.ack+200 || b[0][1] != a.ack+500 {
		t.Fatalf("a got ack %x with SACK %x, want [%x %x)", a.ack, b, a.ack+200, a.ack+500)
	}
}

// R's data segment carries SACK blocks (R holds some of a's bytes past a
// hole and sends data of its own, as a plain receiver that also sends
// does, RFC 2018 §4): a gets them, in an ACK of their own beside the
// plaintext. A sender counts no duplicate ACK in a segment with data, so
// without them a would learn of the hole only from its probe or its RTO.
func TestSACKOnFarDataReachesHost(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.aSends(&h, bytes.Repeat([]byte{1}, 100), 0)
	w2 := pr.aSends(&h, bytes.Repeat([]byte{2}, 200), 0)[0]
	w3 := pr.aSends(&h, bytes.Repeat([]byte{3}, 300), pshF)[0]
	// b sends data; on its way R's ACK says it has w1 and SACKs w3.
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), []byte("reply")))
	x := one(t, "b's data on the wire", toOut)
	x.ack = w2.seq
	x.opts = sackOpts(x.opts, w3.seq, w3.seq+uint32(len(w3.payload)))
	toIn, _ := pr.ga.push(Outside, tcpFrameFrom(x))
	var data, blocks int
	for _, fr := range toIn {
		s := parse(t, fr)
		if len(s.payload) > 0 {
			data++
			if !bytes.Equal(s.payload, []byte("reply")) {
				t.Fatalf("a got %q", s.payload)
			}
			continue
		}
		b := sackBlocks(s.opts)
		if len(b) != 1 || b[0][0] != s.ack+200 || b[0][1] != s.ack+500 {
			t.Fatalf("a got an ACK %x with SACK %x, want [%x %x)", s.ack, b, s.ack+200, s.ack+500)
		}
		blocks++
	}
	if data != 1 || blocks != 1 {
		t.Fatalf("a got %d data segments and %d ACKs with SACK, want 1 and 1", data, blocks)
	}
}

// G_B holds R's bytes past a hole while b sends data: a plain receiver's
// data segments would carry SACK blocks of what it holds (RFC 2018 §4);
// G_B's have no room for them, so each round of b's data is followed by a
// duplicate ACK with them. Before, one lost duplicate ACK left R's sender
// blind to the hole for as long as b sent.
func TestHostDataWhileHoldingCarriesSACK(t *testing.T) {
	pr, h, wire := heldBehindHole(t, true)
	held := [2]uint32{wire[1].seq, wire[len(wire)-1].seq + uint32(len(wire[len(wire)-1].payload))}
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), []byte("reply")))
	var data, acks int
	for _, fr := range toOut {
		s := parse(t, fr)
		if len(s.payload) > 0 {
			data++
			continue
		}
		if b := sackBlocks(s.opts); len(b) != 1 || b[0] != held || s.ack != wire[0].seq {
			t.Fatalf("R got ACK %x with SACK %x, want ACK %x with %x", s.ack, b, wire[0].seq, held)
		}
		acks++
	}
	if data != 1 || acks != 1 {
		t.Fatalf("to R: %d data segments and %d ACKs with SACK, want 1 and 1", data, acks)
	}
}
