package scenario

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// TestDataBeforeKeys: a sends data right after its third segment, before
// Init2 has come back. G_A queues it (docs/architecture.md §2: never in the clear,
// never dropped silently) and sends it framed, right after Init1, once the
// keys exist; b gets it at its host offset (ENO-37, TC-13).
func TestDataBeforeKeys(t *testing.T) {
	f := full(t)
	w, a := f.w, f.a
	f.stepSYN(t)
	f.stepSYNACK(t)
	f.stepACK(t)
	early := []byte("early MARK data before the keys")
	w.Host(SideA, a.Data(0, isnB+1, early))
	w.Run(0)
	for _, s := range w.Link.Sent(AtoB) {
		if bytes.Contains(s.Payload, []byte("MARK")) {
			t.Fatalf("plaintext on the link before the keys: %v", s)
		}
	}
	w.Run(4 * latency)
	ws := wireStream(t, w, AtoB, isnA)
	if got := len(ws.Contiguous()); got != init1+len(early)+ovh {
		t.Fatalf("link carried %d bytes from A, want Init1 and one frame (%d)", got, init1+len(early)+ovh)
	}
	st := hostStream(t, w.All[SideB], isnA)
	if !bytes.Equal(st.Contiguous(), early) {
		t.Fatalf("b has %q, want %q", st.Contiguous(), early)
	}
	f.established(t)
}

// TestInit2SharedWithFrame: a host-based peer in role B sends Init2 in two
// segments, the second of which also carries its first frame (TC-7: an
// Init message may end in the middle of a segment). a gets the frame's data
// at host offset 0. Both with the public-key work inline and on a pool
// (the session then completes in a later Tick).
func TestInit2SharedWithFrame(t *testing.T) {
	for _, pool := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "pool"}[pool], func(t *testing.T) {
			init2SharedWithFrame(t, newFixture(t, [2]bool{true, false}, pool, nil))
		})
	}
}

func init2SharedWithFrame(t *testing.T, f *fixture) {
	w, a, b := f.w, f.a, f.b
	p := NewPeer(tcpcrypt.RoleB, isnA)
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	syn := one(t, "SYN at the peer", w.TakeFar(SideB))
	opt, err := p.AnswerSYN(syn.ENO()[0])
	if err != nil {
		t.Fatal(err)
	}
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts, opt))
	w.Run(latency)
	w.Take(SideA)
	w.Host(SideA, a.ACK(0, isnB+1))
	w.Run(latency)
	peerFeed(t, f, p, SideB)
	if !p.Ready() {
		t.Fatal("peer has no keys")
	}
	rest := append(append([]byte(nil), p.Init[30:]...), p.Seal([]byte("first words from b"), false)...)
	w.SendFar(SideB, b.Seg(packettest.ACK, b.Seq(0), a.Seq(init1), p.Init[:30], ENOAck))
	w.SendFar(SideB, b.Seg(packettest.ACK|packettest.PSH, b.Seq(30), a.Seq(init1), rest))
	w.Run(latency)
	for _, s := range w.All[SideA] {
		if s.Has(packettest.RST) {
			t.Fatalf("G_A aborted the connection: a got %v (counters: %d authentication failures)", s, w.G[SideA].Counters().AuthFailures.Load())
		}
	}
	st := hostStream(t, w.All[SideA], isnB)
	if string(st.Contiguous()) != "first words from b" {
		t.Fatalf("a has %q", st.Contiguous())
	}
	if g := one2(t, w.Flows(SideA)); !g.Encrypted || g.SessionID != p.Session.ID {
		t.Fatalf("G_A's flow %+v", g)
	}
}

// TestFINWithoutFINp: the far side sends a TCP FIN on a segment that ends
// no FINp frame (an attacker closing the connection). G_B must not pass an
// unauthenticated FIN to b (ENO-65, TC-50); it aborts: RST to b and toward
// the far side (TC-51).
func TestFINWithoutFINp(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	p := peerA(t, f, nil)
	fr := p.Seal([]byte("not the last frame"), false)
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(int(p.SendOff)-len(fr)), b.Seq(init2), fr))
	w.Run(2 * latency)
	var rstB bool
	for _, s := range w.All[SideB] {
		if s.Has(packettest.FIN) {
			t.Fatalf("b got a FIN no FINp frame authenticated: %v", s)
		}
		rstB = rstB || s.Has(packettest.RST)
	}
	var rstFar bool
	for _, s := range w.TakeFar(SideA) {
		rstFar = rstFar || s.Has(packettest.RST)
	}
	if !rstB || !rstFar {
		t.Fatalf("FIN without FINp: RST to b %v, toward the far side %v; want both (TC-51)", rstB, rstFar)
	}
}

// TestFINpFromPeer: the far side's FINp frame arrives in a segment with TCP
// FIN; b gets the data and the FIN together (TC-50, TC-D8).
func TestFINpFromPeer(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	p := peerA(t, f, []int{40})
	fr := p.Seal([]byte("last words"), true)
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(int(p.SendOff)-len(fr)), b.Seq(init2), fr))
	w.Run(2 * latency)
	g := one(t, "data at b", withData(w.Take(SideB)))
	if !g.Has(packettest.FIN) || string(g.Payload) != "last words" || g.Seq != a.Seq(0) {
		t.Fatalf("b got %v %q, want \"last words\" with FIN at %d", g, g.Payload, a.Seq(0))
	}
}

// TestKeepAlive: after its data is acknowledged, a sends a keep-alive
// (seq = next-1, no data). It crosses the link at the wire offset next-1,
// never as a frame (docs/protocol.md §15), and reaches b in host space; b's
// answer reaches a.
func TestKeepAlive(t *testing.T) {
	f := full(t)
	f.handshake(t)
	f.exchange(t)
	w, a, b := f.w, f.a, f.b
	d, r := f.dirs(SideA)
	n := f.mark(AtoB)
	w.Host(SideA, a.ACK(d.hostOff-1, b.Seq(r.hostOff)))
	w.Run(0)
	s := one(t, "keep-alive on the link", f.sentSince(AtoB, n))
	if s.Seq != a.Seq(d.wireOff-1) || len(s.Payload) != 0 {
		t.Fatalf("keep-alive on the link: %v, want seq %d", s, a.Seq(d.wireOff-1))
	}
	w.Run(latency)
	g := one(t, "keep-alive at b", w.Take(SideB))
	if g.Seq != a.Seq(d.hostOff-1) || len(g.Payload) != 0 {
		t.Fatalf("keep-alive at b: %v, want seq %d", g, a.Seq(d.hostOff-1))
	}
	n = f.mark(BtoA)
	w.Host(SideB, b.ACK(r.hostOff, a.Seq(d.hostOff)))
	w.Run(latency)
	if len(f.sentSince(BtoA, n)) == 0 {
		t.Fatal("b's answer to the keep-alive was suppressed: a's keep-alive gets no answer")
	}
	if got := w.Take(SideA); len(got) == 0 || got[len(got)-1].Ack != a.Seq(d.hostOff) {
		t.Fatalf("a got %v, want the keep-alive answer acking %d", got, a.Seq(d.hostOff))
	}
}

// TestPacketTooBig: a router on the untrusted side sends an ICMP "packet
// too big" quoting one of G_A's wire segments. G_A passes it to a with the
// quoted sequence number translated to host space (the start of the frame's
// host bytes) and the MTU lowered by the frame overhead (engine contract),
// checksums valid.
func TestPacketTooBig(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a := f.w, f.a
	f.send(t, SideA, chunk('q', 300))
	f.ack(t, SideB)
	n := f.mark(AtoB)
	w.Host(SideA, a.Data(300, isnB+1, chunk('r', 400)))
	w.Run(0)
	wire := one(t, "data on the link", withData(f.sentSince(AtoB, n)))
	w.Run(latency)
	w.Take(SideB)
	router := netip.MustParseAddr("203.0.113.1")
	icmp := packettest.Frame{Src: router, Dst: a.Addr.Addr(), Proto: 1,
		L4: packettest.ICMP(3, 4, 1400, packettest.Quote(wire.Raw, 28))}.Bytes()
	w.SendFar(SideB, icmp)
	w.Run(latency)
	got := one(t, "ICMP at a", w.Take(SideA)).Raw
	ip := got[14:]
	ihl := int(ip[0]&15) * 4
	if packettest.RefChecksum(ip[:ihl]) != 0 || ip[9] != 1 {
		t.Fatalf("ICMP at a: bad IPv4 header %x", ip[:ihl])
	}
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	msg := ip[ihl:tot]
	if packettest.RefChecksum(msg) != 0 {
		t.Fatal("ICMP at a: bad ICMP checksum")
	}
	if msg[0] != 3 || msg[1] != 4 || binary.BigEndian.Uint16(msg[6:]) != 1400-ovh {
		t.Fatalf("ICMP at a: type %d code %d MTU %d, want 3/4 MTU %d", msg[0], msg[1], binary.BigEndian.Uint16(msg[6:]), 1400-ovh)
	}
	q := msg[8:]
	qseq := binary.BigEndian.Uint32(q[int(q[0]&15)*4+4:])
	if qseq != a.Seq(300) {
		t.Fatalf("quoted sequence number %d, want host %d (wire %d)", qseq, a.Seq(300), wire.Seq)
	}
}

// TestInitRetransmitBackoff: Init1 never gets through. G_A retransmits it
// with exponential backoff (initial RTO 200 ms, doubled each time), the
// same bytes each time (TC-45), and after InitTries gives up with RST to
// both sides (engine contract, docs/protocol.md §9 abort).
func TestInitRetransmitBackoff(t *testing.T) {
	f := full(t)
	w := f.w
	f.stepSYN(t)
	f.stepSYNACK(t)
	w.Link.Add(Rule{Dir: AtoB, Match: isData, Drop: true, Times: -1})
	f.stepACK(t)
	start := w.Now
	w.Run(40 * time.Second)
	var at []int64
	for _, e := range w.Link.Log {
		if e.Dir == AtoB && len(e.Seg.Payload) > 0 && e.Seg.Seq == isnA+1 {
			at = append(at, e.At-start)
		}
	}
	if len(at) < 3 || len(at) > 7 {
		t.Fatalf("Init1 sent %d times, want the first and at most 6 tries", len(at))
	}
	for i := 2; i < len(at); i++ {
		d1, d2 := at[i-1]-at[i-2], at[i]-at[i-1]
		if d2 < 2*d1-int64(2*time.Millisecond) || d2 > 2*d1+int64(2*time.Millisecond) {
			t.Fatalf("Init1 sent at %v (ns after the first): intervals do not double", at)
		}
	}
	if d := at[1] - at[0]; d < int64(190*time.Millisecond) || d > int64(210*time.Millisecond) {
		t.Fatalf("first retransmission after %v, want 200 ms", time.Duration(d))
	}
	wireStream(t, w, AtoB, isnA)
	var rstA bool
	for _, s := range w.All[SideA] {
		rstA = rstA || s.Has(packettest.RST)
	}
	var rstWire bool
	for _, s := range w.Link.Sent(AtoB) {
		rstWire = rstWire || s.Has(packettest.RST)
	}
	if !rstA || !rstWire {
		t.Fatalf("after the last try: RST to a %v, on the link %v; want both", rstA, rstWire)
	}
}

// TestURGStripped: the engine does not generate URGp (docs/protocol.md §13
// recommendation): a's urgent data goes on as normal data, the URG flag
// does not cross the link, b gets the bytes, and the engine counts it.
func TestURGStripped(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a := f.w, f.a
	seg := a.Seg(packettest.ACK|packettest.PSH|0x20, a.Seq(0), isnB+1, []byte("urgent!"))
	seg[14+20+18], seg[14+20+19] = 0, 7 // urgent pointer
	FixChecksums(seg)
	n := f.mark(AtoB)
	w.Host(SideA, seg)
	w.Run(latency)
	for _, s := range f.sentSince(AtoB, n) {
		if s.Flags&0x20 != 0 {
			t.Fatalf("URG crossed the link: %v", s)
		}
	}
	if st := hostStream(t, w.All[SideB], isnA); string(st.Contiguous()) != "urgent!" {
		t.Fatalf("b has %q", st.Contiguous())
	}
	if w.G[SideA].Counters().URGStripped.Load() != 1 {
		t.Fatal("URG not counted")
	}
}

// TestServerFirst: b speaks first (an SMTP banner) the moment it gets the
// third segment, before G_B has even read Init1 (and, with a pool, before
// the key exchange is done), so G_B has no keys yet and must queue it. The banner is never on the link in the clear; it follows Init2 as
// B's first frame (TC-13) and reaches a at host offset 0.
func TestServerFirst(t *testing.T) {
	for _, pool := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "pool"}[pool], func(t *testing.T) {
			f := newFixture(t, [2]bool{true, true}, pool, nil)
			w, b := f.w, f.b
			f.stepSYN(t)
			f.stepSYNACK(t)
			banner := []byte("220 MARK banner")
			sent := false
			w.React = func(s Side, g Seg) {
				if s == SideB && !sent && !g.Has(packettest.SYN) {
					sent = true
					w.Host(SideB, b.Data(0, isnA+1, banner))
				}
			}
			f.stepACK(t)
			w.Run(4 * latency)
			if !sent {
				t.Fatal("b never got the third segment")
			}
			if w.G[SideB].Counters().PreKeyQueued.Load() == 0 {
				t.Fatal("the banner was not queued for the keys")
			}
			for _, s := range w.Link.Sent(BtoA) {
				if bytes.Contains(s.Payload, []byte("MARK")) {
					t.Fatalf("plaintext on the link: %v", s)
				}
			}
			ws := wireStream(t, w, BtoA, isnB)
			if got := len(ws.Contiguous()); got != init2+len(banner)+ovh {
				t.Fatalf("link carried %d bytes from B, want Init2 and one frame (%d)", got, init2+len(banner)+ovh)
			}
			if st := hostStream(t, w.All[SideA], isnB); !bytes.Equal(st.Contiguous(), banner) {
				t.Fatalf("a has %q", st.Contiguous())
			}
			f.established(t)
		})
	}
}

// TestFINBeforeKeys: a closes right after its third segment, before Init2
// is back: G_A queues the FIN and sends it as an empty FINp frame with TCP
// FIN once the keys exist (TC-49); b gets a bare FIN at host offset 0.
func TestFINBeforeKeys(t *testing.T) {
	f := full(t)
	w, a := f.w, f.a
	f.stepSYN(t)
	f.stepSYNACK(t)
	f.stepACK(t)
	w.Host(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(0), isnB+1, nil))
	w.Run(4 * latency)
	var fin *Seg
	for _, s := range w.Link.Sent(AtoB) {
		if s.Has(packettest.FIN) {
			fin = &s
		}
	}
	if fin == nil || fin.Seq != a.Seq(init1) || len(fin.Payload) != ovh {
		t.Fatalf("FIN on the link: %v, want an empty FINp frame at %d", fin, a.Seq(init1))
	}
	var got *Seg
	for _, s := range w.All[SideB] {
		if s.Has(packettest.FIN) {
			got = &s
		}
	}
	if got == nil || got.Seq != a.Seq(0) || len(got.Payload) != 0 {
		t.Fatalf("b got FIN %v, want a bare FIN at %d", got, a.Seq(0))
	}
}

// TestRekeyByTime: G_A rekeys after RekeyAfter even with no data to send
// (RFC 8548 §3.9 recommends rekeying as the liveness check). One frame each
// way carries the rekey bit and both ends reach generation 1; data keeps
// flowing.
func TestRekeyByTime(t *testing.T) {
	f := newFixture(t, [2]bool{true, true}, false, func(s Side, c *engine.Config) {
		if s == SideA {
			c.RekeyAfter = time.Second
		}
	})
	f.handshake(t)
	f.exchange(t)
	f.w.Run(1500 * time.Millisecond)
	f.ab.wireOff = len(wireStream(t, f.w, AtoB, isnA).Contiguous())
	f.ba.wireOff = len(wireStream(t, f.w, BtoA, isnB).Contiguous())
	f.w.Take(SideA)
	f.w.Take(SideB)
	f.exchange(t)
	count := func(d Dir, isn uint32, start int) int {
		n := 0
		for _, fr := range splitFrames(t, wireStream(t, f.w, d, isn).Contiguous(), start) {
			if fr.Rekey {
				n++
			}
		}
		return n
	}
	if a, b := count(AtoB, isnA, init1), count(BtoA, isnB, init2); a != 1 || b != 1 {
		t.Fatalf("rekey frames: %d from A, %d from B; want 1 and 1", a, b)
	}
	fa, fb := one2(t, f.w.Flows(SideA)), one2(t, f.w.Flows(SideB))
	if fa.KeyGeneration != 1 || fb.KeyGeneration != 1 {
		t.Fatalf("key generations %d and %d, want 1 and 1", fa.KeyGeneration, fb.KeyGeneration)
	}
}

// TestTimestampsOnInit: segments the appliances originate carry timestamps
// the hosts' PAWS and RTT logic accept (docs/architecture.md §2): Init1 carries a's
// latest TSval and, as TSecr, a TSval that came from b's side (b's latest,
// or the one a last echoed); Init2 the same the other way. An ACK segment
// echoes TS.Recent, never 0 (RFC 7323 §3.2, §4.3).
func TestTimestampsOnInit(t *testing.T) {
	f := full(t)
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(PlainSYNOpts, packettest.TimestampOption(10, 0)))
	w.Run(latency)
	w.Take(SideB)
	w.Host(SideB, b.SYNACK(isnA, PlainSYNOpts, packettest.TimestampOption(500, 10)))
	w.Run(latency)
	w.Take(SideA)
	n, m := f.mark(AtoB), f.mark(BtoA)
	w.Host(SideA, a.ACK(0, isnB+1, packettest.TimestampOption(11, 500)))
	w.Run(0)
	for _, s := range withData(f.sentSince(AtoB, n)) {
		if v, e, ok := s.TS(); !ok || v != 11 || e != 500 {
			t.Fatalf("Init1 segment TS %d/%d (present %v), want TSval 11 (a's) TSecr 500 (b's)", v, e, ok)
		}
	}
	w.Run(latency)
	init2 := withData(f.sentSince(BtoA, m))
	if len(init2) == 0 {
		t.Fatal("no Init2")
	}
	for _, s := range init2 {
		if v, e, ok := s.TS(); !ok || v != 500 || (e != 11 && e != 10) {
			t.Fatalf("Init2 segment TS %d/%d (present %v), want TSval 500 (b's) and TSecr 11 (a's latest) or 10 (what b echoed)", v, e, ok)
		}
	}
}
