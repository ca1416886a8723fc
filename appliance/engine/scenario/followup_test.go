package scenario

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Tests for the engine's follow-up changes (lead's brief after the
// integration run): pure ACKs numbered at the wire's SND.NXT, fast
// retransmission of appliance-owned bytes, simultaneous open.

// checkSndNxt fails unless every pure ACK offered to the link in direction
// d carries seq = SND.NXT of that direction at the time: the end of the
// highest byte (SYN and FIN included) offered before it (RFC 9293 §3.10.7:
// an ACK is sent with SEQ=SND.NXT). A pure ACK numbered past bytes the
// receiver has not seen looks to it (and to middleboxes) like a segment
// after a gap.
func checkSndNxt(t *testing.T, w *World, d Dir, isn uint32) {
	t.Helper()
	nxt, seen := isn, false
	for _, s := range w.Link.Sent(d) {
		if s.Has(packettest.RST) {
			continue
		}
		end := s.Seq + uint32(len(s.Payload))
		if s.Has(packettest.SYN) || s.Has(packettest.FIN) {
			end++
		}
		if seen && len(s.Payload) == 0 && s.Flags&(packettest.SYN|packettest.FIN) == 0 && s.Seq != nxt {
			t.Fatalf("link %v: pure ACK at seq %d (offset %d), SND.NXT is %d (offset %d): %v",
				d, s.Seq, int32(s.Seq-isn-1), nxt, int32(nxt-isn-1), s)
		}
		if !seen || int32(end-nxt) > 0 {
			nxt, seen = end, true
		}
	}
}

// TestThirdSegmentAtISN: the third segment (the host's pure ACK, with
// 45 02) leaves G_A at a's ISN+1, before Init1 occupies ISN+1..ISN+75:
// nothing is on the wire yet, so that is the wire's SND.NXT. Init1 follows
// at the same number.
func TestThirdSegmentAtISN(t *testing.T) {
	f := full(t)
	f.stepSYN(t)
	f.stepSYNACK(t)
	out := f.stepACK(t)
	if out[0].Seq != isnA+1 {
		t.Fatalf("third segment at %d, want a's ISN+1 (%d): Init1 has not been sent", out[0].Seq, isnA+1)
	}
	f.stepInit(t)
	f.established(t)
	f.exchange(t)
	checkSndNxt(t, f.w, AtoB, isnA)
	checkSndNxt(t, f.w, BtoA, isnB)
}

// TestPureACKsAtSndNxt: over random exchanges with loss, duplication and
// reordering (handshake included or not), every pure ACK either appliance
// forwards or originates carries the wire's SND.NXT: the hosts' ACKs,
// the appliances' own ACKs of Init messages and empty frames, and the
// duplicate ACKs with SACK they send for out-of-order frames.
func TestPureACKsAtSndNxt(t *testing.T) {
	seeds := 16
	if testing.Short() {
		seeds = 4
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			hs := seed%2 == 1
			w := followRun(t, 5000+seed, hs, []float64{0, 0.03, 0.1}[seed%3], 20000)
			checkSndNxt(t, w, AtoB, isnA)
			checkSndNxt(t, w, BtoA, isnB)
		})
	}
}

// followRun is simRun's exchange (sim_test.go) returning the world, for
// tests that check the link afterwards.
func followRun(t *testing.T, seed int, hs bool, loss float64, maxData int) *World {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(seed), 0x7cc1))
	f := full(t)
	if !hs {
		f.handshake(t)
	}
	w := f.w
	lr := rand.New(rand.NewPCG(uint64(seed), 0x1111))
	for _, d := range []Dir{AtoB, BtoA} {
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < loss }, Drop: true})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.02 }, Dup: 1})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.05 }, Delay: int64(time.Duration(1+lr.IntN(20)) * time.Millisecond)})
	}
	hosts := [2]*simHost{
		{side: SideA, h: f.a, peer: f.b, rng: rng, data: simData(rng, rng.IntN(maxData)), rcv: NewStream(isnB), hs: hs, active: true, est: !hs},
		{side: SideB, h: f.b, peer: f.a, rng: rng, data: simData(rng, rng.IntN(maxData)), rcv: NewStream(isnA), hs: hs, est: !hs},
	}
	done := func() bool {
		for i, h := range hosts {
			if !h.est || !h.gotFIN || !bytes.Equal(h.rcv.Contiguous(), hosts[1-i].data) || !h.finAcked {
				return false
			}
		}
		return true
	}
	deadline := w.Now + int64(120*time.Second)
	for !done() {
		if w.Now > deadline {
			t.Fatal("exchange not done after 120 s (fake)")
		}
		for _, h := range hosts {
			h.step(w)
		}
		w.Run(time.Millisecond)
		for _, h := range hosts {
			h.receive(t, w, w.Take(h.side))
		}
	}
	w.Run(50 * time.Millisecond)
	return w
}

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

// TestSimultaneousOpen: a and b open actively at the same time. Each
// appliance adds its SYN option (b = 0) and then meets the other's SYN:
// a role clash (ENO-30) that neither negotiates on its host's behalf. Both
// count it as simultaneous_open, the hosts' SYN-ACKs go on the link
// without ENO (ENO-33: an active opener may leave it out after such a
// SYN), and the connection carries plain TCP both ways, untouched.
func TestSimultaneousOpen(t *testing.T) {
	f := full(t)
	w, a, b := f.w, f.a, f.b
	if v := w.Host(SideA, a.SYN(LinuxSYNOpts)); v != engine.Forwarded {
		t.Fatalf("a's SYN at G_A: %v", v)
	}
	if v := w.Host(SideB, b.SYN(LinuxSYNOpts)); v != engine.Forwarded {
		t.Fatalf("b's SYN at G_B: %v", v)
	}
	w.Run(latency)
	for _, s := range []Side{SideA, SideB} {
		g := one(t, fmt.Sprintf("SYN at host %d", s), w.Take(s))
		if !g.Has(packettest.SYN) || g.Has(packettest.ACK) || len(g.ENO()) != 1 {
			t.Fatalf("host %d got %v, want the other's SYN with its appliance's ENO option", s, g)
		}
	}
	n := [2]int{f.mark(AtoB), f.mark(BtoA)}
	synackA, synackB := a.SYNACK(isnB, LinuxSYNOpts), b.SYNACK(isnA, LinuxSYNOpts)
	w.Host(SideA, synackA)
	w.Host(SideB, synackB)
	for i, d := range []Dir{AtoB, BtoA} {
		s := one(t, "SYN-ACK on the link", f.sentSince(d, n[i]))
		if len(s.ENO()) != 0 || !bytes.Equal(s.Raw, [][]byte{synackA, synackB}[i]) {
			t.Fatalf("SYN-ACK on the link %v: %v, want the host's unchanged, without ENO (ENO-33)", d, s)
		}
	}
	w.Run(latency)
	w.Take(SideA)
	w.Take(SideB)
	// Each far SYN-ACK repeats the SYN that crossed its appliance's: that
	// shows the simultaneous open (a blind SYN alone does not end the
	// negotiation).
	for _, s := range []Side{SideA, SideB} {
		fl := one2(t, w.Flows(s))
		if fl.State != "plain" || fl.Encrypted || fl.FallbackReason == "" {
			t.Fatalf("side %d flow: %+v", s, fl)
		}
		if n := w.G[s].Counters().Fallbacks[engine.FallbackSimultaneousOpen].Load(); n != 1 {
			t.Fatalf("side %d: %d simultaneous-open fallbacks, want 1", s, n)
		}
	}
	msg := []byte("plain after a simultaneous open")
	data := a.Data(0, isnB+1, msg)
	w.Host(SideA, data)
	w.Run(latency)
	if g := one(t, "data at b", w.Take(SideB)); !bytes.Equal(g.Raw, data) {
		t.Fatalf("b got %v, want a's segment untouched", g)
	}
}
