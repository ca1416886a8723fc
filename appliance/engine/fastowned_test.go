package engine

import (
	"bytes"
	"testing"
	"time"
)

// toInit2 runs a connection up to G_B's Init2 and returns it, with the
// window G_A's segments carry (Init1's).
func toInit2(t *testing.T) (ga, gb *gw, init2 segv, winA uint16) {
	ga, gb = newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	if len(o) != 2 {
		t.Fatalf("third segment and Init1: %d frames", len(o))
	}
	gb.push(Outside, o[0])
	init1 := parse(t, o[1])
	_, o = gb.push(Outside, o[1])
	return ga, gb, one(t, "Init2", o), init1.win
}

// Init2 is lost and b's first frame follows it: G_A holds the frame and
// answers with a duplicate ACK whose SACK block shows the hole at wire
// offset 0, which only G_B can fill. G_B resends Init2 at once, without
// waiting for its timer (the clock does not move), and a gets b's data.
func TestInit2LossFastRetransmitSACK(t *testing.T) {
	ga, gb, init2, _ := toInit2(t)
	msg := []byte("server speaks first")
	_, o := gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(3, 2), msg))
	frame := one(t, "b's first frame", o)
	if frame.seq != isnB+1+74 {
		t.Fatalf("b's frame at %x, want after Init2", frame.seq)
	}
	// Init2 never arrives; the frame does.
	toIn, o := ga.push(Outside, frame.frame())
	none(t, "data at a before Init2", toIn)
	dup := one(t, "G_A's duplicate ACK", o)
	if dup.ack != isnB+1 || option(dup.opts, 5) == nil {
		t.Fatalf("duplicate ACK: ack %x opts %x, want ack %x with SACK", dup.ack, dup.opts, isnB+1)
	}
	_, o = gb.push(Outside, dup.frame())
	r := one(t, "G_B's answer to the SACK", o)
	if r.seq != isnB+1 || !bytes.Equal(r.payload, init2.payload) {
		t.Fatalf("resent: seq %x, %d bytes; want Init2 again at %x", r.seq, len(r.payload), isnB+1)
	}
	if n := gb.e.Counters().InitRetransmits.Load(); n != 1 {
		t.Fatalf("Init retransmissions %d, want 1", n)
	}
	// A second duplicate ACK for the same hole does not resend it again
	// (the timer covers a lost repeat).
	_, o = gb.push(Outside, dup.frame())
	none(t, "G_B on a repeated duplicate ACK", o)
	toIn, _ = ga.push(Outside, r.frame())
	if got := stream(t, frames(t, toIn)); !bytes.Equal(got, msg) {
		t.Fatalf("a got %q, want %q", got, msg)
	}
}

// The same loss with a far side that does not use SACK: G_B resends Init2
// on the third duplicate ACK (RFC 5681 §3.2), not before.
func TestInit2LossFastRetransmitThreeDupAcks(t *testing.T) {
	_, gb, init2, winA := toInit2(t)
	_, o := gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(3, 2), []byte("hello")))
	one(t, "b's first frame", o) // lost
	dupAck := tcpFrame(addrA, addrB, isnA+1+75, isnB+1, ackF, winA, tsOpt(3, 3), nil)
	for i := 1; i <= 2; i++ {
		_, o = gb.push(Outside, dupAck)
		none(t, "G_B before the third duplicate ACK", o)
	}
	_, o = gb.push(Outside, dupAck)
	r := one(t, "G_B on the third duplicate ACK", o)
	if r.seq != isnB+1 || !bytes.Equal(r.payload, init2.payload) {
		t.Fatalf("resent: seq %x, %d bytes; want Init2 again", r.seq, len(r.payload))
	}
	_, o = gb.push(Outside, dupAck)
	none(t, "G_B on the fourth duplicate ACK", o)
}

// An empty rekey frame G_A put in the stream is lost and a's data follows:
// G_B's SACK shows the hole at the rekey frame and G_A resends it at once
// (the host never would: the bytes are the appliance's).
func TestRekeyFrameLossFastRetransmit(t *testing.T) {
	pr := handshake(t)
	c := pr.ga.e.Config()
	c.RekeyAfter = time.Second
	if err := pr.ga.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	_, o := pr.ga.tick(int64(time.Second) + sweepEvery)
	lost := one(t, "G_A's rekey frame", o)
	if len(lost.payload) != 20 || lost.payload[0] != 1 {
		t.Fatalf("rekey frame: %+v", lost)
	}
	h := newHosts()
	msg := []byte("after the lost rekey frame")
	w := pr.aSends(&h, msg, pshF)
	atB, back := pr.toB(w)
	if len(atB) != 0 || len(back) != 1 || option(back[0].opts, 5) == nil {
		t.Fatalf("G_B: %d segments to b, %d back (want a duplicate ACK with SACK)", len(atB), len(back))
	}
	retx := pr.ga.e.Counters().FrameRetransmits.Load()
	toIn, o := pr.ga.push(Outside, tcpFrameFrom(back[0]))
	var again *segv
	for _, f := range o {
		if s := parse(t, f); s.seq == lost.seq {
			again = &s
		}
	}
	if again == nil || !bytes.Equal(again.payload, lost.payload) {
		t.Fatalf("G_A did not resend the rekey frame at once: %d segments out, %d in", len(o), len(toIn))
	}
	if pr.ga.e.Counters().FrameRetransmits.Load() != retx+1 {
		t.Fatal("the resent rekey frame is not counted")
	}
	atB, _ = pr.toB([]segv{*again})
	if got := stream(t, atB); !bytes.Equal(got, msg) {
		t.Fatalf("b got %+v after the rekey frame arrived", atB)
	}
}
