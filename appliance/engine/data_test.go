package engine

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// Host-side bookkeeping for a pair: next sequence numbers each host sends.
type hosts struct {
	aNext, bNext uint32 // next byte a sends (host space), next byte b sends
}

func newHosts() hosts { return hosts{aNext: isnA + 1, bNext: isnB + 1} }

// aSendsAt pushes a's segment at host sequence seq through G_A and
// returns the wire segments and what G_A answered a.
func (pr *pair) aSendsAt(h *hosts, seq uint32, data []byte, flags uint8) (wire, toA []segv) {
	pr.t.Helper()
	pr.tsA++
	toIn, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, seq, h.bNext, ackF|flags, 502, tsOpt(pr.tsA, pr.tsB), data))
	for _, f := range toOut {
		wire = append(wire, parse(pr.t, f))
	}
	for _, f := range toIn {
		toA = append(toA, parse(pr.t, f))
	}
	return wire, toA
}

// aSends pushes a data segment from a through G_A at a's next sequence
// number and returns the wire segments; G_A must send nothing back to a.
func (pr *pair) aSends(h *hosts, data []byte, flags uint8) []segv {
	pr.t.Helper()
	wire, toA := pr.aSendsAt(h, h.aNext, data, flags)
	if len(toA) != 0 {
		pr.t.Fatalf("G_A to a after a's data: %d frames, want none", len(toA))
	}
	h.aNext += uint32(len(data))
	if flags&finF != 0 {
		h.aNext++
	}
	return wire
}

// aSendsMany has a send n segments of 1000 bytes, one after the other,
// and returns their wire segments.
func (pr *pair) aSendsMany(h *hosts, n int) []segv {
	pr.t.Helper()
	var wire []segv
	for range n {
		wire = append(wire, pr.aSends(h, make([]byte, 1000), 0)...)
	}
	return wire
}

// toB passes wire segments through G_B and returns what reached b.
func (pr *pair) toB(wire []segv) (atB []segv, back []segv) {
	pr.t.Helper()
	for _, w := range wire {
		toIn, toOut := pr.gb.push(Outside, tcpFrameFrom(w))
		for _, f := range toIn {
			atB = append(atB, parse(pr.t, f))
		}
		for _, f := range toOut {
			back = append(back, parse(pr.t, f))
		}
	}
	return atB, back
}

// bAcks has b acknowledge everything (ack = a's next) and returns what G_B
// sent on the wire.
func (pr *pair) bAcks(h *hosts, ack uint32) []segv {
	pr.t.Helper()
	pr.tsB++
	fr := tcpFrame(addrB, addrA, h.bNext, ack, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil)
	_, toOut := pr.gb.push(Inside, fr)
	var out []segv
	for _, f := range toOut {
		out = append(out, parse(pr.t, f))
	}
	return out
}

func TestDataBothWaysWithFIN(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	msg := []byte("hello, encrypted world: the marker string MARKER-1234")

	// a -> b: one frame of len+20 at wire offset 75 (after Init1).
	wire := pr.aSends(&h, msg, pshF)
	if len(wire) != 1 {
		t.Fatalf("%d wire segments", len(wire))
	}
	w := wire[0]
	if w.seq != isnA+1+75 || len(w.payload) != len(msg)+tcpcrypt.Overhead || w.ack != isnB+1+74 {
		t.Fatalf("wire data: seq %x ack %x len %d", w.seq, w.ack, len(w.payload))
	}
	if bytes.Contains(w.payload, []byte("MARKER")) {
		t.Fatal("plaintext on the wire")
	}
	if option(w.opts, 69) != nil {
		t.Fatal("ENO after a non-SYN segment from R (ENO-26)")
	}
	atB, back := pr.toB(wire)
	none(t, "G_B back", toFrames(back))
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, msg) || atB[0].seq != isnA+1 || atB[0].ack != isnB+1 {
		t.Fatalf("at b: %+v", atB)
	}
	hasBytes(t, "timestamps to b", option(atB[0].opts, 8), option(w.opts, 8))
	n := int64(len(msg))
	frameEnd := 75 + n + tcpcrypt.Overhead // the frame's wire end, after Init1
	// The Init messages (75 bytes) are acknowledged; the frame waits for
	// b, whose window is still its SYN-ACK's 65160 bytes, never scaled
	// (RFC 7323 §2.2), kept in units of its shift 7.
	wantStream(t, pr.gb, StreamIn{WireNext: frameEnd, WireHeldEnd: frameEnd, WireAcked: 75, WireAckSent: 75,
		HostOpened: n, HostSent: n, Frames: 1, WindowL: 65160 >> 7 << 7}, func(s *StreamInfo) any { return s.In })

	// b acknowledges: the wire ACK covers the whole frame.
	acks := pr.bAcks(&h, h.aNext)
	if len(acks) != 1 || acks[0].ack != isnA+1+75+uint32(len(msg))+20 || acks[0].seq != isnB+1+74 {
		t.Fatalf("b's ACK on the wire: %+v", acks)
	}
	toIn, toOut := pr.ga.push(Outside, tcpFrameFrom(acks[0]))
	none(t, "G_A ack outside", toOut)
	a := one(t, "ACK at a", toIn)
	if a.ack != h.aNext || a.seq != isnB+1 {
		t.Fatalf("ACK at a: ack %x want %x, seq %x", a.ack, h.aNext, a.seq)
	}
	wantStream(t, pr.gb, StreamIn{WireNext: frameEnd, WireHeldEnd: frameEnd, WireAcked: frameEnd, WireAckSent: frameEnd,
		HostOpened: n, HostSent: n, HostAcked: n, WindowL: 509 << 7}, func(s *StreamInfo) any { return s.In })
	wantStream(t, pr.ga, StreamOut{HostNext: n, HostAcked: n, WireNext: frameEnd, WireSent: frameEnd, WireAcked: frameEnd,
		WindowR: 509 << 7}, func(s *StreamInfo) any { return s.Out })

	// b -> a: 3000 bytes, split into frames by the wire MSS (1460-20 data).
	reply := bytes.Repeat([]byte("0123456789"), 300)
	pr.tsB++
	// b's MSS toward a is the clamped 1440: with timestamps b sends 1428.
	var got []byte
	for off := 0; off < len(reply); off += 1428 {
		end := min(off+1428, len(reply))
		fr := tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), reply[off:end])
		h.bNext += uint32(end - off)
		_, toOut := pr.gb.push(Inside, fr)
		for _, f := range toOut {
			ws := parse(t, f)
			if len(ws.payload) > 1460 {
				t.Fatalf("wire segment of %d bytes exceeds the MSS", len(ws.payload))
			}
			toIn, _ := pr.ga.push(Outside, f)
			for _, g := range toIn {
				s := parse(t, g)
				if s.seq != isnB+1+uint32(len(got)) {
					t.Fatalf("segment at a: seq %x, want %x", s.seq, isnB+1+uint32(len(got)))
				}
				got = append(got, s.payload...)
			}
		}
	}
	if !bytes.Equal(got, reply) {
		t.Fatalf("a got %d bytes, want %d", len(got), len(reply))
	}
	// a acknowledges all: translated to the wire end of b's last frame.
	pr.tsA++
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 502, tsOpt(pr.tsA, pr.tsB), nil))
	ack := one(t, "a's ACK on the wire", toOut)
	wantW := isnB + 1 + 74 + uint32(len(reply)) + 3*20
	if ack.ack != wantW {
		t.Fatalf("a's ACK translated to %x, want %x", ack.ack, wantW)
	}
	// The same ACK again (no data, no window change) is suppressed.
	if v := pr.ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 502, tsOpt(pr.tsA, pr.tsB), nil), pr.ga.tx); v != Consumed {
		t.Fatalf("repeated ACK: %v, want consumed", v)
	}

	// a closes: bare FIN -> empty FINp frame with TCP FIN (TC-49).
	wire = pr.aSends(&h, nil, finF)
	if len(wire) != 1 || len(wire[0].payload) != 20 || wire[0].flags&finF == 0 {
		t.Fatalf("FIN on the wire: %+v", wire)
	}
	atB, _ = pr.toB(wire)
	if len(atB) != 1 || atB[0].flags&finF == 0 || len(atB[0].payload) != 0 || atB[0].seq != h.aNext-1 {
		t.Fatalf("FIN at b: %+v", atB)
	}
	// b closes with data + FIN.
	pr.tsB++
	_, toOut = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|finF|pshF, 509, tsOpt(pr.tsB, pr.tsA), []byte("bye")))
	fw := one(t, "b's FIN on the wire", toOut)
	if fw.flags&finF == 0 || len(fw.payload) != 23 || fw.ack != isnA+1+75+uint32(len(msg))+20+20+1 {
		t.Fatalf("b's FIN: %+v (ack %x)", fw, fw.ack)
	}
	h.bNext += 4
	toIn, _ = pr.ga.push(Outside, tcpFrameFrom(fw))
	fa := one(t, "b's FIN at a", toIn)
	if fa.flags&finF == 0 || string(fa.payload) != "bye" || fa.ack != h.aNext {
		t.Fatalf("FIN at a: %+v", fa)
	}
	// a's last ACK covers the wire FIN.
	pr.tsA++
	_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 502, tsOpt(pr.tsA, pr.tsB), nil))
	last := one(t, "a's last ACK", toOut)
	if last.ack != fw.seq+23+1 {
		t.Fatalf("last ACK %x, want %x", last.ack, fw.seq+24)
	}
}

func toFrames(s []segv) [][]byte {
	var out [][]byte
	for _, x := range s {
		out = append(out, tcpFrameFrom(x))
	}
	return out
}

// A reordered segment with an older TSval must not make the appliance send
// a segment that goes back in time: the host's PAWS check would drop it.
func TestTimestampsNeverGoBack(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.tsA = 5000
	w1 := pr.aSends(&h, []byte("one"), pshF) // TSval 5001
	pr.tsA = 50                              // a's next segment is a reordered, older one
	w2 := pr.aSends(&h, []byte("two"), pshF)
	ts := func(s segv) uint32 {
		o := option(s.opts, 8)
		return uint32(o[2])<<24 | uint32(o[3])<<16 | uint32(o[4])<<8 | uint32(o[5])
	}
	if ts(w1[0]) != 5001 || ts(w2[0]) != 5001 {
		t.Fatalf("TSvals on the wire %d then %d, want 5001 twice", ts(w1[0]), ts(w2[0]))
	}
}

// wantStream checks one direction of the pair's one flow as FlowInfo.Stream
// reports it (the admin API's flow detail).
func wantStream(t *testing.T, g *gw, want any, dir func(*StreamInfo) any) {
	t.Helper()
	var got any
	g.e.Flows(func(fi FlowInfo) {
		if fi.Stream != nil {
			got = dir(fi.Stream)
		}
	})
	if got != want {
		t.Fatalf("stream:\n got %+v\nwant %+v", got, want)
	}
}

// packets counts g's one flow: segments from the far side, and to it.
func packets(t *testing.T, g *gw) (in, out uint64) {
	t.Helper()
	n := 0
	g.e.Flows(func(f FlowInfo) { in, out, n = f.PacketsIn, f.PacketsOut, n+1 })
	if n != 1 {
		t.Fatalf("%d flows, want 1", n)
	}
	return in, out
}

// PacketsIn counts the segments that came from the far side, PacketsOut
// those that went to it. The inside host's segments were counted as
// packets in too (hostACK), so one data segment a to b and b's ACK left
// G_B at 2 in, 1 out; and a plain flow's segments were not counted at all.
func TestPacketCounts(t *testing.T) {
	pr := handshake(t)
	aIn, aOut := packets(t, pr.ga)
	bIn, bOut := packets(t, pr.gb)
	if aOut != bIn || bOut != aIn || aIn == 0 || bIn == 0 {
		t.Fatalf("after the handshake G_A in %d out %d, G_B in %d out %d: what one sends the other receives", aIn, aOut, bIn, bOut)
	}
	h := newHosts()
	atB, _ := pr.toB(pr.aSends(&h, []byte("hello"), pshF))
	last := atB[len(atB)-1]
	pr.ga.push(Outside, tcpFrameFrom(one(t, "b's ACK on the wire", framesOf(pr.bAcks(&h, last.seq+uint32(len(last.payload)))))))
	for _, c := range []struct {
		g                  *gw
		in, out, wIn, wOut uint64
	}{{pr.ga, aIn, aOut, aIn + 1, aOut + 1}, {pr.gb, bIn, bOut, bIn + 1, bOut + 1}} {
		if in, out := packets(t, c.g); in != c.wIn || out != c.wOut {
			t.Fatalf("after a's data and b's ACK: in %d out %d, want %d and %d", in, out, c.wIn, c.wOut)
		}
	}

	// A plain flow: its segments after the handshake, forwarded.
	g := newGW(t, Config{TEPs: testTEPs})
	g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	g.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	g.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, nil, nil))
	g.push(Outside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, nil, []byte("plain")))
	if in, out := packets(t, g); in != 1 || out != 1 {
		t.Fatalf("plain flow: in %d out %d, want 1 and 1", in, out)
	}
}

// framesOf turns parsed segments back into frames.
func framesOf(ss []segv) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, tcpFrameFrom(s))
	}
	return out
}
