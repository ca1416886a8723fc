package engine

import (
	"bytes"
	"strings"
	"testing"
)

// Asymmetric routing: a's SYN goes out through G_A, b's SYN-ACK (with
// TCP-ENO from G_B) reaches a by another path. a's next segments come
// back through G_A, which never saw the SYN-ACK: they must go on, as plain
// TCP would carry them, and G_B must fall back when a's first ACK comes
// without ENO (RFC 8547 §4.6, ENO-28). Before, G_A dropped them as stale
// and the connection hung.
func TestSYNACKElsewhereFallsBackPlain(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	syn := one(t, "SYN", o)
	hasBytes(t, "SYN ENO option", option(syn.opts, 69), unhex("45042423"))
	gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	one(t, "G_B SYN-ACK (to a by another path)", o)

	ack := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil)
	in, out := ga.push(Inside, ack)
	none(t, "G_A inside", in)
	if len(out) != 1 || !bytes.Equal(out[0], ack) {
		t.Fatalf("a's ACK through G_A: %d frames (changed: %v), want it unchanged", len(out), len(out) == 1)
	}
	if n := ga.e.Counters().Fallbacks[FallbackAsymmetric].Load(); n != 1 || FallbackNames[FallbackAsymmetric] != "asymmetric" {
		t.Fatalf("G_A asymmetric fallbacks %d (%q), want 1", n, FallbackNames[FallbackAsymmetric])
	}
	if fi := flowInfo(t, ga.e); fi.Encrypted || !strings.Contains(fi.FallbackReason, "asymmetric") {
		t.Fatalf("G_A flow: %+v", fi)
	}
	in, out = gb.push(Outside, ack)
	none(t, "G_B outside", out)
	if a := one(t, "a's ACK to b", in); a.seq != isnA+1 || a.ack != isnB+1 || option(a.opts, 69) != nil {
		t.Fatalf("a's ACK to b: %+v", a)
	}
	if gb.e.Counters().Fallbacks[FallbackNoENOInACK].Load() != 1 {
		t.Fatalf("G_B did not fall back on a's ACK without ENO")
	}

	// Both ways plain from here: a's data through G_A, b's through G_B.
	for _, c := range []struct {
		g     *gw
		from  PortID
		frame []byte
	}{
		{ga, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), []byte("GET / HTTP/1.0\r\n\r\n"))},
		{gb, Inside, tcpFrame(addrB, addrA, isnB+1, isnA+19, ackF|pshF, 509, tsOpt(4, 3), []byte("HTTP/1.0 200 OK\r\n\r\n"))},
		{gb, Outside, tcpFrame(addrA, addrB, isnA+19, isnB+20, ackF, 502, tsOpt(5, 4), nil)},
	} {
		f := bytes.Clone(c.frame)
		v := c.g.e.Handle(c.g.now, c.from, f, c.g.tx)
		// G_A's record is done with the connection (the fast path may take
		// it); G_B's watches for a late Init1 (watchInit1), off it.
		if v != Passthrough && (c.g == ga || v != ForwardInPlace) || !bytes.Equal(f, c.frame) {
			t.Fatalf("plain segment from port %d: %v (changed: %v), want passed unchanged", c.from, v, !bytes.Equal(f, c.frame))
		}
	}
	ga.noPanics()
	gb.noPanics()
}

// Under require the connection cannot go on in plain TCP: both hosts are
// reset, each at the sequence number it waits for.
func TestSYNACKElsewhereUnderRequireResets(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrB.Addr())})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	one(t, "SYN", o)
	toIn, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	in, out := resetBoth(t, "a's ACK of a SYN-ACK G_A never saw", toIn, toOut)
	if in.seq != isnB+1 || in.dst != addrA {
		t.Fatalf("RST to a: %+v", in)
	}
	if out.seq != isnA+1 || out.ack != isnB+1 || out.dst != addrB {
		t.Fatalf("RST to b: %+v", out)
	}
	if n := ga.e.Counters().Fallbacks[FallbackAsymmetric].Load(); n != 1 {
		t.Fatalf("asymmetric fallbacks %d, want 1", n)
	}
	var left int
	ga.e.Flows(func(FlowInfo) { left++ })
	if left != 0 {
		t.Fatalf("%d flows left, want none", left)
	}
}

// Only the host's first segment after its SYN tells a SYN-ACK went by: a
// segment at any other sequence number while the SYN waits is no
// acknowledgement of one (a displaced connection's, or a forged one) and
// is dropped as before, the flow still negotiating.
func TestSYNSentOtherSegmentsStillDropped(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	one(t, "SYN", o)
	for _, seq := range []uint32{isnA, isnA + 2, isnA + 1000} {
		in, out := ga.push(Inside, tcpFrame(addrA, addrB, seq, isnB+1, ackF|pshF, 502, tsOpt(2, 2), []byte("x")))
		none(t, "inside", in)
		none(t, "outside", out)
	}
	if n := ga.e.Counters().Fallbacks[FallbackAsymmetric].Load(); n != 0 {
		t.Fatalf("asymmetric fallbacks %d, want 0", n)
	}
	if fi := flowInfo(t, ga.e); fi.FallbackReason != "" {
		t.Fatalf("flow: %+v", fi)
	}
}

// The mirror case, G_B as host B: a's SYN came through G_B, b's SYN-ACK
// went around it, and a's third segment (plain: its own appliance, if any,
// saw b's SYN-ACK without ENO) comes back through G_B, which never saw the
// SYN-ACK. It goes on to b as it came, and the record says why the
// connection is plain, instead of waiting in syn-received until the
// handshake timeout. Under require both hosts are reset, each where it
// waits, and nothing reaches b in plain TCP.
func TestFarSYNACKElsewhereFallsBackPlain(t *testing.T) {
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 4, 0x24, 0x23), nil)
	third := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil)
	t.Run("plain", func(t *testing.T) {
		gb := newGW(t, Config{TEPs: testTEPs})
		one(t, "SYN to b", func() [][]byte { in, _ := gb.push(Outside, syn); return in }())
		in, out := gb.push(Outside, third)
		none(t, "G_B outside", out)
		if len(in) != 1 || !bytes.Equal(in[0], third) {
			t.Fatalf("a's third segment through G_B: %d frames, want it unchanged", len(in))
		}
		if n := gb.e.Counters().Fallbacks[FallbackAsymmetric].Load(); n != 1 {
			t.Fatalf("asymmetric fallbacks %d, want 1", n)
		}
		if fi := flowInfo(t, gb.e); fi.Encrypted || !strings.Contains(fi.FallbackReason, "asymmetric") {
			t.Fatalf("G_B flow: %+v", fi)
		}
	})
	t.Run("require", func(t *testing.T) {
		gb := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrA.Addr())})
		gb.push(Outside, syn)
		toIn, toOut := gb.push(Outside, third)
		in, out := resetBoth(t, "a's third segment after a SYN-ACK G_B never saw", toIn, toOut)
		if in.seq != isnA+1 || in.dst != addrB {
			t.Fatalf("RST to b: %+v", in)
		}
		if out.seq != isnB+1 || out.ack != isnA+1 || out.dst != addrA {
			t.Fatalf("RST to a: %+v", out)
		}
		if gb.e.NumFlows() != 0 {
			t.Fatalf("%d flows left, want none", gb.e.NumFlows())
		}
	})
}

// bypassedSetup runs an encrypted connection in which b's first 100 bytes
// reach a through G_A, and returns the wire segment of b's next 1000
// bytes, which reaches a by a path around G_A: its sequence number is the
// wire's, ahead of a's host space by Init2 and a frame header.
func bypassedSetup(t *testing.T) (*pair, hosts, segv) {
	pr := handshake(t)
	h := newHosts()
	bSends := func(n int) segv {
		pr.tsB++
		_, o := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), bytes.Repeat([]byte{'b'}, n)))
		h.bNext += uint32(n)
		return one(t, "b's data on the wire", o)
	}
	w := bSends(100)
	toIn, _ := pr.ga.push(Outside, w.frame())
	if got := one(t, "b's first bytes at a", toIn); len(got.payload) != 100 {
		t.Fatalf("a got %d bytes, want 100", len(got.payload))
	}
	around := bSends(1000)
	if around.seq == isnB+1+100 {
		t.Fatalf("wire and host numbers agree: the case is not exercised")
	}
	return pr, h, around
}

// An encrypted connection whose return path moves around G_A: b's frame
// reaches a as it is, and a's TCP keeps its ciphertext as data past a hole
// (its wire sequence number is a little ahead of a's host space) and SACKs
// it. What G_A delivers next would fill that hole and have a's TCP hand
// the ciphertext to the application: G_A resets both hosts instead, a at
// the ACK it sent.
func TestBypassedFrameSACKedResetsBoth(t *testing.T) {
	pr, h, around := bypassedSetup(t)
	pr.tsA++
	ack := tcpFrame(addrA, addrB, h.aNext, isnB+1+100, ackF, 502,
		sackOpts(tsOpt(pr.tsA, pr.tsB), around.seq, around.seq+uint32(len(around.payload))), nil)
	toIn, toOut := pr.ga.push(Inside, ack)
	in, _ := resetBoth(t, "a's SACK of bytes G_A never delivered", toIn, toOut)
	if in.seq != isnB+1+100 {
		t.Fatalf("RST to a at %x, want a's ACK %x", in.seq, isnB+1+100)
	}
	if n := pr.ga.e.Counters().Bypassed.Load(); n != 1 || pr.ga.e.NumFlows() != 0 {
		t.Fatalf("bypassed %d, flows %d: want 1 and none", n, pr.ga.e.NumFlows())
	}
}

// The same when the bypassing frame landed at a's next byte: a took the
// ciphertext in order, and its ACK covers bytes G_A never delivered. The
// RST goes at that ACK, where a's TCP accepts it (RFC 5961 §3.2), not at
// what G_A delivered, which a would now take for an old segment.
func TestBypassedBytesAcknowledgedResetsBoth(t *testing.T) {
	pr, h, around := bypassedSetup(t)
	pr.tsA++
	far := around.seq + uint32(len(around.payload))
	toIn, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, far, ackF, 502, tsOpt(pr.tsA, pr.tsB), nil))
	in, _ := resetBoth(t, "a's ACK of bytes G_A never delivered", toIn, toOut)
	if in.seq != far {
		t.Fatalf("RST to a at %x, want a's ACK %x", in.seq, far)
	}
	if n := pr.ga.e.Counters().Bypassed.Load(); n != 1 {
		t.Fatalf("bypassed %d, want 1", n)
	}
}

// SACK blocks within what G_A delivered (a lost some on the inside link)
// and D-SACK blocks below a's ACK are no sign of a bypass.
func TestDeliveredSACKNotBypass(t *testing.T) {
	pr, h, _ := bypassedSetup(t)
	for _, blk := range [][2]uint32{{isnB + 51, isnB + 101}, {isnB + 1, isnB + 51}} {
		pr.tsA++
		pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, isnB+1+50, ackF, 502, sackOpts(tsOpt(pr.tsA, pr.tsB), blk[0], blk[1]), nil))
	}
	if n := pr.ga.e.Counters().Bypassed.Load(); n != 0 || pr.ga.e.NumFlows() != 1 {
		t.Fatalf("bypassed %d, flows %d: want 0 and 1", n, pr.ga.e.NumFlows())
	}
}

// A blind SYN with TCP-ENO on a negotiated tuple whose record is gone (a
// restart), then a forged ACK at the SYN's ISN+1, a number the forger
// chose: it is no sign that the inside host answered by another path.
// Taken for one, the record went plain and the hosts' live encrypted
// connection let L's plaintext out. The tuple stays held: both dropped
// (and reset as strays).
func TestBlindSYNThenACKKeepsNegotiatedTupleHeld(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	pr := handshakeOn(t, newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set}), newGW(t, Config{TEPs: testTEPs}))
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("before the restart"), pshF))
	ga := restarted(t, set)
	ga.push(Outside, tcpFrame(addrB, addrA, 0x12345678, 0, synF, 65160, append(synOpts(1460, 7), 69, 3, 0x23), nil))
	v0 := ga.e.Handle(0, Outside, tcpFrame(addrB, addrA, 0x12345679, 0x55555555, ackF, 502, nil, nil), ga.tx)
	t.Logf("forged ACK: %v; asymmetric=%d; in set=%v", v0, ga.e.Counters().Fallbacks[FallbackAsymmetric].Load(), set.Contains(addrA, addrB))
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, nil, []byte("PLAINTEXT")), ga.tx); v != Dropped {
		t.Fatalf("the host's data: %v, want dropped (stray reset)", v)
	}
	if v := ga.e.Handle(0, Outside, tcpFrame(addrB, addrA, 0x9000, 0x7000, ackF|pshF, 502, nil, []byte("ciphertext")), ga.tx); v != Dropped {
		t.Fatalf("the far side's frame: %v, want dropped (stray reset)", v)
	}
}

// The same with a closed encrypted connection kept aside (reuse from
// outside): a SYN with TCP-ENO (newer timestamp) and an ACK at its ISN+1,
// both with numbers the sender chose, must not drop the old record, whose
// b may still resend its last data and FIN (plainAfterReuse).
func TestReuseSYNThenACKKeepsOldRecord(t *testing.T) {
	pr, h, secret := closedPair(t)
	gb := pr.gb
	isn := h.aNext + 1000
	gb.push(Outside, tcpFrame(addrA, addrB, isn, 0, synF, 64240, append(synOpts(1460, pr.tsA+1), 69, 3, 0x23), nil))
	if fi := flowInfo(t, gb.e); fi.State != "syn-received" {
		t.Fatalf("G_B flow %+v", fi)
	}
	v := gb.e.Handle(0, Outside, tcpFrame(addrA, addrB, isn+1, 0x55555555, ackF, 502, nil, nil), gb.tx)
	t.Logf("forged ACK: %v, flow %+v", v, flowInfo(t, gb.e))
	_, out := gb.push(Inside, tcpFrame(addrB, addrA, h.bNext-uint32(len(secret))-1, h.aNext, ackF|pshF|finF, 509, tsOpt(pr.tsB, pr.tsA), secret))
	for _, o := range out {
		if bytes.Contains(o, secret) {
			t.Fatal("the old connection's data left in plaintext")
		}
	}
}

// A new connection on the tuple of a closed encrypted one (the tuple
// lingers in the negotiated set, CloseLinger) whose SYN-ACK goes around
// the appliance: the inside host's ACK at its ISN+1 shows the far side
// answered its SYN, as a SYN-ACK through it would have (Handle: answers),
// so the tuple leaves the set. Kept there, once the plain record expired
// (PlainRetention of quiet) the healthy connection's next segment was
// reset as a stray.
func TestAsymmetricPlainOnLingeringTupleOutlivesQuiet(t *testing.T) {
	pr, h, _ := closedPair(t)
	ga := pr.gb
	for i := 0; i < 40 && ga.e.NumFlows() > 0; i++ {
		ga.tick(int64(5 * 1e9))
	}
	if ga.e.NumFlows() != 0 || !ga.e.neg.has(flowKey{in: addrB, out: addrA}) {
		t.Fatalf("setup: flows %d, in set %v", ga.e.NumFlows(), ga.e.neg.has(flowKey{in: addrB, out: addrA}))
	}
	isn := h.bNext + 100_000
	_, o := ga.push(Inside, tcpFrame(addrB, addrA, isn, 0, synF, 64240, synOpts(1460, pr.tsB+100), nil))
	one(t, "new SYN", o)
	pass(t, ga, Inside, tcpFrame(addrB, addrA, isn+1, 0x7000+1, ackF, 502, nil, nil))
	pass(t, ga, Inside, tcpFrame(addrB, addrA, isn+1, 0x7000+1, ackF|pshF, 502, nil, []byte("hello")))
	t.Logf("after fallback: in set %v", ga.e.neg.has(flowKey{in: addrB, out: addrA}))
	ga.tick(int64(6 * 60 * 1e9))
	ga.tick(int64(1e9))
	v := ga.e.Handle(ga.now, Inside, tcpFrame(addrB, addrA, isn+6, 0x7000+1, ackF|pshF, 502, nil, []byte("again")), ga.tx)
	toIn, toOut := ga.in.take(), ga.out.take()
	if v != Passthrough {
		t.Fatalf("the plain connection's segment after %d s quiet: %v (to a %d, to b %d frames), want passed", 361, v, len(toIn), len(toOut))
	}
}

// The same with the SYN-ACK through the appliance (without ENO): it takes
// the tuple out of the set, and the quiet plain connection passes.
func TestPlainOnLingeringTupleOutlivesQuiet(t *testing.T) {
	pr, h, _ := closedPair(t)
	ga := pr.gb
	for i := 0; i < 40 && ga.e.NumFlows() > 0; i++ {
		ga.tick(int64(5 * 1e9))
	}
	isn := h.bNext + 100_000
	_, o := ga.push(Inside, tcpFrame(addrB, addrA, isn, 0, synF, 64240, synOpts(1460, pr.tsB+100), nil))
	one(t, "new SYN", o)
	pass(t, ga, Outside, tcpFrame(addrA, addrB, 0x7000, isn+1, synF|ackF, 65160, synOpts(1460, 9), nil))
	pass(t, ga, Inside, tcpFrame(addrB, addrA, isn+1, 0x7000+1, ackF, 502, nil, nil))
	ga.tick(int64(6 * 60 * 1e9))
	ga.tick(int64(1e9))
	pass(t, ga, Inside, tcpFrame(addrB, addrA, isn+1, 0x7000+1, ackF|pshF, 502, nil, []byte("again")))
}
