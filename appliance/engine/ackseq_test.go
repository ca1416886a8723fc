package engine

import (
	"bytes"
	"testing"
)

// R's window ends before the appliance's SND.NXT: R acknowledged none of a
// frame it dropped (its receive memory full, as Linux does) and advertises
// less room than the frame took. A pure ACK numbered SND.NXT would then lie
// past R's right edge, and R would drop it as unacceptable, ACK field and
// all (RFC 9293 §3.10.7.4): R never learns its own data was acknowledged,
// its sender stalls, its application stops reading, and the connection
// deadlocks (seen in the interop matrix: appliance as A, 100-byte frames
// from a Linux host). The ACK goes at R's right edge, as Linux numbers its
// own ACKs then (tcp_acceptable_seq).
func TestPureACKInsideFarWindow(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	wire := pr.aSends(&h, bytes.Repeat([]byte{7}, 1000), pshF)
	if len(wire) != 1 || len(wire[0].payload) != 1020 {
		t.Fatalf("a's data on the wire: %+v", wire)
	}
	// R (b's side) acknowledges only up to the frame (Init1's end, wire
	// offset 75) with a window of 2 << 7 = 256 bytes: its right edge is
	// wire offset 331, before the frame's end at 1095.
	pr.tsB++
	edge := isnA + 1 + 75 + 2<<7
	_, toOut := pr.ga.push(Outside, tcpFrame(addrB, addrA, isnB+1+74, isnA+1+75, ackF, 2, tsOpt(pr.tsB, pr.tsA), nil))
	none(t, "G_A to R after R's ACK", toOut)
	// a opens its window: G_A tells R in a pure ACK.
	pr.tsA++
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 900, tsOpt(pr.tsA, pr.tsB), nil))
	ack := one(t, "G_A window update to R", toOut)
	if len(ack.payload) != 0 {
		t.Fatalf("want a pure ACK: %+v", ack)
	}
	if int32(ack.seq-edge) > 0 {
		t.Fatalf("pure ACK numbered %d bytes past R's right edge", int32(ack.seq-edge))
	}
	if int32(ack.seq-(isnA+1+75)) < 0 {
		t.Fatalf("pure ACK numbered before what R acknowledged")
	}
}
