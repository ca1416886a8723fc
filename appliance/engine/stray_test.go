package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// The stray rules: a mid-stream segment of a tuple the engine has no record
// of passes unchanged unless the tuple is in the negotiated set (its
// connection was encrypted, by this engine or one before a restart); then
// both ends are reset and nothing with payload leaves.

// An unknown tuple is plain TCP begun before the engine started (or whose
// record expired): its segments pass unchanged, from either side, with
// data, FIN or RST.
func TestStrayUnknownPasses(t *testing.T) {
	g := newGW(t, Config{})
	for _, c := range []struct {
		from  PortID
		frame []byte
	}{
		{Outside, tcpFrame(addrA, addrB, 5000, 9000, ackF|pshF, 502, nil, []byte("frame bytes"))},
		{Inside, tcpFrame(addrB, addrA, 9000, 5011, ackF|pshF, 502, nil, []byte("plain reply"))},
		{Inside, tcpFrame(addrB, addrA, 9011, 5011, ackF|finF, 502, nil, nil)},
		{Outside, tcpFrame(addrA, addrB, 5011, 9012, ackF|finF, 502, nil, nil)},
		{Outside, tcpFrame(addrA, addrB, 5012, 9012, rstF, 0, nil, nil)},
	} {
		toIn, toOut := g.push(c.from, c.frame)
		got, other := toOut, toIn
		if c.from == Outside {
			got, other = toIn, toOut
		}
		none(t, "back to the sender", other)
		hasBytes(t, "passed unchanged", one(t, "forwarded", got).payload, parse(t, c.frame).payload)
	}
	if n := g.e.Counters().StrayResets.Load(); n != 0 {
		t.Fatalf("%d stray resets of a plain connection", n)
	}
}

// A plain record's expiry never turns into a reset: after PlainRetention the
// record goes, and the connection's next segments pass.
func TestPlainRecordExpiryPasses(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs, PlainRetention: 2 * time.Second})
	_, o := g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	one(t, "SYN out", o)
	toIn, _ := g.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	one(t, "SYN-ACK in (no ENO: plain)", toIn)
	g.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, nil, nil))
	if fi := flowInfo(t, g.e); fi.State != "plain" {
		t.Fatalf("flow %+v, want plain", fi)
	}
	// Idle past the retention: the sweep drops the record.
	for range 40 {
		g.tick(int64(100 * time.Millisecond))
	}
	if n := g.e.NumFlows(); n != 0 {
		t.Fatalf("%d records after the plain retention", n)
	}
	data := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("still plain"))
	_, toOut := g.push(Inside, data)
	hasBytes(t, "segment after expiry", one(t, "forwarded", toOut).payload, []byte("still plain"))
	toIn, toOut = g.push(Outside, tcpFrame(addrB, addrA, isnB+1, isnA+12, ackF, 502, nil, nil))
	none(t, "nothing back", toOut)
	one(t, "ACK forwarded", toIn)
	if n := g.e.Counters().StrayResets.Load(); n != 0 {
		t.Fatalf("%d stray resets", n)
	}
}

// restarted returns a fresh engine on set: what a restarted daemon's engine
// finds.
func restarted(t *testing.T, set *NegotiatedSet) *gw {
	t.Helper()
	return newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
}

// A tuple in the negotiated set whose record is gone (the daemon restarted)
// is reset both ways: the sender of each segment gets an RST it accepts
// (RFC 9293 §3.10.7.4: the sequence number it expects next), the other side
// a probe without payload that makes it answer with its own expectation,
// which then resets it. No payload crosses in either direction.
func TestStrayNegotiatedResetBothWays(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	pr := handshakeOn(t, newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set}), newGW(t, Config{TEPs: testTEPs}))
	h := newHosts()
	w := pr.aSends(&h, []byte("before the restart"), pshF)
	pr.toB(w)
	if !set.Contains(addrA, addrB) {
		t.Fatal("the encrypted tuple is not in the negotiated set")
	}
	ga := restarted(t, set)

	// a sends data: a gets an exact RST, the wire gets an empty probe.
	toIn, toOut := ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, nil, []byte("PLAINTEXT after restart")))
	r := one(t, "RST to a", toIn)
	if r.flags&rstF == 0 || r.seq != h.bNext || r.src != addrB || r.dst != addrA {
		t.Fatalf("RST to a: %+v", r)
	}
	pb := one(t, "probe to the far side", toOut)
	if len(pb.payload) != 0 || pb.flags != ackF || pb.src != addrA || pb.dst != addrB {
		t.Fatalf("probe: %+v", pb)
	}
	// The far side sends (its appliance's frame, wire numbers): it gets an
	// exact RST; a gets an empty probe, never the ciphertext.
	wireAck := uint32(0x7000)
	toIn, toOut = ga.push(Outside, tcpFrame(addrB, addrA, 0x9000, wireAck, ackF|pshF, 502, nil, []byte("ciphertext")))
	if pb := one(t, "probe to a", toIn); len(pb.payload) != 0 || pb.flags != ackF {
		t.Fatalf("probe to a: %+v", pb)
	}
	r = one(t, "RST to the far side", toOut)
	if r.flags&rstF == 0 || r.seq != wireAck || r.src != addrA || r.dst != addrB {
		t.Fatalf("RST to the far side: %+v", r)
	}
	// A pure ACK (the answer to a probe) gets its RST but no new probe.
	toIn, toOut = ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 502, nil, nil))
	one(t, "RST to a", toIn)
	none(t, "no probe for a pure ACK", toOut)
	if n := ga.e.Counters().StrayResets.Load(); n != 3 {
		t.Fatalf("stray resets %d, want 3", n)
	}
	// RSTs of the tuple pass without payload (the hosts' own resets).
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, h.aNext, 0, rstF, 0, nil, nil), ga.tx); v != Passthrough {
		t.Fatalf("RST: %v", v)
	}
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, h.aNext, 0, rstF, 0, nil, []byte("MARKER")), ga.tx); v != Dropped {
		t.Fatalf("RST with payload: %v", v)
	}
}

// An encrypted record that expires (idle) leaves its tuple in the set: a
// late segment is reset, never passed.
func TestEncryptedExpiryStillResets(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("x"), pshF))
	for range 400 {
		pr.ga.tick(int64(DefaultIdleTimeout / 200))
	}
	if pr.ga.e.NumFlows() != 0 {
		t.Fatal("the idle record was not dropped")
	}
	toIn, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, nil, []byte("late")))
	one(t, "RST to a", toIn)
	if pb := one(t, "probe", toOut); len(pb.payload) != 0 {
		t.Fatalf("payload on the wire: %+v", pb)
	}
}

// A new connection on a tuple that was encrypted takes it out of the set
// once its handshake completes (a SYN alone does not: a blind SYN must not
// free an encrypted connection's plaintext): if it stays plain, its later
// segments pass even without a record.
func TestNewConnectionForgetsTuple(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	set.Add(addrA, addrB, time.Time{})
	g := newGWDeps(t, Config{TEPs: testTEPs, PlainRetention: time.Second}, Deps{Negotiated: set})
	g.push(Outside, tcpFrame(addrB, addrA, 12345, 0, synF, 64240, synOpts(1460, 1), nil))
	g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	if !set.Contains(addrA, addrB) {
		t.Fatal("a SYN took the tuple out of the set")
	}
	g.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	if set.Contains(addrA, addrB) {
		t.Fatal("a completed handshake left the old tuple in the set")
	}
	g.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, nil, nil))
	for range 30 {
		g.tick(int64(100 * time.Millisecond))
	}
	_, toOut := g.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("plain")))
	hasBytes(t, "passed", one(t, "forwarded", toOut).payload, []byte("plain"))
}

// A new connection whose SYN passed with no record (the memory budget used
// up, or a full table) on a tuple still in the negotiated set (an encrypted
// connection on it ended less than CloseLinger ago) was reset at its first
// data segment as a stray of the old one: the set let go of a tuple only
// when a handshake completed on a record. A SYN from the inside host now
// takes the tuple out (the host starts a new connection there, so it holds
// no old one); for a SYN from outside, which anyone can send, the inside
// host's SYN-ACK does. A SYN-ACK from outside, which anyone can forge,
// leaves the tuple in the set.
func TestUntrackedSYNForgetsTuple(t *testing.T) {
	for _, from := range []PortID{Inside, Outside} {
		set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
		set.Add(addrA, addrB, time.Now().Add(CloseLinger))
		g := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set, Memory: NewMemory(0)})
		var data []byte
		if from == Inside {
			g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
			g.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
			data = tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("new connection"))
		} else {
			g.push(Outside, tcpFrame(addrB, addrA, isnB, 0, synF, 64240, append(synOpts(1460, 1), farENOOpt...), nil))
			g.push(Outside, tcpFrame(addrB, addrA, 0x5a5a5a5a, isnA+1, synF|ackF, 65160, synOpts(1460, 9), nil))
			if !set.Contains(addrA, addrB) {
				t.Fatal("a SYN-ACK from outside took the tuple out of the set")
			}
			g.push(Inside, tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 65160, synOpts(1460, 2), nil))
			data = tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 502, nil, []byte("new connection"))
		}
		toIn, toOut := g.push(from, data) // by the SYN's sender
		got, back := toIn, toOut
		if from == Inside {
			got, back = toOut, toIn
		}
		c := g.e.Counters()
		// (From outside no record is tried: farSYN keeps none for a SYN
		// on a negotiated tuple; the memory fallback is counted.)
		if len(back) != 0 || len(got) != 1 || c.Fallbacks[FallbackMemory].Load() == 0 || c.StrayResets.Load() != 0 {
			t.Errorf("SYN from port %d: memory fallbacks=%d, strayResets=%d, data forwarded %d, sent back %d",
				from, c.Fallbacks[FallbackMemory].Load(), c.StrayResets.Load(), len(got), len(back))
			continue
		}
		hasBytes(t, "data", parse(t, got[0]).payload, []byte("new connection"))
	}
}

// The inside host's SYN-ACK frees a negotiated tuple only when it answers a
// SYN this engine saw pass: one that answers a SYN a previous run
// negotiated (the host resends its SYN-ACK across a restart) belongs to
// that encrypted connection, whose next segments must still be reset, not
// passed (the far appliance's Init would reach the host as data).
func TestHostSYNACKToUnseenSYNKeepsTuple(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	set.Add(addrA, addrB, time.Now().Add(IdleLinger))
	g := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
	pass(t, g, Inside, tcpFrame(addrA, addrB, isnA, isnB+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	if !set.Contains(addrA, addrB) {
		t.Fatal("the host's SYN-ACK to a SYN never seen took the tuple out of the set")
	}
	toIn, _ := g.push(Outside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 502, nil, []byte("Init1 of the old connection")))
	for _, f := range toIn {
		if len(parse(t, f).payload) != 0 {
			t.Fatal("the old connection's wire bytes reached the host")
		}
	}
}

// An ICMP error from the inside quoting a segment of a negotiated tuple
// without a record (delivered by the engine before a restart) quotes
// plaintext: dropped. One about an unknown plain tuple passes.
func TestStrayICMPQuote(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{})
	set.Add(addrA, addrB, time.Time{})
	g := newGWDeps(t, Config{}, Deps{Negotiated: set})
	router := netip.MustParseAddr("192.0.2.254")
	quoteOf := func(seg []byte) []byte {
		return packettest.Frame{Src: router, Dst: addrB.Addr(), Proto: 1,
			L4: packettest.ICMP(11, 0, 0, packettest.Quote(seg, 548))}.Bytes()
	}
	delivered := tcpFrame(addrB, addrA, 7000, 8000, ackF|pshF, 502, nil, []byte("MARKER delivered plaintext"))
	if v := g.e.Handle(0, Inside, quoteOf(delivered), g.tx); v != Dropped || g.e.Counters().Drops[DropICMPQuote].Load() != 1 {
		t.Fatalf("ICMP error quoting a negotiated tuple: %v", v)
	}
	other := tcpFrame(netip.AddrPortFrom(addrB.Addr(), 81), addrA, 7000, 8000, ackF|pshF, 502, nil, []byte("plain"))
	if v := g.e.Handle(0, Inside, quoteOf(other), g.tx); v != Passthrough {
		t.Fatalf("ICMP error quoting a plain tuple: %v", v)
	}
}

// a half-closes and nothing moves for two hours: no rekeying of ours can
// refresh the record after our FINp, so only the hosts' keep-alives do.
// b's first keep-alive probe, two hours after the last segment (the
// default of Linux, Windows and macOS), still finds the record: it is
// passed to a, not reset as it would be after the record expired.
func TestHalfClosedSurvivesTwoHourKeepAlive(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("request"), pshF|finF))
	for _, s := range pr.bAcks(&h, h.aNext) {
		pr.ga.push(Outside, s.frame()) // a's FIN acknowledged: FIN-WAIT-2
	}
	for range 72 {
		toIn, _ := pr.ga.tick(int64(100 * time.Second))
		pr.answerProbes(&h, 0, toIn) // a is alive: it answers G_A's probes (hostprobe.go)
	}
	toIn, _ := pr.ga.tick(int64(time.Second))
	pr.answerProbes(&h, 0, toIn)
	if pr.ga.e.NumFlows() != 1 {
		t.Fatal("G_A forgot the half-closed connection before its hosts' first keep-alive")
	}
	// b's probe: one below what it has sent and had acknowledged.
	_, wire := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext-1, h.aNext, ackF, 509, tsOpt(9, 9), nil))
	toA, back := pr.ga.push(Outside, one(t, "keep-alive on the wire", wire).frame())
	if len(back) != 0 {
		t.Fatalf("G_A answered R's keep-alive itself (a reset?): %+v", parse(t, back[0]))
	}
	if k := one(t, "keep-alive at a", toA); k.flags&rstF != 0 {
		t.Fatal("a got a reset")
	}
	if n := pr.ga.e.Counters().KeepAlives.Load(); n != 1 {
		t.Fatalf("G_A counted %d keep-alives, want the probe", n)
	}
}

// The other side of TestHalfClosedSurvivesTwoHourKeepAlive: a, which sent
// its FIN and had it acknowledged (FIN-WAIT-2), probes b after two quiet
// hours. Its SND.UNA is one past its FIN, so the probe is at the FIN's
// sequence number, with no data as Linux sends it (or one byte as Windows
// does). Before, only one below the end of a's data counted as a probe:
// this one was taken for a repeated pure ACK and suppressed, and a aborted
// the connection after its last unanswered probe. Now it leaves as a probe
// at the wire FIN, reaches b, and b's answer comes back to a.
func TestFINWait2KeepAliveReachesFarHost(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("request"), pshF|finF))
	finAck := one(t, "b's ACK of the FIN", toFrames(pr.bAcks(&h, h.aNext)))
	pr.ga.push(Outside, finAck.frame())
	for range 72 {
		// Both hosts alive: they answer their appliances' probes
		// (hostprobe.go); the appliances' own frames are not relayed.
		inA, _ := pr.ga.tick(int64(100 * time.Second))
		pr.answerProbes(&h, 0, inA)
		inB, _ := pr.gb.tick(int64(100 * time.Second))
		pr.answerProbes(&h, 1, inB)
	}
	for _, garbage := range [][]byte{nil, {0}} {
		pr.tsA++
		toIn, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext-1, h.bNext, ackF, 502, tsOpt(pr.tsA, pr.tsB), garbage))
		c := pr.ga.e.Counters()
		if len(toIn) != 0 || len(toOut) != 1 {
			t.Fatalf("probe with %d bytes: G_A sent %d to a, %d to the wire; keep-alives %d, suppressed %d",
				len(garbage), len(toIn), len(toOut), c.KeepAlives.Load(), c.AcksSuppressed.Load())
		}
		k := parse(t, toOut[0])
		if k.seq != finAck.ack-1 || len(k.payload) != 0 {
			t.Fatalf("keep-alive on the wire: seq %x len %d, want %x (the wire FIN) and no data", k.seq, len(k.payload), finAck.ack-1)
		}
		toB, back := pr.gb.push(Outside, k.frame())
		none(t, "G_B answers for b", back)
		if p := one(t, "probe at b", toB); p.seq != h.aNext-1 || p.flags&rstF != 0 {
			t.Fatalf("probe at b: seq %x flags %x, want %x", p.seq, p.flags, h.aNext-1)
		}
		answer := one(t, "b's answer on the wire", toFrames(pr.bAcks(&h, h.aNext)))
		toA, _ := pr.ga.push(Outside, answer.frame())
		if a := one(t, "b's answer at a", toA); a.ack != h.aNext || a.flags&rstF != 0 {
			t.Fatalf("answer at a: ack %x flags %x, want %x", a.ack, a.flags, h.aNext)
		}
	}
	if n := pr.ga.e.Counters().KeepAlives.Load(); n != 2 {
		t.Fatalf("G_A counted %d keep-alives, want 2", n)
	}
}

// An ICMPv6 Redirect from the inside (a router sending a far host back to
// a better first hop on the link, RFC 4861 §8.2) carries as much of the
// redirected packet as fits in its Redirected Header option: for a
// segment the appliance delivered, decrypted plaintext. It is dropped like
// an error quoting it; a redirect about a plain tuple, or one without the
// option, passes. (ICMPv6 redirects went on as non-TCP before.)
func TestICMPv6RedirectQuotingPlaintext(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{})
	set.Add(addrA6, addrB6, time.Time{})
	g := newGWDeps(t, Config{}, Deps{Negotiated: set})
	router := netip.MustParseAddr("fe80::1")
	redirect := func(quoted []byte) []byte {
		body := make([]byte, 32) // target, destination
		body[0], body[15], body[16], body[31] = 0xfe, 2, 0x20, 1
		if quoted != nil {
			q := packettest.Quote(quoted, 1200)
			q = append(q, make([]byte, (8-len(q)%8)%8)...)
			body = append(body, 4, byte(1+len(q)/8), 0, 0, 0, 0, 0, 0)
			body = append(body, q...)
		}
		return packettest.Frame{Src: router, Dst: addrB6.Addr(), Proto: 58, L4: packettest.ICMP(137, 0, 0, body)}.Bytes()
	}
	data := func(src netip.AddrPort) []byte {
		return packettest.Frame{Src: src.Addr(), Dst: addrA6.Addr(), TCP: &packettest.TCP{SrcPort: src.Port(), DstPort: addrA6.Port(),
			Seq: 7000, Ack: 8000, Flags: ackF | pshF, Window: 502, Payload: []byte("MARKER delivered plaintext")}}.Bytes()
	}
	if v := g.e.Handle(0, Inside, redirect(data(addrB6)), g.tx); v != Dropped || g.e.Counters().Drops[DropICMPQuote].Load() != 1 {
		t.Fatalf("redirect quoting a segment of a negotiated tuple: %v", v)
	}
	if v := g.e.Handle(0, Inside, redirect(data(netip.AddrPortFrom(addrB6.Addr(), 81))), g.tx); v != Passthrough {
		t.Fatalf("redirect quoting a plain tuple: %v", v)
	}
	if v := g.e.Handle(0, Inside, redirect(nil), g.tx); v != Passthrough {
		t.Fatalf("redirect without a Redirected Header: %v", v)
	}
}

// newGuardGW is a guard (NewGuard) over set with the tests' sinks: the
// handler of a daemon restarted with its engine off.
func newGuardGW(t *testing.T, set *NegotiatedSet) *gw {
	t.Helper()
	e, err := NewGuard(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, e: e}
	g.in, g.out, g.tx = sinks()
	return g
}

// A daemon restarted with its engine off passed every frame (its handler
// was the appliance's Passthrough): the inside host's next segments of a
// connection the previous run encrypted left in plaintext, and the far
// appliance's frames reached the host as data. Its guard now handles the
// tuples of the pinned negotiated set as the engine handles strays (reset
// both ways, no payload across, RSTs with payload, fragments and the
// inside's ICMP errors quoting them dropped); every other frame passes, and
// a new connection whose handshake completes on the tuple frees it.
func TestEngineOffGuardResetsNegotiated(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	set.Add(addrA, addrB, time.Now().Add(IdleLinger))
	g := newGuardGW(t, set)

	toIn, toOut := g.push(Inside, tcpFrame(addrA, addrB, 5000, 9000, ackF|pshF, 502, nil, []byte("MARKER plaintext after restart")))
	if r := one(t, "RST to a", toIn); r.flags&rstF == 0 || r.seq != 9000 {
		t.Fatalf("RST to a: %+v", r)
	}
	if pb := one(t, "probe to the far side", toOut); len(pb.payload) != 0 || pb.flags != ackF {
		t.Fatalf("probe: %+v", pb)
	}
	toIn, toOut = g.push(Outside, tcpFrame(addrB, addrA, 0x9000, 0x7000, ackF|pshF, 502, nil, []byte("ciphertext")))
	if pb := one(t, "probe to a", toIn); len(pb.payload) != 0 {
		t.Fatalf("ciphertext reached a: %+v", pb)
	}
	if r := one(t, "RST to the far side", toOut); r.flags&rstF == 0 || r.seq != 0x7000 {
		t.Fatalf("RST to the far side: %+v", r)
	}
	if v := g.e.Handle(0, Inside, tcpFrame(addrA, addrB, 5000, 0, rstF, 0, nil, []byte("MARKER")), g.tx); v != Dropped {
		t.Fatalf("RST with payload: %v", v)
	}
	frags := fragmentFrame(t, tcpFrame(addrA, addrB, 5000, 9000, ackF|pshF, 502, nil, markerData(1200)), 512, 77)
	toIn, toOut = g.pushAll(Inside, frags)
	noPlainFragments(t, "fragments of the negotiated tuple", append(toIn, toOut...))
	router := netip.MustParseAddr("192.0.2.254")
	icmp := packettest.Frame{Src: router, Dst: addrB.Addr(), Proto: 1, L4: packettest.ICMP(11, 0, 0,
		packettest.Quote(tcpFrame(addrB, addrA, 7000, 8000, ackF|pshF, 502, nil, []byte("MARKER delivered")), 548))}.Bytes()
	if v := g.e.Handle(0, Inside, icmp, g.tx); v != Dropped {
		t.Fatalf("ICMP error quoting the negotiated tuple: %v", v)
	}

	// Any other tuple passes, as without an engine.
	other := netip.AddrPortFrom(addrA.Addr(), 40999)
	_, toOut = g.push(Inside, tcpFrame(other, addrB, 5000, 9000, ackF|pshF, 502, nil, []byte("plain")))
	hasBytes(t, "another tuple", one(t, "forwarded", toOut).payload, []byte("plain"))

	// A SYN-ACK alone frees nothing; a completed handshake does.
	g.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	if !set.Contains(addrA, addrB) {
		t.Fatal("a SYN-ACK without a SYN took the tuple out of the set")
	}
	_, toOut = g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	one(t, "new SYN passed", toOut)
	toIn, _ = g.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	one(t, "its SYN-ACK passed", toIn)
	if set.Contains(addrA, addrB) {
		t.Fatal("a completed handshake left the old tuple in the set")
	}
	_, toOut = g.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("new plain")))
	hasBytes(t, "the new connection", one(t, "forwarded", toOut).payload, []byte("new plain"))
	if n := g.e.Counters().StrayResets.Load(); n != 3 { // the two segments, and the fragments once whole
		t.Fatalf("stray resets %d, want 3", n)
	}
}

// A SYN from outside on a negotiated tuple whose record is gone (a restart)
// while the hosts still hold the encrypted connection: forged, or an old
// duplicate, it must not make the tuple plain. Before, a SYN without
// TCP-ENO made a plain record, which passes every segment: the inside
// host's next data left in plaintext (the workers then put the tuple on
// the kernel fast path), the far side's ciphertext reached the host. And
// a SYN-ACK from outside, forged, took the tuple out of the set after a
// forged SYN with TCP-ENO (any SYN-ACK on an unheld record did). Only the
// inside host's SYN-ACK to the SYN shows it holds no old connection there.
func TestForgedSYNOnNegotiatedTupleKeepsItNegotiated(t *testing.T) {
	for _, c := range []struct {
		name   string
		synOpt []byte
		synACK bool // then a forged SYN-ACK from outside too
	}{
		{"SYN without ENO", nil, false},
		{"SYN with ENO, then a SYN-ACK", []byte{69, 3, 0x23}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
			pr := handshakeOn(t, newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set}), newGW(t, Config{TEPs: testTEPs}))
			h := newHosts()
			pr.toB(pr.aSends(&h, []byte("before the restart"), pshF))
			ga := restarted(t, set)
			ga.push(Outside, tcpFrame(addrB, addrA, 0x12345678, 0, synF, 65160, append(synOpts(1460, 7), c.synOpt...), nil))
			if c.synACK {
				ga.push(Outside, tcpFrame(addrB, addrA, 0x12345678, 0x55555555, synF|ackF, 65160, append(synOpts(1460, 8), 69, 2), nil))
			}
			if !set.Contains(addrA, addrB) {
				t.Fatal("the forged segments took the tuple out of the negotiated set")
			}
			// Passed, it would leave as it is: in plaintext.
			if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, nil, []byte("PLAINTEXT")), ga.tx); v != Dropped {
				t.Fatalf("the host's data: %v, want dropped (stray reset)", v)
			}
			if v := ga.e.Handle(0, Outside, tcpFrame(addrB, addrA, 0x9000, 0x7000, ackF|pshF, 502, nil, []byte("ciphertext")), ga.tx); v != Dropped {
				t.Fatalf("the far side's frame: %v, want dropped (stray reset)", v)
			}
		})
	}
	// The inside host's SYN-ACK to such a SYN shows it holds no old
	// connection: the tuple leaves the set and the new one is plain.
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	handshakeOn(t, newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set}), newGW(t, Config{TEPs: testTEPs}))
	ga := restarted(t, set)
	if v := ga.e.Handle(0, Outside, tcpFrame(addrB, addrA, 0x12345678, 0, synF, 65160, synOpts(1460, 7), nil), ga.tx); v != Passthrough {
		t.Fatalf("a new connection's SYN: %v", v)
	}
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, 0x2000, 0x12345679, synF|ackF, 64240, synOpts(1460, 9), nil), ga.tx); v != Passthrough || set.Contains(addrA, addrB) {
		t.Fatalf("the host's SYN-ACK: %v, tuple still negotiated %v", v, set.Contains(addrA, addrB))
	}
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, 0x2001, 0x12345679, ackF|pshF, 502, nil, []byte("new plain connection")), ga.tx); v != Passthrough {
		t.Fatalf("the new connection's data: %v", v)
	}
}
