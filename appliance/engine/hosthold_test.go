package engine

import (
	"bytes"
	"slices"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// streamAt gathers the payload b got, and whether a FIN came with it.
func streamAt(atB []segv) (data []byte, fin bool) {
	for _, s := range atB {
		data = append(data, s.payload...)
		fin = fin || s.flags&finF != 0
	}
	return data, fin
}

// Segments of a's that overtook an earlier one, or followed one lost
// between a and G_A, are held, not dropped, and each is answered at once
// with a duplicate ACK whose SACK blocks name what is held, newest first
// (so a resends the hole within a round trip). Once a sends the hole, G_A
// seals the hole and everything held behind it at once, in order, with
// the FIN that came past the hole. Nothing is dropped and a resends
// nothing but the hole.
func TestHostSegmentsPastAHoleAreHeld(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	parts := [][]byte{
		[]byte("the hole: lost between a and G_A, "),
		[]byte("then a segment past it, "),
		[]byte("another, reordered, "),
		[]byte("and the last, with a FIN."),
	}
	start := h.aNext
	seqs := make([]uint32, len(parts))
	for i, p := range parts {
		seqs[i] = h.aNext
		h.aNext += uint32(len(p))
	}
	h.aNext++ // the FIN
	// Past the hole, out of order: 3 (with FIN), 1, then 2; and 1 again.
	end := func(i int) uint32 { return seqs[i] + uint32(len(parts[i])) }
	wantSACK := [][][2]uint32{
		{{seqs[3], end(3)}},
		{{seqs[1], end(1)}, {seqs[3], end(3)}},
		{{seqs[1], end(3)}},
		{{seqs[1], end(3)}},
	}
	for k, i := range []int{3, 1, 2, 1} {
		fl := uint8(pshF)
		if i == 3 {
			fl |= finF
		}
		w, toA := pr.aSendsAt(&h, seqs[i], parts[i], fl)
		if len(w) != 0 {
			t.Fatalf("part %d, past the hole, left at once: %d segments", i, len(w))
		}
		if len(toA) != 1 {
			t.Fatalf("part %d: G_A answered with %d segments, want a duplicate ACK", i, len(toA))
		}
		ack := toA[0]
		if ack.ack != start || len(ack.payload) != 0 || ack.flags != ackF {
			t.Fatalf("answer to part %d: ack %x flags %x len %d, want a duplicate ACK of %x", i, ack.ack, ack.flags, len(ack.payload), start)
		}
		if got := sackBlocks(ack.opts); !slices.Equal(got, wantSACK[k]) {
			t.Fatalf("answer to part %d: SACK %x, want %x", i, got, wantSACK[k])
		}
	}
	c := pr.ga.e.Counters()
	if n := c.HostHeld.Load(); n != 4 {
		t.Fatalf("%d segments held, want 4", n)
	}
	for r := range NumDropReasons {
		if n := c.Drops[r].Load(); n != 0 {
			t.Fatalf("%d drops (%s)", n, DropNames[r])
		}
	}
	w, _ := pr.aSendsAt(&h, start, parts[0], pshF)
	atB, _ := pr.toB(w)
	got, fin := streamAt(atB)
	want := bytes.Join(parts, nil)
	hasBytes(t, "a's stream at b", got, want)
	if !fin {
		t.Fatal("the FIN held past the hole did not reach b")
	}
}

// The hole filled by a retransmission that also covers part of what is
// held: each byte is sealed once.
func TestHostHoldOverlappingRetransmission(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	stream := bytes.Repeat([]byte("0123456789"), 30)
	start := h.aNext
	h.aNext += uint32(len(stream))
	if w, _ := pr.aSendsAt(&h, start+200, stream[200:], pshF); len(w) != 0 {
		t.Fatal("data past the hole left at once")
	}
	w, _ := pr.aSendsAt(&h, start, stream[:250], pshF)
	atB, _ := pr.toB(w)
	got, _ := streamAt(atB)
	hasBytes(t, "a's stream at b", got, stream)
	// More data after it goes on as usual.
	atB, _ = pr.toB(pr.aSends(&h, []byte("more"), pshF))
	got, _ = streamAt(atB)
	hasBytes(t, "a's next segment at b", got, []byte("more"))
}

// The hold is bounded by the reassembly cap: past it the segment is
// dropped (host_gap) and a sends it again later.
func TestHostHoldCapped(t *testing.T) {
	cfg := Config{TEPs: testTEPs, ReassemblyBytes: 4096}
	pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	h := newHosts()
	start := h.aNext
	h.aNext += 100
	if w, _ := pr.aSendsAt(&h, h.aNext, make([]byte, 1000), pshF); len(w) != 0 {
		t.Fatal("data past the hole left at once")
	}
	h.aNext += 1000
	if _, toA := pr.aSendsAt(&h, h.aNext+8000, make([]byte, 1000), pshF); len(toA) != 0 {
		t.Fatal("a segment that was dropped was answered as held")
	}
	c := pr.ga.e.Counters()
	if c.HostHeld.Load() != 1 || c.Drops[DropHostGap].Load() != 1 {
		t.Fatalf("held %d, host_gap %d: want 1 and 1", c.HostHeld.Load(), c.Drops[DropHostGap].Load())
	}
	w, _ := pr.aSendsAt(&h, start, make([]byte, 100), pshF)
	atB, _ := pr.toB(w)
	if got, _ := streamAt(atB); len(got) != 1100 {
		t.Fatalf("b got %d bytes, want the hole and the 1000 held behind it", len(got))
	}
}

// What the hold takes from the flow memory budget comes back when the
// flows go.
func TestHostHoldGivesMemoryBack(t *testing.T) {
	m := NewMemory(64 << 20)
	pr := handshakeOn(t, newGWMem(t, Config{TEPs: testTEPs}, m), newGWMem(t, Config{TEPs: testTEPs}, m))
	h := newHosts()
	start := h.aNext
	h.aNext += 100
	before := m.Used()
	pr.aSendsAt(&h, h.aNext, make([]byte, 3000), pshF)
	h.aNext += 3000
	if m.Used() <= before {
		t.Fatalf("holding 3000 bytes charged nothing (%d -> %d)", before, m.Used())
	}
	w, _ := pr.aSendsAt(&h, start, make([]byte, 100), pshF)
	pr.toB(w)
	expireAll(t, m, pr.ga, pr.gb)
}

// Without SACK on the connection (a SYN lacked SACK-permitted) the engine
// sends no SACK option at all (RFC 2018 §2), but a segment past the hole
// still gets an immediate duplicate ACK (RFC 5681 §4.2): a counts them,
// and the third starts its fast retransmit. Without it a waited for its
// retransmission timeout (a review's simulator campaign).
func TestHostHoldWithoutSACK(t *testing.T) {
	ga, _ := handshakeWithoutSACK(t)
	toA, wire := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1+100, isnB+1, ackF|pshF, 502, tsOpt(3, 2), make([]byte, 500)))
	none(t, "data past the hole on the wire", wire)
	d := one(t, "the duplicate ACK to a", toA)
	if d.ack != isnA+1 || len(d.payload) != 0 || d.flags != ackF || option(d.opts, 5) != nil {
		t.Fatalf("to a: ack +%d (want +1), %d bytes, flags %x, SACK option %x", d.ack-isnA, len(d.payload), d.flags, option(d.opts, 5))
	}
	if ga.e.Counters().HostHeld.Load() != 1 {
		t.Fatal("the segment past the hole was not held")
	}
	_, wire = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(4, 2), make([]byte, 100)))
	n := 0
	for _, f := range wire {
		n += len(parse(t, f).payload)
	}
	if n != 600+2*tcpcrypt.Overhead {
		t.Fatalf("%d bytes of frames on the wire after the hole was filled, want the 600 bytes sealed in two frames", n)
	}
}

// handshakeWithoutSACK connects a and b through ga and gb, encrypted, with
// no SACK-permitted in a's SYN: the connection has no SACK (RFC 2018 §2).
func handshakeWithoutSACK(t *testing.T) (ga, gb *gw) {
	ga, gb = newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	noSACK := func(mssv uint16, ts uint32) []byte {
		o := synOpts(mssv, ts)
		i := bytes.Index(o, []byte{4, 2})
		return append(append([]byte{1, 1}, o[:i]...), o[i+2:]...) // two NOPs keep the length a multiple of 4
	}
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, noSACK(1460, 1), nil))
	gb.push(Outside, one(t, "SYN", o).frame())
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, one(t, "SYN-ACK", o).frame())
	_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	finishKex(ga, gb, o)
	if !flowInfo(t, ga.e).Encrypted || !flowInfo(t, gb.e).Encrypted {
		t.Fatal("not encrypted")
	}
	return ga, gb
}

// The far side's frames past a hole are held at G_A; the ACKs G_A sends R
// meanwhile, its own and a's translated, carry no SACK option when the
// connection has none: "MUST NOT send SACK options" (RFC 2018 §4).
func TestNoSACKToFarSideWithoutSACK(t *testing.T) {
	ga, gb := handshakeWithoutSACK(t)
	var frames []segv
	for i := range uint32(3) {
		_, o := gb.push(Inside, tcpFrame(addrB, addrA, isnB+1+100*i, isnA+1, ackF|pshF, 509, tsOpt(3+i, 2), make([]byte, 100)))
		frames = append(frames, one(t, "b's frame", o))
	}
	toA, _ := ga.push(Outside, frames[0].frame())
	one(t, "the first 100 bytes for a", toA)
	// frames[1] is lost; frames[2] is held.
	toA, back := ga.push(Outside, frames[2].frame())
	none(t, "data past the hole for a", toA)
	_, acks := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1+100, ackF, 502, tsOpt(5, 3), nil))
	if len(acks) == 0 {
		t.Fatal("a's ACK did not reach R: the case this test is for did not happen")
	}
	for _, f := range append(back, acks...) {
		if s := parse(t, f); option(s.opts, 5) != nil {
			t.Fatalf("segment to R carries SACK %x on a connection without SACK", sackBlocks(s.opts))
		}
	}
}

// Past a held FIN nothing more is held: data there, or a FIN elsewhere, is
// not what L's TCP sends (out_of_window).
func TestHostHoldNothingPastTheFIN(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	start := h.aNext
	pr.aSendsAt(&h, start+100, make([]byte, 100), pshF|finF)
	pr.aSendsAt(&h, start+200, make([]byte, 10), pshF)
	pr.aSendsAt(&h, start+150, make([]byte, 10), pshF|finF)
	c := pr.ga.e.Counters()
	if c.HostHeld.Load() != 1 || c.Drops[DropOutOfWindow].Load() != 2 {
		t.Fatalf("held %d, out_of_window %d: want 1 and 2", c.HostHeld.Load(), c.Drops[DropOutOfWindow].Load())
	}
	w, _ := pr.aSendsAt(&h, start, make([]byte, 100), pshF)
	atB, _ := pr.toB(w)
	if got, fin := streamAt(atB); len(got) != 200 || !fin {
		t.Fatalf("b got %d bytes (FIN %v), want 200 and the FIN", len(got), fin)
	}
}
