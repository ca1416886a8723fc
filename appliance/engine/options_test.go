package engine

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// A SYN whose options leave too little room keeps every real option but
// loses its NOP padding so that ENO fits (docs/protocol.md §5).
func TestSYNOptionsRepacked(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	o := []byte{2, 4, 5, 0xb4}
	o = append(o, bytes.Repeat([]byte{1}, 12)...)
	o = append(o, tsOpt(77, 0)...)
	o = append(o, 1, 3, 3, 7, 4, 2)
	o = append(o, 1, 1, 1, 1, 1)
	if len(o) != 39 {
		t.Fatalf("test options %d bytes", len(o))
	}
	_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, o, nil))
	s := one(t, "SYN", out)
	hasBytes(t, "ENO", option(s.opts, 69), unhex("45042423"))
	hasBytes(t, "timestamps kept", option(s.opts, 8), tsOpt(77, 0)[2:])
	if mss(s.opts) != 1460 || option(s.opts, 3) == nil || option(s.opts, 4) == nil {
		t.Fatalf("options lost: %x", s.opts)
	}
}

// URG from the inside host is not carried (docs/protocol.md §13: do not generate
// URGp); the data goes on as ordinary data and the event is counted.
func TestURGStrippedOnEncrypt(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, []byte("urgent!"), pshF|0x20)
	if len(w) != 1 || w[0].flags&0x20 != 0 {
		t.Fatalf("URG on the wire: %+v", w)
	}
	if pr.ga.e.Counters().URGStripped.Load() != 1 {
		t.Fatal("URG not counted")
	}
}

// A frame with URGp (as a host-based peer may send) reaches the inside host
// as a segment with URG set, the pointer just past the last urgent byte.
func TestURGpOnDecrypt(t *testing.T) {
	pr := handshake(t)
	f := pr.ga.e.flows[flowKey{in: addrA, out: addrB}]
	data := []byte("abcdefgh")
	sk, err := f.keys.Send(len(data), false)
	if err != nil {
		t.Fatal(err)
	}
	hdr := tcpcrypt.FrameHeader{URG: true, Urgent: 3, Rekey: sk.Rekey}
	buf := make([]byte, len(data)+hdr.Overhead())
	copy(buf[hdr.DataStart():], data)
	fr, err := sk.Sealer.Seal(buf, hdr, len(data), uint64(f.enc.nextW))
	if err != nil {
		t.Fatal(err)
	}
	seg := segv{src: addrA, dst: addrB, seq: wrap(isnA, f.enc.nextW), ack: isnB + 1 + 74, flags: ackF | pshF, win: 502, payload: fr}
	atB, _ := pr.toB([]segv{seg})
	if len(atB) != 1 || string(atB[0].payload) != string(data) || atB[0].flags&0x20 == 0 {
		t.Fatalf("at b: %+v", atB)
	}
	if atB[0].urg != 4 {
		t.Fatalf("urgent pointer %d, want 4", atB[0].urg)
	}
}

// Frames with URGp wait for b's window like any other (RFC 9293 §3.8.6):
// with b's window closed, nothing reaches b; b's window update brings each
// frame's data with URG on the segment that carries its first byte, the
// pointer just past its last urgent byte (docs/protocol.md §13), and R's
// retransmission of the frames, which b has not acknowledged, brings them
// again with URG. Before, a URG frame went to b at once, into the closed
// window, and, counted as sent, was never sent again after the update.
func TestURGpWaitsForHostWindow(t *testing.T) {
	pr := handshake(t)
	pr.tsB++
	pr.gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF, 0, tsOpt(pr.tsB, pr.tsA), nil)) // b's window closes
	first := farFrame(t, pr, tcpcrypt.FrameHeader{URG: true, Urgent: 3}, []byte("abcdefgh"))
	second := first
	second.seq += uint32(len(first.payload))
	second.payload = farFrameAt(t, pr, tcpcrypt.FrameHeader{URG: true, Urgent: 1}, []byte("ijkl"), int64(second.seq-(isnA+1)))
	atB, _ := pr.toB([]segv{first, second})
	none(t, "URG frames into b's closed window", toFrames(atB))
	check := func(what string, atB []segv) {
		t.Helper()
		if len(atB) != 2 {
			t.Fatalf("%s: %d segments at b, want 2", what, len(atB))
		}
		for i, want := range []struct {
			data string
			urg  uint16
		}{{"abcdefgh", 4}, {"ijkl", 2}} {
			if s := atB[i]; string(s.payload) != want.data || s.flags&0x20 == 0 || s.urg != want.urg {
				t.Fatalf("%s: segment %d at b: %q, URG %v, pointer %d; want %q with pointer %d", what, i, s.payload, s.flags&0x20 != 0, s.urg, want.data, want.urg)
			}
		}
	}
	pr.tsB++
	toIn, _ := pr.gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	var got []segv
	for _, f := range toIn {
		got = append(got, parse(t, f))
	}
	check("after b's window update", got)
	atB, _ = pr.toB([]segv{first, second})
	check("after R's retransmission", atB)
}

// The urgent field is 16 bits, the pointer just past it too: 0xffff (the
// last urgent byte 65,535 bytes on) gives the pointer 0xffff, as Linux
// clamps one that lies further, not 0, a pointer before the segment.
func TestURGpPointerClamped(t *testing.T) {
	pr := handshake(t)
	atB, _ := pr.toB([]segv{farFrame(t, pr, tcpcrypt.FrameHeader{URG: true, Urgent: 0xffff}, []byte("abcdefgh"))})
	if len(atB) != 1 {
		t.Fatalf("%d segments at b, want 1", len(atB))
	}
	if s := atB[0]; s.flags&0x20 == 0 || s.urg != 0xffff {
		t.Fatalf("at b: URG %v, pointer %d, want 0xffff", s.flags&0x20 != 0, s.urg)
	}
}

// A SYN whose option area does not parse passes on as it came (its
// receiver judges it), and was counted as a malformed drop all the same
// (a frames review): operators read a lost SYN. It counts as a fallback.
func TestMalformedSYNOptionsCountedAsFallback(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, []byte{2, 1, 0, 0}, nil)
	toIn, toOut := g.push(Inside, syn)
	none(t, "inside", toIn)
	if len(toOut) != 1 || !bytes.Equal(toOut[0], syn) {
		t.Fatalf("%d frames out; want the SYN unchanged", len(toOut))
	}
	c := g.e.Counters()
	if d, f := c.Drops[DropMalformed].Load(), c.Fallbacks[FallbackNegotiate].Load(); d != 0 || f != 1 {
		t.Fatalf("malformed drops %d, negotiation fallbacks %d; want 0 and 1", d, f)
	}
}
