package scenario

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestFINWithoutFINp: the far side sends a TCP FIN on a segment that ends
// no FINp frame (an attacker closing the connection). G_B must not pass an
// unauthenticated FIN to b (ENO-65, TC-50); it aborts: RST to b and toward
// the far side (TC-51).
func TestFINWithoutFINp(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	p := peerA(t, f, nil)
	fr := p.Seal([]byte("not the last frame"), false)
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(int(p.SendOff)-len(fr)), b.Seq(init2), fr))
	w.Run(2 * latency)
	var rstB bool
	for _, s := range w.All[SideB] {
		if s.Has(packettest.FIN) {
			t.Fatalf("b got a FIN no FINp frame authenticated: %v", s)
		}
		rstB = rstB || s.Has(packettest.RST)
	}
	var rstFar bool
	for _, s := range w.TakeFar(SideA) {
		rstFar = rstFar || s.Has(packettest.RST)
	}
	if !rstB || !rstFar {
		t.Fatalf("FIN without FINp: RST to b %v, toward the far side %v; want both (TC-51)", rstB, rstFar)
	}
}

// TestFINpFromPeer: the far side's FINp frame arrives in a segment with TCP
// FIN; b gets the data and the FIN together (TC-50, TC-D8).
func TestFINpFromPeer(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	p := peerA(t, f, []int{40})
	fr := p.Seal([]byte("last words"), true)
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(int(p.SendOff)-len(fr)), b.Seq(init2), fr))
	w.Run(2 * latency)
	g := one(t, "data at b", withData(w.Take(SideB)))
	if !g.Has(packettest.FIN) || string(g.Payload) != "last words" || g.Seq != a.Seq(0) {
		t.Fatalf("b got %v %q, want \"last words\" with FIN at %d", g, g.Payload, a.Seq(0))
	}
}

// TestFINBeforeKeys: a closes right after its third segment, before Init2
// is back: G_A queues the FIN and sends it as an empty FINp frame with TCP
// FIN once the keys exist (TC-49); b gets a bare FIN at host offset 0.
func TestFINBeforeKeys(t *testing.T) {
	f := full(t)
	w, a := f.w, f.a
	f.stepSYN(t)
	f.stepSYNACK(t)
	f.stepACK(t)
	w.Host(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(0), isnB+1, nil))
	w.Run(4 * latency)
	var fin *Seg
	for _, s := range w.Link.Sent(AtoB) {
		if s.Has(packettest.FIN) {
			fin = &s
		}
	}
	if fin == nil || fin.Seq != a.Seq(init1) || len(fin.Payload) != ovh {
		t.Fatalf("FIN on the link: %v, want an empty FINp frame at %d", fin, a.Seq(init1))
	}
	var got *Seg
	for _, s := range w.All[SideB] {
		if s.Has(packettest.FIN) {
			got = &s
		}
	}
	if got == nil || got.Seq != a.Seq(0) || len(got.Payload) != 0 {
		t.Fatalf("b got FIN %v, want a bare FIN at %d", got, a.Seq(0))
	}
}

// TestFINpBeforeTCPFIN: the far side's FINp frame arrives in a segment
// without TCP FIN, and its TCP FIN follows alone, one segment later. RFC
// 8548 §3.7: the end of stream is reported when and only when the FINp
// frame arrives (TC-50), so b gets its FIN with the frame's data, before
// the far side's TCP FIN; and a TCP FIN whose stream holds the FINp frame
// is no attack (TC-51): nothing is aborted when it comes.
func TestFINpBeforeTCPFIN(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	p := peerA(t, f, nil)
	fr := p.Seal([]byte("last words"), true)
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.PSH, a.Seq(int(p.SendOff)-len(fr)), b.Seq(init2), fr))
	w.Run(2 * latency)
	g := one(t, "data at b", withData(w.Take(SideB)))
	if !g.Has(packettest.FIN) || string(g.Payload) != "last words" {
		t.Fatalf("b got %v %q, want \"last words\" with FIN: the FINp frame is the end of stream (TC-50)", g, g.Payload)
	}
	w.Host(SideB, b.ACK(0, a.Seq(len("last words")+1)))
	w.Run(latency)
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(int(p.SendOff)), b.Seq(init2), nil))
	w.Run(2 * latency)
	for _, s := range w.All[SideB] {
		if s.Has(packettest.RST) {
			t.Fatalf("b got RST after a TCP FIN that follows the FINp frame (TC-51): %v", s)
		}
	}
	var ackFIN bool
	for _, s := range w.TakeFar(SideA) {
		if s.Has(packettest.RST) {
			t.Fatalf("RST toward the far side after its TCP FIN followed the FINp frame (TC-51): %v", s)
		}
		ackFIN = ackFIN || s.Ack == a.Seq(int(p.SendOff))+1
	}
	if !ackFIN {
		t.Fatalf("the far side's TCP FIN at %d was not acknowledged", a.Seq(int(p.SendOff)))
	}
}
