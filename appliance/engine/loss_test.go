package engine

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// sackBlocks reads the SACK blocks of an options area.
func sackBlocks(opts []byte) [][2]uint32 {
	o := option(opts, 5)
	var out [][2]uint32
	for d := o[min(2, len(o)):]; len(d) >= 8; d = d[8:] {
		out = append(out, [2]uint32{binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])})
	}
	return out
}

// A wire segment lost between the appliances: G_B holds the next one,
// answers with a duplicate ACK carrying SACK in wire space (RFC 2018); G_A
// turns it into a host SACK of whole frames; a's retransmission is served
// from the store, byte for byte; b gets everything in order.
func TestWireLossSACKAndHostRetransmission(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	p1, p2, p3 := bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{2}, 200), bytes.Repeat([]byte{3}, 300)
	s1 := h.aNext
	w1 := pr.aSends(&h, p1, 0)
	s2 := h.aNext
	w2 := pr.aSends(&h, p2, 0)
	w3 := pr.aSends(&h, p3, pshF)

	atB, back := pr.toB(w1)
	if len(atB) != 1 || len(back) != 0 {
		t.Fatalf("first segment: %d at b, %d back", len(atB), len(back))
	}
	// w2 is lost. w3 arrives out of order: b has not acknowledged p1 yet,
	// so G_B nudges b for its ACK (p1's last byte again) and R hears of
	// the hole from that ACK, which carries SACK of w3 (dupack.go).
	atB, back = pr.toB(w3)
	if len(atB) != 1 || atB[0].seq != s1+99 || len(atB[0].payload) != 1 || len(back) != 0 {
		t.Fatalf("out of order: %d at b, %d back; want b nudged (p1's last byte again), nothing to R yet", len(atB), len(back))
	}
	back = pr.bAcks(&h, s1+100)
	if len(back) != 1 {
		t.Fatalf("b's ACK of p1: %d segments to R", len(back))
	}
	dup := back[0]
	sb := sackBlocks(dup.opts)
	if dup.ack != w2[0].seq {
		t.Fatalf("ACK number %x, want the hole's start %x", dup.ack, w2[0].seq)
	}
	if len(sb) != 1 || sb[0][0] != w3[0].seq || sb[0][1] != w3[0].seq+uint32(len(w3[0].payload)) {
		t.Fatalf("SACK blocks %x, want [%x %x)", sb, w3[0].seq, w3[0].seq+uint32(len(w3[0].payload)))
	}
	if pr.gb.e.Counters().HostNudges.Load() != 1 {
		t.Fatal("the nudge was not counted")
	}
	toIn, _ := pr.ga.push(Outside, tcpFrameFrom(dup))
	a := one(t, "dup ACK at a", toIn)
	hb := sackBlocks(a.opts)
	if len(hb) != 1 || hb[0][0] != s2+200 || hb[0][1] != s2+500 {
		t.Fatalf("host SACK %x, want [%x %x)", hb, s2+200, s2+500)
	}
	// a retransmits p2 and p3 in ONE segment: G_A sends frames 2 and 3 whole.
	pr.tsA++
	_, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, s2, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), append(append([]byte{}, p2...), p3...)))
	if len(toOut) != 2 {
		t.Fatalf("retransmission: %d wire segments, want 2", len(toOut))
	}
	r2, r3 := parse(t, toOut[0]), parse(t, toOut[1])
	hasBytes(t, "frame 2 retransmitted identically", r2.payload, w2[0].payload)
	hasBytes(t, "frame 3 retransmitted identically", r3.payload, w3[0].payload)
	if r2.seq != w2[0].seq {
		t.Fatal("retransmission at another offset")
	}
	atB, _ = pr.toB([]segv{r2})
	if got := stream(t, atB); !bytes.Equal(got, append(append([]byte{}, p2...), p3...)) {
		t.Fatalf("b got %d bytes after the gap filled", len(got))
	}
	if atB[0].seq != s1+100 {
		t.Fatalf("delivered at %x", atB[0].seq)
	}
	// The duplicate frame 3 is below rcvW: re-delivered to b (not acked yet).
	atB, _ = pr.toB([]segv{r3})
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, p3) {
		t.Fatalf("re-delivery of unacknowledged frame: %+v", atB)
	}
	// Once b acked, a duplicate is answered to R by G_B itself.
	pr.bAcks(&h, h.aNext)
	atB, back = pr.toB([]segv{r3})
	if len(atB) != 0 || len(back) != 1 || back[0].ack != r3.seq+uint32(len(r3.payload)) {
		t.Fatalf("duplicate after ACK: %d at b, back %+v", len(atB), back)
	}
}

// Init1 lost: retransmitted on the timer with backoff; G_B still completes.
func TestInitRetransmission(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	i, _ := gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, o[0])
	_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	if len(o) != 2 {
		t.Fatalf("%d", len(o))
	}
	gb.push(Outside, o[0]) // third segment arrives, Init1 is lost
	_ = i
	_, o = ga.tick(int64(100 * time.Millisecond))
	none(t, "before the RTO", o)
	_, o = ga.tick(int64(150 * time.Millisecond))
	init1 := one(t, "Init1 retransmitted", o)
	if len(init1.payload) != 75 || init1.seq != isnA+1 {
		t.Fatalf("retransmitted Init1: %+v", init1)
	}
	_, o = ga.tick(int64(300 * time.Millisecond))
	none(t, "backoff doubles the RTO", o)
	_, o = gb.push(Outside, tcpFrameFrom(init1))
	init2 := one(t, "Init2", o)
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	one(t, "ACK of Init2", o)
	if !flowInfo(t, ga.e).Encrypted || !flowInfo(t, gb.e).Encrypted {
		t.Fatal("not encrypted")
	}
	if ga.e.Counters().InitRetransmits.Load() != 1 {
		t.Fatal("retransmission not counted")
	}
	_, o = ga.tick(int64(10 * time.Second))
	none(t, "no retransmission after the ACK", o)
}

// b's ACK carries SACK blocks that cover no whole frame (b lost the first
// segment of a large frame's plaintext on the inside link and SACKs the
// rest) while G_B holds R's bytes past a hole: G_B's ACK to R still names
// what it holds (RFC 2018 §4), after L's blocks (none here). Before, b's
// blocks took the place of G_B's and, none translating, the ACK had no
// SACK at all.
func TestHostSACKWithoutWholeFramesKeepsHeldSACK(t *testing.T) {
	pr := handshake(t)
	first := farFrame(t, pr, tcpcrypt.FrameHeader{}, bytes.Repeat([]byte{1}, 3000))
	w := int64(first.seq-(isnA+1)) + int64(len(first.payload))
	w += 1000 + tcpcrypt.Overhead // a frame of 1000 bytes there is lost
	third := first
	third.seq, third.payload = wrap(isnA, w), farFrameAt(t, pr, tcpcrypt.FrameHeader{}, bytes.Repeat([]byte{3}, 500), w)
	atB, _ := pr.toB([]segv{first})
	if len(atB) < 2 {
		t.Fatalf("the first frame reached b in %d segments, want several", len(atB))
	}
	nudge, back := pr.toB([]segv{third})
	held := [2]uint32{third.seq, third.seq + uint32(len(third.payload))}
	if len(back) != 0 || len(nudge) != 1 || len(nudge[0].payload) != 1 {
		// b has not acknowledged the first frame: G_B asks it to
		// (dupack.go), and b's ACK carries the held SACK to R.
		t.Fatalf("past the hole: %d segments to R, %d to b; want b nudged and nothing to R yet", len(back), len(nudge))
	}
	// b lost the first segment: it acknowledges nothing and SACKs the rest.
	rest := atB[1].seq
	pr.tsB++
	opts := append(tsOpt(pr.tsB, pr.tsA), 1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(opts[len(opts)-8:], rest)
	binary.BigEndian.PutUint32(opts[len(opts)-4:], isnA+1+3000)
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF, 509, opts, nil))
	ack := one(t, "b's ACK on the wire", toOut)
	if b := sackBlocks(ack.opts); len(b) != 1 || b[0] != held {
		t.Fatalf("b's ACK went to R with SACK %x, want %x (what G_B holds)", b, held)
	}
}
