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

// The same on the inside: L's window is closed, R's retransmission makes
// the appliance probe it with one byte of the plaintext waiting (RFC 9293
// §3.8.6.1), which L does not take. The pure ACKs the appliance then sends
// L for R must still sit at L's RCV.NXT: numbered past the probe byte they
// lie outside L's zero window, L drops them with the ACK of L's own data
// (RFC 9293 §3.10.7.4), keeps retransmitting, never reads, and the window
// never opens (seen in the interop matrix: appliance as B, 65000-byte
// frames, L's echo blocked for 90 s).
func TestPureACKInsideHostWindowAfterProbe(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	// a's buffer is full: window 0.
	pr.tsA++
	pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 0, tsOpt(pr.tsA, pr.tsB), nil))
	// b's 1000 bytes reach G_A as one frame; they wait for a's window.
	pr.tsB++
	_, wire := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), bytes.Repeat([]byte{9}, 1000)))
	frame := one(t, "G_B frame", wire)
	toIn, _ := pr.ga.push(Outside, tcpFrameFrom(frame))
	for _, s := range toIn {
		if len(s) > 0 && len(parse(t, s).payload) > 0 {
			t.Fatal("plaintext sent into a's closed window")
		}
	}
	// R retransmits the frame: G_A probes a's window with one byte.
	toIn, _ = pr.ga.push(Outside, tcpFrameFrom(frame))
	probe := false
	for _, s := range toIn {
		if p := parse(t, s); len(p.payload) == 1 && p.seq == h.bNext {
			probe = true
		}
	}
	if !probe {
		t.Fatalf("no one-byte window probe to a: %d segments", len(toIn))
	}
	// a does not take it (its window is closed): its ACK stays at bNext.
	// R's window update goes on to a as a pure ACK, which must be
	// acceptable to a: numbered at its RCV.NXT, not past the probe byte.
	pr.tsB++
	toIn, _ = pr.ga.push(Outside, tcpFrame(addrB, addrA, frame.seq+uint32(len(frame.payload)), frame.ack, ackF, 700, tsOpt(pr.tsB, pr.tsA), nil))
	ack := one(t, "G_A ACK to a", toIn)
	if len(ack.payload) != 0 || ack.seq != h.bNext {
		t.Fatalf("pure ACK to a numbered %d bytes past a's RCV.NXT (len %d)", int32(ack.seq-h.bNext), len(ack.payload))
	}
}
