package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

const (
	synF = packettest.SYN
	ackF = packettest.ACK
	pshF = packettest.PSH
	finF = packettest.FIN
	rstF = packettest.RST
)

// pair is a connection a -> b through G_A and G_B, established and keyed.
type pair struct {
	t      testing.TB
	ga, gb *gw
	tsA    uint32
	tsB    uint32
}

// testTEPs makes the SYN option the brief's example `45 04 24 23`.
var testTEPs = []tcpcrypt.TEP{tcpcrypt.TEPX25519, tcpcrypt.TEPX448}

// handshake runs the three-way handshake and the Init exchange, checking
// every frame on the way (ENO-26, ENO-31 bytes; docs/protocol.md §7).
func handshake(t testing.TB) *pair {
	return handshakeOn(t, newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs}))
}

// toThirdSegment runs a's SYN and b's SYN-ACK through ga and gb and a's
// third segment through ga, unchecked (handshake checks the same steps),
// and returns what ga sent toward R: the third segment and Init1.
func toThirdSegment(ga, gb *gw) [][]byte {
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, o[0])
	_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	return o
}

// toldMSS is the MSS g tells its IPv4 inside host when the far host
// announced far: 20 less for the frame, and no more than g's outside port
// carries less the frame.
func toldMSS(g *gw, far uint16) uint16 {
	if c := g.e.mssCaps(true)[Outside]; c != 0 && c < far {
		far = c
	}
	return far - 20
}

// handshakeOn is handshake between two given engines.
func handshakeOn(t testing.TB, ga, gb *gw) *pair { return handshakeMSS(t, ga, gb, 1460) }

// handshakeMSS is handshakeOn with both hosts announcing MSS mssv.
func handshakeMSS(t testing.TB, ga, gb *gw, mssv uint16) *pair {
	return handshakeFlags(t, ga, gb, mssv, 0, 0)
}

// handshakeFlags is handshakeMSS with extra flags on a's SYN (synX) and
// b's SYN-ACK (synAckX), such as ECN's.
func handshakeFlags(t testing.TB, ga, gb *gw, mssv uint16, synX, synAckX uint8) *pair {
	pr := &pair{t: t, ga: ga, gb: gb, tsA: 1000, tsB: 5000}

	// a's SYN gets `45 04 24 23` after its own options.
	syn := tcpFrame(addrA, addrB, isnA, 0, synF|synX, 64240, synOpts(mssv, pr.tsA), nil)
	toIn, toOut := ga.push(Inside, syn)
	none(t, "G_A SYN inside", toIn)
	s := one(t, "G_A SYN outside", toOut)
	hasBytes(t, "SYN ENO option", option(s.opts, 69), unhex("45042423"))
	if s.seq != isnA || mss(s.opts) != mssv || s.flags != synF|synX {
		t.Fatalf("SYN changed: %+v", s)
	}
	// G_B forwards it to b with ENO kept and the MSS clamped by 20.
	toIn, toOut = gb.push(Outside, toOut[0])
	none(t, "G_B SYN outside", toOut)
	s = one(t, "G_B SYN inside", toIn)
	hasBytes(t, "SYN to b keeps ENO", option(s.opts, 69), unhex("45042423"))
	if want := toldMSS(gb, mssv); mss(s.opts) != want {
		t.Fatalf("SYN MSS to b = %d, want %d", mss(s.opts), want)
	}
	// b answers without ENO: G_B answers as host B with `45 04 01 23`.
	synack := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF|synAckX, 65160, synOpts(mssv, pr.tsB), nil)
	toIn, toOut = gb.push(Inside, synack)
	none(t, "G_B SYN-ACK inside", toIn)
	s = one(t, "G_B SYN-ACK outside", toOut)
	hasBytes(t, "SYN-ACK ENO option", option(s.opts, 69), unhex("45040123"))
	// G_A negotiates, strips ENO and clamps the MSS for a.
	toIn, toOut = ga.push(Outside, toOut[0])
	none(t, "G_A SYN-ACK outside", toOut)
	s = one(t, "G_A SYN-ACK inside", toIn)
	if option(s.opts, 69) != nil || mss(s.opts) != toldMSS(ga, mssv) || s.seq != isnB || s.ack != isnA+1 {
		t.Fatalf("SYN-ACK to a: %+v", s)
	}
	// a's third segment gets `45 02`; Init1 follows at once, PSH set. The
	// pure ACK is numbered by what the wire has carried so far (nothing:
	// a's ISN+1), not past Init1, which R has not seen yet.
	pr.tsA++
	third := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(pr.tsA, pr.tsB), nil)
	toIn, toOut = ga.push(Inside, third)
	none(t, "G_A third inside", toIn)
	if len(toOut) != 2 {
		t.Fatalf("G_A after third segment: %d frames, want ACK and Init1", len(toOut))
	}
	s = parse(t, toOut[0])
	hasBytes(t, "third segment ENO", option(s.opts, 69), unhex("4502"))
	if s.seq != isnA+1 || s.ack != isnB+1 || s.flags != ackF || len(s.payload) != 0 {
		t.Fatalf("third segment on the wire: seq %x ack %x flags %x, want a pure ACK at %x", s.seq, s.ack, s.flags, isnA+1)
	}
	init1 := parse(t, toOut[1])
	hasBytes(t, "Init1 ENO", option(init1.opts, 69), unhex("4502"))
	if init1.seq != isnA+1 || len(init1.payload) != 75 || init1.flags != ackF|pshF {
		t.Fatalf("Init1 segment: seq %x len %d flags %x", init1.seq, len(init1.payload), init1.flags)
	}
	hasBytes(t, "Init1 magic and length", init1.payload[:8], unhex("15101a0e0000004b"))

	// G_B: third segment, then Init1 -> Init2 (74 bytes, PSH, acks Init1).
	toIn, toOut = gb.push(Outside, toOut[0])
	none(t, "G_B third outside", toOut)
	s = one(t, "G_B third inside", toIn)
	if s.seq != isnA+1 || s.ack != isnB+1 || s.flags != ackF {
		t.Fatalf("third segment to b: %+v", s)
	}
	toIn, toOut = gb.push(Outside, tcpFrameFrom(init1))
	init2 := one(t, "G_B Init2", toOut)
	if init2.seq != isnB+1 || init2.ack != isnA+1+75 || len(init2.payload) != 74 || init2.flags != ackF|pshF {
		t.Fatalf("Init2 segment: %+v", init2)
	}
	if option(init2.opts, 69) != nil {
		t.Fatal("Init2 carries ENO after a non-SYN segment arrived (ENO-26)")
	}
	hasBytes(t, "Init2 magic and length", init2.payload[:8], unhex("097105e00000004a"))
	none(t, "G_B Init1 inside", toIn) // nothing for b: its ACK number is unchanged
	// G_A: Init2 -> keys; it acknowledges Init2 itself.
	toIn, toOut = ga.push(Outside, tcpFrameFrom(init2))
	ack := one(t, "G_A ACK of Init2", toOut)
	if ack.ack != isnB+1+74 || ack.seq != isnA+1+75 || len(ack.payload) != 0 {
		t.Fatalf("ACK of Init2: %+v", ack)
	}
	// Nothing for a: Init2 acknowledges only Init1, and the SYN-ACK already
	// acknowledged a's ISN+1 (a second ACK of it is a duplicate ACK).
	none(t, "G_A Init2 inside", toIn)
	toIn, toOut = gb.push(Outside, tcpFrameFrom(ack))
	none(t, "G_B Init2-ACK outside", toOut)

	a, b := flowInfo(t, ga.e), flowInfo(t, gb.e)
	if !a.Encrypted || !b.Encrypted || a.Role != "A" || b.Role != "B" {
		t.Fatalf("flows: %+v / %+v", a, b)
	}
	if a.SessionID != b.SessionID || a.SessionID[0] != 0x23 {
		t.Fatalf("session IDs differ or bad TEP byte: %x / %x", a.SessionID, b.SessionID)
	}
	hasBytes(t, "transcript", a.Transcript, unhex("4504242345040123"))
	return pr
}

// tcpFrameFrom rebuilds a parsed segment as a frame (the link between the
// appliances).
func tcpFrameFrom(s segv) []byte {
	return tcpFrame(s.src, s.dst, s.seq, s.ack, s.flags, s.win, s.opts, s.payload)
}

func flowInfo(t testing.TB, e *Engine) FlowInfo {
	t.Helper()
	var out []FlowInfo
	e.Flows(func(fi FlowInfo) { out = append(out, fi) })
	if len(out) != 1 {
		t.Fatalf("%d flows, want 1", len(out))
	}
	return out[0]
}

func TestHandshakeX25519BothRoles(t *testing.T) {
	handshake(t)
}

// A far side without TCP-ENO: G_A falls back, forwards the SYN-ACK as is
// and forgets the flow (ENO-28).
func TestFallbackFarSideWithoutENO(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil)
	_, toOut := ga.push(Inside, syn)
	one(t, "SYN", toOut)
	synack := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil)
	v := ga.e.Handle(0, Outside, synack, ga.tx)
	if v != Passthrough {
		t.Fatalf("verdict %v, want passthrough", v)
	}
	if fi := flowInfo(t, ga.e); fi.Encrypted || fi.State != "plain" || fi.FallbackReason == "" || ga.e.Counters().Fallbacks[FallbackNoENO].Load() != 1 {
		t.Fatalf("flow %+v, fallbacks %d", fi, ga.e.Counters().Fallbacks[FallbackNoENO].Load())
	}
	// Later segments of the flow pass through untouched.
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, nil, []byte("hi")), ga.tx); v != Passthrough {
		t.Fatalf("data after fallback: %v", v)
	}
}

// Policy require: no ENO in the SYN-ACK resets both hosts.
func TestRequirePolicyResets(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("198.51.100.0/24"), Policy: Require}}})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	toIn, toOut := ga.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	r := one(t, "RST to b", toOut)
	if r.flags&rstF == 0 || r.seq != isnA+1 {
		t.Fatalf("RST to far side: %+v", r)
	}
	r = one(t, "RST to a", toIn)
	if r.flags != rstF|ackF || r.ack != isnA+1 {
		t.Fatalf("RST to a: %+v", r)
	}
}

// Bypass policy and a SYN with ENO of its own are left alone (a SYN with
// data: TestFastOpenSYNDataHeldBack, TestFastOpenToPlainPeer).
func TestNoENOAdded(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("198.51.100.2/32"), Policy: Bypass}}})
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 1, synOpts(1460, 1), nil), ga.tx); v != Passthrough {
		t.Fatalf("bypass: %v", v)
	}
	gb := newGW(t, Config{})
	other := addrB
	own := append(synOpts(1460, 1), 69, 3, 0x23)
	if v := gb.e.Handle(0, Inside, tcpFrame(addrA, other, isnA, 0, synF, 1, own, nil), gb.tx); v != Passthrough {
		t.Fatalf("SYN with ENO: %v", v)
	}
	gb.e.Flows(func(fi FlowInfo) {
		if fi.State != "plain" || fi.Encrypted || fi.FallbackReason == "" {
			t.Fatalf("flow %+v, want a plain record", fi)
		}
	})
}

// The inside host answering with ENO itself: end to end, G_B stays out.
func TestEndToEndWhenInsideHostSpeaksENO(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 4, 0x24, 0x23), nil)
	gb.push(Outside, syn)
	sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, append(synOpts(1460, 2), 69, 4, 0x01, 0x23), nil)
	if v := gb.e.Handle(0, Inside, sa, gb.tx); v != Passthrough {
		t.Fatalf("verdict %v", v)
	}
	if fi := flowInfo(t, gb.e); fi.Encrypted || fi.State != "plain" || gb.e.Counters().Fallbacks[FallbackEndToEnd].Load() != 1 {
		t.Fatalf("flow %+v", fi)
	}
	// A new SYN on the same tuple starts afresh.
	gb.push(Outside, syn)
	if fi := flowInfo(t, gb.e); fi.State != "syn-received" {
		t.Fatalf("tuple reuse: %+v", fi)
	}
}

// The third segment without ENO makes host B fall back (ENO-28). It goes
// on unchanged but off the fast path (ForwardInPlace) until A's first
// bytes show they are no Init1 (enopath.go); those are Passthrough.
func TestThirdSegmentWithoutENO(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	_, toOut := gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, synOpts(1460, 2), nil))
	one(t, "SYN-ACK", toOut)
	if v := gb.e.Handle(0, Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 1, nil, nil), gb.tx); v != ForwardInPlace {
		t.Fatalf("third segment: verdict %v, want forward-in-place", v)
	}
	if fi := flowInfo(t, gb.e); gb.e.Counters().Fallbacks[FallbackNoENOInACK].Load() != 1 || fi.State != "plain" {
		t.Fatalf("no fallback: %+v", fi)
	}
	if v := gb.e.Handle(0, Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 1, nil, []byte("220 banner")), gb.tx); v != ForwardInPlace {
		t.Fatalf("b's data before A's: verdict %v, want forward-in-place", v)
	}
	if v := gb.e.Handle(0, Outside, tcpFrame(addrA, addrB, isnA+1, isnB+11, ackF|pshF, 1, nil, []byte("GET / HTTP/1.1\r\n\r\n")), gb.tx); v != Passthrough {
		t.Fatalf("A's first bytes, plain: verdict %v, want passthrough", v)
	}
	gb.tick(int64(DefaultPlainRetention) + 1)
	if gb.e.NumFlows() != 0 {
		t.Fatal("plain flow kept past its retention")
	}
}

var _ = packet.FlagACK

func TestLookupAndNames(t *testing.T) {
	pr := handshake(t)
	fi, ok := pr.ga.e.Lookup(addrA, addrB)
	if !ok || !fi.Encrypted || fi.AEAD == "" || fi.Inside != addrA || fi.Outside != addrB {
		t.Fatalf("lookup: %+v %v", fi, ok)
	}
	if _, ok := pr.ga.e.Lookup(addrB, addrA); ok {
		t.Fatal("lookup of the reversed tuple found a flow")
	}
	for i, n := range FallbackNames {
		if n == "" {
			t.Fatalf("fallback %d unnamed", i)
		}
	}
	for i, n := range DropNames {
		if n == "" {
			t.Fatalf("drop %d unnamed", i)
		}
	}
}

// synAckToA runs a's SYN through G_A and G_B and b's SYN-ACK through G_B,
// returning the SYN-ACK as it leaves G_B (with G_B's ENO answer).
func synAckToA(t *testing.T) (ga, gb *gw, synack segv) {
	ga = newGW(t, Config{TEPs: testTEPs})
	gb = newGW(t, Config{TEPs: testTEPs})
	_, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1000), nil))
	gb.push(Outside, one(t, "SYN", toOut).frame())
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5000), nil))
	return ga, gb, one(t, "SYN-ACK", toOut)
}

// RFC 8547 §4.7 (docs/protocol.md §4): tcpcrypt defines no SYN data, so the data
// of a SYN-ACK carrying ENO is discarded, never acknowledged; here it would
// reach the inside host unauthenticated (DESIGN §2: garbage never reaches
// a host), first with the SYN-ACK that negotiates, then with a repeat.
func TestSYNACKDataNeverDelivered(t *testing.T) {
	ga, _, sa := synAckToA(t)
	sa.payload = []byte("UNAUTHENTICATED")
	toIn, toOut := ga.push(Outside, sa.frame())
	none(t, "G_A SYN-ACK outside", toOut)
	s := one(t, "SYN-ACK to a", toIn)
	if len(s.payload) != 0 || s.flags != synF|ackF || s.seq != isnB || s.ack != isnA+1 || mss(s.opts) != 1440 {
		t.Fatalf("SYN-ACK to a: %+v", s)
	}
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" {
		t.Fatalf("flow %+v", fi)
	}
	// The far side repeats it (our third segment was lost): the same.
	toIn, _ = ga.push(Outside, sa.frame())
	if s := one(t, "repeated SYN-ACK to a", toIn); len(s.payload) != 0 || s.flags != synF|ackF {
		t.Fatalf("repeated SYN-ACK to a: %+v", s)
	}
}

// The inside host's SYN-ACK with data (Fast Open) went out with our ENO
// option and the host's plaintext in it: SYN data the far side must discard
// (RFC 8547 §4.7), in a connection being encrypted, at wire offsets where
// Init2 goes next. The data is left out (the host sends it again, framed,
// after the handshake), first time and on a repeat.
func TestHostSYNACKDataNotNegotiated(t *testing.T) {
	for _, repeat := range []bool{false, true} {
		g := newGW(t, Config{TEPs: testTEPs})
		syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 4, 0x24, 0x23), nil)
		g.push(Outside, syn)
		sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil)
		if repeat {
			_, out := g.push(Inside, sa)
			one(t, "SYN-ACK", out)
		}
		sa = tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), []byte("HOSTDATA"))
		_, out := g.push(Inside, sa)
		s := one(t, "SYN-ACK with data", out)
		if len(s.payload) != 0 || option(s.opts, 69) == nil || s.flags != synF|ackF || s.seq != isnB {
			t.Fatalf("repeat %v: SYN-ACK on the wire %+v", repeat, s)
		}
		if fi := flowInfo(t, g.e); fi.State != "syn-ack-sent" {
			t.Fatalf("repeat %v: flow %+v", repeat, fi)
		}
	}
}

// A SYN with two ENO options counts as none (ENO-6): G_B does not answer
// as host B and the connection stays plain.
func TestTwoENOOptionsInSYN(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23, 69, 3, 0x24), nil)
	if v := gb.e.Handle(0, Outside, syn, gb.tx); v != Passthrough {
		t.Fatalf("verdict %v", v)
	}
	if fi := flowInfo(t, gb.e); fi.State != "plain" || gb.e.Counters().Fallbacks[FallbackNoENO].Load() != 1 {
		t.Fatalf("flow %+v", fi)
	}
}

// Role clash: the SYN-ACK's option has b = 0 like ours (ENO-30): plain TCP.
func TestRoleClash(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, append(synOpts(1460, 2), 69, 3, 0x23), nil)
	if v := ga.e.Handle(0, Outside, sa, ga.tx); v != Passthrough {
		t.Fatalf("verdict %v", v)
	}
	fi := flowInfo(t, ga.e)
	if fi.Encrypted || fi.FallbackReason == "" || ga.e.Counters().Fallbacks[FallbackNegotiate].Load() != 1 {
		t.Fatalf("role clash: %+v", fi)
	}
}

// The third segment lost: A's next segment (Init1) still carries `45 02`,
// G_B enables encryption on it and b still gets the ACK of its SYN-ACK.
func TestThirdSegmentLost(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	init1 := parse(t, o[1])
	hasBytes(t, "Init1 carries ENO", option(init1.opts, 69), unhex("4502"))
	toIn, toOut := gb.push(Outside, o[1]) // o[0], the third segment, is lost
	a := one(t, "ACK to b", toIn)
	if a.ack != isnB+1 || a.seq != isnA+1 {
		t.Fatalf("ACK to b: %+v", a)
	}
	one(t, "Init2", toOut)
}

// The inside host's SYN goes unanswered (a path that drops SYNs carrying
// options it does not know): its retransmissions keep our option, byte for
// byte, up to Config.SYNsWithENO SYNs in all; the next leaves as the host
// sent it, without TCP-ENO, and the connection stays plain (RFC 8547 §4.6:
// a host MAY remove ENO from a retransmitted SYN and disable it), so it
// connects where plain TCP would. Under require, or with SYNsWithENO
// negative, every SYN keeps the option.
func TestSYNRetransmissionsDropENO(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      Config
		withENO  int // SYNs that leave with the option; the rest without
		fallback bool
	}{
		{"default", Config{TEPs: testTEPs}, DefaultSYNsWithENO, true},
		{"four", Config{TEPs: testTEPs, SYNsWithENO: 4}, 4, true},
		{"never", Config{TEPs: testTEPs, SYNsWithENO: -1}, 6, false},
		{"require", Config{TEPs: testTEPs, Policies: requireFor(addrB.Addr())}, 6, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ga := newGW(t, c.cfg)
			syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil)
			var first []byte
			for i := range 6 {
				ga.now += int64(time.Second) // the host's retransmission timeout (RFC 6298 §2.1)
				_, toOut := ga.push(Inside, syn)
				s := one(t, "SYN", toOut)
				o := option(s.opts, 69)
				if i == 0 {
					first = o
				}
				if i < c.withENO && !bytes.Equal(o, first) || i < c.withENO && o == nil {
					t.Fatalf("SYN %d: ENO option %x, want the first SYN's %x", i+1, o, first)
				}
				if i >= c.withENO && o != nil {
					t.Fatalf("SYN %d: ENO option %x, want none", i+1, o)
				}
			}
			fb := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load()
			if c.fallback != (fb == 1) {
				t.Fatalf("%d syn_retries fallbacks", fb)
			}
			if c.fallback {
				if fi := flowInfo(t, ga.e); fi.Encrypted || fi.State != "plain" {
					t.Fatalf("flow %+v, want plain", fi)
				}
			}
		})
	}
}

// SYN copies that reach the engine together waited in the port while the
// appliance was paused or starved (a paused VM: the host retransmits once a
// second meanwhile); they tell nothing of the path, which has not seen
// them yet. They all leave with our option and the connection stays in
// negotiation; copies that come later, a retransmission timeout apart,
// count as before. Before, the fourth copy of a backlog turned the
// connection plain (fallback syn_retries) and its bytes crossed the
// untrusted link in plaintext.
func TestSYNBacklogKeepsENO(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil)
	send := func(what string) []byte {
		t.Helper()
		_, toOut := ga.push(Inside, syn)
		return option(one(t, what, toOut).opts, 69)
	}
	first := send("SYN")
	ga.now += int64(time.Second)
	for i := range 2 * DefaultSYNsWithENO {
		if o := send("SYN copy"); !bytes.Equal(o, first) {
			t.Fatalf("copy %d of a backlog: ENO option %x, want the first SYN's %x", i+1, o, first)
		}
		ga.now += int64(time.Millisecond)
	}
	if fb := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load(); fb != 0 {
		t.Fatalf("%d syn_retries fallbacks after a backlog of copies", fb)
	}
	if fi := flowInfo(t, ga.e); fi.State != "syn-sent" {
		t.Fatalf("flow %+v after a backlog, want syn-sent", fi)
	}
	// The backlog counted once: one more retransmission a timeout later
	// still carries ENO, the next (the fourth SYN to count) does not.
	for i, want := range []bool{true, false} {
		ga.now += int64(time.Second)
		if o := send("SYN retransmission"); (o != nil) != want {
			t.Fatalf("retransmission %d after the backlog: ENO option %x, want it %v", i+1, o, want)
		}
	}
	if fb := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load(); fb != 1 {
		t.Fatalf("%d syn_retries fallbacks, want 1", fb)
	}
}

// Once the far SYN-ACK has negotiated, a copy of the inside host's SYN
// (crossed with that SYN-ACK, or duplicated inside the enclave) is no sign
// of a path that drops SYNs with TCP-ENO: it goes on with our option, and
// the flow stays in the key exchange however many come. Before, the SYNs
// counted toward Config.SYNsWithENO killed the flow into plain TCP in the
// middle of its key exchange: the host's next data left in plaintext
// (while the far side held keys), and the kill cleared fields a public-key
// job was reading (a data race, a nil dereference in the pool).
func TestHostSYNCopiesInKeyExchangeKeepIt(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil)
	ours := option(one(t, "SYN", func() [][]byte { _, o := ga.push(Inside, syn); return o }()).opts, 69)
	ga.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 2), 69, 4, 0x01, 0x23), nil))
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" {
		t.Fatalf("after the far SYN-ACK: %+v", fi)
	}
	for i := range 2 * DefaultSYNsWithENO {
		_, toOut := ga.push(Inside, syn)
		if s := one(t, "the SYN copy", toOut); !bytes.Equal(option(s.opts, 69), ours) {
			t.Fatalf("SYN copy %d: ENO option %x, want %x", i+1, option(s.opts, 69), ours)
		}
	}
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" || ga.e.Counters().Fallbacks[FallbackSYNRetries].Load() != 0 {
		t.Fatalf("after the SYN copies: %+v", fi)
	}
	if v := ga.e.Handle(ga.now, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("PLAINTEXT")), ga.tx); v == Passthrough || v == ForwardInPlace {
		t.Fatalf("the host's data in the key exchange: %v", v)
	}
}

// The watch for A's first bytes after a third segment without ENO ends
// when the inside host resets the connection: the record goes on the fast
// path and may be reclaimed, and a resumed session's opener goes with it.
// Before, it lasted until the record expired (PlainRetention).
func TestWatchForFirstBytesEndsAtHostRST(t *testing.T) {
	gb := watchingForInit1(t)
	if v := gb.e.Handle(0, Inside, tcpFrame(addrB, addrA, isnB+1, 0, rstF, 0, nil, nil), gb.tx); v != Passthrough {
		t.Fatalf("the host's RST: %v, want passthrough", v)
	}
	if f := gb.onlyFlow(); f.watchInit1 || f.resOpener != nil {
		t.Fatal("the watch went on after the inside host's RST")
	}
}

// A SYN on the tuple of a record watching for A's first bytes, dropped
// (here shed under a flood), leaves the record as it was: A's Init1 is
// still recognised and both hosts reset. Before, the record, put back,
// took the dropped SYN's ISN for its own, and A's Init1 reached host b as
// 75 bytes of data (a review of the SYN memory of plain records).
func TestDroppedSYNKeepsTheWatch(t *testing.T) {
	gb := watchingForInit1(t)
	gb.e.floodUntil, gb.e.synTokens, gb.e.passTokens, gb.e.synAt = 1<<62, 0, 0, gb.now // shedding, no tokens
	gb.push(Outside, tcpFrame(addrA, addrB, 5555, 0, synF, 64240, synOpts(1460, 1), nil))
	if n := gb.e.Counters().Drops[DropSYNFlood].Load(); n != 1 {
		t.Fatalf("syn_flood drops %d, want the SYN dropped", n)
	}
	kp, err := newPair(tcpcrypt.TEPX25519)
	if err != nil {
		t.Fatal(err)
	}
	ini, err := tcpcrypt.NewInitiator(tcpcrypt.InitiatorConfig{TEP: tcpcrypt.TEPX25519, Ciphers: []cryptopool.Suite{cryptopool.AES128GCM}, Key: kp})
	if err != nil {
		t.Fatal(err)
	}
	in, out := gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 1, nil, ini.Init1()))
	for _, f := range in {
		if s := parse(t, f); len(s.payload) != 0 {
			t.Fatalf("A's Init1 reached host b as %d bytes of data", len(s.payload))
		}
	}
	if len(in) != 1 || len(out) != 1 {
		t.Fatalf("%d frames to b, %d to A; want an RST each", len(in), len(out))
	}
}

// watchingForInit1 is G_B after a far SYN with TCP-ENO, the inside host's
// SYN-ACK and a third segment without ENO: a plain record watching for
// A's first bytes (enopath.go).
func watchingForInit1(t *testing.T) *gw {
	t.Helper()
	gb := newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, synOpts(1460, 2), nil))
	gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 1, nil, nil))
	if f := gb.onlyFlow(); !f.watchInit1 {
		t.Fatal("no watch after a third segment without ENO")
	}
	return gb
}

// Handshake segments went unchecked: a SYN-ACK corrupted on the way (the
// host drops it) still set the peer's TEP, window scale and MSS, a
// corrupted third segment made G_B fall back and reset the connection at
// Init1, and a corrupted SYN with data reached the host stripped and with
// a good checksum (a frames review). Here every segment of the handshake,
// from both hosts and both appliances, first arrives corrupted: each copy
// is dropped and counted, and the handshake that follows is byte for byte
// the one handshake checks.
func TestCorruptedHandshakeSegmentsMoveNothing(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	ga.corrupt, gb.corrupt = true, true
	pr := handshakeOn(t, ga, gb)
	ga.corrupt, gb.corrupt = false, false
	h := newHosts()
	if atB, _ := pr.toB(pr.aSends(&h, []byte("after"), pshF)); len(atB) != 1 || string(atB[0].payload) != "after" {
		t.Fatalf("b got %+v", atB)
	}
}
