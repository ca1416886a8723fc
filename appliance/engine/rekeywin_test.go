package engine

import (
	"bytes"
	"testing"
)

// The far side's rekey arrives while its receive window is closed: the
// empty answer frame (TC-57) waits for room, because past R's right edge R
// drops it and every later segment with the ACK it carries (RFC 9293
// §3.8.6, §3.10.7.4); a Linux peer then never learns its data was
// acknowledged. The window update that opens room lets the answer out.
func TestRekeyAnswerWaitsForWindow(t *testing.T) {
	pr := handshake(t)
	pr.ga.e.cfg.RekeyBytes = 2000
	h := newHosts()
	chunk := bytes.Repeat([]byte{7}, 1400)
	pr.toB(pr.aSends(&h, chunk, pshF))
	pr.toB(pr.aSends(&h, chunk, pshF))
	w3 := pr.aSends(&h, chunk, pshF)
	if len(w3) != 1 || w3[0].payload[0] != 1 {
		t.Fatalf("want one frame with the rekey bit: %+v", w3)
	}
	closed := w3[0]
	closed.win = 0
	atB, back := pr.toB([]segv{closed})
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, chunk) {
		t.Fatal("frame under the new generation not delivered")
	}
	for _, s := range back {
		if len(s.payload) > 0 {
			t.Fatalf("G_B sent %d bytes into a closed window", len(s.payload))
		}
	}
	// R opens its window (a pure window update).
	upd := closed
	upd.seq += uint32(len(closed.payload))
	upd.payload = nil
	upd.win = 502
	_, back = pr.toB([]segv{upd})
	if len(back) != 1 || len(back[0].payload) != 20 || back[0].payload[0] != 1 {
		t.Fatalf("rekey answer after the window opened: %+v", back)
	}
	if pr.gb.e.Counters().RekeysAnswered.Load() != 1 {
		t.Fatal("answer not counted")
	}
}

// The window L gets ends where R's window ends on the wire: wire bytes
// already framed beyond L's data (rekey answers, the 20 bytes of each short
// frame) are taken off it, so L's data never passes R's right edge (RFC 9293
// §3.8.6).
func TestScaleWinCountsFramedBytes(t *testing.T) {
	f := &flow{mssR: 1400}
	f.enc.store.max = 1 << 20
	// L's 1000 bytes, acknowledged up to 0, went out as 50 frames of 20 +
	// 20 bytes, plus 10 empty rekey answers: 2200 wire bytes.
	f.enc.nextH, f.enc.nextW = 1000, 2200
	// R advertises 3000 bytes from its ACK at 0: 800 wire bytes are left,
	// 788 of plaintext in frames of 1400.
	got := int(f.scaleWin(3000))
	if want := 1000 + 800*(1400-20)/1400; got != want {
		t.Fatalf("window to L %d, want %d", got, want)
	}
	// R's window already full: L may have nothing beyond its own data.
	if got := f.scaleWin(2000); got != 1000 {
		t.Fatalf("window to L %d, want 1000", got)
	}
}
