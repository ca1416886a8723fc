package scenario

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
)

// heldMax is how many separate ranges a flow's reassembly keeps (the
// engine's maxSpans).
const heldMax = 64

// TestInOrderWithHeldRangesFull: R's out-of-order segments leave G_B
// holding as many separate ranges as its reassembly keeps (heldMax), and R's
// retransmission of the segment at the next expected offset does not reach
// the first of them. The segment is in order: G_B must take it (RFC 9293
// §3.10.7.4 processes in-order data; only out-of-order data may be dropped
// for want of room), and b gets its plaintext. Dropping it instead, because
// it would have been one range too many, leaves the hole open for good: R
// retransmits the same segment each time its timer fires and G_B drops it
// each time (a stalled transfer, found by TestRandomBulkReorder).
func TestInOrderWithHeldRangesFull(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a := f.w, f.a
	const n, size = 2*heldMax + 2, 100
	segs := make([][]byte, n)
	for i := range segs {
		segs[i] = chunk(byte('A'+i%26), size)
	}
	// Each segment is one frame on the link, size + ovh bytes from the
	// first frame's offset. Lost: the first, and every other one up to
	// the (2*heldMax-1)th: G_B holds 2, 4, ..., 2*heldMax-2 and the last
	// two, heldMax ranges.
	w1 := uint32(isnA + 1 + init1)
	lost := func(_ int, s Seg) bool {
		i := int(s.Seq-w1) / (size + ovh)
		return len(s.Payload) > 0 && (i == 0 || (i%2 == 1 && i < 2*heldMax))
	}
	rule := w.Link.Add(Rule{Dir: AtoB, Times: -1, Match: lost, Drop: true})
	for i, s := range segs {
		w.Host(SideA, a.Data(i*size, isnB+1, s))
	}
	w.Run(latency)
	if rule.Hits != heldMax+1 {
		t.Fatalf("%d segments lost, want %d", rule.Hits, heldMax+1)
	}
	if fb := one2(t, w.Flows(SideB)); fb.Stream == nil || fb.Stream.In.WireHeldSpans != heldMax {
		t.Fatalf("G_B holds %+v, want %d ranges", fb.Stream, heldMax)
	}
	if got := withData(w.Take(SideB)); len(got) != 0 {
		t.Fatalf("b got %v before the first segment", got)
	}
	w.Link.Rules = nil
	// a retransmits the first segment; G_A sends the stored frame again.
	reasm := w.G[SideB].Counters().Drops[engine.DropReasmFull].Load()
	w.Host(SideA, a.Data(0, isnB+1, segs[0]))
	w.Run(latency)
	if d := w.G[SideB].Counters().Drops[engine.DropReasmFull].Load() - reasm; d != 0 {
		t.Errorf("G_B dropped %d in-order segments as reassembly_full", d)
	}
	st := hostStream(t, w.Take(SideB), isnA)
	if !bytes.Equal(st.Contiguous(), segs[0]) {
		t.Fatalf("b has %d bytes in order after the retransmission of the first segment, want %d", len(st.Contiguous()), size)
	}
	// Then the rest, one retransmission per hole: b gets everything.
	for i := 1; i < 2*heldMax; i += 2 {
		w.Host(SideA, a.Data(i*size, isnB+1, segs[i]))
	}
	w.Run(latency)
	st = hostStream(t, w.All[SideB], isnA)
	if want := bytes.Join(segs, nil); !bytes.Equal(st.Contiguous(), want) {
		t.Fatalf("b has %d bytes in order, want %d", len(st.Contiguous()), len(want))
	}
}

// TestInitAfterHeldRangesFull is TestInOrderWithHeldRangesFull during the
// key exchange: G_B's Init message is delayed on the link while b's first
// frames behind it arrive with every other one lost, so G_A holds heldMax
// separate ranges and no keys. The Init message, in order when it comes,
// must still be taken (and the keys made): dropped as one range too many,
// it was dropped again at each of G_B's retransmissions until G_B gave up
// ("Init not acknowledged", found by TestRandomBulkReorder).
func TestInitAfterHeldRangesFull(t *testing.T) {
	f := full(t)
	w, b := f.w, f.b
	f.stepSYN(t)
	f.stepSYNACK(t)
	const n, size = 2*heldMax + 2, 100
	w2 := uint32(isnB + 1 + init2) // b's first frame
	hold := w.Link.Add(Rule{Dir: BtoA, Match: func(_ int, s Seg) bool { return len(s.Payload) > 0 && s.Seq == isnB+1 }, Hold: true})
	lost := w.Link.Add(Rule{Dir: BtoA, Times: -1, Match: func(_ int, s Seg) bool {
		i := int(s.Seq-w2) / (size + ovh)
		return len(s.Payload) > 0 && s.Seq != isnB+1 && (i == 0 || (i%2 == 1 && i < 2*heldMax))
	}, Drop: true})
	f.stepACK(t)
	w.Run(latency) // Init1 reaches G_B, which sends Init2 (held on the link)
	if len(w.Link.held) != 1 {
		t.Fatalf("%d segments held on the link, want Init2", len(w.Link.held))
	}
	segs := make([][]byte, n)
	for i := range segs {
		segs[i] = chunk(byte('A'+i%26), size)
		w.Host(SideB, b.Data(i*size, isnA+1, segs[i]))
	}
	w.Run(latency)
	if lost.Hits != heldMax+1 {
		t.Fatalf("%d frames lost, want %d", lost.Hits, heldMax+1)
	}
	reasm := w.G[SideA].Counters().Drops[engine.DropReasmFull].Load()
	w.Link.Release(w.Now, hold)
	w.Run(latency)
	if d := w.G[SideA].Counters().Drops[engine.DropReasmFull].Load() - reasm; d != 0 {
		t.Errorf("G_A dropped %d in-order segments as reassembly_full", d)
	}
	fa := one2(t, w.Flows(SideA))
	if !fa.Encrypted {
		t.Fatalf("G_A has no keys after G_B's Init message arrived in order: %+v", fa)
	}
	// The holes behind the Init message are still open: G_A holds as many
	// ranges as its reassembly keeps (a flow reports its stream once it
	// has keys, hence here and not before the Init message).
	if fa.Stream == nil || fa.Stream.In.WireHeldSpans != heldMax {
		t.Fatalf("G_A holds %+v, want %d ranges", fa.Stream, heldMax)
	}
	w.Link.Rules = nil
	for i := 0; i < 2*heldMax; i++ {
		if i == 0 || i%2 == 1 {
			w.Host(SideB, b.Data(i*size, isnA+1, segs[i]))
		}
	}
	w.Run(latency)
	st := hostStream(t, w.All[SideA], isnB)
	if want := bytes.Join(segs, nil); !bytes.Equal(st.Contiguous(), want) {
		t.Fatalf("a has %d bytes in order, want %d", len(st.Contiguous()), len(want))
	}
}
