package engine

import "testing"

// A segment of a's lost before G_A leaves a hole in a's stream: G_A seals in
// stream order, so the data past the hole waits for a to send the hole again.
// It is counted as host_gap, not out_of_window: out_of_window is about the
// far side, and the integration tests require none of those under loss and
// reordering on the untrusted link.
func TestHostDataPastAHole(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	lost := []byte("bytes lost between a and G_A")
	later := []byte("bytes after the hole")
	start := h.aNext
	h.aNext += uint32(len(lost)) // a sent them; G_A never saw them
	oow := pr.ga.e.Counters().Drops[DropOutOfWindow].Load()
	if w := pr.aSends(&h, later, pshF); len(w) != 0 {
		t.Fatalf("data past the hole left on the wire: %d segments", len(w))
	}
	if n := pr.ga.e.Counters().Drops[DropHostGap].Load(); n != 1 {
		t.Fatalf("host_gap drops %d, want 1", n)
	}
	if n := pr.ga.e.Counters().Drops[DropOutOfWindow].Load(); n != oow {
		t.Fatalf("out_of_window drops %d, want %d", n, oow)
	}
	// a's retransmission fills the hole and carries what followed.
	end := h.aNext
	h.aNext = start
	both := append(append([]byte{}, lost...), later...)
	atB, _ := pr.toB(pr.aSends(&h, both, pshF))
	if h.aNext != end {
		t.Fatalf("test arithmetic: a's next %d, want %d", h.aNext, end)
	}
	var got []byte
	for _, s := range atB {
		got = append(got, s.payload...)
	}
	hasBytes(t, "a's stream at b", got, both)
}
