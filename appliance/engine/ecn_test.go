package engine

import (
	"slices"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

const (
	eceF = packet.FlagECE
	cwrF = packet.FlagCWR
)

// withECN returns a copy of frame with ECN codepoint ecn (IPv4 header sum
// made right), as a host or a router on the way would send it.
func withECN(t *testing.T, frame []byte, ecn uint8) []byte {
	t.Helper()
	f := append([]byte(nil), frame...)
	var p packet.Packet
	if err := p.Decode(f); err != nil {
		t.Fatal(err)
	}
	if p.IPVersion() == 4 {
		f[p.L3Offset()+1] = f[p.L3Offset()+1]&^3 | ecn
		p.FixIPv4Checksum()
	} else {
		f[p.L3Offset()+1] = f[p.L3Offset()+1]&^0x30 | ecn<<4
	}
	return f
}

// ecnOf is frame's codepoint and TCP flags (checkFrame checks its sums).
func ecnOf(t *testing.T, frame []byte) (uint8, uint8) {
	t.Helper()
	p := checkFrame(t, frame)
	return p.ECN(), p.Flags()
}

// ecnPair is an encrypted pair whose hosts negotiated classic ECN in their
// handshake (a's SYN with ECE and CWR, b's SYN-ACK with ECE).
func ecnPair(t *testing.T) *pair {
	cfg := Config{TEPs: testTEPs}
	return handshakeFlags(t, newGW(t, cfg), newGW(t, cfg), 1460, eceF|cwrF, eceF)
}

// TestECNAcrossEncryptedFlow: the signals of RFC 3168 cross the two
// appliances. New data keeps the ECT codepoint it came with; a CE mark on
// the untrusted link reaches b once; b's ECE echo reaches a; a's CWR
// reaches b once; retransmissions and pure ACKs go Not-ECT (§6.1.4,
// §6.1.5). Before, every segment the appliances built was Not-ECT with ECE
// and CWR cleared: congestion marked on the way never reached the hosts.
func TestECNAcrossEncryptedFlow(t *testing.T) {
	pr := ecnPair(t)
	h := newHosts()
	// a's data, ECT(0): the frame and b's segment are ECT(0).
	seg1 := withECN(t, pr.aSegment(&h, 100), packet.ECT0)
	_, wire := pr.ga.push(Inside, seg1)
	if len(wire) != 1 {
		t.Fatalf("%d frames on the wire, want 1", len(wire))
	}
	if c, fl := ecnOf(t, wire[0]); c != packet.ECT0 || fl&(eceF|cwrF) != 0 {
		t.Fatalf("frame: codepoint %d flags %#x, want ECT(0), no ECE or CWR", c, fl)
	}
	atB, _ := pr.gb.push(Outside, wire[0])
	if len(atB) != 1 {
		t.Fatalf("%d segments to b, want 1", len(atB))
	}
	if c, _ := ecnOf(t, atB[0]); c != packet.ECT0 {
		t.Fatalf("segment to b: codepoint %d, want ECT(0)", c)
	}

	// A router on the untrusted link marks the next frame CE: b's segment
	// is CE, and the one after ECT(0) again.
	_, wire = pr.ga.push(Inside, withECN(t, pr.aSegment(&h, 100), packet.ECT0))
	atB, _ = pr.gb.push(Outside, withECN(t, wire[0], packet.CE))
	if c, _ := ecnOf(t, atB[0]); c != packet.CE {
		t.Fatalf("segment to b after a CE frame: codepoint %d, want CE", c)
	}
	_, wire = pr.ga.push(Inside, withECN(t, pr.aSegment(&h, 100), packet.ECT0))
	atB, _ = pr.gb.push(Outside, wire[0])
	if c, _ := ecnOf(t, atB[0]); c != packet.ECT0 {
		t.Fatalf("segment to b after that: codepoint %d, want ECT(0) (CE once)", c)
	}

	// Three frames marked CE arrive as one super-segment (GRO on G_B's
	// port): three segments' worth of marks, so b's three segments are CE,
	// and the next ECT(0).
	var frames [][]byte
	for range 3 {
		_, wire = pr.ga.push(Inside, withECN(t, pr.aSegment(&h, 1400), packet.ECT0))
		frames = append(frames, wire...)
	}
	atB, _ = pr.gb.push(Outside, withECN(t, coalesced(t, frames), packet.CE))
	_, wire = pr.ga.push(Inside, withECN(t, pr.aSegment(&h, 100), packet.ECT0))
	more, _ := pr.gb.push(Outside, wire[0])
	var marks []uint8
	for _, f := range append(atB, more...) {
		c, _ := ecnOf(t, f)
		marks = append(marks, c)
	}
	if want := []uint8{packet.CE, packet.CE, packet.CE, packet.ECT0}; !slices.Equal(marks, want) {
		t.Fatalf("segments to b after a CE super-segment of 3 frames: codepoints %v, want %v", marks, want)
	}

	// b echoes with ECE on its ACK: the wire ACK and a's ACK carry it, and
	// both are Not-ECT.
	pr.tsB++
	_, wire = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|eceF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	if len(wire) != 1 {
		t.Fatalf("%d wire segments for b's ACK, want 1", len(wire))
	}
	if c, fl := ecnOf(t, wire[0]); c != packet.NotECT || fl&eceF == 0 {
		t.Fatalf("wire ACK: codepoint %d flags %#x, want Not-ECT with ECE", c, fl)
	}
	toA, _ := pr.ga.push(Outside, wire[0])
	if len(toA) != 1 {
		t.Fatalf("%d segments to a for b's ACK, want 1", len(toA))
	}
	if c, fl := ecnOf(t, toA[0]); c != packet.NotECT || fl&eceF == 0 {
		t.Fatalf("ACK to a: codepoint %d flags %#x, want Not-ECT with ECE", c, fl)
	}

	// a answers with CWR on its next data: the frame and b's segment carry
	// it, the data after them does not.
	_, wire = pr.ga.push(Inside, withECN(t, tcpFrameFlags(t, pr.aSegment(&h, 100), cwrF), packet.ECT0))
	if c, fl := ecnOf(t, wire[0]); c != packet.ECT0 || fl&cwrF == 0 {
		t.Fatalf("frame after a's CWR: codepoint %d flags %#x, want ECT(0) with CWR", c, fl)
	}
	atB, _ = pr.gb.push(Outside, wire[0])
	if _, fl := ecnOf(t, atB[0]); fl&cwrF == 0 {
		t.Fatalf("segment to b: flags %#x, want CWR", fl)
	}
	_, wire = pr.ga.push(Inside, withECN(t, pr.aSegment(&h, 100), packet.ECT0))
	if _, fl := ecnOf(t, wire[0]); fl&cwrF != 0 {
		t.Fatalf("the frame after: flags %#x, CWR twice", fl)
	}
	last := wire[0]
	atB, _ = pr.gb.push(Outside, last)

	// a's retransmission of its last segment is served from the store:
	// the same frame, Not-ECT now.
	h.aNext -= 100
	_, wire = pr.ga.push(Inside, withECN(t, pr.aSegment(&h, 100), packet.ECT0))
	if len(wire) != 1 {
		t.Fatalf("%d frames for a's retransmission, want 1", len(wire))
	}
	if c, _ := ecnOf(t, wire[0]); c != packet.NotECT {
		t.Fatalf("retransmitted frame: codepoint %d, want Not-ECT", c)
	}
	if got, want := parse(t, wire[0]).payload, parse(t, last).payload; string(got) != string(want) {
		t.Fatal("the retransmission is not the same frame")
	}
}

// coalesced is frames, consecutive segments of one flow, as GRO hands them
// on: the first one's headers and every payload, lengths and sums made
// right.
func coalesced(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	s := parse(t, frames[0])
	for _, f := range frames[1:] {
		s.payload = append(s.payload, parse(t, f).payload...)
	}
	return tcpFrame(s.src, s.dst, s.seq, s.ack, s.flags, s.win, s.opts, s.payload)
}

// tcpFrameFlags is frame with flags added to its TCP flags (sums made
// right).
func tcpFrameFlags(t *testing.T, frame []byte, flags uint8) []byte {
	s := parse(t, frame)
	return tcpFrame(s.src, s.dst, s.seq, s.ack, s.flags|flags, s.win, s.opts, s.payload)
}

// TestECNNotNegotiated: hosts whose handshake did not agree on classic ECN
// get what they got before: segments the appliances build are Not-ECT with
// ECE and CWR clear, whatever comes.
func TestECNNotNegotiated(t *testing.T) {
	for _, c := range []struct {
		name        string
		syn, synAck uint8
	}{
		{"no ECN", 0, 0},
		{"b declined", eceF | cwrF, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{TEPs: testTEPs}
			pr := handshakeFlags(t, newGW(t, cfg), newGW(t, cfg), 1460, c.syn, c.synAck)
			h := newHosts()
			_, wire := pr.ga.push(Inside, withECN(t, tcpFrameFlags(t, pr.aSegment(&h, 100), cwrF|eceF), packet.ECT0))
			if c, fl := ecnOf(t, wire[0]); c != packet.NotECT || fl&(eceF|cwrF) != 0 {
				t.Fatalf("frame: codepoint %d flags %#x, want Not-ECT without ECE, CWR", c, fl)
			}
			atB, _ := pr.gb.push(Outside, withECN(t, wire[0], packet.CE))
			if c, fl := ecnOf(t, atB[0]); c != packet.NotECT || fl&(eceF|cwrF) != 0 {
				t.Fatalf("segment to b: codepoint %d flags %#x, want Not-ECT without ECE, CWR", c, fl)
			}
		})
	}
}

// TestECNSetup: which SYN and SYN-ACK flags turn the engine's ECN on (RFC
// 3168 §6.1.1). A SYN with AE as well asks for AccECN (RFC 9768), whose
// ACE field the rules for classic ECN would garble: off, like a SYN-ACK
// that answers with anything but ECE alone.
func TestECNSetup(t *testing.T) {
	seg := func(flags uint8, ae bool) *packet.Packet {
		b := tcpFrame(addrA, addrB, isnA, 0, flags, 64240, nil, nil)
		var p packet.Packet
		if err := p.Decode(b); err != nil {
			t.Fatal(err)
		}
		if ae {
			b[p.L4Offset()+12] |= flagAE
		}
		return &p
	}
	for _, c := range []struct {
		name         string
		syn, synAck  uint8
		synAE, ackAE bool
		want         bool
	}{
		{"classic", synF | eceF | cwrF, synF | ackF | eceF, false, false, true},
		{"no ECN asked", synF, synF | ackF | eceF, false, false, false},
		{"half asked", synF | eceF, synF | ackF | eceF, false, false, false},
		{"declined", synF | eceF | cwrF, synF | ackF, false, false, false},
		{"SYN-ACK with CWR", synF | eceF | cwrF, synF | ackF | eceF | cwrF, false, false, false},
		{"AccECN SYN", synF | eceF | cwrF, synF | ackF | eceF, true, false, false},
		{"AccECN SYN-ACK", synF | eceF | cwrF, synF | ackF | eceF, false, true, false},
	} {
		var f flow
		f.ecnSYN(seg(c.syn, c.synAE))
		f.ecnSYNACK(seg(c.synAck, c.ackAE))
		if got := f.ecn&ecnOn != 0; got != c.want {
			t.Errorf("%s: ECN on %v, want %v", c.name, got, c.want)
		}
	}
}
