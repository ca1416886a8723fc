package scenario

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Paths that lose TCP-ENO after the SYNs (appliance/engine/enopath.go).

// stripENO turns every TCP-ENO option of a frame into NOPs, as a
// middlebox that blanks the options it does not know on segments after
// the SYNs does.
func stripENO(frame []byte) {
	s, err := ParseFrame(frame)
	if err != nil {
		return
	}
	o := s.Options // aliases frame
	for i := 0; i < len(o); {
		switch o[i] {
		case 0:
			return
		case 1:
			i++
			continue
		}
		if i+1 >= len(o) || o[i+1] < 2 || i+int(o[i+1]) > len(o) {
			return
		}
		l := int(o[i+1])
		if o[i] == 69 {
			copy(o[i:i+l], bytes.Repeat([]byte{1}, l))
		}
		i += l
	}
}

// afterSYNsWithENO matches the segments after the SYNs that carry TCP-ENO.
func afterSYNsWithENO(_ int, s Seg) bool { return !s.Has(packettest.SYN) && len(s.ENO()) > 0 }

// eventCount is e's event counter of that name (Counters.EachEvent), 0 if
// it has none.
func eventCount(e *engine.Engine, name string) uint64 {
	var n uint64
	e.Counters().EachEvent(func(k string, v uint64) {
		if k == name {
			n = v
		}
	})
	return n
}

// fallbackCount is e's count of the fallback reason of that name, 0 if it
// has none.
func fallbackCount(e *engine.Engine, name string) uint64 {
	for i, n := range engine.FallbackNames {
		if n == name {
			return e.Counters().Fallbacks[i].Load()
		}
	}
	return 0
}

func hasRST(segs []Seg) bool {
	for _, s := range segs {
		if s.Has(packettest.RST) {
			return true
		}
	}
	return false
}

// noPayload fails if host s got any byte.
func noPayload(t *testing.T, w *World, s Side) {
	t.Helper()
	for _, g := range w.All[s] {
		if len(g.Payload) > 0 {
			t.Fatalf("host %d got %v: payload %x", s, g, g.Payload)
		}
	}
}

// pair returns a connection from host a's address and port to b's on
// port, and b's end of it.
func (f *fixture) pair(aPort, bPort uint16, isnX, isnY uint32) (x, y *Host) {
	x = &Host{Addr: netip.AddrPortFrom(f.a.Addr.Addr(), aPort), Peer: netip.AddrPortFrom(f.b.Addr.Addr(), bPort), ISN: isnX}
	return x, &Host{Addr: x.Peer, Peer: x.Addr, ISN: isnY}
}

// across sends frame from host s through both appliances and returns what
// the other host got, which must be that one segment byte for byte, and
// what crossed the link.
func across(t *testing.T, f *fixture, s Side, frame []byte) (link Seg) {
	t.Helper()
	d := dirFrom(s)
	n := f.mark(d)
	f.w.Host(s, frame)
	f.w.Run(latency)
	link = one(t, "segment on the link", f.sentSince(d, n))
	if g := one(t, "segment at the other host", f.w.Take(1-s)); !bytes.Equal(g.Raw, frame) {
		t.Fatalf("segment changed on its way:\n got  %x\n want %x", g.Raw, frame)
	}
	return link
}

// plainConnection runs a connection from x (host a's side) to y through
// both appliances, plain from its SYN on: the SYN-ACK and every later
// segment cross unchanged, and none on the link carries TCP-ENO.
func plainConnection(t *testing.T, f *fixture, x, y *Host) {
	t.Helper()
	f.w.Host(SideA, x.SYN(LinuxSYNOpts))
	f.w.Run(latency)
	one(t, "SYN at b", f.w.Take(SideB))
	if s := across(t, f, SideB, y.SYNACK(x.ISN, LinuxSYNOpts)); len(s.ENO()) != 0 {
		t.Fatalf("SYN-ACK on the link with TCP-ENO: %v", s)
	}
	for _, fr := range [][]byte{
		x.ACK(0, y.ISN+1),
		x.Data(0, y.ISN+1, []byte("plain MARK from a")),
	} {
		if s := across(t, f, SideA, fr); len(s.ENO()) != 0 {
			t.Fatalf("segment on the link with TCP-ENO: %v", s)
		}
	}
	across(t, f, SideB, y.Data(0, x.Seq(17), []byte("plain MARK from b")))
}

// TestPathStripsENOAfterSYNs: a middlebox passes the SYNs' options and
// blanks TCP-ENO on every later segment from a's side (RFC 8547 §9, a
// type-2 failure), with a's pure third ACK arriving or lost. G_B falls
// back at the first of them (ENO-28), G_A encrypts (ENO-34), and Init1
// follows. G_B sees it is one: it never reaches b, and both hosts are
// reset at once. G_B remembers a's address: a's next connection is plain
// from its SYN (G_B's SYN-ACK carries no ENO) and works, and so is one
// from b. Before, b got Init1 as 75 bytes of data, and every later
// connection failed the same way.
func TestPathStripsENOAfterSYNs(t *testing.T) {
	for _, lostACK := range []bool{false, true} {
		t.Run(fmt.Sprintf("lostACK=%v", lostACK), func(t *testing.T) {
			f := full(t)
			w, a := f.w, f.a
			if lostACK {
				w.Link.Add(Rule{Dir: AtoB, Match: func(_ int, s Seg) bool { return !s.Has(packettest.SYN) && len(s.Payload) == 0 }, Drop: true})
			}
			strip := w.Link.Add(Rule{Dir: AtoB, Match: afterSYNsWithENO, Mutate: stripENO, Times: -1})
			f.stepSYN(t)
			f.stepSYNACK(t)
			w.Host(SideA, a.ACK(0, isnB+1))
			w.Run(10 * latency)
			if strip.Hits == 0 {
				t.Fatal("nothing was stripped")
			}
			noPayload(t, w, SideB)
			noPayload(t, w, SideA)
			if !hasRST(w.All[SideB]) || !hasRST(w.All[SideA]) {
				t.Fatalf("RST to b %v, to a %v; want both", hasRST(w.All[SideB]), hasRST(w.All[SideA]))
			}
			if n := w.G[SideA].NumFlows() + w.G[SideB].NumFlows(); n != 0 {
				t.Fatalf("%d flows left", n)
			}
			w.Take(SideA)
			w.Take(SideB)
			a2, b2 := f.pair(40001, 80, 20000, 30000)
			plainConnection(t, f, a2, b2)
			_, b3 := f.pair(22, 50000, 0, 7000) // b's connection to a
			across(t, f, SideB, b3.SYN(LinuxSYNOpts))
			if n := eventCount(w.G[SideB], "eno_path_failures"); n != 1 {
				t.Fatalf("G_B eno_path_failures %d, want 1", n)
			}
			if n := fallbackCount(w.G[SideB], "eno_path_stripped"); n != 2 {
				t.Fatalf("G_B eno_path_stripped %d, want 2 (a's SYN, b's)", n)
			}
		})
	}
}

// farSideFellBack runs a's connection to a far side (played by the test)
// that answers our SYN's TCP-ENO but never sees our `45 02`: G_A sends its
// third segment and Init1, and the far side's answer to them is then up to
// answer. It returns what G_A sent after the SYN-ACK.
func farSideFellBack(t *testing.T, f *fixture, answer func()) []Seg {
	t.Helper()
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	checkSYN(t, one(t, "SYN at the far side", w.TakeFar(SideB)))
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts, enoSYNACK))
	w.Run(latency)
	one(t, "SYN-ACK at a", w.Take(SideA))
	w.Host(SideA, a.ACK(0, isnB+1))
	w.Run(latency)
	checkInit(t, "Init1", w.TakeFar(SideB), isnA+1, init1, magic1)
	answer()
	noPayload(t, w, SideA)
	if !hasRST(w.Take(SideA)) {
		t.Fatal("a got no RST")
	}
	return w.TakeFar(SideB)
}

// remembered checks that G_A, alone on its side, now leaves connections
// to and from b's address plain from their SYNs: a's next SYN leaves as a
// sent it, and the SYN-ACK to a far SYN with TCP-ENO too.
func remembered(t *testing.T, f *fixture) {
	t.Helper()
	a2, b2 := f.pair(40001, 80, 20000, 30000)
	f.outIdentical(t, SideA, a2.SYN(LinuxSYNOpts))
	f.inIdentical(t, SideA, b2.SYNACK(20000, LinuxSYNOpts))
	f.outIdentical(t, SideA, a2.ACK(0, 30001))
	f.outIdentical(t, SideA, a2.Data(0, 30001, []byte("plain MARK from a")))
	f.inIdentical(t, SideA, b2.Data(0, a2.Seq(17), []byte("plain MARK from b")))
	a3, b3 := f.pair(22, 50000, 7000, 8000)
	f.inIdentical(t, SideA, b3.SYN(LinuxSYNOpts, enoSYN))
	f.outIdentical(t, SideA, a3.SYNACK(8000, LinuxSYNOpts))
	if n := fallbackCount(f.w.G[SideA], "eno_path_stripped"); n != 2 {
		t.Fatalf("G_A eno_path_stripped %d, want 2 (a's SYN, b's)", n)
	}
	if n := eventCount(f.w.G[SideA], "eno_path_failures"); n != 1 {
		t.Fatalf("G_A eno_path_failures %d, want 1", n)
	}
	// Five minutes later G_A offers TCP-ENO to b's address again.
	f.w.Now += int64(5 * time.Minute)
	a4, _ := f.pair(40004, 80, 40000, 0)
	f.w.Host(SideA, a4.SYN(LinuxSYNOpts))
	f.w.Run(latency)
	if s := one(t, "SYN five minutes later", f.w.TakeFar(SideB)); len(s.ENO()) != 1 {
		t.Fatalf("SYN five minutes later without TCP-ENO: %v", s)
	}
}

// TestFarSideAnswersInit1WithData: the far side answered our SYN's TCP-ENO
// but fell back, since our `45 02` never reached it, and its host took
// Init1 for data and answered it (an HTTP server's 400). R's first bytes
// are no Init2: G_A resets both hosts as before (U-1), and now remembers
// b's address, so that a's next connection to it is plain from its SYN and
// works, as is one from b. Before, every later connection failed the same
// way.
func TestFarSideAnswersInit1WithData(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	toFar := farSideFellBack(t, f, func() {
		w.SendFar(SideB, b.Data(0, a.Seq(init1), []byte("HTTP/1.1 400 Bad Request\r\n\r\n")))
		w.Run(2 * latency)
	})
	if !hasRST(toFar) {
		t.Fatal("the far side got no RST")
	}
	remembered(t, f)
}

// TestFarSideSilentAfterInit1: as TestFarSideAnswersInit1WithData, but the
// far host says nothing: its TCP acknowledges Init1, which its host took
// for data. After the handshake timeout G_A resets both hosts as before
// and now remembers b's address.
func TestFarSideSilentAfterInit1(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	toFar := farSideFellBack(t, f, func() {
		w.SendFar(SideB, b.ACK(0, a.Seq(init1)))
		w.Run(engine.DefaultHandshakeTimeout + time.Second)
	})
	if !hasRST(toFar) {
		t.Fatal("the far side got no RST")
	}
	remembered(t, f)
}

// TestHonestPathsRememberNothing: an encrypted connection, a far side
// without TCP-ENO, a path that loses every Init1 but let the third segment
// through, and a SYN-ACK whose option was lost on its way to G_A (both
// ends fall back, docs/protocol.md §6; a's first bytes are plain data,
// which G_B, watching for an Init1 off the fast path, lets through and
// only then passes) leave no memory: the next connection offers and
// negotiates TCP-ENO as before.
func TestHonestPathsRememberNothing(t *testing.T) {
	negotiates := func(t *testing.T, f *fixture) {
		t.Helper()
		w := f.w
		a2, b2 := f.pair(40001, 80, 20000, 30000)
		w.Host(SideA, a2.SYN(LinuxSYNOpts))
		w.Run(latency)
		if s := f.w.Link.Sent(AtoB); len(s[len(s)-1].ENO()) != 1 {
			t.Fatalf("a's next SYN left without TCP-ENO: %v", s[len(s)-1])
		}
		for s := range 2 {
			if e := w.G[s]; e != nil && eventCount(e, "eno_path_failures")+fallbackCount(e, "eno_path_stripped") != 0 {
				t.Fatalf("side %d counted a path that lost TCP-ENO", s)
			}
		}
		if w.G[SideB] == nil {
			return
		}
		w.Take(SideB)
		w.Host(SideB, b2.SYNACK(20000, LinuxSYNOpts))
		w.Run(latency)
		if s := f.w.Link.Sent(BtoA); len(s[len(s)-1].ENO()) != 1 {
			t.Fatalf("b's SYN-ACK left without TCP-ENO: %v", s[len(s)-1])
		}
	}
	t.Run("encrypted", func(t *testing.T) {
		f := full(t)
		f.handshake(t)
		f.exchange(t)
		negotiates(t, f)
	})
	t.Run("far side without TCP-ENO", func(t *testing.T) {
		f := onlyA(t)
		w, a, b := f.w, f.a, f.b
		w.Host(SideA, a.SYN(LinuxSYNOpts))
		w.Run(latency)
		w.TakeFar(SideB)
		f.inIdentical(t, SideA, b.SYNACK(isnA, LinuxSYNOpts))
		f.plainRestA(t)
		negotiates(t, f)
	})
	t.Run("every Init1 lost", func(t *testing.T) {
		// The third segment arrives (b repeats no SYN-ACK), the data
		// after it never does: not a path that loses TCP-ENO.
		f := full(t)
		f.stepSYN(t)
		f.stepSYNACK(t)
		f.w.Link.Add(Rule{Dir: AtoB, Match: isData, Drop: true, Times: -1})
		f.stepACK(t)
		f.w.Run(engine.DefaultHandshakeTimeout + time.Second)
		// G_B, waiting for Init1, gives up first and resets G_A, which
		// still retransmits it (InitTries).
		if n := f.w.G[SideB].Counters().HandshakeFailures.Load(); n != 1 {
			t.Fatalf("G_B handshake failures %d, want 1", n)
		}
		negotiates(t, f)
	})
	t.Run("SYN-ACK's option lost", func(t *testing.T) {
		f := full(t)
		w, a, b := f.w, f.a, f.b
		lost := w.Link.Add(Rule{Dir: BtoA, Match: func(_ int, s Seg) bool { return s.Has(packettest.SYN) }, Mutate: stripENO})
		f.stepSYN(t)
		w.Host(SideB, b.SYNACK(isnA, LinuxSYNOpts))
		w.Run(latency)
		if lost.Hits != 1 {
			t.Fatal("the SYN-ACK's option was not stripped")
		}
		w.Take(SideA)
		pass := w.Verdicts[SideB][engine.Passthrough]
		across(t, f, SideA, a.ACK(0, isnB+1))
		if n := w.Verdicts[SideB][engine.Passthrough]; n != pass {
			t.Fatal("G_B let the third segment onto the fast path (Passthrough) before a's first bytes")
		}
		across(t, f, SideA, a.Data(0, isnB+1, []byte("plain MARK from a")))
		if n := w.Verdicts[SideB][engine.Passthrough]; n != pass+1 {
			t.Fatalf("G_B passed a's plain first bytes with %d Passthrough verdicts, want 1", n-pass)
		}
		across(t, f, SideB, b.Data(0, a.Seq(17), []byte("plain MARK from b")))
		negotiates(t, f)
	})
}

// TestENOPathMemoryUnderRequire: with policy require for b's prefix, a
// failure as in TestFarSideAnswersInit1WithData is remembered all the same,
// but a's next SYN to b still offers TCP-ENO: the prefix gets no plain TCP.
func TestENOPathMemoryUnderRequire(t *testing.T) {
	f := newFixture(t, [2]bool{true, false}, false, func(_ Side, c *engine.Config) {
		c.Policies = []engine.PolicyRule{{Prefix: netip.PrefixFrom(packettest.HostB4, 32), Policy: engine.Require}}
	})
	w, a, b := f.w, f.a, f.b
	farSideFellBack(t, f, func() {
		w.SendFar(SideB, b.Data(0, a.Seq(init1), []byte("HTTP/1.1 400 Bad Request\r\n\r\n")))
		w.Run(2 * latency)
	})
	if n := eventCount(w.G[SideA], "eno_path_failures"); n != 1 {
		t.Fatalf("G_A eno_path_failures %d, want 1", n)
	}
	a2, _ := f.pair(40001, 80, 20000, 0)
	w.Host(SideA, a2.SYN(LinuxSYNOpts))
	w.Run(latency)
	if s := one(t, "a's next SYN at the far side", w.TakeFar(SideB)); len(s.ENO()) != 1 {
		t.Fatalf("a's next SYN left without TCP-ENO under require: %v", s)
	}
}

// TestPathDropsENOAfterSYNs: a middlebox drops every segment after the
// SYNs that carries TCP-ENO (RFC 8547 §9, a type-2 failure). a's third
// ACK and every Init1 G_A sends are lost; b, in SYN-RECEIVED, repeats its
// SYN-ACK (Linux: 1, 3, 7, 15 s), and a acknowledges each. G_A gives up
// after its Init tries (about 25 s) as before, and resets a; the far side
// now gets an RST without `45 02` at b's RCV.NXT, which the path lets
// through, so G_B and b end the handshake at once. G_A remembers b's
// address: a's next connection is plain from its SYN and works, and the
// answer to b's SYN carries no ENO either. Before, the only RST toward b
// carried `45 02` and was dropped (b waited for its own timeout), and
// every later connection failed the same way.
func TestPathDropsENOAfterSYNs(t *testing.T) {
	f := full(t)
	w, a, b := f.w, f.a, f.b
	drop := w.Link.Add(Rule{Dir: AtoB, Match: afterSYNsWithENO, Drop: true, Times: -1})
	f.stepSYN(t)
	f.stepSYNACK(t)
	w.React = func(s Side, g Seg) {
		if s == SideA && g.Has(packettest.SYN|packettest.ACK) {
			w.Host(SideA, a.ACK(0, isnB+1)) // a's TCP answers every SYN-ACK
		}
	}
	w.Host(SideA, a.ACK(0, isnB+1))
	start := w.Now
	for _, at := range []time.Duration{1, 3, 7, 15, 31} {
		w.Run(time.Duration(start + int64(at*time.Second) - w.Now))
		if hasRST(w.All[SideB]) {
			break
		}
		w.Host(SideB, b.SYNACK(isnA, LinuxSYNOpts))
	}
	w.React = nil
	if drop.Hits < 5 {
		t.Fatalf("%d segments dropped, want the third ACKs and the Init1 tries", drop.Hits)
	}
	noPayload(t, w, SideB)
	noPayload(t, w, SideA)
	if !hasRST(w.All[SideA]) || !hasRST(w.All[SideB]) {
		t.Fatalf("RST to a %v, to b %v; want both", hasRST(w.All[SideA]), hasRST(w.All[SideB]))
	}
	if d := time.Duration(w.Now - start); d > 31*time.Second {
		t.Fatalf("b reset after %v, want at G_A's last Init try (about 25 s)", d)
	}
	if n := w.G[SideA].NumFlows() + w.G[SideB].NumFlows(); n != 0 {
		t.Fatalf("%d flows left", n)
	}
	w.Take(SideA)
	w.Take(SideB)
	a2, b2 := f.pair(40001, 80, 20000, 30000)
	plainConnection(t, f, a2, b2)
	// b's connection to a: G_B offers TCP-ENO, a's SYN-ACK leaves G_A
	// without it.
	a3, b3 := f.pair(22, 50000, 7000, 8000)
	w.Host(SideB, b3.SYN(LinuxSYNOpts))
	w.Run(latency)
	one(t, "b's SYN at a", w.Take(SideA))
	if s := across(t, f, SideA, a3.SYNACK(8000, LinuxSYNOpts)); len(s.ENO()) != 0 {
		t.Fatalf("a's SYN-ACK left G_A with TCP-ENO: %v", s)
	}
	if n := eventCount(w.G[SideA], "eno_path_failures"); n != 1 {
		t.Fatalf("G_A eno_path_failures %d, want 1", n)
	}
	if n := fallbackCount(w.G[SideA], "eno_path_stripped"); n != 2 {
		t.Fatalf("G_A eno_path_stripped %d, want 2 (a's SYN, b's)", n)
	}
}

// resumedOverStrippingPath runs an encrypted connection that fills both
// appliances' resumption caches, then has the link blank TCP-ENO on a's
// side after the SYNs (the rule returned) and opens a second connection
// up to its third segment, resumed (its SYN-ACK says so).
func resumedOverStrippingPath(t *testing.T) (f *fixture, strip *Rule, a2, b2 *Host) {
	t.Helper()
	f = newFixtureCache(t, [2]bool{true, true}, false, true, nil)
	f.handshake(t)
	f.exchange(t)
	f.w.Take(SideA)
	f.w.Take(SideB)
	strip = f.w.Link.Add(Rule{Dir: AtoB, Match: afterSYNsWithENO, Mutate: stripENO, Times: -1})
	a2, b2, _, synack := secondConn(t, f)
	if e := synack.ENO(); len(e) != 1 || len(e[0]) < 4 || e[0][3] != 0xa3 {
		t.Fatalf("second SYN-ACK's ENO %x: not resumed", e)
	}
	return f, strip, a2, b2
}

// TestPathStripsENOResumed: as TestPathStripsENOAfterSYNs, for a second
// connection between the same addresses that resumes the first's session
// (on by default). It has no Init1: A's first bytes are a frame under the
// resumed keys, which G_B, having agreed to resume, recognises by opening
// it. Before, G_B passed the frame to b as data, remembered nothing, and
// every later connection resumed and failed the same way.
func TestPathStripsENOResumed(t *testing.T) {
	f, strip, a2, b2 := resumedOverStrippingPath(t)
	w := f.w
	base := len(w.All[SideB])
	w.Host(SideA, a2.ACK(0, b2.ISN+1))
	w.Run(latency)
	w.Host(SideA, a2.Data(0, b2.ISN+1, []byte("resumed MARK")))
	w.Run(5 * latency)
	if strip.Hits == 0 {
		t.Fatal("nothing was stripped")
	}
	for _, g := range w.All[SideB][base:] {
		if len(g.Payload) > 0 {
			t.Fatalf("b got %v: payload %x", g, g.Payload)
		}
	}
	if !hasRST(w.All[SideB][base:]) || !hasRST(w.Take(SideA)) {
		t.Fatal("both hosts must be reset")
	}
	if n := eventCount(w.G[SideB], "eno_path_failures"); n != 1 {
		t.Fatalf("G_B eno_path_failures %d, want 1", n)
	}
	w.Take(SideB)
	a3, b3 := f.pair(40002, 80, 20000, 30000)
	plainConnection(t, f, a3, b3)
}

// TestPathStripsENOResumedServerFirst: as TestPathStripsENOResumed, but b
// speaks first (a server's greeting, here binary): A has sent no byte for
// G_B to recognise, and the greeting reaches G_A at wire offset 0, where a
// resumed session's first frame from R belongs. It is no frame of it: G_A
// ends the connection and remembers the path, as for a bad Init2 in a
// fresh session, and the next connection is plain. Before, nothing was
// remembered and every later connection resumed and failed the same way.
func TestPathStripsENOResumedServerFirst(t *testing.T) {
	f, _, a2, b2 := resumedOverStrippingPath(t)
	w := f.w
	w.Host(SideA, a2.ACK(0, b2.ISN+1))
	w.Run(latency)
	greeting := append([]byte{0x4a, 0x00, 0x00, 0x00, 0x0a}, "8.0.36 MARK\x00"...)
	base := len(w.All[SideA])
	w.Host(SideB, b2.Data(0, a2.Seq(0), greeting))
	w.Run(5 * latency)
	for _, g := range w.All[SideA][base:] {
		if len(g.Payload) > 0 {
			t.Fatalf("a got %v: payload %x", g, g.Payload)
		}
	}
	if n := eventCount(w.G[SideA], "eno_path_failures"); n != 1 {
		t.Fatalf("G_A eno_path_failures %d, want 1", n)
	}
	w.Take(SideA)
	w.Take(SideB)
	a3, b3 := f.pair(40002, 80, 20000, 30000)
	plainConnection(t, f, a3, b3)
}

// TestPathStripsENOResumedTextGreeting: as TestPathStripsENOResumedServerFirst,
// but b's greeting is text ("220 ..." from a mail server), whose first bytes
// read as the header of a frame of 12,852 bytes: G_A waits for the rest,
// which never comes, while the far server waits for its client. Before,
// the connection hung until an application gave up, and nothing was
// remembered. Now, with no frame of the session after the handshake
// timeout from the far side's first byte, G_A resets both hosts and
// remembers the path, as for a far side silent after Init1; the next
// connection is plain.
func TestPathStripsENOResumedTextGreeting(t *testing.T) {
	f, _, a2, b2 := resumedOverStrippingPath(t)
	w := f.w
	w.Host(SideA, a2.ACK(0, b2.ISN+1))
	w.Run(latency)
	base := len(w.All[SideA])
	w.Host(SideB, b2.Data(0, a2.Seq(0), []byte("220 mail.example.net ESMTP MARK\r\n")))
	w.Run(engine.DefaultHandshakeTimeout / 2)
	if n := eventCount(w.G[SideA], "eno_path_failures"); n != 0 {
		t.Fatalf("G_A gave up after half the handshake timeout (eno_path_failures %d)", n)
	}
	w.Run(engine.DefaultHandshakeTimeout/2 + time.Second)
	for _, g := range w.All[SideA][base:] {
		if len(g.Payload) > 0 {
			t.Fatalf("a got %v: payload %x", g, g.Payload)
		}
	}
	if !hasRST(w.All[SideA][base:]) || !hasRST(w.Take(SideB)) {
		t.Fatal("both hosts must be reset")
	}
	if n := eventCount(w.G[SideA], "eno_path_failures"); n != 1 {
		t.Fatalf("G_A eno_path_failures %d, want 1", n)
	}
	w.Take(SideA)
	a3, b3 := f.pair(40002, 80, 20000, 30000)
	plainConnection(t, f, a3, b3)
}
