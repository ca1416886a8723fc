package scenario

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestHandshake: the success case of docs/protocol.md §6 through two appliances,
// every segment checked (see fixture.handshake), then data both ways with
// exact sequence numbers in both spaces (docs/architecture.md §2).
// ENO-1, ENO-9, ENO-17, ENO-26, ENO-27, ENO-34, ENO-37, TC-8, TC-D2, ENO-D7.
func TestHandshake(t *testing.T) {
	f := full(t)
	f.handshake(t)
	f.exchange(t)
	f.exchange(t)
}

// TestHandshakeWithPool: the same with the public-key work on a
// cryptopool.Pool: the results come back through Tick and nothing changes
// on the wire.
func TestHandshakeWithPool(t *testing.T) {
	f := newFixture(t, [2]bool{true, true}, true, nil)
	f.handshake(t)
	f.exchange(t)
}

// TestHandshakeLoss loses each handshake segment in turn on the untrusted
// link and checks the recovery.
func TestHandshakeLoss(t *testing.T) {
	// SYN lost: the host retransmits the same SYN and G_A adds the same
	// ENO bytes (ENO-31): the two SYNs on the link are identical.
	t.Run("SYN", func(t *testing.T) {
		f := full(t)
		w := f.w
		w.Link.Add(Rule{Dir: AtoB, Match: func(n int, _ Seg) bool { return n == 0 }, Drop: true})
		syn := f.a.SYN(LinuxSYNOpts)
		w.Host(SideA, syn)
		w.Run(time.Second)
		if got := w.Take(SideB); len(got) != 0 {
			t.Fatalf("b got %v though the SYN was lost", got)
		}
		w.Host(SideA, syn)
		w.Run(latency)
		sent := w.Link.Sent(AtoB)
		if len(sent) != 2 || !bytes.Equal(sent[0].Raw, sent[1].Raw) {
			t.Fatalf("retransmitted SYN differs on the link (ENO-31):\n %v\n %v", sent[0], sent[len(sent)-1])
		}
		checkSYN(t, sent[1])
		if g := one(t, "SYN at b", w.Take(SideB)); g.MSS() != 1440 {
			t.Fatalf("SYN at b: %v", g)
		}
		f.stepSYNACK(t)
		f.stepACK(t)
		f.stepInit(t)
		f.established(t)
		f.exchange(t)
	})
	// SYN-ACK lost: b retransmits it and G_B adds the same ENO bytes.
	t.Run("SYN-ACK", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		w.Link.Add(Rule{Dir: BtoA, Match: func(n int, _ Seg) bool { return n == 0 }, Drop: true})
		sa := f.b.SYNACK(isnA, LinuxSYNOpts)
		w.Host(SideB, sa)
		w.Run(time.Second)
		if got := w.Take(SideA); len(got) != 0 {
			t.Fatalf("a got %v though the SYN-ACK was lost", got)
		}
		w.Host(SideB, sa)
		w.Run(latency)
		sent := w.Link.Sent(BtoA)
		if len(sent) != 2 || !bytes.Equal(sent[0].Raw, sent[1].Raw) {
			t.Fatalf("retransmitted SYN-ACK differs on the link (ENO-31):\n %v\n %v", sent[0], sent[len(sent)-1])
		}
		checkSYNACK(t, sent[1])
		g := one(t, "SYN-ACK at a", w.Take(SideA))
		if len(g.ENO()) != 0 || g.MSS() != 1440 {
			t.Fatalf("SYN-ACK at a: %v", g)
		}
		f.stepACK(t)
		f.stepInit(t)
		f.established(t)
		f.exchange(t)
	})
	// Third segment lost: Init1 still carries 45 02 (ENO-26), so G_B sees
	// an ACK with ENO and enables encryption (ENO-34); b must still get an
	// ACK that completes its handshake, and no Init bytes.
	t.Run("ACK", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		f.stepSYNACK(t)
		n := f.mark(AtoB)
		w.Link.Add(Rule{Dir: AtoB, Match: func(_ int, s Seg) bool {
			return !s.Has(packettest.SYN) && len(s.Payload) == 0
		}, Drop: true})
		w.Host(SideA, f.a.ACK(0, isnB+1))
		w.Run(0)
		checkInit(t, "Init1", f.sentSince(AtoB, n), isnA+1, init1, magic1)
		m := f.mark(BtoA)
		w.Run(latency)
		got := w.Take(SideB)
		if len(got) == 0 {
			t.Fatal("b got no ACK: its handshake cannot complete")
		}
		for _, s := range got {
			if len(s.Payload) != 0 || s.Seq != isnA+1 || s.Ack != isnB+1 || s.Has(packettest.SYN) {
				t.Fatalf("b got %v, want the ACK at a's ISN+1 without Init bytes", s)
			}
		}
		checkInit(t, "Init2", f.sentSince(BtoA, m), isnB+1, init2, magic2)
		w.Run(3 * latency)
		f.established(t)
		f.exchange(t)
	})
	// Init1 lost: G_A retransmits it on its timer (initial RTO 200 ms) with
	// the same bytes (TC-45); the host never sees it.
	t.Run("Init1", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		f.stepSYNACK(t)
		drop := w.Link.Add(Rule{Dir: AtoB, Match: func(_ int, s Seg) bool { return len(s.Payload) > 0 }, Drop: true, Times: -1})
		first := f.stepACK(t)
		w.Run(100 * time.Millisecond)
		if len(withData(w.Take(SideB))) != 0 {
			t.Fatal("b got data")
		}
		drop.Times = 0 // let the retransmission through
		drop.Hits = 1
		n := f.mark(AtoB)
		w.Run(200 * time.Millisecond)
		re := withData(f.sentSince(AtoB, n))
		if len(re) == 0 {
			t.Fatal("Init1 not retransmitted within 300 ms")
		}
		checkInit(t, "retransmitted Init1", re, isnA+1, init1, magic1)
		if !bytes.Equal(payload(re), payload(withData(first))) {
			t.Fatal("retransmitted Init1 differs from the original (TC-45)")
		}
		w.Run(5 * latency)
		for _, s := range w.Take(SideB) {
			if len(s.Payload) != 0 {
				t.Fatalf("b got Init bytes: %v", s)
			}
		}
		f.established(t)
		f.exchange(t)
	})
	// Init2 lost: G_B retransmits it with the same bytes.
	t.Run("Init2", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		f.stepSYNACK(t)
		drop := w.Link.Add(Rule{Dir: BtoA, Match: func(_ int, s Seg) bool { return len(s.Payload) > 0 }, Drop: true, Times: -1})
		f.stepACK(t)
		n := f.mark(BtoA)
		w.Run(latency)
		first := withData(f.sentSince(BtoA, n))
		checkInit(t, "Init2", first, isnB+1, init2, magic2)
		drop.Times, drop.Hits = 0, 1
		n = f.mark(BtoA)
		w.Run(300 * time.Millisecond)
		re := withData(f.sentSince(BtoA, n))
		if len(re) == 0 {
			t.Fatal("Init2 not retransmitted within 300 ms")
		}
		checkInit(t, "retransmitted Init2", re, isnB+1, init2, magic2)
		if !bytes.Equal(payload(re), payload(first)) {
			t.Fatal("retransmitted Init2 differs from the original (TC-45)")
		}
		w.Run(5 * latency)
		for _, s := range w.Take(SideA) {
			if len(s.Payload) != 0 {
				t.Fatalf("a got Init bytes: %v", s)
			}
		}
		f.established(t)
		f.exchange(t)
	})
}
