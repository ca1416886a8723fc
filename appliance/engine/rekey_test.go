package engine

import (
	"bytes"
	"testing"
)

// Rekey by bytes at G_A: the frame after the threshold carries the rekey bit
// (TC-54); G_B answers at once with an empty rekey frame (TC-57), which G_A
// consumes and acknowledges itself; data keeps flowing under generation 1,
// and a retransmission of a generation-0 frame is the same bytes (TC-59).
func TestRekeyByBytesAndAnswer(t *testing.T) {
	pr := handshake(t)
	pr.ga.e.cfg.RekeyBytes = 2000
	h := newHosts()
	chunk := bytes.Repeat([]byte{7}, 1400)
	s1 := h.aNext
	w1 := pr.aSends(&h, chunk, pshF)
	w2 := pr.aSends(&h, chunk, pshF)
	if w1[0].payload[0] != 0 || w2[0].payload[0] != 0 {
		t.Fatal("rekey bit before the threshold")
	}
	w3 := pr.aSends(&h, chunk, pshF)
	if w3[0].payload[0] != 1 {
		t.Fatalf("control byte %x, want the rekey bit", w3[0].payload[0])
	}
	pr.toB(w1)
	pr.toB(w2)
	atB, back := pr.toB(w3)
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, chunk) {
		t.Fatal("frame under the new generation not delivered")
	}
	if len(back) != 1 || len(back[0].payload) != 20 || back[0].payload[0] != 1 {
		t.Fatalf("rekey answer: %+v", back)
	}
	toIn, toOut := pr.ga.push(Outside, tcpFrameFrom(back[0]))
	none(t, "empty frame reaches a", toIn)
	ack := one(t, "G_A acknowledges the empty frame", toOut)
	if ack.ack != back[0].seq+20 {
		t.Fatalf("ACK %x, want %x", ack.ack, back[0].seq+20)
	}
	if pr.ga.e.Counters().Rekeys.Load() != 1 || pr.gb.e.Counters().RekeysAnswered.Load() != 1 {
		t.Fatal("rekeys not counted")
	}
	if g := flowInfo(t, pr.ga.e).KeyGeneration; g != 1 {
		t.Fatalf("G_A generation %d", g)
	}
	if g := flowInfo(t, pr.gb.e).KeyGeneration; g != 1 {
		t.Fatalf("G_B generation %d", g)
	}
	// a retransmits its first segment: the generation-0 frame, same bytes.
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, s1, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), chunk))
	r := one(t, "retransmission", toOut)
	hasBytes(t, "generation-0 frame resent as it was", r.payload, w1[0].payload)
	// And new data still gets through.
	atB, _ = pr.toB(pr.aSends(&h, []byte("after rekey"), pshF))
	if len(atB) != 1 || string(atB[0].payload) != "after rekey" {
		t.Fatalf("after rekey: %+v", atB)
	}
}
