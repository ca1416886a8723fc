package engine

import "testing"

// An Init message that comes in two segments, the second only after the
// first is acknowledged (a sender whose Nagle holds a short tail while a
// full segment is in flight, or whose window is one segment): G_B
// acknowledges the first part at once. The Init is the appliance's to
// consume, not L's, so nothing waits for L: without that ACK the sender
// would resend the first part until it gave up (RFC 8548 §3.3: Init
// messages may span segments).
func TestInitInPiecesAcknowledged(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	third, init1 := parse(t, o[0]), parse(t, o[1])
	gb.push(Outside, tcpFrameFrom(third))
	first, rest := init1, init1
	first.payload, first.flags = init1.payload[:40], ackF
	rest.payload, rest.seq = init1.payload[40:], init1.seq+40
	_, back := gb.push(Outside, tcpFrameFrom(first))
	if len(back) != 1 {
		t.Fatalf("G_B answered the first 40 bytes of Init1 with %d segments, want an ACK", len(back))
	}
	if a := parse(t, back[0]); a.ack != init1.seq+40 || len(a.payload) != 0 {
		t.Fatalf("answer to the first part: ack %x, %d bytes; want a pure ACK of %x", a.ack, len(a.payload), init1.seq+40)
	}
	// The first part again (the sender's retransmission): the same ACK.
	_, back = gb.push(Outside, tcpFrameFrom(first))
	if len(back) != 1 || parse(t, back[0]).ack != init1.seq+40 {
		t.Fatalf("answer to the first part resent: %d segments", len(back))
	}
	_, back = gb.push(Outside, tcpFrameFrom(rest))
	if len(back) == 0 {
		t.Fatal("no Init2 after the whole Init1")
	}
	init2 := parse(t, back[len(back)-1])
	if init2.ack != init1.seq+uint32(len(init1.payload)) || len(init2.payload) == 0 {
		t.Fatalf("after the rest: ack %x, %d bytes; want Init2 acknowledging all of Init1", init2.ack, len(init2.payload))
	}
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	for _, m := range o {
		gb.push(Outside, m)
	}
	if !flowInfo(t, ga.e).Encrypted || !flowInfo(t, gb.e).Encrypted {
		t.Fatal("not encrypted")
	}
}

// The same with the pieces out of order: the middle one is held, and the
// ACK after the first covers both.
func TestInitInPiecesOutOfOrder(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	third, init1 := parse(t, o[0]), parse(t, o[1])
	gb.push(Outside, tcpFrameFrom(third))
	piece := func(a, b int) []byte {
		s := init1
		s.payload, s.seq, s.flags = init1.payload[a:b], init1.seq+uint32(a), ackF
		return tcpFrameFrom(s)
	}
	gb.push(Outside, piece(30, 50))
	_, back := gb.push(Outside, piece(0, 30))
	if len(back) != 1 || parse(t, back[0]).ack != init1.seq+50 {
		t.Fatalf("after the first piece: %d segments, want one ACK of %x", len(back), init1.seq+50)
	}
	_, back = gb.push(Outside, piece(50, len(init1.payload)))
	if len(back) == 0 || parse(t, back[len(back)-1]).ack != init1.seq+uint32(len(init1.payload)) {
		t.Fatal("no Init2 acknowledging all of Init1")
	}
}
