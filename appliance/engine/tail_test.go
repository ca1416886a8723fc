package engine

import (
	"bytes"
	"math/rand/v2"
	"slices"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"testing"
)

// randomData is n bytes that no other call's bytes repeat, so that a
// byte written over another shows.
func randomData(n int, seed uint64) []byte {
	d := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range d {
		d[i] = byte(r.Uint32())
	}
	return d
}

// handleAll hands the engine frames from one port, one after another, as a
// worker's batch: nothing is taken from the sinks (the ports do not flush)
// in between.
func (g *gw) handleAll(from PortID, frames ...[]byte) {
	g.t.Helper()
	for _, f := range frames {
		g.e.Handle(g.now, from, bytes.Clone(f), g.tx)
	}
}

// TestTailsStayUntilRead: the payload of a super-frame lent to the port as
// it lies in the engine's ring (TailSink.CommitTail) must not change until
// the port has read it, at its next flush. In one batch an ACK can release
// those bytes (early, as a forged ACK or a host's ACK of a re-delivery
// can), and new bytes after it can wrap the ring onto their place. Each
// gateway gets such a batch before its ports flush: data, an ACK of all
// of it, then more data, enough to wrap its ring (retransmit store at G_A,
// delivery ring at G_B) onto the first data's place. b must get exactly
// what a sent.
func TestTailsStayUntilRead(t *testing.T) {
	cfg := Config{TEPs: testTEPs}
	d1, d2 := randomData(20000, 1), randomData(14000, 2)

	t.Run("store", func(t *testing.T) {
		pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
		_, aOut := withSinks(pr.ga, true)
		withSinks(pr.gb, true)
		h := newHosts()
		seg1 := tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA+1, pr.tsB), d1)
		seg2 := tcpFrame(addrA, addrB, h.aNext+uint32(len(d1)), h.bNext, ackF|pshF, 502, tsOpt(pr.tsA+2, pr.tsB), d2)
		pr.ga.handleAll(Inside, seg1)
		if len(aOut.lent) != 1 {
			t.Fatalf("G_A lent %d tails for a's first segment, want 1", len(aOut.lent))
		}
		// R acknowledges all of the super-frame the port has not sent yet.
		l := aOut.lent[0]
		var sf packet.Packet // its TCP checksum is the port's to fill
		if err := sf.Decode(append(bytes.Clone(l.head), l.tail...)); err != nil {
			t.Fatal(err)
		}
		end := sf.Seq() + uint32(len(sf.Payload()))
		pr.ga.handleAll(Outside, tcpFrame(addrB, addrA, isnB+1+74, end, ackF, 65535, tsOpt(pr.tsB, pr.tsA+1), nil))
		pr.ga.handleAll(Inside, seg2)
		_, wire := pr.ga.take()
		var atB []byte
		for i := 0; i < len(wire); i += 20 {
			in, _ := pr.gb.push(Outside, coalesced(t, wire[i:min(i+20, len(wire))]))
			for _, f := range in {
				atB = append(atB, parse(t, f).payload...)
			}
		}
		if want := append(bytes.Clone(d1), d2...); !bytes.Equal(atB, want) {
			t.Fatalf("b got %d bytes, not the %d a sent (opening failures: %d)", len(atB), len(want), pr.gb.e.Counters().AuthFailures.Load())
		}
	})

	// The lent run ends at the delivery ring's end, and the next data
	// wraps to its start and opens in place there (openDst), up into
	// the lent bytes: d0 (20,000 bytes) fills the 32 KiB ring to 20,000,
	// d1 (12,768) to its end, d2 (22,000) from its start.
	t.Run("delivery at the ring's end", func(t *testing.T) {
		pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
		withSinks(pr.ga, true)
		bIn, _ := withSinks(pr.gb, true)
		h := newHosts()
		d0, d1, d2 := randomData(20000, 3), randomData(12768, 4), randomData(22000, 5)
		var wire [3][][]byte
		for i, d := range [][]byte{d0, d1, d2} {
			pr.tsA++
			_, wire[i] = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), d))
			h.aNext += uint32(len(d))
		}
		pr.gb.push(Outside, coalesced(t, wire[0]))
		pr.tsB++
		pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+uint32(len(d0)), ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
		for _, f := range pr.gb.e.list {
			if n := len(f.rcv.plain.b); n != 32768 {
				t.Fatalf("delivery ring of %d bytes, want 32768 (the test's arithmetic)", n)
			}
		}
		pr.gb.handleAll(Outside, coalesced(t, wire[1]))
		if len(bIn.lent) != 1 || len(bIn.lent[0].tail) != len(d1) {
			t.Fatalf("G_B lent %d tails for d1, want one of its %d bytes", len(bIn.lent), len(d1))
		}
		pr.tsB++
		pr.gb.handleAll(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+uint32(len(d0)+len(d1)), ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
		pr.gb.handleAll(Outside, coalesced(t, wire[2]))
		in, _ := pr.gb.take()
		checkPayloads(t, in, d1, d2)
	})

	t.Run("delivery", func(t *testing.T) {
		pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
		withSinks(pr.ga, true)
		bIn, _ := withSinks(pr.gb, true)
		h := newHosts()
		var wire [2][][]byte
		for i, d := range [][]byte{d1, d2} {
			pr.tsA++
			_, wire[i] = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), d))
			h.aNext += uint32(len(d))
		}
		pr.gb.handleAll(Outside, coalesced(t, wire[0]))
		if len(bIn.lent) != 1 {
			t.Fatalf("G_B lent b %d tails for one super-segment, want 1", len(bIn.lent))
		}
		// b acknowledges the first data, of which the port has sent nothing yet.
		pr.tsB++
		pr.gb.handleAll(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+uint32(len(d1)), ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
		pr.gb.handleAll(Outside, coalesced(t, wire[1]))
		in, _ := pr.gb.take()
		checkPayloads(t, in, d1, d2)
	})
}

// checkPayloads fails unless frames' payloads, in order, are the parts
// put together.
func checkPayloads(t *testing.T, frames [][]byte, parts ...[]byte) {
	t.Helper()
	var got, want []byte
	for _, f := range frames {
		got = append(got, parse(t, f).payload...)
	}
	for _, p := range parts {
		want = append(want, p...)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("b got %d bytes, not the %d a sent: first difference at %d", len(got), len(want), i)
	}
}

// take returns what the sinks hold, as push would after a frame: the ports
// flush.
func (g *gw) take() (toIn, toOut [][]byte) {
	g.t.Helper()
	toIn, toOut = g.in.take(), g.out.take()
	for _, f := range append(slices.Clone(toIn), toOut...) {
		checkFrame(g.t, f)
	}
	return toIn, toOut
}

// TestLoanKeepsLowestOffset: two loans of one ring before a flush keep its
// bytes from the lower offset, in whichever order they came (a fresh
// delivery, then a re-delivery below it); after the flush nothing is kept.
func TestLoanKeepsLowestOffset(t *testing.T) {
	var e Engine
	s := newGSOTestSink()
	for _, offs := range [][2]int64{{500, 1000}, {1000, 500}} {
		r := ring{b: make([]byte, 4096), max: 1 << 20}
		e.lend(&r, s, offs[0])
		e.lend(&r, s, offs[1])
		// Live bytes from 3000 on, room wanted to 5000: from the loan's
		// 500 that is 4500 bytes, more than the ring's 4096.
		if !e.reserveLent(&r, 3000, 3000, 5000) || len(r.b) <= 4096 {
			t.Fatalf("loans at %d then %d: ring of %d bytes after reserving, want it grown", offs[0], offs[1], len(r.b))
		}
		s.take() // the port flushes
		r2 := ring{b: make([]byte, 4096), max: 1 << 20}
		e.lend(&r2, s, 500)
		s.take()
		if !e.reserveLent(&r2, 3000, 3000, 5000) || len(r2.b) != 4096 || len(e.loans) != 0 {
			t.Fatalf("a loan read by the port still counts: ring of %d bytes, %d loans", len(r2.b), len(e.loans))
		}
	}
}
