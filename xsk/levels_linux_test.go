package xsk

import "testing"

// TestRingLevels: the AF_XDP ring levels the admin API promised
// (tcpinc_ring_used_slots for rx, tx, fill and completion) were never read.
// RingLevels reads each ring's shared indexes: frames waiting in RX, free
// frames lent to the kernel in the fill ring, frames waiting to be sent in
// TX, and sent frames not yet taken back in the completion ring.
func TestRingLevels(t *testing.T) {
	k := newFakeSocket(t, 256, 2048, 64)
	s := k.s
	want := func(step string, rx, tx, fill, comp uint32) {
		t.Helper()
		got := s.RingLevels()
		exp := [4]RingLevel{{"rx", rx, 64}, {"tx", tx, 64}, {"fill", fill, s.fill.size}, {"completion", comp, s.comp.size}}
		if got != exp {
			t.Fatalf("%s: %+v, want %+v", step, got, exp)
		}
	}
	want("at start", 0, 0, 128, 0) // half the frames lent to the kernel for RX
	k.deliver(10, 64)
	want("10 frames received", 10, 0, 118, 0)
	rx := make([]Desc, 16)
	n := s.Receive(rx)
	want("taken by the worker", 0, 0, 118, 0)
	tx := make([]Desc, 16)
	m := s.GetTx(tx[:4])
	for i := range m {
		tx[i].Len = 64
	}
	s.Transmit(tx[:m])
	want("4 frames to send", 0, 4, 118, 0)
	k.complete()
	want("sent", 0, 0, 118, 4)
	s.Release(rx[:n])
	want("RX frames back in the fill ring", 0, 0, 128, 4)
	s.GetTx(tx[:1]) // reaps the completion ring
	want("completions reaped", 0, 0, 128, 0)

	s.closed.Store(true) // as Close leaves it (the fake's memory cannot be unmapped)
	if got := s.RingLevels(); got != [4]RingLevel{{Ring: "rx"}, {Ring: "tx"}, {Ring: "fill"}, {Ring: "completion"}} {
		t.Fatalf("closed: %+v", got)
	}
}
