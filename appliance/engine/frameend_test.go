package engine

import (
	"bytes"
	"testing"
)

// R's segment ends one byte before its frame's end and the segment after it
// is lost (a far sender that segments without regard to frames): G_B
// acknowledges every byte it holds, since the frame's last byte is still
// missing and R's "all acknowledged" keeps waiting for it. R's timeout
// retransmission, from what G_B acknowledged, then completes the frame.
// With two bytes held back, R resent only the one byte it still had in
// that segment (a Linux sender trims its head segment to SND.UNA and cannot
// merge a full next segment into it), at rcvW - 1: taken for a keep-alive
// probe and answered with the same ACK, for ever.
func TestFrameCutOneByteBeforeItsEnd(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	msg := bytes.Repeat([]byte("0123456789"), 100)
	wire := pr.aSends(&h, msg, pshF)
	if len(wire) != 1 {
		t.Fatalf("%d wire segments, want one frame", len(wire))
	}
	fr := wire[0]
	frameEnd := fr.seq + uint32(len(fr.payload))
	cut := fr
	cut.payload = fr.payload[:len(fr.payload)-1]
	atB, back := pr.toB([]segv{cut})
	none(t, "a partial frame at b", toFrames(atB))
	var got []byte
	for round := 0; round < 3 && len(got) < len(msg); round++ {
		if len(back) == 0 {
			t.Fatalf("round %d: no ACK from G_B", round)
		}
		una := back[len(back)-1].ack
		// R's retransmission: its head segment trimmed to SND.UNA.
		re := fr
		end := frameEnd - 1
		if una >= end {
			end = frameEnd
		}
		re.seq, re.payload = una, fr.payload[una-fr.seq:end-fr.seq]
		atB, back = pr.toB([]segv{re})
		for _, s := range atB {
			got = append(got, s.payload...)
		}
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("b got %d of %d bytes after three retransmissions by R", len(got), len(msg))
	}
}

// The same frame completed, opened and delivered, and b never got it (the
// inside link lost it): R's retransmission of the frame's last byte, from
// the ACK it had, is at rcvW - 1 like a keep-alive probe but above what R
// was acknowledged, so it is R's data again: G_B delivers the frame's
// plaintext to b once more. A keep-alive sits one below R's SND.UNA.
func TestLastByteResentIsNotAKeepAlive(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	msg := bytes.Repeat([]byte("abcdefghij"), 50)
	w := one(t, "the frame", toFrames(pr.aSends(&h, msg, pshF)))
	cut, last := w, w
	cut.payload = w.payload[:len(w.payload)-1]
	last.seq, last.payload = w.seq+uint32(len(w.payload)-1), w.payload[len(w.payload)-1:]
	_, back := pr.toB([]segv{cut})
	if len(back) == 0 || back[len(back)-1].ack != last.seq {
		t.Fatalf("G_B's ACK of the cut frame: %v, want %x", back, last.seq)
	}
	atB, _ := pr.toB([]segv{last})
	if len(atB) == 0 {
		t.Fatal("the completed frame did not reach b")
	}
	// Lost on the inside link; R times out and resends its last byte.
	atB, _ = pr.toB([]segv{last})
	var got []byte
	for _, s := range atB {
		got = append(got, s.payload...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("b got %d bytes after R's retransmission, want the frame's %d again", len(got), len(msg))
	}
	if n := pr.gb.e.Counters().KeepAlives.Load(); n != 0 {
		t.Fatalf("%d keep-alives counted", n)
	}
}
