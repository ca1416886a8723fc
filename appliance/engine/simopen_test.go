package engine

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Simultaneous open (both hosts active openers): the far side's SYN meets
// our SYN. Both SYNs carry b = 0 (a role clash, ENO-30), which disables
// ENO. The connection goes on in plain TCP, counted under its own fallback
// reason; the host's SYN-ACK leaves without ENO (ENO-33), so the far side
// falls back too (ENO-34).
// The far side's SYN-ACK repeating its SYN's sequence number is what shows
// the simultaneous open (a blind SYN alone must not end the negotiation).
func TestSimultaneousOpenFallsBack(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	hasBytes(t, "our SYN option", option(one(t, "SYN", o).opts, 69), unhex("45042423"))
	farSYN := tcpFrame(addrB, addrA, isnB, 0, synF, 65160, append(synOpts(1460, 2), 69, 3, 0x23), nil)
	if v := ga.e.Handle(0, Outside, farSYN, ga.tx); v != Passthrough {
		t.Fatalf("far SYN: %v, want passthrough", v)
	}
	// Both SYN-ACKs and the data pass untouched: no ENO is added to the
	// host's SYN-ACK, nothing is framed. The host's SYN-ACK goes while
	// the record still negotiates (the crossing SYN may be forged, and
	// the SYN-ACK to ours may carry ENO), so it is forwarded in place,
	// off the fast path; the far side's SYN-ACK repeating its SYN's
	// sequence number settles it, and from there segments pass.
	for _, c := range []struct {
		from  PortID
		frame []byte
		want  Verdict
	}{
		{Inside, tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 64240, synOpts(1460, 3), nil), ForwardInPlace},
		{Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 4), 69, 3, 0x23), nil), Passthrough},
		{Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(5, 4), []byte("plain")), Passthrough},
	} {
		fr := bytes.Clone(c.frame)
		if v := ga.e.Handle(0, c.from, fr, ga.tx); v != c.want || !bytes.Equal(fr, c.frame) {
			t.Fatalf("segment from port %d: %v, want %v unchanged", c.from, v, c.want)
		}
	}
	none(t, "segments the engine originated", append(ga.in.take(), ga.out.take()...))
	fi := flowInfo(t, ga.e)
	if fi.State != "plain" || fi.Encrypted || !strings.Contains(fi.FallbackReason, "simultaneous open") {
		t.Fatalf("flow after the crossing SYNs: %+v", fi)
	}
	if n := ga.e.Counters().Fallbacks[FallbackSimultaneousOpen].Load(); n != 1 || FallbackNames[FallbackSimultaneousOpen] != "simultaneous_open" {
		t.Fatalf("simultaneous-open fallbacks %d (%q), want 1", n, FallbackNames[FallbackSimultaneousOpen])
	}
	if n := ga.e.Counters().Fallbacks[FallbackNegotiate].Load(); n != 0 {
		t.Fatalf("counted as a negotiation failure too (%d)", n)
	}
}

// The far side's SYN-ACK to our SYN is lost in a simultaneous open
// without ENO: R, established on the host's SYN-ACK, sends only ACKs and
// data from then on. Its first ACK settles the connection as plain.
// Before, the record stayed in syn-sent and dropped everything R sent as
// stale (the fast path used to carry it, until the host's SYN-ACK stopped
// putting a still-negotiating tuple there).
func TestSimultaneousOpenFarSYNACKLost(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	farSYN := tcpFrame(addrB, addrA, isnB, 0, synF, 65160, append(synOpts(1460, 2), 69, 3, 0x23), nil)
	if v := ga.e.Handle(0, Outside, farSYN, ga.tx); v != Passthrough {
		t.Fatalf("far SYN: %v, want passthrough", v)
	}
	hostSA := tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 64240, synOpts(1460, 3), nil)
	if v := ga.e.Handle(0, Inside, hostSA, ga.tx); v != ForwardInPlace {
		t.Fatalf("host SYN-ACK: %v, want forward-in-place", v)
	}
	for _, fr := range [][]byte{
		tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF, 502, tsOpt(4, 3), nil),
		tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 502, tsOpt(5, 3), []byte("hello")),
	} {
		c := bytes.Clone(fr)
		if v := ga.e.Handle(0, Outside, c, ga.tx); v != Passthrough || !bytes.Equal(c, fr) {
			t.Fatalf("R's segment after the lost SYN-ACK: %v, want passthrough unchanged (drops %v)", v, ga.e.Counters().Drops[DropStale].Load())
		}
	}
	if fi := flowInfo(t, ga.e); fi.State != "plain" || ga.e.Counters().Fallbacks[FallbackSimultaneousOpen].Load() != 1 {
		t.Fatalf("flow %+v, want plain after a simultaneous open", fi)
	}
}

// Under the require policy plain TCP is not an outcome: the far SYN is
// held back (DropPolicy), so the connection can only go on through the
// far side's SYN-ACK to our SYN. A far side that set b = 1 (ENO-11: the
// passive role in a simultaneous open) then negotiates with us as host A.
func TestSimultaneousOpenRequire(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("198.51.100.0/24"), Policy: Require}}})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	farOpt := []byte{69, 4, 0x01, 0x23}
	farSYN := tcpFrame(addrB, addrA, isnB, 0, synF, 65160, append(synOpts(1460, 2), farOpt...), nil)
	if v := ga.e.Handle(0, Outside, farSYN, ga.tx); v != Dropped || ga.e.Counters().Drops[DropPolicy].Load() != 1 {
		t.Fatalf("far SYN under require: %v, policy drops %d", v, ga.e.Counters().Drops[DropPolicy].Load())
	}
	if fi := flowInfo(t, ga.e); fi.State != "syn-sent" {
		t.Fatalf("flow after the held-back SYN: %+v", fi)
	}
	// The far side's SYN-ACK repeats its SYN option (ENO-31).
	toIn, toOut := ga.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 2), farOpt...), nil))
	none(t, "toward the far side", toOut)
	s := one(t, "SYN-ACK at a", toIn)
	if option(s.opts, 69) != nil || s.ack != isnA+1 {
		t.Fatalf("SYN-ACK at a: %+v", s)
	}
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" || fi.Role != "A" {
		t.Fatalf("flow: %+v, want host A in the key exchange", fi)
	}
	for i := range ga.e.Counters().Fallbacks {
		if n := ga.e.Counters().Fallbacks[i].Load(); n != 0 {
			t.Fatalf("fallback %s counted %d", FallbackNames[i], n)
		}
	}
}

// RFC 8547 §4.6: "Hosts MUST NOT alter SYN-form ENO options in
// retransmitted segments, or between the SYN and SYN-ACK segments of a
// simultaneous open", the one exception being a SYN-ACK without ENO when
// "the received SYN caused it to disable encryption". A far side that set
// b = 1 (§4.2, §4.3: the passive role, arranged beforehand) with a TEP we
// offered does not cause that, so the inside host's SYN-ACK leaves with our
// SYN's option, byte for byte, and the open is negotiated (§6, Figure 12:
// A sends <Y,X>, B sends <b=1,X,Y,Z>, Y is negotiated). The appliance is
// host A: transcript A's option then B's (§4.8), Init1 from us. Both
// orders: the inside host's SYN-ACK before the far one, and after.
func TestSimultaneousOpenPassiveRoleFarSide(t *testing.T) {
	for _, hostFirst := range []bool{true, false} {
		ga := newGW(t, Config{TEPs: testTEPs})
		_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
		ours := option(one(t, "SYN", o).opts, 69)
		hasBytes(t, "our SYN option", ours, unhex("45042423"))
		farOpt := []byte{69, 6, 0x01, 0x24, 0x23, 0x25}
		toIn, toOut := ga.push(Outside, tcpFrame(addrB, addrA, isnB, 0, synF, 65160, append(synOpts(1460, 2), farOpt...), nil))
		none(t, "far SYN outside", toOut)
		if s := one(t, "far SYN to a", toIn); mss(s.opts) != 1440 || s.seq != isnB {
			t.Fatalf("far SYN to a: %+v, want the MSS clamped", s)
		}
		hostSA := tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 64240, synOpts(1460, 3), nil)
		farSA := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 4), farOpt...), nil)
		var init1 segv
		if hostFirst {
			toIn, toOut = ga.push(Inside, hostSA)
			none(t, "host SYN-ACK inside", toIn)
			s := one(t, "host SYN-ACK", toOut)
			hasBytes(t, "host SYN-ACK option (ENO-31)", option(s.opts, 69), ours)
			// R repeats its SYN: it goes on as before, nothing changes.
			toIn, toOut = ga.push(Outside, tcpFrame(addrB, addrA, isnB, 0, synF, 65160, append(synOpts(1460, 2), farOpt...), nil))
			none(t, "repeated far SYN outside", toOut)
			if s := one(t, "repeated far SYN to a", toIn); mss(s.opts) != 1440 {
				t.Fatalf("repeated far SYN to a: %+v", s)
			}
			toIn, toOut = ga.push(Outside, farSA)
			if s := one(t, "far SYN-ACK to a", toIn); option(s.opts, 69) != nil || s.ack != isnA+1 || mss(s.opts) != 1440 {
				t.Fatalf("far SYN-ACK to a: %+v", s)
			}
			init1 = one(t, "Init1", toOut)
		} else {
			toIn, toOut = ga.push(Outside, farSA)
			if s := one(t, "far SYN-ACK to a", toIn); option(s.opts, 69) != nil || s.ack != isnA+1 {
				t.Fatalf("far SYN-ACK to a: %+v", s)
			}
			none(t, "before the host's SYN-ACK", toOut)
			toIn, toOut = ga.push(Inside, hostSA)
			none(t, "host SYN-ACK inside", toIn)
			if len(toOut) != 2 {
				t.Fatalf("after the host's SYN-ACK: %d frames, want it and Init1", len(toOut))
			}
			s := parse(t, toOut[0])
			hasBytes(t, "host SYN-ACK option (ENO-31)", option(s.opts, 69), ours)
			if s.flags != synF|ackF || s.seq != isnA || s.ack != isnB+1 {
				t.Fatalf("host SYN-ACK on the wire: %+v", s)
			}
			init1 = parse(t, toOut[1])
		}
		hasBytes(t, "Init1 ENO", option(init1.opts, 69), unhex("4502"))
		if init1.seq != isnA+1 || init1.ack != isnB+1 || len(init1.payload) != 75 || init1.win == 0 {
			t.Fatalf("Init1: seq %x ack %x len %d win %d", init1.seq, init1.ack, len(init1.payload), init1.win)
		}
		fi := flowInfo(t, ga.e)
		want := append(append([]byte{}, ours...), farOpt...)
		if fi.State != "key-exchange" || fi.Role != "A" {
			t.Fatalf("flow %+v, want host A in the key exchange", fi)
		}
		hasBytes(t, "transcript (A's option, then B's)", fi.Transcript, want)

		// The far side as host B: Init2 for our Init1, same transcript.
		sess := farInit2(t, ga, init1, want, 65160)
		if fi := flowInfo(t, ga.e); !fi.Encrypted || fi.SessionID != sess.ID || fi.SessionID[0] != 0x23 {
			t.Fatalf("hostFirst %v: flow %+v, far session ID %x", hostFirst, fi, sess.ID)
		}
	}
}

// farInit2 plays the far side as host B of a simultaneous open: it takes
// G_A's Init1 with transcript (TEP 0x23, X25519), answers it with Init2 in
// a segment with window win, and returns its session.
func farInit2(t *testing.T, ga *gw, init1 segv, transcript []byte, win uint16) *tcpcrypt.Session {
	t.Helper()
	ka, err := tcpcrypt.KeyAgreementFor(tcpcrypt.TEPX25519)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ka.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := tcpcrypt.NewResponder(tcpcrypt.ResponderConfig{TEP: tcpcrypt.TEPX25519, TEPByte: 0x23,
		Prefs: []cryptopool.Suite{cryptopool.AES128GCM}, Key: kp, Transcript: transcript})
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := rsp.Feed(init1.payload); err != nil || !done {
		t.Fatalf("Init1 at the far side: done %v, %v", done, err)
	}
	ga.push(Outside, tcpFrame(addrB, addrA, isnB+1, isnA+1+75, ackF|pshF, win, tsOpt(5, 3), rsp.Init2()))
	sess, err := rsp.Session()
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// A blind SYN with a compatible option (b = 1) while host A waits: the
// inside host answers it (with our option, as for a simultaneous open),
// but the genuine SYN-ACK to our SYN, with another sequence number, is
// negotiated as usual: Init1 waits for the host's third segment, and the
// host's SYN-ACK to the blind SYN does not leave once negotiated.
func TestBlindCompatibleSYNInSYNSent(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, one(t, "SYN", out).frame())
	ga.push(Outside, tcpFrame(addrB, addrA, 0x77777777, 0, synF, 1024, append(synOpts(1460, 9), 69, 4, 0x01, 0x23), nil))
	_, out = ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0x77777778, synF|ackF, 64240, synOpts(1460, 2), nil))
	one(t, "host's SYN-ACK to the blind SYN", out)
	_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
	toIn, toOut := ga.push(Outside, one(t, "SYN-ACK", out).frame())
	one(t, "SYN-ACK at a", toIn)
	none(t, "Init1 before a's third segment", toOut)
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" {
		t.Fatalf("flow after the genuine SYN-ACK: %+v", fi)
	}
	_, toOut = ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0x77777778, synF|ackF, 64240, synOpts(1460, 2), nil))
	none(t, "host's repeated SYN-ACK to the blind SYN", toOut)
	_, toOut = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(3, 5), nil))
	if len(toOut) != 2 {
		t.Fatalf("after a's third segment: %d frames, want it and Init1", len(toOut))
	}
}

// A simultaneous open with a compatible option (b = 1 at the far side, as
// in TestSimultaneousOpenPassiveRoleFarSide) whose far SYN-ACK to our SYN
// is lost: R, established as host B on the host's SYN-ACK (our option),
// sends it no more, and waits for Init1. R's ACK of our SYN, numbered from
// its crossing SYN, settles the open as that SYN-ACK would have (R's
// SYN-ACK repeats its SYN's option, §4.6): the appliance negotiates as
// host A from the crossing SYN, with R's window shift and options from
// it, the ACK goes on to the host (in SYN-RECEIVED it waits for one), and
// Init1 leaves. Before, the record stayed in syn-sent and dropped R's
// segments as stale: the connection hung.
func TestSimultaneousOpenPassiveRoleFarSYNACKLost(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	ours := option(one(t, "SYN", o).opts, 69)
	farOpt := []byte{69, 6, 0x01, 0x24, 0x23, 0x25}
	farSYNOpts := append(synOpts(1460, 2), farOpt...)
	farSYNOpts[len(farSYNOpts)-len(farOpt)-1] = 5 // R's window shift: 5
	ga.push(Outside, tcpFrame(addrB, addrA, isnB, 0, synF, 65160, farSYNOpts, nil))
	toIn, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 64240, synOpts(1460, 3), nil))
	none(t, "host SYN-ACK inside", toIn)
	hasBytes(t, "host SYN-ACK option (ENO-31)", option(one(t, "host SYN-ACK", toOut).opts, 69), ours)

	toIn, toOut = ga.push(Outside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF, 502, tsOpt(4, 3), nil))
	if s := one(t, "R's ACK to a", toIn); s.flags != ackF || s.seq != isnB+1 || s.ack != isnA+1 {
		t.Fatalf("R's ACK to a: %+v", s)
	}
	init1 := one(t, "Init1", toOut)
	if init1.seq != isnA+1 || init1.ack != isnB+1 || len(init1.payload) != 75 {
		t.Fatalf("Init1: seq %x ack %x len %d", init1.seq, init1.ack, len(init1.payload))
	}
	want := append(append([]byte{}, ours...), farOpt...)
	fi := flowInfo(t, ga.e)
	if fi.State != "key-exchange" || fi.Role != "A" {
		t.Fatalf("flow %+v, want host A in the key exchange", fi)
	}
	hasBytes(t, "transcript (A's option, then B's)", fi.Transcript, want)
	if f := ga.onlyFlow(); f.wsR != 5 || f.wsLe != 7 || f.winR != 502 || !f.tsOK || !f.sackOK || f.isnR != isnB {
		t.Fatalf("R's parameters: shift %d (L's %d), window %d, timestamps %v, SACK %v, ISN %x", f.wsR, f.wsLe, f.winR, f.tsOK, f.sackOK, f.isnR)
	}

	sess := farInit2(t, ga, init1, want, 502)
	if fi := flowInfo(t, ga.e); !fi.Encrypted || fi.SessionID != sess.ID {
		t.Fatalf("flow %+v, far session ID %x", fi, sess.ID)
	}
}

// A simultaneous open without TCP-ENO, far SYN-ACK lost, on a tuple still
// in the negotiated set (an encrypted connection on it closed less than
// CloseLinger ago). The inside host's SYN-ACK to the crossing SYN frees
// the tuple: its own SYN showed it holds no old connection there, and the
// far SYN-ACK that would free it otherwise never comes. Before, the tuple
// stayed, and once the plain record expired the connection's next segment
// was reset as a stray of the old one.
func TestSimultaneousOpenFreesNegotiatedTuple(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	set.Add(addrA, addrB, time.Now().Add(CloseLinger))
	ga := newGWDeps(t, Config{TEPs: testTEPs, PlainRetention: time.Second}, Deps{Negotiated: set})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	ga.push(Outside, tcpFrame(addrB, addrA, isnB, 0, synF, 65160, synOpts(1460, 2), nil))
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 64240, synOpts(1460, 3), nil))
	ga.push(Outside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF, 502, tsOpt(4, 3), nil))
	if set.Contains(addrA, addrB) {
		t.Fatalf("after the simultaneous open: the tuple is still in the negotiated set")
	}
	ga.tick(int64(2 * time.Second)) // the plain record expires (PlainRetention)
	if v := ga.e.Handle(ga.now, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("plain data")), ga.tx); v != Passthrough {
		t.Fatalf("the plain connection's data: %v (stray resets %d)", v, ga.e.Counters().StrayResets.Load())
	}
}
