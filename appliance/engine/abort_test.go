package engine

import (
	"slices"
	"testing"
	"time"
)

// A forged frame (one ciphertext bit flipped on the wire) aborts: RST to
// both hosts, auth failure counted, nothing delivered (TC-47).
func TestForgedFrameAborts(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, []byte("secret"), pshF)
	w[0].payload[10] ^= 1
	toIn, toOut := pr.gb.push(Outside, tcpFrameFrom(w[0]))
	r := one(t, "RST to b", toIn)
	if r.flags&rstF == 0 || len(r.payload) != 0 || r.seq != isnA+1 {
		t.Fatalf("RST to b: %+v", r)
	}
	r = one(t, "RST to the far side", toOut)
	if r.flags&rstF == 0 || r.seq != isnB+1+74 {
		t.Fatalf("RST to a's side: %+v", r)
	}
	if pr.gb.e.Counters().AuthFailures.Load() != 1 || pr.gb.e.NumFlows() != 0 {
		t.Fatal("auth failure not counted or flow kept")
	}
}

// A TCP FIN with no FINp frame before it aborts (TC-51).
func TestFINWithoutFINpAborts(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, []byte("data"), pshF)
	pr.toB(w)
	fin := w[0]
	fin.seq += uint32(len(fin.payload))
	fin.payload = nil
	fin.flags = ackF | finF
	toIn, toOut := pr.gb.push(Outside, tcpFrameFrom(fin))
	if r := one(t, "RST to b", toIn); r.flags&rstF == 0 {
		t.Fatal("no RST to b")
	}
	if r := one(t, "RST to far side", toOut); r.flags&rstF == 0 {
		t.Fatal("no RST to far side")
	}
	if pr.gb.e.NumFlows() != 0 || pr.gb.e.Counters().Aborts.Load() != 1 {
		t.Fatal("flow not aborted")
	}
}

// RST from either host is forwarded with translated numbers.
func TestRSTTranslatedBothWays(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.toB(pr.aSends(&h, make([]byte, 50), pshF))
	// b resets: its sequence number is in host space; the wire wants W.
	toIn, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, rstF|ackF, 0, nil, nil))
	none(t, "RST inside", toIn)
	r := one(t, "RST on the wire", toOut)
	if r.seq != isnB+1+74 || r.ack != isnA+1+75+70 {
		t.Fatalf("RST on the wire: seq %x ack %x", r.seq, r.ack)
	}
	toIn, _ = pr.ga.push(Outside, tcpFrameFrom(r))
	a := one(t, "RST at a", toIn)
	if a.seq != isnB+1 || a.ack != h.aNext || a.flags&rstF == 0 {
		t.Fatalf("RST at a: seq %x ack %x", a.seq, a.ack)
	}
	if pr.ga.e.NumFlows() != 0 || pr.gb.e.NumFlows() != 0 {
		t.Fatal("flows kept after RST")
	}
}

// A keep-alive (seq = next-1, 0 or 1 byte) is translated, never framed and
// never carries its byte onto the wire; the
// host's answer gets through although it repeats the last ACK.
func TestKeepAlive(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("x"), pshF))
	acks := pr.bAcks(&h, h.aNext)
	pr.ga.push(Outside, tcpFrameFrom(acks[0]))
	// a probes with seq = next-1 and one garbage byte.
	pr.tsA++
	toIn, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext-1, h.bNext, ackF, 502, tsOpt(pr.tsA, pr.tsB), []byte{0}))
	none(t, "keep-alive inside", toIn)
	k := one(t, "keep-alive on the wire", toOut)
	if k.seq != isnA+1+75+21-1 || len(k.payload) != 0 { // the garbage byte may be plaintext: not sent
		t.Fatalf("keep-alive on the wire: seq %x len %d", k.seq, len(k.payload))
	}
	toIn, toOut = pr.gb.push(Outside, tcpFrameFrom(k))
	none(t, "G_B does not answer for b", toOut)
	p := one(t, "probe at b", toIn)
	if p.seq != h.aNext-1 || len(p.payload) != 0 {
		t.Fatalf("probe at b: seq %x, want %x", p.seq, h.aNext-1)
	}
	// b's answer repeats its last ACK: it must not be suppressed.
	acks = pr.bAcks(&h, h.aNext)
	if len(acks) != 1 || acks[0].ack != k.seq+1 {
		t.Fatalf("answer to the probe: %+v", acks)
	}
	if pr.ga.e.Counters().KeepAlives.Load() != 1 || pr.gb.e.Counters().KeepAlives.Load() != 1 {
		t.Fatal("keep-alive not counted")
	}
	pr.ga.e.publish() // as the worker's next Tick would
	if pr.ga.e.Counters().FramesSealed.Load() != 1 {
		t.Fatal("keep-alive went into the frame stream")
	}
}

// A segment corrupted on the wire (bad TCP checksum) is dropped as the
// receiving TCP would drop it, instead of failing authentication and
// killing the connection; the retransmission then gets through.
func TestCorruptedSegmentDropped(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, []byte("data"), pshF)
	bad := tcpFrameFrom(w[0])
	bad[len(bad)-3] ^= 0x40
	toIn, toOut := pr.gb.push(Outside, bad)
	none(t, "corrupted: nothing to b", toIn)
	none(t, "corrupted: nothing back", toOut)
	if pr.gb.e.Counters().Drops[DropChecksum].Load() != 1 || pr.gb.e.NumFlows() != 1 {
		t.Fatal("corrupted segment not dropped as such")
	}
	atB, _ := pr.toB(w)
	if len(atB) != 1 || string(atB[0].payload) != "data" {
		t.Fatalf("retransmission: %+v", atB)
	}
}

// TestStrayRSTBadChecksumDropped: an RST for a negotiated tuple the engine
// has no record of is passed on only when its checksum is valid (found by
// FuzzScript: a corrupted stray RST left with a bad checksum). An unknown
// plain tuple's segments pass as they are, like any plain TCP.
func TestStrayRSTBadChecksumDropped(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{})
	set.Add(addrA, addrB, time.Time{})
	g := newGWDeps(t, Config{}, Deps{Negotiated: set})
	rst := tcpFrame(addrB, addrA, 1000, 2000, rstF|ackF, 502, nil, nil)
	if v := g.e.Handle(0, Outside, slices.Clone(rst), g.tx); v != Passthrough {
		t.Fatalf("valid stray RST: verdict %v, want Passthrough", v)
	}
	bad := slices.Clone(rst)
	bad[len(bad)-1] ^= 0x40 // urgent pointer: header bytes, checksum now wrong
	if v := g.e.Handle(0, Outside, bad, g.tx); v != Dropped {
		t.Fatalf("corrupted stray RST: verdict %v, want Dropped", v)
	}
	if n := g.e.Counters().Drops[DropChecksum].Load(); n != 1 {
		t.Fatalf("checksum drops = %d, want 1", n)
	}
}

// A bad Init1 (wrong magic) from the far side aborts the connection at
// host B: RST to both, handshake failure counted (TC-D, docs/protocol.md §9).
func TestBadInitAborts(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, synOpts(1460, 2), nil))
	bad := make([]byte, 75)
	copy(bad, unhex("deadbeef0000004b"))
	toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, append(tsOpt(2, 2), 69, 2), bad))
	var rstIn, rstOut bool
	for _, f := range toIn {
		rstIn = rstIn || parse(t, f).flags&rstF != 0
	}
	for _, f := range toOut {
		rstOut = rstOut || parse(t, f).flags&rstF != 0
	}
	if !rstIn || !rstOut || gb.e.Counters().HandshakeFailures.Load() != 1 || gb.e.NumFlows() != 0 {
		t.Fatalf("bad Init: RST in %v out %v, failures %d", rstIn, rstOut, gb.e.Counters().HandshakeFailures.Load())
	}
}

// Nothing of an encrypted connection leaves in plaintext by a side door: an
// RST from the inside host loses its payload, a malformed frame and a bad
// TCP fragment from the inside are dropped (found by FuzzScript).
func TestNoPlaintextSideDoors(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	// A first fragment of 6 data bytes (not a multiple of 8: no valid
	// fragment) is dropped; the datagram is not reassembled either.
	frag := tcpFrame(addrA, addrB, 1, 1, ackF, 1, nil, []byte("MARKER"))
	frag[12+2+6] |= 0x20 // IPv4 MF: a first fragment
	frag[12+2+10], frag[12+2+11] = 0, 0
	if v := pr.ga.e.Handle(0, Inside, frag, pr.ga.tx); v != Dropped || pr.ga.e.Counters().Drops[DropFragment].Load() != 1 {
		t.Fatalf("fragment: %v", v)
	}
	toIn, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, rstF|ackF, 0, nil, []byte("MARKER in an RST")))
	none(t, "inside", toIn)
	if r := one(t, "RST on the wire", toOut); len(r.payload) != 0 || r.flags&rstF == 0 || r.seq != isnA+1+75 {
		t.Fatalf("RST: %+v", r)
	}
	bad := tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 1, nil, []byte("MARKER"))
	bad[14+20+12] = 0x40 // TCP data offset 4 words: malformed
	if v := pr.ga.e.Handle(0, Inside, bad, pr.ga.tx); v != Dropped || pr.ga.e.Counters().Drops[DropMalformed].Load() != 1 {
		t.Fatalf("malformed: %v", v)
	}
}
