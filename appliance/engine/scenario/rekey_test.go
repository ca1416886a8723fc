package scenario

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestRekeyDuringLoss: G_A rekeys after 2000 bytes (RekeyBytes), that is
// on the third of four 1000-byte frames. The frames
// around the rekey are lost on the link, including the first frame under
// the new generation (rekey bit set, TC-54); later frames arrive and are
// held. The host retransmits; G_A resends the stored frames with the same
// bytes, so each under the key it was first sealed with (TC-59, TC-45). G_B
// opens them in order, follows the rekey and answers with an empty rekey
// frame (TC-56, TC-57), which G_A consumes. Exactly one frame each way
// carries the rekey bit (TC-55), and both report key generation 1.
func TestRekeyDuringLoss(t *testing.T) {
	f := newFixture(t, [2]bool{true, true}, false, func(s Side, c *engine.Config) {
		if s == SideA {
			c.RekeyBytes = 2000
		}
	})
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	w.Link.Add(Rule{Dir: AtoB, Match: nthData(1), Drop: true})
	w.Link.Add(Rule{Dir: AtoB, Match: nthData(1), Drop: true}) // the next one too (its counter starts later)
	var all []byte
	for i := range 4 {
		p := chunk(byte('0'+i), 1000)
		all = append(all, p...)
		w.Host(SideA, a.Data(i*1000, isnB+1, p))
	}
	w.Run(3 * latency)
	if got := hostStream(t, w.All[SideB], isnA).Contiguous(); len(got) != 1000 {
		t.Fatalf("b has %d bytes before the retransmission, want 1000", len(got))
	}
	w.Run(200 * time.Millisecond)
	w.Host(SideA, a.Data(1000, isnB+1, all[1000:2000]))
	w.Host(SideA, a.Data(2000, isnB+1, all[2000:3000]))
	w.Run(3 * latency)
	if got := hostStream(t, w.All[SideB], isnA).Contiguous(); !bytes.Equal(got, all) {
		t.Fatalf("b has %d bytes, want %d", len(got), len(all))
	}
	ab := wireStream(t, w, AtoB, isnA)
	var rekeys int
	for i, fr := range splitFrames(t, ab.Contiguous(), init1) {
		if fr.Rekey {
			rekeys++
			if i < 2 {
				t.Fatalf("frame %d carries the rekey bit before 2000 bytes were sent", i)
			}
		}
	}
	if rekeys != 1 {
		t.Fatalf("%d frames from A carry the rekey bit, want 1 (TC-54, TC-55)", rekeys)
	}
	// b answers with data under the new generation.
	w.Host(SideB, b.Data(0, a.Seq(4000), []byte("after the rekey")))
	w.Run(3 * latency)
	ba := wireStream(t, w, BtoA, isnB)
	rekeys = 0
	for _, fr := range splitFrames(t, ba.Contiguous(), init2) {
		if fr.Rekey {
			rekeys++
		}
	}
	if rekeys != 1 {
		t.Fatalf("%d frames from B carry the rekey bit, want 1 (TC-57)", rekeys)
	}
	if got := hostStream(t, w.All[SideA], isnB).Contiguous(); string(got) != "after the rekey" {
		t.Fatalf("a has %q", got)
	}
	fa, fb := one2(t, w.Flows(SideA)), one2(t, w.Flows(SideB))
	if fa.KeyGeneration != 1 || fb.KeyGeneration != 1 {
		t.Fatalf("key generations A %d, B %d; want 1 and 1", fa.KeyGeneration, fb.KeyGeneration)
	}
}

// TestRekeyWithPeer checks rekeying against the reference implementation
// (package tcpcrypt's KeyRing, in a host-based peer), not against a second
// copy of the engine: the peer (role A) starts a rekey; G_B opens the
// frame under the next generation, delivers its data to b, and answers at
// once with a rekey frame, empty since b has nothing to send (TC-56,
// TC-57), which the peer opens under generation 1. Then G_B starts one
// itself (RekeyBytes) and the peer follows.
func TestRekeyWithPeer(t *testing.T) {
	f := newFixture(t, [2]bool{false, true}, false, func(_ Side, c *engine.Config) {
		c.RekeyBytes = 3000
	})
	w, a, b := f.w, f.a, f.b
	p := peerA(t, f, nil)
	if err := p.Ring.StartRekey(); err != nil {
		t.Fatal(err)
	}
	fr := p.Seal([]byte("under generation one"), false)
	w.SendFar(SideA, a.Data(int(p.SendOff)-len(fr), b.Seq(init2), fr))
	w.Run(2 * latency)
	if st := hostStream(t, w.All[SideB], isnA); string(st.Contiguous()) != "under generation one" {
		t.Fatalf("b has %q", st.Contiguous())
	}
	peerFeed(t, f, p, SideA)
	if len(p.Frames) != 1 || !p.Frames[0].Rekey || len(p.Frames[0].Data) != 0 || p.Ring.Remote() != 1 {
		t.Fatalf("peer got %+v (remote generation %d), want one empty rekey frame (TC-57)", p.Frames, p.Ring.Remote())
	}
	// b sends more than RekeyBytes: G_B raises its generation once.
	var sent []byte
	off := 0
	for i := range 4 {
		c := chunk(byte('s'+i), 1000)
		sent = append(sent, c...)
		w.Host(SideB, b.Data(off, a.Seq(20), c))
		off += len(c)
	}
	w.Run(2 * latency)
	peerFeed(t, f, p, SideA)
	if !bytes.Equal(p.Data(), sent) {
		t.Fatalf("peer decrypted %d bytes, want %d", len(p.Data()), len(sent))
	}
	var rekeys int
	for _, fr := range p.Frames {
		if fr.Rekey {
			rekeys++
		}
	}
	if rekeys != 2 || p.Ring.Remote() != 2 {
		t.Fatalf("peer saw %d rekey frames, remote generation %d; want 2 and 2", rekeys, p.Ring.Remote())
	}
	if !p.Ring.Owed() {
		t.Fatal("peer owes no rekey answer")
	}
	ans := p.Seal(nil, false)
	w.SendFar(SideA, a.Data(int(p.SendOff)-len(ans), b.Seq(init2+4000+4*ovh+ovh), ans))
	w.Run(2 * latency)
	if fb := one2(t, w.Flows(SideB)); fb.KeyGeneration != 2 {
		t.Fatalf("G_B at key generation %d, want 2", fb.KeyGeneration)
	}
	for _, s := range w.All[SideB] {
		if s.Has(packettest.RST) {
			t.Fatalf("b got RST: %v", s)
		}
	}
}

// TestRekeyByTime: G_A rekeys after RekeyAfter even with no data to send
// (RFC 8548 §3.9 recommends rekeying as the liveness check). One frame each
// way carries the rekey bit and both ends reach generation 1; data keeps
// flowing.
func TestRekeyByTime(t *testing.T) {
	f := newFixture(t, [2]bool{true, true}, false, func(s Side, c *engine.Config) {
		if s == SideA {
			c.RekeyAfter = time.Second
		}
	})
	f.handshake(t)
	f.exchange(t)
	f.w.Run(1500 * time.Millisecond)
	f.ab.wireOff = len(wireStream(t, f.w, AtoB, isnA).Contiguous())
	f.ba.wireOff = len(wireStream(t, f.w, BtoA, isnB).Contiguous())
	f.w.Take(SideA)
	f.w.Take(SideB)
	f.exchange(t)
	count := func(d Dir, isn uint32, start int) int {
		n := 0
		for _, fr := range splitFrames(t, wireStream(t, f.w, d, isn).Contiguous(), start) {
			if fr.Rekey {
				n++
			}
		}
		return n
	}
	if a, b := count(AtoB, isnA, init1), count(BtoA, isnB, init2); a != 1 || b != 1 {
		t.Fatalf("rekey frames: %d from A, %d from B; want 1 and 1", a, b)
	}
	fa, fb := one2(t, f.w.Flows(SideA)), one2(t, f.w.Flows(SideB))
	if fa.KeyGeneration != 1 || fb.KeyGeneration != 1 {
		t.Fatalf("key generations %d and %d, want 1 and 1", fa.KeyGeneration, fb.KeyGeneration)
	}
}
