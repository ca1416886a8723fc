package engine

import (
	"bytes"
	"math/rand"
	"net/netip"
	"testing"
)

// simHost is a small TCP sender/receiver for the engine tests: go-back-N
// sending (resend from the oldest unacknowledged byte when ACKs stop), in
// order receiving, ACKs piggybacked on data and sent for every segment.
type simHost struct {
	name         string
	addr, peer   netip.AddrPort
	g            *gw
	isn, peerISN uint32
	data         []byte
	una, nxt     int // host offsets; len(data) is the FIN
	got          []byte
	gotFIN       bool
	ts, tsPeer   uint32
	stall        int
	mss          int
	sentAnything bool
	keepOpen     bool // no FIN after data: the connection stays open
}

func (h *simHost) ackNo() uint32 {
	a := h.peerISN + 1 + uint32(len(h.got))
	if h.gotFIN {
		a++
	}
	return a
}

func (h *simHost) done() bool { return h.una == h.end() }

// end is the host offset after the last thing to send: the FIN's, or
// the data's when the connection stays open.
func (h *simHost) end() int {
	if h.keepOpen {
		return len(h.data)
	}
	return len(h.data) + 1
}

// send emits up to n segments; it returns the wire frames its appliance sent.
func (h *simHost) send(t *testing.T, n int) (wire [][]byte) {
	for k := 0; k < n && h.nxt < h.end() && h.nxt < h.una+12*h.mss; k++ {
		h.ts++
		var fr []byte
		if h.nxt < len(h.data) {
			end := min(h.nxt+h.mss, len(h.data))
			fr = tcpFrame(h.addr, h.peer, h.isn+1+uint32(h.nxt), h.ackNo(), ackF|pshF, 65535, tsOpt(h.ts, h.tsPeer), h.data[h.nxt:end])
			h.nxt = end
		} else {
			fr = tcpFrame(h.addr, h.peer, h.isn+1+uint32(h.nxt), h.ackNo(), ackF|finF, 65535, tsOpt(h.ts, h.tsPeer), nil)
			h.nxt++
		}
		toIn, toOut := h.g.push(Inside, fr)
		for _, f := range toIn {
			h.receive(t, parse(t, f))
		}
		wire = append(wire, toOut...)
	}
	return wire
}

// receive takes one segment from its appliance.
func (h *simHost) receive(t *testing.T, s segv) bool {
	if s.flags&rstF != 0 {
		t.Fatalf("%s was reset", h.name)
	}
	if o := option(s.opts, 8); o != nil {
		h.tsPeer = uint32(o[2])<<24 | uint32(o[3])<<16 | uint32(o[4])<<8 | uint32(o[5])
	}
	progress := false
	if a := int(s.ack - (h.isn + 1)); s.flags&ackF != 0 && a > h.una && a <= h.nxt {
		h.una, progress = a, true
	}
	off := int(s.seq - (h.peerISN + 1))
	if !h.gotFIN && off <= len(h.got) && off+len(s.payload) > len(h.got) {
		h.got = append(h.got, s.payload[len(h.got)-off:]...)
	}
	if s.flags&finF != 0 && off+len(s.payload) == len(h.got) {
		h.gotFIN = true
	}
	return progress
}

// fromWire hands wire frames to the host's appliance, takes what comes out
// of it for the host, and answers with a pure ACK if anything came; it
// returns what the appliance sent back on the wire.
func (h *simHost) fromWire(t *testing.T, wire [][]byte) (back [][]byte) {
	got := false
	for _, fr := range wire {
		toIn, toOut := h.g.push(Outside, fr)
		back = append(back, toOut...)
		for _, f := range toIn {
			h.receive(t, parse(t, f))
			got = true
		}
	}
	if got {
		back = append(back, h.pureACK(t)...)
	}
	return back
}

// pureACK sends an ACK of everything received; it returns the wire frames.
func (h *simHost) pureACK(t *testing.T) [][]byte {
	h.ts++
	seq := h.isn + 1 + uint32(h.nxt)
	toIn, toOut := h.g.push(Inside, tcpFrame(h.addr, h.peer, seq, h.ackNo(), ackF, 65535, tsOpt(h.ts, h.tsPeer), nil))
	for _, f := range toIn {
		h.receive(t, parse(t, f))
	}
	return toOut
}

// Both hosts send at once over a wire that drops and reorders both ways;
// ACKs ride on data segments. Both streams arrive whole, FIN included.
func TestBidirectionalLossyTransfer(t *testing.T) {
	for _, loss := range []float64{0, 0.1} {
		pr := handshake(t)
		rng := rand.New(rand.NewSource(7))
		a := &simHost{name: "a", addr: addrA, peer: addrB, g: pr.ga, isn: isnA, peerISN: isnB, mss: 1400, data: make([]byte, 120_000)}
		b := &simHost{name: "b", addr: addrB, peer: addrA, g: pr.gb, isn: isnB, peerISN: isnA, mss: 1400, data: make([]byte, 90_000)}
		rng.Read(a.data)
		rng.Read(b.data)
		deliver := func(to *simHost, wire [][]byte) (back [][]byte, progress bool) {
			rng.Shuffle(len(wire), func(i, j int) { wire[i], wire[j] = wire[j], wire[i] })
			got := false
			for _, w := range wire {
				if rng.Float64() < loss {
					continue
				}
				toIn, toOut := to.g.push(Outside, w)
				back = append(back, toOut...)
				for _, f := range toIn {
					if to.receive(t, parse(t, f)) {
						progress = true
					}
					got = true
				}
			}
			if got {
				back = append(back, to.pureACK(t)...)
			}
			return back, progress
		}
		for round := 0; round < 3000 && !(a.done() && b.done() && a.gotFIN && b.gotFIN); round++ {
			wa, wb := a.send(t, 8), b.send(t, 8)
			backA, pb := deliver(b, wa) // a's frames reach b; b's answers go to a
			backB, pa := deliver(a, wb)
			_, pa2 := deliver(a, backA)
			_, pb2 := deliver(b, backB)
			for _, h := range []*simHost{a, b} {
				_, o := h.g.tick(50e6)
				other := b
				if h == b {
					other = a
				}
				deliver(other, o)
			}
			for _, x := range []struct {
				h *simHost
				p bool
			}{{a, pa || pa2}, {b, pb || pb2}} {
				if x.p {
					x.h.stall = 0
				} else if x.h.stall++; x.h.stall > 3 {
					x.h.nxt, x.h.stall = x.h.una, 0
				}
			}
		}
		if !bytes.Equal(b.got, a.data) || !bytes.Equal(a.got, b.data) || !a.gotFIN || !b.gotFIN {
			t.Fatalf("loss %.2f: b got %d/%d, a got %d/%d, FINs %v %v", loss, len(b.got), len(a.data), len(a.got), len(b.data), b.gotFIN, a.gotFIN)
		}
		t.Logf("loss %.2f: frames opened %d/%d, retransmitted %d/%d, dup ACKs %d/%d", loss,
			pr.ga.e.Counters().FramesOpened.Load(), pr.gb.e.Counters().FramesOpened.Load(),
			pr.ga.e.Counters().FrameRetransmits.Load(), pr.gb.e.Counters().FrameRetransmits.Load(),
			pr.ga.e.Counters().DupAcksOriginated.Load(), pr.gb.e.Counters().DupAcksOriginated.Load())
		if !a.done() || !b.done() {
			t.Fatalf("loss %.2f: FINs not acknowledged (a una %d, b una %d)", loss, a.una, b.una)
		}
	}
}
