package scenario

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Fast recovery of the bytes the appliance owns in the wire stream (its
// Init message, empty rekey frames) when the link loses them.

// untilAt runs the world in 1 ms steps until host s has want as its
// received stream from the far host (isn), and returns the fake time it
// took, or fails after limit.
func untilAt(t *testing.T, w *World, s Side, isn uint32, want []byte, limit time.Duration) time.Duration {
	t.Helper()
	start := w.Now
	for {
		if bytes.Equal(hostStream(t, w.All[s], isn).Contiguous(), want) {
			return time.Duration(w.Now - start)
		}
		if w.Now-start > int64(limit) {
			t.Fatalf("host %d did not get %q within %v", s, want, limit)
		}
		w.Run(time.Millisecond)
	}
}

// TestInit2LossFastRecovery: Init2 is lost and b speaks first, so its
// banner follows Init2 as B's first frame. G_A holds the frame and answers
// with a duplicate ACK whose SACK block leaves wire offset 0 uncovered:
// the hole is Init2, the appliance's own bytes, so G_B resends it at once
// instead of waiting for its 200 ms timer, and a has the banner after
// about four link latencies (TC-13: frames follow Init2).
func TestInit2LossFastRecovery(t *testing.T) {
	f := full(t)
	w, b := f.w, f.b
	f.stepSYN(t)
	f.stepSYNACK(t)
	lost := w.Link.Add(Rule{Dir: BtoA, Match: func(_ int, s Seg) bool { return len(s.Payload) == init2 }, Drop: true})
	banner := []byte("220 MARK banner")
	sent := false
	w.React = func(s Side, g Seg) {
		if s == SideB && !sent && !g.Has(packettest.SYN) {
			sent = true
			w.Host(SideB, b.Data(0, isnA+1, banner))
		}
	}
	f.stepACK(t)
	took := untilAt(t, w, SideA, isnB, banner, time.Second)
	if lost.Hits != 1 {
		t.Fatal("Init2 was not lost")
	}
	if took >= engine.DefaultInitRTO/2 {
		t.Fatalf("a got the banner after %v: recovery waited for the timer (RTO %v)", took, engine.DefaultInitRTO)
	}
	if n := w.G[SideB].Counters().InitRetransmits.Load(); n != 1 {
		t.Fatalf("G_B resent Init2 %d times, want once", n)
	}
	f.established(t)
}

// TestRekeyFrameLossFastRecovery: G_A's empty rekey frame (rekey by time
// on an idle connection) is lost, then a sends data. G_B holds the data
// frame (it cannot be opened before the rekey frame: TC-54) and its SACK
// shows the hole at the rekey frame; G_A resends it at once, and b gets
// the data well before the appliance's retransmission timer would fire.
func TestRekeyFrameLossFastRecovery(t *testing.T) {
	f := newFixture(t, [2]bool{true, true}, false, func(s Side, c *engine.Config) {
		if s == SideA {
			c.RekeyAfter = time.Second
		}
	})
	f.handshake(t)
	w, a := f.w, f.a
	lost := w.Link.Add(Rule{Dir: AtoB, Match: func(_ int, s Seg) bool { return len(s.Payload) == ovh }, Drop: true})
	for w.G[SideA].Counters().Rekeys.Load() == 0 {
		if w.Now > int64(3*time.Second) {
			t.Fatal("no rekey by time")
		}
		w.Run(10 * time.Millisecond)
	}
	if lost.Hits != 1 {
		t.Fatal("the rekey frame was not lost")
	}
	data := []byte("data behind the lost rekey frame")
	w.Host(SideA, a.Data(0, isnB+1, data))
	took := untilAt(t, w, SideB, isnA, data, time.Second)
	if took >= engine.DefaultInitRTO/2 {
		t.Fatalf("b got the data after %v: recovery waited for the timer (RTO %v)", took, engine.DefaultInitRTO)
	}
	if fb := one2(t, w.Flows(SideB)); fb.KeyGeneration != 1 {
		t.Fatalf("G_B at key generation %d, want 1", fb.KeyGeneration)
	}
}
