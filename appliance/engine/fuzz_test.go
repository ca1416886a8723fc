package engine

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// FuzzHandle feeds arbitrary frames from either port into an engine that
// holds an encrypted flow: the engine must never panic, and every frame it
// emits must be well formed (checkFrame). Each input gets a pair of its
// own, so that no input finds the flow another one tore down (an RST, a
// FIN without FINp). The first seed is a data frame of another pair: in
// this one its tag does not authenticate.
func FuzzHandle(f *testing.F) {
	h0 := newHosts()
	w := handshake(f).aSends(&h0, []byte("seed data"), pshF)
	f.Add(false, w[0].frame())
	f.Add(true, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(1, 1), []byte("x")))
	f.Add(false, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|finF, 502, append(tsOpt(1, 1), 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9), nil))
	f.Add(true, tcpFrame(addrA, addrB, isnA+1, isnB+1, rstF, 0, nil, nil))
	f.Fuzz(func(t *testing.T, inside bool, frame []byte) {
		pr := handshake(t)
		h := newHosts()
		pr.aSends(&h, []byte("seed data"), pshF)
		for _, g := range []*gw{pr.ga, pr.gb} {
			if _, enc := g.e.CountFlows(); enc != 1 {
				t.Fatalf("%d encrypted flows before the input, want 1", enc)
			}
		}
		from := Outside
		if inside {
			from = Inside
		}
		// A frame with a wrong checksum may come out with a wrong checksum
		// (incremental updates keep it wrong); judge output only for valid
		// input.
		var p packet.Packet
		valid := p.Decode(frame) == nil && p.IsTCP() && p.VerifyL4Checksum() && (p.IPVersion() != 4 || p.VerifyIPv4Checksum())
		for _, g := range []*gw{pr.ga, pr.gb} {
			g.e.Handle(g.now, from, append([]byte(nil), frame...), g.tx)
			for _, s := range [][][]byte{g.in.take(), g.out.take()} {
				for _, fr := range s {
					if valid {
						checkFrame(t, fr)
					}
				}
			}
			g.tick(1e9)
		}
	})
}

// FuzzSegments sends well-formed segments with arbitrary numbers, flags,
// options and payload on the encrypted flow's own tuple, from either side,
// so the input reaches deep into the state machine. Nothing may panic and
// every emitted frame must be valid.
func FuzzSegments(f *testing.F) {
	f.Add(true, int32(0), int32(0), uint8(ackF|pshF), []byte{}, []byte("abc"))
	f.Add(false, int32(75), int32(74), uint8(ackF), []byte{}, make([]byte, 40))
	f.Add(false, int32(-1), int32(0), uint8(ackF|finF), []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9}, []byte{})
	f.Add(true, int32(-1), int32(0), uint8(ackF), []byte{}, []byte{0})
	f.Fuzz(func(t *testing.T, inside bool, dseq, dack int32, flags uint8, opts, payload []byte) {
		if len(opts) > 40 || len(payload) > 3000 {
			return
		}
		pr := handshake(t)
		h := newHosts()
		pr.toB(pr.aSends(&h, []byte("some data first"), pshF))
		var fr []byte
		if inside {
			fr = tcpFrame(addrA, addrB, h.aNext+uint32(dseq), h.bNext+uint32(dack), flags, 502, opts, payload)
		} else {
			fr = tcpFrame(addrB, addrA, isnB+1+74+uint32(dseq), isnA+1+75+uint32(dack), flags, 502, opts, payload)
		}
		for _, g := range []*gw{pr.ga, pr.gb} {
			for i := 0; i < 2; i++ {
				g.e.Handle(g.now, map[bool]PortID{true: Inside, false: Outside}[inside], append([]byte(nil), fr...), g.tx)
				g.tick(3e8)
			}
			for _, s := range [][][]byte{g.in.take(), g.out.take()} {
				for _, x := range s {
					checkFrame(t, x)
				}
			}
		}
	})
}

// FuzzScript runs a script of host segments (arbitrary numbers, flags and
// lengths), wire deliveries (any order, duplicates, drops) and timer ticks
// on an encrypted pair, and checks the security invariants: no 8 bytes of
// host data ever appear on the wire and nothing but the far host's bytes,
// at their place in its stream, ever reaches a host, whatever happens
// (aborts included); every emitted frame is valid. Ops 0xf8 and up send a
// packet-too-big about a frame on the wire (from the outside) or one
// delivered to a host (from the inside, quoting plaintext). After every
// step the engines' incremental flow counts must equal a scan's
// (checkCounts), and no flow's due time is later than its timers
// (checkDue).
func FuzzScript(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0x18, 10, 2, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0x10, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0x19, 3, 3, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0x18, 200, 0, 0, 0, 0, 0, 0x18, 200, 2, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0x18, 20, 2, 0, 0, 0, 9, 6, 0, 2, 0, 0, 0, 9, 2, 0})
	// Data each way, delivered, then a packet-too-big about each frame on
	// the wire and each delivery, then a's data resent.
	f.Add([]byte{0, 0, 0, 0, 0, 0x18, 200, 1, 0, 0, 0, 0, 0x18, 200, 2, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 0, 1, 0,
		0xf8, 0, 0, 0, 0, 0, 60, 0xf9, 0, 0, 0, 0, 0, 60, 0xfa, 0, 0, 0, 0, 0, 60, 0xfb, 0, 0, 0, 0, 0, 60,
		0, 0xf9, 0xc0, 0, 0, 0x18, 200, 2, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		pr := handshake(t)
		h := newHosts()
		streamA, streamB := hostStream{isnA, 'a'}, hostStream{isnB, 'b'}
		var toB, toA [][]byte     // frames on the wire, per direction
		var atA, atB [][]byte     // frames delivered to the hosts
		sent := map[uint64]bool{} // every 8 bytes of host data sent
		// The whole frame is searched, not only a TCP payload: an ICMP
		// error quoting a host's segment would leak it too.
		wire := func(out [][]byte) [][]byte {
			for _, fr := range out {
				checkFrame(t, fr)
				for i := 0; i+8 <= len(fr); i++ {
					if sent[binary.LittleEndian.Uint64(fr[i:])] {
						t.Fatalf("host data on the wire: %x at byte %d of a %d-byte frame", fr[i:i+8], i, len(fr))
					}
				}
			}
			return out
		}
		// What reaches a host is the far host's stream at its place (an
		// ICMP error quotes what it quotes): anything else is ciphertext,
		// garbage or misplaced.
		delivered := func(out [][]byte, far hostStream) [][]byte {
			for _, fr := range out {
				p := checkFrame(t, fr)
				if pl := p.Payload(); p.IsTCP() && len(pl) > 0 && !bytes.Equal(pl, far.at(p.Seq(), len(pl))) {
					t.Fatalf("delivered to a host at %x: %x, not the far host's bytes there", p.Seq(), pl)
				}
			}
			return out
		}
		for len(script) >= 7 {
			// No flow is skipped past a timer something made due
			// earlier (sweepDue, wake).
			checkDue(t, pr.ga)
			checkDue(t, pr.gb)
			op, ds, da, fl, n := script[0]%7, int16(uint16(script[1])<<8|uint16(script[2])), int16(uint16(script[3])<<8|uint16(script[4])), script[5], int(script[6])*8
			// A host segment has any length, down to a 1-byte
			// keep-alive probe: below 16, the byte itself; then 8 times
			// it plus its low bits, so that long ones end at any offset.
			size := int(script[6])
			if size >= 16 {
				size = size*8 + size%8
			}
			if script[0] >= 0xf8 {
				op = 7 + script[0]&3
			}
			script = script[7:]
			switch op {
			case 0, 1:
				g, src, dst, seq, ack, stream, next := pr.ga, addrA, addrB, h.aNext, h.bNext, streamA, &h.aNext
				if op == 1 {
					g, src, dst, seq, ack, stream, next = pr.gb, addrB, addrA, h.bNext, h.aNext, streamB, &h.bNext
				}
				// A host sends the same bytes at the same place whatever
				// the segment, as TCP does: its stream's.
				stream.sent(sent, seq+uint32(ds), size)
				fr := tcpFrame(src, dst, seq+uint32(ds), ack+uint32(da), fl&^synF, 502, tsOpt(5, 5), stream.at(seq+uint32(ds), size))
				in, out := g.push(Inside, fr)
				if op == 0 {
					atA = append(atA, delivered(in, streamB)...)
					toB = append(toB, wire(out)...)
				} else {
					atB = append(atB, delivered(in, streamA)...)
					toA = append(toA, wire(out)...)
				}
				if ds == 0 && fl&(rstF|synF) == 0 {
					*next += uint32(size)
				}
			case 2, 3:
				q, g := &toB, pr.gb
				if op == 3 {
					q, g = &toA, pr.ga
				}
				if len(*q) == 0 {
					continue
				}
				i := int(uint16(ds)) % len(*q)
				fr := (*q)[i]
				if fl&1 == 0 { // else keep it: a duplicate later
					*q = append((*q)[:i], (*q)[i+1:]...)
				}
				if fl&2 != 0 && len(fr) > 60 {
					// Corrupt a byte past the headers; with fl&4 the
					// attacker fixes the checksum too (a forged frame).
					fr = append([]byte(nil), fr...)
					fr[54+int(uint16(da))%(len(fr)-54)] ^= 1 << (fl >> 5)
					if fl&4 != 0 {
						var p packet.Packet
						if p.Decode(fr) == nil {
							p.FixL4Checksum()
						}
					}
				}
				in, out := g.push(Outside, fr)
				if op == 2 {
					atB = append(atB, delivered(in, streamA)...)
					toA = append(toA, wire(out)...)
				} else {
					atA = append(atA, delivered(in, streamB)...)
					toB = append(toB, wire(out)...)
				}
			case 7, 8, 9, 10:
				// A packet-too-big: 7 and 8 from the outside, about a
				// frame G_A or G_B sent on the wire; 9 and 10 from the
				// inside, about a frame G_B or G_A delivered.
				q, g, from, dst := toB, pr.ga, Outside, addrA.Addr()
				switch op {
				case 8:
					q, g, dst = toA, pr.gb, addrB.Addr()
				case 9:
					q, g, from, dst = atB, pr.gb, Inside, addrA.Addr()
				case 10:
					q, g, from, dst = atA, pr.ga, Inside, addrB.Addr()
				}
				if len(q) == 0 {
					continue
				}
				fr := q[int(uint16(ds))%len(q)]
				if p := checkFrame(t, fr); !p.IsTCP() {
					continue
				}
				in, out := g.push(from, ptb(outsideRouter, dst, 500+uint32(uint16(da))%1500, fr, 28+int(n)))
				if g == pr.ga {
					atA = append(atA, delivered(in, streamB)...)
					toB = append(toB, wire(out)...)
				} else {
					atB = append(atB, delivered(in, streamA)...)
					toA = append(toA, wire(out)...)
				}
			case 4, 5, 6:
				for _, g := range []*gw{pr.ga, pr.gb} {
					in, out := g.tick(int64(n+1) * 1e6)
					if g == pr.ga {
						atA = append(atA, delivered(in, streamB)...)
						toB = append(toB, wire(out)...)
					} else {
						atB = append(atB, delivered(in, streamA)...)
						toA = append(toA, wire(out)...)
					}
				}
			}
			// The admin API's counts equal a scan's after every step
			// (recount; gw.push and gw.tick check them too).
			checkCounts(t, pr.ga.e)
			checkCounts(t, pr.gb.e)
		}
		checkDue(t, pr.ga)
		checkDue(t, pr.gb)
	})
}

// hostStream is what a host sends in FuzzScript: the byte at each offset of
// its stream is fixed, and the bytes are not periodic, so that any 8 of
// them are found nowhere else (on the wire, or at another offset).
type hostStream struct {
	isn  uint32
	salt uint64 // tells the two hosts' streams apart
}

// at is the n bytes of the stream from sequence number seq.
func (s hostStream) at(seq uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		k := seq - s.isn - 1 + uint32(i)
		b[i] = byte(splitmix(s.salt<<32|uint64(k>>3)) >> (8 * (k & 7)))
	}
	return b
}

// sent adds to set every 8 bytes of the stream that overlap the n bytes
// from seq: a leak may join two segments.
func (s hostStream) sent(set map[uint64]bool, seq uint32, n int) {
	if n == 0 {
		return
	}
	b := s.at(seq-7, n+14)
	for i := 0; i+8 <= len(b); i++ {
		set[binary.LittleEndian.Uint64(b[i:])] = true
	}
}

// splitmix is SplitMix64's output function: a fixed, well-mixed 64 bits
// for each input.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
